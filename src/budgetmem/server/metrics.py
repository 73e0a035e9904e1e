"""Prometheus metrics of one app, in a registry of its own (several apps in one process,
as in tests, never share counters).

Requests are labelled by route template (``/v1/namespaces/{ns}/search``), never by the raw
path, so a namespace or chunk id does not become a time series. LLM spending is labelled by
namespace: that is what operators bill by.

With ``budgetmem serve --processes N`` the processes share one directory of counters
(``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` before the workers start): every process
records into it and ``/metrics`` sums them, whichever process answers the scrape. The
worker-pool gauges then sum over live processes.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from budgetmem.pipeline.trace import QueryResult
from budgetmem.server.pool import WorkPool

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, pools: list[WorkPool]) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "budgetmem_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "budgetmem_http_request_duration_seconds", "Time to answer a request", ["route", "method"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queries = Counter("budgetmem_queries", "Queries answered", ["namespace"], registry=r)
        self.tokens = Counter(
            "budgetmem_llm_tokens", "LLM tokens paid for by queries (module-cache hits excluded)",
            ["namespace", "kind"], registry=r,
        )  # fmt: skip
        self.usd = Counter(
            "budgetmem_llm_usd", "USD paid for LLM calls by queries, at the configured prices", ["namespace"], registry=r
        )
        busy = Gauge(
            "budgetmem_pool_in_flight", "Tasks running or waiting in a worker pool", ["pool"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        for pool in pools:
            pool.on_change = busy.labels(pool.name).set

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def query(self, namespace: str, result: QueryResult) -> None:
        """Count what a query paid now, from its ledger (cache hits cost nothing again)."""
        paid = [s for s in [*result.steps, result.answer_step] if not s.cache_hit]
        self.queries.labels(namespace).inc()
        self.tokens.labels(namespace, "prompt").inc(sum(s.prompt_tokens for s in paid))
        self.tokens.labels(namespace, "completion").inc(sum(s.completion_tokens for s in paid))
        self.usd.labels(namespace).inc(result.usd_paid)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)
