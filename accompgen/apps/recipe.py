"""`accompgen recipe chorales`: from nothing to a trained, verified, evaluated bundle, offline, in one command.

render the chorales -> train the codec -> train the semantic encoder -> k-means -> tokenize -> train the three
stages -> export -> verify -> evaluate. Every step writes its outputs atomically and records itself in
`recipe.json` when it is complete; a second run skips what is complete and resumes a step that was interrupted
(the training steps from their last checkpoint). The wall time of every step is recorded beside it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from accompgen.apps.ladder import evaluate_ladder
from accompgen.apps.launched_training import launch_training
from accompgen.apps.music_eval import MusicEvalSettings, choose_sampling, evaluate_music
from accompgen.core.bundle import set_sampling_defaults
from accompgen.core.errors import UserError
from accompgen.core.files import write_text_atomic
from accompgen.data.chorales import CorpusSettings, write_corpus
from accompgen.data.clips import ClipSettings, song_splits
from accompgen.data.prepare import prepare, start_model_dir
from accompgen.data.stems import SongSource, folder_songs, spread_over
from accompgen.evaluation.token_harmony import semantic_token_measures
from accompgen.evaluation.token_metrics import token_metrics
from accompgen.model.config import ModelConfig
from accompgen.model.model_dir import load_model_dir, load_tokenizer, stage_checkpoint_path
from accompgen.train.codec import CodecShape, CodecTrainer, CodecTrainSettings, evaluate_codec, read_accompaniments
from accompgen.train.semantic_encoder import HubertShape, SemanticEncoderTrainer, SemanticTrainSettings, read_stems
from accompgen.train.train_settings import TrainSettings
from accompgen.train.trainer import Trainer

Report = Callable[[float, float, str], None]  # (done, total, what is happening)

# The first step each setting of RecipeSettings shapes; every later step builds on that step's outputs.
FIRST_STEP_USING = {
    "corpus": "render",
    "codec_shape": "codec",
    "codec": "codec",
    "hubert_shape": "semantic-encoder",
    "hubert": "semantic-encoder",
    "config": "kmeans",
    "kmeans_songs": "kmeans",
    "kmeans_seconds": "kmeans",
    "clips": "prepare",
    "stages": "train-semantic",
    "music": "sampling",
    "sampling_candidates": "sampling",
    "tune_songs": "sampling",
    "eval_batches": "evaluate",
}


@dataclass(frozen=True)
class RecipeSettings:
    config: str  # preset of the three stages (accompgen/configs)
    corpus: CorpusSettings
    codec_shape: CodecShape
    codec: CodecTrainSettings
    hubert_shape: HubertShape
    hubert: SemanticTrainSettings
    kmeans_songs: int  # songs whose features k-means sees
    kmeans_seconds: float  # of each
    clips: ClipSettings  # clip_s must cover the longest stage window
    stages: dict[str, TrainSettings] = field(default_factory=dict)
    eval_batches: int = 8  # held-out token batches per stage and condition
    music: MusicEvalSettings = field(default_factory=MusicEvalSettings)
    # Sampling settings tried on validation songs (never the test set); the best become the bundle's defaults. A
    # wider sweep on the chorale model's validation songs (cfg 3-16, top-k 4-32, temperature 0.7-1.0) found a
    # plateau at cfg >= 8 with top-k <= 16 (matched VAC 0.32-0.34 against 0.27 at cfg 3, top-k 32), temperature
    # 0.7 worse everywhere; these span it, on 16 songs as that sweep did.
    sampling_candidates: tuple[dict[str, float], ...] = (
        {"cfg_scale": 3.0, "top_k": 32},
        {"cfg_scale": 5.0, "top_k": 8},
        {"cfg_scale": 8.0, "top_k": 8},
        {"cfg_scale": 12.0, "top_k": 8},
        {"cfg_scale": 16.0, "top_k": 16},
    )
    tune_songs: int = 16


FULL = RecipeSettings(
    config="chorales",
    corpus=CorpusSettings(renditions=2),
    codec_shape=CodecShape(),
    # Distilling the semantic targets into the first codebook cost chroma correlation (0.92 against 0.98 with the 4
    # coarse codebooks) but let the coarse stage learn its tokens (3.3 against 4.9 nats after 1080 steps) and took
    # the whole model from 0.33 to 0.47 matched VAC on the held-out chorales (README, the ladder)
    codec=CodecTrainSettings(semantic_weight=1.0),
    hubert_shape=HubertShape(),
    hubert=SemanticTrainSettings(),
    kmeans_songs=120,
    kmeans_seconds=30.0,
    clips=ClipSettings(clip_s=4.0, hop_s=2.0),
    stages={
        # seconds per step on 2 cores (bf16, query blocks, compiled; `accompgen bench --train`): semantic 0.34,
        # coarse 1.10, fine 0.86; before those levers 0.97, 2.31 and 1.56. The coarse stage gets the steps the default
        # trainer takes in the 49 min the old one spent on 1000; after 30 min of each it stood at 4.599 against
        # 4.756 held-out nats (`accompgen bench --learning`)
        "semantic": TrainSettings(steps=1500, batch_size=16, lr=2e-3, warmup_steps=100, checkpoint_every=100),
        "coarse": TrainSettings(steps=3400, batch_size=12, lr=2e-3, warmup_steps=100, checkpoint_every=100),
        # The fine stage's held-out loss was still falling after 400 steps; 2000 took it from 5.25 to 4.99 nats and
        # the whole model's harmonic share from 0.52 to 0.54 on the held-out chorales (README, the ladder)
        "fine": TrainSettings(steps=2000, batch_size=12, lr=2e-3, warmup_steps=50, checkpoint_every=100),
    },
)

QUICK = RecipeSettings(
    config="tiny",
    corpus=CorpusSettings(renditions=2, limit=8),
    codec_shape=CodecShape(num_filters=4, hidden_size=16, codebook_size=32),
    codec=CodecTrainSettings(steps=120, batch_size=4, autoencoder_steps=40, kmeans_batches=4, max_songs=16),
    hubert_shape=HubertShape(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_channels=16,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    ),
    hubert=SemanticTrainSettings(steps=600, batch_size=8, lr=3e-3, warmup_steps=20, max_songs=16),
    kmeans_songs=16,
    kmeans_seconds=20.0,
    clips=ClipSettings(clip_s=2.0, hop_s=1.0),
    stages={
        # compile=False: 300 tiny steps take less time than compiling them would (about 35 s a stage)
        name: TrainSettings(steps=300, batch_size=16, lr=1e-2, warmup_steps=20, checkpoint_every=100, compile=False)
        for name in ("semantic", "coarse", "fine")
    },
    music=MusicEvalSettings(songs=4, seconds=3.0, permutations=200),
    sampling_candidates=({"cfg_scale": 3.0, "top_k": 32},),
)

RECIPES = {"full": FULL, "quick": QUICK}


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[Report], None]
    output: Path  # exists once the step has written everything


class Recipe:
    """The chorales recipe in a run folder; `steps` in order, each skipped once recorded as done."""

    def __init__(self, out: Path, settings: RecipeSettings, kind: str, launcher: Sequence[str] = ()):
        self.out, self.settings, self.kind = Path(out), settings, kind
        self.launcher = tuple(launcher)  # runs the stage trainings (torchrun and its options); none: in this process
        self.state_path = self.out / "recipe.json"
        self.corpus = self.out / "corpus"
        self.unseen_voice = self.out / "corpus-unseen-voice"  # test/ only: the held-out songs on another voice
        self.codec_dir = self.out / "codec"
        self.hubert_dir = self.out / "hubert"
        self.model_dir = self.out / "model"
        self.semantic_tokens_report = self.model_dir / "semantic_tokens.json"
        self.tokens = self.out / "tokens"
        self.test_tokens = self.out / "tokens-test"
        self.bundle = self.out / "bundle"  # fp32, the reference
        self.compact_bundle = self.out / "bundle-int8"  # int8 matrix products, fp16 storage: the one shipped
        self.evaluation = self.out / "evaluation.json"
        self.state = self._load_state()

    # -- state ----------------------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        if not self.state_path.is_file():
            return {"recipe": self.kind, "settings": _jsonable(asdict(self.settings)), "steps": {}}
        state = json.loads(self.state_path.read_text())
        ours = _jsonable(asdict(self.settings))
        if state.get("recipe") != self.kind or state.get("settings") != ours:
            theirs = state.get("settings") or {}
            changed = sorted(key for key in ours if theirs.get(key) != ours[key])
            steps = [step.name for step in self.steps()]
            first = min(
                (steps.index(FIRST_STEP_USING[key]) for key in changed if FIRST_STEP_USING[key] in steps), default=0
            )
            raise UserError(
                f"{self.out} holds a {state.get('recipe')} recipe run made with other settings "
                f"({', '.join(changed) or 'another recipe'}): with these, steps {', '.join(steps[first:])} would have "
                "to run again, and one run never mixes the outputs of two settings (tokens of two codecs). Resume it "
                "with the command that started it, or choose another --out"
            )
        return state

    def _save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.state_path, json.dumps(self.state, indent=1))

    def is_done(self, step: Step) -> bool:
        return bool(self.state["steps"].get(step.name, {}).get("done")) and step.output.exists()

    def run_step(self, step: Step, report: Report) -> float:
        """Runs one step and records its wall time (summed over interrupted attempts); returns the seconds."""
        record = self.state["steps"].setdefault(step.name, {"seconds": 0.0, "done": False})
        started = time.monotonic()
        try:
            step.run(report)
        finally:
            record["seconds"] = round(record["seconds"] + time.monotonic() - started, 1)
            self._save_state()
        record["done"] = True
        self._save_state()
        return record["seconds"]

    # -- the steps ------------------------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        stage_steps = [
            Step(
                f"train-{name}",
                f"train the {name} stage",
                self._train_stage(name),
                stage_checkpoint_path(self.model_dir, name),
            )
            for name in ("semantic", "coarse", "fine")
        ]
        return [
            *self._corpus_steps(),
            *self._tokenizer_steps(),
            Step("prepare", "tokenize the songs", self._prepare, self.test_tokens),
            *stage_steps,
            Step("export", "export the bundles", self._export, self.compact_bundle),
            Step("sampling", "choose sampling defaults", self._choose_sampling, self.out / "sampling.json"),
            Step("verify", "verify the bundles", self._verify, self.compact_bundle / "verify.json"),
            Step("evaluate", "evaluate", self._evaluate, self.evaluation),
        ]

    def _corpus_steps(self) -> list[Step]:
        """The steps that make the songs: rendered from the scores, and the held-out ones sung anew."""
        return [
            Step("render", "render the chorales", self._render, self.corpus),
            Step("unseen-voice", "sing the test songs anew", self._render_unseen_voice, self.unseen_voice / "test"),
        ]

    def _tokenizer_steps(self) -> list[Step]:
        """The steps that make the tokenizers: the codec, the semantic encoder and its k-means."""
        return [
            Step("codec", "train the codec", self._train_codec, self.codec_dir / "report.json"),
            Step("semantic-encoder", "train the semantic encoder", self._train_hubert, self.hubert_dir / "config.json"),
            Step("kmeans", "fit k-means", self._fit_kmeans, self.semantic_tokens_report),
        ]

    def _songs(self, split: str) -> list[SongSource]:
        return folder_songs(self.corpus / split)

    def _render(self, report: Report) -> None:
        result = write_corpus(self.corpus, self.settings.corpus, lambda name, done, total: report(done, total, name))
        summary = {"written": len(result.written), "reused": len(result.reused), "skipped": result.skipped}
        (self.corpus / "report.json").write_text(json.dumps(summary, indent=1))

    def _render_unseen_voice(self, report: Report) -> None:
        settings = dataclasses.replace(self.settings.corpus, unseen_voice=True)
        write_corpus(self.unseen_voice, settings, lambda name, done, total: report(done, total, name))

    def _train_codec(self, report: Report) -> None:
        settings = self.settings.codec
        if not (self.codec_dir / "config.json").is_file():
            audio = read_accompaniments(self._songs("train"), settings.max_songs)
            trainer = CodecTrainer(self.codec_dir, audio, self.settings.codec_shape, settings)
            trainer.resume()
            trainer.run(lambda r: report(r["step"], settings.steps, f"spectral loss {r['spectral']:.3f}"))
        report(settings.steps, settings.steps, "measuring held-out reconstruction")
        result = evaluate_codec(self.codec_dir, self._songs("test")[: self.settings.music.songs])
        (self.codec_dir / "report.json").write_text(json.dumps(asdict(result), indent=1))

    def _train_hubert(self, report: Report) -> None:
        settings = self.settings.hubert
        audio = read_stems(self._songs("train"), settings.max_songs)
        trainer = SemanticEncoderTrainer(self.hubert_dir, audio, self.settings.hubert_shape, settings)
        trainer.resume()
        trainer.run(lambda r: report(r["step"], settings.steps, f"loss {r['loss']:.3f}"))

    def _fit_kmeans(self, report: Report) -> None:
        config = ModelConfig.load(self.settings.config)
        tokenizer = dataclasses.replace(
            config.tokenizer,
            hubert=str(self.hubert_dir.resolve()),
            hubert_layer=self.settings.hubert_shape.num_hidden_layers,  # the layer trained to predict pitch
            encodec=str(self.codec_dir.resolve()),
        )
        start_model_dir(
            dataclasses.replace(config, tokenizer=tokenizer),
            self._kmeans_songs(),
            self.model_dir,
            self.settings.kmeans_seconds,
            progress=lambda text: report(0, 1, text),
        )
        self._measure_semantic_tokens(report)

    def _kmeans_songs(self) -> list[SongSource]:
        return spread_over(self._songs("train"), self.settings.kmeans_songs)

    def _measure_semantic_tokens(self, report: Report) -> None:
        report(0, 1, "pitch-class accuracy and chord movement of the semantic tokens")
        encoder = load_tokenizer(self.model_dir).semantic
        measures = semantic_token_measures(encoder, self._kmeans_songs(), self._songs("test"))
        self.semantic_tokens_report.write_text(json.dumps(measures, indent=1))

    def _prepare(self, report: Report) -> None:
        config = ModelConfig.load(self.model_dir / "config.yaml")
        tokenizer = load_tokenizer(self.model_dir)
        for split, out in (("train", self.tokens), ("test", self.test_tokens)):
            songs = self._songs(split)
            counter = iter(range(len(songs)))

            def advance(name: str, songs: list = songs, split: str = split, counter=counter) -> None:
                report(next(counter), len(songs), f"{split}: {name}")

            result = prepare(songs, tokenizer, config.tokens, out, self.settings.clips, progress=advance)
            if result.skipped:
                (out / "skipped.json").write_text(json.dumps(result.skipped, indent=1))

    def _train_stage(self, name: str) -> Callable[[Report], None]:
        def run(report: Report) -> None:
            settings = self.settings.stages[name]
            trainer = Trainer(self.model_dir, self.tokens, name, settings, "cpu")
            if not trainer.resume():
                self._start_stage(trainer)
            if self.launcher:
                trainer.save()  # where the launched processes start: a resumed step, or the first weights
                launch_training(self.launcher, name, self.model_dir, self.tokens, settings, self.out / "logs", report)
            else:
                trainer.run(lambda r: report(r["step"], settings.steps, f"loss {r['loss']:.3f}"))

        return run

    def _start_stage(self, trainer: Trainer) -> None:
        """Where a stage's first step starts: from nothing here (random weights)."""

    def _export(self, report: Report) -> None:
        from accompgen_export.bundle_writer import ExportSettings, write_bundle

        parts = load_model_dir(self.model_dir)
        for bundle, quantize in ((self.bundle, None), (self.compact_bundle, "int8")):
            write_bundle(
                parts, bundle, ExportSettings(quantize=quantize), overwrite=True, progress=lambda g: report(0, 1, g)
            )
            write_demo_vocal(self._songs("test")[0], bundle)

    def _choose_sampling(self, report: Report) -> None:
        """On validation songs of the training corpus (held back from the stages, not the test set)."""
        songs = self._songs("train")
        splits = song_splits([song.name for song in songs], self.settings.clips.val_every)
        validation = [song for song in songs if splits[song.name] == "val"]
        settings = dataclasses.replace(self.settings.music, songs=self.settings.tune_songs)
        chosen, tried = choose_sampling(
            self.bundle, validation, list(self.settings.sampling_candidates), settings, lambda t: report(0, 1, t)
        )
        for bundle in (self.bundle, self.compact_bundle):
            set_sampling_defaults(bundle, chosen)
        write_text_atomic(self.out / "sampling.json", json.dumps({"chosen": chosen, "tried": tried}, indent=1))

    def _verify(self, report: Report) -> None:
        from accompgen.apps.verify import verify_bundle

        failed = []
        for bundle in (self.bundle, self.compact_bundle):
            checks = verify_bundle(bundle, device="cpu", progress=lambda graph: report(0, 1, graph))
            rows = [asdict(c) | {"value": float(c.value), "passed": bool(c.passed)} for c in checks]
            (bundle / "verify.json").write_text(json.dumps(rows, indent=1))
            failed += [f"{bundle.name}/{c.graph}" for c in checks if not c.passed]
        if failed:
            raise UserError(f"the exported bundles disagree with torch on {', '.join(failed)}")

    def _evaluate(self, report: Report) -> None:
        from accompgen.apps.demo import random_bundle

        report(0, 4, "held-out token loss, true and shuffled condition")
        tokens = token_metrics(self.model_dir, self.test_tokens, self.settings.eval_batches, split="all")
        report(1, 4, "vocal-accompaniment consonance")
        music = evaluate_music(
            {"trained": self.bundle, "trained_int8": self.compact_bundle, "random_init": random_bundle()},
            self._songs("test"),
            self.settings.music,
            progress=lambda text: report(1, 4, text),
        )
        voices = self._other_voice_evaluation(music, report)
        report(3, 4, "the ladder, from the real accompaniment to the int8 bundle")
        ladder = evaluate_ladder(
            self.compact_bundle,
            self._songs("test"),
            self.settings.music,
            self.codec_dir,
            progress=lambda text: report(3, 4, f"ladder: {text}"),
        )
        result = {
            "tokens": tokens,
            "music": music,
            **voices,
            "ladder": ladder,
            "codec": json.loads((self.codec_dir / "report.json").read_text()),
            "semantic_tokens": json.loads(self.semantic_tokens_report.read_text()),
        }
        write_text_atomic(self.evaluation, json.dumps(result, indent=1))

    def _other_voice_evaluation(self, music: dict[str, Any], report: Report) -> dict[str, Any]:
        """The test songs sung by a voice no training used, scored beside the seen voices."""
        report(2, 4, "vocal-accompaniment consonance, test songs sung by a voice no training used")
        unseen = evaluate_music(
            {"trained_int8": self.compact_bundle},
            folder_songs(self.unseen_voice / "test"),
            self.settings.music,
            progress=lambda text: report(2, 4, f"unseen voice: {text}"),
        )
        return {"unseen_voice": unseen | {"gap_ratio": gap_ratio(unseen["trained_int8"], music["trained_int8"])}}


def gap_ratio(unseen: dict[str, float], seen: dict[str, float]) -> float | None:
    """The unseen voice's matched-minus-cross gap over the seen voices' (None while the seen gap is not positive)."""
    return unseen["gap"] / seen["gap"] if seen["gap"] > 0 else None


def run_recipe(recipe: Recipe) -> dict[str, Any]:
    """Runs every step not yet done, with a progress bar and time estimate each; returns the evaluation."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.fields[title]:<32}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    for number, step in enumerate(recipe.steps(), start=1):
        title = f"{number:>2}. {step.title}"
        if recipe.is_done(step):
            seconds = recipe.state["steps"][step.name]["seconds"]
            console.print(f"{title:<32} [dim]done earlier ({_duration(seconds)})[/]")
            continue
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("", total=None, title=title)

            def report(done: float, total: float, text: str, task=task, bar=bar) -> None:
                bar.update(task, completed=done, total=total or None, description=text[:60])

            seconds = recipe.run_step(step, report)
        console.print(f"{title:<32} [green]done[/] in {_duration(seconds)}")
    total = sum(record["seconds"] for record in recipe.state["steps"].values())
    console.print(
        f"recipe complete: {_duration(total)} of work; bundle in {recipe.bundle}, report in {recipe.evaluation}"
    )
    return json.loads(recipe.evaluation.read_text())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {secs:02d} s"


def _jsonable(value: Any) -> Any:
    """Settings as JSON would give them back (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def write_demo_vocal(source: SongSource, out: Path, seconds: float = 12.0) -> Path:
    """The opening of a held-out song's vocal: the demo's vocal, shipped beside the bundle."""
    song = source.load()
    vocal = song.vocals[: round(seconds * song.sample_rate)]
    path = out / "demo_vocal.flac"
    sf.write(path, (0.5 * vocal / max(float(np.abs(vocal).max()), 1e-9)).astype(np.float32), song.sample_rate)
    return path
