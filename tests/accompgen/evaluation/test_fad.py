import numpy as np
import pytest

from accompgen.core.errors import UserError
from accompgen.core.synth import sung_phrase
from accompgen.evaluation.fad import SpectralEmbedding, fad, frechet_distance, gaussian, load_embedding


def test_identical_sets_are_at_distance_zero():
    embeddings = np.random.default_rng(0).normal(size=(500, 8))
    assert fad(embeddings, embeddings) == pytest.approx(0.0, abs=1e-8)


def test_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu_a, mu_b = rng.normal(size=4), rng.normal(size=4)
    var_a, var_b = rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 4)
    closed_form = np.sum((mu_a - mu_b) ** 2) + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))
    exact = frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert exact == pytest.approx(closed_form, rel=1e-9)
    # and from samples, the estimate converges to it
    a = mu_a + rng.normal(size=(200_000, 4)) * np.sqrt(var_a)
    b = mu_b + rng.normal(size=(200_000, 4)) * np.sqrt(var_b)
    assert fad(a, b) == pytest.approx(closed_form, rel=0.02, abs=0.01)


def test_a_full_covariance_case():
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    # same covariance: only the means count
    assert frechet_distance(np.zeros(2), sigma, np.ones(2), sigma) == pytest.approx(2.0)


def test_spectral_embedding_tells_audio_apart():
    model = SpectralEmbedding()
    voice = model.embed(sung_phrase(4.0, 16000, seed=0))
    same = model.embed(sung_phrase(4.0, 16000, seed=1))
    noise = model.embed(np.random.default_rng(0).normal(0, 0.1, 64000).astype(np.float32))
    assert voice.shape[1] == 64
    assert fad(voice, same) < fad(voice, noise)


def test_embedding_names():
    assert isinstance(load_embedding("spectral"), SpectralEmbedding)
    with pytest.raises(UserError, match="unknown embedding"):
        load_embedding("vggish")
    with pytest.raises(UserError, match="at least two"):
        gaussian(np.zeros((1, 3)))
