"""Jobs in SQLite: queued -> running -> done | failed | cancelled, surviving restarts; one status file per job.

A restart re-queues a job that was running when the bridge stopped; a job interrupted twice is failed with
that reason, so nothing is ever lost silently. The status file is what clients that cannot keep a socket
open (ReaScripts) poll: it is rewritten atomically on every change, and every second while the job is unfinished,
with the time of writing (`heartbeat`) and the bridge's pid, so that a reader can tell a live bridge from a dead one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accompgen.core.files import write_text_atomic
from accompgen_bridge.errors import BUSY, INTERRUPTED, UNKNOWN_JOB, JobError
from accompgen_bridge.job_request import GenerateRequest

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
MAX_ATTEMPTS = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    request TEXT NOT NULL,        -- the GenerateRequest as JSON
    created REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    fraction REAL NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '[]',
    error_code TEXT,
    error_message TEXT
)
"""


@dataclass
class Job:
    id: str
    state: str
    request: GenerateRequest
    attempts: int = 0
    stage: str = ""
    fraction: float = 0.0
    outputs: list[str] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None

    def status(self) -> dict[str, Any]:
        """What the status file and `accompgen-bridge status` show."""
        status = asdict(self)
        del status["request"], status["attempts"]
        status["job_id"] = status.pop("id")
        status["heartbeat"] = round(time.time(), 3)
        status["bridge_pid"] = os.getpid()
        return status


class JobStore:
    """Thread-safe: the server's event loop and the worker thread share one connection behind a lock."""

    def __init__(self, state_dir: Path, max_queue: int = 16):
        self.state_dir = Path(state_dir)
        self.status_dir = self.state_dir / "status"
        self.status_dir.mkdir(parents=True, exist_ok=True)
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.state_dir / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> tuple[list[Job], list[Job]]:
        """After a restart: jobs that were running go back to the queue, or fail after MAX_ATTEMPTS.
        Returns (requeued, failed)."""
        requeued, failed = [], []
        for job in self._select("state = ?", (RUNNING,)):
            if job.attempts >= MAX_ATTEMPTS:
                message = f"the bridge stopped {job.attempts} times while running this job; it was not retried"
                failed.append(self.update(job.id, state=FAILED, error_code=INTERRUPTED, error_message=message))
            else:
                requeued.append(self.update(job.id, state=QUEUED, stage="", fraction=0.0))
        return requeued, failed

    def submit(self, request: GenerateRequest) -> Job:
        """A new queued job, or JobError(busy) when the queue holds max_queue unfinished jobs."""
        with self._lock:
            (pending,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", (QUEUED, RUNNING)
            ).fetchone()
            if pending >= self.max_queue:
                raise JobError(BUSY, f"the bridge already holds {pending} jobs: try again when one has finished")
            job = Job(id=uuid.uuid4().hex[:16], state=QUEUED, request=request)
            now = time.time()
            self._db.execute(
                "INSERT INTO jobs (id, state, request, created, updated) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.state, request.to_json(), now, now),
            )
        self._write_status(job)
        return job

    def next_queued(self) -> Job | None:
        """The oldest queued job, now marked running (attempts counted), in one step under the lock so that a
        cancel cannot slip in between."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE state = ? ORDER BY created LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET state = ?, attempts = attempts + 1, stage = '', fraction = 0, updated = ?"
                " WHERE id = ?",
                (RUNNING, time.time(), row[0]),
            )
        job = self.get(row[0])
        self._write_status(job)
        return job

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel the job if it is still queued; False when it has started or ended meanwhile."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET state = ?, updated = ? WHERE id = ? AND state = ?",
                (CANCELLED, time.time(), job_id, QUEUED),
            ).rowcount
        if changed:
            self._write_status(self.get(job_id))
        return bool(changed)

    def get(self, job_id: str) -> Job:
        jobs = self._select("id = ?", (job_id,))
        if not jobs:
            raise JobError(UNKNOWN_JOB, f"no job {job_id!r} on this bridge")
        return jobs[0]

    def update(self, job_id: str, **changes: Any) -> Job:
        job = self.get(job_id)
        for key, value in changes.items():
            setattr(job, key, value)
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state=?, attempts=?, stage=?, fraction=?, outputs=?, error_code=?, error_message=?,"
                " updated=? WHERE id=?",
                (
                    job.state,
                    job.attempts,
                    job.stage,
                    job.fraction,
                    json.dumps(job.outputs),
                    job.error_code,
                    job.error_message,
                    time.time(),
                    job.id,
                ),
            )
        self._write_status(job)
        return job

    def unfinished(self) -> list[Job]:
        return self._select("state IN (?, ?)", (QUEUED, RUNNING))

    def beat(self) -> None:
        """Rewrite the status file of every unfinished job: its heartbeat says the bridge is alive."""
        for job in self.unfinished():
            self._write_status(job)

    def status_path(self, job_id: str) -> Path:
        return self.status_dir / f"{job_id}.json"

    def _select(self, where: str, params: tuple[str, ...]) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, state, request, attempts, stage, fraction, outputs, error_code, error_message"
                f" FROM jobs WHERE {where} ORDER BY created",
                params,
            ).fetchall()
        return [
            Job(
                id,
                state,
                GenerateRequest.from_json(request),
                attempts,
                stage,
                fraction,
                json.loads(outputs),
                code,
                message,
            )
            for id, state, request, attempts, stage, fraction, outputs, code, message in rows
        ]

    def _write_status(self, job: Job) -> None:
        write_json_atomic(self.status_path(job.id), job.status())


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of either; readable by this user only (bridge.json holds
    the local key)."""
    write_text_atomic(path, json.dumps(data), private=True)
