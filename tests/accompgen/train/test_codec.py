"""Training the compact EnCodec: the VQ pieces on their own, then a few real steps on synthetic music."""

import dataclasses

import numpy as np
import pytest
import torch
from transformers import EncodecModel

from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import TokenLayout
from accompgen.tokenizers.codec import NORMALIZED_OUTPUT_RMS, Codec
from accompgen.train.codec import (
    CodecShape,
    CodecTrainer,
    CodecTrainSettings,
    FrameFeatures,
    TrainingQuantizer,
    kmeans_init,
    nearest,
)
from accompgen.train.frame_features import FEATURES

TINY = CodecShape(num_filters=4, hidden_size=16, codebook_size=32)
FAST = CodecTrainSettings(steps=24, batch_size=2, autoencoder_steps=4, kmeans_batches=2, checkpoint_every=6)


@pytest.fixture(scope="module")
def songs() -> list[np.ndarray]:
    return [sung_phrase(4.0, 24000, seed=i) for i in range(3)]


def test_kmeans_init_fits_each_codebook_to_what_the_previous_ones_leave(songs):
    model = EncodecModel(TINY.encodec_config())
    vectors = torch.randn(2000, TINY.hidden_size)
    kmeans_init(model, vectors, iterations=5, generator=torch.Generator().manual_seed(0))
    books = [layer.codebook for layer in model.quantizer.layers]
    residual = vectors
    for book in books[:2]:
        assert torch.allclose(book.embed_avg, book.embed * book.cluster_size[:, None], atol=1e-4)
        error = (residual - book.embed[nearest(residual, book.embed)]).pow(2).sum(-1).mean()
        assert error < residual.pow(2).sum(-1).mean()  # each level explains part of what is left
        residual = residual - book.embed[nearest(residual, book.embed)]


def test_the_ema_update_moves_used_codes_and_restarts_dead_ones():
    model = EncodecModel(TINY.encodec_config())
    settings = CodecTrainSettings()
    quantizer = TrainingQuantizer(model, settings, vectors_per_step=64)
    book = model.quantizer.layers[0].codebook
    book.embed.copy_(torch.randn_like(book.embed))
    book.embed_avg.copy_(book.embed.clone())
    book.cluster_size.fill_(1.0)
    x = torch.randn(1, TINY.hidden_size, 64) + 5.0  # far from every code: one code wins everything at first
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        _, _, commitment = quantizer(x, 1, generator)
    assert commitment.item() < 20
    used = torch.bincount(nearest(x[0].T, book.embed), minlength=TINY.codebook_size)
    assert (used > 0).sum() > 1  # restarts spread the codes over the data


@pytest.mark.parametrize("semantic_weight", [0.0, 1.0])
def test_training_lowers_the_loss_resumes_and_saves_a_loadable_encodec(tmp_path, songs, semantic_weight):
    layout = TokenLayout(semantic_clusters=4, codebook_size=TINY.codebook_size)
    settings = dataclasses.replace(FAST, semantic_weight=semantic_weight)
    straight = CodecTrainer(tmp_path / "a", songs, TINY, settings)
    errors = []  # the waveform error: the total loss changes make-up when the codebooks come in after warm-up
    straight.run(lambda record: errors.append(record["wave"]))
    assert np.mean(errors[-3:]) < np.mean(errors[:3])

    class Stop(Exception):
        pass

    def stop_at_8(record):
        if record["step"] == 8:
            raise Stop

    with pytest.raises(Stop):
        CodecTrainer(tmp_path / "b", songs, TINY, settings).run(stop_at_8)
    resumed = CodecTrainer(tmp_path / "b", songs, TINY, settings)
    assert resumed.resume() and resumed.step == 6
    resumed.run()
    for name, value in EncodecModel.from_pretrained(tmp_path / "a").state_dict().items():
        other = EncodecModel.from_pretrained(tmp_path / "b").state_dict()[name]
        assert torch.allclose(value, other), name

    codec = Codec.from_pretrained(tmp_path / "a", layout)
    audio = torch.from_numpy(songs[0][None, :24000])
    codes = codec.encode(audio)
    assert codes.shape == (1, 8, 75) and codes.max() < TINY.codebook_size
    decoded = codec.decode(codes)
    assert decoded.shape == (1, 24000)
    # normalize=True: the input's level is not in the codes; decoding lands at a fixed level
    assert torch.allclose(codec.decode(codec.encode(10 * audio)), decoded, atol=1e-5)
    assert 0.2 * NORMALIZED_OUTPUT_RMS < decoded.pow(2).mean().sqrt() < 5 * NORMALIZED_OUTPUT_RMS


def test_semantic_distillation_teaches_the_first_codebook_the_frames_pitch_and_spectrum(tmp_path, songs):
    settings = dataclasses.replace(FAST, semantic_weight=1.0, warmup_steps=2)
    losses = []
    CodecTrainer(tmp_path, songs, TINY, settings).run(lambda record: losses.append(record["semantic"]))
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3]), losses  # measured 0.88 of it


def test_the_distillation_reaches_the_encoder_through_the_quantized_codes(tmp_path, songs):
    """From the first step on quantized codes, the same seed: only the distillation can make the encoders differ,
    and only through the straight-through estimator of the first codebook."""
    encoders = []
    for weight in (0.0, 1.0):
        settings = dataclasses.replace(FAST, steps=1, autoencoder_steps=0, semantic_weight=weight)
        trainer = CodecTrainer(tmp_path / str(weight), songs, TINY, settings)
        trainer.run()
        encoders.append(torch.cat([p.detach().flatten() for p in trainer.model.encoder.parameters()]))
    assert not torch.allclose(*encoders)


def test_frame_features_mark_each_frames_pitch_class():
    t = torch.arange(24000) / 24000
    tones = torch.stack([torch.sin(2 * torch.pi * 440.0 * t), torch.sin(2 * torch.pi * 261.63 * t)])  # A4, C4
    features = FrameFeatures(24000, hop=320)(tones, frames=75)
    assert features.shape == (2, 75, FEATURES)
    a, c = features[:, 10:-10, 9].mean(-1), features[:, 10:-10, 0].mean(-1)
    assert a[0] > a[1] and c[1] > c[0]


def test_resuming_with_other_settings_is_refused(tmp_path, songs):
    from accompgen.core.errors import UserError

    CodecTrainer(tmp_path, songs, TINY, FAST).save()
    with pytest.raises(UserError, match="other codec settings"):
        CodecTrainer(tmp_path, songs, TINY, dataclasses.replace(FAST, lr=1e-4)).resume()
