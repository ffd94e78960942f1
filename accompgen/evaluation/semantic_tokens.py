"""How much pitch the semantic tokens carry: guessing a vocal's pitch class from its token alone.

On the training songs every token is mapped to the pitch class it most often sounds with (the loudest chroma bin
of the vocal at that 50 Hz frame); on held-out songs that mapping guesses the pitch class of every sounding frame.
Chance is the share of the most frequent pitch class among the held-out frames.
"""

from __future__ import annotations

import numpy as np

from accompgen.core.audio import resample
from accompgen.core.music import ACTIVE_DB, pitch_class_filters, power_spectrogram
from accompgen.core.semantic_framing import SEMANTIC_HOP, SEMANTIC_SAMPLE_RATE
from accompgen.core.tokens import SEMANTIC_RATE_HZ, frames_for

LABEL_N_FFT = 2048


def frame_chroma(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(F50, 12) pitch-class energy of every 50 Hz frame and (F50,) whether the frame sounds."""
    audio_16k = resample(audio, rate, SEMANTIC_SAMPLE_RATE)
    frames = frames_for(len(audio) / rate, SEMANTIC_RATE_HZ)
    # window f centred on the middle of semantic frame f, as the tokenizer frames it
    padded = np.pad(audio_16k, (LABEL_N_FFT // 2 - SEMANTIC_HOP // 2, LABEL_N_FFT))
    power = power_spectrogram(padded, LABEL_N_FFT, SEMANTIC_HOP)[:frames]
    classes = power @ pitch_class_filters(SEMANTIC_SAMPLE_RATE, LABEL_N_FFT, (55.0, 2000.0))
    energy = classes.sum(axis=1)
    return classes, energy > energy.max() * 10 ** (ACTIVE_DB / 10)


def token_pitch_accuracy(
    train_tokens: np.ndarray, train_labels: np.ndarray, test_tokens: np.ndarray, test_labels: np.ndarray
) -> dict[str, float]:
    """Every token guesses the pitch class it most often sounds with in training; a token never seen there
    guesses wrong."""
    size = int(max(train_tokens.max(), 0)) + 1
    counts = np.zeros((size, 12), dtype=np.int64)
    np.add.at(counts, (train_tokens, train_labels), 1)
    guess = counts.argmax(axis=1)
    index = np.minimum(test_tokens, size - 1)
    predicted = np.where((test_tokens < size) & (counts.sum(axis=1) > 0)[index], guess[index], -1)
    return {
        "accuracy": float((predicted == test_labels).mean()),
        "chance": float(np.bincount(test_labels, minlength=12).max() / len(test_labels)),
        "frames": len(test_labels),
    }
