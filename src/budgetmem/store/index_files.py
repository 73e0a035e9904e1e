"""Where a store keeps its search indexes on disk, and how they are written and destroyed.

Beside ``memory.db`` lies ``memory.db.indexes/``: per namespace a JSON header
(``<stem>.json``) and data files (``<stem>.<part>``), the stem being a hash of the
namespace name (names may hold any character). The header names the namespace, the
store's version of it that the data matches, and a BLAKE2b digest per data file: a file
whose digest does not match is corrupt and is rebuilt, never trusted.

Writes are atomic (a temporary file, fsync, rename), so a reader never sees half a file.
The file replaced is first overwritten with zeros: an index holds vectors and term counts
of chunks, and a forgotten chunk's must not survive in an old copy (see
:mod:`budgetmem.store.wipe` for the same concern inside the SQLite file).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["index_dir", "namespace_stem", "digest", "shred", "write_atomic", "read_header", "write_header", "drop_namespace"]

FORMAT = 1


def index_dir(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".indexes")


def namespace_stem(namespace: str) -> str:
    return hashlib.blake2b(namespace.encode("utf-8"), digest_size=12).hexdigest()


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def shred(path: Path) -> None:
    """Overwrite a file with zeros, flush it to disk, and unlink it (if it exists)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    try:
        with open(path, "r+b") as f:
            block = b"\0" * (1 << 20)
            left = size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
            f.flush()
            os.fsync(f.fileno())
    finally:
        path.unlink(missing_ok=True)


def write_atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` fills a temporary file, which then replaces ``path`` (the old
    content shredded first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        shred(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def header_path(store_path: Path, namespace: str) -> Path:
    return index_dir(store_path) / f"{namespace_stem(namespace)}.json"


def data_path(store_path: Path, namespace: str, part: str) -> Path:
    return index_dir(store_path) / f"{namespace_stem(namespace)}.{part}"


def read_header(store_path: Path, namespace: str) -> dict[str, Any] | None:
    """The header if it is readable, of this format, and for this namespace; else None."""
    try:
        h = json.loads(header_path(store_path, namespace).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(h, dict) or h.get("format") != FORMAT or h.get("namespace") != namespace:
        return None
    return h


def write_header(store_path: Path, namespace: str, header: Mapping[str, Any]) -> None:
    body = json.dumps({"format": FORMAT, "namespace": namespace, **header}, indent=1)
    write_atomic(header_path(store_path, namespace), lambda p: p.write_text(body, encoding="utf-8"))


def drop_namespace(store_path: Path, namespace: str) -> None:
    """Shred every index file of a namespace (the header first, so no reader trusts the rest)."""
    d = index_dir(store_path)
    if not d.exists():
        return
    stem = namespace_stem(namespace)
    shred(d / f"{stem}.json")
    for p in sorted(d.glob(f"{stem}.*")):
        shred(p)
