"""Time one generation phase by phase, in a process of its own so that its memory is the bridge's alone.

`python -m accompgen_bridge.timing BUNDLE VOCAL SECONDS [--device D] [--variations N]` prints one JSON object:
seconds per phase, the whole run, and the process's peak resident memory. `accompgen bench` calls it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from accompgen_bridge.engine import Engine
from accompgen_bridge.job_request import GenerateRequest


def time_phases(engine: Engine, request: GenerateRequest) -> dict[str, float]:
    """Seconds spent in each phase, from the progress callback's timestamps."""
    marks: dict[str, list[float]] = {}
    start = time.perf_counter()
    engine.generate(request, lambda phase, _f: marks.setdefault(phase, []).append(time.perf_counter()))
    end = time.perf_counter()
    phases = list(marks)
    # a phase runs from the last report of the phase before it to its own last report
    bounds = [start] + [marks[p][-1] for p in phases]
    timings = {phase: bounds[i + 1] - bounds[i] for i, phase in enumerate(phases)}
    timings["total"] = end - start
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle")
    parser.add_argument("vocal")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variations", type=int, default=1)
    args = parser.parse_args(argv)
    engine = Engine(args.bundle, args.device)
    request = GenerateRequest(args.vocal, 0.0, args.seconds, seed=0, variations=args.variations)
    engine.generate(dataclasses.replace(request, duration_s=min(args.seconds, 0.5)))  # warm up the sessions
    timings = time_phases(engine, request)
    json.dump({"seconds": timings, "peak_rss_mb": peak_rss_mb(), "providers": engine.device.providers}, sys.stdout)


def peak_rss_mb() -> float:
    """Peak resident memory of this process. On Linux from VmHWM, which starts afresh at exec (ru_maxrss would
    carry over the forking parent's peak)."""
    import psutil

    info = psutil.Process().memory_info()
    if hasattr(info, "peak_wset"):  # Windows
        return float(info.peak_wset) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(info.rss) / 2**20  # no peak available: the current size


if __name__ == "__main__":
    main()
