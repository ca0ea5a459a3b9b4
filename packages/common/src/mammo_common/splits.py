"""Seeded, patient-grouped, pathology-stratified test set and cross-validation folds.

:func:`make_splits` draws a fixed test set and ``n_folds`` folds such that all cases of a
patient land together, and each fold (and the test set) holds about the same share of
each patient stratum. A patient's stratum is ``"malignant"`` if any of its cases is
malignant, else ``"benign"`` if any is benign, else ``"none"`` (pathology strings are
matched case-insensitively by prefix, so ``BENIGN_WITHOUT_CALLBACK`` is benign).

Algorithm (deterministic for the seed, independent of input order):

1. Cases are sorted by id and grouped by patient; patients are sorted by id and then
   shuffled with ``numpy.random.default_rng(seed)``.
2. Test set: per stratum (sorted), patients are taken in shuffled order whenever adding
   one brings the stratum's test case count closer to ``test_fraction`` of its cases,
   as long as ``n_folds`` patients are left for the folds. With ``test_fraction > 0`` at
   least one patient is taken.
3. Folds: per stratum (sorted), the remaining patients, largest first (shuffled order
   breaks ties), go to the fold with the fewest cases of that stratum, then the fewest
   cases overall, then the lowest index (a greedy StratifiedGroupKFold). Every fold
   gets at least one patient.

Folds are numbered from 1. Fold ``k``'s valid set is its share; its train set is every
other non-test case.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


def _select_test(
    order: list[str],
    stratum_of: dict[str, str],
    size: dict[str, int],
    test_fraction: float,
    max_patients: int,
) -> set[str]:
    test: set[str] = set()
    if test_fraction <= 0:
        return test
    for stratum in sorted(set(stratum_of.values())):
        members = [p for p in order if stratum_of[p] == stratum]
        target = test_fraction * sum(size[p] for p in members)
        count = 0
        for p in members:
            closer = abs(count + size[p] - target) < abs(count - target)
            if closer and len(test) < max_patients:
                test.add(p)
                count += size[p]
    if not test:
        test.add(order[0])
    return test


def _assign_folds(
    order: list[str], stratum_of: dict[str, str], size: dict[str, int], n_folds: int
) -> list[list[str]]:
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    total = np.zeros(n_folds, dtype=np.int64)
    rank = {p: i for i, p in enumerate(order)}
    for stratum in sorted({stratum_of[p] for p in order}):
        members = sorted(
            (p for p in order if stratum_of[p] == stratum), key=lambda p: (-size[p], rank[p])
        )
        load = np.zeros(n_folds, dtype=np.int64)
        for p in members:
            k = int(np.lexsort((np.arange(n_folds), total, load))[0])
            folds[k].append(p)
            load[k] += size[p]
            total[k] += size[p]
    return folds


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

    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    stratum_of = {p: patient_stratum(labels_of[p]) for p in patients}
    size = {p: len(cases_of[p]) for p in patients}

    test_patients = _select_test(
        order, stratum_of, size, test_fraction, max_patients=len(patients) - n_folds
    )
    remaining = [p for p in order if p not in test_patients]
    if len(remaining) < n_folds:
        raise ValueError(
            f"after drawing the test set ({len(test_patients)} patients) only "
            f"{len(remaining)} patients remain for {n_folds} folds; lower test_fraction "
            "or n_folds"
        )
    shares = _assign_folds(remaining, stratum_of, size, n_folds)

    def cases(ps: list[str] | set[str]) -> list[str]:
        return sorted(c for p in ps for c in cases_of[p])

    non_test = cases(remaining)
    folds = []
    for k, share in enumerate(shares, start=1):
        valid = cases(share)
        valid_set = set(valid)
        folds.append(Fold(index=k, train=[c for c in non_test if c not in valid_set], valid=valid))
    return Splits(
        schema_version=SPLITS_SCHEMA_VERSION,
        seed=seed,
        n_folds=n_folds,
        test_fraction=float(test_fraction),
        test=cases(test_patients),
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
