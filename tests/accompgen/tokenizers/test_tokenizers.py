"""The real loading code on tiny random HuBERT and EnCodec saved to a temp dir: nothing is downloaded."""

import numpy as np
import pytest
from transformers import EncodecConfig, EncodecModel

from accompgen.core.errors import UserError
from accompgen.core.synth import sung_phrase
from accompgen.tokenizers.codec import Codec, random_codec
from accompgen.tokenizers.semantic import HubertFeatures, SemanticEncoder, random_hubert
from accompgen.tokenizers.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("pretrained")
    random_hubert(1, tiny=True).model.save_pretrained(root / "hubert")
    random_codec(tiny_config.tokens, tiny=True).model.save_pretrained(root / "encodec")
    return root


@pytest.fixture(scope="module")
def tokenizer(pretrained, tiny_config):
    features = HubertFeatures.from_pretrained(pretrained / "hubert", layer=1)
    centroids = np.random.default_rng(0).normal(size=(16, features.dim)).astype(np.float32)
    return Tokenizer(
        SemanticEncoder(features, centroids), Codec.from_pretrained(pretrained / "encodec", tiny_config.tokens)
    )


@pytest.mark.parametrize("seconds", [0.02, 0.5, 1.234, 3.0, 10.01])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_token_rates_are_exactly_50_and_75_hz(tokenizer, seconds, rate):
    audio = sung_phrase(seconds, rate)
    ids = tokenizer.semantic_ids(audio, rate)
    codes = tokenizer.codes(audio, rate)
    assert ids.shape == (int(np.ceil(seconds * 50 - 1e-6)),)
    assert codes.shape == (8, int(np.ceil(seconds * 75 - 1e-6)))
    assert ids.min() >= 0 and ids.max() < 16 and codes.min() >= 0 and codes.max() < 32


def test_codec_round_trip_shapes(tokenizer):
    import torch

    codes = tokenizer.codes(sung_phrase(1.0, 24000), 24000)
    with torch.no_grad():
        audio = tokenizer.codec.decode(torch.from_numpy(codes)[None])
    assert audio.shape == (1, 75 * 320)


def test_mismatched_tokenizers_are_refused(tmp_path, tiny_config):
    other = EncodecModel(EncodecConfig(codebook_size=64, num_filters=4, hidden_size=16, codebook_dim=16))
    other.save_pretrained(tmp_path / "encodec64")
    with pytest.raises(UserError, match="codebooks of 64 entries, the layout 32"):
        Codec.from_pretrained(tmp_path / "encodec64", tiny_config.tokens)
    with pytest.raises(UserError, match="cannot load EnCodec"):
        Codec.from_pretrained(tmp_path / "absent", tiny_config.tokens)
    with pytest.raises(UserError, match="layer 9 does not exist"):
        HubertFeatures(random_hubert(1, tiny=True).model, 9, normalize=False)


def test_centroids_must_fit_the_features(pretrained):
    features = HubertFeatures.from_pretrained(pretrained / "hubert", layer=1)
    with pytest.raises(UserError, match="do not fit"):
        SemanticEncoder(features, np.zeros((16, features.dim + 1), np.float32))
