"""What ingest used and skipped: the skip report, the source digest and a printable summary."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mammo_common.errors import MammoError
from mammo_common.schema import SkippedFile


def reason_of(exc: MammoError) -> str:
    """The problem (and field and fix) of an error, without its path (kept separately)."""
    text = f"{exc.field}: {exc.problem}" if exc.field else exc.problem
    return f"{text.rstrip('.')}. Fix: {exc.fix}" if exc.fix else text


class IngestReport:
    """Collects every skipped file (path + reason) and every source file used.

    Paths are kept relative to the source root (POSIX separators) whenever they lie inside it.

    Args:
        root: The source folder.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._root_resolved = self.root.resolve()
        self.skipped: list[SkippedFile] = []
        self._used: dict[str, int] = {}

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the source root when inside it, else as given."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self._root_resolved).as_posix()
        except (ValueError, OSError, RuntimeError):
            pass
        try:  # a symbolic link inside the root that points outside it: name the link
            return p.absolute().relative_to(self.root.absolute()).as_posix()
        except ValueError:
            return str(path)

    def skip(self, path: str | Path, reason: str) -> None:
        """Record a file (or CSV row, written ``file.csv:line``) that could not be used."""
        text = path if isinstance(path, str) and ":" in path else self.rel(path)
        self.skipped.append(SkippedFile(path=str(text), reason=reason))

    def use(self, path: str | Path) -> None:
        """Record a source file that went into the store."""
        p = Path(path)
        try:
            size = p.stat().st_size
        except OSError:
            size = -1
        self._used[self.rel(p)] = size

    @property
    def used(self) -> list[str]:
        """Relative names of the files used, sorted."""
        return sorted(self._used)

    def digest(self) -> str:
        """SHA-256 over the sorted relative names and sizes of the files used."""
        h = hashlib.sha256()
        for name in sorted(self._used):
            h.update(f"{name}\t{self._used[name]}\n".encode())
        return "sha256:" + h.hexdigest()


def format_skipped(skipped: list[SkippedFile], limit: int = 20) -> str:
    """A short multi-line listing of skipped files and reasons."""
    lines = [f"  {s.path}: {s.reason}" for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more")
    return "\n".join(lines)
