"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers after a fixed delay: the
stand-in for an API backend in the executor tests and ``bench/executors.py``.

Replies are a deterministic function of the prompt and follow each module's contract
(scores for the filter, a fact list for the extractors, text for the summary), so the
pipeline parses them without repair calls; any other prompt (the answer) gets a short
phrase. Usage is the words of prompt and reply. A compression prompt gets a prefix of its
excerpt as the note, or an empty reply for some excerpts.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "llama-3.1-8b"
"""A model the default price table knows (a paper price), so no prices file is needed."""


def reply_for(prompt: str) -> str:
    if "Condense the conversation excerpt" in prompt:
        # A note of the excerpt's first quarter; every fourth excerpt (by content) gets an
        # empty reply, which compress rejects and tries again on its next run.
        excerpt = prompt.split("Excerpt:\n", 1)[-1].rsplit("\n\nNote:", 1)[0]
        words = excerpt.split()
        return "" if zlib.crc32(excerpt.encode()) % 4 == 0 else " ".join(words[: max(3, len(words) // 4)])
    if "rate how useful each memory is" in prompt:
        n = len(set(re.findall(r'<memory index="(\d+)"', prompt)))
        return "<answer>" + json.dumps([(7 * i + 3) % 11 for i in range(n)]) + "</answer>"
    if "write a short summary" in prompt:
        return "<answer>The memories mention a few facts about the question.</answer>"
    if "Answer format: a JSON array of strings" in prompt:
        return '<answer>["one fact from the memories"]</answer>'
    words = re.findall(r"[A-Za-z]+", prompt.rsplit("Question:", 1)[-1])
    return " ".join(words[-2:]) or "unknown"


class FakeOpenAIServer:
    """``with FakeOpenAIServer(delay_s=0.2) as srv: srv.provider`` -> ``openai:llama-3.1-8b@http://...``."""

    def __init__(self, delay_s: float = 0.1) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = "\n".join(m.get("content", "") for m in body.get("messages", []))
                time.sleep(outer.delay_s)  # the API's latency: the thread waits, the CPU does not
                text = reply_for(prompt)
                with outer._lock:
                    outer.requests += 1
                payload: dict[str, Any] = {
                    "id": "fake", "object": "chat.completion", "model": body.get("model", MODEL),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                              "total_tokens": len(prompt.split()) + len(text.split())},
                }  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-call: not news
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def provider(self) -> str:
        return f"openai:{MODEL}@{self.url}"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
