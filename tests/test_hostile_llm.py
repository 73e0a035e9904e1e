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

import time
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer, hostile

from budgetmem.errors import LLMResponseError, LLMTimeoutError
from budgetmem.llm import make_llm
from budgetmem.llm.openai_compat import OpenAICompatLLM
from budgetmem.settings import LLMSettings, Settings

TIMEOUT_S = 0.4


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


def billed(srv: FakeOpenAIServer) -> tuple[int, int]:
    """(prompt, completion) tokens of every reply the server delivered with usage."""
    got = [s.billed for s in srv.served if s.billed is not None]
    return sum(p for p, _ in got), sum(c for _, c in got)


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
    assert err.paid.usd == pytest.approx(sum(billed(srv)) * 0.18 / 1e6)
    assert str(err).endswith(f"; paid: 1 call, {billed(srv)[0]} prompt + {billed(srv)[1]} completion tokens, ${err.paid.usd:.6f}")
    assert "\n" not in str(err)
