"""Copy a store into PostgreSQL: namespaces (chunks, embeddings, sessions, archive), API
keys and the module cache. ``budgetmem migrate --from memory.db --to postgresql://...``.

- **Whole namespaces.** Each namespace is written in one transaction with its chunk ids,
  scores, access counts and archive kept, so a client's chunk ids stay valid.
- **Verified.** After each part is written it is read back from the target: row counts
  and a SHA-256 over every value (:meth:`NamespaceDump.checksum`) must equal the source's,
  or the copy stops with an error naming the part.
- **Resumable.** The target's ``migrations`` table records each part copied from this
  source (with its checksum). Running the same command again skips the parts recorded
  (the target may have taken new writes since), so an interrupted copy picks up where it
  stopped; a namespace that was written but not yet recorded is checked against the
  source and then recorded. A source namespace that changed after its copy is an error.

The source is only read; nothing is deleted anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetmem.errors import StoreError
from budgetmem.store.base import Store, describe, is_postgres, open_store
from budgetmem.store.keys import KeyStore

__all__ = ["MigrateReport", "migrate"]


@dataclass
class MigrateReport:
    source: str
    target: str
    copied: list[str] = field(default_factory=list)
    """Parts copied by this run (``namespace:NAME``, ``api_keys``, ``module_cache``)."""
    skipped: list[str] = field(default_factory=list)
    """Parts an earlier run had copied (checked again, not copied again)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "copied": self.copied, "skipped": self.skipped,
                "counts": self.counts, "checksums": self.checksums}  # fmt: skip


def _source_id(address: str | Path) -> str:
    return str(address) if is_postgres(str(address)) else os.path.abspath(os.fspath(address))


def _rows_digest(rows: Any) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def migrate(
    source: str | Path,
    target: str,
    *,
    cache: Any = None,
    log: Callable[[str], None] = lambda _: None,
) -> MigrateReport:
    """Copy ``source`` (a store address) into the PostgreSQL store at ``target``. ``cache``:
    a module cache to copy too (anything with ``export_rows()``), or None."""
    if not is_postgres(target):
        raise StoreError(f"migrate copies into PostgreSQL, not {target}", hint="--to postgresql://user@host:port/db")
    if _source_id(source) == _source_id(target):
        raise StoreError("the source and the target are the same store")
    src_id = _source_id(source)
    report = MigrateReport(describe(source), describe(target))
    with open_store(source, create=False) as src, open_store(target) as dst:
        done = _recorded(dst, src_id)
        names = [n.name for n in src.namespaces()]
        for i, name in enumerate(names, start=1):
            part = f"namespace:{name}"
            dump = src.dump_namespace(name)
            want = dump.checksum()
            report.counts[part], report.checksums[part] = dump.counts(), want
            if part in done:
                if done[part] != want:
                    raise StoreError(f"{part} changed in the source since it was copied",
                                     hint="forget it in the target and run again to copy it anew")  # fmt: skip
                # Copied and verified by an earlier run; the target may have moved on since.
                report.skipped.append(part)
                log(f"already copied {name} ({i}/{len(names)})")
                continue
            if dst.namespace(name) is None:
                dst.load_namespace(dump)
                report.copied.append(part)
                verb = "copied"
            else:
                report.skipped.append(part)
                verb = "already there"
            back = dst.dump_namespace(name)
            if back.counts() != dump.counts() or back.checksum() != want:
                raise StoreError(
                    f"{part} differs between source and target (counts {dump.counts()} vs {back.counts()})",
                    hint="the target's namespace was changed after an earlier copy; forget it there and run again",
                )
            _record(dst, src_id, part, len(dump.chunks) + len(dump.archive), want)
            log(f"{verb} {name}: {len(dump.chunks)} chunks, {len(dump.archive)} archived, "
                f"{len(dump.sessions)} sessions; checksum ok ({i}/{len(names)})")  # fmt: skip
        _copy_keys(src, dst, src_id, done, report, log)
        if cache is not None:
            _copy_cache(cache, dst, src_id, done, report, log)
    return report


def _copy_keys(src: Store, dst: Store, src_id: str, done: dict[str, str], report: MigrateReport,
               log: Callable[[str], None]) -> None:  # fmt: skip
    rows = KeyStore(src).export_rows()
    digest = _rows_digest(rows)
    report.counts["api_keys"], report.checksums["api_keys"] = {"keys": len(rows)}, digest
    if done.get("api_keys") == digest:
        report.skipped.append("api_keys")
        return
    target_keys = KeyStore(dst)
    target_keys.import_rows(rows)  # idempotent: ids already there are kept
    report.copied.append("api_keys")
    there = {r["id"]: r for r in target_keys.export_rows()}

    def same(a: dict[str, object], b: dict[str, object] | None) -> bool:  # last use is a hint, not data
        return b is not None and {k: v for k, v in a.items() if k != "last_used"} == {
            k: v for k, v in b.items() if k != "last_used"}

    if not all(same(r, there.get(r["id"])) for r in rows):
        raise StoreError("api_keys differ between source and target", hint="a key id exists in both with other values")
    _record(dst, src_id, "api_keys", len(rows), digest)
    log(f"api keys: {len(rows)}; checksum ok")


def _copy_cache(cache: Any, dst: Store, src_id: str, done: dict[str, str], report: MigrateReport,
                log: Callable[[str], None]) -> None:  # fmt: skip
    from budgetmem.store.pg_cache import PostgresModuleCache

    entries, sources = cache.export_rows()
    digest = _rows_digest([[list(e) for e in entries], [list(s) for s in sources]])
    report.counts["module_cache"] = {"entries": len(entries), "sources": len(sources)}
    report.checksums["module_cache"] = digest
    if done.get("module_cache") == digest:
        report.skipped.append("module_cache")
        return
    target = PostgresModuleCache(dst)
    report.copied.append("module_cache")
    target.import_rows([tuple(e) for e in entries], [tuple(s) for s in sources])
    have_entries, have_sources = target.export_rows()
    have = {k: (v, c) for k, v, c in have_entries}
    if any(have.get(k) != (v, c) for k, v, c in entries) or not set(map(tuple, sources)) <= set(map(tuple, have_sources)):
        raise StoreError("module cache entries differ between source and target")
    _record(dst, src_id, "module_cache", len(entries), digest)
    log(f"module cache: {len(entries)} entries; checksum ok")


def _recorded(dst: Store, src_id: str) -> dict[str, str]:
    with dst._read() as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT part, checksum FROM migrations WHERE source=%s AND done", (src_id,)).fetchall()
    return {str(p): str(c) for p, c in rows}


def _record(dst: Store, src_id: str, part: str, copied: int, checksum: str) -> None:
    with dst._tx() as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO migrations VALUES (%s, %s, TRUE, %s, %s) ON CONFLICT (source, part) DO UPDATE "
            "SET done = TRUE, copied = EXCLUDED.copied, checksum = EXCLUDED.checksum",
            (src_id, part, copied, checksum),
        )
