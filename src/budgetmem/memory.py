"""``BudgetMem``: the Python entry point. One store file, one namespace, explicit settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from budgetmem.encoder import Encoder
from budgetmem.errors import InputError
from budgetmem.ingest import History, Session, Turn, load_histories
from budgetmem.ingest.ingest import IngestReport, ingest_histories
from budgetmem.retrieval import Hit, Searcher
from budgetmem.settings import Settings
from budgetmem.store import Store

__all__ = ["BudgetMem"]


class BudgetMem:
    """Memory for one agent or user (a namespace) in a store file.

    >>> mem = BudgetMem("memory.db", namespace="alice")
    >>> mem.add("examples/conversation.json")          # or mem.add_session([...])
    >>> hits = mem.search("When did Alice move to Lisbon?", k=5)
    """

    def __init__(
        self,
        store: str | Path | Store,
        namespace: str = "default",
        *,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.store = store if isinstance(store, Store) else Store(store)
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

    def add(self, path: str | Path, *, fmt: str = "auto", progress: bool = False) -> IngestReport:
        """Ingest a file or folder. A file with several histories gives ``namespace/<name>`` each."""
        return self.add_histories(load_histories(path, fmt), progress=progress)

    def add_histories(self, histories: Sequence[History], *, progress: bool = False) -> IngestReport:
        return ingest_histories(
            self.store, self.namespace, histories, self.encoder, self.settings.chunking.max_tokens, progress=progress
        )

    def add_session(
        self,
        turns: Sequence[str | tuple[str, str]],
        *,
        session_id: str,
        date_time: str | None = None,
        source: str = "api",
    ) -> IngestReport:
        """Append one chat session: turns are ``text`` or ``(speaker, text)``."""
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

    def search(self, query: str, k: int | None = None, retriever: str | None = None) -> list[Hit]:
        return self.searcher.search(self.namespace, query, k=k, retriever=retriever)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> BudgetMem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
