"""Target-cost mode and the routing baselines through the service (issue #18): a real
``budgetmem serve`` on 127.0.0.1 keeps a namespace's budget in its store across a restart,
and answers with the routing trace (SmolLM2-135M answers)."""

from __future__ import annotations

import httpx
import pytest

import fastapi  # noqa: E402, F401  (the server extra; make test installs it)
from serving import ServerProcess, make_key

from budgetmem.client import Client
from budgetmem.errors import ConfigError

pytestmark = pytest.mark.timeout(1500)

TURNS = [("Tomasz", "I named my bakery Rye and Shine."), ("Priya", "When did you open it?"),
         ("Tomasz", "On 3 May 2023, after a year of planning.")]  # fmt: skip


def test_target_cost_state_survives_a_server_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "memory.db"
    config = tmp_path / "budgetmem.toml"
    config.write_text(
        f'[encoder]\nname = "all-minilm-l6-v2"\n[chunking]\nmax_tokens = 64\n'
        f'[pipeline]\nanswer_llm = "llamacpp:smollm2-135m"\ncache_path = "{tmp_path / "cache.sqlite"}"\n'
        "[server]\ntimeout_s = 550\n",  # a shared, loaded CI machine: model loads and two passes
        encoding="utf-8",
    )
    key = make_key(store, "alice", "read,write,query")
    policy = "escalate:low>mid@0.5"
    proc = ServerProcess(store, tmp_path / "server-1.log", config=config)
    try:
        with Client(proc.url, key, namespace="alice", timeout=560) as c:
            c.add_session(TURNS, session_id="s1", date_time="3 May 2023")
            first = c.query("What is Tomasz's bakery called?", policy=policy, target_usd=0.001)
            with pytest.raises(ConfigError, match="router family or an escalation"):
                c.query("What is Tomasz's bakery called?", policy="mid", target_usd=0.001)
            rules = c.query("When did Tomasz open his bakery?", policy="rules")
    finally:
        proc.stop()
    budget = first["routing"]["budget"]
    assert budget["queries"] == 1 and budget["target_usd"] == 0.001
    # LOW and MID cost nothing to extract: the knob moves one step towards cheap, 0.5 + 0.1 * (0 - X) / X
    assert budget["knob"] == pytest.approx(0.4) and first["cost"]["totals"]["extraction_usd"] == 0
    esc = first["routing"]["escalation"]
    assert esc["threshold"] == pytest.approx(0.5) and 0 <= esc["confidence"] <= 1
    assert len(first["cost"]["earlier_passes"]) == int(esc["escalated"])
    assert rules["routing"]["routing"]["type"] == "temporal" and set(rules["tiers"].values()) <= {"LOW", "MID", "HIGH"}

    proc = ServerProcess(store, tmp_path / "server-2.log", config=config)  # a restart: a new process
    try:
        with Client(proc.url, key, namespace="alice", timeout=560) as c:
            again = c.query("What is Tomasz's bakery called?", policy=policy, target_usd=0.001)
        bad = httpx.post(f"{proc.url}/v1/namespaces/alice/query", headers={"Authorization": f"Bearer {key}"},
                         json={"question": "q?", "policy": "escalate:router:/tmp/x.pt>high@0.5"})  # fmt: skip
    finally:
        proc.stop()
    assert again["routing"]["budget"]["queries"] == 2
    assert again["routing"]["budget"]["knob"] == pytest.approx(0.3)
    assert again["routing"]["escalation"]["threshold"] == pytest.approx(0.6)  # T = 1 - knob before this query
    assert bad.status_code == 422  # a request never names a file on the server
