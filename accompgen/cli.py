"""The `accompgen` command line: model facts, export, verification, training and the end-to-end demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accompgen import __version__
from accompgen.config import ModelConfig
from accompgen.errors import UserError


def model_info(args: argparse.Namespace) -> None:
    import torch

    from accompgen.model import build_stages

    config = ModelConfig.load(args.config)
    with torch.device("meta"):  # shapes only: counting needs no memory and no initialisation
        stages = build_stages(config)
    report = {
        "config": config.name,
        "vocab_size": config.tokens.vocab_size,
        "stages": {
            name: {
                "params": model.num_parameters(),
                "layers": model.cfg.n_layers,
                "d_model": model.cfg.d_model,
                "heads": model.cfg.n_heads,
            }
            for name, model in stages.items()
        },
    }
    report["total"] = sum(stage["params"] for stage in report["stages"].values())
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"config {config.name}: vocabulary {config.tokens.vocab_size} ids")
    for name, stage in report["stages"].items():
        shape = f"{stage['layers']} layers x {stage['d_model']} wide, {stage['heads']} heads"
        print(f"  {name:<9} {stage['params']:>13,} parameters  ({shape})")
    print(f"  {'total':<9} {report['total']:>13,} parameters")


def export(args: argparse.Namespace) -> None:
    from rich.console import Console

    from accompgen.model_dir import load_model_dir, random_parts
    from accompgen_export.bundle_writer import write_bundle

    if (args.model_dir is None) == (not args.random_init):
        raise UserError("give either --model-dir DIR (a trained model) or --config NAME --random-init")
    console = Console(stderr=True)
    with console.status("loading the model") as status:
        parts = (
            load_model_dir(args.model_dir) if args.model_dir else random_parts(ModelConfig.load(args.config), args.seed)
        )
        manifest = write_bundle(
            parts,
            args.out,
            fp16=args.fp16,
            overwrite=args.overwrite,
            progress=lambda graph: status.update(f"exporting {graph}"),
        )
    console.print(f"wrote {manifest.precision} bundle of {manifest.model} to {args.out}")


def verify(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from accompgen.model_dir import load_model_dir
    from accompgen_export.verify import verify_bundle

    console = Console()
    with console.status("verifying") as status:
        parts = load_model_dir(args.model_dir) if args.model_dir else None
        checks = verify_bundle(
            args.bundle, parts, device=args.device, progress=lambda graph: status.update(f"verifying {graph}")
        )
    table = Table("graph", "metric", "value", "limit", "result")
    for check in checks:
        bound = ">=" if check.higher_is_better else "<="
        verdict = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        table.add_row(check.graph, check.metric, f"{check.value:.3g}", f"{bound} {check.limit:g}", verdict)
    console.print(table)
    failed = [check.graph for check in checks if not check.passed]
    if failed:
        raise UserError(f"onnxruntime and torch disagree past tolerance on {', '.join(failed)}")


def demo(args: argparse.Namespace) -> None:
    from accompgen.demo import print_summary, run_demo

    paths, trained = run_demo(args.out, args.bundle, args.seed)
    print_summary(paths, trained)


def bench(args: argparse.Namespace) -> None:
    import dataclasses

    from rich.console import Console

    from accompgen.bench import FULL, QUICK, run_bench

    settings = QUICK if args.quick else FULL
    overrides = {"config": args.config, "pasts": tuple(args.pasts) if args.pasts else None, "seconds": args.seconds}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_musicgen:
        settings = dataclasses.replace(settings, musicgen=False)
    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        run_bench(settings, args.out, progress=lambda text: status.update(text))
    print((args.out / "bench.md").read_text())
    print(f"wrote {args.out / 'bench.json'}, {args.out / 'bench.md'} and {args.out / 'bench.png'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accompgen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"accompgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("model-info", help="parameters per stage and in total")
    info.add_argument("config", help="preset name (tiny, small, base) or a YAML file")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=model_info)

    exp = commands.add_parser("export", help="write an ONNX bundle for the bridge")
    exp.add_argument("--model-dir", help="a trained model directory (config.yaml, kmeans.npy, stages/)")
    exp.add_argument("--config", default="tiny", help="preset or YAML file for --random-init (default: tiny)")
    exp.add_argument("--random-init", action="store_true", help="untrained random weights, for tests and demos")
    exp.add_argument("--seed", type=int, default=0, help="seed of --random-init")
    exp.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    exp.add_argument("--fp16", action="store_true", help="stage graphs in float16, for GPUs")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    exp.set_defaults(run=export)

    ver = commands.add_parser("verify", help="check a bundle against the torch model it came from")
    ver.add_argument("bundle", type=Path)
    ver.add_argument("--model-dir", help="the trained model (default: what the bundle's manifest records)")
    ver.add_argument("--device", default="auto", help="auto, tensorrt, cuda or cpu")
    ver.set_defaults(run=verify)

    ben = commands.add_parser("bench", help="our runtime against torch eager and MusicGen, in one run")
    ben.add_argument("--quick", action="store_true", help="tiny config, short pasts: under a minute on 2 cores")
    ben.add_argument("--config", help="preset or YAML (default: small; tiny with --quick)")
    ben.add_argument("--pasts", type=int, nargs="+", help="past lengths of the per-step table (default 256 1024 4096)")
    ben.add_argument("--seconds", type=float, help="audio generated end to end (default 10; 2 with --quick)")
    ben.add_argument("--no-musicgen", action="store_true", help="skip the MusicGen peer")
    ben.add_argument("--out", type=Path, default=Path("bench"), help="output folder (default bench)")
    ben.set_defaults(run=bench)

    dem = commands.add_parser("demo", help="a synthesized phrase through a real bridge: vocal, accompaniment, mix")
    dem.add_argument("--bundle", type=Path, help="a bundle to use (default: a tiny random-init one, cached)")
    dem.add_argument("--out", type=Path, default=Path("accompgen-demo"), help="output folder (default accompgen-demo)")
    dem.add_argument("--seed", type=int, default=0)
    dem.set_defaults(run=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
