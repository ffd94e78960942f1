"""The `accompgen` command line: model facts, export, verification, training and the end-to-end demo."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from pathlib import Path

from accompgen import __version__
from accompgen.core.errors import UserError
from accompgen.model.config import ModelConfig
from accompgen.train.train_settings import add_train_options


def model_info(args: argparse.Namespace) -> None:
    import torch

    from accompgen.model.transformer import build_stages

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

    from accompgen.model.model_dir import load_model_dir, random_parts
    from accompgen_export.bundle_writer import ExportSettings, write_bundle

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
            ExportSettings(fp16=args.fp16, quantize=args.quantize, cache=args.cache),
            overwrite=args.overwrite,
            progress=lambda graph: status.update(f"exporting {graph}"),
        )
    weights = f", {manifest.quantization} weights" if manifest.quantization != "none" else ""
    console.print(f"wrote {manifest.precision} bundle of {manifest.model}{weights} to {args.out}")


def verify(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from accompgen.apps.verify import verify_bundle
    from accompgen.model.model_dir import load_model_dir

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
    from accompgen.apps.demo import print_summary, random_bundle, run_demo, shipped_bundle

    if args.bundle and args.random_init:
        raise UserError("give --bundle DIR or --random-init, not both")
    bundle = args.bundle or (random_bundle() if args.random_init else shipped_bundle())
    paths, trained = run_demo(args.out, bundle, args.seed)
    print_summary(paths, trained)


def song_sources(args: argparse.Namespace) -> list:
    from accompgen.data.stems import folder_songs, musdb_songs

    return list(musdb_songs(args.data, args.subset)) if args.musdb else folder_songs(args.data)


def fit_kmeans(args: argparse.Namespace) -> None:
    import dataclasses

    from rich.console import Console

    from accompgen.data.prepare import start_model_dir

    config = ModelConfig.load(args.config)
    overrides = {"hubert": args.hubert, "hubert_layer": args.hubert_layer, "encodec": args.encodec}
    tokenizer = dataclasses.replace(config.tokenizer, **{k: v for k, v in overrides.items() if v is not None})
    config = dataclasses.replace(config, tokenizer=tokenizer)
    console = Console(stderr=True)
    with console.status("reading songs") as status:
        frames, skipped = start_model_dir(
            config, song_sources(args), args.out, args.seconds_per_song, args.seed, status.update
        )
    report_skipped(skipped)
    print(f"wrote {args.out / 'config.yaml'} and {args.out / 'kmeans.npy'} ({frames} feature frames)")


def report_skipped(skipped: dict[str, str]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} song(s):", file=sys.stderr)
        for reason in skipped.values():
            print(f"  {reason}", file=sys.stderr)


def prepare(args: argparse.Namespace) -> None:
    from rich.progress import Progress

    from accompgen.core.tokens import FRAME_GRID_S
    from accompgen.data.clips import ClipSettings
    from accompgen.data.prepare import prepare as run_prepare
    from accompgen.model.model_dir import load_config, load_tokenizer

    config = load_config(args.model_dir)
    clip_s = args.clip_seconds or max(stage.plan.window_s for stage in config.stages.values())
    half_clip = FRAME_GRID_S * max(1, round(clip_s / 2 / FRAME_GRID_S))  # on the grid, as clips must be
    settings = ClipSettings(clip_s=clip_s, hop_s=args.hop_seconds or half_clip, seed=args.seed)
    tokenizer = load_tokenizer(args.model_dir)
    sources = song_sources(args)
    with Progress(console=None) as bar:
        task = bar.add_task("songs", total=len(sources))

        def advance(name: str) -> None:
            bar.update(task, advance=1, description=name[:30])

        report = run_prepare(sources, tokenizer, config.tokens, args.out, settings, progress=advance)
    report_skipped(report.skipped)
    print(
        f"{len(report.prepared)} song(s) prepared ({report.clips} clips), {len(report.reused)} already done, "
        f"{len(report.skipped)} skipped; tokens in {args.out}"
    )


def preflight(args: argparse.Namespace) -> None:
    from accompgen.apps.preflight_report import print_preflight
    from accompgen.data.clips import ClipSettings
    from accompgen.data.preflight import preflight as check
    from accompgen.data.stems import folder_songs

    settings = ClipSettings(clip_s=args.clip_seconds, hop_s=args.clip_seconds / 2)
    test = folder_songs(args.test) if args.test else None
    sources = song_sources(args)
    with progress_bar() as bar:
        task = bar.add_task("reading", total=len(sources) + len(test or []))
        report = check(sources, test, settings, lambda name: bar.update(task, advance=1, description=name[:30]))
    print_preflight(report)
    if report.refusal:
        raise UserError(f"too little to train on: {report.refusal}")


def train(args: argparse.Namespace) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from accompgen.train.train_settings import settings_from
    from accompgen.train.trainer import Distributed, Trainer, close_distributed, init_distributed

    settings = settings_from(args)
    parallel = Distributed.from_env()
    init_distributed(parallel, args.device)
    try:
        trainer = Trainer(args.model_dir, args.data, args.stage, settings, args.device, parallel)
        if trainer.resume() and parallel.is_main:
            print(f"resuming the {args.stage} stage at step {trainer.step}", file=sys.stderr)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not parallel.is_main) as bar:
            task = bar.add_task(args.stage, total=settings.steps, completed=trainer.step)

            def show(record: dict) -> None:
                text = f"{args.stage} loss {record['loss']:.3f} {record['tokens_per_s']:,.0f} tok/s"
                bar.update(task, completed=record["step"], description=text)

            trainer.run(on_step=show)
    finally:
        close_distributed()
    if parallel.is_main:
        print(f"wrote {trainer.checkpoint}; metrics in {trainer.metrics}")


def evaluate(args: argparse.Namespace) -> None:
    import json

    from accompgen.evaluation.token_metrics import audio_metrics, token_metrics

    report: dict = {"model_dir": str(args.model_dir)}
    if args.data:
        report["tokens"] = token_metrics(args.model_dir, args.data, args.batches)
    if args.fad_reference or args.fad_generated:
        if not (args.fad_reference and args.fad_generated):
            raise UserError("FAD needs both --fad-reference and --fad-generated")
        report["audio"] = audio_metrics(args.fad_reference, args.fad_generated, args.embedding)
    if len(report) == 1:
        raise UserError("nothing to evaluate: give --data TOKENS and/or --fad-reference/--fad-generated")
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def bench(args: argparse.Namespace) -> None:
    import dataclasses

    from rich.console import Console

    if args.learning:
        learning_race(args)
        return
    if args.train:
        train_bench(args)
        return
    from accompgen.apps.bench import FULL, QUICK, run_bench

    settings = QUICK if args.quick else FULL
    overrides = {"config": args.config, "pasts": tuple(args.pasts) if args.pasts else None, "seconds": args.seconds}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_musicgen:
        settings = dataclasses.replace(settings, musicgen=False)
    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        report = run_bench(settings, args.out, progress=lambda text: status.update(text))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print((args.out / "bench.md").read_text())
    console.print(f"wrote {args.out / 'bench.json'}, {args.out / 'bench.md'} and {args.out / 'bench.png'}")


def train_bench(args: argparse.Namespace) -> None:
    from rich.console import Console

    from accompgen.apps.train_bench import FULL, QUICK, run_train_bench

    console = Console(stderr=True)
    with console.status("benchmarking training steps") as status:
        report = run_train_bench(QUICK if args.quick else FULL, args.out, progress=lambda text: status.update(text))
    print(json.dumps(report, indent=2) if args.json else (args.out / "train_bench.md").read_text())
    console.print(f"wrote {args.out / 'train_bench.json'} and {args.out / 'train_bench.md'}")


def learning_race(args: argparse.Namespace) -> None:
    from rich.console import Console

    from accompgen.apps.learning_race import RaceSettings, run_race

    if not (args.model_dir and args.data):
        raise UserError("--learning trains on real tokens: give --model-dir MODEL and --data TOKENS")
    overrides = {"stage": args.stage, "minutes": args.minutes, "every_minutes": args.every}
    settings = RaceSettings(**{k: v for k, v in overrides.items() if v is not None})
    console = Console(stderr=True)
    with console.status("training") as status:
        report = run_race(args.model_dir, args.data, settings, args.out, progress=lambda text: status.update(text))
    print(json.dumps(report, indent=2) if args.json else (args.out / "learning.md").read_text())
    console.print(f"wrote {args.out / 'learning.json'} and {args.out / 'learning.md'}")


def progress_bar(disable: bool = False):
    """A rich progress bar with a time estimate, for one long job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, disable=disable)


def render_chorales(args: argparse.Namespace) -> None:
    from accompgen.data.chorales import CorpusSettings, write_corpus

    settings = CorpusSettings(
        renditions=args.renditions, limit=args.limit, soundfont=args.soundfont, unseen_voice=args.unseen_voice
    )
    with progress_bar() as bar:
        task = bar.add_task("chorales", total=None)
        report = write_corpus(
            args.out,
            settings,
            lambda name, done, total: bar.update(task, completed=done, total=total, description=name),
        )
    report_skipped(report.skipped)
    print(f"{len(report.written)} chorale(s) rendered, {len(report.reused)} already there; songs in {args.out}")


def train_codec(args: argparse.Namespace) -> None:
    import dataclasses

    from accompgen.train.codec import CodecShape, CodecTrainer, CodecTrainSettings, read_accompaniments

    settings = CodecTrainSettings()
    settings = dataclasses.replace(
        settings,
        steps=args.steps or settings.steps,
        max_songs=args.max_songs,
        semantic_weight=args.semantic_weight,
    )
    shape = dataclasses.replace(CodecShape(), codebook_size=args.codebook_size, num_codebooks=args.codebooks)
    trainer = CodecTrainer(args.out, read_accompaniments(song_sources(args), settings.max_songs), shape, settings)
    if trainer.resume():
        print(f"resuming at step {trainer.step}", file=sys.stderr)
    with progress_bar() as bar:
        task = bar.add_task("codec", total=settings.steps, completed=trainer.step)
        trainer.run(lambda r: bar.update(task, completed=r["step"], description=f"codec {r['spectral']:.3f}"))
    print(f"wrote the codec to {args.out}: use it with --encodec {args.out}")


def train_semantic_encoder(args: argparse.Namespace) -> None:
    import dataclasses

    from accompgen.train.semantic_encoder import HubertShape, SemanticEncoderTrainer, SemanticTrainSettings, read_stems

    settings = SemanticTrainSettings()
    settings = dataclasses.replace(settings, steps=args.steps or settings.steps, max_songs=args.max_songs)
    audio = read_stems(song_sources(args), settings.max_songs)
    shape = HubertShape()
    trainer = SemanticEncoderTrainer(args.out, audio, shape, settings)
    if trainer.resume():
        print(f"resuming at step {trainer.step}", file=sys.stderr)
    with progress_bar() as bar:
        task = bar.add_task("semantic encoder", total=settings.steps, completed=trainer.step)
        trainer.run(lambda r: bar.update(task, completed=r["step"], description=f"semantic {r['loss']:.3f}"))
    print(f"wrote the semantic encoder to {args.out}")
    print(f"use it with --hubert {args.out} --hubert-layer {shape.num_hidden_layers}")


def recipe(args: argparse.Namespace) -> None:
    if args.corpus == "songs":
        from accompgen.apps.song_recipe import run_song_recipe

        if args.data is None:
            raise UserError("recipe songs needs --data FOLDER: your song folders (vocals plus accompaniment or stems)")
        run_song_recipe(
            args.out, args.data, args.test, args.hours or 2.5, args.quick, args.set, args.start, args.launcher
        )
        return
    from accompgen.apps.recipe import RECIPES, Recipe, run_recipe
    from accompgen.apps.settings_override import override

    if args.data or args.test or args.hours or args.start:
        raise UserError(
            "--data, --test, --hours and --from are for `recipe songs`: the chorale recipe renders its own songs and "
            "trains from nothing"
        )
    kind = "quick" if args.quick else "full"
    settings = RECIPES[kind]
    for assignment in args.set:
        settings = override(settings, assignment)
    run_recipe(Recipe(args.out, settings, kind, args.launcher))


def eval_music(args: argparse.Namespace) -> None:
    from rich.console import Console

    from accompgen.apps.music_eval import MusicEvalSettings, evaluate_music, print_report

    settings = MusicEvalSettings(songs=args.songs, seconds=args.seconds, seed=args.seed)
    if args.ladder:
        from accompgen.apps.ladder import evaluate_ladder, print_ladder

        with Console(stderr=True).status("rendering the ladder") as status:
            report = evaluate_ladder(
                args.bundle, song_sources(args), settings, args.codec, args.device, status.update, args.first_codebooks
            )
        args.out.write_text(json.dumps(report, indent=2))
        print_ladder(report)
        print(f"wrote {args.out}")
        return
    if args.codec or args.first_codebooks:
        raise UserError("--codec and --first-codebooks serve the ladder's rungs: give --ladder too")
    bundles = {"bundle": args.bundle}
    if args.against_random:
        from accompgen.apps.demo import random_bundle

        bundles["random_init"] = random_bundle()
    with Console(stderr=True).status("generating") as status:
        report = evaluate_music(bundles, song_sources(args), settings, args.device, status.update)
    args.out.write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"wrote {args.out}")


def codebook_counts(text: str) -> tuple[int, ...]:
    """ "1,2" -> (1, 2), for argparse."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give whole numbers separated by commas, e.g. 1,2; not {text!r}") from None
    return tuple(sorted(set(counts)))


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="folder of song folders (vocals + stems)")
    parser.add_argument("--musdb", action="store_true", help="--data is MUSDB18 in stem form (needs musdb, ffmpeg)")
    parser.add_argument("--subset", default="train", help="MUSDB18 subset (default train)")


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
    exp.add_argument("--quantize", choices=("int8", "int4"), help="weight-only quantized stages, for CPUs")
    exp.add_argument(
        "--cache",
        choices=("inplace", "growing"),
        default="inplace",
        help="KV cache written in place (GroupQueryAttention, default) or grown by copying (any provider)",
    )
    exp.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    exp.set_defaults(run=export)

    ver = commands.add_parser("verify", help="check a bundle against the torch model it came from")
    ver.add_argument("bundle", type=Path)
    ver.add_argument("--model-dir", help="the trained model (default: what the bundle's manifest records)")
    ver.add_argument("--device", default="auto", help="auto, tensorrt, cuda or cpu")
    ver.set_defaults(run=verify)

    km = commands.add_parser("fit-kmeans", help="start a model directory: config and k-means of HuBERT features")
    add_data_options(km)
    km.add_argument("--config", required=True, help="preset or YAML file of the model")
    km.add_argument("--out", required=True, type=Path, help="the model directory to create")
    km.add_argument("--hubert", help="HuBERT hub id or local directory (default: the config's)")
    km.add_argument("--hubert-layer", type=int, help="layer whose features are clustered (default: the config's)")
    km.add_argument("--encodec", help="EnCodec hub id or local directory (default: the config's)")
    km.add_argument("--seconds-per-song", type=float, default=60.0, help="audio per song used (default 60)")
    km.add_argument("--seed", type=int, default=0)
    km.set_defaults(run=fit_kmeans)

    prep = commands.add_parser("prepare", help="tokenize songs into shards (re-runs skip finished songs)")
    add_data_options(prep)
    prep.add_argument("--model-dir", required=True, type=Path, help="written by fit-kmeans")
    prep.add_argument("--out", required=True, type=Path, help="token folder to write")
    prep.add_argument("--clip-seconds", type=float, help="clip length (default: the longest stage window)")
    prep.add_argument("--hop-seconds", type=float, help="clip spacing (default: half a clip)")
    prep.add_argument("--seed", type=int, default=0)
    prep.set_defaults(run=prepare)

    pf = commands.add_parser("preflight", help="check a folder of songs before training on it")
    add_data_options(pf)
    pf.add_argument("--test", type=Path, help="held-out song folders (default: about one song in 20 of --data)")
    pf.add_argument("--clip-seconds", type=float, default=4.0, help="training clip length (default 4)")
    pf.set_defaults(run=preflight)

    tr = commands.add_parser("train", help="train one stage (under torchrun for several processes)")
    tr.add_argument("--stage", required=True, choices=("semantic", "coarse", "fine"))
    tr.add_argument("--model-dir", required=True, type=Path)
    tr.add_argument("--data", required=True, type=Path, help="token folder written by prepare")
    tr.add_argument("--device", help="cuda, cpu, ... (default: cuda when present)")
    add_train_options(tr)  # every TrainSettings field
    tr.set_defaults(run=train)

    ev = commands.add_parser("eval", help="held-out loss/accuracy per stage, and FAD between folders of audio")
    ev.add_argument("--model-dir", required=True, type=Path)
    ev.add_argument("--data", type=Path, help="token folder: the val split gives loss and accuracy")
    ev.add_argument("--batches", type=int, default=8, help="batches of 8 windows per stage (default 8)")
    ev.add_argument("--fad-reference", type=Path, help="folder of real accompaniments")
    ev.add_argument("--fad-generated", type=Path, help="folder of generated accompaniments")
    ev.add_argument("--embedding", default="spectral", help="spectral (no weights) or clap:PATH_OR_ID")
    ev.add_argument("--out", type=Path, default=Path("eval.json"))
    ev.set_defaults(run=evaluate)

    ben = commands.add_parser("bench", help="our runtime against torch eager and MusicGen, in one run")
    ben.add_argument("--quick", action="store_true", help="tiny config, short pasts: under a minute on 2 cores")
    ben.add_argument(
        "--train", action="store_true", help="training steps instead: each stage and tokenizer, each speed lever"
    )
    ben.add_argument(
        "--learning",
        action="store_true",
        help="held-out loss after the same minutes of training: today's trainer against the default one",
    )
    ben.add_argument("--model-dir", type=Path, help="with --learning: the model folder (config.yaml, from fit-kmeans)")
    ben.add_argument("--data", type=Path, help="with --learning: the token folder written by prepare")
    ben.add_argument("--stage", choices=("semantic", "coarse", "fine"), help="with --learning (default coarse)")
    ben.add_argument("--minutes", type=float, help="with --learning: wall time per path (default 30)")
    ben.add_argument("--every", type=float, help="with --learning: minutes between held-out losses (default 5)")
    ben.add_argument("--config", help="preset or YAML (default: small; tiny with --quick)")
    ben.add_argument("--pasts", type=int, nargs="+", help="past lengths of the per-step table (default 256 1024 4096)")
    ben.add_argument("--seconds", type=float, help="audio generated end to end (default 10; 2 with --quick)")
    ben.add_argument("--no-musicgen", action="store_true", help="skip the MusicGen peer")
    ben.add_argument("--json", action="store_true", help="print the report as JSON instead of the tables")
    ben.add_argument("--out", type=Path, default=Path("bench"), help="output folder (default bench)")
    ben.set_defaults(run=bench)

    dem = commands.add_parser("demo", help="a held-out chorale melody through a real bridge: vocal, accompaniment, mix")
    dem.add_argument("--bundle", type=Path, help="a bundle to use (default: the trained chorale bundle shipped)")
    dem.add_argument("--random-init", action="store_true", help="a tiny untrained bundle instead (cached)")
    dem.add_argument("--out", type=Path, default=Path("accompgen-demo"), help="output folder (default accompgen-demo)")
    dem.add_argument("--seed", type=int, default=0)
    dem.set_defaults(run=demo)

    rc = commands.add_parser("render-chorales", help="render Bach's chorales (music21) into vocal/accompaniment songs")
    rc.add_argument("--out", required=True, type=Path, help="folder to write train/ and test/ song folders into")
    rc.add_argument("--renditions", type=int, default=2, help="renditions per training chorale (default 2)")
    rc.add_argument("--limit", type=int, help="only the first N chorales of each split")
    rc.add_argument("--soundfont", type=Path, help="General-MIDI .sf2 (default: TimGM6mb.sf2 from pretty_midi)")
    rc.add_argument(
        "--unseen-voice",
        action="store_true",
        help="only the held-out chorales, sung by a synthesized voice no training uses (to evaluate on)",
    )
    rc.set_defaults(run=render_chorales)

    tc = commands.add_parser("train-codec", help="train a compact EnCodec on the accompaniments of your songs")
    add_data_options(tc)
    tc.add_argument("--out", required=True, type=Path, help="directory to write (loads with --encodec DIR)")
    tc.add_argument("--steps", type=int, help="optimizer steps (default 3000)")
    tc.add_argument("--max-songs", type=int, default=200, help="songs held in memory (default 200)")
    tc.add_argument("--codebook-size", type=int, default=256, help="entries per codebook (default 256)")
    tc.add_argument("--codebooks", type=int, default=8, help="residual codebooks (default 8)")
    tc.add_argument(
        "--semantic-weight",
        type=float,
        default=0.0,
        help="distil log-chroma and log-mel into the first codebook with this weight (default 0: off)",
    )
    tc.set_defaults(run=train_codec)

    ts = commands.add_parser("train-semantic-encoder", help="train a small HuBERT to hear pitch and timbre")
    add_data_options(ts)
    ts.add_argument("--out", required=True, type=Path, help="directory to write (loads with --hubert DIR)")
    ts.add_argument("--steps", type=int, help="optimizer steps (default 6000)")
    ts.add_argument("--max-songs", type=int, default=200, help="songs held in memory (default 200)")
    ts.set_defaults(run=train_semantic_encoder)

    rec = commands.add_parser("recipe", help="the whole training recipe, resumable: songs ... evaluated bundle")
    rec.add_argument("corpus", choices=("chorales", "songs"), help="the Bach chorales, or your own songs (--data)")
    rec.add_argument("--out", required=True, type=Path, help="run folder (a second run resumes it)")
    rec.add_argument("--data", type=Path, help="songs: folder of song folders (vocals plus accompaniment or stems)")
    rec.add_argument("--test", type=Path, help="songs: held-out song folders (default: about one song in ten)")
    rec.add_argument("--hours", type=float, help="songs: the time budget the steps are sized to (default 2.5)")
    rec.add_argument(
        "--from",
        dest="start",
        type=Path,
        metavar="RUN",
        help="songs: start from the model of this recipe run folder (tokenizers and stages), not from nothing",
    )
    rec.add_argument("--quick", action="store_true", help="few songs and tiny sizes: minutes, not hours")
    rec.add_argument(
        "--launcher",
        type=shlex.split,
        default=(),
        metavar="COMMAND",
        help='run the stage trainings under this, e.g. "torchrun --nproc-per-node 4" (several GPUs; each process '
        "takes the stage's batch size)",
    )
    rec.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting, e.g. codec.semantic_weight=1.0 or stages.coarse.steps=2500 (repeatable; "
        "a run folder resumes only with the same ones)",
    )
    rec.set_defaults(run=recipe)

    em = commands.add_parser("eval-music", help="vocal-accompaniment consonance of a bundle on held-out songs")
    em.add_argument("--bundle", required=True, type=Path)
    add_data_options(em)
    em.add_argument("--songs", type=int, default=16, help="songs to generate for (default 16)")
    em.add_argument("--seconds", type=float, default=10.0, help="clip per song (default 10)")
    em.add_argument("--seed", type=int, default=0)
    em.add_argument("--device", default="cpu", help="auto, cuda or cpu (default cpu)")
    em.add_argument("--against-random", action="store_true", help="also score a random-init bundle")
    em.add_argument(
        "--ladder",
        action="store_true",
        help="score every rung from the real accompaniment to the model: codec, oracle stages, full, preview",
    )
    em.add_argument("--codec", type=Path, help="the codec the bundle's tokens come from (RUN/codec): rungs B and F")
    em.add_argument(
        "--first-codebooks",
        type=codebook_counts,
        default=(),
        metavar="K[,K...]",
        help="also rungs B and E cut to their first K codebooks (what fewer coarse codebooks could give), e.g. 1,2",
    )
    em.add_argument("--out", type=Path, default=Path("eval-music.json"))
    em.set_defaults(run=eval_music)
    return parser


# Packages of the optional extras, and the extra that brings each: the base install is the bridge alone.
EXTRAS = {
    "torch": "train",
    "transformers": "train",
    "sklearn": "train",
    "scipy": "train",
    "onnx": "export",
    "onnxscript": "export",
    "matplotlib": "bench",
    "music21": "train",
    "pretty_midi": "train",
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill PID` stops a run as Ctrl-C does: its finally blocks record the time spent and remove half-written files
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        package = (err.name or "").split(".")[0]
        if package not in EXTRAS:
            raise
        print(
            f"error: `accompgen {args.command}` needs {package}: pip install 'accompgen[{EXTRAS[package]}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
