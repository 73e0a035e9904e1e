"""OpenAICompatLLM against the real llama.cpp server (llama_cpp.server) serving SmolLM2-135M."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from budgetmem.errors import LLMTimeoutError, ModelError, ServerUnavailableError
from budgetmem.llm import DEFAULT_PRICES, make_llm
from budgetmem.llm.openai_compat import OpenAICompatLLM
from budgetmem.models import model_path
from budgetmem.settings import LLMSettings, Settings

pytestmark = [pytest.mark.models, pytest.mark.server]

STARTUP_S = 60.0


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(log: Path) -> RunningServer:
    import llama_cpp.server.app  # noqa: F401  (llama-cpp-python[server], in the embedded extra)
    try:
        path = model_path("smollm2-135m")
    except ModelError as exc:
        pytest.fail(f"smollm2-135m is not prepared (make models prepares it): {exc}")
    port = _free_port()
    cmd = [sys.executable, "-m", "budgetmem.llm.llamacpp_server", "--model", str(path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = RunningServer(proc, f"http://127.0.0.1:{port}/v1", log)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/models", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_S:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = _start(tmp_path_factory.mktemp("server") / "server.log")
    yield running
    running.stop()


def _client(url: str, **options: object) -> OpenAICompatLLM:
    settings = Settings(llm=LLMSettings(timeout_s=30.0, max_retries=1, backoff_s=0.01))
    llm = make_llm(f"openai:smollm2-135m@{url}", settings=settings, **options)  # type: ignore[arg-type]
    assert isinstance(llm, OpenAICompatLLM)
    return llm


def test_text_and_exact_usage(server: RunningServer) -> None:
    llm = _client(server.url)
    c = llm.complete("What is the capital of France?", max_tokens=16)
    assert c.text.strip()
    assert c.prompt_tokens > 0 and 1 <= c.completion_tokens <= 16
    assert c.model == f"openai:smollm2-135m@{server.url}"
    price = DEFAULT_PRICES.lookup("smollm2-135m")
    assert c.price == price and c.price.source.startswith("paper-equivalent")
    by_hand = c.prompt_tokens * price.input_per_m / 1e6 + c.completion_tokens * price.output_per_m / 1e6
    assert c.usd == pytest.approx(by_hand, rel=1e-12)
    again = llm.complete("What is the capital of France?", max_tokens=16)
    assert (again.prompt_tokens, again.completion_tokens) == (c.prompt_tokens, c.completion_tokens)


def test_server_counts_match_in_process(server: RunningServer) -> None:
    """Same model, same chat template: the server and the embedded backend count the same prompt tokens."""
    local = make_llm("llamacpp:smollm2-135m")
    remote = _client(server.url)
    question = "Name a colour."
    assert remote.complete(question, max_tokens=4).prompt_tokens == local.complete(question, max_tokens=4).prompt_tokens


def test_grammar_output_parses(server: RunningServer) -> None:
    llm = _client(server.url, grammar_field=True)
    grammar = r'root ::= "{\"answer\": " [0-9] "}"'
    c = llm.complete("What is 2 + 2? Reply in JSON.", max_tokens=16, grammar=grammar)
    parsed = json.loads(c.text)
    assert set(parsed) == {"answer"} and isinstance(parsed["answer"], int)


def test_slow_answer_times_out_after_retries(server: RunningServer) -> None:
    """A real generation that cannot finish in the allowed time: retried, then a clear timeout."""
    settings = Settings(llm=LLMSettings(timeout_s=0.05, max_retries=1, backoff_s=0.01))
    llm = make_llm(f"openai:smollm2-135m@{server.url}", settings=settings)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError) as info:
        llm.complete("Write a long story about a lighthouse keeper.", max_tokens=400)
    assert time.monotonic() - started < 5.0  # two short attempts, not a full generation
    assert "\n" not in str(info.value)


def test_dead_server_is_unavailable(tmp_path: Path) -> None:
    running = _start(tmp_path / "server.log")
    try:
        llm = _client(running.url)
        assert llm.complete("Hi", max_tokens=2).completion_tokens >= 1  # keeps a pooled connection
    finally:
        running.stop()
    with pytest.raises(ServerUnavailableError) as info:
        llm.complete("Hi", max_tokens=2)
    message = str(info.value)
    assert message.startswith(f"no server at {running.url}; start it or fix the base URL") and "\n" not in message
