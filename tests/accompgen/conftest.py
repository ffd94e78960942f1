"""A tiny model directory built the way users build one: tokenizers saved, k-means fitted on stems."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from accompgen.core.synth import sung_phrase
from accompgen.data.token_folders import write_tokens
from accompgen.model.model_dir import save_config


def write_song(folder, seconds=6.0, seed=0, rate=44100):
    """Vocals plus drums and bass stems, all synthetic."""
    folder.mkdir(parents=True, exist_ok=True)
    vocals = sung_phrase(seconds, rate, seed=seed)
    t = np.arange(len(vocals)) / rate
    sf.write(folder / "vocals.wav", vocals, rate)
    sf.write(folder / "drums.wav", 0.2 * np.sign(np.sin(2 * np.pi * 2 * t)) * np.exp(-(t % 0.5) * 20), rate)
    sf.write(folder / "bass.wav", 0.3 * np.sin(2 * np.pi * (55 + 5 * seed) * t), rate)


@pytest.fixture(scope="session")
def stems(tmp_path_factory):
    root = tmp_path_factory.mktemp("stems")
    for i in range(3):
        write_song(root / f"song{i}", seed=i)
    (root / "no-accompaniment").mkdir()
    sf.write(root / "no-accompaniment" / "vocals.wav", sung_phrase(3.0, 44100), 44100)
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_config, stems):
    from accompgen.apps.cli import main
    from accompgen.tokenizers.codec import random_codec
    from accompgen.tokenizers.semantic import random_hubert

    root = tmp_path_factory.mktemp("model")
    random_hubert(1, tiny=True).model.save_pretrained(root / "hubert")
    random_codec(tiny_config.tokens, tiny=True).model.save_pretrained(root / "encodec")
    out = root / "model"
    args = ["fit-kmeans", "--config", "tiny", "--data", str(stems), "--out", str(out)]
    args += ["--hubert", str(root / "hubert"), "--hubert-layer", "1", "--encodec", str(root / "encodec")]
    assert main(args) == 0
    return out


@pytest.fixture
def synthetic(tmp_path, tiny_config):
    """(model directory with the tiny config, token folder)."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    save_config(model_dir, tiny_config)
    return model_dir, write_tokens(tmp_path / "tokens", tiny_config.tokens)
