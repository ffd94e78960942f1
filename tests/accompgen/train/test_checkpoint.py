"""The training log trimmed back to the checkpoint a run resumes from."""

import json

from accompgen.train.checkpoint import forget_steps_after


def test_records_past_the_checkpoint_and_a_line_cut_off_mid_write_are_dropped(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (10, 20, 30, 40)) + '{"step": 5')
    forget_steps_after(log, 20)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [10, 20]


def test_a_log_within_the_checkpoint_is_left_as_it_is(tmp_path):
    log = tmp_path / "train.jsonl"
    text = json.dumps({"step": 10}) + "\n" + json.dumps({"step": 20, "replica_digests": ["a", "a"]}) + "\n"
    log.write_text(text)
    forget_steps_after(log, 20)
    assert log.read_text() == text
    forget_steps_after(tmp_path / "absent.jsonl", 20)
    assert not (tmp_path / "absent.jsonl").exists()
