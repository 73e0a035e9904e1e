"""Reading the JSON and TOML in files a user names, with every way it fails as an InputError.

A syntax error is the failure everyone handles; the parsers have others. ``json.loads``
raises ``RecursionError`` on arrays nested deeper than it recurses and a plain
``ValueError`` on an integer longer than ``int()`` converts (4,300 digits by default);
``tomllib`` recurses on nested arrays too; and a file that is not UTF-8 fails before any
parser runs. Each of these is one line for the CLI to print, never a traceback.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError

__all__ = ["decode_json", "decode_toml", "read_user_text"]


def decode_json(text: str, where: str, *, lines: bool = True) -> Any:
    """``json.loads(text)``; ``where`` names the file (or line) in the error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} column {exc.colno}" if lines else f"column {exc.colno}"
        raise InputError(f"malformed JSON in {where}: {exc.msg} at {at}") from None
    except RecursionError:
        raise InputError(f"malformed JSON in {where}: nested too deeply to read") from None
    except ValueError as exc:
        raise InputError(f"malformed JSON in {where}: a number too long to read ({str(exc).split(':')[0]})") from None


def decode_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads(text)``; ``where`` names the file in the error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{where} is not valid TOML: nested too deeply to read") from None


def read_user_text(path: Path, what: str) -> str:
    """The text of ``path``, the user's ``what`` (e.g. "split file"), read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
