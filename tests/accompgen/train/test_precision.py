import pytest
import torch

from accompgen.train import precision
from accompgen.train.precision import Precision


def test_auto_is_bf16_only_where_the_processor_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert Precision.choose("auto", cpu).name == "fp32"
    assert Precision.choose("bf16", cpu).name == "bf16"  # asked for: emulated, slower, but what was asked
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert Precision.choose("auto", cpu).name == "bf16"
    assert Precision.choose("fp32", cpu).name == "fp32"


def test_bf16_autocast_computes_products_in_bf16_and_fp32_leaves_them():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with Precision(True, "cpu").autocast():
        assert (a @ b).dtype == torch.bfloat16
    with Precision(False, "cpu").autocast():
        assert (a @ b).dtype == torch.float32


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="fp16"):
        Precision.choose("fp16", torch.device("cpu"))
