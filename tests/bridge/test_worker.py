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
    worker = Worker(
        state, served, "cpu", lambda job_id, message, final: notes.append((message, final)), threading.Event()
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


def test_a_bundle_whose_graphs_do_not_load_fails_its_jobs_with_the_reason(state, tiny_bundle, vocal, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "stage_fine.onnx").write_bytes(b"not a graph")
    worker, notes = worker_for(state, broken)
    job = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1))  # stored before bundles were named
    worker.run()  # returns at once: nothing to serve with
    error = state.engine_errors["broken"]
    assert "graphs of bundle broken could not be loaded" in error and "stage_fine.onnx" in error
    assert state.store.get(job.id).state == "failed"
    assert notes == [(("/accompgen/error", [job.id, "internal", error]), True)]


def test_the_other_bundles_serve_on_beside_a_broken_one(state, tiny_bundle, vocal, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "stage_fine.onnx").write_bytes(b"not a graph")
    worker, notes = worker_for(state, tiny_bundle, broken)
    for_broken = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle="broken"))
    engines = worker.load_engines()
    assert list(engines) == [tiny_bundle.name] and state.store.get(for_broken.id).state == "failed"
    assert notes == [(("/accompgen/error", [for_broken.id, "internal", state.engine_errors["broken"]]), True)]
    job = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle=tiny_bundle.name))
    worker.run_job(engines[tiny_bundle.name], state.store.next_queued())
    assert state.store.get(job.id).state == "done"


def test_a_stored_job_for_a_bundle_no_longer_served_fails_with_the_ones_served(state, tiny_bundle, vocal):
    stopping = threading.Event()
    notes = []

    def notify(job_id, message, final):
        notes.append(message)
        stopping.set()

    job = state.store.submit(GenerateRequest(str(vocal), 0.0, 0.2, seed=1, bundle="gone"))
    Worker(state, {tiny_bundle.name: tiny_bundle}, "cpu", notify, stopping).run()
    assert state.store.get(job.id).error_code == "bad_argument"
    assert notes == [("/accompgen/error", [job.id, "bad_argument", state.store.get(job.id).error_message])]
    assert f"bundle gone is not served by this bridge any more (it serves {tiny_bundle.name})" in notes[0][1][2]


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
