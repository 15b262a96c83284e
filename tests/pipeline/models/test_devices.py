import pytest

from pipeline.models import devices


def test_cpu_machine_gets_cpu_provider_without_errors():
    assert devices.providers("cpu") == ["CPUExecutionProvider"]
    if not devices.cuda_usable():
        assert devices.providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(ValueError, match="no usable CUDA GPU"):
            devices.providers("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        devices.providers("tpu")
