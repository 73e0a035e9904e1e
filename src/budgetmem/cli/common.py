"""Helpers shared by the CLI commands: settings from flags, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from budgetmem.settings import Settings, load_settings

__all__ = ["settings_from", "print_json", "add_store_args"]


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(args.config)
    if args.models_dir:
        overrides["models_dir"] = Path(args.models_dir)
    return settings.replace(**overrides)


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, metavar="FILE", help="store file (SQLite)")
    p.add_argument("--namespace", required=True, metavar="NAME", help="whose memory: a user or agent id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
