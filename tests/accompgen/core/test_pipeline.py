import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accompgen.core.decoding import SamplingOptions
from accompgen.core.pipeline import StagePlan, generate_codes, plan_windows
from accompgen.model.torch_inference import TorchInference
from accompgen.model.transformer import build_stages


@given(st.integers(1, 500), st.integers(2, 60), st.data())
def test_windows_cover_the_input_and_overlap_by_the_prompt(n_frames, window, data):
    prompt = data.draw(st.integers(0, window - 1))
    windows = plan_windows(n_frames, window, prompt)
    assert windows[0].start == 0 and windows[0].prompt == 0 and windows[-1].stop == n_frames
    for before, after in itertools.pairwise(windows):
        assert after.start == before.stop - prompt and after.prompt == prompt
    assert all(w.stop - w.start <= window and w.stop - w.start > w.prompt for w in windows)


@pytest.fixture(scope="module")
def stages(tiny_config):
    import torch

    torch.manual_seed(0)
    return build_stages(tiny_config).eval()


def run(config, stages, vocal, seconds, preview=False, seed=0, variations=2):
    plans = {name: s.plan for name, s in config.stages.items()}
    inference = {name: (lambda capacity, m=stages[name]: TorchInference(m)) for name in stages}
    options = SamplingOptions(seed=seed, variations=variations)
    return generate_codes(config.tokens, plans, vocal, seconds, inference, options, preview)


def test_codes_cover_the_region_at_75_hz(tiny_config, stages):
    vocal = np.random.default_rng(0).integers(0, 16, 233)  # 4.66 s: several windows of every stage
    codes = run(tiny_config, stages, vocal, 4.66)
    assert codes.shape == (2, 8, 350)
    assert codes.min() >= 0 and codes.max() < 32
    assert run(tiny_config, stages, vocal, 4.66, preview=True).shape == (2, 4, 350)


def test_progress_reaches_every_stage_in_order(tiny_config, stages):
    seen = []
    plans = {name: s.plan for name, s in tiny_config.stages.items()}
    inference = {name: (lambda capacity, m=stages[name]: TorchInference(m)) for name in stages}
    vocal = np.zeros(60, np.int64)
    generate_codes(
        tiny_config.tokens, plans, vocal, 1.2, inference, SamplingOptions(), progress=lambda *p: seen.append(p)
    )
    assert [stage for stage, _ in seen] == sorted((s for s, _ in seen), key=["semantic", "coarse", "fine"].index)
    for stage in ("semantic", "coarse", "fine"):
        fractions = [f for s, f in seen if s == stage]
        assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_prompt_free_windows_run_as_one_batch(tiny_config, stages):
    """Fine windows without a prompt: one prefill of windows x N rows instead of one per window."""
    from accompgen.core.pipeline import generate_track

    prefills: list[int] = []

    class Counting(TorchInference):
        def logits(self, input_ids, ticks):
            if len(ticks) == input_ids.shape[1]:
                prefills.append(len(input_ids))
            return super().logits(input_ids, ticks)

    stage = tiny_config.tokens.stages["fine"]
    coarse = np.random.default_rng(0).integers(0, 32, (2, 4, 300))  # 4 s: four 1 s windows
    options = SamplingOptions(seed=1, variations=2, cfg_scale=1.0)
    rngs = [np.random.default_rng(i) for i in range(2)]
    independent, prompted = StagePlan(1.0, 0.0), StagePlan(1.0, 0.2)
    codes = generate_track(
        stage, {"coarse": coarse}, 300, independent, lambda _capacity: Counting(stages["fine"]), options, rngs
    )
    assert prefills == [8] and codes.shape == (2, 4, 300)
    prefills.clear()
    generate_track(stage, {"coarse": coarse}, 300, prompted, lambda _capacity: Counting(stages["fine"]), options, rngs)
    assert prefills == [2] * 5  # prompted windows depend on each other: one at a time


def test_given_tracks_skip_the_stages_that_would_write_them(tiny_config, stages):
    """The evaluation ladder feeds real tokens to the later stages: a given track is used as it is."""
    plans = {name: s.plan for name, s in tiny_config.stages.items()}

    def never(capacity):
        raise AssertionError("a stage whose track was given ran")

    inference = {name: (lambda capacity, m=stages[name]: TorchInference(m)) for name in stages}
    rng = np.random.default_rng(0)
    vocal = rng.integers(0, 16, 60)
    inst = rng.integers(0, 16, (1, 1, 60))
    coarse = rng.integers(0, 32, (1, 4, 90))
    options = SamplingOptions(seed=0, variations=1)
    only_fine = generate_codes(
        tiny_config.tokens,
        plans,
        vocal,
        1.2,
        {**inference, "semantic": never, "coarse": never},
        options,
        given={"inst_semantic": inst, "coarse": coarse},
    )
    np.testing.assert_array_equal(only_fine[:, :4], coarse)
    with_inst = generate_codes(
        tiny_config.tokens, plans, vocal, 1.2, {**inference, "semantic": never}, options, given={"inst_semantic": inst}
    )
    assert with_inst.shape == (1, 8, 90)
