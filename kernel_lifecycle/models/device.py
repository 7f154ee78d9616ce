"""Where tensors live and in which dtype: one answer for every loader (``KL_DEVICE``).

``auto`` takes CUDA when torch sees a GPU and the CPU otherwise; ``cpu`` and ``cuda`` say so
outright, and ``cuda`` on a machine without a GPU is refused with one line instead of failing
deep inside torch. The dtype follows the device: bfloat16 on CUDA (half the memory, the range
of fp32, what GPUs since Ampere compute in natively), float32 on the CPU (CPU bf16 matmuls are
slower than fp32 ones on most x86 machines, and fp32 keeps CPU numbers bit-stable for tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.settings import CHOICES, get_settings

if TYPE_CHECKING:
    import torch


def placement(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) for models: ``device`` (auto|cpu|cuda|cuda:N) or, when None, ``KL_DEVICE``."""
    import torch

    asked = device if device is not None else get_settings().device
    kind, _, index = asked.partition(":")
    if kind not in CHOICES["device"] or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigurationError(f"device {asked!r}: use one of auto, cpu, cuda (or cuda:N)")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif kind == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {asked!r} asked for (KL_DEVICE), but torch sees no CUDA GPU here "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); use KL_DEVICE=auto or cpu"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ConfigurationError(f"device {asked!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if kind == "cuda":
        return torch.device("cuda", int(index) if index else torch.cuda.current_device()), torch.bfloat16
    return torch.device("cpu"), torch.float32
