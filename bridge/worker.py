"""The worker thread: runs queued jobs one at a time, from the typed request to WAVs on disk.

It cannot die silently: an exception in a job fails that job with `internal` and the worker carries on; a bundle
whose graphs cannot be loaded fails every job for it with that reason and makes the bridge answer every request
for it with it, instead of queueing forever (the other bundles serve on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from accompgen.core.bundle import Manifest
from accompgen_bridge.engine import Cancelled, Engine
from accompgen_bridge.errors import INTERNAL, JobError
from accompgen_bridge.handlers import BridgeState, Running, bundle_problem
from accompgen_bridge.jobs import CANCELLED, DONE, FAILED, QUEUED, Job
from accompgen_bridge.osc import Message
from accompgen_bridge.outputs import write_outputs

log = logging.getLogger(__name__)

POLL_S = 0.5  # the worker looks for queued jobs this often when nothing wakes it
STATUS_WRITE_S = 0.25  # the status file is rewritten at most this often during a job

Notify = Callable[[str, Message, bool], None]  # (job id, message, final): thread-safe, to the job's listeners


class Worker:
    def __init__(
        self,
        state: BridgeState,
        bundles: dict[str, Path],
        device: str,
        notify: Notify,
        stopping: threading.Event,
        manifests: dict[str, Manifest] | None = None,
    ):
        """`bundles`: name -> folder, the default first; `manifests`: theirs, already loaded and checked."""
        self.state, self.bundles, self.device, self.manifests = state, bundles, device, manifests or {}
        self.notify, self.stopping = notify, stopping
        self.engines: dict[str, Engine] = {}

    def run(self) -> None:
        """Load the default bundle's graphs at once (the others when a job first needs them), fail the jobs no
        bundle can run, then run the queue."""
        self.engine_for(next(iter(self.bundles)))
        for waiting in self.state.store.unfinished():
            problem = bundle_problem(self.state, self.bundle_of(waiting))
            if problem is not None:
                self._fail(waiting.id, problem.code, str(problem))
        if set(self.bundles) <= set(self.state.engine_errors):
            return  # nothing can generate: every request is answered with the reasons
        while not self.stopping.is_set():
            job = self.state.store.next_queued()
            if job is None:
                self.state.job_waiting.wait(POLL_S)
                self.state.job_waiting.clear()
                continue
            try:
                engine = self.engine_for(self.bundle_of(job))
                if engine is None:
                    problem = bundle_problem(self.state, self.bundle_of(job))
                    assert problem is not None
                    self._fail(job.id, problem.code, str(problem))
                else:
                    self.run_job(engine, job)
            except Exception as err:  # a failure while reporting the outcome: the job must still end
                log.exception("job %s could not be finished", job.id)
                self._fail(job.id, INTERNAL, f"{type(err).__name__}: {err}")

    def engine_for(self, name: str) -> Engine | None:
        """The bundle's sessions, created on first use and kept (one bundle in memory until a job asks for
        another); None when it cannot generate, with the reason in the state."""
        if name not in self.engines and bundle_problem(self.state, name) is None:
            try:
                self.engines[name] = Engine(self.bundles[name], self.device, self.manifests.get(name))
            except Exception as err:
                self.state.engine_errors[name] = f"its graphs could not be loaded: {err}"
                log.exception("cannot load the graphs of bundle %s", name)
        return self.engines.get(name)

    def bundle_of(self, job: Job) -> str:
        """Jobs stored before requests named their bundle ran with the one bundle served then: the default."""
        return job.request.bundle or next(iter(self.bundles))

    def run_job(self, engine: Engine, job: Job) -> None:
        running = self.state.running = Running(job.id)
        self.notify(job.id, ("/accompgen/progress", [job.id, running.stage, 0.0]), False)  # at least one per job
        last_write = 0.0

        def progress(stage: str, fraction: float) -> None:
            nonlocal last_write
            if running.cancel.is_set() or self.stopping.is_set():
                raise Cancelled
            running.stage, running.fraction = stage, fraction
            if time.monotonic() - last_write >= STATUS_WRITE_S:
                last_write = time.monotonic()
                self.state.store.update(job.id, stage=stage, fraction=fraction)

        request = job.request
        try:
            result = engine.generate(request, progress)
            directory = self.state.outputs.directory(request.output_dir, request.local)  # again: links change
            stem = Path(request.input_path).stem
            outputs = write_outputs(directory, stem, job.id, result.audio, result.sample_rate, result.seeds)
        except Cancelled:
            self.state.running = None
            self._stopped(job, running)
            return
        except JobError as err:
            self.state.running = None
            self._fail(job.id, err.code, str(err))
            return
        except Exception as err:
            log.exception("job %s failed", job.id)
            self.state.running = None
            self._fail(job.id, INTERNAL, f"{type(err).__name__}: {err}")
            return
        self.state.running = None  # before the job's last reply, so that no heartbeat follows it
        self.state.store.update(job.id, state=DONE, stage="done", fraction=1.0, outputs=outputs)
        self.notify(job.id, ("/accompgen/done", [job.id, *outputs]), True)

    def _stopped(self, job: Job, running: Running) -> None:
        if self.stopping.is_set() and not running.cancel.is_set():
            # a clean shutdown is no failure: the job goes back to the queue without using up an attempt
            self.state.store.update(job.id, state=QUEUED, stage="", fraction=0.0, attempts=job.attempts - 1)
            return
        self.state.store.update(job.id, state=CANCELLED)
        self.notify(job.id, ("/accompgen/cancelled", [job.id]), True)

    def _fail(self, job_id: str, code: str, message: str) -> None:
        self.state.store.update(job_id, state=FAILED, error_code=code, error_message=message)
        self.notify(job_id, ("/accompgen/error", [job_id, code, message]), True)
