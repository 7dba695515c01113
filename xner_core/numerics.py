"""How the numbers are computed (training and inference): devices, floating-point precision, determinism.

Precision. `auto` (the default everywhere) resolves to `bf16` on CUDA and on CPUs with native bf16 instructions
(avx512_bf16 or AMX), `fp32` elsewhere. `bf16` runs the forward and backward passes under `torch.autocast`
with bfloat16 (weights, optimiser state and the loss stay fp32: mixed precision, not a bf16 model). `fp32` runs
without autocast.

Precision is NOT part of a config's hash. It is treated like the device: it changes the rounding of the same
recipe, not the recipe (data, options, seed). The cache manifest and every result row record the precision a
model was trained and evaluated with, and the benchmarks measure that bf16 and fp32 agree
(`benchmarks/bench_inference.py`: the same fine-tuned model scored both ways; `benchmarks/bench_training.py`:
the same data and seed trained both ways). Keeping it out of the hash also
keeps every hash made before precision was an option.

Determinism. `deterministic()` switches PyTorch to its deterministic kernels for a block of work. Measured
here: with 2 CPU threads, two processes training the same tiny config differed by ~1e-10 in several
weights (some backward kernels accumulate in a thread-dependent order); with deterministic kernels the
weights are bit-identical across processes, at no measurable cost in speed. Same config, seed, device,
precision and thread count -> same weights.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any, Iterator

from xner_core.errors import ConfigError, choices_message

PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
RESOLVED_PRECISIONS: tuple[str, ...] = ("bf16", "fp32")
_BF16_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})


def resolve_device(device: Any = None) -> Any:
    """Return the torch device to run on.

    Args:
        device: None/"auto" (CUDA when available, else CPU), or anything `torch.device` accepts.

    Returns:
        A `torch.device`. Raises ConfigError for an unknown device or CUDA asked for on a machine without it.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = _parse_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available here; choose one of: auto, cpu")
    return dev


def device_type(device: Any = None) -> str:
    """The kind of device ("cpu", "cuda", ...) a name stands for, without checking that it is present here.

    Args:
        device: as in `resolve_device`.

    Returns:
        The device type; None/"auto" gives this machine's default.
    """
    if device is None or device == "auto":
        return resolve_device(None).type
    return _parse_device(device).type


def _parse_device(device: Any) -> Any:
    """`torch.device(device)`, with a ConfigError naming the allowed spellings when it is not one."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; choose one of: auto, cpu, cuda, cuda:N") from exc


@functools.lru_cache(maxsize=1)
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has native bf16 arithmetic (avx512_bf16 or AMX-BF16 in its flags).

    Args:
        cpuinfo: the file to read the flags from (Linux); elsewhere the answer is False.

    Returns:
        True when one of the flags is present.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def check_precision(precision: str) -> str:
    """Validate a precision name.

    Args:
        precision: one of PRECISIONS.

    Returns:
        The name; raises ConfigError naming the allowed values otherwise.
    """
    if precision not in PRECISIONS:
        raise ConfigError(choices_message("precision", precision, PRECISIONS))
    return precision


def resolve_precision(precision: str | None = "auto", device: Any = None) -> str:
    """The precision a run uses on `device`: `bf16` or `fp32`.

    Args:
        precision: "auto" (or None), "bf16" or "fp32".
        device: the torch device (auto when None).

    Returns:
        An explicit value as is. For auto: the environment's XNER_PRECISION when it is bf16 or fp32 (the test
        suite sets fp32, so its numbers do not depend on the machine's CPU), else bf16 on CUDA or on a CPU
        with native bf16 and fp32 elsewhere.
    """
    precision = check_precision(precision or "auto")
    if precision != "auto":
        return precision
    env = os.environ.get("XNER_PRECISION", "").strip().lower()
    if env and env != "auto":
        if env not in RESOLVED_PRECISIONS:
            raise ConfigError(f"XNER_PRECISION={env!r} is invalid; choose one of: {', '.join(PRECISIONS)}")
        return env
    dev = resolve_device(device)
    if dev.type == "cuda":
        return "bf16"
    return "bf16" if dev.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast(device: Any, precision: str) -> Any:
    """The autocast context for a forward (and backward) pass at a resolved precision.

    Args:
        device: the torch device the pass runs on.
        precision: "bf16" or "fp32" (resolve "auto" first).

    Returns:
        `torch.autocast(device_type, bfloat16)` for bf16, a null context for fp32.
    """
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ConfigError(f"resolve precision {precision!r} first; autocast takes one of: "
                          f"{', '.join(RESOLVED_PRECISIONS)}")
    return torch.autocast(device_type=resolve_device(device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Run a block with PyTorch's deterministic kernels (warn-only where an op has none), then restore.

    Returns:
        A context manager.
    """
    import torch

    was, was_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)
