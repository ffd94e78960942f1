"""Smaller graphs: weight-only quantized matrix products in the stages, every other large weight kept in fp16.

- Stage graphs: every MatMul with a constant weight becomes com.microsoft MatMulNBits (8 or 4 bits, symmetric
  blocks of 32 along the input dimension, accuracy level 4 = int8 products, the fast path on CPU; level 0 was
  slower than fp32). The tied output head exports as Gemm(x, E, transB=1), which the quantizer skips, so it is
  turned into MatMul(x, E^T) first and quantized too; the embedding lookup keeps E.
- All graphs: float32 weights that are left (embeddings, convolutions, norms' tables) are stored as float16 and
  cast back by one Cast node each. onnxruntime folds those casts when it loads the graph, so the arithmetic stays
  float32: the file shrinks by half and only the weights' rounding changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

QUANTIZATIONS = {"int8": 8, "int4": 4}
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4
FP16_MIN_ELEMENTS = 1024  # smaller tensors are not worth a node

# the quantizer narrates every node at INFO, and the ONNX IR passes it runs every initializer they merge
for name in ("onnxruntime.quantization.matmul_nbits_quantizer", "onnx_ir"):
    logging.getLogger(name).setLevel(logging.WARNING)


def head_as_matmul(model: onnx.ModelProto) -> int:
    """Gemm(A, B, transB=1) with constant B and no bias -> MatMul(A, B^T); returns how many were rewritten."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    rewritten = 0
    for index, node in enumerate(graph.node):
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attributes.get("alpha", 1.0) == 1.0 and not attributes.get("transA", 0) and len(node.input) == 2
        if node.op_type != "Gemm" or not plain or node.input[1] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if attributes.get("transB", 0):
            weight = weight.T
        name = f"{node.input[1]}_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), name))
        graph.node[index].CopyFrom(helper.make_node("MatMul", [node.input[0], name], list(node.output), node.name))
        rewritten += 1
    return rewritten


def quantize_matmuls(model: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    # importing it calls logging.basicConfig(level=INFO): every library would narrate at INFO from then on
    logging.root.setLevel(root_level)
    logging.root.handlers[:] = root_handlers

    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
        bits=bits,
        op_types_to_quantize=("MatMul",),
    )
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    return quantizer.model.model


def store_fp16(model: onnx.ModelProto) -> int:
    """Large float32 initializers -> float16 initializers + Cast back to float32; returns how many."""
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < FP16_MIN_ELEMENTS:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
        kept.append(half)
        casts.append(
            helper.make_node("Cast", [half.name], [init.name], f"{init.name}_to_fp32", to=onnx.TensorProto.FLOAT)
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def compact_graph(path: Path, bits: int | None) -> None:
    """Rewrite one graph file in place: quantized MatMuls when `bits` is given, fp16 storage always."""
    model = onnx.load(str(path))
    if bits is not None:
        head_as_matmul(model)
        model = quantize_matmuls(model, bits)
    store_fp16(model)
    onnx.save(model, str(path))
