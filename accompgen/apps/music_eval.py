"""`accompgen eval-music`: does a bundle's accompaniment fit the vocal it was generated for?

For held-out songs, a bundle generates an accompaniment for a clip of each vocal through the bridge's own runtime
(fixed seeds). Every vocal is scored against every accompaniment with vocal-accompaniment consonance (VAC,
accompgen.core.music): the matched pairs (diagonal) against the cross-paired ones (off the diagonal). A model that
listens to the vocal scores its matched pairs higher; a permutation test over the pairing gives the p-value. The
real accompaniments are scored the same way, as the ceiling.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from accompgen.core.audio import fit_length, resample
from accompgen.core.errors import UserError
from accompgen.core.listening import harmonic_share
from accompgen.core.music import vac
from accompgen.data.stems import Song, SongError, SongSource
from accompgen_bridge.engine import Engine
from accompgen_bridge.job_request import GenerateRequest

MIN_SONGS = 4  # 4! = 24 pairings: the smallest p-value a permutation test can give is 1/24
# Sampling settings whose gaps lie this close follow the vocal alike: on 16 validation chorales one setting's gap moves
# by 0.02-0.03 from seed to seed, while its harmonic share moves by 0.01 and five settings' spread over 0.46-0.64.
GAP_TOLERANCE = 0.03


@dataclass(frozen=True)
class MusicEvalSettings:
    songs: int = 16
    seconds: float = 10.0  # clip length per song
    offset_s: float = 2.0  # where the clip starts: past a chorale's opening upbeat
    seed: int = 0  # song i generates with seed + i
    permutations: int = 20_000


@dataclass(frozen=True)
class Clip:
    name: str
    vocal: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int


def pairing_scores(vocals: list[np.ndarray], accompaniments: list[np.ndarray], rate: int, permutations: int) -> dict:
    """VAC of every vocal with every accompaniment; matched vs cross-paired means and a permutation p-value."""
    n = len(vocals)
    if n < 2:
        raise UserError("scoring the pairing needs at least two songs")
    scores = np.array([[vac(v, a, rate) for a in accompaniments] for v in vocals])
    scores = np.where(np.isnan(scores), 0.0, scores)  # a pair that never sounds together agrees with nothing
    matched = float(np.trace(scores) / n)
    cross = float((scores.sum() - np.trace(scores)) / (n * (n - 1)))
    # The total is fixed, so a pairing's matched-minus-cross gap grows with its diagonal alone.
    rng = np.random.default_rng(0)
    shuffled = np.array([scores[np.arange(n), rng.permutation(n)].mean() for _ in range(permutations)])
    p_value = (1 + int((shuffled >= matched - 1e-12).sum())) / (1 + permutations)
    return {"matched": matched, "cross_paired": cross, "gap": matched - cross, "p_value": p_value}


def read_clips(sources: list[SongSource], settings: MusicEvalSettings) -> tuple[list[Clip], dict[str, str]]:
    """The first `settings.songs` songs long enough for a clip at the offset, all at the first one's sample rate;
    the others listed with why."""
    clips, skipped = [], {}
    for source in sources:
        if len(clips) == settings.songs:
            break
        try:
            song: Song = source.load()
        except SongError as err:
            skipped[source.name] = str(err)
            continue
        start, length = round(settings.offset_s * song.sample_rate), round(settings.seconds * song.sample_rate)
        if len(song.vocals) < start + length:
            skipped[source.name] = f"shorter than {settings.offset_s + settings.seconds:g} s"
            continue
        cut = slice(start, start + length)
        rate = clips[0].sample_rate if clips else song.sample_rate  # every score compares clips at one rate
        samples = round(settings.seconds * rate)
        vocal, accompaniment = (
            fit_length(resample(audio[cut], song.sample_rate, rate), samples)
            for audio in (song.vocals, song.accompaniment)
        )
        clips.append(Clip(source.name, vocal, accompaniment, rate))
    if len(clips) < MIN_SONGS:
        why = "".join(f"; {name}: {reason}" for name, reason in list(skipped.items())[:5])
        raise UserError(
            f"only {len(clips)} usable song(s): eval-music needs at least {MIN_SONGS} (the permutation test over fewer "
            f"pairings cannot reach p < 0.05){why}"
        )
    return clips, skipped


def generate_for(
    engine: Engine,
    clips: list[Clip],
    settings: MusicEvalSettings,
    progress: Callable[[str], None] | None = None,
    sampling: dict[str, Any] | None = None,
) -> list[np.ndarray]:
    """One accompaniment per clip, at the clip's rate, generated from a WAV of its vocal as a user would;
    `sampling` overrides the bundle's defaults (cfg_scale, temperature, top_k)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="accompgen-eval-") as tmp:
        for i, clip in enumerate(clips):
            if progress:
                progress(f"{clip.name} ({i + 1}/{len(clips)})")
            path = Path(tmp) / f"{i}.wav"
            sf.write(path, clip.vocal, clip.sample_rate, subtype="FLOAT")
            request = GenerateRequest(str(path), 0.0, settings.seconds, seed=settings.seed + i, **(sampling or {}))
            out.append(engine.generate(request).audio[0])
    return out


def choose_sampling(
    bundle: Path,
    sources: list[SongSource],
    candidates: list[dict[str, Any]],
    settings: MusicEvalSettings,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The candidate sampling settings whose accompaniments fit their vocals and sound most like instruments
    (`pick_sampling`) on `sources`, which must not be the songs the bundle is finally judged on. Returns the
    choice and every candidate's scores."""
    if len(candidates) == 1:
        return candidates[0], []
    clips, _ = read_clips(sources, settings)
    engine = Engine(bundle, "cpu")
    vocals, rate = [clip.vocal for clip in clips], clips[0].sample_rate
    tried = []
    for number, candidate in enumerate(candidates):
        if progress:
            progress(f"sampling {number + 1}/{len(candidates)}: {candidate}")
        generated = generate_for(engine, clips, settings, sampling=candidate)
        scores = pairing_scores(vocals, generated, rate, settings.permutations)
        shares = [share for share in (harmonic_share(audio, rate) for audio in generated) if not np.isnan(share)]
        partials = float(np.mean(shares)) if shares else 0.0  # silence has no partials
        tried.append({"sampling": candidate, **scores, "harmonic_share": partials})
    return pick_sampling(tried), tried


def pick_sampling(tried: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the settings whose matched-minus-cross VAC gap is within GAP_TOLERANCE of the best, the one whose
    accompaniments have the most energy on their partials: at the same fit to the vocal, the one that sounds least
    like noise."""
    best = max(row["gap"] for row in tried)
    close = [row for row in tried if row["gap"] >= best - GAP_TOLERANCE]
    return max(close, key=lambda row: row["harmonic_share"])["sampling"]


def evaluate_music(
    bundles: dict[str, Path],
    sources: list[SongSource],
    settings: MusicEvalSettings,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Scores of every named bundle and of the real accompaniments, on the same clips."""
    clips, skipped = read_clips(sources, settings)
    rate = clips[0].sample_rate
    vocals = [clip.vocal for clip in clips]
    report: dict[str, Any] = {
        "settings": asdict(settings),
        "songs": [clip.name for clip in clips],
        "skipped": skipped,
        "real": pairing_scores(vocals, [clip.accompaniment for clip in clips], rate, settings.permutations),
    }
    for name, bundle in bundles.items():
        engine = Engine(bundle, device)

        def tell(text: str, name: str = name) -> None:
            if progress:
                progress(f"{name}: {text}")

        generated = generate_for(engine, clips, settings, tell)
        report[name] = {
            "bundle": str(bundle),
            "sampling": asdict(engine.manifest.sampling),
            **pairing_scores(vocals, generated, rate, settings.permutations),
        }
    return report


def print_report(report: dict[str, Any]) -> None:
    """The scores as a table: matched, cross-paired, gap and p-value per source, and the share of the real VAC."""
    from rich.console import Console
    from rich.table import Table

    real = report["real"]["matched"]
    table = Table("accompaniment", "matched VAC", "cross-paired", "gap", "p-value", "of real")
    for name in [key for key in report if isinstance(report[key], dict) and "matched" in report[key]]:
        scores = report[name]
        share = f"{scores['matched'] / real:.0%}" if real > 0 else "-"
        table.add_row(
            name,
            f"{scores['matched']:.3f}",
            f"{scores['cross_paired']:.3f}",
            f"{scores['gap']:+.3f}",
            f"{scores['p_value']:.4f}",
            share,
        )
    Console().print(table)
    print(f"{len(report['songs'])} held-out songs, {report['settings']['seconds']:g} s each")
