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
    outputs = OutputPolicy.create(tmp_path / "state" / "outputs")
    yield BridgeState(store=store, outputs=outputs, max_duration_s=60.0, bundles={"tiny": "tiny, fp32"})
    store.close()


def worker_for(state, *bundles):
    notes = []
    served = {bundle.name: bundle for bundle in bundles}
    state.bundles = dict.fromkeys(served, "")
    worker = Worker(
        state, served, "cpu", lambda job_id, message, final: notes.append((message, final)), threading.Event()
    )
    return worker, notes


@pytest.fixture
def broken(tiny_bundle, tmp_path):
    """The tiny bundle with a graph that is no graph."""
    folder = tmp_path / "broken"
    shutil.copytree(tiny_bundle, folder)
    (folder / "stage_fine.onnx").write_bytes(b"not a graph")
    return folder


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


def test_a_bundle_whose_graphs_do_not_load_fails_its_jobs_with_the_reason(state, broken, vocal):
    worker, notes = worker_for(state, broken)
    job = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1))  # stored before bundles were named
    gone = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle="gone"))
    worker.run()  # returns at once: nothing to serve with
    assert state.engine_errors["broken"].startswith("its graphs could not be loaded: ")
    assert "stage_fine.onnx" in state.engine_errors["broken"]
    why = f"bundle broken cannot be served: {state.engine_errors['broken']}"
    assert notes[0] == (("/accompgen/error", [job.id, "internal", why]), True)
    assert notes[1][0][1][1:] == [
        "bad_argument",
        "bundle 'gone' is not served: this bridge serves broken (start it with --bundle FOLDER to serve another)",
    ]
    assert {state.store.get(j.id).state for j in (job, gone)} == {"failed"}


def test_the_other_bundles_serve_on_beside_a_broken_one(state, tiny_bundle, broken, vocal):
    stopping, finals = threading.Event(), []

    def notify(job_id, message, final):
        finals.extend([message] if final else [])
        if len(finals) == 2:
            stopping.set()

    state.bundles = {tiny_bundle.name: "", "broken": ""}
    for_broken = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle="broken"))
    for_tiny = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle=tiny_bundle.name))
    Worker(state, {tiny_bundle.name: tiny_bundle, "broken": broken}, "cpu", notify, stopping).run()
    assert finals[0][1][:2] == [for_broken.id, "internal"] and "bundle broken cannot be served" in finals[0][1][2]
    assert finals[1][0] == "/accompgen/done" and finals[1][1][0] == for_tiny.id


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
