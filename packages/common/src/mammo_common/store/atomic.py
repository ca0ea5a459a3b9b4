"""Atomic outputs: write under a hidden temporary name, then rename into place.

A reader therefore sees a store (or file) whole or not at all, and an interrupted command leaves
at most a hidden ``.<name>.tmp-<pid>-<token>`` folder, which the next run removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mammo_common.errors import MammoError

TMP_MARK = ".tmp-"
#: Mark of a replaced output awaiting deletion (see :func:`commit`).
OLD_MARK = ".old-"


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden path next to ``path`` for staging its replacement."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(path: Path) -> None:
    """Delete staging (and replaced) paths left next to ``path`` by interrupted runs.

    Two runs writing the same output at the same time are not supported: the later one removes
    the earlier one's staging folder.
    """
    parent = path.parent
    if not parent.is_dir():
        return
    for mark in (TMP_MARK, OLD_MARK):
        prefix = f".{path.name}{mark}"
        for entry in parent.iterdir():
            if entry.name.startswith(prefix):
                _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def wait_for_zarr_io(timeout: float = 5.0) -> None:
    """Wait until Zarr's background IO loop has no task left (or ``timeout`` passes).

    Zarr v3 runs its writes on an event loop in another thread. When Ctrl-C interrupts the main
    thread while it waits for a write, that write still completes afterwards, and would
    re-create folders of a staging store that was just removed.
    """
    try:
        from zarr.core import sync as zarr_sync
    except ImportError:  # pragma: no cover - zarr is a dependency
        return
    loop = zarr_sync.loop[0]
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def settle() -> None:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(settle(), loop).result(timeout + 1.0)


def discard(path: Path) -> None:
    """Remove a staging path for good, even while interrupted writes are still landing."""
    wait_for_zarr_io()
    for _ in range(3):
        _remove(path)
        time.sleep(0.02)
        if not path.exists():
            return


def check_output_path(path: Path, *, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to write over an existing output (unless asked) or over one of the inputs."""
    resolved = path.resolve()
    for source in inputs:
        src = Path(source).resolve()
        if resolved == src or src in resolved.parents or resolved in src.parents:
            raise MammoError(
                "the output would overwrite or sit inside an input",
                path=path,
                fix=f"choose an output outside {source}",
            )
    if path.exists() and not overwrite:
        raise MammoError(
            "the output already exists",
            path=path,
            fix="choose another output path, delete it, or pass --overwrite",
        )


def commit(tmp: Path, final: Path) -> None:
    """Move a finished staging path into place, replacing ``final`` if it exists."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}{OLD_MARK}{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a staging path; on success rename it to ``final``, on any error remove it.

    Example:
        >>> with atomic_path("out.zarr") as tmp:  # doctest: +SKIP
        ...     write_everything(tmp)
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = temporary_sibling(final)
    try:
        yield tmp
    except BaseException:
        discard(tmp)
        raise
    commit(tmp, final)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON (sorted keys, indented, trailing newline) atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
