"""bench/service.py waits for the server's query pool to drain before it compares a query
through the server with one through the library: a query that timed out in the load row
still runs to its end, and on 2 cores it would slow whichever side ran beside it."""

from __future__ import annotations

import sys
import threading

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import service as bench  # noqa: E402

from budgetmem.server.metrics import Metrics  # noqa: E402
from budgetmem.server.pool import WorkPool  # noqa: E402


def test_in_flight_reads_the_pool_gauge_from_the_metrics_text() -> None:
    queries, requests = WorkPool("query", 1, 4), WorkPool("request", 2, 4)
    metrics = Metrics([queries, requests])
    release = threading.Event()
    try:
        futures = [queries.submit(release.wait, 30) for _ in range(3)]  # one running, two waiting
        text = metrics.render().decode()
        assert bench._in_flight(text, "query") == 3
        assert bench._in_flight(text, "request") == 0
        release.set()
        for f in futures:
            f.result(timeout=30)
        assert bench._in_flight(metrics.render().decode(), "query") == 0
    finally:
        release.set()
        queries.shutdown()
        requests.shutdown()
    assert bench._in_flight("", "query") == 0  # no gauge yet: nothing in flight
