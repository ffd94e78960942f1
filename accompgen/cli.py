"""The `accompgen` command line: model facts, export, verification, training and the end-to-end demo."""

from __future__ import annotations

import argparse
import json
import sys

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


def demo(args: argparse.Namespace) -> None:
    raise UserError("the end-to-end demo is not yet available: it needs the ONNX export and the bridge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accompgen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"accompgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("model-info", help="parameters per stage and in total")
    info.add_argument("config", help="preset name (tiny, small, base) or a YAML file")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run=model_info)

    commands.add_parser("demo", help="generate an accompaniment for a synthesized phrase").set_defaults(run=demo)
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
