"""The stage Transformer: decoder-only, pre-norm RMSNorm, QK-norm attention with a T5 bias on tick distances, GEGLU.

References: T5 (Raffel et al., 2020) for bucketed relative position bias, shared by all layers; Shazeer (2020)
for GEGLU; Dehghani et al. (2023) for QK-norm; SingSong (Donahue et al., 2023), AccompGen and HAFM for the
staged vocal-to-accompaniment set-up. The KV cache travels as explicit tensors in and out of `forward`, so
the exported ONNX graph and this module run the same code. The output head is tied to the token embedding:
the vocabulary is shared by all streams and tying saves V x C parameters per stage.

Shapes: B batch, S new tokens, P cached tokens, T = P + S, H heads, D head dim, C width, V vocabulary.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from accompgen.core.tokens import PAD
from accompgen.model.config import ModelConfig, StageConfig

KVCache = list[tuple[Tensor, Tensor]]  # per layer (key, value), each (B, H, P, D)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Statistics in fp32 so that bf16 training and fp16 export agree with fp32 runs.
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def tick_buckets(distance: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """T5 buckets of signed tick distances (key minus query): exact near 0, logarithmic further out.

    Both signs are needed although attention is causal: a target token attends to condition tokens that
    sound later than it does (the vocal it must anticipate), and those sit earlier in the sequence.
    """
    half = num_buckets // 2
    exact = half // 2
    bucket = (distance > 0).long() * half
    n = distance.abs()
    # Clamping before the log keeps log(0) out of the graph; those entries take the exact branch anyway.
    log_ratio = torch.log(n.clamp(min=exact).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(n < exact, n, far)


class TickBias(nn.Module):
    """Per-head attention bias from tick distances, computed once per forward and shared by all layers."""

    def __init__(self, n_heads: int, num_buckets: int, max_distance: int):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.table = nn.Embedding(num_buckets, n_heads)

    def forward(self, query_ticks: Tensor, key_ticks: Tensor) -> Tensor:
        """(S,), (T,) -> (H, S, T)"""
        distance = key_ticks[None, :] - query_ticks[:, None]
        return self.table(tick_buckets(distance, self.num_buckets, self.max_distance)).permute(2, 0, 1)


class Attention(nn.Module):
    def __init__(self, cfg: StageConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim)
        self.k_norm = RMSNorm(cfg.head_dim)
        self.dropout = cfg.dropout

    def forward(
        self, x: Tensor, bias: Tensor, past_k: Tensor, past_v: Tensor, attend: Attend
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, S, C), bias (1, H, S, T) without the causal mask, past (B, H, P, D) -> y (B, S, C) and the
        cache with this step's keys and values (`attend` decides its layout)"""
        B, S, C = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # q made contiguous: SDPA's output takes q's strides, which the ONNX exporter cannot view under dynamic
        # shapes (pytorch/pytorch#141107). The cache holds normed keys.
        q, k = self.q_norm(q).contiguous(), self.k_norm(k)
        y, k, v = attend(q, k, v, past_k, past_v, bias, self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, S, C)), k, v


# How a layer attends and keeps its cache: (q, k, v (B, H, S, D), past k and v, bias (1, H, S, T), dropout)
# -> (y (B, H, S, D), key cache, value cache).
Attend = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float], tuple[Tensor, Tensor, Tensor]]


def causal_mask(bias: Tensor) -> Tensor:
    """The bias with -inf where a query would see a later position: query i of S sits at T - S + i."""
    S, T = bias.shape[-2], bias.shape[-1]
    visible = torch.arange(T, device=bias.device)[None, :] <= torch.arange(S, device=bias.device)[:, None] + (T - S)
    return bias.masked_fill(~visible, float("-inf"))


def sdpa_attend(
    q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, bias: Tensor, dropout: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The torch path: a cache that grows by concatenation, PyTorch's fused attention."""
    k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    # Under autocast q is bf16 while the bias stays fp32; SDPA wants them alike.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(bias).to(q.dtype), dropout_p=dropout), k, v


QUERY_BLOCKS = 4  # training attention's query blocks: 4 measured fastest at 704 positions (2: 1.5x slower, 8: alike)


def blocked_attend(
    q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, bias: Tensor, dropout: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The training path: SDPA's numbers, computed in query blocks that each see only the keys up to their own end.

    The bias is learned, so SDPA cannot use its fused kernel (no gradient for attn_mask) and falls back to a math
    path over the whole (B, H, S, T) score matrix, half of it masked. Blocks skip most of the masked half and keep
    each score block small enough to stay in cache: in bf16, 3.3x faster than the fp32 math path at 704 positions."""
    k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    S, T = q.shape[2], k.shape[2]
    masked = causal_mask(bias)
    scale = 1.0 / math.sqrt(q.shape[-1])
    edges = [round(i * S / QUERY_BLOCKS) for i in range(QUERY_BLOCKS + 1)]
    blocks = []
    for start, stop in itertools.pairwise(edges):
        seen = T - S + stop  # query i sits at T - S + i and sees every key up to it
        scores = (q[:, :, start:stop] @ k[:, :, :seen].transpose(-2, -1)) * scale + masked[..., start:stop, :seen]
        probs = F.dropout(torch.softmax(scores, dim=-1), dropout) if dropout else torch.softmax(scores, dim=-1)
        blocks.append(probs.to(v.dtype) @ v[:, :, :seen])
    return torch.cat(blocks, dim=2), k, v


def explicit_attend(
    q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, bias: Tensor, dropout: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The growing-cache export: softmax(q k^T / sqrt(D) + mask) v written out. SDPA exports as Reshape ->
    Transpose -> Reshape of the whole cache every step, while q @ k^T becomes one MatMul that onnxruntime fuses
    with the transpose (FusedMatMul) and the scale. The same numbers as SDPA."""
    k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1])) + causal_mask(bias).to(q.dtype)
    return torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v, k, v


def gqa_attend(
    q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, bias: Tensor, dropout: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The in-place export: onnxruntime's GroupQueryAttention (as many key heads as query heads) over a cache of
    fixed capacity (B, H, MAX, D) that is bound as both past and present, so each step writes its keys and
    values into place instead of copying the whole cache. Every row has the same length T; the op applies the
    causal mask itself. Export only: torch has no such op."""
    B, H, S, D = q.shape
    T = bias.shape[-1]
    flat = [t.transpose(1, 2).reshape(B, S, H * D) for t in (q, k, v)]
    y, present_k, present_v = torch.onnx.ops.symbolic_multi_out(
        "com.microsoft::GroupQueryAttention",
        [
            *flat,
            past_k,
            past_v,
            torch.full((B,), T - 1, dtype=torch.int32),  # seqlens_k: each row's total length minus one
            torch.full((), T, dtype=torch.int32),  # total_sequence_length
            None,  # cos_cache
            None,  # sin_cache
            None,  # position_ids
            bias.to(q.dtype),
        ],
        attrs={"num_heads": H, "kv_num_heads": H},
        dtypes=[q.dtype, past_k.dtype, past_v.dtype],
        shapes=[(B, S, H * D), tuple(past_k.shape), tuple(past_v.shape)],
        version=1,
    )
    return y.reshape(B, S, H, D).transpose(1, 2), present_k, present_v


class GEGLU(nn.Module):
    def __init__(self, cfg: StageConfig):
        super().__init__()
        self.proj_in = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.proj_out = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.dropout(self.proj_out(value * F.gelu(gate)))


class Block(nn.Module):
    def __init__(self, cfg: StageConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model)
        self.ffn = GEGLU(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, bias: Tensor, past_k: Tensor, past_v: Tensor, attend: Attend
    ) -> tuple[Tensor, Tensor, Tensor]:
        y, k, v = self.attn(self.attn_norm(x), bias, past_k, past_v, attend)
        x = x + self.dropout(y)
        return x + self.ffn(self.ffn_norm(x)), k, v


class StageTransformer(nn.Module):
    def __init__(self, cfg: StageConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.bias = TickBias(cfg.n_heads, cfg.num_buckets, cfg.max_distance)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections so the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "ffn.proj_out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def empty_cache(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
    ) -> KVCache:
        shape = (batch, self.cfg.n_heads, 0, self.cfg.head_dim)
        return [(torch.zeros(shape, device=device, dtype=dtype),) * 2 for _ in self.blocks]

    def embed_positions(self, input_ids: Tensor) -> Tensor:
        """(B, S) ids, or (B, S, W) with W slots per position -> (B, S, C). The slots of a position add up
        (codebooks predicted in parallel, as in MusicGen); PAD marks an empty slot and adds nothing."""
        if input_ids.dim() == 2:
            return self.embed(input_ids)
        return (self.embed(input_ids) * (input_ids != PAD).unsqueeze(-1).to(self.embed.weight.dtype)).sum(-2)

    def forward(
        self,
        input_ids: Tensor,
        ticks: Tensor,
        past: KVCache,
        last_only: bool = False,
        head: bool = True,
        attend: Attend = sdpa_attend,
    ) -> tuple[Tensor, KVCache]:
        """input_ids (B, S) or (B, S, W), ticks (T,) of every position so far (the new ones last), past per layer
        (B, H, P, D) -> logits (B, S, V), or (B, V) for the last position with `last_only`, and the cache with the
        new positions. Without `head`, the final normed hidden states (B, S, C) instead of logits: training applies
        the head to each target stream's own id range only. `attend` is the torch path, or one of the export's."""
        S = input_ids.shape[1]
        bias = self.bias(ticks[-S:], ticks).unsqueeze(0)  # (1, H, S, T)
        x = self.embed_positions(input_ids)
        present: KVCache = []
        for block, (past_k, past_v) in zip(self.blocks, past, strict=True):
            x, k, v = block(x, bias, past_k, past_v, attend)
            present.append((k, v))
        if last_only:
            x = x[:, -1]
        x = self.norm(x)
        if not head:
            return x, present
        return F.linear(x, self.embed.weight), present  # tied head


def build_stages(config: ModelConfig) -> nn.ModuleDict:
    """The three stage models of a config, randomly initialised, keyed by stage name."""
    return nn.ModuleDict(
        {name: StageTransformer(stage, config.tokens.vocab_size) for name, stage in config.stages.items()}
    )
