"""The package's layers, lowest first: a module imports only from its own layer or below.

Read from the bottom: leaf types and helpers; models and LLM clients; the two local
language models (sentence encoder, spaCy); storage; budgeted writes and ingest; retrieval;
the tiered pipeline; context packing; the router's serving policy; ``BudgetMem``; the
evaluation library; the run harness (with its executors beneath everything, since they
know nothing of the library); training; and the front ends. Every import is counted,
function-level ones too: a lazy import still points where it points.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "budgetmem"

LAYERS: list[set[str]] = [
    {"errors", "chunk", "tables", "executors", "userfiles"},
    {"settings"},
    {"models"},
    {"llm"},
    {"encoder", "nlp"},
    {"store"},
    {"write"},
    {"ingest"},
    {"retrieval"},
    {"pipeline"},
    {"context"},
    {"router"},  # serving only: network, policy, state
    {"memory"},
    {"eval"},
    {"harness"},
    {"training"},  # router training (PPO, frontier) and the write-policy trainer
    {"doctor", "cli", "server", "mcp", "client", "__main__", "__init__"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """budgetmem.pipeline.runner -> pipeline; budgetmem -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "budgetmem" or m.startswith("budgetmem.")}


def _edges() -> list[tuple[str, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts)
        for target in _imports(path):
            out.append((module, target))
    return out


def test_every_module_has_a_layer():
    units = {_unit(".".join(p.relative_to(SRC.parent).with_suffix("").parts)) for p in SRC.rglob("*.py")}
    assert units <= set(LEVEL), f"not placed in LAYERS: {sorted(units - set(LEVEL))}"


def test_no_import_points_up():
    upward = [
        f"{src} -> {dst}" for src, dst in _edges() if LEVEL[_unit(dst)] > LEVEL[_unit(src)]
    ]
    assert upward == []


def test_ray_is_imported_only_by_its_executor():
    users = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n == "ray" or n.startswith("ray.") for n in names):
                users.append(str(path.relative_to(SRC)))
    assert sorted(set(users)) in ([], ["executors/ray.py"])
