"""Which ONNX Runtime execution providers, and which PyTorch device, a run uses.

``providers(device)`` for ``device`` in ``DEVICES``: ``cpu``; ``cuda`` (an error when
no usable GPU is found); ``auto``, CUDA only when ONNX Runtime has the CUDA provider and
an NVIDIA driver is loaded, so a CPU machine prints no errors. CUDA sessions run in full
float32 (``CUDA_OPTIONS``).

``torch_device(device)``: where the networks train. ``auto`` is ``cuda`` when the installed PyTorch is a CUDA
build and sees a GPU (requirements.txt pins the CPU build; README says how to install a CUDA one), else ``cpu``;
``cuda`` without such a build is an error that says so. Training runs in full float32 there too (no TF32).
``torch_device_name(device)``: that device in words, for the run's notes (which GPU, or how many CPU threads).
"""

from __future__ import annotations

import ctypes

DEVICES = ("auto", "cpu", "cuda")
# Full-precision float32 on the GPU: with TF32 (ONNX Runtime's default on Ampere and later)
# the networks' probabilities moved up to 9e-4 from the CPU's on an H100, past the parity limit.
CUDA_OPTIONS = {"use_tf32": "0"}


def cuda_usable() -> bool:
    """True when ONNX Runtime has the CUDA provider and an NVIDIA driver is loaded."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def providers(device: str = "auto") -> list[str]:
    """Execution providers for ``device``: auto | cpu | cuda."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if cuda_usable():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ValueError("--device cuda was asked for, but no usable CUDA GPU was found; use --device auto or cpu")
    return ["CPUExecutionProvider"]


def torch_device(device: str = "auto") -> str:
    """The PyTorch device the networks train on, for ``device``: auto | cpu | cuda."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as the ONNX sessions
        torch.backends.cudnn.allow_tf32 = False
        return "cuda"
    if device == "cuda":
        raise ValueError(f"--device cuda was asked for, but this PyTorch ({torch.__version__}) cannot use a GPU: "
                         "install a CUDA build of PyTorch (README: 'On a GPU'), or use --device auto or cpu")
    return "cpu"


def torch_device_name(device: str = "auto") -> str:
    """Where ``torch_device(device)`` trains, in words: 'CUDA (NVIDIA H200)' or 'the CPU (2 threads)'."""
    import torch

    if torch_device(device) == "cuda":
        return f"CUDA ({torch.cuda.get_device_name()})"
    return f"the CPU ({torch.get_num_threads()} threads)"
