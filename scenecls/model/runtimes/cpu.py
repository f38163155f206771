"""What this CPU is: its model name and the instruction sets that decide which runtime and
precision are fastest (AVX2, AVX-512, BF16, VNNI, AMX).

Read from ``/proc/cpuinfo`` on Linux; elsewhere only the model name from the platform
module is known and every instruction set reads as unknown (``None``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .base import usable_cpus

ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "BF16": ("avx512_bf16", "amx_bf16"),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "AMX": ("amx_tile",),
}
"""The instruction sets that matter for the image encoder, and the ``/proc/cpuinfo``
flags that stand for each (any one of them)."""

CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "OPENCV_CPU_DISABLE")
"""Environment variables that limit the instruction sets libraries use (oneDNN, which
OpenVINO uses; OpenBLAS; OpenCV): part of what makes a machine for a runtime choice."""


@dataclass(frozen=True)
class CpuInfo:
    """``model``: the CPU's name; ``isa``: each of :data:`ISA_FLAGS` -> True/False (None
    when unknown); ``cpus``: CPUs this process may use; ``caps``: the
    :data:`CAP_VARIABLES` that are set, as ``NAME=value``."""

    model: str
    isa: dict[str, bool | None]
    cpus: int
    caps: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: ``Intel(R) Xeon(R) ..., 2 CPUs: AVX2 yes, AVX-512 yes, BF16 no, ...``."""
        sets = ", ".join(
            f"{name} {'?' if has is None else 'yes' if has else 'no'}"
            for name, has in self.isa.items()
        )
        caps = f" [limited: {' '.join(self.caps)}]" if self.caps else ""
        return f"{self.model}, {self.cpus} CPU{'s' if self.cpus != 1 else ''}: {sets}{caps}"

    @property
    def key(self) -> str:
        """A short fingerprint of everything here: a runtime measured on one machine is
        measured again on another (or under other limits)."""
        text = repr((self.model, sorted(self.isa.items()), self.cpus, self.caps))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        """For JSON: ``model``, ``isa``, ``cpus``, ``caps``."""
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> tuple[str, frozenset[str]] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo`, as this process sees it now."""
    found = _proc_cpuinfo()
    caps = tuple(f"{n}={os.environ[n]}" for n in CAP_VARIABLES if os.environ.get(n))
    if found is None:
        model = platform.processor() or platform.machine() or "unknown CPU"
        return CpuInfo(model, dict.fromkeys(ISA_FLAGS), usable_cpus(), caps)
    model, flags = found
    isa: dict[str, bool | None] = {
        name: any(f in flags for f in names) for name, names in ISA_FLAGS.items()
    }
    return CpuInfo(model or platform.machine() or "unknown CPU", isa, usable_cpus(), caps)
