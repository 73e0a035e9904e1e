"""What this machine's CPU and llama.cpp build can run, and how GGUF weights are loaded.

llama.cpp can repack weights at load time into CPU-specific layouts, its "extra buffer
types": AMX tiles on Intel Xeons that have AMX, interleaved blocks for AVX2 / AVX-512
elsewhere. With llama-cpp-python 0.3.36 the AMX repack crashes the process (SIGSEGV in
decode) on Intel CPUs with ``amx_tile``; loading with ``use_extra_bufts = False`` runs.
A native crash cannot be caught in-process, so the choice is made before loading:

- ``repack = "off"`` / ``"on"`` (``[llm]`` settings): as told.
- ``repack = "auto"`` (the default): off on a CPU with AMX (the known crash); elsewhere
  decided per model by short generations in child processes, on this machine, this
  llama.cpp build and this model file (:mod:`budgetmem.llm.repack`): repacking is kept
  where it survives and is faster. Verdicts are kept in ``<models dir>/native-checks.json``.
  A crash there falls back to ``off`` with a one-line warning; a crash with repacking off
  too is a :class:`NativeCrashError` naming the model and the likely cause, never a dead
  process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

__all__ = [
    "CpuInfo",
    "RepackChoice",
    "RepackMode",
    "cpu_info",
    "llama_build",
    "choose_repack",
    "model_params",
    "VerdictCache",
]

RepackMode = Literal["auto", "on", "off"]
REPACK_MODES: tuple[str, ...] = ("auto", "on", "off")

_AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
# The flags that decide which kernels and repack layouts llama.cpp's CPU backend picks.
_REPORTED_FLAGS = ("sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni",
                   "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")  # fmt: skip


@dataclass(frozen=True)
class CpuInfo:
    model: str
    vendor: str
    flags: frozenset[str]
    cores: int

    @property
    def has_amx(self) -> bool:
        return bool(self.flags & _AMX_FLAGS)

    def reported_flags(self) -> list[str]:
        """The SIMD / matrix features that matter to llama.cpp, in a fixed order."""
        return [f for f in _REPORTED_FLAGS if f in self.flags]

    def fingerprint(self) -> str:
        """Identifies a CPU family and feature set (not a single machine)."""
        blob = json.dumps([self.vendor, self.model, sorted(self.flags)])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "vendor": self.vendor, "cores": self.cores,
                "features": self.reported_flags(), "amx": self.has_amx}  # fmt: skip


def _parse_cpuinfo(text: str) -> tuple[str, str, frozenset[str]]:
    model = vendor = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, vendor, flags


def cpu_info(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> CpuInfo:
    """The CPU as Linux describes it; on other systems, what ``platform`` knows."""
    try:
        model, vendor, flags = _parse_cpuinfo(Path(cpuinfo).read_text(errors="replace"))
    except OSError:
        model, vendor, flags = "", "", frozenset()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return CpuInfo(model or platform.processor() or platform.machine(), vendor or "unknown", flags, cores)


def llama_build(llama_cpp: ModuleType) -> dict[str, str]:
    """llama-cpp-python's version and llama.cpp's own system line (the compiled-in
    features, e.g. ``AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1``)."""
    try:
        system = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - an old build without the call; the version still helps
        system = "unknown"
    return {"llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"), "system_info": system}


@dataclass(frozen=True)
class RepackChoice:
    enabled: bool
    reason: str
    verify: bool = False
    """True when ``enabled`` is a default that a child-process check must confirm first."""


def choose_repack(mode: str, cpu: CpuInfo) -> RepackChoice:
    """The load-time decision before any check has run (see the module docstring)."""
    if mode == "on":
        return RepackChoice(True, "repack = on in the settings")
    if mode == "off":
        return RepackChoice(False, "repack = off in the settings")
    if mode != "auto":
        from budgetmem.errors import ConfigError

        raise ConfigError(f"unknown repack mode {mode!r}", hint="use auto, on or off")
    if cpu.has_amx:
        return RepackChoice(False, "auto: this CPU has AMX, whose llama.cpp weight repack crashes in decode")
    return RepackChoice(True, "auto: no AMX; per model, repacking kept where child-process checks show it safe and faster",
                        verify=True)


_PARAMS_LOCK = threading.Lock()


@contextmanager
def model_params(llama_cpp: ModuleType, *, repack: bool) -> Iterator[None]:
    """Load models inside this block with weight repacking on or off.

    ``llama_cpp.Llama`` builds its ``llama_model_params`` from
    ``llama_model_default_params()`` and exposes no ``use_extra_bufts`` argument, so the
    default factory is swapped for the block. The lock keeps two loads from seeing each
    other's choice.
    """
    low = llama_cpp.llama_cpp
    with _PARAMS_LOCK:
        original: Callable[[], Any] = low.llama_model_default_params

        def params() -> Any:
            p = original()
            p.use_extra_bufts = repack
            return p

        low.llama_model_default_params = params
        try:
            yield
        finally:
            low.llama_model_default_params = original


def model_fingerprint(path: Path) -> str:
    """Name, size and modification time: enough to tell a re-prepared file apart, cheap to compute."""
    st = path.stat()
    return f"{path.name}:{st.st_size}:{int(st.st_mtime)}"


class VerdictCache:
    """Survived / crashed verdicts of child-process checks, one JSON file per models dir.

    Keyed by CPU fingerprint, llama-cpp-python version, model file and repack choice, so a
    new CPU, a rebuilt llama.cpp or a re-prepared model is checked again. Writes go to a
    temporary file and are renamed into place; concurrent writers may both check, which
    costs time, never correctness.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(cpu: CpuInfo, version: str, model: Path, repack: bool) -> str:
        return "|".join([cpu.fingerprint(), version, model_fingerprint(model), "repack" if repack else "plain"])

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        data = self._read()
        data[key] = verdict
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def warn(message: str) -> None:
    print(f"budgetmem: warning: {message}", file=sys.stderr)
