"""Errors that carry what a user needs to act: the file, the field, the problem and the fix.

Every command-line entry point catches :class:`MammoError` and prints its message instead of a
traceback, exiting with :attr:`MammoError.exit_code`.
"""

from __future__ import annotations

from pathlib import Path

#: Exit codes used by all ``mammo`` command-line tools (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class MammoError(Exception):
    """A user-facing error: names the file, the field, what is wrong and how to fix it.

    Args:
        problem: What is wrong, in one sentence.
        path: The file or store concerned, if any.
        field: The field, column, array or attribute concerned, if any.
        fix: What the user should do about it.
        exit_code: The process exit code a CLI should use.
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.field = field
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The full message: ``path: field: problem. Fix: fix``.

        A problem spanning several lines (e.g. a list of skipped files, each with its own fix)
        gets its fix on a line of its own.
        """
        where = ": ".join(p for p in (self.path, self.field) if p)
        text = f"{where}: {self.problem}" if where else self.problem
        if self.fix:
            if "\n" in self.problem:
                text = f"{text.rstrip()}\nFix: {self.fix}"
            else:
                text = f"{text.rstrip('.')}. Fix: {self.fix}"
        return text


class StoreError(MammoError):
    """A Zarr store is missing, of the wrong kind or version, or internally inconsistent."""


class NoGroundTruthError(StoreError):
    """A store holds no ground truth, so an evaluation has nothing to compare against.

    Raised by the ``evaluate`` commands on stores made from unlabelled images (``mammo ingest
    --format images``): predicting on them is fine, scoring them is not. Build one with
    :meth:`missing` so that every stage words it the same way.
    """

    @classmethod
    def missing(
        cls,
        what: str,
        *,
        needs: str,
        path: str | Path | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> NoGroundTruthError:
        """The error for a store that lacks ``what``.

        Args:
            what: What the store lacks, e.g. ``"ground-truth mass masks (mass_masks)"``.
            needs: What the evaluation compares against, e.g. ``"mass masks"``.
            path: The store.
            field: The array or attribute concerned.
            fix: What to do instead (by default: evaluate a labelled store; for unlabelled
                images run predict and ``mammo results``).

        Returns:
            The error, to raise.
        """
        return cls(
            f"has no {what}: nothing to compare against; evaluation needs ground truth {needs}",
            path=path,
            field=field,
            fix=fix
            or (
                "evaluate a store ingested with labels (ROI masks, pathology); for unlabelled "
                "images run predict and read the findings with `mammo results`"
            ),
        )


class InputFileError(MammoError):
    """An input file (DICOM, CSV, XML, image) cannot be used."""


class ConfigError(MammoError):
    """A configuration or parameter file is invalid."""


class ModelFolderError(MammoError):
    """A model folder is missing, incomplete or incompatible."""
