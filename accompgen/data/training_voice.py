"""An additive singer for the training corpus: sung vowels that no sample patch has, in many vocal tracts.

Harmonics of the melody's pitch raised near three formants per vowel (accompgen.core.synth.harmonic_voice), with
vibrato, a slow pitch wander, breath noise and note envelopes; each rendition draws its own vocal-tract scale
(child to bass-baritone formants), vibrato and breathiness. It is a different family from the evaluation singer
(accompgen.data.singer: a glottal pulse through a resonator cascade, with consonants and portamento), which no
training path uses.
"""

from __future__ import annotations

import numpy as np

from accompgen.core.synth import harmonic_voice
from accompgen.data.sung_notes import SungNotes, wander

# F1-F3 (Hz) of five vowels, a mid-sized vocal tract: ah, eh, ee, oh, oo
FORMANTS = np.array(
    [(710, 1100, 2640), (550, 1770, 2490), (300, 2300, 3000), (540, 900, 2500), (350, 800, 2300)], dtype=float
)
TRACT_SCALE = (0.85, 1.25)
NOTE_GAP_S = 0.02


def sing_additive(
    notes: list[tuple[float, float, int]], seconds_per_quarter: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """(onset, duration in quarters, MIDI pitch) notes -> mono float32 audio peaking at 0.5, one second past the
    last note's end."""
    sung = SungNotes.of(notes, seconds_per_quarter, sample_rate, NOTE_GAP_S)
    t, note = sung.t, sung.note
    vibrato = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * rng.uniform(4.5, 7.0) * t + rng.uniform(0, 2 * np.pi))
    drift = wander(rng, sung.samples, sample_rate, 4.0)
    semitones = sung.pitches[note] + vibrato + rng.uniform(0.0, 0.1) * drift
    f0 = 440.0 * 2 ** ((semitones - 69) / 12)
    vowels = rng.integers(len(FORMANTS), size=len(notes))
    voice = harmonic_voice(f0, FORMANTS[vowels][note] * rng.uniform(*TRACT_SCALE), sample_rate)
    attack = np.clip((t - sung.onsets[note]) / rng.uniform(0.02, 0.1), 0.0, 1.0)
    release = np.clip((sung.ends[note] - t) / 0.05, 0.0, 1.0)
    audio = voice * attack * release + rng.uniform(0.0, 0.05) * rng.standard_normal(sung.samples) * attack * release
    return np.asarray(0.5 * audio / max(float(np.abs(audio).max()), 1e-9), dtype=np.float32)
