import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accompgen.core.pipeline import StagePlan
from accompgen.model.config import StageConfig
from accompgen.model.transformer import StageTransformer, TickBias, build_stages, tick_buckets

CFG = StageConfig(d_model=32, n_layers=3, n_heads=4, ffn_dim=48, plan=StagePlan(2.0, 0.4), max_distance=300)
VOCAB = 50


@pytest.fixture(scope="module")
def model() -> StageTransformer:
    torch.manual_seed(0)
    model = StageTransformer(CFG, VOCAB).eval()
    with torch.no_grad():  # a random bias table, so that ticks matter in every comparison
        model.bias.table.weight.normal_(0, 1.0)
    return model


def random_sequence(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=g)
    ticks = torch.sort(torch.randint(0, 200, (length,), generator=g)).values
    return ids, ticks


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("prefill", [0, 1, 17])
@torch.no_grad()
def test_cached_decoding_matches_a_full_forward(model, batch, prefill):
    ids, ticks = random_sequence(batch, 40)
    full, _ = model(ids, ticks, model.empty_cache(batch))
    cache = model.empty_cache(batch)
    steps = []
    start = 0
    for end in [prefill, *range(prefill + 1, 41)]:
        if end == start:
            continue
        logits, cache = model(ids[:, start:end], ticks[:end], cache)
        steps.append(logits)
        start = end
    cached = torch.cat(steps, dim=1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    assert cache[0][0].shape == (batch, CFG.n_heads, 40, CFG.head_dim)


@torch.no_grad()
def test_last_only_returns_the_last_position(model):
    ids, ticks = random_sequence(2, 12)
    full, _ = model(ids, ticks, model.empty_cache(2))
    last, _ = model(ids, ticks, model.empty_cache(2), last_only=True)
    torch.testing.assert_close(last, full[:, -1])


@torch.no_grad()
def test_attention_is_causal(model):
    ids, ticks = random_sequence(1, 20)
    changed = ids.clone()
    changed[0, 15:] = (changed[0, 15:] + 1) % VOCAB
    before, _ = model(ids, ticks, model.empty_cache(1))
    after, _ = model(changed, ticks, model.empty_cache(1))
    torch.testing.assert_close(before[:, :15], after[:, :15])
    assert not torch.allclose(before[:, 15:], after[:, 15:])


@torch.no_grad()
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=2, max_size=30), st.integers(-500, 500))
def test_bias_depends_only_on_tick_differences(ticks, shift):
    bias = TickBias(n_heads=3, num_buckets=32, max_distance=1500)
    torch.nn.init.normal_(bias.table.weight)
    t = torch.tensor(ticks)
    torch.testing.assert_close(bias(t, t), bias(t + shift, t + shift))


@torch.no_grad()
def test_a_semantic_and_an_acoustic_token_at_one_moment_are_at_distance_zero():
    bias = TickBias(n_heads=2, num_buckets=32, max_distance=1500)
    torch.nn.init.normal_(bias.table.weight)
    semantic_frame_4 = torch.tensor([3 * 4])  # 50 Hz frame 4 = 80 ms
    acoustic_frame_6 = torch.tensor([2 * 6] * 4)  # 75 Hz frame 6, all four codebooks = 80 ms
    zero = bias.table.weight[tick_buckets(torch.tensor(0), 32, 1500)]  # (H,)
    got = bias(semantic_frame_4, acoustic_frame_6)  # (H, 1, 4)
    torch.testing.assert_close(got, zero[:, None, None].expand(2, 1, 4))


def test_buckets_separate_earlier_from_later_and_stay_in_range():
    distance = torch.arange(-5000, 5001)
    buckets = tick_buckets(distance, 32, 1500)
    assert buckets.min() == 0 and buckets.max() == 31
    earlier, later = buckets[distance < 0], buckets[distance > 0]
    assert set(earlier.tolist()).isdisjoint(later.tolist())
    assert (buckets[5000:].diff() >= 0).all()  # later: non-decreasing with distance
    assert (buckets[:5000].flip(0).diff() >= 0).all()  # earlier: likewise with |distance|


@torch.no_grad()
def test_output_head_is_tied_to_the_embedding(tiny_config):
    model = build_stages(tiny_config)["coarse"]
    ids, ticks = torch.tensor([[5, 6]]), torch.tensor([0, 1])
    before, _ = model(ids, ticks, model.empty_cache(1))
    model.embed.weight[7] += 1.0  # id 7 is not fed, so only the output head can see this
    after, _ = model(ids, ticks, model.empty_cache(1))
    assert before.shape == (1, 2, tiny_config.tokens.vocab_size)
    assert not torch.allclose(before[..., 7], after[..., 7])
    torch.testing.assert_close(before[..., 8:], after[..., 8:])


def test_stage_config_validates_its_window():
    with pytest.raises(ValueError, match="whole number"):
        StageConfig(d_model=8, n_layers=1, n_heads=2, ffn_dim=8, plan=StagePlan(1.01, 0.0))
    with pytest.raises(ValueError, match="prompt_s"):
        StageConfig(d_model=8, n_layers=1, n_heads=2, ffn_dim=8, plan=StagePlan(1.0, 1.0))
    with pytest.raises(ValueError, match="divisible"):
        StageConfig(d_model=9, n_layers=1, n_heads=2, ffn_dim=8, plan=StagePlan(1.0, 0.0))


@torch.no_grad()
def test_slots_add_up_and_pad_adds_nothing(model):
    """Positions of W slots (the delay pattern) embed as the sum of their ids; PAD marks an empty slot."""
    ids = torch.tensor([[[5, 7, 0], [9, 0, 0]]])  # (1, S=2, W=3)
    ticks = torch.tensor([0, 2])
    with_slots, _ = model(ids, ticks, model.empty_cache(1))
    x = model.embed_positions(ids)
    torch.testing.assert_close(x[0, 0], model.embed.weight[5] + model.embed.weight[7])
    torch.testing.assert_close(x[0, 1], model.embed.weight[9])
    single, _ = model(ids[..., 0], ticks, model.empty_cache(1))
    assert not torch.allclose(with_slots[:, 0], single[:, 0])  # slot 1's id 7 counts


@pytest.mark.parametrize("prefill", [0, 5])
@torch.no_grad()
def test_cached_decoding_with_slots_matches_a_full_forward(model, prefill):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (2, 20, 4), generator=g)
    ids[ids < 5] = 0  # some empty slots
    ticks = torch.arange(20) * 2
    full, _ = model(ids, ticks, model.empty_cache(2))
    cache, steps, start = model.empty_cache(2), [], 0
    for end in [prefill, *range(prefill + 1, 21)]:
        if end == start:
            continue
        logits, cache = model(ids[:, start:end], ticks[:end], cache)
        steps.append(logits)
        start = end
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_the_exported_attention_computes_what_sdpa_does():
    from accompgen.model.transformer import explicit_attend, sdpa_attend

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 3, 8) for _ in range(3))
    past_k, past_v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8)
    bias = torch.randn(1, 4, 3, 8)
    expected = sdpa_attend(q, k, v, past_k, past_v, bias, 0.0)
    for got, want in zip(explicit_attend(q, k, v, past_k, past_v, bias, 0.0), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize(("new", "past"), [(1, 0), (3, 0), (9, 0), (3, 5), (13, 2)])
def test_the_training_attention_computes_what_sdpa_does_with_the_same_gradients(new, past):
    """Query blocks that skip the masked keys: the same outputs, and the same gradients for q, k, v and the bias."""
    from accompgen.model.transformer import blocked_attend, sdpa_attend

    torch.manual_seed(0)
    inputs = [torch.randn(2, 4, new, 8) for _ in range(3)] + [torch.randn(2, 4, past, 8) for _ in range(2)]
    inputs.append(torch.randn(1, 4, new, past + new))
    results = []
    for attend in (blocked_attend, sdpa_attend):
        leaves = [t.clone().requires_grad_() for t in inputs]
        y, k, v = attend(*leaves, 0.0)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append([y, k, v, *(leaf.grad for leaf in leaves)])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
