"""Training the small HuBERT on chroma and mel targets."""

import numpy as np
import pytest
import torch

from accompgen.apps.recipe import QUICK
from accompgen.core.semantic_framing import SEMANTIC_SAMPLE_RATE, semantic_chunk
from accompgen.core.synth import sung_phrase
from accompgen.tokenizers.semantic import HubertFeatures
from accompgen.train.frame_features import FEATURES
from accompgen.train.semantic_encoder import FrameTargets, SemanticEncoderTrainer, SemanticTrainSettings

TINY = QUICK.hubert_shape  # the quick recipe's encoder: seconds to train


def test_targets_have_one_frame_per_hubert_frame_and_hear_the_pitch():
    t = np.arange(SEMANTIC_SAMPLE_RATE * 2) / SEMANTIC_SAMPLE_RATE
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)  # A
    chunk = torch.from_numpy(semantic_chunk(tone, 0, 100))[None]
    targets = FrameTargets()(chunk)
    assert targets.shape == (1, 100, FEATURES)
    assert (targets[0, 5:-5, :12].argmax(-1) == 9).all()


def test_training_lowers_the_loss_and_saves_a_hubert_that_loads_like_the_hub_one(tmp_path):
    audio = [sung_phrase(6.0, SEMANTIC_SAMPLE_RATE, seed=i) for i in range(3)]
    settings = SemanticTrainSettings(steps=40, batch_size=4, crop_frames=50, warmup_steps=5, lr=3e-3)
    losses = []
    SemanticEncoderTrainer(tmp_path, audio, TINY, settings).run(lambda r: losses.append(r["loss"]))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    features = HubertFeatures.from_pretrained(tmp_path, TINY.num_hidden_layers)
    chunk = torch.from_numpy(semantic_chunk(audio[0], 0, 25))[None]
    assert features(chunk).shape == (1, 25, TINY.hidden_size)


def test_resume_continues_from_the_checkpoint(tmp_path):
    audio = [sung_phrase(6.0, SEMANTIC_SAMPLE_RATE, seed=i) for i in range(2)]
    settings = SemanticTrainSettings(steps=6, batch_size=2, crop_frames=50, warmup_steps=2, checkpoint_every=3)

    class Stop(Exception):
        pass

    def stop_at_4(record):
        if record["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        SemanticEncoderTrainer(tmp_path, audio, TINY, settings).run(stop_at_4)
    trainer = SemanticEncoderTrainer(tmp_path, audio, TINY, settings)
    assert trainer.resume() and trainer.step == 3
    trainer.run()
    assert (tmp_path / "config.json").is_file() and not (tmp_path / "checkpoint.pt").exists()
