"""A recipe's stage training run by a launcher (torchrun and its options) instead of in the recipe's own process:
on several GPUs, or several machines, with DistributedDataParallel.

The launcher starts `accompgen train` with the stage's settings whole; the recipe shows its progress from the
stage's metrics file and keeps its output in RUN/logs/train-STAGE.log, whose first line is the command (the one
every other machine of a multi-node run starts too).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accompgen.core.errors import UserError
from accompgen.train.train_settings import TrainSettings, option_words

POLL_S = 2.0
STOP_WAIT_S = 60.0  # for the launched processes to stop after SIGTERM (a checkpoint may be being written)
TAIL_BYTES = 4096  # the end of the metrics file, enough for its last record


def training_command(
    launcher: Sequence[str], stage: str, model_dir: Path, tokens: Path, settings: TrainSettings
) -> list[str]:
    return [
        *launcher,
        "-m",
        "accompgen.apps.cli",
        "train",
        "--stage",
        stage,
        "--model-dir",
        str(model_dir.resolve()),
        "--data",
        str(tokens.resolve()),
        *option_words(settings),
    ]


def last_record(metrics: Path) -> dict[str, Any] | None:
    """The last whole step record (step and loss) of a metrics file being written, or None."""
    if not metrics.is_file():
        return None
    with metrics.open("rb") as file:
        file.seek(max(0, metrics.stat().st_size - TAIL_BYTES))
        lines = file.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written, or the cut first one
        if "loss" in record:  # not the replicas' digests that end a distributed run
            return record
    return None


def launch_training(
    launcher: Sequence[str],
    stage: str,
    model_dir: Path,
    tokens: Path,
    settings: TrainSettings,
    log_dir: Path,
    report: Callable[[float, float, str], None],
) -> None:
    command = training_command(launcher, stage, model_dir, tokens, settings)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"train-{stage}.log"
    metrics = model_dir / "logs" / f"{stage}.jsonl"
    with log_path.open("a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        try:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as err:
            raise UserError(
                f"--launcher {shlex.join(launcher)} could not start ({err}): is it installed here?"
            ) from err
        try:
            while process.poll() is None:
                time.sleep(POLL_S)
                record = last_record(metrics)
                if record is not None:
                    report(record["step"], settings.steps, f"loss {record['loss']:.3f}, under {launcher[0]}")
        except BaseException:
            # stopped (Ctrl-C, `kill`, an error while reporting): the training must not run on unseen
            process.terminate()
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if process.returncode != 0:
        raise UserError(
            f"the {stage} stage's training under {shlex.join(launcher)} stopped with exit status "
            f"{process.returncode}: see {log_path}. Run the recipe again to resume from its last checkpoint"
        )
