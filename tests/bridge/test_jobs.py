import json
import os
import time

import pytest

from accompgen_bridge.errors import JobError
from accompgen_bridge.job_request import GenerateRequest
from accompgen_bridge.jobs import MAX_ATTEMPTS, JobStore

REQUEST = GenerateRequest("a.wav", 0.0, 1.0, seed=3)


@pytest.fixture
def store(tmp_path):
    store = JobStore(tmp_path, max_queue=3)
    yield store
    store.close()


def status(store, job):
    return json.loads(store.status_path(job.id).read_text())


def test_a_job_moves_through_its_states(store):
    job = store.submit(REQUEST)
    assert status(store, job)["state"] == "queued"
    running = store.next_queued()
    assert running.id == job.id and running.state == "running" and running.attempts == 1
    store.update(job.id, state="done", fraction=1.0, outputs=["/o.wav"])
    written = status(store, job)
    assert abs(written.pop("heartbeat") - time.time()) < 60 and written.pop("bridge_pid") == os.getpid()
    assert written == {
        "job_id": job.id,
        "state": "done",
        "stage": "",
        "fraction": 1.0,
        "outputs": ["/o.wav"],
        "error_code": None,
        "error_message": None,
    }
    assert store.next_queued() is None
    assert store.get(job.id).request == REQUEST  # typed, as submitted


def test_unfinished_jobs_beat_and_finished_ones_keep_their_file(store):
    waiting, ended = store.submit(REQUEST), store.submit(REQUEST)
    store.cancel_queued(ended.id)
    before = {job.id: status(store, job)["heartbeat"] for job in (waiting, ended)}
    time.sleep(0.01)
    store.beat()
    assert status(store, waiting)["heartbeat"] > before[waiting.id]
    assert status(store, ended)["heartbeat"] == before[ended.id]


def test_a_reader_holding_the_status_file_on_windows_delays_the_replace_but_does_not_fail_it(store, monkeypatch):
    """Windows refuses to replace a file that a reader has open (a sharing violation, PermissionError); the
    ReaScript holds it for the few milliseconds of a read."""
    import accompgen_bridge.jobs as jobs

    real_replace, refusals = os.replace, []

    def windows_replace(src, dst):
        if len(refusals) < 5:  # the reader holds the file for five attempts
            refusals.append(dst)
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        real_replace(src, dst)

    monkeypatch.setattr(jobs.os, "replace", windows_replace)
    job = store.submit(REQUEST)
    assert len(refusals) == 5 and status(store, job)["state"] == "queued"
    assert not [p for p in store.status_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_the_queue_is_bounded_and_first_in_first_out(store):
    jobs = [store.submit(REQUEST) for i in range(3)]
    with pytest.raises(JobError) as err:
        store.submit(REQUEST)
    assert err.value.code == "busy"
    assert [store.next_queued().id for _ in range(3)] == [job.id for job in jobs]


def test_jobs_survive_a_restart_and_interrupted_ones_are_requeued_then_failed(tmp_path):
    store = JobStore(tmp_path)
    first = store.submit(REQUEST)
    waiting = store.submit(REQUEST)
    assert store.next_queued().id == first.id  # running when the bridge dies
    store.close()

    store = JobStore(tmp_path)
    requeued, failed = store.recover()
    assert [job.id for job in requeued] == [first.id] and not failed
    assert store.next_queued().attempts == MAX_ATTEMPTS  # and dies again
    store.close()

    store = JobStore(tmp_path)
    requeued, failed = store.recover()
    assert not requeued and [job.id for job in failed] == [first.id]
    assert failed[0].error_code == "interrupted" and "stopped 2 times" in failed[0].error_message
    assert store.get(waiting.id).state == "queued"  # never started: still waiting its turn
    store.close()


def test_cancel_only_takes_queued_jobs(store):
    job = store.submit(REQUEST)
    assert store.cancel_queued(job.id)
    assert store.get(job.id).state == "cancelled" and status(store, job)["state"] == "cancelled"
    other = store.submit(REQUEST)
    store.next_queued()
    assert not store.cancel_queued(other.id)


def test_unknown_ids(store):
    with pytest.raises(JobError) as err:
        store.get("nope")
    assert err.value.code == "unknown_job"
