"""The ``repack = "auto"`` decision: repack weights where it is safe and faster, per model.

Safe is not knowable in advance (a native crash kills the process) and neither is faster:
on an AMD EPYC with AVX-512, llama.cpp's CPU repack of Q4_K weights made prompt processing
0.64x as fast and generation 1.27x as fast (docs/BENCHMARKS.md, "Native"). So, except on
CPUs with AMX (a known crash, decided without a check), each model is loaded both ways
once in child processes (:mod:`budgetmem.llm.probe`): a way that crashes is out, and of
the two that survive the one that runs a typical budgetmem call faster wins. A call here
is prompt-heavy: a 1,000-token prompt (memories plus task) and 32 generated tokens.
Verdicts are kept per CPU, llama.cpp build and model file (:class:`VerdictCache`), so the
checks cost a few seconds once per machine and model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetmem.errors import NativeCrashError
from budgetmem.llm.native import CpuInfo, VerdictCache, choose_repack, cpu_info, warn
from budgetmem.llm.probe import ProbeResult, check_model

__all__ = ["RepackDecision", "resolve_repack", "measure", "call_seconds", "REFERENCE_CALL"]

REFERENCE_CALL = (1000, 32)
"""(prompt, generated) tokens of the call the two load modes are compared on."""
CHECK_TOKENS = (256, 16)
"""(prompt, generated) tokens each check child runs: enough for stable rates, a few seconds."""


@dataclass(frozen=True)
class RepackDecision:
    enabled: bool
    reason: str


def call_seconds(verdict: dict[str, Any]) -> float:
    """Seconds a reference call takes at a verdict's measured rates."""
    prompt, gen = REFERENCE_CALL
    return prompt / max(verdict["prompt_tps"], 1e-9) + gen / max(verdict["gen_tps"], 1e-9)


def _verdict(results: list[ProbeResult]) -> dict[str, Any]:
    """One load mode's verdict over its check runs: the best rates (other work on the machine
    only ever slows a run down), and the first failure if any run failed."""
    bad = next((r for r in results if not r.ok), None)
    return {"ok": bad is None, "error": bad.error if bad else "", "signal": bad.signal if bad else None,
            "prompt_tps": max(r.prompt_tps for r in results), "gen_tps": max(r.gen_tps for r in results),
            "repacked": any(r.repacked for r in results), "runs": len(results), "checked_at": time.time()}  # fmt: skip


def _crashed(v: dict[str, Any]) -> bool:
    return not v["ok"] and bool(v.get("signal"))


def _keep(cache: VerdictCache, key: str, verdict: dict[str, Any]) -> None:
    """Only outcomes that say something about the machine are kept: survived, or died from a
    signal. A child that fails for another reason (an unreadable file) is not remembered;
    the in-process load then raises that error properly."""
    if verdict["ok"] or verdict["signal"]:
        cache.put(key, verdict)


def measure(path: Path, name: str, cpu: CpuInfo, cache: VerdictCache, version: str, *, rounds: int = 2,
            fresh: bool = False, timeout_s: float = 300.0, seen: Callable[[ProbeResult], None] | None = None,
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:  # fmt: skip
    """Verdicts (repacked, plain) for a model: from the cache, or by check children.

    Repacked goes first: if it crashes, or llama.cpp has no repacked layout for the weights
    (then both modes load the same buffers), plain is not needed for a decision and is
    ``None`` unless it must stand in for a crash. Otherwise the modes alternate for
    ``rounds`` rounds, so both see the same machine. ``seen`` receives each child's result."""
    key_on, key_off = (cache.key(cpu, version, path, r) for r in (True, False))
    if not fresh:
        on, off = cache.get(key_on), cache.get(key_off)
        if on is not None and "prompt_tps" in on and (off is not None or not (_crashed(on) or on["repacked"])):
            return on, off
    prompt, gen = CHECK_TOKENS

    def run(repack: bool) -> ProbeResult:
        result = check_model(path, name=name, repack=repack, amx=cpu.has_amx, prompt_tokens=prompt, gen_tokens=gen,
                             timeout_s=timeout_s)  # fmt: skip
        if seen is not None:
            seen(result)
        return result

    ons = [run(True)]
    offs: list[ProbeResult] = []
    if ons[0].ok and ons[0].repacked:
        offs.append(run(False))
        for _ in range(rounds - 1):
            ons.append(run(True))
            offs.append(run(False))
    elif not ons[0].ok and ons[0].signal:
        offs.append(run(False))
    on = _verdict(ons)
    _keep(cache, key_on, on)
    off = _verdict(offs) if offs else None
    if off is not None:
        _keep(cache, key_off, off)
    return on, off


def resolve_repack(path: Path, name: str, mode: str, checks: Path, *, version: str, cpu: CpuInfo | None = None,
                   fresh: bool = False, seen: Callable[[ProbeResult], None] | None = None) -> RepackDecision:  # fmt: skip
    """Whether to load ``path`` with weight repacking under ``mode`` (auto / on / off)."""
    cpu = cpu or cpu_info()
    choice = choose_repack(mode, cpu)
    if not choice.verify:
        return RepackDecision(choice.enabled, choice.reason)
    on, off = measure(path, name, cpu, VerdictCache(checks), version, fresh=fresh, seen=seen)
    if _crashed(on):
        if off is not None and _crashed(off):
            raise NativeCrashError(off["error"], hint="run budgetmem doctor for this machine's report")
        warn(f"{on['error']}; loading {name} without weight repacking")
        return RepackDecision(False, f"auto: repacking crashed ({on['signal']})")
    if not on["ok"]:  # a non-native failure: the in-process load will name it
        return RepackDecision(choice.enabled, choice.reason)
    if not on["repacked"]:
        return RepackDecision(False, "auto: llama.cpp has no repacked layout for this weight format (the same load either way)")
    if off is None or not off["ok"]:
        return RepackDecision(True, "auto: plain loading failed its check" if off else choice.reason)
    ratio = call_seconds(off) / call_seconds(on)
    return RepackDecision(ratio > 1.0, f"auto: repacked runs a {REFERENCE_CALL[0]:,}+{REFERENCE_CALL[1]}-token call "
                                       f"{ratio:.2f}x as fast as plain")  # fmt: skip
