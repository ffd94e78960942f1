"""Training sequences of one stage: windows cut from prepared clips, condition + SEP + target, one layout for all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accompgen.core.errors import UserError
from accompgen.core.pipeline import StagePlan
from accompgen.core.tokens import NULL, PATTERNS, Stage, TokenLayout, build_window
from accompgen.data.clips import song_splits
from accompgen.data.prepare import read_index

GRID_S = 0.04  # windows start on multiples of this: a whole number of 50 Hz and 75 Hz frames


@dataclass(frozen=True)
class Batch:
    ids: np.ndarray  # (B, L), or (B, L, W) for W slots per position: condition, SEP, target steps
    ticks: np.ndarray  # (L,)
    condition_length: int  # Lc: position Lc holds SEP, target step j sits at Lc + 1 + j
    lo: np.ndarray  # (J, W) the id range of every target slot (accompgen.core.tokens.step_bounds); -1: empty
    hi: np.ndarray  # (J, W)

    @property
    def target_steps(self) -> int:
        """The target steps this batch's loss covers: every position after SEP predicts one, in every row."""
        return (self.ids.shape[1] - self.condition_length - 1) * len(self.ids)


class StageWindows:
    """All clips of one split in memory, as per-track arrays (C, K, F)."""

    def __init__(
        self,
        tokens_dir: str | Path,
        layout: TokenLayout,
        stage: Stage,
        plan: StagePlan,
        split: str = "train",  # train, val (about one song in val_every, by name) or all
    ):
        index = read_index(Path(tokens_dir))
        if index["layout"] != layout.to_dict():
            raise UserError(f"{tokens_dir} was prepared for another token layout than this model's")
        clip_s = index["clips"]["clip_s"]
        if plan.window_s > clip_s + 1e-9:
            raise UserError(
                f"the {stage.name} window ({plan.window_s:g} s) is longer than the prepared clips ({clip_s:g} s)"
            )
        splits = song_splits(sorted(index["songs"]), index["clips"]["val_every"])
        shards = [song["shard"] for name, song in index["songs"].items() if split in ("all", splits[name])]
        if not shards:
            raise UserError(f"{tokens_dir} holds no {split} songs: prepare more songs")
        arrays = [np.load(Path(tokens_dir) / "shards" / shard) for shard in shards]
        codes = np.concatenate([a["codes"] for a in arrays])
        self.songs = np.repeat(np.arange(len(arrays)), [len(a["codes"]) for a in arrays])  # clip -> its song
        self.tracks = {
            "vocal_semantic": np.concatenate([a["vocal_semantic"] for a in arrays])[:, None, :],
            "inst_semantic": np.concatenate([a["inst_semantic"] for a in arrays])[:, None, :],
            "coarse": codes[:, : layout.coarse_codebooks],
            "fine": codes[:, layout.coarse_codebooks :],
        }
        self.stage = stage
        self.window_s = plan.window_s
        self.pattern = PATTERNS[plan.pattern]
        self.offsets = round((clip_s - plan.window_s) / GRID_S) + 1  # possible window starts per clip

    def __len__(self) -> int:
        return len(self.tracks["vocal_semantic"])

    @property
    def song_count(self) -> int:
        """Songs with at least one clip in this split."""
        return len(np.unique(self.songs))

    def clips_of_other_songs(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each clip, a random clip of another song: another clip of the same song shares its key and, where
        the clips overlap, its very notes, so it would be a mismatched condition only in name."""
        if self.song_count < 2:
            raise UserError("a mismatched condition needs clips of at least two songs")
        others = np.empty_like(clips)
        for row, clip in enumerate(clips):
            candidates = np.flatnonzero(self.songs != self.songs[clip])
            others[row] = candidates[rng.integers(len(candidates))]
        return others

    def batch(
        self,
        clips: np.ndarray,
        rng: np.random.Generator,
        cond_dropout: float = 0.0,
        condition_clips: np.ndarray | None = None,
    ) -> Batch:
        """Sequences of the given clips at random grid offsets; with probability `cond_dropout` a row's whole
        condition becomes NULL, which teaches the unconditional model classifier-free guidance needs.
        `condition_clips` takes each row's condition from another clip (evaluation with a mismatched condition)."""
        starts = rng.integers(0, self.offsets, len(clips)) * GRID_S
        condition_clips = clips if condition_clips is None else condition_clips
        rows = []
        for clip, condition_clip, start_s in zip(clips, condition_clips, starts, strict=True):
            tracks = {}
            for track in (*self.stage.condition, self.stage.target):
                lo = round(start_s * track.rate_hz)
                row = clip if track is self.stage.target else condition_clip
                tracks[track.name] = self.tracks[track.name][row : row + 1, :, lo : lo + track.frames(self.window_s)]
            target = tracks.pop(self.stage.target.name)
            rows.append(build_window(self.stage, tracks, target.shape[-1], target, self.pattern))
        ids = np.concatenate([row.prefix() for row in rows])  # (B, L, W): the whole target is known
        condition_length = rows[0].condition.shape[1]
        dropped = rng.random(len(clips)) < cond_dropout
        ids[dropped, :condition_length, 0] = NULL
        return Batch(ids if rows[0].slots > 1 else ids[..., 0], rows[0].ticks, condition_length, rows[0].lo, rows[0].hi)
