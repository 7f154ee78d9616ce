"""KL_DEVICE: auto picks the GPU when torch sees one, the CPU here; the dtype follows and reaches the model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.models import loading
from kernel_lifecycle.models.device import placement
from kernel_lifecycle.models.loading import load_base, load_kernel
from kernel_lifecycle.settings import get_settings
from tests.factories import make_bundle, make_tiny_base


@pytest.fixture
def device_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("KL_DEVICE", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_auto_is_the_cpu_in_float32_without_a_gpu(device_env: pytest.MonkeyPatch) -> None:
    import torch

    assert get_settings().device == "auto"
    device, dtype = placement()
    if torch.cuda.is_available():
        assert (device.type, dtype) == ("cuda", torch.bfloat16)
    else:  # this machine and CI
        assert (device, dtype) == (torch.device("cpu"), torch.float32)
    device_env.setenv("KL_DEVICE", "cpu")
    get_settings.cache_clear()
    assert placement() == (torch.device("cpu"), torch.float32)


def test_cuda_without_a_gpu_and_unknown_words_are_one_line(device_env: pytest.MonkeyPatch) -> None:
    import torch
    from pydantic import ValidationError

    if not torch.cuda.is_available():
        device_env.setenv("KL_DEVICE", "cuda")
        get_settings.cache_clear()
        with pytest.raises(ConfigurationError, match=r"'cuda' asked for \(KL_DEVICE\), but torch sees no CUDA GPU"):
            placement()
    with pytest.raises(ConfigurationError, match="device 'tpu': use one of auto, cpu, cuda"):
        placement("tpu")
    with pytest.raises(ConfigurationError, match="device 'cpu:1'"):
        placement("cpu:1")
    device_env.setenv("KL_DEVICE", "gpu")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="KL_DEVICE must be 'auto' or 'cpu' or 'cuda'"):
        get_settings()


def test_the_placed_dtype_reaches_base_and_kernel(tmp_path: Path, device_env: pytest.MonkeyPatch) -> None:
    """float32 here; and whatever placement answers (bfloat16 on a GPU machine) is what loads."""
    import torch

    base = make_tiny_base(tmp_path / "base", hidden=32)
    model, _ = load_base(str(base))
    assert model.dtype == torch.float32 and model.device.type == placement()[0].type

    # A GPU machine's answer, on the CPU: the loaders must use it, not their own defaults.
    device_env.setattr(loading, "placement", lambda device=None: (torch.device("cpu"), torch.bfloat16))
    model, _ = load_base(str(base))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    kernel = load_kernel(make_bundle(tmp_path / "k", n_adapters=1, base_dir=base))
    assert {p.dtype for p in kernel.model.parameters()} == {torch.bfloat16}  # merged in fp32, cast once
