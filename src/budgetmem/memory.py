"""``BudgetMem``: the Python entry point. One store file, one namespace, explicit settings."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, InputError, NotFoundError
from budgetmem.ingest import Chunk, History, Session, Turn, load_histories
from budgetmem.ingest.ingest import IngestReport, ingest_histories
from budgetmem.ingest.text import document_session
from budgetmem.llm import LLM, make_llm
from budgetmem.pipeline.cache import open_module_cache, source_tag
from budgetmem.pipeline.policy import Policy, parse_policy
from budgetmem.pipeline.runner import Pipeline, llm_resolver
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import ScoredChunk
from budgetmem.retrieval import Hit, Searcher
from budgetmem.settings import Settings
from budgetmem.store import NamespaceInfo, Removed, Store, open_store

if TYPE_CHECKING:
    from budgetmem.context.packing import PackedContext
    from budgetmem.router.budget import CostController
    from budgetmem.router.escalate import Escalation

__all__ = ["BudgetMem", "ForgetReport", "namespace_stats"]


@dataclass(frozen=True)
class ForgetReport:
    """What :meth:`BudgetMem.delete`, :meth:`~BudgetMem.forget_session` or
    :meth:`~BudgetMem.forget` removed, for good."""

    namespace: str
    chunks: int
    """Live chunks removed (with their embeddings and any compressed version)."""
    archived: int
    """Archived (rejected or evicted) chunks removed."""
    sessions: int
    """Session rows dropped."""
    cache_entries: int
    """Module-cache entries dropped: those computed from a removed chunk's text, and any
    entry written before entries recorded their sources."""
    namespace_removed: bool
    wiped: bool
    """True when no byte of the removed text is left in the store file, the module cache
    file or their WALs; False when another connection's older snapshot kept a WAL from being
    emptied (the next forget, ``Store.wipe()`` or the last connection closing finishes it)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _content_id(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def namespace_stats(info: NamespaceInfo) -> dict[str, object]:
    """What a namespace stores against what it has seen (a write budget keeps less)."""
    seen_chunks = info.seen_chunks or info.n_chunks
    seen_tokens = info.seen_tokens or info.n_tokens
    policy = json.loads(info.write_policy) if info.write_policy else {"policy": "all"}
    return {
        "namespace": info.name, "encoder": info.encoder, "sessions": info.n_sessions,
        "seen_chunks": seen_chunks, "stored_chunks": info.n_chunks, "seen_tokens": seen_tokens,
        "stored_tokens": info.n_tokens, "archived_chunks": info.n_archived, "archived_tokens": info.archived_tokens,
        "saved_chunks_pct": _pct(seen_chunks - info.n_chunks, seen_chunks),
        "saved_tokens_pct": _pct(seen_tokens - info.n_tokens, seen_tokens),
        "write_policy": policy, "write_budget": info.write_budget,
    }  # fmt: skip


class BudgetMem:
    """Memory for one agent or user (a namespace) in a store file.

    >>> mem = BudgetMem("memory.db", namespace="alice")
    >>> mem.add("examples/conversation.json")          # or mem.add_session([...])
    >>> hits = mem.search("When did Priya move to Lisbon?", k=5)
    >>> result = mem.query("When did Priya move to Lisbon?", policy="mid,filter=high")
    >>> print(result.answer, result.total_usd); print(result.table())
    """

    def __init__(
        self,
        store: str | Path | Store,
        namespace: str = "default",
        *,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        strategy: str | None = None,
        policy: str | Policy = "mid",
        llms: Mapping[str, LLM] | None = None,
    ) -> None:
        """``strategy`` overrides settings.pipeline.strategy; ``policy`` is low / mid / high /
        random / a per-module map / a Policy object; ``llms`` maps provider strings to
        ready LLM objects (custom clients, or scripted fakes in tests)."""
        self.settings = settings or Settings()
        if strategy is not None:
            self.settings = self.settings.replace(pipeline__strategy=strategy)
        self._llms = llms
        self._routers: dict[str, Policy | Escalation] = {}
        self._controllers: dict[float, CostController] = {}
        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()
        self.store = store if isinstance(store, Store) else open_store(store)
        self._owns_store = not isinstance(store, Store)
        self.namespace = namespace
        info = self.store.namespace(namespace)
        if encoder is None:
            # An existing namespace keeps the encoder it was embedded with.
            enc_settings = self.settings.encoder
            if info is not None and info.encoder != enc_settings.name:
                enc_settings = type(enc_settings)(**{**enc_settings.__dict__, "name": info.encoder})
            encoder = Encoder(enc_settings, self.settings.models_dir)
        self.encoder = encoder
        self.searcher = Searcher(self.store, self.encoder, self.settings.retrieval)
        # After the encoder and searcher: a learned router embeds its state with them.
        self.policy = self._as_policy(policy)

    def add(self, path: str | Path, *, fmt: str = "auto", progress: bool = False) -> IngestReport:
        """Ingest a file or folder. A file with several histories gives ``namespace/<name>`` each."""
        return self.add_histories(load_histories(path, fmt), progress=progress)

    def add_histories(self, histories: Sequence[History], *, progress: bool = False) -> IngestReport:
        """Store histories under ``settings.write``: everything by default, or the most
        salient chunks under a budget (the rest is archived, recoverable until ``gc``)."""
        return ingest_histories(
            self.store, self.namespace, histories, self.encoder, self.settings.chunking.max_tokens,
            progress=progress, write=self.settings.write,
        )  # fmt: skip

    def add_session(
        self,
        turns: Sequence[str | tuple[str, str]],
        *,
        session_id: str | None = None,
        date_time: str | None = None,
        source: str = "api",
    ) -> IngestReport:
        """Append one chat session: turns are ``text`` or ``(speaker, text)``.

        Without a ``session_id`` one is derived from the content, so adding the same session
        twice (a retried request, say) stores it once, as an explicit id does."""
        if session_id is None:
            session_id = "s-" + _content_id([date_time, [t if isinstance(t, str) else list(t) for t in turns]])
        parsed = tuple(
            Turn(text=t, dia_id=f"{session_id}:{i}")
            if isinstance(t, str)
            else Turn(text=t[1], speaker=t[0], dia_id=f"{session_id}:{i}")
            for i, t in enumerate(turns)
        )
        if not parsed:
            raise InputError("empty session: no turns given")
        session = Session(session_id, date_time, parsed, "chat")
        return self.add_histories([History(self.namespace, source, "api", (session,))])

    def add_document(
        self, text: str, *, document_id: str | None = None, date_time: str | None = None, source: str = "api"
    ) -> IngestReport:
        """Append one document (a session whose turns are its paragraphs), as ``add`` does
        for a .txt or .md file. Without a ``document_id`` one is derived from the content."""
        if document_id is None:
            document_id = "d-" + _content_id([date_time, text])
        session = document_session(text, document_id, date_time)
        if not session.turns:
            raise InputError("empty document: no text given")
        return self.add_histories([History(self.namespace, source, "api", (session,))])

    # ------------------------------------------------------------------ reading back
    def memories(self, *, after: int = 0, limit: int = 100, session_id: str | None = None) -> list[Chunk]:
        """Stored (live) chunks with ids above ``after``, in id order: page with the last id."""
        self.store.require_namespace(self.namespace, counts=False)
        return self.store.chunk_page(self.namespace, after=after, limit=limit, session_id=session_id)

    def memory(self, chunk_id: int) -> Chunk:
        """One stored chunk of this namespace; a NotFoundError for an id of another one."""
        self.store.require_namespace(self.namespace, counts=False)
        found = self.store.chunks(self.namespace, [int(chunk_id)])
        if not found:
            raise NotFoundError(f"chunk {chunk_id} not found in namespace {self.namespace!r}")
        return found[0]

    def stats(self) -> dict[str, object]:
        """Stored vs seen chunks and tokens, the archive, the write policy (``budgetmem stats``)."""
        return namespace_stats(self.store.require_namespace(self.namespace))

    def search(self, query: str, k: int | None = None, retriever: str | None = None) -> list[Hit]:
        hits = self.searcher.search(self.namespace, query, k=k, retriever=retriever)
        info = self.store.namespace(self.namespace, counts=False)
        if info is not None and info.write_policy is not None:
            # Budgeted namespaces count retrievals: eviction keeps what keeps being used.
            self.store.touch(self.namespace, [int(h.chunk.id) for h in hits if h.chunk.id is not None])
        return hits

    def context(
        self,
        question: str,
        k: int | None = None,
        *,
        count: Callable[[str], int] | None = None,
        counted_with: str | None = None,
    ) -> PackedContext:
        """The packed answer context for ``question`` (selective-write paper §III-F, §III-H3):
        the episodic window (the namespace's newest chunks), then the top-``k`` retrieved
        chunks, under ``settings.context`` (compressed versions where raw text does not fit).

        Tokens are counted with ``count``, by default the encoder's tokenizer (always at hand;
        the packed-rag evaluation system counts with the answer model's where it has one)."""
        from budgetmem.context.citations import memory_header
        from budgetmem.context.packing import pack_namespace

        if count is None:
            count, counted_with = self.encoder.count_tokens, f"encoder tokenizer ({self.encoder.name})"
        ranked = [ScoredChunk(h.chunk, h.score) for h in self.search(question, k=k)]
        return pack_namespace(
            self.store, self.namespace, ranked, self.settings.context, count,
            header=memory_header, counted_with=counted_with or "",
        )  # fmt: skip

    def _as_policy(self, policy: str | Policy | Escalation) -> Policy | Escalation:
        if not isinstance(policy, str):
            return policy
        text = policy.strip()
        low = text.lower()
        if low.startswith("escalate:"):
            from budgetmem.router.escalate import load_calibration, parse_escalation

            with self._pipeline_lock:
                known = self._routers.get(text)
            if known is None:  # parsed once per spec (its policies and calibration loaded once)
                cal = load_calibration(self.settings.routing.calibration)
                known = parse_escalation(text, self._as_simple_policy, cal)  # type: ignore[assignment]
                with self._pipeline_lock:
                    self._routers[text] = known  # type: ignore[assignment]
            return known
        return self._as_simple_policy(text)

    def _as_simple_policy(self, text: str) -> Policy:
        low = text.strip().lower()
        if low.startswith("router:"):
            return self._router(text.strip()[len("router:") :])
        if low == "rules" or low.startswith("rules:"):
            return self._rules(text.strip()[len("rules:") :] if ":" in text else None)
        return parse_policy(text, seed=self.settings.pipeline.seed)

    def _rules(self, path: str | None) -> Policy:
        """The rule router (``rules`` or ``rules:PATH``), loaded once per file; its prototypes
        embed questions with the encoder they were made with (this namespace's if the same)."""
        from budgetmem.router.rules import RuleRouter, load_rule_table

        chosen = path or (str(self.settings.routing.rules) if self.settings.routing.rules else None)
        key = "rules:" + (str(Path(chosen).expanduser().resolve()) if chosen else "default")
        with self._pipeline_lock:
            if key not in self._routers:
                table = load_rule_table(Path(chosen).expanduser() if chosen else None)
                encoder = self.encoder
                if table.prototypes and table.encoder and table.encoder != self.encoder.name:
                    encoder = Encoder(replace(self.settings.encoder, name=table.encoder), self.settings.models_dir)
                name = "rules" if chosen is None else f"rules:{Path(chosen).name}"
                self._routers[key] = RuleRouter(table, encoder, name=name)
            return self._routers[key]

    def _router(self, path: str) -> Policy:
        """A learned router checkpoint, or a frontier directory of them chosen between by the
        query's cost weight (loaded once per path), checked against this strategy."""
        from budgetmem.router.policy import load_routers

        key = str(Path(path).expanduser().resolve())
        with self._pipeline_lock:
            if key not in self._routers:
                router = load_routers(key, self.encoder, vectors=self.searcher.vectors)
                trained = router.meta.get("strategy")
                strategy = self.settings.pipeline.strategy
                if trained and trained != strategy:
                    raise ConfigError(
                        f"router {Path(path).name} was trained for the {trained} strategy, not {strategy}",
                        hint=f"use --strategy {trained}",
                    )
                self._routers[key] = router
            return self._routers[key]

    @property
    def pipeline(self) -> Pipeline:
        with self._pipeline_lock:
            if self._pipeline is None:
                p = self.settings.pipeline
                cache = open_module_cache(p.cache_path, self.store)
                make = partial(make_llm, settings=self.settings, models_dir=self.settings.models_dir)
                self._pipeline = Pipeline(self.encoder, p, llm_resolver(self._llms, make), cache)
            return self._pipeline

    def query(
        self,
        question: str,
        *,
        cost_weight: float | None = None,
        policy: str | Policy | Escalation | None = None,
        question_date: str | None = None,
        k: int | None = None,
        retriever: str | None = None,
        target_usd: float | None = None,
    ) -> QueryResult:
        """Retrieve top-K candidates, run the tiered pipeline, answer; with the full ledger.

        ``cost_weight`` is the performance-cost knob (lambda) handed to the policy: learned
        routers are trained per value; fixed and random policies ignore it.
        ``target_usd``: target-cost mode, the mean extraction USD per query this namespace
        should spend; the knob (lambda of a router family, or escalation's threshold) is set
        per query by the namespace's controller, whose state is kept in the store
        (:mod:`budgetmem.router.budget`). ``result.context["budget"]`` shows it.
        """
        chosen = self.policy if policy is None else self._as_policy(policy)
        if target_usd is not None:
            controller = self._controller(target_usd)
            chosen, picked, note = controller.choose(chosen)
            cost_weight = picked if picked is not None else cost_weight
            result = self._query(question, chosen, cost_weight, question_date, k, retriever)
            state = controller.observe(result.extraction_usd)
            result.context["budget"] = {**note, **state.to_dict()}
            return result
        return self._query(question, chosen, cost_weight, question_date, k, retriever)

    def _controller(self, target_usd: float) -> CostController:
        from budgetmem.router.budget import CostController
        from budgetmem.store.controls import ControlStore

        with self._pipeline_lock:
            c = self._controllers.get(target_usd)
            if c is None:
                # One per target: a changed target starts its counts afresh (keeping the knob).
                c = CostController(ControlStore(self.store), self.namespace, target_usd, eta=self.settings.routing.target_eta)
                self._controllers = {target_usd: c}
            return c

    def budget(self) -> dict[str, object] | None:
        """This namespace's target-cost state (target, knob, queries, mean spend), or None."""
        from budgetmem.router.budget import CONTROL_NAME
        from budgetmem.store.controls import ControlStore

        return ControlStore(self.store).get(self.namespace, CONTROL_NAME)

    def reset_budget(self) -> bool:
        """Forget this namespace's target-cost state; the next target starts from the middle."""
        from budgetmem.router.budget import CONTROL_NAME
        from budgetmem.store.controls import ControlStore

        with self._pipeline_lock:
            self._controllers = {}
        return ControlStore(self.store).delete(self.namespace, CONTROL_NAME)

    def _query(
        self, question: str, chosen: Policy | Escalation, cost_weight: float | None, question_date: str | None,
        k: int | None, retriever: str | None,
    ) -> QueryResult:  # fmt: skip
        from budgetmem.router.escalate import Escalation
        t0 = time.perf_counter()
        hits = self.search(question, k=k, retriever=retriever)
        retrieval_s = time.perf_counter() - t0
        if not hits:
            # Not found rather than bad input: the question is fine, the memory holds nothing for it.
            raise NotFoundError(
                f"namespace {self.namespace!r} has nothing that matches the question",
                hint="ingest history first, or ask with other words (try --retriever dense)",
            )
        candidates = [ScoredChunk(h.chunk, h.score) for h in hits]
        if isinstance(chosen, Escalation):
            result = chosen.run(
                lambda p, reuse: self.pipeline.run(
                    question, candidates, p, cost_weight=cost_weight, question_date=question_date, reuse=reuse
                )
            )
        else:
            result = self.pipeline.run(question, candidates, chosen, cost_weight=cost_weight, question_date=question_date)
        result.retrieval_s = retrieval_s
        result.wall_s += retrieval_s
        return result

    def query_packed(self, question: str, *, question_date: str | None = None, k: int | None = None) -> QueryResult:
        """Answer from the packed context with cited memory ids (the ``packed-rag`` system).

        Selective-write paper §III-G3 (Eq. 19: the episodic window joins the top-ranked
        chunks), §III-H3 (packed in that order up to the token budget) and §III-H1-H2 (each
        memory shown under its id; the model cites the ids it used). The returned answer has
        the citation markers removed; the raw reply, the packing and the citation check are in
        ``result.context``. Tokens are counted with the answer model's tokenizer, or the
        encoder's where the model has none (a hosted API), and the context says which."""
        from budgetmem.context.citations import (
            CITATION_HEADROOM_TOKENS,
            CITED_PROMPT_VERSION,
            build_cited_answer_prompt,
            check_reply,
            memory_header,
            render_cited_memories,
            strip_citations,
        )
        from budgetmem.context.packing import pack_namespace
        from budgetmem.pipeline.runner import ANSWER_MAX_TOKENS

        started = time.perf_counter()
        hits = self.search(question, k=k)
        retrieval_s = time.perf_counter() - started
        ranked = [ScoredChunk(h.chunk, h.score) for h in hits]
        llm = self.pipeline.answer_model
        count, counter = llm.count_tokens, "answer model tokenizer"
        if count("probe") is None:  # hosted API: no local tokenizer, so count with the encoder's
            count, counter = self.encoder.count_tokens, f"encoder tokenizer ({self.encoder.name}), an estimate"
        packed = pack_namespace(
            self.store, self.namespace, ranked, self.settings.context, lambda t: int(count(t) or 0),
            header=memory_header, counted_with=counter,
        )  # fmt: skip
        if not packed.window and not ranked:  # an empty namespace; a tight budget is recorded, not fatal
            raise InputError(f"namespace {self.namespace!r} is empty", hint="ingest the history first")
        style = self.settings.pipeline.answer_style
        memory = render_cited_memories(packed)
        prompt = build_cited_answer_prompt(question, memory, style=style, question_date=question_date)
        max_tokens = ANSWER_MAX_TOKENS[style] + CITATION_HEADROOM_TOKENS
        answer, step = self.pipeline.short_answer(
            question, prompt, version=CITED_PROMPT_VERSION, extra_tokens=CITATION_HEADROOM_TOKENS, cited=True,
            clean=strip_citations, sources=[i.chunk for i in packed.items],
        )  # fmt: skip
        raw = step.raw_output or ""
        check = check_reply(raw, packed, self.store, self.namespace)
        shown = tuple(ScoredChunk(i.chunk, i.score if i.score is not None else 0.0) for i in packed.items)
        return QueryResult(
            question=question, answer=answer, memory=memory, strategy="baseline", policy="packed-rag",
            candidates=tuple(ranked), filtered=shown, facts={}, steps=[], answer_step=step,
            wall_s=time.perf_counter() - started, retrieval_s=retrieval_s,
            context={"packing": packed.to_dict(), "citations": check.to_dict(), "raw_answer": raw,
                     "answer_max_tokens": max_tokens},
        )  # fmt: skip

    # ------------------------------------------------------------------ forgetting
    def delete(self, chunk_id: int, *, vacuum: bool = True) -> ForgetReport:
        """Forget one chunk of this namespace (live or archived): its text, embedding and
        compressed version, its place in the indexes, and every module-cache entry computed
        from it; the file is then wiped so the bytes cannot be read back.

        A :class:`~budgetmem.errors.NotFoundError` if the id is not stored in this namespace
        (an id of another namespace included). ``vacuum=False`` is faster on a large store but
        may leave copies old page rebalances made (see :mod:`budgetmem.store.wipe`)."""
        return self._forgotten(self.store.delete(self.namespace, chunk_id, vacuum=vacuum), vacuum)

    def forget_session(self, session_id: str, *, vacuum: bool = True) -> ForgetReport:
        """Forget every chunk of a session id, live or archived, as :meth:`delete` does."""
        return self._forgotten(self.store.forget_session(self.namespace, session_id, vacuum=vacuum), vacuum)

    def forget(self, *, vacuum: bool = True) -> ForgetReport:
        """Forget the whole namespace, as :meth:`delete` does for each chunk, and the namespace
        itself (its encoder binding, write policy and target-cost state). Adding to it again
        starts afresh."""
        self.store.require_namespace(self.namespace, counts=False)
        # Before the store forgets, so its wipe covers the control row as well.
        self.reset_budget()
        return self._forgotten(self.store.forget_namespace(self.namespace, vacuum=vacuum), vacuum)

    def _forgotten(self, removed: Removed, vacuum: bool) -> ForgetReport:
        """After the store forgot (its searchers already dropped the removed chunks from their
        indexes and index files): drop the derived cache entries."""
        entries, cache_wiped = 0, True
        cache_path = self.settings.pipeline.cache_path
        # A cache file that does not exist holds nothing to forget: do not create one.
        in_database = cache_path is not None and self.store.backend == "postgresql"
        if self._pipeline is not None or in_database or (cache_path is not None and Path(cache_path).expanduser().exists()):
            cache = self.pipeline.cache
            if cache is not None:
                entries, cache_wiped = cache.forget({source_tag(t) for t in removed.texts}, vacuum=vacuum)
        return ForgetReport(
            namespace=removed.namespace,
            chunks=removed.chunks,
            archived=removed.archived,
            sessions=removed.sessions,
            cache_entries=entries,
            namespace_removed=removed.namespace_removed,
            wiped=removed.wiped and cache_wiped,
        )

    async def aquery(self, question: str, **options: Any) -> QueryResult:
        """:meth:`query` for asyncio servers: the work runs in a worker thread, so the event loop
        keeps serving while models compute. Takes the same keyword options; concurrent calls
        on one instance are safe (the pipeline and store are shared under locks)."""
        return await asyncio.to_thread(self.query, question, **options)

    async def asearch(self, query: str, k: int | None = None, retriever: str | None = None) -> list[Hit]:
        """:meth:`search` in a worker thread, for asyncio servers."""
        return await asyncio.to_thread(self.search, query, k, retriever)

    def close(self) -> None:
        self.searcher.flush()  # indexes changed since they were last written
        if self._pipeline is not None and self._pipeline.cache is not None:
            self._pipeline.cache.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> BudgetMem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
