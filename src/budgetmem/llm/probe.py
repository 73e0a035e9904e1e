"""One short generation on a GGUF model in a child process, so a native crash is a result.

``python -m budgetmem.llm.probe --model PATH --repack on`` loads the model, evaluates a
prompt of a fixed number of tokens, greedily generates a fixed number more, and prints
one JSON line per phase it enters, then a result line with the prompt and generation
speeds. The parent (:func:`check_model`) reads those lines: when the child dies from a
signal, the last phase it announced says where, and :func:`explain` turns signal, phase
and repack choice into a one-line likely cause. The child runs llama.cpp verbosely;
its log names the buffer types the weights landed in (``CPU_REPACK``, ``AMX``), which
is how the parent knows whether repacking happened.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ProbeResult", "check_model", "explain", "main"]

# Plain prose to fill a prompt of any length (tokenised by the model under test).
_FILLER = (
    "The harbour town woke early. Fishing boats left before dawn, the bakery on the square "
    "opened at six, and by eight the market stalls sold bread, cheese, apples and smoked fish. "
)
_BUFFER_RE = re.compile(r"\b([A-Za-z0-9_]+) model buffer size")


@dataclass(frozen=True)
class ProbeResult:
    model: str
    repack: bool
    ok: bool
    phase: str
    """The last phase the child entered: import, load, prompt, generate or done."""
    error: str = ""
    """One line: what went wrong and the likely cause (empty when ok)."""
    signal: str | None = None
    load_s: float = 0.0
    prompt_tokens: int = 0
    prompt_tps: float = 0.0
    gen_tokens: int = 0
    gen_tps: float = 0.0
    buffers: list[str] = field(default_factory=list)
    """llama.cpp buffer types that hold weights (e.g. CPU_Mapped, CPU_REPACK, AMX)."""
    wall_s: float = 0.0

    @property
    def repacked(self) -> bool:
        return any("REPACK" in b.upper() or b.upper() == "AMX" for b in self.buffers)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repacked": self.repacked}


def explain(sig: str | None, phase: str, repack: bool, amx: bool) -> str:
    """The likely cause of a child's death, for the one-line error."""
    if sig == "SIGILL":
        return ("llama.cpp was compiled for a CPU with instructions this one lacks; rebuild it here: "
                "pip install --force-reinstall --no-cache-dir llama-cpp-python")  # fmt: skip
    if sig == "SIGKILL":
        return "killed by the kernel, most likely out of memory (a smaller model or fewer processes)"
    if sig in ("SIGSEGV", "SIGBUS") and repack:
        kind = "AMX weight repack" if amx else "CPU weight repack (llama.cpp extra buffer types)"
        return f"a crash in the {kind}; set repack = \"off\" under [llm] in the settings"
    if sig == "SIGABRT":
        return "llama.cpp aborted on an internal check; the model file may not suit this llama.cpp build"
    if sig in ("SIGSEGV", "SIGBUS"):
        return f"llama.cpp crashed during {phase} without repacking: a llama.cpp bug, or a damaged model file"
    return "see the child's output"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the budgetmem package's parent folder
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONFAULTHANDLER"] = "1"  # a Python-level traceback beside the native crash, for the log
    return env


def check_model(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    repack: bool,
    prompt_tokens: int = 48,
    gen_tokens: int = 16,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    timeout_s: float = 300.0,
    amx: bool = False,
    command: list[str] | None = None,
) -> ProbeResult:
    """Run one generation on the model in a child process and report how it went.

    ``command`` replaces the child's command line (tests use it to stand in a child that
    crashes); it receives the same arguments.
    """
    model = name or Path(path).name
    args = ["--model", str(path), "--repack", "on" if repack else "off", "--prompt-tokens", str(prompt_tokens),
            "--gen-tokens", str(gen_tokens), "--n-ctx", str(n_ctx)]  # fmt: skip
    if n_threads:
        args += ["--threads", str(n_threads)]
    cmd = (command or [sys.executable, "-m", "budgetmem.llm.probe"]) + args
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=_child_env())
    except subprocess.TimeoutExpired as exc:
        lines = _lines(exc.stdout)
        phase = _phase(lines)
        return ProbeResult(model, repack, False, phase, f"{model}: no result within {timeout_s:.0f} s (stuck in {phase})",
                           wall_s=time.perf_counter() - started)  # fmt: skip
    wall = time.perf_counter() - started
    lines = _lines(proc.stdout)
    phase = _phase(lines)
    buffers = sorted(set(_BUFFER_RE.findall(proc.stderr or "")))
    final = next((x for x in reversed(lines) if "ok" in x), None)
    if proc.returncode == 0 and final and final.get("ok"):
        return ProbeResult(model, repack, True, "done", load_s=final["load_s"], prompt_tokens=final["prompt_tokens"],
                           prompt_tps=final["prompt_tps"], gen_tokens=final["gen_tokens"], gen_tps=final["gen_tps"],
                           buffers=buffers, wall_s=wall)  # fmt: skip
    if proc.returncode < 0:
        sig = _signal_name(-proc.returncode)
        error = f"{model}: llama.cpp crashed with {sig} during {phase} (repack {'on' if repack else 'off'}): " + explain(
            sig, phase, repack, amx
        )
        return ProbeResult(model, repack, False, phase, error, sig, buffers=buffers, wall_s=wall)
    reason = (final or {}).get("error") or _last_line(proc.stderr) or f"exit status {proc.returncode}"
    return ProbeResult(model, repack, False, phase, f"{model}: {reason}", buffers=buffers, wall_s=wall)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _lines(out: str | bytes | None) -> list[dict[str, Any]]:
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    rows = []
    for line in (out or "").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _phase(lines: list[dict[str, Any]]) -> str:
    phases = [x["phase"] for x in lines if isinstance(x.get("phase"), str)]
    return phases[-1] if phases else "start"


def _last_line(text: str | None) -> str:
    rows = [x.strip() for x in (text or "").splitlines() if x.strip()]
    return rows[-1][:300] if rows else ""


# --------------------------------------------------------------------------- the child


def _say(**row: Any) -> None:
    print(json.dumps(row), flush=True)  # flushed: a crash right after must not lose the phase


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m budgetmem.llm.probe", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--repack", choices=("on", "off"), required=True)
    p.add_argument("--prompt-tokens", type=int, default=48)
    p.add_argument("--gen-tokens", type=int, default=16)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    _say(phase="import")
    import llama_cpp

    from budgetmem.llm.llamacpp import default_threads
    from budgetmem.llm.native import model_params

    _say(phase="load")
    t0 = time.perf_counter()
    try:
        with model_params(llama_cpp, repack=a.repack == "on"):
            llm = llama_cpp.Llama(model_path=a.model, n_ctx=max(a.n_ctx, a.prompt_tokens + a.gen_tokens + 8),
                                  n_threads=a.threads or default_threads(), verbose=True)  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        _say(ok=False, error=f"llama.cpp could not load the file: {exc}")
        return 1
    load_s = time.perf_counter() - t0
    filler = llm.tokenize(_FILLER.encode(), add_bos=False)
    tokens = [llm.token_bos()] + (filler * (a.prompt_tokens // max(1, len(filler)) + 1))[: a.prompt_tokens - 1]
    _say(phase="prompt")
    t0 = time.perf_counter()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - t0
    _say(phase="generate")
    t0 = time.perf_counter()
    out = []
    for _ in range(a.gen_tokens):  # a fixed count: end-of-text does not stop a speed measurement
        tok = llm.sample(top_k=1, temp=0.0)
        out.append(tok)
        llm.eval([tok])
    gen_s = time.perf_counter() - t0
    _say(phase="done")
    _say(ok=True, load_s=load_s, prompt_tokens=len(tokens), prompt_tps=len(tokens) / prompt_s,
         gen_tokens=len(out), gen_tps=len(out) / gen_s if gen_s > 0 else 0.0)  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main())
