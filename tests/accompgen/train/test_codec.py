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
    TrainingQuantizer,
    kmeans_init,
    nearest,
)

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
        _, commitment = quantizer(x, 1, generator)
    assert commitment.item() < 20
    used = torch.bincount(nearest(x[0].T, book.embed), minlength=TINY.codebook_size)
    assert (used > 0).sum() > 1  # restarts spread the codes over the data


def test_training_lowers_the_loss_resumes_and_saves_a_loadable_encodec(tmp_path, songs):
    layout = TokenLayout(semantic_clusters=4, codebook_size=TINY.codebook_size)
    straight = CodecTrainer(tmp_path / "a", songs, TINY, FAST)
    errors = []  # the waveform error: the total loss changes make-up when the codebooks come in after warm-up
    straight.run(lambda record: errors.append(record["wave"]))
    assert np.mean(errors[-3:]) < np.mean(errors[:3])

    class Stop(Exception):
        pass

    def stop_at_8(record):
        if record["step"] == 8:
            raise Stop

    with pytest.raises(Stop):
        CodecTrainer(tmp_path / "b", songs, TINY, FAST).run(stop_at_8)
    resumed = CodecTrainer(tmp_path / "b", songs, TINY, FAST)
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


def test_resuming_with_other_settings_is_refused(tmp_path, songs):
    from accompgen.core.errors import UserError

    CodecTrainer(tmp_path, songs, TINY, FAST).save()
    with pytest.raises(UserError, match="other codec settings"):
        CodecTrainer(tmp_path, songs, TINY, dataclasses.replace(FAST, lr=1e-4)).resume()
