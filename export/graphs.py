"""Torch modules -> ONNX files: the stage graphs with explicit KV cache, the semantic encoder, the codec decoder."""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim

from accompgen.core import graph_names
from accompgen.model.transformer import Attend, StageTransformer, explicit_attend, gqa_attend
from accompgen.tokenizers.codec import Codec
from accompgen.tokenizers.semantic import SemanticEncoder

OPSET = 18
# Example sizes >= 2 everywhere: torch.export specialises dimensions of size 0 or 1 into constants.
EXAMPLE_BATCH, EXAMPLE_NEW, EXAMPLE_PAST, EXAMPLE_CAPACITY = 2, 3, 5, 16

logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # silences the "torchvision is not installed" notes


# How a stage graph keeps its KV cache (recorded in the manifest, read by the runtime):
# - inplace: com.microsoft GroupQueryAttention over a buffer of fixed capacity (batch, heads, MAX, head_dim), bound
#   as both past and present, so every step writes its keys and values into place;
# - growing: past (batch, heads, P, head_dim) in, present (batch, heads, P + S, head_dim) out, plain ONNX ops,
#   for providers without that op.
CACHE_LAYOUTS = ("inplace", "growing")
ATTEND = {"inplace": gqa_attend, "growing": explicit_attend}


@dataclass(frozen=True)
class StageIO:
    """What the manifest records about an exported stage graph."""

    inputs: list[str]
    outputs: list[str]
    layers: int
    heads: int
    head_dim: int
    cache_dtype: str
    cache: str  # inplace or growing


class StageGraph(nn.Module):
    """The stage model with its cache flattened into named graph inputs and outputs."""

    def __init__(self, model: StageTransformer, attend: Attend):
        super().__init__()
        self.model = model
        self.attend = attend

    def forward(self, input_ids: Tensor, ticks: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        pairs = list(zip(past[0::2], past[1::2], strict=True))
        logits, present = self.model(input_ids, ticks, pairs, last_only=True, attend=self.attend)
        # logits stay fp32 at the boundary whatever the graph's precision: sampling happens outside
        return (logits.float(), *[t for kv in present for t in kv])


def export_stage(
    model: StageTransformer, path: Path, slots: int = 1, fp16: bool = False, cache: str = "inplace"
) -> StageIO:
    """One graph for prefill and decode: dynamic batch, new-token and total lengths, and past length (growing) or
    capacity (inplace); the past may be empty. With slots > 1 (the delay pattern) input_ids is
    (batch, sequence, slots)."""
    model = copy.deepcopy(model).eval()
    dtype = torch.float16 if fp16 else torch.float32
    model.to(dtype)
    cfg, layers = model.cfg, model.cfg.n_layers
    ids = torch.zeros((EXAMPLE_BATCH, EXAMPLE_NEW) + ((slots,) if slots > 1 else ()), dtype=torch.int64)
    ticks = torch.arange(EXAMPLE_PAST + EXAMPLE_NEW)
    cache_length = EXAMPLE_CAPACITY if cache == "inplace" else EXAMPLE_PAST
    # distinct tensors: the exporter would treat one tensor passed twice as one input
    past = [torch.zeros(EXAMPLE_BATCH, cfg.n_heads, cache_length, cfg.head_dim, dtype=dtype) for _ in range(2 * layers)]
    batch, new = Dim("batch_size"), Dim("sequence_length")
    cache_axes = {0: batch, 2: Dim("max_sequence_length" if cache == "inplace" else "past_sequence_length")}
    _export_dynamo(
        StageGraph(model, ATTEND[cache]),
        (ids, ticks, *past),
        path,
        graph_names.stage_inputs(layers),
        graph_names.stage_outputs(layers),
        ({0: batch, 1: new}, {0: Dim("total_sequence_length")}, tuple([cache_axes] * (2 * layers))),
    )
    return StageIO(
        inputs=graph_names.stage_inputs(layers),
        outputs=graph_names.stage_outputs(layers),
        layers=layers,
        heads=cfg.n_heads,
        head_dim=cfg.head_dim,
        cache_dtype="float16" if fp16 else "float32",
        cache=cache,
    )


def export_semantic_encoder(encoder: SemanticEncoder, path: Path, example: Tensor) -> None:
    """(batch_size, samples) padded 16 kHz audio -> (batch_size, frames) ids. The dynamo exporter keeps HuBERT's
    ids identical to torch; the TorchScript exporter did not. `example` is (2, n) audio with n >= 2 frames' worth."""
    _export_dynamo(
        encoder.eval(),
        (example,),
        path,
        [graph_names.AUDIO],
        [graph_names.SEMANTIC_IDS],
        ({0: Dim("batch_size"), 1: Dim("samples", min=400)},),
    )


def export_codec_decoder(codec: Codec, path: Path, example: Tensor) -> None:
    """(batch_size, codebooks, frames) codes -> (batch_size, samples) audio. EnCodec's padding helper branches on
    data, which the dynamo exporter rejects, so this graph uses the TorchScript exporter with dynamic axes."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            codec.eval(),
            (example,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[graph_names.CODES],
            output_names=[graph_names.AUDIO],
            dynamic_axes={
                graph_names.CODES: {0: "batch_size", 1: "codebooks", 2: "frames"},
                graph_names.AUDIO: {0: "batch_size", 1: "samples"},
            },
        )


def codec_min_frames(codec: Codec) -> int:
    """The decoder's first convolution reflect-pads by `padding_total` frames, which needs more frames than that."""
    return int(codec.model.decoder.layers[0].padding_total) + 1


def _export_dynamo(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: tuple,
) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and renaming notices
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    program.save(str(path))
