"""`accompgen-bridge`: serve DAWs, generate from a shell, or talk to a running bridge (one JSON object per call)."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

from accompgen import __version__
from accompgen.core.decoding import REQUEST_LIMITS, SamplingOptions
from accompgen.core.errors import UserError
from accompgen_bridge.errors import JobError
from accompgen_bridge.jobs import write_json_atomic
from accompgen_bridge.paths import (
    ADDRESS_FILE,
    DEFAULT_OSC_PORT,
    DEFAULT_TCP_PORT,
    LOG_FILE,
    default_state_dir,
    read_address,
)
from accompgen_bridge.providers import DEVICES

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_BYTES = 1 << 20  # per file; one older file is kept beside it


def log_to_state_dir(state_dir: Path) -> None:
    """`serve` also logs to STATE_DIR/bridge.log: a bridge a DAW started has no console to read."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        state_dir / LOG_FILE, maxBytes=LOG_BYTES, backupCount=1, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)


def serve(args: argparse.Namespace) -> None:
    from accompgen_bridge.server import ServerConfig
    from accompgen_bridge.server import serve as run_server

    log_to_state_dir(args.state_dir)
    config = ServerConfig(
        bundles=tuple(args.bundle),
        state_dir=args.state_dir,
        serve_found=args.found or not args.bundle,
        host=args.host,
        osc_port=args.osc_port,
        tcp_port=args.tcp_port,
        token=args.token,
        device=args.device,
        max_duration_s=args.max_duration,
        max_queue=args.max_queue,
        allowed_output_dirs=tuple(args.allow_output_dir),
        keep_days=args.keep_days,
    )
    try:
        run_server(config)
    except UserError as err:  # a bridge a DAW started has no console: its log must say why it stopped
        logging.getLogger(__name__).error("cannot serve: %s", err)
        raise


def generate(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from accompgen_bridge.audio import write_wav
    from accompgen_bridge.engine import Engine
    from accompgen_bridge.job_request import GenerateRequest, draw_seed

    engine = Engine(args.bundle, args.device)
    request = GenerateRequest(
        input_path=str(args.vocal),
        start_s=args.start,
        duration_s=region_duration(args, args.vocal),
        seed=args.seed if args.seed is not None else draw_seed(),
        cfg_scale=args.cfg_scale,
        temperature=args.temperature,
        top_k=args.top_k,
        variations=args.variations or 1,
        quality=args.quality or "full",
        sample_rate=args.sample_rate,
    )
    columns = (TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True)) as bar:  # stdout: the paths
        task = bar.add_task("encode", total=1.0)
        result = engine.generate(request, lambda phase, f: bar.update(task, completed=f, description=phase))
    outputs = output_paths(args.output, len(result.seeds))
    for path, row in zip(outputs, result.audio, strict=True):
        write_wav(path, row, result.sample_rate)
        print(path)


def region_duration(args: argparse.Namespace, vocal: str | Path) -> float:
    """--duration, or from --start to the end of the file."""
    from accompgen_bridge.audio import probe

    if args.duration is not None:
        return float(args.duration)
    return probe(vocal)[1] - float(args.start)


def output_paths(output: Path, variations: int) -> list[Path]:
    """OUT for one variation; OUT-1, OUT-2, ... (before the suffix) for several."""
    if variations == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i + 1}{output.suffix or '.wav'}") for i in range(variations)]


def client_for(args: argparse.Namespace) -> Any:
    """A client for the bridge of --host/--port, or else the one serving --state-dir (its bridge.json)."""
    from accompgen_bridge.client import BridgeClient

    port = args.port
    if port is None and args.host != "127.0.0.1":
        port = DEFAULT_TCP_PORT
    address = read_address(args.state_dir)
    if port is None:
        if address is None:
            raise UserError(
                f"no bridge is listening: none has written bridge.json to {args.state_dir}. "
                "Start one with `accompgen-bridge serve`, or give --port"
            )
        port = address["tcp_port"]
    # the bridge of this state dir: its local key says this request comes from the user who started it
    same_bridge = address is not None and address["tcp_port"] == port and args.host == address["host"]
    local_key = address.get("local_key") if address is not None and same_bridge else None
    return BridgeClient(args.host, port, args.timeout, args.token, local_key)


def reply_json(reply: tuple[str, list[Any]], fields: list[str]) -> dict[str, Any]:
    address, values = reply
    if address == "/accompgen/error":
        _job_id, code, message = values
        raise JobError(code, message)
    return dict(zip(fields, values, strict=False))


SUBMIT_KEYS = (
    "seed",
    "cfg_scale",
    "temperature",
    "top_k",
    "variations",
    "quality",
    "sample_rate",
    "output_dir",
    "bundle",
)


def submit(args: argparse.Namespace) -> dict[str, Any]:
    if (args.vocal is None) == (args.request is None):
        raise UserError("give the vocal file, or --request FILE, not both")
    if args.request is not None:
        return submit_request_file(args)
    vocal = str(Path(args.vocal).resolve())
    pairs: list[Any] = []
    for key in SUBMIT_KEYS:
        value = getattr(args, key)
        if value is not None:
            pairs += [key, str(Path(value).resolve()) if key == "output_dir" else value]
    return send_generate(args, [vocal, float(args.start), region_duration(args, vocal), *pairs])


def submit_request_file(args: argparse.Namespace) -> dict[str, Any]:
    """A request written as JSON by a script, so that paths with quotes, spaces or any letters never pass through
    a command line: {"input_path": ..., "start_s": ..., "duration_s": ..., "seed": ..., "output_dir": ...}."""
    try:
        fields = json.loads(Path(args.request).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the request file {args.request}: {err}") from err
    if not isinstance(fields, dict) or not {"input_path", "start_s", "duration_s"} <= set(fields):
        raise UserError(f"{args.request} must hold an object with input_path, start_s and duration_s")
    pairs = [item for key in SUBMIT_KEYS if fields.get(key) is not None for item in (key, fields[key])]
    return send_generate(args, [fields["input_path"], fields["start_s"], fields["duration_s"], *pairs])


def send_generate(args: argparse.Namespace, message: list[Any]) -> dict[str, Any]:
    reply = client_for(args).call("/accompgen/generate", message, ("/accompgen/accepted",))
    return reply_json(reply, ["job_id", "status_file"])


def status(args: argparse.Namespace) -> dict[str, Any]:
    reply = client_for(args).call("/accompgen/status", [args.job_id], ("/accompgen/status",))
    result = reply_json(reply, ["job_id", "state", "fraction"])
    address = read_address(args.state_dir)
    status_file = args.state_dir / "status" / f"{args.job_id}.json"
    if address and status_file.is_file():  # the same bridge: add stage, outputs and error from the status file
        result = {**json.loads(status_file.read_text()), **result}
    return result


def cancel(args: argparse.Namespace) -> dict[str, Any]:
    """One job, or several at once (one process for a whole batch); a job that has ended is reported, not an
    error, when several are given."""
    client, results = client_for(args), []
    for job_id in args.job_ids:
        try:
            reply = client.call("/accompgen/cancel", [job_id], ("/accompgen/cancelled",))
            results.append({**reply_json(reply, ["job_id"]), "state": "cancelled"})
        except JobError as err:
            if len(args.job_ids) == 1:
                raise
            results.append({"job_id": job_id, "error": err.code, "message": str(err)})
    return results[0] if len(results) == 1 else {"jobs": results}


def ping(args: argparse.Namespace) -> dict[str, Any]:
    """The bridge's version and the bundles it serves, the default first; for the bridge of --state-dir also its
    device and each bundle's folder (from bridge.json, which only its user reads). `bundles` is null for a bridge
    too old to list them."""
    client = client_for(args)
    version = reply_json(client.call("/accompgen/ping", [], ("/accompgen/pong",)), ["version"])
    reply: dict[str, Any] = {**version, "host": client.host, "port": client.port, "bundles": None}
    address, listed = client.call("/accompgen/bundles", [], ("/accompgen/bundles",))
    if address == "/accompgen/error" or len(listed) % 2:
        return reply
    local = read_address(args.state_dir)
    if local is None or local["tcp_port"] != client.port or local["host"] != client.host:
        local = {}
    folders = local.get("bundles", {})
    reply["bundles"] = [
        {"name": name, "summary": summary, **({"path": folders[name]} if name in folders else {})}
        for name, summary in zip(listed[0::2], listed[1::2], strict=True)
    ]
    if "device" in local:
        reply["device"] = local["device"]
    return reply


def stop(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the bridge of --state-dir to stop (its own user only) and wait until it has."""
    address = read_address(args.state_dir)
    reply = client_for(args).call("/accompgen/stop", [], ("/accompgen/stopping",))
    reply_json(reply, ["version"])
    deadline = time.monotonic() + args.timeout
    while (args.state_dir / ADDRESS_FILE).exists():  # removed by the bridge once it has stopped
        if time.monotonic() > deadline:
            raise UserError(f"the bridge was asked to stop but still runs after {args.timeout:g} s")
        time.sleep(0.05)
    return {"stopped": True, "pid": address["pid"] if address else None}


def bundles(args: argparse.Namespace) -> dict[str, Any]:
    """The bundles found where a bridge looks without a path, and the devices this machine can run them on."""
    from accompgen_bridge.bundles import bundle_folders, find_bundles
    from accompgen_bridge.providers import usable_devices

    folders = bundle_folders(args.state_dir)
    return {
        "bundles": [found.to_dict() for found in find_bundles(folders)],
        "folders": [str(folder) for folder in folders],
        "devices": usable_devices(),
    }


def show_log(args: argparse.Namespace) -> dict[str, Any]:
    """The end of the bridge's log, for a DAW script that cannot read a console."""
    path = args.state_dir / LOG_FILE
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 64 * 1024))
            lines = file.read().decode("utf-8", "replace").splitlines()[-args.lines :]
    except FileNotFoundError:
        raise UserError(f"no bridge has logged to {path} yet: start one with `accompgen-bridge serve`") from None
    return {"log_file": str(path), "lines": lines}


def play(args: argparse.Namespace) -> None:
    from accompgen_bridge.playback import play_files

    play_files(args.output, args.with_vocal)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the bridge's address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="its TCP port (default: from the state dir's bridge.json, else 9001)")
    parser.add_argument("--token", help="the bridge's --token, if it has one")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    add_reply_option(parser)


def add_reply_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reply", type=Path, help="also write the JSON answer to this file, atomically (for callers that do not wait)"
    )


def _limits(name: str) -> str:
    low, high = REQUEST_LIMITS[name]
    return f"{low:g} to {high:g}"


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    defaults = SamplingOptions()
    parser.add_argument("--start", type=float, default=0.0, help="region start in seconds (default 0)")
    parser.add_argument("--duration", type=float, help="region length in seconds (default: to the end)")
    parser.add_argument("--seed", type=int, help=f"seed of the first variation, {_limits('seed')} (default: random)")
    parser.add_argument(
        "--cfg-scale",
        dest="cfg_scale",
        type=float,
        help=f"guidance lambda, {_limits('cfg_scale')} (default: the bundle's, {defaults.cfg_scale:g} as exported)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        help=f"sampling temperature, {_limits('temperature')} "
        f"(default: the bundle's, {defaults.temperature:g} as exported)",
    )
    parser.add_argument(
        "--top-k", dest="top_k", type=int, help=f"top-k filter (default: the bundle's, {defaults.top_k} as exported)"
    )
    parser.add_argument("--variations", type=int, help=f"how many accompaniments, {_limits('variations')} (default 1)")
    parser.add_argument("--quality", choices=("full", "preview"), help="preview: coarse codebooks only, faster")
    parser.add_argument("--sample-rate", dest="sample_rate", type=int, help="output rate (default: the input's)")


def add_global_options(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """--state-dir and --log-level, accepted before the subcommand (where the defaults live) and after it."""

    def default(value: Any) -> Any:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--state-dir", type=Path, default=default(default_state_dir()), help="job database and status files"
    )
    parser.add_argument("--log-level", default=default("info"), choices=("debug", "info", "warning", "error"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accompgen-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"accompgen-bridge {__version__}")
    add_global_options(parser, with_defaults=True)
    everywhere = argparse.ArgumentParser(add_help=False)
    add_global_options(everywhere, with_defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser = functools.partial(commands.add_parser, parents=[everywhere])  # type: ignore[method-assign]

    p = commands.add_parser("serve", help="serve OSC over UDP and TCP")
    p.add_argument(
        "--bundle",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="a bundle written by `accompgen export`, or a folder of them; repeat for more; the first is the "
        "default (without --bundle: every bundle installed and in STATE_DIR/bundles)",
    )
    p.add_argument(
        "--found", action="store_true", help="with --bundle: also every bundle installed and in STATE_DIR/bundles"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind; anything but loopback needs --token")
    p.add_argument("--osc-port", type=int, default=DEFAULT_OSC_PORT, help="OSC over UDP (default 9000; 0 = any)")
    p.add_argument("--tcp-port", type=int, default=DEFAULT_TCP_PORT, help="OSC over TCP, SLIP (default 9001; 0 = any)")
    p.add_argument("--token", help="shared secret every message must end with: token <value>")
    p.add_argument("--device", default="auto", choices=DEVICES, help="execution provider (default: fastest present)")
    p.add_argument("--max-duration", type=float, default=600.0, help="longest region in seconds (default 600)")
    p.add_argument("--max-queue", type=int, default=16, help="unfinished jobs before `busy` (default 16)")
    p.add_argument(
        "--allow-output-dir",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="a folder (and those inside it) a request's output_dir may name; repeat for more (default: only the "
        "state dir's outputs/)",
    )
    p.add_argument("--keep-days", type=float, default=7.0, help="delete outputs/ WAVs older than this at start")
    p.set_defaults(run=serve, prints_json=False)

    p = commands.add_parser("generate", help="generate without a server, with a progress bar")
    p.add_argument("vocal", type=Path, help="the vocal audio file")
    p.add_argument("-o", "--output", required=True, type=Path, help="WAV file to write")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--device", default="auto", choices=DEVICES)
    add_sampling_options(p)
    p.set_defaults(run=generate, prints_json=False)

    p = commands.add_parser("submit", help="queue a job on a running bridge; prints job_id and status_file")
    p.add_argument("vocal", nargs="?", help="the vocal audio file")
    p.add_argument("--request", type=Path, help="the whole request as a JSON file instead (for scripts)")
    p.add_argument("--output-dir", dest="output_dir", help="where the WAVs go (default: the bridge's outputs/)")
    p.add_argument("--bundle", metavar="NAME", help="which of the bridge's bundles (default: its first; see ping)")
    add_sampling_options(p)
    add_client_options(p)
    p.set_defaults(run=submit, prints_json=True)

    p = commands.add_parser("status", help="state of a job")
    p.add_argument("job_id")
    add_client_options(p)
    p.set_defaults(run=status, prints_json=True)

    p = commands.add_parser("cancel", help="cancel jobs")
    p.add_argument("job_ids", nargs="+", metavar="job_id")
    add_client_options(p)
    p.set_defaults(run=cancel, prints_json=True)

    p = commands.add_parser("ping", help="is a bridge running? prints its version and the bundles it serves")
    add_client_options(p)
    p.set_defaults(run=ping, prints_json=True)

    p = commands.add_parser("stop", help="stop the running bridge (only the user who started it can)")
    add_client_options(p)
    p.set_defaults(run=stop, prints_json=True)

    p = commands.add_parser("bundles", help="the bundles installed and in STATE_DIR/bundles, and the devices here")
    add_reply_option(p)
    p.set_defaults(run=bundles, prints_json=True)

    p = commands.add_parser("log", help="the end of the bridge's log file (STATE_DIR/bridge.log)")
    p.add_argument("--lines", type=int, default=40, help="how many lines (default 40)")
    add_reply_option(p)
    p.set_defaults(run=show_log, prints_json=True)

    p = commands.add_parser("play", help="listen to an output (and the vocal beside it)")
    p.add_argument("output", type=Path)
    p.add_argument("--with", dest="with_vocal", type=Path, help="the vocal to play along")
    p.set_defaults(run=play, prints_json=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        result = args.run(args)
        code = 0
    except UserError as err:
        if not args.prints_json:
            print(f"error: {err}", file=sys.stderr)
            return 2
        result, code = {"error": getattr(err, "code", "error"), "message": str(err)}, 2
    except KeyboardInterrupt:
        return 130
    if args.prints_json:
        print(json.dumps(result))
        if getattr(args, "reply", None) is not None:
            write_json_atomic(args.reply, result)
    return code


if __name__ == "__main__":
    sys.exit(main())
