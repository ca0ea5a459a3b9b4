"""Helpers shared by every mammo command-line tool: error handling, logging and progress bars.

A command only parses, validates, calls one importable function and prints. Errors a user can fix
(:class:`~mammo_common.errors.MammoError`, invalid configs) end in one clear message and a
documented exit code, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mammo_common.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, MammoError

T = TypeVar("T")

err_console = Console(stderr=True, soft_wrap=True)
console = Console(soft_wrap=True)


#: The logger every mammo package writes its messages to (``logging.getLogger(LOGGER)``).
LOGGER = "mammo"


def setup_logging(verbose: bool = False) -> logging.Logger:
    """Send the ``mammo`` logger to stderr: INFO and up (DEBUG with ``verbose``).

    Libraries only log; a command-line tool calls this once, so training epochs, skipped
    cases and warnings reach the user as ``LEVEL mammo: message`` lines. Other libraries'
    loggers stay at WARNING (INFO with ``verbose``). Calling it again changes the level and
    never adds a second handler.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_mammo", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._mammo = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    return logger


def pydantic_message(exc: pydantic.ValidationError, source: str = "") -> str:
    """Turn a pydantic error into one readable paragraph naming every bad field."""
    parts = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    more = len(exc.errors()) - 8
    if more > 0:
        parts.append(f"... and {more} more")
    where = f"{source}: " if source else ""
    return where + "; ".join(parts)


def os_error_message(exc: OSError) -> str:
    """One paragraph for a file-system failure (permission, disk full, missing folder)."""
    where = exc.filename if exc.filename is not None else ""
    problem = exc.strerror or str(exc) or type(exc).__name__
    text = f"{where}: {problem}" if where else problem
    return (
        f"{text}. Fix: check that the path exists, is writable and that the disk has room; "
        "nothing half-written was kept"
    )


def handle_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a Typer command so user errors print a message and exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except MammoError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except pydantic.ValidationError as exc:
            err_console.print(
                f"[bold red]error:[/] invalid settings: {pydantic_message(exc)}", highlight=False
            )
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: no partial output was kept")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] {os_error_message(exc)}", highlight=False)
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper


def version_option(dist: str, version: str) -> Any:
    """A ``--version`` option for a Typer callback that prints ``dist version`` and exits."""

    def _print(value: bool) -> None:
        if value:
            console.print(f"{dist} {version}")
            raise typer.Exit()

    return typer.Option("--version", callback=_print, is_eager=True, help="Print version.")


PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Inference compute: float32 (default) or bfloat16 (~1.5-2x faster on CPUs with "
        "AVX-512 BF16/AMX and recent GPUs; probabilities move by ~0.01-0.03).",
    ),
]
"""The ``--precision`` option of every ``predict`` command (``float32`` | ``bfloat16``)."""

FoldBatchNormOpt = Annotated[
    bool | None,
    typer.Option(
        "--fold-batchnorm/--no-fold-batchnorm",
        help="Fold BatchNorms into the convolutions before them (same results, faster; on).",
    ),
]
"""The ``--fold-batchnorm/--no-fold-batchnorm`` option of every ``predict`` command."""


ExportOutOpt = Annotated[
    Path, typer.Option("--out", help="Export folder to write (a TF SavedModel).")
]
"""The ``--out`` option of every ``export`` command."""

ExportFormatOpt = Annotated[
    str, typer.Option("--format", help="savedmodel, or onnx (SavedModel + model.onnx).")
]
"""The ``--format`` option of every ``export`` command (default ``savedmodel``)."""

ExportOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing export folder.")
]
"""The ``--overwrite`` option of every ``export`` command (default off)."""


def progress_enabled() -> bool:
    """Progress bars show on a terminal unless ``MAMMO_NO_PROGRESS`` is set."""
    return sys.stderr.isatty() and not os.environ.get("MAMMO_NO_PROGRESS")


_live_bars = 0


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a Rich progress bar on a terminal, or plainly otherwise.

    Inside another ``track`` loop (a stage's bar around a helper that has its own) the inner
    loop runs plainly: one bar on screen at a time.
    """
    global _live_bars
    if not progress_enabled() or _live_bars:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    _live_bars += 1
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)
    finally:
        _live_bars -= 1
