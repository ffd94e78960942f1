"""A source-filter singer that no training corpus uses: the voice family for "does it hear a voice it never heard?".

The chorale corpus sings its melodies on two General-MIDI sample patches; a real singer sounds like neither. This
synthesizer makes a different kind of voice from the same notes, as speech science models one (Klatt 1980;
Rosenberg 1971): a glottal pulse with jitter and shimmer, aspiration noise in time with the pulse, a cascade of
five formant resonators moving from vowel to vowel, consonant noise before some syllables, portamento between
notes, vibrato that sets in after the attack, a small room. Each song gets its own singer (vocal-tract length,
vibrato, breathiness) drawn from its name. It is kept out of every training path on purpose: it renders only
held-out songs (`accompgen render-chorales --unseen-voice`), so its score measures generalisation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from accompgen.data.sung_notes import SungNotes, wander
from accompgen.data.vocal_chain import room

# (F1..F5 Hz, bandwidths Hz) of five vowels of a female voice: typical textbook values, rounded
VOWELS = {
    "a": ((800, 1150, 2900, 3900, 4950), (80, 90, 120, 130, 140)),
    "e": ((400, 1600, 2700, 3300, 4950), (60, 80, 120, 150, 200)),
    "i": ((350, 1700, 2700, 3700, 4950), (50, 100, 120, 150, 200)),
    "o": ((450, 800, 2830, 3500, 4950), (70, 80, 100, 130, 135)),
    "u": ((325, 700, 2530, 3500, 4950), (50, 60, 170, 180, 200)),
}
BLOCK_S = 0.005  # formants move in blocks this long, the filters' state carried across
GLIDE_S = 0.06  # portamento between notes
ATTACK_S, RELEASE_S = 0.04, 0.08
NOTE_GAP_S = 0.03  # a repeated note is released this much early


@dataclass(frozen=True)
class Singer:
    tract_scale: float  # formant frequencies times this (a shorter vocal tract sings higher formants)
    vibrato_hz: float
    vibrato_semitones: float  # depth either way
    vibrato_delay_s: float  # after a note's onset
    jitter_semitones: float  # slow random wander of the pitch
    shimmer: float  # relative slow random wander of the level
    breath: float  # aspiration noise against the voiced source
    consonants: float  # probability that a note starts a syllable with a consonant
    room: float  # share of the reverberant sound

    @classmethod
    def for_song(cls, name: str) -> Singer:
        rng = np.random.default_rng(int(hashlib.sha1(f"singer:{name}".encode()).hexdigest()[:12], 16))
        return cls(
            tract_scale=float(rng.uniform(0.95, 1.12)),
            vibrato_hz=float(rng.uniform(4.8, 6.5)),
            vibrato_semitones=float(rng.uniform(0.2, 0.6)),
            vibrato_delay_s=float(rng.uniform(0.15, 0.4)),
            jitter_semitones=float(rng.uniform(0.03, 0.12)),
            shimmer=float(rng.uniform(0.05, 0.2)),
            breath=float(rng.uniform(0.02, 0.12)),
            consonants=float(rng.uniform(0.3, 0.8)),
            room=float(rng.uniform(0.05, 0.25)),
        )


def sing(
    notes: list[tuple[float, float, int]], seconds_per_quarter: float, sample_rate: int, singer: Singer, seed: int
) -> np.ndarray:
    """(onset, duration in quarters, MIDI pitch) notes -> mono float32 audio, RELEASE_S after the last note."""
    rng = np.random.default_rng(seed)
    sung = SungNotes.of(notes, seconds_per_quarter, sample_rate, NOTE_GAP_S, min_length_s=0.05)
    t, note, n = sung.t, sung.note, sung.samples
    semitones = _smooth(sung.pitches[note], round(GLIDE_S * sample_rate))
    since_onset = t - sung.onsets[note]
    depth = singer.vibrato_semitones * np.clip((since_onset - singer.vibrato_delay_s) / 0.3, 0.0, 1.0)
    semitones += depth * np.sin(2 * np.pi * singer.vibrato_hz * t)
    semitones += singer.jitter_semitones * wander(rng, n, sample_rate, hz=8.0)
    f0 = 440.0 * 2 ** ((semitones - 69) / 12)
    phase = np.cumsum(f0) / sample_rate
    flow = _rosenberg(phase % 1.0)
    voiced = np.diff(flow, prepend=0.0) * sample_rate / f0.mean()  # the lips radiate the flow's derivative
    voiced *= 1.0 + singer.shimmer * wander(rng, n, sample_rate, hz=12.0)
    source = voiced + singer.breath * rng.standard_normal(n) * (0.3 + flow)
    level = _note_envelope(sung, sample_rate)
    vowels = rng.choice(list(VOWELS), len(notes))
    audio = _vocal_tract(source * level, note, vowels, singer.tract_scale, sample_rate)
    audio += _consonants(rng, sung.onsets, sample_rate, n, singer.consonants)
    audio = room(audio, sample_rate, singer.room, 0.4, rng)
    return np.asarray(0.5 * audio / max(float(np.abs(audio).max()), 1e-9), dtype=np.float32)


def _rosenberg(phase: np.ndarray, opening: float = 0.45, closing: float = 0.15) -> np.ndarray:
    """Glottal flow over one period (phase in [0, 1)): a raised-cosine opening, a quarter-cosine closing, closed."""
    flow = np.zeros_like(phase)
    rising = phase < opening
    flow[rising] = 0.5 * (1 - np.cos(np.pi * phase[rising] / opening))
    falling = (phase >= opening) & (phase < opening + closing)
    flow[falling] = np.cos(0.5 * np.pi * (phase[falling] - opening) / closing)
    return flow


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    kernel = np.hanning(max(3, width))
    padded = np.pad(values, (len(kernel) // 2, len(kernel) - len(kernel) // 2 - 1), mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def _note_envelope(sung: SungNotes, rate: int) -> np.ndarray:
    t, note = sung.t, sung.note
    attack = np.clip((t - sung.onsets[note]) / ATTACK_S, 0.0, 1.0)
    release = np.clip((sung.ends[note] + RELEASE_S - t) / RELEASE_S, 0.0, 1.0)
    phrase = 0.8 + 0.2 * np.sin(2 * np.pi * t / 7.0)  # a slow swell, as phrases have
    return _smooth(attack * release, round(0.01 * rate)) * phrase


def _vocal_tract(source: np.ndarray, note: np.ndarray, vowels: np.ndarray, scale: float, rate: int) -> np.ndarray:
    """A cascade of five two-pole resonators whose formants glide to each note's vowel, block by block."""
    block = round(BLOCK_S * rate)
    targets = np.array([VOWELS[v][0] for v in vowels], dtype=float) * scale  # (notes, 5)
    widths = np.array([VOWELS[v][1] for v in vowels], dtype=float)
    starts = np.arange(0, len(source), block)
    formants = _smooth_rows(targets[note[starts]], 12)
    bandwidths = _smooth_rows(widths[note[starts]], 12)
    out = np.empty_like(source)
    states = np.zeros((5, 2))
    for i, start in enumerate(starts):
        chunk = source[start : start + block]
        for k in range(5):
            b, a = _resonator(formants[i, k], bandwidths[i, k], rate)
            chunk, states[k] = lfilter(b, a, chunk, zi=states[k])
        out[start : start + block] = chunk
    return out


def _smooth_rows(values: np.ndarray, width: int) -> np.ndarray:
    return np.stack([_smooth(values[:, k], width) for k in range(values.shape[1])], axis=1)


def _resonator(frequency: float, bandwidth: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Klatt's digital resonator, unit gain at 0 Hz."""
    frequency = min(frequency, 0.45 * rate)
    c = -np.exp(-2 * np.pi * bandwidth / rate)
    b = 2 * np.exp(-np.pi * bandwidth / rate) * np.cos(2 * np.pi * frequency / rate)
    return np.array([1.0 - b - c]), np.array([1.0, -b, -c])


def _consonants(rng: np.random.Generator, onsets: np.ndarray, rate: int, n: int, probability: float) -> np.ndarray:
    """Short bursts of band-passed noise just before some onsets: s, sh, f, h."""
    out = np.zeros(n)
    bands = ((4000, 9000), (2000, 5000), (1200, 8000), (500, 3000))
    for onset in onsets[rng.random(len(onsets)) < probability]:
        length = round(rng.uniform(0.03, 0.08) * rate)
        start = max(0, round(onset * rate) - length)
        low, high = bands[rng.integers(len(bands))]
        sos = butter(2, (low, min(high, 0.45 * rate)), btype="band", fs=rate, output="sos")
        burst = sosfilt(sos, rng.standard_normal(length)) * np.hanning(length)
        out[start : start + length] += 0.3 * burst[: n - start]
    return out
