"""Shared benchmark plumbing: progress lines, machine facts, latency stats, markdown output."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "log",
    "rss_mb",
    "machine_info",
    "latency_stats",
    "table",
    "write_section",
    "save_json",
    "CpuMeter",
]

_T0 = time.perf_counter()


def log(msg: str) -> None:
    """A progress line on stderr, stamped with seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _proc_status(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def rss_mb() -> float:
    """Current resident memory of this process, MiB."""
    return _proc_status("VmRSS")


def peak_rss_mb() -> float:
    return _proc_status("VmHWM")


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:  # noqa: BLE001 - a missing optional package is just reported as absent
        return "not installed"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
    except OSError:
        pass
    ram_gib = float("nan")
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram_gib = int(m.group(1)) / 1024**2 if m else ram_gib
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    for mod in ("numpy", "torch", "faiss", "bm25s", "sentence_transformers", "scipy"):
        info[mod] = _version(mod)
    try:
        import faiss
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except Exception:  # noqa: BLE001
        pass
    return info


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds of per-query wall times."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table (the library's own, so docs and reports look alike)."""
    from budgetmem.tables import markdown_table

    return markdown_table(header, rows, align)


def write_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->``, keeping the rest."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text, count=1)
        else:
            text = text.rstrip() + "\n\n" + block
    else:
        text = "# Benchmarks\n\nNumbers measured by the scripts in `bench/`; each section is rewritten by its script.\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _cpu_ticks() -> tuple[int, int, int]:
    """(total, idle, steal) jiffies of the whole machine from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0, 0
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return sum(f), idle + iowait, steal


class CpuMeter:
    """How busy the machine was while we measured: CPU used by other processes, and steal.

    On a shared 2-core VM, other work running at the same time is the main source of noise;
    recording it lets a reader judge each number.
    """

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._ticks = _cpu_ticks()
        t = os.times()
        self._own = t.user + t.system

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t
        total, idle, steal = (b - a for a, b in zip(self._ticks, _cpu_ticks()))
        hz = os.sysconf("SC_CLK_TCK")
        busy = (total - idle - steal) / hz
        t = os.times()
        own = t.user + t.system - self._own
        return {
            "wall_s": wall,
            "own_cpu_s": own,
            "others_cores": max(0.0, busy - own) / wall if wall > 0 else 0.0,
            "steal_pct": 100.0 * steal / total if total > 0 else 0.0,
        }
