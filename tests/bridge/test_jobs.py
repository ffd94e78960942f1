import json

import pytest

from accompgen_bridge.errors import JobError
from accompgen_bridge.jobs import MAX_ATTEMPTS, JobStore


@pytest.fixture
def store(tmp_path):
    store = JobStore(tmp_path, max_queue=3)
    yield store
    store.close()


def status(store, job):
    return json.loads(store.status_path(job.id).read_text())


def test_a_job_moves_through_its_states(store):
    job = store.submit({"input_path": "a.wav"})
    assert status(store, job)["state"] == "queued"
    running = store.next_queued()
    assert running.id == job.id and running.state == "running" and running.attempts == 1
    store.update(job.id, state="done", fraction=1.0, outputs=["/o.wav"])
    assert status(store, job) == {
        "job_id": job.id,
        "state": "done",
        "stage": "",
        "fraction": 1.0,
        "outputs": ["/o.wav"],
        "error_code": None,
        "error_message": None,
    }
    assert store.next_queued() is None


def test_the_queue_is_bounded_and_first_in_first_out(store):
    jobs = [store.submit({"n": i}) for i in range(3)]
    with pytest.raises(JobError) as err:
        store.submit({"n": 3})
    assert err.value.code == "busy"
    assert [store.next_queued().id for _ in range(3)] == [job.id for job in jobs]


def test_jobs_survive_a_restart_and_interrupted_ones_are_requeued_then_failed(tmp_path):
    store = JobStore(tmp_path)
    first = store.submit({"n": 1})
    waiting = store.submit({"n": 2})
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
    job = store.submit({})
    assert store.cancel_queued(job.id)
    assert store.get(job.id).state == "cancelled" and status(store, job)["state"] == "cancelled"
    other = store.submit({})
    store.next_queued()
    assert not store.cancel_queued(other.id)


def test_unknown_ids(store):
    with pytest.raises(JobError) as err:
        store.get("nope")
    assert err.value.code == "unknown_job"
