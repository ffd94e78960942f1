"""The evaluation ladder: where, between the real accompaniment and the model's output, the music is lost.

For every held-out clip each rung renders an accompaniment, and every rung is scored the same way:
- A  the real accompaniment;
- B  the codec round trip: the real accompaniment through the codec's own encoder and the bundle's decoder, with
     all codebooks (B) and with the coarse ones the coarse stage writes (B coarse);
- E  the real accompaniment's semantic tokens through the coarse and fine stages (an oracle semantic stage);
- F  the real coarse codes through the fine stage (an oracle coarse stage);
- C  the model, from the vocal alone;
- D  the model's preview (no fine stage);
- B_k and E_k, on request: B's and E's codes cut to their first k codebooks, what a coarse stage that writes only k
     could sound like at best (B_k) and with this model's tokens (E_k).
Scores per rung: VAC matched / cross-paired / gap / p (accompgen.apps.music_eval), harmonic share, spectral
flatness and chord movement with the melody (accompgen.core.listening), and the Frechet distance between log-mel
frames of the rung and of the real accompaniments (accompgen.evaluation.fad). B and F need the codec's encoder,
which bundles do not ship: a recipe keeps it in its run folder (RUN/codec).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accompgen.apps.music_eval import Clip, MusicEvalSettings, pairing_scores, read_clips
from accompgen.core.audio import fit_length, resample
from accompgen.core.errors import UserError
from accompgen.core.listening import chord_movement, harmonic_share, spectral_flatness
from accompgen.core.pipeline import generate_codes
from accompgen.core.tokens import frames_for
from accompgen.data.stems import SongSource
from accompgen.evaluation.fad import SpectralEmbedding, fad
from accompgen.tokenizers.codec import Codec
from accompgen_bridge.engine import Engine

RUNGS = {
    "A": "the real accompaniment",
    "B": "codec round trip, all codebooks",
    "B_coarse": "codec round trip, coarse codebooks",
    "E": "real semantic tokens -> coarse -> fine",
    "F": "real coarse codes -> fine",
    "C": "the model",
    "D": "the model, preview (no fine stage)",
}
NEEDS_CODEC = ("B", "B_coarse", "F")


def first_codebooks_titles(counts: tuple[int, ...]) -> dict[str, str]:
    """The rungs cut to their first k codebooks, in the ladder's order (all B_k, then all E_k)."""
    return {f"B_{k}": f"codec round trip, first {k} codebook(s)" for k in counts} | {
        f"E_{k}": f"E's first {k} codebook(s)" for k in counts
    }


@dataclass(frozen=True)
class LadderRenderer:
    """Renders every rung of one clip with a bundle's runtime (and the codec's encoder, when given)."""

    engine: Engine
    codec: Codec | None
    seconds: float
    first_codebooks: tuple[int, ...] = ()  # also render B and E cut to their first k codebooks

    def rungs(self, clip: Clip, seed: int) -> dict[str, np.ndarray]:
        manifest = self.engine.manifest
        rate, layout = clip.sample_rate, manifest.tokens
        options = manifest.sampling.options(seed, 1)
        plans = {name: spec.plan for name, spec in manifest.stages.items()}
        vocal_ids = self.engine.encode(clip.vocal, rate, self.seconds)
        real_semantic = self.engine.encode(clip.accompaniment, rate, self.seconds)[None, None]  # (1, 1, F50)

        def model(preview: bool = False, **given: np.ndarray) -> np.ndarray:
            factories = self.engine.inference_factories()
            return generate_codes(layout, plans, vocal_ids, self.seconds, factories, options, preview, given=given)

        oracle_semantic = model(inst_semantic=real_semantic)
        out = {
            "A": clip.accompaniment,
            "E": self.render(oracle_semantic, rate),
            "C": self.render(model(), rate),
            "D": self.render(model(preview=True), rate),
        }
        out |= {f"E_{k}": self.render(oracle_semantic[:, :k], rate) for k in self.first_codebooks}
        if self.codec is not None:
            codes = self.real_codes(clip)
            coarse = codes[:, : layout.coarse_codebooks]
            out |= {
                "B": self.render(codes, rate),
                "B_coarse": self.render(coarse, rate),
                "F": self.render(model(inst_semantic=real_semantic, coarse=coarse), rate),
            }
            out |= {f"B_{k}": self.render(codes[:, :k], rate) for k in self.first_codebooks}
        return out

    def real_codes(self, clip: Clip) -> np.ndarray:
        """(1, K, F75) codes of the real accompaniment by the codec's own encoder."""
        assert self.codec is not None
        audio = resample(clip.accompaniment, clip.sample_rate, self.codec.sample_rate)
        codes = self.codec.encode(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]).numpy()
        frames = frames_for(self.seconds, self.engine.manifest.tokens.stages["coarse"].target.rate_hz)
        return np.pad(codes, ((0, 0), (0, 0), (0, max(0, frames - codes.shape[-1]))), mode="edge")[..., :frames]

    def render(self, codes: np.ndarray, rate: int) -> np.ndarray:
        """(1, k, F75) codes -> the clip's length of audio at its rate, through the bundle's decoder."""
        audio = self.engine.decode(codes)[0]
        audio = resample(audio, self.engine.manifest.audio.codec_sample_rate, rate)
        return fit_length(audio, round(self.seconds * rate))


def score_rung(
    vocals: list[np.ndarray], audios: list[np.ndarray], real: list[np.ndarray], rate: int, permutations: int
) -> dict[str, float]:
    embedding = SpectralEmbedding()

    def frames(signals: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([embedding.embed(resample(s, rate, embedding.sample_rate)) for s in signals])

    return {
        **pairing_scores(vocals, audios, rate, permutations),
        "harmonic_share": float(np.nanmean([harmonic_share(a, rate) for a in audios])),
        "flatness": float(np.nanmean([spectral_flatness(a, rate) for a in audios])),
        "chord_movement": chord_movement(list(zip(vocals, audios, strict=True)), rate),
        "frechet_log_mel": max(0.0, fad(frames(audios), frames(real))),  # rounding leaves -1e-12 for A itself
    }


def evaluate_ladder(
    bundle: Path,
    sources: list[SongSource],
    settings: MusicEvalSettings,
    codec_dir: Path | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    first_codebooks: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Every rung's scores on the same held-out clips; song i generates with seed + i, as eval-music does.
    `first_codebooks`: also B_k and E_k for each k given (1 <= k < the bundle's codebooks)."""
    engine = Engine(bundle, device)
    codebooks = engine.manifest.tokens.num_codebooks
    if not all(1 <= k < codebooks for k in first_codebooks):
        raise UserError(
            f"first codebooks {', '.join(map(str, first_codebooks))}: each must lie in 1..{codebooks - 1}, "
            f"fewer than the bundle's {codebooks}"
        )
    clips, skipped = read_clips(sources, settings)
    codec = Codec.from_pretrained(codec_dir, engine.manifest.tokens) if codec_dir else None
    renderer = LadderRenderer(engine, codec, settings.seconds, first_codebooks)
    rendered: dict[str, list[np.ndarray]] = {}
    for i, clip in enumerate(clips):
        if progress:
            progress(f"{clip.name} ({i + 1}/{len(clips)})")
        for rung, audio in renderer.rungs(clip, settings.seed + i).items():
            rendered.setdefault(rung, []).append(audio)
    rate, vocals, real = clips[0].sample_rate, [c.vocal for c in clips], rendered["A"]
    report: dict[str, Any] = {
        "bundle": str(bundle),
        "codec": str(codec_dir) if codec_dir else None,
        "settings": asdict(settings),
        "songs": [clip.name for clip in clips],
        "skipped": skipped,
        "rungs": {},
    }
    for rung, title in (RUNGS | first_codebooks_titles(first_codebooks)).items():
        if rung in rendered:
            scores = score_rung(vocals, rendered[rung], real, rate, settings.permutations)
            report["rungs"][rung] = {"title": title, **scores}
    if codec is None:
        needs_codec = NEEDS_CODEC + tuple(f"B_{k}" for k in first_codebooks)
        report["not_measured"] = {rung: "needs the codec's encoder (--codec RUN/codec)" for rung in needs_codec}
    return report


def print_ladder(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("rung", "VAC matched", "cross", "gap", "p", "harmonic", "flatness", "chord mvt", "Frechet mel")
    for rung, s in report["rungs"].items():
        table.add_row(
            rung,
            f"{s['matched']:.3f}",
            f"{s['cross_paired']:.3f}",
            f"{s['gap']:+.3f}",
            p_value_text(s["p_value"], report["settings"]["permutations"]),
            f"{s['harmonic_share']:.2f}",
            f"{s['flatness']:.3f}",
            f"{s['chord_movement']:.2f}",
            f"{s['frechet_log_mel']:.1f}",
        )
    Console().print(table)
    print("; ".join(f"{rung}: {s['title']}" for rung, s in report["rungs"].items()))
    for rung, why in report.get("not_measured", {}).items():
        print(f"{rung} not measured: {why}")
    print(f"{len(report['songs'])} held-out songs, {report['settings']['seconds']:g} s each")


def p_value_text(p: float, permutations: int) -> str:
    """The permutation test's smallest p is 1 / (permutations + 1): at that, say it is below 1 / permutations."""
    return f"< {1 / permutations:.0e}" if p <= 1 / (permutations + 1) + 1e-15 else f"{p:.4f}"
