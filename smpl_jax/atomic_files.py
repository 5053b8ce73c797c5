"""Atomic writes: a file (or folder) appears under its name complete, or not at all.

Everything is written to a unique temporary (``.NAME.PID.HEX.tmp``) in the target's own
folder, so that the final `os.replace` stays on one file system and is atomic, and the
temporary is removed on any failure. Files are opened normally (not with `mkstemp`, whose
0600 would make them private), so their permissions follow the umask. `hkmr_jax` writes
its outputs through this module too (one copy of the idea; `smpl_jax` needs nothing else).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO


def _tag() -> str:
    return f"{os.getpid()}.{uuid.uuid4().hex[:8]}"


def _temporary(path: Path, tag: str | None = None) -> Path:
    """A unique name beside `path` (hidden; `tag` shared by the files of one write)."""
    tag = tag or _tag()
    return path.with_name(f".{path.name}.{tag}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: renamed into place when the block ends
    without an error; removed otherwise (an existing `path` is then left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "xb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path` as a `Path`."""
    with writing(path) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns `path` as a `Path`."""
    return write_bytes(path, text.encode("utf-8"))


def write_files(folder, files: Mapping[str, bytes]) -> list[Path]:
    """Write several files into `folder`, all or nothing: every one to a temporary name,
    then each renamed into place; on any failure the temporaries and the files already
    renamed are removed. Returns the written paths, in the order of `files`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = _tag()
    temps = {_temporary(folder / name, tag): folder / name for name in files}
    done: list[Path] = []
    try:
        for tmp, data in zip(temps, files.values(), strict=True):
            with open(tmp, "xb") as f:
                f.write(data)
        for tmp, final in temps.items():
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for path in [*temps, *done]:
            path.unlink(missing_ok=True)
        raise
    return done


@contextlib.contextmanager
def writing_folder(path) -> Iterator[Path]:
    """A temporary path beside the folder `path`, not yet created: make and fill it in
    the block; it is then renamed to `path` (`os.replace`, which fails when `path` has
    become a non-empty folder meanwhile). Removed with its contents on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


__all__ = ["write_bytes", "write_files", "write_text", "writing", "writing_folder"]
