"""Generated ``budgetmem`` command lines for the CLI fuzz campaign, and the files they name.

The grammar is read from the CLI's own argparse tree (every subcommand, flag, choice and
type), so a flag added later is fuzzed without editing this file. An invocation is built
mostly valid and then broken in zero to three places: a value of the wrong type, a choice
that does not exist, a required argument dropped, an unknown or repeated flag, a flag with
no value, a stray word, or a file that is empty, binary, truncated, nested 50,000 deep,
a folder, or missing. The CLI's promise for every one: exit 0, or exit 2 with one line
on stderr; never a traceback.

Invocations are kept cheap, because 10,000 of them run on a shared machine: no LLM is ever
reachable (providers are unknown names, unprepared models or a closed port on
127.0.0.1), ``auto_prepare`` is off in every settings file that parses, and the commands
that would otherwise run for minutes (serve, eval, train, frontier, train-writer, doctor)
always get an input they must refuse first. Encoders do load, when a store and a readable
file meet with the real models folder: a few seconds, not minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Command", "commands", "make_pool", "invocation", "POOL"]

POOL = "pool"
"""The folder, relative to a trial's working folder, that holds every file an invocation names."""

DEAD_ENDPOINT = "http://127.0.0.1:9/v1"
"""Nothing listens on the discard port: a provider there fails at its first request."""


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    """The subcommand path, e.g. ("keys", "create")."""
    actions: tuple[argparse.Action, ...]


def commands() -> list[Command]:
    """Every leaf subcommand of ``budgetmem`` with its arguments (help flags left out)."""
    from budgetmem.cli.main import build_parser

    out: list[Command] = []

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))
                return
        kept = tuple(a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction)))
        out.append(Command(words, kept))

    walk(build_parser(), ())
    return out


# --------------------------------------------------------------------------- files
def make_pool(folder: Path) -> Path:
    """Write every file an invocation may name into ``folder`` (a trial copies it, since
    invocations may write into these files). One real store, ``store.db``, holds namespace
    ``n`` with a few chunks: it is built by a real ``budgetmem ingest`` in a child process
    (the campaign's parent process must not load an encoder before it forks)."""
    folder.mkdir(parents=True, exist_ok=True)
    example = Path(__file__).resolve().parents[2] / "examples" / "conversation.json"
    conversation = example.read_bytes()
    files: dict[str, bytes] = {
        # data files: valid ones (small) and broken ones
        "conversation.json": conversation,
        "notes.txt": b"We moved to Lisbon on 3 March 2021.\n\nThe cat is called Miso.\n",
        "notes.md": b"# Notes\n\n## Travel\n\nFlew to Oslo last week.\n",
        "history.jsonl": json.dumps({"id": "h", "sessions": [{"id": "s", "turns": ["hi", "bye"]}],
                                     "questions": [{"id": "q", "question": "what?", "answer": "bye"}]}).encode() + b"\n",
        "truncated.json": conversation[: len(conversation) // 2],
        "empty.json": b"",
        "blank.txt": b" \n\n",
        "binary.bin": bytes(range(256)) * 4,
        "latin1.txt": "caf\xe9 na\xefve".encode("latin-1"),
        "deep.json": b"[" * 50_000 + b"]" * 50_000,
        "bigint.json": b'[{"conversation": {"session_1": [{"text": "a", "dia_id": ' + b"7" * 5000 + b"}]}}]",
        "list.json": b"[]",
        "object.json": b"{}",
        "nulls.json": b"[null, 1, \"x\"]",
        "wrong.jsonl": b'{"id": 1}\n[1, 2]\n"text"\n',
        "badline.jsonl": b'{"id": "h", "sessions": []}\n{not json\n',
        # settings files: the good one turns auto_prepare off (nothing may download)
        "good.toml": b"auto_prepare = false\n",
        "store.toml": b'auto_prepare = false\nstore = "store.db"\n',
        "minilm.toml": b'auto_prepare = false\n[encoder]\nname = "all-minilm-l6-v2"\n',
        "broken.toml": b"auto_prepare = false\n[retrieval\ntop_k = 3\n",
        "unknown.toml": b"auto_prepare = false\ncolour = 'blue'\n",
        "types.toml": b'auto_prepare = false\n[retrieval]\ntop_k = "many"\n',
        "section.toml": b"auto_prepare = false\nretrieval = 3\n",
        "negative.toml": b"auto_prepare = false\n[retrieval]\ntop_k = -4\n[chunking]\nmax_tokens = 0\n",
        "prepare.toml": b'auto_prepare = "yes"\n',
        "encoder.toml": b'auto_prepare = false\n[encoder]\nname = "no-such-encoder"\n',
        "emptystore.toml": b'auto_prepare = false\nstore = ""\n',
        # other inputs
        "split.json": b'{"train": ["conv-26"], "val": [], "test": ["x"]}',
        "split_bad.json": b'{"train": 3}',
        "prices.toml": b'["openai:gpt-4o-mini"]\ninput = -1\n',
        "prices.json": b'{"x": "free"}',
        "grammar.gbnf": b"root ::= (\n",
        "garbage.db": b"SQLite format 3\x00" + bytes(range(256)) * 16,
        "text.db": b"this is not a database\n",
    }  # fmt: skip
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "folder").mkdir(exist_ok=True)
    (folder / "folder" / "a.txt").write_bytes(b"A note in a folder.\n")
    (folder / "emptydir").mkdir(exist_ok=True)
    (folder / "models-empty").mkdir(exist_ok=True)
    (folder / "run").mkdir(exist_ok=True)
    (folder / "run" / "results.json").write_bytes(b'{"rows": [1, 2')
    _build_store(folder)
    db = (folder / "store.db").read_bytes()
    (folder / "half.db").write_bytes(db[: len(db) // 2])
    return folder


def _build_store(folder: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    cmd = [sys.executable, "-m", "budgetmem", "--config", "minilm.toml", "ingest", "notes.txt", "--store", "store.db",
           "--namespace", "n", "--chunk-tokens", "8"]  # fmt: skip
    env = {**_child_env(), "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"could not build the template store: {done.stderr.strip()[-500:]}")


def _child_env() -> dict[str, str]:
    """The environment of every invocation: no store from the caller's shell, pip unable to
    download (a model that is missing stays missing), no GPU, one thread per library."""
    import os

    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")}
    return {**keep, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip


child_env = _child_env


# --------------------------------------------------------------------------- values
def _p(name: str) -> str:
    return f"{POOL}/{name}"


GOOD_CONFIGS = [_p("good.toml"), _p("minilm.toml"), _p("store.toml")]
BAD_CONFIGS = [_p(n) for n in ("broken.toml", "unknown.toml", "types.toml", "section.toml", "negative.toml", "prepare.toml",
                               "encoder.toml", "emptystore.toml", "binary.bin", "missing.toml", "emptydir", "empty.json")]  # fmt: skip
STORES = [_p("store.db")] * 4 + [_p(n) for n in ("garbage.db", "text.db", "half.db", "missing.db", "emptydir", "empty.json")] + [
    "new.db", "postgresql://nobody@127.0.0.1:9/none", "postgresql://", ""]  # fmt: skip
GOOD_DATA = [_p(n) for n in ("conversation.json", "notes.txt", "notes.md", "history.jsonl", "folder")]
BAD_DATA = [_p(n) for n in ("truncated.json", "empty.json", "blank.txt", "binary.bin", "latin1.txt", "deep.json", "bigint.json",
                            "list.json", "object.json", "nulls.json", "wrong.jsonl", "badline.jsonl", "missing.json",
                            "emptydir", "good.toml")]  # fmt: skip
PROVIDERS = [f"openai:gpt-4o-mini@{DEAD_ENDPOINT}", "llamacpp:qwen2.5-coder-1.5b", "llamacpp:no-such-model", "nonsense",
             "openai:", "anthropic:claude", "", "llamacpp:", f"openai:x@{DEAD_ENDPOINT}"]  # fmt: skip
POLICIES = ["low", "mid", "high", "random", "mid,filter=high,summary=low", "mid,nope=high", "router:" + _p("emptydir"),
            "router:" + _p("missing"), "rules", "rules:" + _p("binary.bin"), "escalate:low>high@0.5", "escalate:low>high@x",
            "escalate:", "packed-rag", "", "LOW"]  # fmt: skip
TEXT = ["when did we move?", "", " ", "Miso", "-x", "--", "日本語のテキスト", "caf\u00e9\u0301", "\u2028line", "a" * 3000,
        "'; DROP TABLE chunks; --", "\t", "%s %d {}", "\U0001f600"]  # fmt: skip
INTS = ["0", "1", "2", "3", "-1", "-7", "99999999999999999999", "abc", "1.5", "", "0x10", "\u0663", " 4", "1e3", "+2"]
FLOATS = ["0", "0.5", "1", "-1", "nan", "inf", "-inf", "1e308", "1e999", "x", "", "0,5", "1_000"]
NAMES = ["n", "m", "", " ", "ns/child", "../up", "日本", "n" * 300, "-n", "n\tm"]
MODELS = ["all-minilm-l6-v2", "smollm2-135m", "all-mpnet-base-v2", "no-such-model", "", "ALL-MINILM-L6-V2"]

_BY_DEST: dict[str, list[str]] = {
    "store": STORES, "from": STORES, "to": STORES + ["copy.db"] * 3, "namespace": NAMES, "session": ["s", "", "no-such", "a:b"],
    "config": GOOD_CONFIGS + BAD_CONFIGS, "split_file": [_p("split.json"), _p("split_bad.json"), _p("missing.json"), _p("binary.bin")],
    "out": ["out", "out2", _p("emptydir"), _p("notes.txt"), _p("run"), ""], "runs": [_p("run"), _p("emptydir"), _p("missing"), _p("notes.txt")],
    "png": ["plot.png", _p("emptydir"), "missing/dir/plot.png", ""], "prices": [_p(n) for n in ("prices.toml", "prices.json", "binary.bin", "missing.toml")],
    "grammar": [_p("grammar.gbnf"), _p("binary.bin"), _p("missing.gbnf"), _p("emptydir")], "cache": ["cache.db", _p("garbage.db"), _p("emptydir")],
    "policy": POLICIES, "answer_llm": PROVIDERS, "module_llm": PROVIDERS, "llm": PROVIDERS, "provider": PROVIDERS,
    "write_model": PROVIDERS + [_p("binary.bin")], "judge": PROVIDERS, "ladder": [",".join(PROVIDERS[:3]), "a,b", ",,", "x"],
    "encoder": MODELS, "names": MODELS, "models": MODELS, "ids": ["1", "1,2", "x", "", "-1", "99999999999999999999"],
    "key_id": ["k1", "", "bm_0000", "1"], "scope": ["read", "read,query", "write", "admin", "", "read,nope"],
    "name": NAMES, "question_date": ["2023-05-08", "8 May, 2023", "yesterday", "", "9999-99-99", "0001-01-01"],
    "write_budget": ["100", "10%", "0", "-1", "x", "1e9", "", "150%"], "cost_weights": ["0,0.5,1", "x", "", "-1", "nan"],
    "baselines": ["low,high", "nope", ""], "ray_address": ["127.0.0.1:9", ""], "host": ["127.0.0.1", "no-such-host", ""],
    "query": TEXT, "question": TEXT, "prompt": TEXT,
}  # fmt: skip
_DATA_DESTS = {"path", "data"}


def _value(action: argparse.Action, rng: random.Random, *, good_data: bool) -> str:
    dest = action.dest
    if dest in _DATA_DESTS:
        return rng.choice(GOOD_DATA if good_data else BAD_DATA)
    if action.choices is not None and rng.random() < 0.85:
        return str(rng.choice(list(action.choices)))
    if dest in _BY_DEST:
        return rng.choice(_BY_DEST[dest])
    if action.type is int:
        return rng.choice(INTS)
    if action.type is float:
        return rng.choice(FLOATS)
    return rng.choice(TEXT)


def _tokens(action: argparse.Action, rng: random.Random, *, good_data: bool) -> list[str]:
    """The words that give ``action`` a (mostly plausible) value."""
    if action.nargs == 0:
        return [rng.choice(action.option_strings)]
    n = {"+": rng.randint(1, 3), "*": rng.randint(0, 3), "?": rng.randint(0, 1)}.get(action.nargs, 1)  # type: ignore[arg-type]
    values = [_value(action, rng, good_data=good_data) for _ in range(n)]
    if not action.option_strings:
        return values
    flag = rng.choice(action.option_strings)
    if len(values) == 1 and values[0].startswith("-") or rng.random() < 0.1:
        return [f"{flag}={values[0]}"] if values else [flag]  # the one spelling argparse takes for "-x" values
    return [flag, *values]


# Commands that would run for minutes if everything were valid: they always get a data file
# they must refuse, or (serve, doctor) a flag they must refuse.
_LONG = {("eval",), ("train",), ("frontier",), ("train-writer",)}
_ALWAYS = {("complete",): "provider", ("compress",): "llm"}
"""Flags always given, so that the default (a real embedded LLM) never runs."""
_REFUSED_FLAGS = {
    ("serve",): [["--port", "x"], ["--processes", "many"], ["--strategy", "nope"], ["--log-level", "loud"], ["--bogus"],
                 ["--timeout", "soon"], ["--queue"]],
    ("doctor",): [["--prompt-tokens", "1"], ["--gen-tokens", "0"], ["--models", "no-such-model"], ["--repack", "maybe"],
                  ["--timeout", "x"], ["--bogus"]],
}  # fmt: skip


def invocation(cmds: list[Command], rng: random.Random) -> tuple[str, list[str]]:
    """The subcommand drawn and one command line (without the program name)."""
    if rng.random() < 0.02:
        return "(none)", rng.choice([["--version"], ["--help"], [], ["nope"], ["--config"], ["-h", "ingest"]])
    cmd = rng.choice(cmds)
    # Settings: mostly a file that parses (and keeps auto_prepare off), never none: the
    # default would download a missing model.
    argv = ["--config", rng.choice(GOOD_CONFIGS if rng.random() < 0.8 else BAD_CONFIGS)]
    if rng.random() < 0.5 and cmd.words[0] != "models":  # an empty one: every encoder a fast, clean error
        argv += ["--models-dir", rng.choice([_p("models-empty")] * 4 + [_p("notes.txt"), _p("missing")])]
    argv += list(cmd.words)
    good_data = cmd.words not in _LONG and rng.random() < 0.6
    parts: list[list[str]] = []
    for action in cmd.actions:
        if action.required or rng.random() < 0.3 or _ALWAYS.get(cmd.words) == action.dest:
            parts.append(_tokens(action, rng, good_data=good_data))
    if cmd.words == ("models", "verify"):  # no name means every model: re-hashing 600 MB is no fuzz case
        tail = [rng.choice(["all-minilm-l6-v2", "smollm2-135m", "no-such-model", ""]) for _ in range(rng.randint(1, 2))]
        return " ".join(cmd.words), [*argv, *tail, *(["--bogus"] if rng.random() < 0.2 else [])]
    if cmd.words == ("models", "prepare"):
        # Only names that are ready (a no-op) or unknown, and never none (that means every
        # model): nothing downloads. Broken only by an unknown flag, for the same reason.
        force = rng.random() < 0.2
        names = ["no-such-model", "", "x"] if force else ["all-minilm-l6-v2", "smollm2-135m", "no-such-model", ""]
        tail = [rng.choice(names)] + (["--force"] if force else []) + (["--bogus"] if rng.random() < 0.2 else [])
        return " ".join(cmd.words), [*argv, *tail]
    rng.shuffle(parts)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        _break(parts, rng)
    if cmd.words in _ALWAYS and not any(w.startswith("--" + _ALWAYS[cmd.words]) for part in parts for w in part):
        parts.append([f"--{_ALWAYS[cmd.words]}", rng.choice(PROVIDERS)])  # dropped by _break: given again
    if cmd.words in _REFUSED_FLAGS:  # after _break, which could have dropped it
        parts.append(rng.choice(_REFUSED_FLAGS[cmd.words]))
    if rng.random() < 0.03:
        parts.insert(rng.randint(0, len(parts)), ["--help"])
    return " ".join(cmd.words), argv + [w for part in parts for w in part]


def _break(parts: list[list[str]], rng: random.Random) -> None:
    """Make one thing about the command line wrong."""
    how = rng.choice(["drop", "unknown", "repeat", "no_value", "stray", "junk_value", "dashdash"])
    if how == "drop" and parts:
        parts.pop(rng.randrange(len(parts)))
    elif how == "unknown":
        parts.insert(rng.randint(0, len(parts)), [rng.choice(["--bogus", "-z", "--store-", "--json=yes", "---", "-"])])
    elif how == "repeat" and parts:
        parts.append(list(rng.choice(parts)))
    elif how == "no_value" and parts:
        flagged = [p for p in parts if p and p[0].startswith("--") and len(p) > 1]
        if flagged:
            parts.remove(victim := rng.choice(flagged))
            parts.append(victim[:1])  # at the end, so it has no value at all
    elif how == "stray":
        parts.insert(rng.randint(0, len(parts)), [rng.choice(TEXT + INTS)])
    elif how == "junk_value" and parts:
        part = rng.choice(parts)
        if len(part) > 1:
            part[-1] = rng.choice(TEXT + INTS + FLOATS + BAD_DATA)
    elif how == "dashdash":
        parts.insert(rng.randint(0, len(parts)), ["--"])


def copy_pool(template: Path, workdir: Path) -> None:
    shutil.copytree(template, workdir / POOL)
