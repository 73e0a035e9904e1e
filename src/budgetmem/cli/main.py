"""The ``budgetmem`` command. Errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from budgetmem.errors import BudgetMemError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other budgetmem error)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> object:
        # Python 3.11's argparse drops "--" from an option's words even when it is the value
        # itself (--from=--), which left a list where a string belongs and a TypeError later.
        # Such a value is the string "--" (what newer Pythons do).
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    from budgetmem.cli import (
        ask_cmd,
        complete_cmd,
        compress_cmd,
        doctor_cmd,
        eval_cmd,
        forget_cmd,
        frontier_cmd,
        ingest_cmd,
        keys_cmd,
        mcp_cmd,
        memory_cmd,
        migrate_cmd,
        models_cmd,
        report_cmd,
        search_cmd,
        serve_cmd,
        train_cmd,
        train_writer_cmd,
    )

    parser = _Parser(
        prog="budgetmem", description="Runtime memory for LLM agents with explicit performance-cost control."
    )
    parser.add_argument("--version", action="version", version=f"budgetmem {_version()}")
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    parser.add_argument("--models-dir", metavar="DIR", help="where embedded models live (default $BUDGETMEM_MODELS_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    doctor_cmd.register(sub)
    models_cmd.register(sub)
    ingest_cmd.register(sub)
    memory_cmd.register(sub)
    forget_cmd.register(sub)
    serve_cmd.register(sub)
    keys_cmd.register(sub)
    search_cmd.register(sub)
    ask_cmd.register(sub)
    complete_cmd.register(sub)
    compress_cmd.register(sub)
    eval_cmd.register(sub)
    report_cmd.register(sub)
    train_cmd.register(sub)
    frontier_cmd.register(sub)
    train_writer_cmd.register(sub)
    mcp_cmd.register(sub)
    migrate_cmd.register(sub)
    return parser


def _version() -> str:
    from budgetmem import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: return their status
        return int(exc.code or 0)
    try:
        from budgetmem.cli.common import resolve_store

        resolve_store(args)
        return int(args.run(args) or 0)
    except BudgetMemError as exc:
        print(f"budgetmem: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("budgetmem: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # The system refused a file operation on a path the user gave, in a place the
        # library does not check beforehand: a name longer than the filesystem allows (even
        # Path.exists() raises then), a device that is full. Still one line, not a traceback.
        print(f"budgetmem: error: {_os_error(exc)}", file=sys.stderr)
        return 2


def _os_error(exc: OSError) -> str:
    where = str(exc.filename) if exc.filename is not None else ""
    if len(where) > 120:
        where = where[:60] + "..." + where[-40:]
    reason = exc.strerror or type(exc).__name__
    return " ".join(f"{reason}: {where}".split()) if where else " ".join(reason.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
