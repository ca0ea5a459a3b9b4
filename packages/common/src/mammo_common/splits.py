"""Seeded, patient-grouped, pathology-stratified test set and cross-validation folds.

:func:`make_splits` draws a fixed test set and ``n_folds`` folds such that all cases of a
patient land together, and each fold (and the test set) holds about the same share of
each patient stratum. A patient's stratum is ``"malignant"`` if any of its cases is
malignant, else ``"benign"`` if any is benign, else ``"none"`` (pathology strings are
matched case-insensitively by prefix, so ``BENIGN_WITHOUT_CALLBACK`` is benign).

Both parts are drawn by scikit-learn's
:class:`~sklearn.model_selection.StratifiedGroupKFold` (``shuffle=True``,
``random_state=seed``), with every case labelled by its patient's stratum and grouped by
its patient (deterministic for the seed, independent of input order):

1. Cases are sorted by id; the splitter sees them in that order (its groups are the sorted
   patient ids).
2. Test set (``test_fraction > 0``): the cases are split into ``K`` stratified parts,
   ``K >= 2`` the number whose ``1 / K`` is closest to ``test_fraction`` (the smaller on a
   tie: 0.2 gives 5, 0.25 gives 4, 0.4 gives 3), and the test set is the part whose share
   of the cases is closest to ``test_fraction`` (the first on a tie). Above 0.5 the same
   is done with ``1 - test_fraction`` and the test set is every part but that one (0.7:
   two of three parts). So the test share is about ``1 / K`` (or ``1 - 1 / K``), exactly
   0.2 for the default. Only parts that leave at least ``n_folds`` patients for the folds
   qualify; when none does, ``K`` is raised (lowered above 0.5) until one does. ``K`` is
   at most the number of patients.
3. Folds: ``StratifiedGroupKFold(n_folds)`` over the remaining cases; its ``k``-th test
   part is fold ``k + 1``'s valid set.

Where every stratum has fewer cases than there are parts to draw, stratifying is
impossible and the parts are drawn with one stratum for all (grouped and seeded, balanced
by size only). scikit-learn >= 1.8 is required: before it, ``shuffle=True`` mixed up the
groups and the folds were not stratified.

Folds are numbered from 1. Fold ``k``'s valid set is its share; its train set is every
other non-test case.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import StratifiedGroupKFold

from mammo_common.schema.splits import SPLITS_SCHEMA_VERSION, Fold, Splits

__all__ = ["fold_cases", "make_splits", "patient_stratum"]

Part = Literal["train", "valid", "test"]


def _case_stratum(label: str) -> str:
    text = str(label).strip().upper()
    if text.startswith("MALIGNANT"):
        return "malignant"
    if text.startswith("BENIGN"):
        return "benign"
    return "none"


def patient_stratum(labels: Sequence[str]) -> str:
    """Stratum of a patient from its cases' pathology labels.

    Args:
        labels: Pathology of each of the patient's cases (e.g. ``MALIGNANT``, ``BENIGN``,
            ``BENIGN_WITHOUT_CALLBACK``, ``unknown``).

    Returns:
        ``"malignant"`` if any case is malignant, else ``"benign"`` if any is benign,
        else ``"none"``.
    """
    strata = {_case_stratum(label) for label in labels}
    for stratum in ("malignant", "benign"):
        if stratum in strata:
            return stratum
    return "none"


def _validate_inputs(
    case_ids: Sequence[str], patient_ids: Sequence[str], strata: Sequence[str]
) -> None:
    if not (len(case_ids) == len(patient_ids) == len(strata)):
        raise ValueError(
            f"case_ids, patient_ids and strata must have the same length, got "
            f"{len(case_ids)}, {len(patient_ids)} and {len(strata)}"
        )
    for name, values in (("case_ids", case_ids), ("patient_ids", patient_ids)):
        bad = [v for v in values if not isinstance(v, str) or not v]
        if bad:
            raise ValueError(f"{name} must be non-empty strings, got {bad[:5]!r}")
    counts: dict[str, int] = defaultdict(int)
    for c in case_ids:
        counts[c] += 1
    dup = sorted(c for c, n in counts.items() if n > 1)
    if dup:
        raise ValueError(f"case_ids are not unique: {dup[:5]!r}; each case needs its own id")


def _group_kfold(
    strata: NDArray[np.str_], groups: NDArray[np.str_], n_splits: int, seed: int
) -> list[NDArray[np.intp]]:
    """The ``n_splits`` test parts (indices) of StratifiedGroupKFold, in its order.

    Falls back to one stratum for all when every stratum has fewer members than
    ``n_splits`` (scikit-learn refuses to stratify then).
    """
    _, counts = np.unique(strata, return_counts=True)
    y = strata if counts.max() >= n_splits else np.zeros(strata.size, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class in y has only N members": best-effort stratification
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [test for _, test in splitter.split(np.zeros(strata.size), y, groups)]


def _nearest_k(target: float) -> int:
    """The ``K >= 2`` whose ``1 / K`` is closest to ``target`` in (0, 0.5] (smaller on ties)."""
    low = max(2, int(np.floor(1.0 / target)))
    return min((low, low + 1), key=lambda k: (abs(1.0 / k - target), k))


def _hold_out(
    strata: NDArray[np.str_],
    groups: NDArray[np.str_],
    test_fraction: float,
    n_folds: int,
    seed: int,
) -> NDArray[np.intp] | None:
    """Indices of the test cases (see the module docstring), or None if none qualifies."""
    n_patients = len(set(groups.tolist()))
    one_part = test_fraction <= 0.5
    target = test_fraction if one_part else 1.0 - test_fraction
    k = min(_nearest_k(target), n_patients)
    tried: set[int] = set()
    while 2 <= k <= n_patients and k not in tried:
        tried.add(k)
        parts = _group_kfold(strata, groups, k, seed)
        best: tuple[float, int] | None = None
        for i, part in enumerate(parts):
            patients_in = len(set(groups[part].tolist()))
            left = n_patients - patients_in if one_part else patients_in
            if patients_in == 0 or left < n_folds:
                continue
            gap = abs(part.size / strata.size - target)
            if best is None or gap < best[0]:
                best = (gap, i)
        if best is not None:
            part = parts[best[1]]
            if one_part:
                return np.sort(part)
            return np.setdiff1d(np.arange(strata.size), part)
        k = k + 1 if one_part else k - 1
    return None


def make_splits(
    case_ids: Sequence[str],
    patient_ids: Sequence[str],
    strata: Sequence[str],
    *,
    n_folds: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """Draws a patient-grouped, stratified test set and ``n_folds`` folds.

    Args:
        case_ids: Unique case ids.
        patient_ids: Patient of each case (cases of a patient stay together).
        strata: Pathology of each case (``MALIGNANT``, ``BENIGN``, ... or anything else,
            which counts as ``none``); stored in ``Splits.labels``.
        n_folds: Number of cross-validation folds (>= 2).
        test_fraction: Target fraction of cases in the test set, in [0, 1); 0 makes no
            test set.
        seed: Seed; the same inputs (in any order) and seed give the same splits.

    Returns:
        A validated :class:`~mammo_common.schema.splits.Splits` with sorted id lists.

    Raises:
        ValueError: On inconsistent inputs, ``n_folds < 2``, ``test_fraction`` outside
            [0, 1), or too few patients (at least ``n_folds`` outside the test set, and
            ``n_folds + 1`` in total when there is a test set).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    _validate_inputs(case_ids, patient_ids, strata)

    rows = sorted(zip(case_ids, patient_ids, (str(s) for s in strata), strict=True))
    cases_of: dict[str, list[str]] = defaultdict(list)
    labels_of: dict[str, list[str]] = defaultdict(list)
    for case, patient, label in rows:
        cases_of[patient].append(case)
        labels_of[patient].append(label)
    patients = sorted(cases_of)
    needed = n_folds + (1 if test_fraction > 0 else 0)
    if len(patients) < needed:
        raise ValueError(
            f"{len(patients)} patients cannot fill {n_folds} folds"
            + (" and a test set" if test_fraction > 0 else "")
            + f" (need at least {needed}); lower n_folds"
            + (" or set test_fraction=0" if test_fraction > 0 else "")
        )

    stratum_of = {p: patient_stratum(labels_of[p]) for p in patients}
    case_arr = np.array([case for case, _, _ in rows])
    group_arr = np.array([patient for _, patient, _ in rows])
    strata_arr = np.array([stratum_of[patient] for _, patient, _ in rows])

    test_idx = np.zeros(0, dtype=np.intp)
    if test_fraction > 0:
        held = _hold_out(strata_arr, group_arr, test_fraction, n_folds, seed)
        if held is None:
            raise ValueError(
                f"after drawing a test set of about {test_fraction:g} of the cases, fewer "
                f"than {n_folds} of the {len(patients)} patients remain for {n_folds} folds; "
                "lower test_fraction or n_folds"
            )
        test_idx = held
    rest = np.setdiff1d(np.arange(case_arr.size), test_idx)
    parts = _group_kfold(strata_arr[rest], group_arr[rest], n_folds, seed)
    if any(part.size == 0 for part in parts):
        raise ValueError(
            f"StratifiedGroupKFold left a fold empty ({len(set(group_arr[rest].tolist()))} "
            f"patients for {n_folds} folds); lower n_folds"
        )

    non_test = sorted(case_arr[rest].tolist())
    folds = []
    for k, part in enumerate(parts, start=1):
        valid = sorted(case_arr[rest][part].tolist())
        valid_set = set(valid)
        folds.append(Fold(index=k, train=[c for c in non_test if c not in valid_set], valid=valid))
    return Splits(
        schema_version=SPLITS_SCHEMA_VERSION,
        seed=seed,
        n_folds=n_folds,
        test_fraction=float(test_fraction),
        test=sorted(case_arr[test_idx].tolist()),
        folds=folds,
        patients={case: patient for case, patient, _ in rows},
        labels={case: label for case, _, label in rows},
    )


def fold_cases(splits: Splits, fold: int | None, part: Part) -> list[str]:
    """Case ids of one part of a split.

    Args:
        splits: The splits.
        fold: 1-based fold number; ignored (may be None) for ``part="test"``.
        part: ``"train"``, ``"valid"`` or ``"test"``.

    Returns:
        The case ids, in the file's order.

    Raises:
        ValueError: On an unknown part or a missing fold number.
        KeyError: If the fold does not exist.
    """
    if part == "test":
        return list(splits.test)
    if part not in ("train", "valid"):
        raise ValueError(f"part must be 'train', 'valid' or 'test', got {part!r}")
    if fold is None:
        raise ValueError(f"part={part!r} needs a fold number (1..{splits.n_folds})")
    return list(getattr(splits.fold(fold), part))


class SplitConfig(BaseModel):
    """Settings of ``mammo split`` (section ``split`` of params.yaml)."""

    model_config = ConfigDict(extra="forbid")

    folds: int = Field(default=5, ge=2)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: int = 0


def split_store(store_path: str | Path, out: str | Path, config: SplitConfig) -> Splits:
    """Make seeded, patient-grouped, pathology-stratified splits of a store and save them.

    Args:
        store_path: Any store with case records (usually the ``mammograms`` store).
        out: The splits JSON file to write (atomically).
        config: Folds, test fraction and seed.

    Returns:
        The validated splits that were written.
    """
    from mammo_common.errors import MammoError
    from mammo_common.store import open_store

    store = open_store(store_path)
    if hasattr(store, "records"):
        records = store.records()
    else:
        records = list(store.meta.cases)
    try:
        splits = make_splits(
            [r.case_id for r in records],
            [r.patient_id for r in records],
            [r.pathology for r in records],
            n_folds=config.folds,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )
    except ValueError as exc:
        raise MammoError(
            str(exc), path=store_path, fix="use fewer folds or a smaller test fraction"
        ) from None
    splits.save(out)
    return splits
