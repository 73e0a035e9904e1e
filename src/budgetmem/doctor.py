"""What this machine can run: the CPU, the llama.cpp build, the prepared models, and one
short generation per prepared model, each in a child process (``budgetmem doctor``).

Nothing native runs in this process: even ``import llama_cpp`` happens in a child, since a
llama.cpp built for another CPU can die on import (SIGILL). A child that dies becomes a
one-line error naming the model and the likely cause (:func:`budgetmem.llm.probe.explain`).
The verdicts found here are written to the same cache the embedded backend reads, so a
crash found by the doctor is avoided by the next ``budgetmem ask``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetmem.errors import NativeCrashError
from budgetmem.encoder import query_precision
from budgetmem.llm.native import CpuInfo, choose_repack, cpu_info
from budgetmem.llm.probe import ProbeResult, check_model
from budgetmem.llm.repack import CHECK_TOKENS, resolve_repack

__all__ = ["ModelCheck", "DoctorReport", "diagnose", "llama_build_info", "CHECK_TOKENS"]
from budgetmem.models import MODELS, status, verify
from budgetmem.models.prepare import models_dir


@dataclass(frozen=True)
class ModelCheck:
    name: str
    kind: str
    state: str
    """ready, missing or incomplete."""
    sha256: str
    """ok, MISMATCH, unchecked (``verify=False``) or '-' (not prepared)."""
    path: str


@dataclass
class DoctorReport:
    cpu: dict[str, Any]
    llama: dict[str, str]
    repack_mode: str
    repack_choice: str
    models: list[ModelCheck] = field(default_factory=list)
    generations: list[ProbeResult] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)
    """model -> how the embedded backend will load it here, and why."""
    prompt_tokens: int = 0
    gen_tokens: int = 0
    query_precision: str = "float32"
    """What the sentence encoder embeds queries in here (``[encoder] query_precision``)."""

    @property
    def problems(self) -> list[str]:
        """One line each: what keeps this machine from running a prepared model."""
        out = [f"{m.name}: sha256 does not match its pin (run: budgetmem models prepare --force {m.name})"
               for m in self.models if m.sha256 == "MISMATCH"]  # fmt: skip
        by_model: dict[str, list[ProbeResult]] = {}
        for g in self.generations:
            by_model.setdefault(g.model, []).append(g)
        for results in by_model.values():
            if not any(r.ok for r in results):
                out.extend(r.error for r in results)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "llama_cpp": self.llama,
            "repack": {"mode": self.repack_mode, "choice": self.repack_choice},
            "models": [m.__dict__ for m in self.models],
            "generation": {"prompt_tokens": self.prompt_tokens, "gen_tokens": self.gen_tokens,
                           "results": [g.to_dict() for g in self.generations]},  # fmt: skip
            "load": self.decisions,
            "encoder": {"query_precision": self.query_precision},
            "problems": self.problems,
        }


def llama_build_info(timeout_s: float = 120.0) -> dict[str, str]:
    """llama-cpp-python's version and system line, read in a child process."""
    code = ("import json, llama_cpp; from budgetmem.llm.native import llama_build; "
            "print(json.dumps(llama_build(llama_cpp)))")  # fmt: skip
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"llama_cpp_python": "unknown", "system_info": f"no answer within {timeout_s:.0f} s"}
    if proc.returncode == 0:
        try:
            return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (json.JSONDecodeError, IndexError):
            pass
    if proc.returncode < 0:
        return {"llama_cpp_python": "unknown", "system_info": f"importing llama_cpp killed the process (signal {-proc.returncode})"}
    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    return {"llama_cpp_python": "not importable", "system_info": last[:200]}


def diagnose(
    *,
    root: Path | None = None,
    repack: str = "auto",
    compare: bool = False,
    verify_sha: bool = True,
    prompt_tokens: int = CHECK_TOKENS[0],
    gen_tokens: int = CHECK_TOKENS[1],
    timeout_s: float = 300.0,
    only: list[str] | None = None,
    cpu: CpuInfo | None = None,
    query_setting: str = "auto",
    progress: Callable[[str], None] = lambda _: None,
) -> DoctorReport:
    """Build the report. ``compare`` runs every model with repacking on and off (for the
    speed table); otherwise each model runs as the embedded backend would load it."""
    cpu = cpu or cpu_info()
    choice = choose_repack(repack, cpu)
    progress("reading the llama.cpp build")
    llama = llama_build_info()
    report = DoctorReport(cpu.to_dict(), llama, repack, f"{'on' if choice.enabled else 'off'} ({choice.reason})",
                          prompt_tokens=prompt_tokens, gen_tokens=gen_tokens,
                          query_precision=query_precision(query_setting, cpu))  # fmt: skip
    specs = [s for s in MODELS.values() if only is None or s.name in only]
    for spec in specs:
        st = status(spec, root)
        sha = "-"
        if st.state == "ready":
            progress(f"hashing {spec.name}")
            sha = ("ok" if verify(spec.name, root) else "MISMATCH") if verify_sha else "unchecked"
        report.models.append(ModelCheck(spec.name, spec.kind, st.state, sha, str(st.path)))
    checks = models_dir(root) / "native-checks.json"
    version = llama.get("llama_cpp_python", "unknown")
    for m in report.models:
        if m.kind != "llm" or m.state != "ready" or m.sha256 == "MISMATCH":
            continue
        path = Path(m.path)
        if choice.verify and not compare:
            # auto without AMX: the backend's own check children are the report (fresh, then kept).
            progress(f"checking {m.name} with and without weight repacking, in child processes")
        else:
            for on in [True, False] if compare else [choice.enabled]:
                progress(f"generating with {m.name} (repack {'on' if on else 'off'}) in a child process")
                report.generations.append(check_model(path, name=m.name, repack=on, prompt_tokens=prompt_tokens,
                                                      gen_tokens=gen_tokens, timeout_s=timeout_s, amx=cpu.has_amx))  # fmt: skip
        try:
            d = resolve_repack(path, m.name, repack, checks, version=version, cpu=cpu, fresh=choice.verify,
                               seen=report.generations.append if choice.verify and not compare else None)  # fmt: skip
            report.decisions[m.name] = f"repack {'on' if d.enabled else 'off'}: {d.reason}"
        except NativeCrashError as exc:
            report.decisions[m.name] = f"cannot run: {exc.one_line()}"
    return report
