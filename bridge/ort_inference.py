"""`Inference` over an exported stage graph: the KV cache lives in onnxruntime values bound with IOBinding, so on
a GPU it never leaves the device; only the new ids and ticks go in and the last logits come out."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from accompgen import graph_io as io
from accompgen.bundle import StageSpec
from accompgen_bridge.providers import Device


class OrtInference:
    def __init__(self, session: ort.InferenceSession, spec: StageSpec, device: Device):
        self.session = session
        self.spec = spec
        self.device = device.ort_device
        self.cache_dtype = np.dtype(spec.cache_dtype)
        self.past_names = io.stage_inputs(spec.layers)[2:]
        self.present_names = io.stage_outputs(spec.layers)[1:]
        self.past: list[ort.OrtValue] | None = None

    def _empty_cache(self, batch: int) -> list[ort.OrtValue]:
        shape = [batch, self.spec.heads, 0, self.spec.head_dim]
        return [
            ort.OrtValue.ortvalue_from_shape_and_type(shape, self.cache_dtype, self.device, 0) for _ in self.past_names
        ]

    def logits(self, input_ids: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        if self.past is None:
            self.past = self._empty_cache(len(input_ids))
        binding = self.session.io_binding()
        binding.bind_cpu_input(io.INPUT_IDS, np.ascontiguousarray(input_ids, dtype=np.int64))
        binding.bind_cpu_input(io.TICKS, np.ascontiguousarray(ticks, dtype=np.int64))
        for name, value in zip(self.past_names, self.past, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(io.LOGITS, "cpu")
        for name in self.present_names:
            binding.bind_output(name, self.device, 0)
        self.session.run_with_iobinding(binding)
        logits, *self.past = binding.get_outputs()
        return logits.numpy()
