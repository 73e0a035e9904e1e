"""Routing benchmark (issue #18): do the learned routers earn their place against simpler
ways of spending the same money? On the LoCoMo dev subset, conversation-level test split.

Parts (each resumable: every system is an ordinary run directory under
``bench/results/routing/<strategy>/``, and module results and answers come from one
module cache, so a system that shares work with another pays for it once):

* ``--part runs``: evaluate systems (fixed tiers, naive RAG, routers, the rule router,
  escalation) on the first N test questions. Cheap systems first.
* ``--part fit``: fit the rule router's question-type prototypes and tier map, and the
  escalation confidence calibration, on the train split (for implementation, the JSON
  files the package ships in ``src/budgetmem/router/data/``; for reasoning and capacity,
  files beside that strategy's runs, which its runs then use).
* ``--part frontier``: one table and PNG per strategy: every system's F1 and cost on the
  same questions, the escalation sweep over T, and paired bootstrap intervals for each
  learned router minus each baseline; each system's wall time per question.
* ``--part target``: target-cost mode over the test questions for three targets:
  realised mean extraction cost against the target, F1 at each, and a PNG of the
  running mean over the stream.
* ``--part walltime``: wall time per routed question on the embedded default LLM (the
  1.5B model for answers and modules), each policy on a few test questions with a module
  cache of its own.

    .venv/bin/python bench/routing.py --part runs --systems "low;mid;naive-rag;high" --questions 100
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os  # noqa: E402
import time  # noqa: E402

from _report import log, machine_info, save_json, write_section  # noqa: E402

from budgetmem import Settings  # noqa: E402
from budgetmem.eval import dataset_settings  # noqa: E402
from budgetmem.harness import EvalConfig, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
RESULTS = ROOT / "bench" / "results" / "routing"
DOC = ROOT / "docs" / "BENCHMARKS.md"
ROUTERS = ROOT / "bench" / "results" / "router" / "frontier"


def fitted_files(strategy: str) -> tuple[Path, Path]:
    """Where a strategy's rule map and escalation calibration are written by ``--part fit``
    and read by its runs: the package's own files for implementation (the ones that ship),
    the strategy's results folder for reasoning and capacity."""
    from budgetmem.router.escalate import default_calibration_path
    from budgetmem.router.rules import default_rules_path

    if strategy == "implementation":
        return default_rules_path(), default_calibration_path()
    return RESULTS / strategy / "rules.json", RESULTS / strategy / "calibration.json"


def settings_for(args: argparse.Namespace) -> Settings:
    rules, calibration = fitted_files(args.strategy)
    base = Settings().replace(
        encoder__name=args.encoder, pipeline__answer_llm=args.answer_llm, pipeline__module_llm=args.module_llm,
        pipeline__cache_path=RESULTS / "module-cache.sqlite",
        routing__rules=rules if rules.exists() else None, routing__calibration=calibration if calibration.exists() else None,
    )  # fmt: skip
    return dataset_settings(base, "locomo")


def run_name(system: str) -> str:
    return "eval-" + system.replace(":", "-").replace("/", "_").replace(">", "-to-").replace("@", "-at-").replace(",", "+")


def evaluate(
    system: str, strategy: str, args: argparse.Namespace, split: str = "test", limit: int | None = None,
    *, root: Path | None = None, settings: Settings | None = None, split_file: Path | None = None,
) -> list:
    root = root or RESULTS / strategy
    cfg = EvalConfig(
        dataset="locomo", data=DATA, out=root / (run_name(system) + ("" if split == "test" else f"-{split}")),
        split=split, strategy=strategy, policy=system, limit=limit or args.questions, store=RESULTS / "locomo_dev.db",
        split_file=split_file,
    )  # fmt: skip
    log(f"{strategy}:{system} on {split} ({cfg.limit} questions)")
    return run_eval(cfg, settings or settings_for(args), progress=False, log=log).rows


def runs(args: argparse.Namespace) -> None:
    for system in args.systems.split(";"):
        evaluate(system.strip(), args.strategy, args)


def classifier(args: argparse.Namespace) -> str:
    """The rule router's question classifier on LoCoMo's val split (not used in fitting):
    accuracy per type against the majority type, rules alone, four prototypes, and the
    packaged classifier (rules, then single- / multi-hop prototypes with their offset)."""
    from collections import Counter

    import numpy as np

    from budgetmem.encoder import Encoder
    from budgetmem.eval.datasets import load_eval_set
    from budgetmem.eval.splits import make_split
    from budgetmem.router.rules import QUESTION_TYPES, QuestionClassifier, load_rule_table, rule_type
    from budgetmem.training.rules_fit import question_prototypes

    settings = settings_for(args)
    enc = Encoder(settings.encoder, settings.models_dir)
    data = load_eval_set("locomo", DATA)
    train, val = (make_split(data, p, seed=0).items for p in ("train", "val"))
    table = load_rule_table()
    four = QuestionClassifier(enc, {k: np.asarray(v) for k, v in question_prototypes(train, enc.encode).items()})
    packaged = QuestionClassifier(enc, {k: np.asarray(v) for k, v in table.prototypes.items()}, table.offsets)
    counts = Counter(i.category for i in val)
    majority = max(counts.values()) / len(val)
    systems = {"rules, else single-hop": lambda q: rule_type(q) or "single-hop",
               "rules, then four prototypes": lambda q: four.classify(q).type,
               "rules, then single/multi-hop prototypes + offset (packaged)": lambda q: packaged.classify(q).type}  # fmt: skip
    # The no-rules line embeds every question: only the prototypes decide.
    protos = four.matrix
    def no_rules(q: str) -> str:
        v = np.asarray(enc.encode([q])[0], dtype=np.float64)
        return four.names[int(np.argmax(protos @ (v / np.linalg.norm(v))))]
    systems["four prototypes, no rules"] = no_rules
    rows = []
    for name, fn in systems.items():
        pred = [fn(i.question) for i in val]
        per = [f"{100 * np.mean([p == i.category for p, i in zip(pred, val) if i.category == t]):.0f}"
               if counts[t] else "-" for t in QUESTION_TYPES[:4]]  # fmt: skip
        rows.append([name, f"{100 * np.mean([p == i.category for p, i in zip(pred, val)]):.1f}", *per])
    from _report import table as md

    return "\n".join([
        "## Routing baselines: the rule router's question classifier",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}: accuracy (%) on the {len(val)} questions of LoCoMo dev's val split "
        f"(conversation-level, seed 0; prototypes and offset fitted on the {len(train)} train questions), encoder "
        f"`{args.encoder}`. Always answering the commonest type scores {100 * majority:.1f}.",
        "",
        "Command: `.venv/bin/python bench/routing.py --part classifier`",
        "",
        md(["classifier", "accuracy", *(f"{t} acc." for t in QUESTION_TYPES[:4])], rows),
    ]) + "\n"  # fmt: skip


def fit_sample(items: list, n: int, path: Path) -> list[str]:
    """``n`` train questions for the map search and the calibration: the same number of each
    LoCoMo type, spread evenly over the split (its first questions are one conversation's,
    and the first 60 hold no single-hop question). Written to ``path`` as a split file (the
    harness reads it); returns their ids, in the split's order."""
    per = max(1, n // 4)
    picked = []
    for kind in ("temporal", "multi-hop", "single-hop", "open-domain"):
        of = [i for i in items if i.category == kind]
        picked += [of[int(j * len(of) / per)].id for j in range(min(per, len(of)))]
    ids = sorted(picked, key=[i.id for i in items].index)
    save_json(path, {"train": ids})
    return ids


def fit(args: argparse.Namespace) -> str:
    """Fit the rule router (prototypes, offset, tier map by a small search over candidate
    maps) and escalation's calibration on a typed sample of the train split; write them where
    :func:`fitted_files` says (the package's data files for implementation)."""
    from budgetmem.encoder import Encoder
    from budgetmem.eval.datasets import load_eval_set
    from budgetmem.eval.splits import make_split
    from budgetmem.router.rules import QuestionClassifier, RuleTable, rule_type
    from budgetmem.training.rules_fit import calibration_from_rows, choose_tier_map, fit_offsets, question_prototypes

    settings = settings_for(args)
    enc = Encoder(settings.encoder, settings.models_dir)
    train = make_split(load_eval_set("locomo", DATA), "train", seed=0)
    protos = question_prototypes(train.items, enc.encode, ("single-hop", "multi-hop"))
    offsets = fit_offsets(train.items, enc.encode, protos, undecided=lambda q: rule_type(q) is None)
    clf = QuestionClassifier(enc, {k: __import__("numpy").asarray(v) for k, v in protos.items()}, offsets)
    candidates = [c.strip() for c in args.candidates.split(";")]
    sample = RESULTS / "fit-sample.json"
    n = len(fit_sample(list(train.items), args.train_questions, sample))
    runs = {c: evaluate(c, args.strategy, args, split="train", limit=n, split_file=sample) for c in candidates}
    tiers, record = choose_tier_map(runs, lambda q: clf.classify(q).type, penalty_per_usd=args.penalty)
    fitted = {"prototypes": f"LoCoMo dev train split ({len(train.items)} questions), single- and multi-hop",
              "map": f"best of {', '.join(candidates)} per type on {n} train questions ({n // 4} of each type, "
                     "spread over the split)",
              "search": record}  # fmt: skip
    rules_path, calibration_path = fitted_files(args.strategy)
    RuleTable(settings.encoder.name, {k: tuple(v) for k, v in protos.items()}, tiers, args.strategy, fitted,
              offsets).save(rules_path)  # fmt: skip
    # The features pass (T = 0: never escalates) names the calibration file in its identity, and
    # the fit rewrites that file: a re-fit starts the pass afresh (every step a module-cache hit).
    features = f"escalate:{args.cheap}>{args.costly}@0"
    shutil.rmtree(RESULTS / args.strategy / (run_name(features) + "-train"), ignore_errors=True)
    cheap = evaluate(features, args.strategy, args, split="train", limit=n, split_file=sample)
    costly = runs.get(args.costly) or evaluate(args.costly, args.strategy, args, split="train", limit=n, split_file=sample)
    cal = calibration_from_rows(cheap, costly)
    cal.save(calibration_path)
    from _report import table

    f = cal.fitted
    rows = [[k, next(iter(v["candidates"].values()))["n"] if v["candidates"] else 0, v["choice"],
             *(f"{100 * v['candidates'][c]['f1']:.1f}" if c in v["candidates"] else "-" for c in candidates)]
            for k, v in record["types"].items()]  # fmt: skip
    return "\n".join([
        f"## Routing baselines: fitted on the train split ({args.strategy})",
        "",
        f"Rule map: per question type (as the classifier types them), train F1 of each candidate map on {n} train "
        f"questions ({n // 4} of each LoCoMo type, spread over the split; their ids are in "
        f"`{sample.relative_to(ROOT)}`, which the fit writes) "
        f"and the one chosen (score F1 - {args.penalty:g} x extraction USD). Escalation's calibration "
        f"(`{args.cheap}` > `{args.costly}`): logistic weights {_weights(cal)} fitted on {f['questions']} train "
        f"questions, on {100 * f['share_not_improved']:.0f}% of which the costly pass did not raise F1; train "
        f"accuracy {100 * f['train_accuracy']:.0f}% (always answering 'not improved' scores "
        f"{100 * max(f['share_not_improved'], 1 - f['share_not_improved']):.0f}%).",
        "",
        f"Command: `.venv/bin/python bench/routing.py --part fit"
        + ("" if args.strategy == "implementation" else f" --strategy {args.strategy} --cheap \"{args.cheap}\"")
        + f" --train-questions {args.train_questions} --candidates \"{args.candidates}\" --costly \"{args.costly}\"`",
        "",
        table(["type", "questions", "chosen", *candidates], rows),
        "",
        "A type with fewer than 3 questions takes the best map over all of them. Read the F1 columns with their n: "
        "a handful of questions decides each row, so the map is a cheap baseline, not a finding about the types.",
    ]) + "\n"  # fmt: skip


def _steps(trace: dict) -> list[dict]:
    """Every ledger line of a question: each pass's module steps and answer step."""
    return [s for t in (trace, *trace.get("passes", [])) for s in (*t["steps"], t.get("answer_step")) if s]


def _fixed(label: str) -> bool:
    """Whether a frontier row is a fixed tier map (``mid``, ``mid,summary=high``): not a
    router, the rule router, an escalation point or naive RAG."""
    return not label.startswith(("router", "rules", "escalate", "naive-rag"))


def oracle(runs: dict[str, dict[str, dict]], ids: list[str], prefer: str | None = None) -> dict:
    """The hindsight oracle over fixed tier maps: for each question, the map that scored the
    best F1 there; on a tie ``prefer`` (the best map overall), then the cheapest, so its picks
    show where it departs from that map. It reads the gold answer, so it is no system; its
    gap to the best fixed map bounds what routing between those maps, question by question,
    could gain on these questions. ``runs``: label -> question id -> result row."""
    import statistics

    def rank(s: str, i: str) -> tuple:
        return -runs[s][i]["metrics"]["f1"], s != prefer, runs[s][i]["cost"]["extraction_usd"]

    picks = [min(runs, key=lambda s: rank(s, i)) for i in ids]
    chosen = [runs[s][i] for s, i in zip(picks, ids, strict=True)]
    return {
        "f1": 100 * statistics.mean(r["metrics"]["f1"] for r in chosen),
        "ext": 1e6 * statistics.mean(r["cost"]["extraction_usd"] for r in chosen),
        "picked": {s: sum(p == s for p in picks) / len(ids) for s in runs},
        "n": len(ids),
    }


def _oracle_line(points: list[dict], runs: dict[Path, dict], common: list[str]) -> str:
    fixed = {p["label"]: runs[p["dir"]] for p in points if _fixed(p["label"]) and p["n"] == len(common)}
    if len(fixed) < 2:
        return ""
    best = max((p for p in points if p["label"] in fixed), key=lambda p: p["f1"])
    o = oracle(fixed, common, prefer=best["label"])
    shares = ", ".join(f"`{s}` on {100 * v:.0f}%" for s, v in o["picked"].items() if s != best["label"] and v)
    return (
        f"Headroom: a hindsight oracle that takes, for each question, the best-scoring of the fixed maps "
        f"({', '.join(f'`{s}`' for s in fixed)}; on a tie the best map overall, then the cheapest) would score "
        f"{o['f1']:.1f} F1 at {o['ext']:.0f} µ$ of extraction on these {o['n']} questions, against the best fixed "
        f"map's {best['f1']:.1f} (`{best['label']}`); it departs from `{best['label']}` for {shares or 'none'} of "
        f"them. It reads the gold answers, so it is no system: the gap bounds what "
        "choosing one of these maps per question could gain (a router that mixes tiers module by module has more "
        "choices), and it is what a router's training has to find."
    )


def _llm_seconds(trace: dict) -> float:
    """Seconds of LLM calls the question took when first computed. Steps reused from an
    earlier pass carry no calls, so nothing is counted twice."""
    return sum(c["latency_s"] for s in _steps(trace) for c in s["calls"])


def _weights(cal) -> str:  # type: ignore[no-untyped-def]
    return ", ".join([f"bias {cal.bias:+.2f}", *(f"{k} {v:+.2f}" for k, v in cal.weights.items())])


def _rows_by_id(run_dir: Path) -> dict[str, dict]:
    from budgetmem.eval.results import ResultsFile

    f = run_dir / "results.jsonl"
    return {r["id"]: r for r in ResultsFile(f).rows()} if f.exists() else {}


def _label(run_dir: Path) -> str:
    name = run_dir.name.removeprefix("eval-")
    if "router" in name:
        lam = name.split("router-")[-1].split("_")[0]
        return f"router λ={lam}"
    return name.replace("-to-", ">").replace("-at-", "@").replace("+", ",")


def frontier(args: argparse.Namespace) -> str:
    """Every system run on the strategy's test questions; the escalation sweep; paired
    bootstrap intervals for each learned router minus each baseline; a PNG; each system's
    wall time per question. Systems that answered all ``--questions`` are compared on the
    questions they share; a system still short of that (a slow one, resuming) gets its own
    n, and its paired differences are taken on the questions it shares with the router."""
    import statistics

    from budgetmem.eval.metrics import bootstrap_ci

    strat = RESULTS / args.strategy
    sweep = thresholds(args)
    swept = [f"escalate:{args.cheap}>{args.costly}@{t:g}" for t in sweep]
    for system in swept:  # after the cheap and costly runs, every step of these is a module-cache hit
        evaluate(system, args.strategy, args)
    # Escalation runs of other sweeps (other thresholds or pairs) stay on disk but off this frontier.
    current = {run_name(x) for x in swept}
    runs = {d: _rows_by_id(d) for d in sorted(strat.glob("eval-*"))
            if not d.name.endswith("-train") and (not d.name.startswith("eval-escalate") or d.name in current)}  # fmt: skip
    runs = {d: r for d, r in runs.items() if r}
    complete = [r for r in runs.values() if len(r) >= args.questions] or list(runs.values())
    if not complete:
        raise SystemExit("no question answered by any system yet")
    common = sorted(set.intersection(*(set(r) for r in complete)))
    points = []
    for d, rows in runs.items():
        ids = common if set(common) <= set(rows) else sorted(rows)
        f1 = [rows[i]["metrics"]["f1"] for i in ids]
        lo, hi = bootstrap_ci(f1)
        # Wall time of questions this run computed: a row with any step served from the cache
        # (module, answer, or an earlier pass) would flatter it and is left out.
        walls = [rows[i]["cost"]["wall_s"] for i in ids if not any(s.get("cache_hit") for s in _steps(rows[i]["trace"]))]
        esc = [rows[i]["trace"]["context"].get("escalation") for i in ids]
        points.append({
            "label": _label(d), "dir": d, "n": len(ids), "ids": ids, "f1": 100 * statistics.mean(f1),
            "lo": 100 * lo, "hi": 100 * hi,
            "ext": 1e6 * statistics.mean(rows[i]["cost"]["extraction_usd"] for i in ids),
            "tot": 1e6 * statistics.mean(rows[i]["cost"]["total_usd"] for i in ids),
            "wall": statistics.median(walls) if walls else None,
            "llm_s": statistics.median(_llm_seconds(rows[i]["trace"]) for i in ids),
            "escalated": sum(bool(e and e["escalated"]) for e in esc) / len(ids) if any(esc) else None,
        })  # fmt: skip
    order = sorted(points, key=lambda p: (p["n"] < len(common), p["label"].startswith("escalate"), p["ext"]))
    rows = [[p["label"], p["n"], f"{p['f1']:.1f} [{p['lo']:.1f}, {p['hi']:.1f}]", f"{p['ext']:.0f}", f"{p['tot']:.0f}",
             "-" if p["escalated"] is None else f"{100 * p['escalated']:.0f}%",
             f"{p['llm_s']:.1f}", "-" if p["wall"] is None else f"{p['wall']:.1f}"] for p in order]  # fmt: skip
    from _report import table

    paired = []
    middle = _label(strat / run_name(swept[len(swept) // 2]))  # the sweep's middle point is the paired baseline
    for r in (p for p in order if p["label"].startswith("router")):
        for b in order:
            if b["label"].startswith("router") or (b["label"].startswith("escalate") and b["label"] != middle):
                continue
            ids = sorted(set(r["ids"]) & set(b["ids"]))
            if not ids:
                continue
            diffs = [runs[r["dir"]][i]["metrics"]["f1"] - runs[b["dir"]][i]["metrics"]["f1"] for i in ids]
            lo, hi = bootstrap_ci(diffs)
            verdict = "beats" if lo > 0 else "loses to" if hi < 0 else "not distinguishable from"
            ext = statistics.mean(runs[r["dir"]][i]["cost"]["extraction_usd"] - runs[b["dir"]][i]["cost"]["extraction_usd"]
                                  for i in ids)  # fmt: skip
            paired.append([f"{r['label']} - {b['label']}", len(ids), f"{100 * statistics.mean(diffs):+.1f} "
                           f"[{100 * lo:.1f}, {100 * hi:.1f}]", f"{1e6 * ext:+.0f}", verdict])  # fmt: skip
    headroom = _oracle_line(order, runs, common)
    _plot([p for p in order if p["n"] == len(common)], strat / "frontier.png", args)
    save_json(strat / "frontier.json", [{k: v for k, v in p.items() if k not in ("dir", "ids")} for p in order])
    m = machine_info()
    return "\n".join([
        f"## Routing baselines: {args.strategy} frontier on LoCoMo dev",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); load average "
        f"{os.getloadavg()[0]:.1f} at the end ({args.note}). The first {len(common)} questions of the conversation-level "
        f"test split (seed 0), on which the rows with that n are compared; a row with a smaller n is a system still "
        f"short of them (it resumes), read on its own questions. Answer and module LLM `{args.answer_llm}`, encoder "
        f"`{args.encoder}`. Routers: the {args.strategy} routers of the learned-router benchmark, evaluated here. "
        f"Escalation: `{args.cheap}` first, `{args.costly}` when the confidence is below T; the sweep's T "
        f"({', '.join(f'{t:g}' for t in sweep)}) are `{args.thresholds}` (qP: the P-th percentile of the cheap pass's "
        "confidence on these questions, so about P% escalate). LLM s/q: median over the questions of the "
        "seconds their LLM calls took when first computed (a cached call keeps its recorded latency; escalation "
        "counts both passes), so every row has it however much of it this run found in the module cache. Wall "
        "s/q: median over the questions this run computed with no step served from the cache ('-': none).",
        "",
        f"Command: `.venv/bin/python bench/routing.py --part frontier --strategy {args.strategy} --questions {args.questions} "
        f"--cheap \"{args.cheap}\" --costly \"{args.costly}\" --thresholds {args.thresholds}` (after `--part runs`)",
        "",
        table(["system", "n", "F1 [95% CI]", "extraction µ$/q", "total µ$/q", "escalated", "LLM s/q", "wall s/q"], rows),
        "",
        "Learned router minus each baseline, paired over the questions both answered (95% bootstrap; extraction µ$ "
        "is the router's extra spend per question):",
        "",
        table(["difference", "n", "F1 points", "extraction µ$", "reading"], paired)
        if paired else "(no learned router run yet)",
        "",
        f"![{args.strategy} frontier](../bench/results/routing/{args.strategy}/frontier.png)",
        *(["", headroom] if headroom else []),
    ]) + "\n"  # fmt: skip


def thresholds(args: argparse.Namespace) -> list[float]:
    """The escalation sweep's thresholds. ``qP`` is the P-th percentile of the cheap pass's
    confidence on the test questions (read from the T = 0 run, which never escalates and,
    after the cheap run, costs only cache hits): the calibrated confidences bunch in a narrow
    band, so fixed thresholds give all-or-nothing escalation, while percentiles place the
    points at about P% of questions escalated and trace the frontier between the two passes."""
    import numpy as np

    wanted = [t.strip() for t in args.thresholds.split(",") if t.strip()]
    fixed = [float(t) for t in wanted if not t.lower().startswith("q")]
    shares = [float(t[1:]) / 100 for t in wanted if t.lower().startswith("q")]
    if not shares:
        return sorted(fixed)
    if not all(0 < q < 1 for q in shares):
        raise SystemExit(f"--thresholds: percentiles must lie in q1..q99, got {args.thresholds}")
    rows = evaluate(f"escalate:{args.cheap}>{args.costly}@0", args.strategy, args)
    conf = np.asarray([r["trace"]["context"]["escalation"]["confidence"] for r in rows], dtype=float)
    # Rounded up at the third decimal, so the P% below it stay below the printed threshold.
    picked = {float(np.ceil(np.round(1000 * np.quantile(conf, q), 6)) / 1000) for q in shares}
    return sorted(picked | set(fixed))


def walltime(args: argparse.Namespace) -> str:
    """Wall time per routed question on the embedded default LLM (``--wall-llm``, answer and
    module model alike; the encoder stays the routers' own): each policy on the first
    ``--wall-questions`` test questions with a module cache of its own, so every step of every
    question is computed, none served from another policy's work."""
    import statistics

    out = RESULTS / args.strategy / "walltime"
    rows = []
    for system in (x.strip() for x in args.systems.split(";")):
        settings = settings_for(args).replace(
            pipeline__answer_llm=args.wall_llm, pipeline__module_llm=args.wall_llm,
            pipeline__cache_path=out / f"cache-{run_name(system)}.sqlite",
        )  # fmt: skip
        done = evaluate(system, args.strategy, args, limit=args.wall_questions, root=out, settings=settings)
        walls = [r["cost"]["wall_s"] for r in done]
        median = statistics.median(walls)
        rows.append([_label(out / run_name(system)), len(done), f"{median:.1f}", f"{max(walls):.1f}",
                     f"{1e6 * statistics.mean(r['cost']['extraction_usd'] for r in done):.0f}",
                     "yes" if median <= 10 else "no"])  # fmt: skip
    m = machine_info()
    from _report import table

    return "\n".join([
        f"## Routing baselines: wall time per routed question on the embedded default ({args.strategy})",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); load average "
        f"{os.getloadavg()[0]:.1f} at the end ({args.note}). Answer and module LLM `{args.wall_llm}` (the embedded "
        f"default), encoder `{args.encoder}` (the routers' own); the first {args.wall_questions} test questions, each "
        "policy with a module cache of its own (every step computed). Goal: median <= 10 s.",
        "",
        f"Command: `.venv/bin/python bench/routing.py --part walltime --systems \"{args.systems}\" "
        f"--wall-questions {args.wall_questions}`",
        "",
        table(["policy", "questions", "median wall s", "slowest s", "extraction µ$/q", "median <= 10 s"], rows),
    ]) + "\n"  # fmt: skip


def _plot(points: list[dict], out: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    sweep = sorted((p for p in points if p["label"].startswith("escalate")), key=lambda p: p["ext"])
    if sweep:
        ax.plot([p["ext"] for p in sweep], [p["f1"] for p in sweep], "o-", color="grey", label="escalation sweep (T)")
        for p in sweep:
            ax.annotate(p["label"].split("@")[-1], (p["ext"], p["f1"]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    for p in points:
        if not p["label"].startswith("escalate"):
            ax.errorbar([p["ext"]], [p["f1"]], yerr=[[p["f1"] - p["lo"]], [p["hi"] - p["f1"]]], fmt="s", capsize=3,
                        label=p["label"])  # fmt: skip
    ax.set_xlabel("extraction cost per question (µ$)")
    ax.set_ylabel("F1 (%)")
    ax.set_title(f"{args.strategy}: routers and baselines on the same questions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def target(args: argparse.Namespace) -> str:
    """Target-cost mode over a stream of test questions (cycled to ``--stream`` queries; after
    the cheap and costly runs, every step is a module-cache hit, so the stream costs little
    wall time but its recorded costs are the real ones): realised mean against target."""
    import statistics

    from budgetmem import BudgetMem
    from budgetmem.eval.datasets import load_eval_set
    from budgetmem.eval.scoring import namespace_of, score
    from budgetmem.eval.splits import make_split
    from budgetmem.store import Store

    settings = settings_for(args)
    data = load_eval_set("locomo", DATA)
    items = list(make_split(data, "test", seed=0).items)[: args.questions]
    high = _rows_by_id(RESULTS / args.strategy / run_name(args.costly))
    if not high:
        raise SystemExit(f"run --part runs --systems {args.costly} first")
    full = statistics.mean(high[i.id]["cost"]["extraction_usd"] for i in items if i.id in high)
    policy = f"escalate:{args.cheap}>{args.costly}@0.5"
    out = RESULTS / args.strategy / "target"
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], {}
    for share in (0.25, 0.5, 0.75):
        goal = share * full
        store_path = out / f"store-{share:g}.db"
        if store_path.exists():
            store_path.unlink()  # a fresh controller per target: the stream starts from the knob's middle
        for suffix in ("-wal", "-shm"):
            Path(str(store_path) + suffix).unlink(missing_ok=True)
        shutil.copyfile(RESULTS / "locomo_dev.db", store_path)
        costs, f1s = [], []
        with Store(store_path) as store:
            mems: dict[str, BudgetMem] = {}
            for q in range(args.stream):
                it = items[q % len(items)]
                ns = namespace_of("locomo", it)
                mem = mems.get(ns) or mems.setdefault(ns, BudgetMem(store, ns, settings=settings, strategy=args.strategy))
                r = mem.query(it.question, policy=policy, question_date=it.question_date, target_usd=goal)
                costs.append(r.extraction_usd)
                f1s.append(score("locomo", it, r.answer)["f1"])
                if q % 20 == 0:
                    log(f"target {share:g}: {q + 1} queries, mean {statistics.mean(costs) * 1e6:.0f} µ$ vs {goal * 1e6:.0f}")
            for m in mems.values():
                m.close()
        curves[share] = (goal, costs)
        mean = statistics.mean(costs)
        rows.append([f"{goal * 1e6:.0f} ({100 * share:.0f}% of {args.costly})", args.stream, f"{mean * 1e6:.0f}",
                     f"{100 * (mean - goal) / goal:+.1f}%", f"{100 * statistics.mean(f1s):.1f}"])  # fmt: skip
    _plot_target(curves, out / "target.png")
    m = machine_info()
    from _report import table

    return "\n".join([
        f"## Target-cost mode on LoCoMo dev ({args.strategy})",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); load average "
        f"{os.getloadavg()[0]:.1f} at the end ({args.note}). Policy `{policy}`; the controller adapts the "
        f"threshold (eta {settings.routing.target_eta:g}); the stream is {args.stream} queries cycling the first "
        f"{len(items)} test questions (every step served from the module cache of `--part runs`, with its recorded "
        f"cost). Full escalation (`{args.costly}`) costs {full * 1e6:.0f} µ$ of extraction per question.",
        "",
        f"Command: `.venv/bin/python bench/routing.py --part target --costly \"{args.costly}\" --stream {args.stream} "
        f"--questions {args.questions}`",
        "",
        table(["target µ$/q", "queries", "realised µ$/q", "off target", "F1"], rows),
        "",
        f"![target cost](../bench/results/routing/{args.strategy}/target/target.png)",
    ]) + "\n"  # fmt: skip


def _plot_target(curves: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for share, (goal, costs) in curves.items():
        running = np.cumsum(costs) / np.arange(1, len(costs) + 1)
        line = ax.plot(1e6 * running, label=f"realised, target {goal * 1e6:.0f} µ$")[0]
        ax.axhline(goal * 1e6, color=line.get_color(), ls="--", lw=1)
    ax.set_xlabel("query")
    ax.set_ylabel("running mean extraction cost (µ$/query)")
    ax.set_title("target-cost mode: realised against target")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["runs", "classifier", "fit", "frontier", "target", "walltime"], required=True)
    p.add_argument("--candidates", default="low;mid;mid,summary=high;mid,filter=high;high", help="fit: candidate maps")
    p.add_argument("--train-questions", type=int, default=30, help="fit: train questions (a quarter of each type)")
    p.add_argument("--penalty", type=float, default=0.0, help="fit: F1 lost per USD of extraction")
    p.add_argument("--cheap", default="mid")
    p.add_argument("--costly", default="high")
    p.add_argument("--thresholds", default="q10,q30,q50,q70,q90",
                   help="escalation sweep: thresholds in [0, 1], or qP for the P-th percentile of the cheap pass's confidence")
    p.add_argument("--stream", type=int, default=120, help="target: queries in the stream")
    p.add_argument("--strategy", default="implementation")
    p.add_argument("--systems", default="low;mid;naive-rag;high", help="policies separated by ';'")
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--wall-questions", type=int, default=8, help="walltime: questions per policy")
    p.add_argument("--wall-llm", default="llamacpp:qwen2.5-coder-1.5b", help="walltime: the embedded default LLM")
    p.add_argument("--note", default="nothing else ran", help="what else ran on the machine, for the tables")
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    args = p.parse_args(argv)
    if not DATA.exists():
        print(f"LoCoMo dev subset not found at {DATA}", file=sys.stderr)
        return 2
    if args.part == "runs":
        runs(args)
    elif args.part == "classifier":
        write_section(DOC, "routing-classifier", classifier(args))
    elif args.part == "fit":
        write_section(DOC, "routing-fit" + ("" if args.strategy == "implementation" else f"-{args.strategy}"), fit(args))
    elif args.part == "walltime":
        write_section(DOC, f"routing-walltime-{args.strategy}", walltime(args))
    elif args.part == "frontier":
        write_section(DOC, f"routing-frontier-{args.strategy}", frontier(args))
    else:
        write_section(DOC, f"routing-target-{args.strategy}", target(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
