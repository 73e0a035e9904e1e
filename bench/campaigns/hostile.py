"""Hostile model servers: the OpenAI-compatible backend, the pipeline and the CLI against a
server that answers with random runs of good and bad replies.

The server is tests/fake_openai.py: real HTTP on 127.0.0.1, every reply chosen by the trial
(malformed JSON, empty body, huge reply, 429 with and without Retry-After, 500, silence past
the timeout, a body dribbled out too slowly, a connection cut mid-body, an HTML page, JSON
of the wrong shape, text no parser reads). Trial i attacks with behaviour ``HOSTILE[i % 12]``;
its seed picks the retry settings, the operations (one ``complete``, a query through
``BudgetMem`` under a random policy, or the same through ``budgetmem complete`` / ``budgetmem
ask`` in a child process) and, for each operation, a random script of good replies and
bursts of the bad one.

Every operation is checked against the server's own log, read through the documented retry
policy (README, "OpenAI-compatible endpoints"): the requests form calls of at most
1 + max_retries attempts, only transient failures are retried, each wait is the backoff or
the Retry-After within bounds, and nothing is sent after a call failed. From that log the
outcome is known: the operation must fail with the matching one-line error exactly when a
call failed, and succeed otherwise; what it reports as paid (the ledger, or the error's
paid clause) must equal the usage the server delivered, token for token; no answer may be a
blank presented as one; a module reply no parser can read must show in the ledger.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaigns.common import Campaign, Trial
from fake_openai import HOSTILE, TRANSIENT, FakeOpenAIServer, Reply, Served, hostile

from budgetmem.encoder import Encoder
from budgetmem.errors import BudgetMemError, LLMError
from budgetmem.llm import make_llm
from budgetmem.llm.openai_compat import MAX_BACKOFF_S
from budgetmem.llm.pricing import DEFAULT_PRICES
from budgetmem.memory import BudgetMem
from budgetmem.settings import EncoderSettings, LLMSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "conversation.json"
SEEDS = 6
"""Trials per behaviour: the first runs ``budgetmem ask`` in a child process, the second
``budgetmem complete``, the rest stay in this process (the encoder loaded once)."""
TIMEOUT_S = 1.0
"""The client's llm.timeout_s. 0.3 s timed out good replies to a child process on a 2-core machine
at load 17 (a false finding); a timeout reply sleeps 3x this."""
SLACK_S = 1.5
"""How much longer than the policy's wait a retry may come (a busy machine, a slow reply)."""
QUESTION = "Where did Priya move?"
LADDER = ("llama-3.2-3b", "llama-3.1-8b", "llama-3.3-70b")
POLICIES = (
    ("high", "implementation"), ("high", "reasoning"), ("mid,filter=high,summary=high", "implementation"),
    ("high", "capacity"), ("escalate:low>high@0.999", "capacity"), ("mid", "reasoning"),
)  # fmt: skip
"""(policy, strategy) pairs whose tiers call the model, from one call per module to three."""
FAILS_AT_ONCE = frozenset({"malformed", "empty", "html", "wrong-shape"})
"""Replies the server gave in full that are no chat completion: an error, never retried."""
UNREADABLE = frozenset({"garbage", "huge"})
"""Well-formed replies whose text no module parser reads."""
MESSAGE = {
    "429": "answered HTTP 429", "429-retry-after": "answered HTTP 429", "500": "answered HTTP 500",
    "timeout": "did not answer within", "slow-body": "did not answer within", "drop": "broke the connection",
    "malformed": "not JSON", "empty": "(empty body)", "html": "not JSON", "wrong-shape": "without message content",
}  # fmt: skip
"""What the one-line error says for a call whose last attempt got this reply."""
RETRIED = {
    "429": "HTTP 429", "429-retry-after": "HTTP 429", "500": "HTTP 500", "timeout": "timeout", "slow-body": "timeout",
    "drop": "connection broken",
}  # fmt: skip
"""How the trace names a retried attempt that got this reply (``CallRecord.retries``)."""
_PAID = re.compile(r"; paid: (\d+) calls?, (\d+) prompt \+ (\d+) completion tokens, \$([0-9.]+)")


@dataclass
class Shared:
    srv: FakeOpenAIServer
    store: Path
    encoder: Encoder
    settings: Settings


def setup(work: Path) -> Shared:
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(encoder=EncoderSettings(name="all-minilm-l6-v2"))
    encoder = Encoder(settings.encoder, settings.models_dir)
    store = work / "memory.db"
    with BudgetMem(store, "demo", settings=settings, encoder=encoder) as mem:
        mem.add(EXAMPLE)
    srv = FakeOpenAIServer(delay_s=0.0).__enter__()
    return Shared(srv, store, encoder, settings)


def teardown(shared: Shared) -> None:
    shared.srv.__exit__(None, None, None)


# --------------------------------------------------------------------------- the oracle
@dataclass
class Knobs:
    """One trial's client settings and hostile parameters."""

    max_retries: int
    backoff_s: float
    retry_after: float | str
    """Seconds, or an HTTP date string (then the wait is up to a second, the date's precision)."""

    def wait(self, attempt: int, after: Served) -> tuple[float, float]:
        """(least, most) seconds from the arrival of failed ``attempt`` (1-based) to the next,
        by the policy: the backoff, or a longer Retry-After, capped; plus the failed attempt's
        own time when it was a timeout."""
        backoff = self.backoff_s * 2 ** (attempt - 1)
        least = most = backoff
        if after.kind == "429-retry-after":
            if isinstance(self.retry_after, str):  # an HTTP date: whole seconds, so anywhere up to 1 s
                most = max(backoff, 1.0)
            else:
                least = most = max(backoff, self.retry_after)
        least, most = min(least, MAX_BACKOFF_S), min(most, MAX_BACKOFF_S)
        if after.kind in ("timeout", "slow-body"):
            least, most = least + TIMEOUT_S, most + 2 * TIMEOUT_S
        return least * 0.95 - 0.01, most + SLACK_S


@dataclass
class Expected:
    """What the server's log says the operation must have done."""

    calls: list[list[Served]]
    failed: str | None = None
    """The reply kind that ended the failed call (None: every call succeeded)."""
    billed: tuple[int, int] = (0, 0)
    usd: float = 0.0
    broken: list[str] = field(default_factory=list)
    """Retry-policy violations seen in the log alone."""
    retried: list[str] = field(default_factory=list)
    """The failed attempts of the calls that succeeded, as the trace must show them."""


def expect(served: list[Served], knobs: Knobs) -> Expected:
    attempts = knobs.max_retries + 1
    calls: list[list[Served]] = []
    current: list[Served] = []
    for s in served:
        current.append(s)
        if s.kind in TRANSIENT and len(current) < attempts:
            continue  # the policy retries it
        calls.append(current)
        current = []
    out = Expected(calls)
    if current:  # the log ends inside a call that the policy would have retried again
        out.broken.append(f"gave up after {len(current)} of {attempts} attempts on {current[-1].kind}")
        calls.append(current)
    for n, call in enumerate(calls):
        last = call[-1].kind
        if last in TRANSIENT or last in FAILS_AT_ONCE:
            out.failed = last
            if n + 1 < len(calls):
                out.broken.append(f"{len(calls) - n - 1} more calls after a call failed on {last}")
            break
    for call in calls:
        if call[-1].kind not in TRANSIENT and call[-1].kind not in FAILS_AT_ONCE:
            out.retried += [RETRIED[s.kind] for s in call[:-1]]
        for j in range(1, len(call)):
            gap = call[j].at - call[j - 1].at
            least, most = knobs.wait(j, call[j - 1])
            if not least <= gap <= most:
                out.broken.append(f"retry {j} after {call[j - 1].kind} came {gap:.2f} s later, policy {least:.2f}-{most:.2f} s")
    got = [s for s in served if s.billed is not None]
    out.billed = (sum(s.billed[0] for s in got), sum(s.billed[1] for s in got))  # type: ignore[index]
    for s in got:
        price = DEFAULT_PRICES.lookup(s.body["model"])
        out.usd += s.billed[0] * price.input_per_m / 1e6 + s.billed[1] * price.output_per_m / 1e6  # type: ignore[index]
    return out


def must_show(served: list[Served]) -> int:
    """Unreadable replies to module calls whose failure the ledger must show: the final
    reply of a direct / CoT / reflect / repair call. (A plan is free text, and an act's
    unreadable draft is the reflect call's to salvage, by design.)"""
    return sum(
        1 for s in served
        if s.kind in UNREADABLE and "</answer>" in (s.body.get("stop") or []) and "Now carry out your plan" not in s.prompt
    )  # fmt: skip


# --------------------------------------------------------------------------- operations
@dataclass
class Outcome:
    """What an operation reported."""

    error: str | None = None
    """The one-line error (None: it succeeded)."""
    paid: tuple[int, int] = (0, 0)
    """Tokens it says were paid: the ledger's, or the error's paid clause."""
    usd: float = 0.0
    answer: str | None = None
    """The answer of a query (None for complete)."""
    answer_failed: bool = False
    shown: int = 0
    """Module steps whose ledger line shows a reply that did not parse."""
    retries: list[str] | None = None
    """The retried attempts the trace shows (None: not visible on this path, a CLI error)."""
    problems: list[str] = field(default_factory=list)
    """Broken promises seen in the operation's own output (a traceback, a wrong exit status)."""


def _settings(shared: Shared, knobs: Knobs, strategy: str) -> Settings:
    ladder = tuple(f"openai:{m}@{shared.srv.url}" for m in LADDER)
    s = shared.settings.replace(
        llm__timeout_s=TIMEOUT_S, llm__max_retries=knobs.max_retries, llm__backoff_s=knobs.backoff_s,
        pipeline__module_llm=shared.srv.provider, pipeline__answer_llm=shared.srv.provider, pipeline__ladder=ladder,
        pipeline__strategy=strategy, pipeline__concurrent=False,  # one call at a time: the log is the call order
    )  # fmt: skip
    return dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))


def _from_error(exc: LLMError) -> Outcome:
    calls = exc.spent or ([exc.paid] if exc.paid is not None else [])
    return Outcome(error=str(exc), paid=(sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls)),
                   usd=sum(c.usd for c in calls), retries=[r for c in calls for r in c.retries])  # fmt: skip


def run_complete(shared: Shared, knobs: Knobs, prompt: str) -> Outcome:
    llm = make_llm(shared.srv.provider, settings=_settings(shared, knobs, "implementation"))
    try:
        out = llm.complete(prompt, max_tokens=32)
    except LLMError as exc:
        return _from_error(exc)
    finally:
        llm.close()  # type: ignore[attr-defined]
    return Outcome(paid=(out.prompt_tokens, out.completion_tokens), usd=out.usd, retries=list(out.retries))


def run_query(shared: Shared, knobs: Knobs, policy: str, strategy: str) -> Outcome:
    with BudgetMem(shared.store, "demo", settings=_settings(shared, knobs, strategy), encoder=shared.encoder, policy=policy) as mem:
        try:
            r = mem.query(QUESTION)
        except LLMError as exc:
            return _from_error(exc)
    steps = r.all_steps
    return Outcome(
        paid=(sum(s.prompt_tokens for s in steps), sum(s.completion_tokens for s in steps)), usd=r.total_usd,
        answer=r.answer, answer_failed=r.answer_step.parse_status == "failed",
        shown=sum(1 for s in steps if s.module != "answer" and (s.parse_status in ("repaired", "failed") or s.raw_output)),
        retries=[r for s in steps for c in s.calls for r in c.retries],
    )  # fmt: skip


def _child(args: list[str], knobs: Knobs, work: Path) -> subprocess.CompletedProcess[str]:
    config = work / "budgetmem.toml"
    config.write_text(
        f"[llm]\ntimeout_s = {TIMEOUT_S}\nmax_retries = {knobs.max_retries}\nbackoff_s = {knobs.backoff_s}\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-m", "budgetmem", "--config", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _from_child(done: subprocess.CompletedProcess[str], ok_codes: tuple[int, ...]) -> Outcome:
    out = Outcome()
    if "Traceback" in done.stderr or done.returncode not in (*ok_codes, 2):
        out.problems.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        out.error = done.stderr.strip() or f"exit {done.returncode}"
        return out
    if done.returncode == 2:
        lines = done.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("budgetmem: error: "):
            out.problems.append(f"the error is not one line: {done.stderr.strip()[:300]!r}")
        out.error = done.stderr.strip()
        m = _PAID.search(out.error)
        if m:
            out.paid, out.usd = (int(m[2]), int(m[3])), float(m[4])
    return out


def run_cli_complete(shared: Shared, knobs: Knobs, prompt: str, work: Path) -> Outcome:
    done = _child(["complete", prompt, "--provider", shared.srv.provider, "--max-tokens", "32", "--json"], knobs, work)
    out = _from_child(done, (0,))
    if done.returncode == 0 and not out.problems:
        c = json.loads(done.stdout)
        out.paid, out.usd, out.retries = (c["prompt_tokens"], c["completion_tokens"]), c["usd"], c["retries"]
    return out


def run_cli_ask(shared: Shared, knobs: Knobs, policy: str, strategy: str, work: Path) -> Outcome:
    ladder = ",".join(f"openai:{m}@{shared.srv.url}" for m in LADDER)
    done = _child(
        ["ask", QUESTION, "--store", str(shared.store), "--namespace", "demo", "--policy", policy, "--strategy", strategy,
         "--module-llm", shared.srv.provider, "--answer-llm", shared.srv.provider, "--ladder", ladder,
         "--sequential", "--no-cache", "--json"], knobs, work,
    )  # fmt: skip
    out = _from_child(done, (0, 1))
    if done.returncode in (0, 1) and not out.problems:
        r = json.loads(done.stdout)
        t = r["totals"]
        out.paid = (t["extraction_prompt_tokens"] + t["answer_prompt_tokens"],
                    t["extraction_completion_tokens"] + t["answer_completion_tokens"])  # fmt: skip
        out.usd, out.answer = t["total_usd"], r["answer"]
        out.answer_failed = r["answer_step"]["parse_status"] == "failed"
        steps = [s for p in [r, *r["passes"]] for s in p["steps"]]
        out.shown = sum(1 for s in steps if s["parse_status"] in ("repaired", "failed") or s["raw_output"])
        answers = [p["answer_step"] for p in [r, *r["passes"]]]
        out.retries = [x for s in [*steps, *answers] for c in s["calls"] for x in c["retries"]]
        if (done.returncode == 1) != (not r["answer"].strip()):
            out.problems.append(f"exit {done.returncode} with the answer {r['answer'][:60]!r}")
    return out


# --------------------------------------------------------------------------- checking
def judge(op: str, exp: Expected, got: Outcome, served: list[Served]) -> list[str]:
    """Every broken promise of one operation, as short phrases."""
    bad = [f"{op}: {x}" for x in exp.broken + got.problems]
    if exp.failed is not None and got.error is None:
        bad.append(f"{op}: a call failed on {exp.failed} but the operation reported success")
    if exp.failed is None and got.error is not None:
        bad.append(f"{op}: every call succeeded but it failed: {got.error[:200]}")
    if exp.failed is not None and got.error is not None:
        if MESSAGE[exp.failed] not in got.error:
            bad.append(f"{op}: the error for {exp.failed} does not say {MESSAGE[exp.failed]!r}: {got.error[:200]}")
        if "\n" in got.error.strip():
            bad.append(f"{op}: the error is not one line")
    if got.retries is not None and sorted(got.retries) != sorted(exp.retried):
        bad.append(f"{op}: the trace shows retries after {sorted(got.retries)}, the server's log {sorted(exp.retried)}")
    if got.paid != exp.billed:
        bad.append(f"{op}: reported {got.paid[0]}+{got.paid[1]} tokens paid, the server billed {exp.billed[0]}+{exp.billed[1]}")
    elif abs(got.usd - exp.usd) > 1e-6 + 1e-6 * exp.usd:  # the paid clause prints 6 decimals
        bad.append(f"{op}: reported ${got.usd:.8f} paid, the server's usage costs ${exp.usd:.8f}")
    if got.error is None and got.answer is not None:
        if not got.answer.strip() and not got.answer_failed:
            bad.append(f"{op}: a blank answer presented as an answer")
        if must_show(served) and not got.shown:
            bad.append(f"{op}: {must_show(served)} unreadable module replies, none shown in the ledger")
    return bad


def _script(rng: random.Random, kind: str, knobs: Knobs) -> list[Reply]:
    """Good replies and bursts of the bad one, so some calls recover and some run out of
    tries. The first burst comes within the first four requests: an operation may make
    only three calls."""
    out: list[Reply] = [hostile("ok")] * rng.randint(0, 3)
    for n in range(rng.randint(2, 9)):
        if n == 0 or rng.random() < 0.4:
            burst = rng.randint(1, knobs.max_retries + 1) if kind in TRANSIENT else 1
            out += [hostile(kind, retry_after=knobs.retry_after, sleep_s=3 * TIMEOUT_S)] * burst
        else:
            out.append(hostile("ok"))
    return out


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


def run(index: int, work: Path, rng: random.Random, shared: Shared) -> Trial:
    kind = HOSTILE[index % len(HOSTILE)]
    variant = index // len(HOSTILE)
    knobs = Knobs(
        max_retries=rng.randint(0, 3), backoff_s=round(rng.uniform(0.01, 0.05), 3),
        retry_after=round(rng.uniform(0.05, 0.4), 2),
    )  # fmt: skip
    if variant == 0:
        ops = ["cli-ask"]
    elif variant == 1:
        ops = ["cli-complete", "query"]
    else:
        ops = [rng.choice(["complete", "query"]) for _ in range(3)] + ["query"]
    trial = Trial(index=index, cases=len(ops), detail={"behaviour": kind, "max_retries": knobs.max_retries,
                                                        "backoff_s": knobs.backoff_s, "ops": []})  # fmt: skip
    srv = shared.srv
    for n, op in enumerate(ops):
        if kind == "429-retry-after" and rng.random() < 0.3:
            knobs.retry_after = _http_date(1.0)  # the header's other form
        srv.reset()
        srv.push(*_script(rng, kind, knobs))
        policy, strategy = rng.choice(POLICIES)
        prompt = f"Question: what is item {n} of trial {index}?"
        try:
            if op == "complete":
                got = run_complete(shared, knobs, prompt)
            elif op == "query":
                got = run_query(shared, knobs, policy, strategy)
            elif op == "cli-complete":
                got = run_cli_complete(shared, knobs, prompt, work)
            else:
                got = run_cli_ask(shared, knobs, policy, strategy, work)
        except BudgetMemError as exc:  # not an LLM error: a failure of the wrong kind, still one line
            got = Outcome(error=str(exc), problems=[f"raised {type(exc).__name__}: {exc}"])
        except Exception as exc:  # noqa: BLE001 - a crash is the finding
            got = Outcome(error=f"{type(exc).__name__}: {exc}", problems=[f"crashed: {type(exc).__name__}: {exc}"[:300]])
        time.sleep(0.05)  # a reply still being booked (a cut connection) lands before the log is read
        served = list(srv.served)
        exp = expect(served, knobs)
        trial.failures += judge(f"{op}#{n}", exp, got, served)
        trial.detail["ops"].append({
            "op": op, "policy": None if "complete" in op else f"{strategy}/{policy}", "requests": len(served),
            "kinds": "".join("." if s.kind == "ok" else "x" for s in served), "calls": len(exp.calls),
            "failed_on": exp.failed, "billed": list(exp.billed), "error": (got.error or "")[:160] or None,
        })  # fmt: skip
    return trial


CAMPAIGNS = [
    Campaign(
        name="hostile_llm",
        title="Hostile model server",
        trials=len(HOSTILE) * SEEDS,
        run=run,
        setup=setup,
        teardown=teardown,
        what=(
            "complete, BudgetMem.query and the ask / complete commands against a local OpenAI-compatible server giving "
            "random runs of good replies and one of 12 bad ones (malformed, empty, huge, 429, 429 + Retry-After, 500, "
            "timeout, slow body, dropped connection, HTML, wrong shape, unparseable text); each operation is checked "
            "against the server's log: retries and waits as documented, the right one-line error exactly when a call "
            "failed, every retried attempt listed in the trace, the tokens reported paid equal to those the server billed, no blank answer, every unreadable "
            "module reply shown in the ledger."
        ),
    )
]
