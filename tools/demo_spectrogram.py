"""Draw the spectrograms of a demo's vocal and accompaniment, as the README shows them.

    accompgen demo && python tools/demo_spectrogram.py [--demo accompgen-demo] [--out docs/demo-spectrogram.jpg]

Needs matplotlib (`pip install -e '.[bench]'`). The accompaniment is drawn up to 1.2 kHz, where its partials lie, and
up to 6 kHz, where its noise does; the vocal up to 6 kHz.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

PANELS = (("accompaniment", 1200, 4096), ("accompaniment", 6000, 2048), ("vocal", 6000, 2048))  # file, top Hz, FFT


def mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32")
    return (audio.mean(axis=1) if audio.ndim > 1 else audio), rate


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("accompgen-demo"), help="folder `accompgen demo` wrote")
    parser.add_argument("--out", type=Path, default=Path("docs/demo-spectrogram.jpg"))
    args = parser.parse_args()
    figure, axes = plt.subplots(len(PANELS), 1, figsize=(10, 8), sharex=True)
    for axis, (name, top_hz, n_fft) in zip(axes, PANELS, strict=True):
        audio, rate = mono(args.demo / f"{name}.wav")
        axis.specgram(audio, NFFT=n_fft, Fs=rate, noverlap=n_fft * 7 // 8, cmap="magma", vmin=-120)
        axis.set_ylim(0, top_hz)
        axis.set_ylabel("Hz")
        axis.set_title(f"{name}, 0-{top_hz} Hz", fontsize=10)
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=60, pil_kwargs={"quality": 80})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
