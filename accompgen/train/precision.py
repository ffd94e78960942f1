"""How a training step computes: bf16 autocast where the processor does bf16 arithmetic itself, fp32 otherwise.

The weights, the optimizer state and the gradients stay fp32 either way (autocast computes matrix products and
convolutions in bf16 from fp32 master weights); losses, norms' statistics and codebook updates are fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from accompgen.train.train_settings import PRECISIONS


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 products in hardware (AVX512_BF16 or AMX on x86, any CUDA GPU with bf16).
    Elsewhere torch emulates bf16 on the CPU, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


@dataclass(frozen=True)
class Precision:
    bf16: bool
    device_type: str

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def autocast(self) -> AbstractContextManager[None]:
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)

    @classmethod
    def choose(cls, requested: str, device: torch.device) -> Precision:
        """`auto`: bf16 where the device computes it natively; `bf16` insists (emulated where it is not)."""
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
        bf16 = requested == "bf16" or (requested == "auto" and native_bf16(device))
        return cls(bf16, device.type)
