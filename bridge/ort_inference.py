"""`Inference` over an exported stage graph: the KV cache lives in onnxruntime values bound with IOBinding, so on
a GPU it never leaves the device; only the new ids and ticks go in and the last logits come out.

An `inplace` graph (accompgen_export.graphs) gets one buffer per layer and kind, of the window's capacity, bound
as both its past input and its present output: each step writes its keys and values into place. A `growing`
graph gets a new, longer present every step."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from accompgen.core import graph_names
from accompgen.core.bundle import StageSpec
from accompgen_bridge.providers import Device


class OrtInference:
    def __init__(self, session: ort.InferenceSession, spec: StageSpec, device: Device, capacity: int):
        """`capacity`: the most positions this window will hold (the inplace cache's length)."""
        self.session = session
        self.spec = spec
        self.device = device.ort_device
        self.capacity = capacity
        self.cache_dtype = np.dtype(spec.cache_dtype)
        self.past_names = graph_names.stage_inputs(spec.layers)[2:]
        self.present_names = graph_names.stage_outputs(spec.layers)[1:]
        self.past: list[ort.OrtValue] | None = None

    def _empty_cache(self, batch: int) -> list[ort.OrtValue]:
        length = self.capacity if self.spec.cache == "inplace" else 0
        shape = [batch, self.spec.heads, length, self.spec.head_dim]
        return [
            ort.OrtValue.ortvalue_from_shape_and_type(shape, self.cache_dtype, self.device, 0) for _ in self.past_names
        ]

    def logits(self, input_ids: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        if self.past is None:
            self.past = self._empty_cache(len(input_ids))
        if self.spec.cache == "inplace" and len(ticks) > self.capacity:
            raise ValueError(f"{len(ticks)} positions overflow the cache of {self.capacity}")
        binding = self.session.io_binding()
        binding.bind_cpu_input(graph_names.INPUT_IDS, np.ascontiguousarray(input_ids, dtype=np.int64))
        binding.bind_cpu_input(graph_names.TICKS, np.ascontiguousarray(ticks, dtype=np.int64))
        for name, value in zip(self.past_names, self.past, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(graph_names.LOGITS, "cpu")
        for name, value in zip(self.present_names, self.past, strict=True):
            if self.spec.cache == "inplace":
                binding.bind_ortvalue_output(name, value)  # the same buffer: written in place
            else:
                binding.bind_output(name, self.device, 0)
        self.session.run_with_iobinding(binding)
        logits, *present = binding.get_outputs()
        if self.spec.cache == "growing":
            self.past = present
        return np.asarray(logits.numpy())
