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

from budgetmem.errors import LLMTimeoutError
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
