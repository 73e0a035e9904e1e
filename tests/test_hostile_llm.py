"""The OpenAI-compatible backend, the pipeline and the CLI against a hostile model server.

The server (tests/fake_openai.py) is a real HTTP server on 127.0.0.1 whose every reply the
test chooses: malformed JSON, empty bodies, huge replies, 429 with and without Retry-After,
500, silence past the client's timeout, a body dribbled out too slowly, a connection cut
mid-body, an HTML page, JSON of the wrong shape, text no parser reads. Each test checks the
promises: retries follow the documented policy (counted at the server), every failure is an
error the user sees or a fallback the ledger records, and the ledger bills exactly what the
server billed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE
from fake_openai import HOSTILE, HUGE_WORDS, TRANSIENT, FakeOpenAIServer, Reply, hostile

from budgetmem.cli.main import main
from budgetmem.errors import LLMError, LLMResponseError, LLMTimeoutError
from budgetmem.memory import BudgetMem
from budgetmem.llm import make_llm
from budgetmem.llm.openai_compat import OpenAICompatLLM
from budgetmem.llm.pricing import DEFAULT_PRICES
from budgetmem.settings import LLMSettings, Settings

TIMEOUT_S = 0.4
SRC = Path(__file__).resolve().parents[1] / "src"


def client(srv: FakeOpenAIServer, **llm: Any) -> OpenAICompatLLM:
    settings = Settings(llm=LLMSettings(**{"backoff_s": 0.01, "max_retries": 2, "timeout_s": TIMEOUT_S, **llm}))
    out = make_llm(srv.provider, settings=settings)
    assert isinstance(out, OpenAICompatLLM)
    return out


@pytest.fixture(scope="module")
def srv():
    with FakeOpenAIServer(delay_s=0.0) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(srv: FakeOpenAIServer) -> None:
    srv.reset()


def test_a_body_dribbled_out_past_the_timeout_times_out(srv: FakeOpenAIServer) -> None:
    # Regression: httpx's timeout bounds each read, so a reply sent a piece at a time, each
    # inside the read timeout, held a call for as long as the server liked.
    srv.push(*[hostile("slow-body", sleep_s=3 * TIMEOUT_S)] * 2)
    start = time.monotonic()
    with pytest.raises(LLMTimeoutError, match=f"did not answer within {TIMEOUT_S:g} s \\(2 attempts\\)") as info:
        client(srv, max_retries=1).complete("hi")
    elapsed = time.monotonic() - start
    assert len(srv.served) == 2 and "\n" not in str(info.value)
    assert elapsed < 2 * (2 * TIMEOUT_S) + 0.5, f"two attempts took {elapsed:.2f} s"


# What one call makes of one hostile reply followed by good ones: the error it raises (None:
# it succeeds) and whether the failed reply's usage is on the error.
OUTCOME: dict[str, tuple[type[Exception] | None, bool]] = {
    "malformed": (LLMResponseError, False), "empty": (LLMResponseError, False), "html": (LLMResponseError, False),
    "wrong-shape": (LLMResponseError, True), "huge": (None, False), "garbage": (None, False),
    **{k: (None, False) for k in TRANSIENT},
}  # fmt: skip
FOREVER: dict[str, type[Exception]] = {
    "429": LLMResponseError, "429-retry-after": LLMResponseError, "500": LLMResponseError, "drop": LLMResponseError,
    "timeout": LLMTimeoutError, "slow-body": LLMTimeoutError,
}  # fmt: skip


@pytest.mark.parametrize("kind", HOSTILE)
def test_each_hostile_reply_once(srv: FakeOpenAIServer, kind: str) -> None:
    srv.push(hostile(kind, retry_after=0.3, sleep_s=3 * TIMEOUT_S))
    error, paid = OUTCOME[kind]
    llm = client(srv)
    if error is None:
        out = llm.complete("Question: where is it?")
        assert (out.prompt_tokens, out.completion_tokens) == billed(srv)  # exactly what the server billed
        assert len(srv.served) == (2 if kind in TRANSIENT else 1)  # a transient failure is retried once, then ok
    else:
        with pytest.raises(error) as info:
            llm.complete("Question: where is it?")
        assert len(srv.served) == 1 and "\n" not in str(info.value)  # an answer of garbage is not retried
        assert (info.value.paid is not None) == paid and ("; paid: 1 call" in str(info.value)) == paid
    if kind == "429-retry-after":  # the header's 0.3 s wins over the 0.01 s backoff
        assert srv.served[1].at - srv.served[0].at >= 0.3


@pytest.mark.parametrize("kind", sorted(FOREVER))
def test_a_transient_failure_that_persists_is_tried_max_retries_plus_one_times(srv: FakeOpenAIServer, kind: str) -> None:
    srv.push(*[hostile(kind, retry_after=0.05, sleep_s=3 * TIMEOUT_S)] * 3, hostile("ok"))
    with pytest.raises(FOREVER[kind], match="3 attempts") as info:
        client(srv, max_retries=2).complete("hi")
    assert [s.kind for s in srv.served] == [kind] * 3 and "\n" not in str(info.value)
    gaps = [b.at - a.at for a, b in zip(srv.served, srv.served[1:])]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02  # exponential backoff: 0.01 s, then 0.02 s
    if kind == "429-retry-after":
        assert min(gaps) >= 0.05


def test_complete_fails_on_one_line_with_what_it_paid(
    srv: FakeOpenAIServer, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv.push(hostile("wrong-shape"))
    assert main(["--config", str(config), "complete", "Question: where is it?", "--provider", srv.provider]) == 2
    captured = capsys.readouterr()
    p, c = billed(srv)
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("budgetmem: error: ") and f"; paid: 1 call, {p} prompt + {c} completion tokens" in captured.err


def billed(srv: FakeOpenAIServer) -> tuple[int, int]:
    """(prompt, completion) tokens of every reply the server delivered with usage."""
    got = [s.billed for s in srv.served if s.billed is not None]
    return sum(p for p, _ in got), sum(c for _, c in got)


def billed_usd(srv: FakeOpenAIServer) -> float:
    """What those replies cost at the default prices of the models they were asked of."""
    total = 0.0
    for s in srv.served:
        if s.billed is not None:
            price = DEFAULT_PRICES.lookup(s.body["model"])
            total += s.billed[0] * price.input_per_m / 1e6 + s.billed[1] * price.output_per_m / 1e6
    return total


def spent(calls: Any) -> tuple[int, int]:
    calls = list(calls)
    return sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls)


def test_a_paid_reply_of_the_wrong_shape_is_billed_on_the_error(srv: FakeOpenAIServer) -> None:
    # Regression: the usage of a reply whose text was not where the API puts it was dropped
    # with the reply, so its tokens, paid at the server, showed up nowhere.
    srv.push(hostile("wrong-shape"))
    with pytest.raises(LLMResponseError, match="without message content") as info:
        client(srv).complete("Question: where is it?")
    err = info.value
    assert len(srv.served) == 1 and err.paid is not None  # not retried: the server answered
    assert (err.paid.prompt_tokens, err.paid.completion_tokens) == billed(srv) != (0, 0)
    assert err.paid.usd == pytest.approx(billed_usd(srv), rel=1e-9)
    assert str(err).endswith(f"; paid: 1 call, {billed(srv)[0]} prompt + {billed(srv)[1]} completion tokens, ${err.paid.usd:.6f}")
    assert "\n" not in str(err)


# --------------------------------------------------------------------------- the pipeline
QUESTION = "Where did Priya move?"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, minilm_settings: Settings) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "memory.db"
    with BudgetMem(db, "demo", settings=minilm_settings) as mem:
        mem.add(EXAMPLE)
    return db


def memory(store: Path, srv: FakeOpenAIServer, minilm_settings: Settings, policy: str, **pipeline: Any) -> BudgetMem:
    """The store's namespace with every LLM at the fake server, quick retries, no module cache
    (a cached step would send no request)."""
    ladder = tuple(f"openai:{m}@{srv.url}" for m in ("llama-3.2-3b", "llama-3.1-8b", "llama-3.3-70b"))
    s = minilm_settings.replace(
        llm__backoff_s=0.01, llm__max_retries=1, llm__timeout_s=TIMEOUT_S,
        pipeline__module_llm=srv.provider, pipeline__answer_llm=srv.provider, pipeline__ladder=ladder, **pipeline,
    )  # fmt: skip
    s = dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))
    return BudgetMem(store, "demo", settings=s, policy=policy)


@pytest.mark.parametrize(
    ("policy", "strategy", "good", "bad", "concurrent"),
    [
        # implementation HIGH: filter, entity, temporal, topic, summary, answer: one call each.
        pytest.param("high", "implementation", 1, "temporal:500", True, id="extractor-500-side-by-side"),
        pytest.param("high", "implementation", 5, "wrong-shape", False, id="answer-wrong-shape"),
        # reasoning HIGH: plan, act, reflect per module; the entity's act fails.
        pytest.param("high", "reasoning", 4, "malformed", False, id="reflect-act-malformed"),
        # a huge answer makes the shorten call, which fails after the answer was paid.
        pytest.param("high", "implementation", 5, "huge+html", False, id="shorten-after-huge-answer"),
        # escalation on the capacity ladder: the cheap pass (small rung), then the costly pass
        # (large rung) times out in its second call.
        pytest.param("escalate:low>high@0.999", "capacity", 8, "timeout", False, id="escalated-pass-timeout"),
    ],
)
def test_a_failed_query_reports_everything_it_paid(
    srv: FakeOpenAIServer, store: Path, minilm_settings: Settings, policy: str, strategy: str, good: int, bad: str,
    concurrent: bool,
) -> None:  # fmt: skip
    # Regression: an LLM error mid-query lost the ledger, so the calls it had already paid
    # for (earlier modules, a reflect's plan, the first pass, the answer before a shorten)
    # were reported nowhere.
    if bad.startswith("temporal:"):  # the temporal extractor's calls fail, wherever they fall in time
        srv.rule = lambda prompt: hostile(bad.split(":")[1]) if "list the time facts" in prompt else None
        replies: list[Reply] = []
    else:
        first, *then = bad.split("+")
        replies = [hostile(first, sleep_s=3 * TIMEOUT_S)] * (2 if first in TRANSIENT else 1)  # max_retries=1
        replies += [hostile(k) for k in then]
    srv.push(*[hostile("ok")] * good, *replies)
    with memory(store, srv, minilm_settings, policy, pipeline__strategy=strategy, pipeline__concurrent=concurrent) as mem:
        with pytest.raises(LLMError) as info:
            mem.query(QUESTION)
    err = info.value
    p, c = billed(srv)
    assert err.spent and spent(err.spent) == (p, c) and (p, c) != (0, 0)
    assert sum(x.usd for x in err.spent) == pytest.approx(billed_usd(srv), rel=1e-9)
    assert f"; paid: {len(err.spent)} calls, {p} prompt + {c} completion tokens" in str(err) and "\n" not in str(err)
    # After the error, nothing more was sent: the query stopped where it failed (the
    # extractors side by side each finish the call they are in).
    if not concurrent:
        assert srv.served[-1].kind != "ok"


def test_a_reply_with_no_answer_is_a_failed_answer_not_a_blank_one(
    srv: FakeOpenAIServer, store: Path, minilm_settings: Settings
) -> None:
    # Regression: a reply of only tags or whitespace became the answer "" with parse status
    # "ok": a blank presented as an answer.
    srv.push(*[hostile("ok")] * 5, hostile("garbage"))
    with memory(store, srv, minilm_settings, "high", pipeline__concurrent=False) as mem:
        r = mem.query(QUESTION)
    assert r.answer == "" and r.answer_step.parse_status == "failed" and "no answer" in (r.answer_step.note or "")
    assert r.parse_failures == [{"module": "answer", "tier": "-", "fallback": None, "raw_output": "<thinking>\n\n</thinking>"}]
    p, c = billed(srv)
    assert (sum(x.prompt_tokens for x in r.all_steps), sum(x.completion_tokens for x in r.all_steps)) == (p, c)


def test_a_runaway_answer_is_not_paid_again_in_full_by_the_shorten_call(
    srv: FakeOpenAIServer, store: Path, minilm_settings: Settings
) -> None:
    # Regression: the shorten call was shown the whole long answer, so a reply far past
    # max_tokens (a server that ignores it) was paid a second time as the shorten prompt.
    srv.push(*[hostile("ok")] * 5, hostile("huge"))
    with memory(store, srv, minilm_settings, "high", pipeline__concurrent=False) as mem:
        r = mem.query(QUESTION)
    first, shorten = r.answer_step.calls
    assert (first.purpose, shorten.purpose) == ("answer", "shorten") and first.completion_tokens == HUGE_WORDS
    assert shorten.prompt_tokens < 600 and r.answer and r.answer_step.parse_status == "ok"
    assert (sum(x.prompt_tokens for x in r.all_steps), sum(x.completion_tokens for x in r.all_steps)) == billed(srv)


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "budgetmem.toml"
    path.write_text(f"[llm]\ntimeout_s = {TIMEOUT_S}\nmax_retries = 1\nbackoff_s = 0.01\n", encoding="utf-8")
    return path


def ask_args(srv: FakeOpenAIServer, store: Path, config: Path) -> list[str]:
    return ["--config", str(config), "ask", QUESTION, "--store", str(store), "--namespace", "demo", "--policy", "high",
            "--sequential", "--no-cache", "--module-llm", srv.provider, "--answer-llm", srv.provider]  # fmt: skip


def test_ask_with_no_answer_says_so_and_exits_1(
    srv: FakeOpenAIServer, store: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv.push(*[hostile("ok")] * 5, hostile("garbage"))
    assert main(ask_args(srv, store, config)) == 1
    out = capsys.readouterr().out
    p, c = billed(srv)
    assert "A: (none: the answer model's reply held no answer" in out  # not a blank "A:" line
    assert re.search(r"^answer .* failed$", out, re.M) and re.search(rf"query total\s+{p}\s+{c}\s", out), out


def test_ask_in_a_process_fails_on_one_line_with_what_it_paid(srv: FakeOpenAIServer, store: Path, config: Path) -> None:
    srv.push(*[hostile("ok")] * 5, *[hostile("500")] * 2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run([sys.executable, "-m", "budgetmem", *ask_args(srv, store, config)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
    p, c = billed(srv)
    assert done.stderr.startswith("budgetmem: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "answered HTTP 500 after 2 attempts" in done.stderr
    assert f"; paid: 5 calls, {p} prompt + {c} completion tokens" in done.stderr  # the five modules
    assert [s.kind for s in srv.served] == ["ok"] * 5 + ["500"] * 2  # max_retries=1: two tries, then the error


def test_retried_failures_show_in_the_trace(srv: FakeOpenAIServer, store: Path, minilm_settings: Settings, capsys) -> None:
    # Regression: a call that recovered from a 429, a timeout or a cut connection looked in
    # the trace exactly like one that never failed; the failures were visible nowhere.
    srv.push(hostile("429", retry_after=0.01), hostile("drop"), hostile("ok"))
    out = client(srv).complete("hi")
    assert out.retries == ("HTTP 429", "connection broken") and out.to_dict()["retries"] == ["HTTP 429", "connection broken"]
    srv.reset()
    # implementation HIGH: filter, entity, temporal, topic, summary, answer; the summary's call times out once.
    srv.push(*[hostile("ok")] * 4, hostile("timeout", sleep_s=3 * TIMEOUT_S))
    with memory(store, srv, minilm_settings, "high", pipeline__concurrent=False) as mem:
        r = mem.query(QUESTION)
    retried = {s.module: list(c.retries) for s in r.all_steps for c in s.calls if c.retries}
    assert retried == {"summary": ["timeout"]}
    assert [list(c["retries"]) for s in r.to_dict()["steps"] for c in s["calls"]] == [[], [], [], [], ["timeout"]]
    assert "retried after timeout" in r.table()
    srv.reset()
    srv.push(hostile("500"), hostile("ok"))
    assert main(["complete", "hi", "--provider", srv.provider]) == 0
    assert "[retried] after HTTP 500" in capsys.readouterr().out
