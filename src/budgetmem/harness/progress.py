"""Progress and logging of a run: one-line messages on stderr, and a progress bar that the
caller can turn off (tests, benchmarks, ``--no-progress``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Log", "stderr_log", "Progress"]

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """A tqdm bar, or nothing. ``postfix`` is shown beside the count when given."""

    def __init__(self, enabled: bool, total: int, initial: int = 0, *, unit: str, desc: str) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def update(self, step: int = 1, postfix: str | None = None) -> None:
        if self._bar is None:
            return
        if postfix is not None:
            self._bar.set_postfix_str(postfix, refresh=False)
        if step:
            self._bar.update(step)
        else:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
