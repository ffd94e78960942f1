"""The worker with the real engine on the tiny bundle, its messages recorded instead of sent."""

import shutil
import threading

import pytest

from accompgen_bridge.engine import Engine
from accompgen_bridge.handlers import BridgeState
from accompgen_bridge.job_request import GenerateRequest
from accompgen_bridge.jobs import JobStore
from accompgen_bridge.outputs import OutputPolicy
from accompgen_bridge.worker import Worker


@pytest.fixture
def state(tmp_path):
    store = JobStore(tmp_path / "state")
    yield BridgeState(store=store, outputs=OutputPolicy.create(tmp_path / "state" / "outputs"), max_duration_s=60.0)
    store.close()


def worker_for(state, bundle):
    notes = []
    worker = Worker(
        state, bundle, "cpu", lambda job_id, message, final: notes.append((message, final)), threading.Event()
    )
    return worker, notes


def test_even_a_short_job_reports_progress_before_it_is_done(state, tiny_bundle, vocal):
    worker, notes = worker_for(state, tiny_bundle)
    state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1))
    worker.run_job(Engine(tiny_bundle, "cpu"), state.store.next_queued())
    addresses = [message[0] for message, _ in notes]
    assert addresses[0] == "/accompgen/progress" and addresses[-1] == "/accompgen/done"
    assert [final for _, final in notes] == [False] * (len(notes) - 1) + [True]


def test_a_failing_job_fails_alone_and_the_worker_takes_the_next(state, tiny_bundle, vocal, tmp_path):
    worker, notes = worker_for(state, tiny_bundle)
    engine = Engine(tiny_bundle, "cpu")
    gone = tmp_path / "gone.wav"
    shutil.copy(vocal, gone)
    state.store.submit(GenerateRequest(str(gone), 0.0, 0.2, seed=1))
    gone.unlink()  # after the submit checks: the job meets it at run time
    state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=2))
    for _ in range(2):
        worker.run_job(engine, state.store.next_queued())
    finals = [message for message, final in notes if final]
    assert [message[0] for message in finals] == ["/accompgen/error", "/accompgen/done"]
    assert finals[0][1][1] == "missing_file"


def test_a_bundle_whose_graphs_do_not_load_fails_the_queue_with_the_reason(state, tiny_bundle, vocal, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "stage_fine.onnx").write_bytes(b"not a graph")
    worker, notes = worker_for(state, broken)
    job = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1))
    worker.run()  # returns at once: nothing to serve with
    assert "could not be loaded" in state.engine_error and "stage_fine.onnx" in state.engine_error
    assert state.store.get(job.id).state == "failed"
    assert notes == [(("/accompgen/error", [job.id, "internal", state.engine_error]), True)]


class EngineWithABug(Engine):
    """The real engine, with a bug that strikes jobs with seed 1."""

    def generate(self, request, progress=None):
        if request.seed == 1:
            raise RuntimeError("a bug")
        return super().generate(request, progress)


def test_a_bug_fails_its_job_as_internal_and_the_worker_carries_on(state, tiny_bundle, vocal):
    worker, notes = worker_for(state, tiny_bundle)
    engine = EngineWithABug(tiny_bundle, "cpu")
    for seed in (1, 2):
        state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=seed))
    for _ in range(2):
        worker.run_job(engine, state.store.next_queued())
    finals = [message for message, final in notes if final]
    assert [message[0] for message in finals] == ["/accompgen/error", "/accompgen/done"]
    assert finals[0][1][1:] == ["internal", "RuntimeError: a bug"]
