"""`accompgen demo`, as the README's first command runs it: a real bridge process, OSC, three WAVs."""

import numpy as np
import pytest
import soundfile as sf

from accompgen.apps.cli import main
from accompgen.apps.demo import DEMO_VOCAL, shipped_bundle
from accompgen.core.bundle import load_bundle


@pytest.mark.slow
def test_the_demo_runs_the_shipped_chorale_bundle_on_its_held_out_melody(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    bundle = shipped_bundle()
    assert "random_init_seed" not in load_bundle(bundle).source  # trained weights
    vocal, rate = sf.read(tmp_path / "vocal.wav")
    shipped, shipped_rate = sf.read(bundle / DEMO_VOCAL)
    assert rate == shipped_rate and len(vocal) == len(shipped)
    accompaniment, accompaniment_rate = sf.read(tmp_path / "accompaniment.wav")
    assert accompaniment_rate == rate and len(accompaniment) == len(vocal)
    assert np.sqrt(np.mean(accompaniment**2)) > 0.01  # it plays
    mix, _ = sf.read(tmp_path / "mix.wav")
    assert np.abs(mix).max() <= 0.9 + 1e-3
    assert "untrained" not in capsys.readouterr().out


def test_the_random_init_demo_says_it_is_untrained(tmp_path, capsys):
    assert main(["demo", "--random-init", "--out", str(tmp_path)]) == 0
    assert "untrained" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {"vocal.wav", "accompaniment.wav", "mix.wav"}


def test_a_bundle_and_random_init_together_are_refused(tmp_path, capsys):
    assert main(["demo", "--random-init", "--bundle", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
