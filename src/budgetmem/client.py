"""``Client``: a BudgetMem namespace served by ``budgetmem serve``, over HTTP.

    >>> mem = Client("http://127.0.0.1:8420", key, namespace="alice")
    >>> mem.add_session([("Priya", "I moved to Lisbon in May.")], session_id="s1")
    >>> hits = mem.search("Where does Priya live?", k=3)
    >>> result = mem.query("Where does Priya live?", policy="mid")
    >>> print(result["answer"], result["cost"]["totals"]["total_usd"])

The methods mirror :class:`budgetmem.BudgetMem` and return the service's JSON (dicts). A
failure raises the library error the service names (``NotFoundError``, ``ForbiddenError``,
``BusyError`` with its ``retry_after``, ...), so code handles local and remote memory alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from budgetmem import errors as e

__all__ = ["Client"]

_BY_STATUS: dict[int, type[e.BudgetMemError]] = {
    400: e.InputError,
    401: e.AuthError,
    403: e.ForbiddenError,
    404: e.NotFoundError,
    409: e.StoreError,
    413: e.TooLargeError,
    422: e.InputError,
    429: e.BusyError,
    502: e.LLMError,
    503: e.ModelError,
    504: e.DeadlineError,
}


def _error_class(name: str, status: int) -> type[e.BudgetMemError]:
    """The class the service named if it is one of the library's errors, else by status."""
    cls = getattr(e, name, None)
    if isinstance(cls, type) and issubclass(cls, e.BudgetMemError):
        return cls
    return _BY_STATUS.get(status, e.ServiceError)


def _error(response: httpx.Response) -> e.BudgetMemError:
    """The library error for a failed response."""
    try:
        info = response.json()["error"]
        name, message, hint = str(info["type"]), str(info["message"]), info.get("hint")
    except (ValueError, KeyError, TypeError):
        name, message, hint = "", f"HTTP {response.status_code} from {response.request.url.path}", None
    cls = _error_class(name, response.status_code)
    if issubclass(cls, e.BusyError):
        return e.BusyError(message, hint=hint, retry_after=float(response.headers.get("retry-after") or 1))
    return cls(message, hint=hint)


class Client:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        namespace: str = "default",
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``timeout`` bounds each HTTP call; ``transport`` lets tests talk to an app in-process."""
        self.namespace = namespace
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout, transport=transport
        )

    def _ns(self, tail: str = "") -> str:
        return f"/v1/namespaces/{quote(self.namespace, safe='/')}{tail}"

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        return response

    # ------------------------------------------------------------------ writes
    def add_session(
        self,
        turns: Sequence[str | tuple[str, str]],
        *,
        session_id: str | None = None,
        date_time: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Add one chat session; turns are ``text`` or ``(speaker, text)``. A large body is
        ingested in the background: ``wait`` polls its job and returns the job's result,
        otherwise the job (``job_id``, ``status``) comes back at once."""
        messages = [{"text": t} if isinstance(t, str) else {"speaker": t[0], "text": t[1]} for t in turns]
        return self._add({"messages": messages, "session_id": session_id, "date": date_time}, wait)

    def add_document(
        self, text: str, *, document_id: str | None = None, date_time: str | None = None, wait: bool = True
    ) -> dict[str, Any]:
        return self._add({"document": text, "session_id": document_id, "date": date_time}, wait)

    def _add(self, body: dict[str, Any], wait: bool) -> dict[str, Any]:
        response = self._call("POST", self._ns("/memories"), json={k: v for k, v in body.items() if v is not None})
        data: dict[str, Any] = response.json()
        if response.status_code == 202 and wait:
            return self.wait(data["job_id"])
        return data

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/jobs/{quote(job_id)}").json()
        return result

    def wait(self, job_id: str, *, poll_s: float = 0.2, timeout_s: float = 3600.0) -> dict[str, Any]:
        """A background add's result once it is done; its error raised if it failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["status"] == "done":
                result: dict[str, Any] = job["result"]
                return result
            if job["status"] == "failed":
                info = job["error"] or {}
                cls = _error_class(str(info.get("type")), 500)
                raise cls(str(info.get("message", "job failed")), hint=info.get("hint"))
            if time.monotonic() > deadline:
                raise e.DeadlineError(f"job {job_id} still {job['status']} after {timeout_s:g} s")
            time.sleep(poll_s)

    def delete(self, chunk_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", self._ns(f"/memories/{int(chunk_id)}")).json()
        return result

    def forget_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", self._ns(f"/sessions/{quote(session_id, safe='')}")).json()
        return result

    def forget(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", self._ns()).json()
        return result

    # ------------------------------------------------------------------ reads
    def search(self, query: str, k: int | None = None, retriever: str | None = None) -> list[dict[str, Any]]:
        body = {"query": query, "k": k, "retriever": retriever}
        hits: list[dict[str, Any]] = self._call(
            "POST", self._ns("/search"), json={k_: v for k_, v in body.items() if v is not None}
        ).json()["hits"]
        return hits

    def query(
        self,
        question: str,
        *,
        strategy: str | None = None,
        policy: str | None = None,
        cost_weight: float | None = None,
        question_date: str | None = None,
        k: int | None = None,
        retriever: str | None = None,
        target_usd: float | None = None,
    ) -> dict[str, Any]:
        """The answer, the memory it came from, the tiers chosen and the full cost ledger.
        ``target_usd``: target-cost mode (the server keeps the namespace's budget)."""
        body = {
            "question": question, "strategy": strategy, "policy": policy, "cost_weight": cost_weight,
            "question_date": question_date, "k": k, "retriever": retriever, "target_usd": target_usd,
        }  # fmt: skip
        result: dict[str, Any] = self._call(
            "POST", self._ns("/query"), json={k_: v for k_, v in body.items() if v is not None}
        ).json()
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", self._ns("/stats")).json()
        return result

    def memory(self, chunk_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", self._ns(f"/memories/{int(chunk_id)}")).json()
        return result

    def memories(self, *, session_id: str | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every stored memory, oldest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["cursor"] = cursor
            if session_id is not None:
                params["session_id"] = session_id
            page = self._call("GET", self._ns("/memories"), params=params).json()
            yield from page["memories"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
