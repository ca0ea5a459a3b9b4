"""Pydantic model of ``splits.json``: a fixed test set and k patient-grouped folds.

The file carries, besides the split itself, every case's patient (``patients``) and
label (``labels``), so that leakage can be checked from the file alone: loading a file
validates that no case sits in two places, that each fold's ``train`` and ``valid``
partition the non-test cases, that the ``valid`` sets of the folds partition the
non-test cases, and that no patient crosses test/non-test or a fold's train/valid.

Folds are numbered from 1 (``index`` 1..k), as the reference's ``train01``..``train05``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mammo_common.errors import InputFileError
from mammo_common.schema.version import SCHEMA_VERSION, is_supported

__all__ = [
    "SPLITS_SCHEMA_VERSION",
    "Fold",
    "Splits",
    "SplitsFileError",
    "SplitsNotFoundError",
]

SPLITS_SCHEMA_VERSION = SCHEMA_VERSION
"""The ``schema_version`` written (the data contract's); any supported major version reads."""

_FIX = "regenerate the file with `mammo split` (mammo_common.splits.make_splits)"
_SHOW = 5


class SplitsFileError(InputFileError, ValueError):
    """A splits file that cannot be read or does not validate; the message names the file."""


class SplitsNotFoundError(SplitsFileError, FileNotFoundError):
    """The splits file does not exist."""


def _ids(ids: Iterable[str]) -> str:
    items = sorted(ids)
    shown = ", ".join(repr(i) for i in items[:_SHOW])
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"[{shown}]{more}"


def _duplicates(ids: list[str]) -> set[str]:
    seen: set[str] = set()
    dup: set[str] = set()
    for i in ids:
        if i in seen:
            dup.add(i)
        seen.add(i)
    return dup


class Fold(BaseModel):
    """One cross-validation fold.

    Attributes:
        index: Fold number, 1-based (fold 1 = the reference's ``train01``).
        train: Case ids to train on.
        valid: Case ids to validate on (held out of this fold's training).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=1, description="1-based fold number (train01 = 1)")
    train: list[str]
    valid: list[str]


class Splits(BaseModel):
    """Content of ``splits.json``.

    Attributes:
        kind: Always ``"splits"``.
        schema_version: Data-contract version (``"major.minor"``); readers accept the
            supported major versions.
        seed: Seed the split was drawn with.
        n_folds: Number of folds (>= 2).
        test_fraction: Requested fraction of cases in the test set (0 = no test set).
        group_by: Case attribute that groups cases (``"patient_id"``).
        stratify_by: Case attribute used for stratification (``"pathology"``).
        test: Case ids of the fixed test set.
        folds: The folds, ``index`` 1..n_folds in order.
        patients: Case id -> patient id, for every case in the file.
        labels: Case id -> stratification label (e.g. pathology), for every case.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["splits"] = "splits"
    schema_version: str = SPLITS_SCHEMA_VERSION
    seed: int
    n_folds: int = Field(ge=2)
    test_fraction: float = Field(ge=0.0, lt=1.0)
    group_by: str = "patient_id"
    stratify_by: str = "pathology"
    test: list[str]
    folds: list[Fold]
    patients: dict[str, str]
    labels: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = self._problems()
        if problems:
            raise ValueError("invalid splits:\n  - " + "\n  - ".join(problems) + f"\n  fix: {_FIX}")
        return self

    def _problems(self) -> list[str]:
        if not is_supported(self.schema_version):
            msg = (
                f"schema_version: {self.schema_version!r} is not supported (this mammo-common "
                f"writes {SPLITS_SCHEMA_VERSION!r}); upgrade mammo-common or regenerate the file"
            )
            return [msg]
        problems: list[str] = []
        cases = set(self.patients)
        if set(self.labels) != cases:
            diff = set(self.labels) ^ cases
            problems.append(
                f"labels: keys differ from patients keys for {_ids(diff)}; every case needs "
                "both a patient and a label"
            )
        if len(self.folds) != self.n_folds:
            problems.append(f"folds: {len(self.folds)} folds but n_folds is {self.n_folds}")
        indices = [f.index for f in self.folds]
        if indices != list(range(1, len(self.folds) + 1)):
            problems.append(f"folds: index must be 1, 2, ... in order (1-based), got {indices}")

        lists = {"test": self.test}
        for k, fold in enumerate(self.folds):
            lists[f"folds[{k}].train"] = fold.train
            lists[f"folds[{k}].valid"] = fold.valid
        for name, ids in lists.items():
            if dup := _duplicates(ids):
                problems.append(f"{name}: repeated case ids {_ids(dup)}")
            if unknown := set(ids) - cases:
                problems.append(
                    f"{name}: case ids {_ids(unknown)} are missing from patients/labels"
                )

        test = set(self.test)
        rest = cases - test
        test_patients = {self.patients[c] for c in test if c in self.patients}
        rest_patients = {self.patients[c] for c in rest}
        if shared := test_patients & rest_patients:
            where = {c for c in rest if self.patients[c] in shared}
            problems.append(
                f"test: patients {_ids(shared)} also have non-test cases {_ids(where)}; "
                "a patient's cases must all be in the test set or all outside it"
            )

        valid_seen: dict[str, int] = {}
        for k, fold in enumerate(self.folds):
            train, valid = set(fold.train), set(fold.valid)
            if both := train & valid:
                problems.append(f"folds[{k}]: cases {_ids(both)} are in both train and valid")
            if in_test := (train | valid) & test:
                problems.append(f"folds[{k}]: test cases {_ids(in_test)} appear in the fold")
            if missing := rest - train - valid:
                problems.append(
                    f"folds[{k}]: non-test cases {_ids(missing)} are in neither train nor valid"
                )
            train_p = {self.patients[c] for c in train if c in self.patients}
            valid_p = {self.patients[c] for c in valid if c in self.patients}
            if shared := train_p & valid_p:
                problems.append(
                    f"folds[{k}]: patients {_ids(shared)} have cases in both train and valid"
                )
            for c in valid:
                if c in valid_seen:
                    problems.append(
                        f"folds[{k}].valid: case {c!r} is also in folds[{valid_seen[c]}].valid; "
                        "validation sets must not overlap"
                    )
                    break
                valid_seen[c] = k
        if self.folds and (never := rest - set(valid_seen)):
            problems.append(
                f"folds: non-test cases {_ids(never)} are in no fold's valid set; the valid "
                "sets must cover every non-test case"
            )
        return problems

    # ------------------------------------------------------------------ helpers
    @property
    def cases(self) -> list[str]:
        """All case ids, sorted."""
        return sorted(self.patients)

    @property
    def non_test(self) -> list[str]:
        """Case ids outside the test set, sorted."""
        test = set(self.test)
        return sorted(c for c in self.patients if c not in test)

    def fold(self, index: int) -> Fold:
        """Returns fold ``index`` (1-based).

        Raises:
            KeyError: If there is no such fold.
        """
        for fold in self.folds:
            if fold.index == index:
                return fold
        raise KeyError(f"no fold {index}; folds are numbered 1..{self.n_folds} (1-based)")

    # ------------------------------------------------------------------ IO
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Splits:
        """Reads and validates a splits file.

        Raises:
            FileNotFoundError: If the file does not exist (message names it and the fix).
            SplitsFileError: If it is a folder, not text, not valid JSON or does not validate.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SplitsNotFoundError(
                f"splits file {str(path)!r} does not exist; create it with `mammo split`"
            ) from None
        except (IsADirectoryError, NotADirectoryError, UnicodeDecodeError):
            what = "is a folder" if path.is_dir() else "is not a JSON text file"
            raise SplitsFileError(f"splits file {str(path)!r} {what}; {_FIX}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SplitsFileError(
                f"splits file {str(path)!r} is not valid JSON (line {exc.lineno}, column "
                f"{exc.colno}: {exc.msg}); {_FIX}"
            ) from None
        if isinstance(data, dict) and data.get("kind", "splits") != "splits":
            raise SplitsFileError(
                f"{str(path)!r} holds kind {data.get('kind')!r}, not 'splits'; pass a splits "
                "file made by `mammo split`"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SplitsFileError(f"splits file {str(path)!r} is invalid:\n{exc}") from None

    def to_json(self) -> str:
        """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the file atomically (temporary file in the same folder + ``os.replace``).

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
