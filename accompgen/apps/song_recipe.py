"""`accompgen recipe songs`: the chorale recipe's steps on a folder of your own songs.

Before any training, preflight (accompgen.data.preflight) checks every song and fixes the split in split.json: the
held-out songs (a --test folder, or about one song in ten) are never trained on. Then the plan sizes every training
step to the amount of audio and the time budget, and says what it chose and why. The steps after that are the
chorale recipe's, on these songs, resumable the same way; the evaluation ends in a model card (README.md) in each
bundle.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accompgen.apps.ladder import p_value_text
from accompgen.apps.recipe import FULL, QUICK, Recipe, RecipeSettings, Report, Step, run_recipe
from accompgen.apps.start_from import StartingPoint, starting_point
from accompgen.core.errors import UserError
from accompgen.core.files import write_text_atomic
from accompgen.data.preflight import CorpusMinimum, PreflightReport
from accompgen.data.stems import SongSource, folder_songs
from accompgen.model.model_dir import CONFIG_FILE
from accompgen.train.trainer import Trainer

# Seconds per step of each training at the chorale sizes on the reference machine (2 EPYC cores with AVX512_BF16,
# bf16 autocast, compiled stages): `accompgen bench --train` and the recipe's own step times.
STEP_SECONDS = {"codec": 0.57, "semantic-encoder": 0.20, "semantic": 0.34, "coarse": 0.84, "fine": 0.86}
TOKENIZE_MINUTES_PER_AUDIO_HOUR = 1.8  # the chorale corpus: 11 h of audio in about 20 min
FIXED_MINUTES = 25.0  # k-means, export, sampling, verification, evaluation
MIN_SCALE = 0.05  # of the chorale recipe's steps: fewer leave every model untrained
MAX_PASSES = 20  # over the training clips per stage: more only memorises them
QUICK_MINIMUM = CorpusMinimum(test_songs=4, train_songs=4, train_minutes=0.5)  # a tiny corpus, to try the recipe


@dataclass(frozen=True)
class CorpusSummary:
    train_songs: int
    train_minutes: float
    train_clips: int
    test_songs: int
    test_minutes: float

    @classmethod
    def of(cls, report: PreflightReport) -> CorpusSummary:
        train, test = report.usable("train"), report.usable("test")
        clips = sum(song.clips for song in train)
        return cls(len(train), report.minutes("train"), clips, len(test), report.minutes("test"))


@dataclass(frozen=True)
class Plan:
    settings: RecipeSettings
    lines: tuple[str, ...]  # what was chosen and why, to print before the first training step


def plan(corpus: CorpusSummary, hours: float, base: RecipeSettings = FULL, start: StartingPoint | None = None) -> Plan:
    """Every training step of `base` scaled by one factor so that the run fits `hours` on the reference machine,
    each stage capped at MAX_PASSES over the training clips. A run started from another one trains no tokenizers:
    their time goes to the stages."""
    audio_hours = (corpus.train_minutes + corpus.test_minutes) / 60
    fixed = FIXED_MINUTES + TOKENIZE_MINUTES_PER_AUDIO_HOUR * audio_hours
    steps = _training_steps(base, tokenizers=start is None)
    full_minutes = sum(STEP_SECONDS[name] * count for name, count in steps.items()) / 60
    scale = (hours * 60 - fixed) / full_minutes
    if scale < MIN_SCALE:
        least = (fixed + MIN_SCALE * full_minutes) / 60
        raise UserError(
            f"{hours:g} h cannot train on {audio_hours:.1f} h of audio: tokenizing it and the steps after training "
            f"alone take about {fixed:.0f} min. Give --hours {least:.1f} or more"
        )
    lines = [
        f"{corpus.train_songs} songs, {corpus.train_minutes:.0f} min to train on ({corpus.train_clips} clips); "
        f"{corpus.test_songs} held out",
        f"budget {hours:g} h: about {fixed:.0f} min go to tokenizing, k-means, export, sampling, verification and "
        f"evaluation; the rest to training, at {scale:.2f} x the chorale recipe's steps",
    ]
    if start is not None:
        lines.append(
            f"  tokenizers and the stages' first weights from {start.run}: the codec and encoder train no more"
        )
    chosen: dict[str, int] = {}
    for name, count in steps.items():
        chosen[name] = max(50, round(count * scale / 50) * 50)
        if name in base.stages:
            passes = MAX_PASSES * corpus.train_clips / base.stages[name].batch_size
            if chosen[name] > passes:
                chosen[name] = max(50, int(passes))
                lines.append(f"  {name} stage capped at {MAX_PASSES} passes over the clips: more would memorise them")
    for name, count in chosen.items():
        lines.append(f"  {name:<17} {count:>6} steps, about {STEP_SECONDS[name] * count / 60:.0f} min")
    total = fixed + sum(STEP_SECONDS[name] * count for name, count in chosen.items()) / 60
    lines.append(
        f"about {total / 60:.1f} h in all on a machine like the reference (2 cores with AVX-512 bf16); others differ"
    )
    return Plan(_with_steps(base, chosen), tuple(lines))


def _training_steps(settings: RecipeSettings, tokenizers: bool = True) -> dict[str, int]:
    stages = {name: stage.steps for name, stage in settings.stages.items()}
    return (
        {"codec": settings.codec.steps, "semantic-encoder": settings.hubert.steps, **stages} if tokenizers else stages
    )


def _with_steps(settings: RecipeSettings, steps: dict[str, int]) -> RecipeSettings:
    """`settings` with these step counts (the others as they are), warmups shortened to a tenth of a short run."""
    codec, hubert = settings.codec, settings.hubert
    codec_steps, hubert_steps = steps.get("codec", codec.steps), steps.get("semantic-encoder", hubert.steps)
    return dataclasses.replace(
        settings,
        codec=dataclasses.replace(
            codec,
            steps=codec_steps,
            warmup_steps=min(codec.warmup_steps, codec_steps // 10),
            autoencoder_steps=min(codec.autoencoder_steps, codec_steps // 10),
        ),
        hubert=dataclasses.replace(
            hubert, steps=hubert_steps, warmup_steps=min(hubert.warmup_steps, hubert_steps // 10)
        ),
        stages={
            name: dataclasses.replace(stage, steps=steps[name], warmup_steps=min(stage.warmup_steps, steps[name] // 10))
            for name, stage in settings.stages.items()
        },
    )


class SongsRecipe(Recipe):
    """The recipe on the songs of split.json (written by `check_songs` before the run starts), from nothing or
    from another run's model."""

    def __init__(
        self,
        out: Path,
        settings: RecipeSettings,
        kind: str,
        start: StartingPoint | None = None,
        launcher: Sequence[str] = (),
    ):
        self.split_path = Path(out) / SPLIT_FILE
        if not self.split_path.is_file():
            raise UserError(f"{out} holds no {SPLIT_FILE}: the songs must be checked first (accompgen recipe songs)")
        self.split = json.loads(self.split_path.read_text())
        self.start = start
        self._check_start(Path(out) / "recipe.json")  # before the settings: a start changes them
        super().__init__(out, settings, kind, launcher)
        self.state["from"] = str(start.run) if start else None

    def _check_start(self, state_path: Path) -> None:
        if not state_path.is_file():
            return
        recorded, given = json.loads(state_path.read_text()).get("from"), str(self.start.run) if self.start else None
        if recorded != given:
            raise UserError(
                f"{state_path.parent} was started from {recorded or 'nothing'}: resume it with "
                f"{'--from ' + recorded if recorded else 'no --from'}, or choose another --out"
            )

    def _corpus_steps(self) -> list[Step]:
        return []  # the songs are the user's; preflight checked them before the run began

    def _tokenizer_steps(self) -> list[Step]:
        if self.start is None:
            return super()._tokenizer_steps()
        start = self.start
        return [
            Step(
                "tokenizers",
                f"take the tokenizers of {start.run.name}",
                lambda report: start.copy_tokenizers(self.codec_dir, self.hubert_dir, self.model_dir),
                self.model_dir / CONFIG_FILE,
            ),
            # the codec is trained already: the step measures it on these held-out songs
            Step("codec", "measure the codec", self._train_codec, self.codec_dir / "report.json"),
            Step(
                "semantic-tokens",
                "measure the semantic tokens",
                self._measure_semantic_tokens,
                self.semantic_tokens_report,
            ),
        ]

    def _start_stage(self, trainer: Trainer) -> None:
        if self.start is not None:
            trainer.start_from(self.start.stage_checkpoint(trainer.stage))

    def _songs(self, split: str) -> list[SongSource]:
        folders = {"train": self.split["data"], "test": self.split["test_folder"] or self.split["data"]}
        sources = {source.name: source for source in folder_songs(folders[split])}
        missing = [name for name in self.split[split] if name not in sources]
        if missing:
            raise UserError(
                f"{', '.join(missing[:5])} of {self.split_path} no longer lie in {folders[split]}: put them back, or "
                "start a new --out"
            )
        return [sources[name] for name in self.split[split]]

    def _other_voice_evaluation(self, music: dict[str, Any], report: Report) -> dict[str, Any]:
        return {}  # only the chorales have a voice no training used

    def _evaluate(self, report: Report) -> None:
        super()._evaluate(report)
        card = model_card(self.split, json.loads(self.evaluation.read_text()), self.state, self.settings, self.start)
        for bundle in (self.bundle, self.compact_bundle):
            write_text_atomic(bundle / "README.md", card)


SPLIT_FILE = "split.json"


def write_split(out: Path, data: Path, test: Path | None, report: PreflightReport) -> dict[str, Any]:
    split = {
        "data": str(data.resolve()),
        "test_folder": str(test.resolve()) if test else None,
        "train": [song.name for song in report.usable("train")],
        "test": [song.name for song in report.usable("test")],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SPLIT_FILE, json.dumps(split, indent=1))
    return split


def same_folders(split: dict[str, Any], data: Path, test: Path | None) -> bool:
    return split["data"] == str(data.resolve()) and split["test_folder"] == (str(test.resolve()) if test else None)


def model_card(
    split: dict[str, Any],
    evaluation: dict[str, Any],
    state: dict[str, Any],
    settings: RecipeSettings,
    start: StartingPoint | None = None,
) -> str:
    """The bundle's README.md: the data, the training, every number of the ladder, the sampling defaults and what
    the model cannot do."""
    music, ladder = evaluation["music"], evaluation["ladder"]
    sampling = music["trained_int8"]["sampling"]
    permutations = ladder["settings"]["permutations"]
    rows = [
        f"| {rung} | {s['title']} | {s['matched']:.3f} | {s['cross_paired']:.3f} | {s['gap']:+.3f} | "
        f"{p_value_text(s['p_value'], permutations)} | {s['harmonic_share']:.2f} | {s['flatness']:.3f} | "
        f"{s['chord_movement']:.2f} | {s['frechet_log_mel']:.1f} |"
        for rung, s in ladder["rungs"].items()
    ]
    tokenizers = [
        ("codec", settings.codec.steps, "codec"),
        ("semantic encoder", settings.hubert.steps, "semantic-encoder"),
    ]
    trained = [
        f"- {name}: {count} steps, {state['steps'].get(step, {}).get('seconds', 0) / 60:.0f} min"
        for name, count, step in (
            *(tokenizers if start is None else []),
            *((f"{name} stage", stage.steps, f"train-{name}") for name, stage in settings.stages.items()),
        )
    ]
    origin = (
        "from nothing"
        if start is None
        else f"started from the model of `{start.run}`, whose codec, semantic encoder and k-means it keeps"
    )
    return "\n".join(
        [
            "# An accompaniment model trained by `accompgen recipe songs`",
            "",
            "## Data",
            f"- trained on {len(split['train'])} songs from `{split['data']}`",
            f"- held out, never trained on: {len(split['test'])} songs from `{split['test_folder'] or split['data']}`:"
            f" {', '.join(split['test'])}",
            "",
            f"## Training (model size `{settings.config}`, {origin})",
            *trained,
            "",
            "## Sampling defaults (chosen on validation songs of the training folder)",
            f"temperature {sampling['temperature']:g}, top-k {sampling['top_k']}, CFG scale {sampling['cfg_scale']:g}",
            "",
            f"## Evaluation: {len(ladder['songs'])} held-out songs, {ladder['settings']['seconds']:g} s each",
            "| rung | what | VAC matched | cross | gap | p | harmonic share | flatness | chord movement | Fréchet "
            "log-mel |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "VAC: vocal-accompaniment consonance of each vocal with its own accompaniment (matched) and with the "
            "others' (cross); the gap and its permutation p say whether the accompaniment follows its vocal.",
            "",
            *semantic_token_lines(evaluation["semantic_tokens"]),
            "## What it cannot do",
            "- It accompanies in the style of these songs only, and knows no music beyond them.",
            "- It hears the vocal alone: no tempo, key or chords can be given, and it does not follow lyrics.",
            f"- It is small (the `{settings.config}` sizes): compare its rungs with the real accompaniment (A) "
            "before trusting it.",
            "",
        ]
    )


def semantic_token_lines(measures: dict[str, Any]) -> list[str]:
    lines = [
        "## Semantic tokens",
        f"- pitch-class accuracy of a held-out vocal's tokens {measures['accuracy']:.2f} (chance "
        f"{measures['chance']:.2f})",
    ]
    if "chord_movement" in measures:  # runs measured before that measure existed lack it
        movement = measures["chord_movement"]
        lines.append(
            f"- chord movement of a held-out accompaniment's tokens {movement['tokens']:.2f} (of the accompaniment "
            f"itself {movement['accompaniment']:.2f})"
        )
    return [*lines, ""]


def run_song_recipe(
    out: Path,
    data: Path,
    test: Path | None,
    hours: float,
    quick: bool,
    overrides: list[str],
    start_run: Path | None = None,
    launcher: Sequence[str] = (),
) -> dict[str, Any]:
    """Check the starting run and the songs (once), say the plan, then run every step not yet done; returns the
    evaluation."""
    from rich.console import Console

    from accompgen.apps.settings_override import override

    console = Console(stderr=True, highlight=False)
    start = starting_point(start_run) if start_run else None
    base = QUICK if quick else FULL
    if start is not None:  # its stage sizes, and clips that cover their windows
        base = dataclasses.replace(base, config=start.config, clips=start.clips)
    corpus = check_songs(out, data, test, base, QUICK_MINIMUM if quick else CorpusMinimum(), console)
    if quick:
        chosen = Plan(base, ("--quick: the tiny sizes, whatever the budget",))
    else:
        chosen = plan(corpus, hours, base, start)
    for line in chosen.lines:
        console.print(line, markup=False)
    settings = chosen.settings
    for assignment in overrides:
        settings = override(settings, assignment)
    return run_recipe(SongsRecipe(out, settings, "songs-quick" if quick else "songs", start, launcher))


def check_songs(
    out: Path, data: Path, test: Path | None, base: RecipeSettings, minimum: CorpusMinimum, console: Any
) -> CorpusSummary:
    """Preflight once per run folder: its report (preflight.json) and the split it fixes (split.json, written
    last: once it is there the songs were checked)."""
    from accompgen.apps.cli import progress_bar
    from accompgen.apps.preflight_report import print_preflight
    from accompgen.data.preflight import preflight

    split_path, report_path = out / SPLIT_FILE, out / "preflight.json"
    if split_path.is_file():
        split = json.loads(split_path.read_text())
        if not same_folders(split, data, test):
            raise UserError(
                f"{out} was started on the songs of {split['data']}"
                f"{' and ' + split['test_folder'] if split['test_folder'] else ''}: resume it with the same --data "
                "and --test, or choose another --out"
            )
        console.print(f"songs checked earlier: {out / 'preflight.json'}")
        return CorpusSummary(**json.loads(report_path.read_text())["summary"])
    train_sources, test_sources = folder_songs(data), folder_songs(test) if test else None
    with progress_bar() as bar:
        task = bar.add_task("checking the songs", total=len(train_sources) + len(test_sources or []))
        report = preflight(
            train_sources,
            test_sources,
            base.clips,
            lambda name: bar.update(task, advance=1, description=name[:30]),
            minimum,
        )
    print_preflight(report, console)
    if report.refusal:
        raise UserError(f"too little to train on: {report.refusal}")
    corpus = CorpusSummary.of(report)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report_path, json.dumps({"summary": dataclasses.asdict(corpus), **report.to_dict()}, indent=1))
    write_split(out, data, test, report)
    return corpus
