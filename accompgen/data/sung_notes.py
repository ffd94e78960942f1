"""What both synthesized singers need from a melody: where each note starts and ends on the sample clock, which note
sounds at each sample, and the slow random wander of a real voice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

TAIL_S = 1.0  # the audio runs this long past the last note's end, for releases and rooms


@dataclass(frozen=True)
class SungNotes:
    onsets: np.ndarray  # (notes,) seconds
    ends: np.ndarray  # (notes,) seconds, `gap_s` before the written end, so a repeated note is heard again
    pitches: np.ndarray  # (notes,) MIDI, float
    t: np.ndarray  # (samples,) seconds
    note: np.ndarray  # (samples,) index of the note sounding (or last sounded) at each sample

    @classmethod
    def of(
        cls,
        notes: list[tuple[float, float, int]],
        seconds_per_quarter: float,
        sample_rate: int,
        gap_s: float,
        min_length_s: float = 0.0,
    ) -> SungNotes:
        """(onset, duration in quarters, MIDI pitch) notes; a note lasts at least `min_length_s` however short
        the score's is."""
        onsets = np.array([onset for onset, _, _ in notes]) * seconds_per_quarter
        written = np.array([onset + length for onset, length, _ in notes]) * seconds_per_quarter - gap_s
        ends = np.maximum(onsets + min_length_s, written)
        n = round((ends.max() + TAIL_S) * sample_rate)
        t = np.arange(n) / sample_rate
        note = np.clip(np.searchsorted(onsets, t, side="right") - 1, 0, len(notes) - 1)
        return cls(onsets, ends, np.array([pitch for _, _, pitch in notes], dtype=float), t, note)

    @property
    def samples(self) -> int:
        return len(self.t)


def wander(rng: np.random.Generator, n: int, rate: int, hz: float) -> np.ndarray:
    """Unit-deviation noise low-passed at `hz`: the slow irregularity of a real voice."""
    noise = sosfilt(butter(2, hz, fs=rate, output="sos"), rng.standard_normal(n))
    return np.asarray(noise / max(float(noise.std()), 1e-9))
