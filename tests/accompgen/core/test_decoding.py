import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accompgen.core.decoding import SamplingOptions, filter_logits, guide, next_tokens, sample
from accompgen.core.tokens import PAD, PATTERNS, UNKNOWN, build_window
from accompgen.model.torch_inference import TorchInference, generate_window
from accompgen.model.transformer import build_stages


@pytest.fixture(scope="module")
def stages(tiny_config):
    torch.manual_seed(0)
    return build_stages(tiny_config).eval()


def coarse_window(config, rows=1, frames=6, seed=0, prompt_frames=0, pattern="flat"):
    rng = np.random.default_rng(seed)
    k = config.tokens.semantic_clusters
    stage = config.tokens.stages["coarse"]
    conditions = {
        "vocal_semantic": rng.integers(0, k, (rows, 1, frames * 2 // 3)),
        "inst_semantic": rng.integers(0, k, (rows, 1, frames * 2 // 3)),
    }
    prompt = rng.integers(0, config.tokens.codebook_size, (rows, 4, prompt_frames))
    return build_window(stage, conditions, frames, prompt, PATTERNS[pattern])


def test_guidance_with_lambda_one_is_conditional_and_zero_unconditional():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 40)).astype(np.float32)
    np.testing.assert_allclose(guide(logits, 3, 1.0), logits[:3], atol=1e-6)
    np.testing.assert_allclose(guide(logits, 3, 0.0), logits[3:])
    np.testing.assert_allclose(guide(logits, 3, 3.0), logits[3:] + 3.0 * (logits[:3] - logits[3:]), rtol=1e-6)


@given(st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_top_k_keeps_exactly_the_k_best(k, seed):
    logits = np.random.default_rng(seed).normal(size=(3, 30))
    kept = np.isfinite(filter_logits(logits, k, 1.0))
    assert (kept.sum(axis=-1) == k).all()
    best = np.argsort(-logits, axis=-1)[:, :k]
    assert np.take_along_axis(kept, best, axis=-1).all()


@given(st.floats(0.01, 1.0), st.integers(0, 2**32 - 1))
def test_top_p_keeps_the_smallest_nucleus_reaching_p(p, seed):
    logits = np.random.default_rng(seed).normal(size=(2, 20)) * 3
    kept = np.isfinite(filter_logits(logits, 0, p))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for row in range(2):
        mass = probs[row, kept[row]].sum()
        assert mass >= p - 1e-9
        assert mass - probs[row, kept[row]].min() < p + 1e-9  # dropping the least likely kept id falls short


def test_greedy_sampling_is_argmax():
    logits = np.random.default_rng(1).normal(size=(4, 10))
    np.testing.assert_array_equal(sample(logits, 0.0, [np.random.default_rng(0)] * 4), logits.argmax(-1))


def test_sampling_follows_the_distribution():
    logits = np.log(np.array([[0.1, 0.6, 0.3]]))
    rngs = [np.random.default_rng(0)]
    draws = np.concatenate([sample(logits, 1.0, rngs) for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.1, 0.6, 0.3], atol=0.03)


@settings(max_examples=200)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 500),
    st.integers(0, 1000),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.sampled_from([1.0, 3.0]),
)
def test_a_step_never_emits_an_id_outside_its_stream(seed, lo, width, temperature, cfg_scale):
    hi = lo + width + 1
    options = SamplingOptions(temperature=temperature, top_k=0, cfg_scale=cfg_scale, variations=2)
    rngs = [np.random.default_rng(seed + i) for i in range(2)]
    # the ids outside [lo, hi) are made the most likely, so only the mask keeps them out
    logits = rngs[0].normal(size=(4 if options.guided else 2, 1600)).astype(np.float32)
    logits[:, :lo] += 50
    logits[:, hi:] += 50
    ids = next_tokens(logits, lo, hi, options, rngs)
    assert ((ids >= lo) & (ids < hi)).all()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1.0, 3.0]), st.integers(1, 3))
def test_generated_windows_hold_only_ids_of_their_streams(stages, tiny_config, seed, cfg_scale, variations):
    window = coarse_window(tiny_config, rows=variations, seed=seed % 1000)
    options = SamplingOptions(temperature=1.5, top_k=0, cfg_scale=cfg_scale, seed=seed, variations=variations)
    ids = generate_window(stages["coarse"], window, options)
    assert ids.shape == (variations, *window.lo.shape)
    assert ((ids >= window.lo) & (ids < window.hi)).all()


def test_same_seed_same_tokens_other_seed_other_tokens(stages, tiny_config):
    window = coarse_window(tiny_config, rows=2)
    run = lambda seed: generate_window(stages["coarse"], window, SamplingOptions(seed=seed, variations=2))  # noqa: E731
    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    assert (first[0] != first[1]).any()  # variations differ from each other


def test_the_prompt_is_kept_and_continued(stages, tiny_config):
    window = coarse_window(tiny_config, rows=2, frames=6, prompt_frames=2)
    ids = generate_window(stages["coarse"], window, SamplingOptions(variations=2))
    np.testing.assert_array_equal(ids[:, :8], window.target[:, :8])
    assert ids.shape == (2, 24, 1) and (ids != UNKNOWN).all()


class CountingInference(TorchInference):
    def __init__(self, model):
        super().__init__(model)
        self.rows: list[int] = []

    def logits(self, input_ids, ticks):
        self.rows.append(len(input_ids))
        assert len(ticks) == self.cache_length() + input_ids.shape[1]
        return super().logits(input_ids, ticks)

    def cache_length(self):
        return 0 if self.cache is None else self.cache[0][0].shape[2]


@pytest.mark.parametrize(("cfg_scale", "rows"), [(3.0, 4), (1.0, 2)])
def test_guidance_runs_one_batch_of_2n_and_is_skipped_at_lambda_one(stages, tiny_config, cfg_scale, rows):
    from accompgen.core.decoding import decode_window, variation_rngs

    window = coarse_window(tiny_config, rows=2)
    inference = CountingInference(stages["coarse"])
    options = SamplingOptions(cfg_scale=cfg_scale, variations=2)
    decode_window(inference, window, options, variation_rngs(options))
    assert inference.rows == [rows] * window.target.shape[1]  # one prefill, then one cached step per token


def test_sampling_options_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"top_p.*variations"):
        SamplingOptions(top_p=0.0, variations=0)


def test_each_variation_is_reproducible_alone(stages, tiny_config):
    """Variation i of a batch uses seed + i: run alone with that seed, it gives the same tokens."""
    import dataclasses

    single = coarse_window(tiny_config, rows=1)
    three = dataclasses.replace(single, condition=single.condition.repeat(3, 0), target=single.target.repeat(3, 0))
    batch = generate_window(stages["coarse"], three, SamplingOptions(seed=10, variations=3))
    alone = generate_window(stages["coarse"], single, SamplingOptions(seed=12, variations=1))
    np.testing.assert_array_equal(batch[2], alone[0])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1.0, 3.0]), st.integers(0, 3))
def test_delay_pattern_fills_every_slot_of_its_stream(stages, tiny_config, seed, cfg_scale, prompt_frames):
    window = coarse_window(tiny_config, rows=2, frames=6, seed=seed % 100, prompt_frames=prompt_frames, pattern="delay")
    ids = generate_window(stages["coarse"], window, SamplingOptions(seed=seed, cfg_scale=cfg_scale, variations=2))
    assert ids.shape == (2, 6 + 3, 4)
    valid = window.lo >= 0
    assert ((ids[:, valid] >= window.lo[valid]) & (ids[:, valid] < window.hi[valid])).all()
    assert (ids[:, ~valid] == PAD).all()
    known = window.target != UNKNOWN
    np.testing.assert_array_equal(ids[known], window.target[known])  # the prompt is kept as given
