import onnxruntime as ort
import pytest

from accompgen.core.errors import UserError
from accompgen_bridge.providers import choose_device


def test_cpu_is_always_there():
    device = choose_device("cpu")
    assert device.providers == ("CPUExecutionProvider",) and device.ort_device == "cpu"


def test_auto_takes_cuda_only_where_it_works():
    device = choose_device("auto")
    assert device.providers[-1] == "CPUExecutionProvider"  # the fallback is always last
    if device.kind == "cuda":
        assert "CUDAExecutionProvider" in ort.get_available_providers()
        assert device.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_forcing_a_missing_device_says_so():
    if choose_device("auto").kind == "cuda":
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="no working cuda runtime"):
        choose_device("cuda")
    with pytest.raises(UserError, match="unknown device"):
        choose_device("tpu")


def test_each_provider_gets_its_options():
    from accompgen_bridge.providers import CUDA_OPTIONS, Device

    device = Device("cuda", ("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert device.provider_options() == [("CUDAExecutionProvider", CUDA_OPTIONS), ("CPUExecutionProvider", {})]
    assert CUDA_OPTIONS["cudnn_conv_algo_search"] == "HEURISTIC"
