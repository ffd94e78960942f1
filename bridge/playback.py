"""Listen through the default audio device: an output, optionally mixed with the vocal it accompanies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from accompgen.core.audio import fit_length, resample
from accompgen.core.errors import UserError


def mix_for_playback(output: Path, vocal: Path | None) -> tuple[np.ndarray, int]:
    """(frames,) mono float32 at the output's rate, peak-limited so the sum never clips."""
    audio, rate = sf.read(str(output), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if vocal is not None:
        voice, voice_rate = sf.read(str(vocal), dtype="float32", always_2d=True)
        mono = mono + fit_length(resample(voice.mean(axis=1), voice_rate, rate), len(mono))
    peak = float(np.abs(mono).max(initial=0.0))
    return (mono / peak * 0.9 if peak > 0.9 else mono), rate


def play_files(output: Path, vocal: Path | None = None) -> None:
    for path in (output, vocal):
        if path is not None and not path.is_file():
            raise UserError(f"{path} does not exist")
    audio, rate = mix_for_playback(output, vocal)
    try:
        import sounddevice as sd

        sd.check_output_settings(samplerate=rate, channels=1)
    except (OSError, ImportError) as err:  # no PortAudio library at all
        raise UserError(f"cannot play audio here: {err}. Open {output} in your DAW or player instead") from err
    except Exception as err:  # sounddevice.PortAudioError: no output device
        raise UserError(f"no audio output device is available ({err}). Open {output} in your DAW or player") from err
    sd.play(audio, rate)
    sd.wait()
