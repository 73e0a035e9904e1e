"""Schemathesis against the served /openapi.json: generated requests (valid and invalid) to
every operation never get a 5xx, and every response (errors included) matches the schema:
its status is declared, its body fits, 401 carries WWW-Authenticate. Requests without the key
must get 401 (schemathesis checks that auth is not ignored)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path

import pytest

import fastapi  # noqa: E402, F401  (the server extra; make test installs it: a missing one fails here)
import schemathesis  # noqa: E402  (in the dev extra)
from fakes import ScriptedFakeLLM
from hypothesis import HealthCheck, settings

from budgetmem.server import create_app
from budgetmem.store.keys import NAMESPACE_PATTERN
from budgetmem.settings import Settings

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 6
"""Per operation and phase: ten operations stay well under a minute on two cores."""


def _build():
    """The app is built when the module is imported (schemathesis makes one test per operation
    at collection); it is cheap until used: models load on the first request."""
    root = Path(tempfile.mkdtemp(prefix="budgetmem-schema-"))
    s = Settings().replace(
        encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, pipeline__answer_llm="fake:answer",
        pipeline__module_llm="fake:module", pipeline__ladder=("fake:s", "fake:m", "fake:l"),
        server__async_body=2048,
    )  # fmt: skip
    s = dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))
    # Replies no parser accepts: the pipeline's fallbacks and parse_failures get exercised too.
    names = ("fake:answer", "fake:module", "fake:s", "fake:m", "fake:l")
    app = create_app(root / "m.db", s, llms={n: ScriptedFakeLLM(n, lambda prompt: "I am not sure.") for n in names})
    key, _ = app.state.service.keys.create("st", "read,write,query,metrics")
    config = schemathesis.Config()
    config.projects.default.update(headers={"Authorization": f"Bearer {key}"})
    config.projects.default.generation.update(max_examples=EXAMPLES)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config, headers={"Authorization": f"Bearer {key}"})
    return root, app, loaded


ROOT, APP, schema = _build()


@pytest.fixture(scope="module", autouse=True)
def filled():
    mem = APP.state.service.memory("st", create=True)
    mem.add_session([("Ana", "The boat to Porto leaves at noon on Fridays.")], session_id="s1", date_time="1 May 2024")
    mem.add_document("The harbour office opens at eight.\n\nTickets cost twelve euros.", document_id="d1")
    yield
    APP.state.service.close()
    shutil.rmtree(ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_response_matches_the_schema(case):
    # A valid namespace becomes the one the key opens (any other would only ever get 403);
    # an invalid one, from negative generation, is kept to be refused.
    ns = (case.path_parameters or {}).get("ns")
    if isinstance(ns, str) and re.match(NAMESPACE_PATTERN, ns):
        case.path_parameters["ns"] = "st"
    case.call_and_validate()
