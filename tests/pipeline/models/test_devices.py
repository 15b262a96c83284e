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


def test_the_networks_train_where_pytorch_can():
    import torch

    from pipeline.models.devices import torch_device

    assert torch_device("cpu") == "cpu"
    assert torch_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():  # this machine and CI: the CPU build
        with pytest.raises(ValueError, match="install a CUDA build of PyTorch"):
            torch_device("cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        torch_device("tpu")


def test_the_run_can_say_where_the_networks_trained():
    import torch

    assert devices.torch_device_name("cpu") == f"the CPU ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        assert devices.torch_device_name("auto") == f"CUDA ({torch.cuda.get_device_name()})"
    else:
        assert devices.torch_device_name("auto").startswith("the CPU")
