"""Tests of make_splits and the splits.json model."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sklearn.model_selection import StratifiedGroupKFold

from mammo_common.schema.splits import Fold, Splits, SplitsFileError
from mammo_common.splits import fold_cases, make_splits, patient_stratum


def _dataset(
    n_patients: int = 200, seed: int = 0, p_malignant: float = 0.35
) -> tuple[list[str], list[str], list[str]]:
    """Patients with 1-4 cases; a patient's cases mostly share one pathology."""
    rng = np.random.default_rng(seed)
    cases, patients, labels = [], [], []
    for p in range(n_patients):
        malignant = rng.random() < p_malignant
        for c in range(int(rng.integers(1, 5))):
            cases.append(f"P{p:04d}_{c}")
            patients.append(f"P{p:04d}")
            if rng.random() < 0.1:
                labels.append("unknown")
            elif malignant:
                labels.append("MALIGNANT")
            else:
                labels.append(str(rng.choice(["BENIGN", "BENIGN_WITHOUT_CALLBACK"])))
    return cases, patients, labels


def _assert_no_leakage(splits: Splits, cases: list[str], patients: list[str]) -> None:
    """Independent re-implementation of the leakage checks."""
    patient_of = dict(zip(cases, patients, strict=True))
    assert splits.patients == patient_of
    test = set(splits.test)
    rest = set(cases) - test
    assert {patient_of[c] for c in test}.isdisjoint({patient_of[c] for c in rest})
    all_valid: list[str] = []
    for fold in splits.folds:
        train, valid = set(fold.train), set(fold.valid)
        assert train.isdisjoint(valid) and train | valid == rest
        assert valid, "every fold has validation cases"
        assert {patient_of[c] for c in train}.isdisjoint({patient_of[c] for c in valid})
        all_valid += fold.valid
    assert sorted(all_valid) == sorted(rest)


@pytest.mark.parametrize("test_fraction", [0.2, 0.0])
def test_no_leakage_over_50_seeds(test_fraction: float) -> None:
    for seed in range(50):
        cases, patients, labels = _dataset(40 + seed, seed=seed)
        splits = make_splits(cases, patients, labels, seed=seed, test_fraction=test_fraction)
        _assert_no_leakage(splits, cases, patients)
        assert [f.index for f in splits.folds] == [1, 2, 3, 4, 5]
        if test_fraction == 0.0:
            assert splits.test == []


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=4, max_size=40),
    malignant=st.lists(st.booleans(), min_size=40, max_size=40),
    n_folds=st.integers(2, 4),
    test_fraction=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    seed=st.integers(0, 2**31),
)
def test_no_leakage_hypothesis(
    sizes: list[int], malignant: list[bool], n_folds: int, test_fraction: float, seed: int
) -> None:
    cases, patients, labels = [], [], []
    for p, size in enumerate(sizes):
        for c in range(size):
            cases.append(f"case-{p}-{c}")
            patients.append(f"pat-{p}")
            labels.append("MALIGNANT" if malignant[p] else "BENIGN")
    needed = n_folds + (test_fraction > 0)
    if len(sizes) < needed:
        with pytest.raises(ValueError, match="patients"):
            make_splits(
                cases, patients, labels, n_folds=n_folds, test_fraction=test_fraction, seed=seed
            )
        return
    splits = make_splits(
        cases, patients, labels, n_folds=n_folds, test_fraction=test_fraction, seed=seed
    )
    _assert_no_leakage(splits, cases, patients)
    assert bool(splits.test) == (test_fraction > 0)


def test_deterministic_and_input_order_independent() -> None:
    cases, patients, labels = _dataset(80, seed=1)
    reference = make_splits(cases, patients, labels, seed=7).to_json()
    assert make_splits(cases, patients, labels, seed=7).to_json() == reference
    rows = list(zip(cases, patients, labels, strict=True))
    for shuffle_seed in range(5):
        random.Random(shuffle_seed).shuffle(rows)
        c, p, lab = (list(x) for x in zip(*rows, strict=True))
        assert make_splits(c, p, lab, seed=7).to_json() == reference


def test_seeds_give_different_splits() -> None:
    cases, patients, labels = _dataset(80, seed=1)
    drawn = {
        make_splits(cases, patients, labels, seed=seed).model_dump_json(exclude={"seed"})
        for seed in range(6)
    }
    assert len(drawn) == 6
    tests = {tuple(make_splits(cases, patients, labels, seed=seed).test) for seed in range(6)}
    assert len(tests) == 6


def _strata_of_cases(cases: list[str], patients: list[str], labels: list[str]) -> dict[str, str]:
    by_patient: dict[str, list[str]] = {}
    for p, label in zip(patients, labels, strict=True):
        by_patient.setdefault(p, []).append(label)
    return {c: patient_stratum(by_patient[p]) for c, p in zip(cases, patients, strict=True)}


def _sgkf_reference(
    cases: list[str],
    patients: list[str],
    labels: list[str],
    *,
    n_folds: int,
    test_fraction: float,
    seed: int,
) -> tuple[list[str], list[list[str]]]:
    """The documented recipe written against scikit-learn directly (no constraint binds)."""
    stratum = _strata_of_cases(cases, patients, labels)
    rows = sorted(zip(cases, patients, strict=True))
    c = np.array([r[0] for r in rows])
    g = np.array([r[1] for r in rows])
    y = np.array([stratum[case] for case in c])
    k = round(1 / test_fraction)
    parts = [t for _, t in StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(c, y, g)]
    test = min(parts, key=lambda t: abs(t.size / c.size - test_fraction))  # first on ties
    rest = np.setdiff1d(np.arange(c.size), test)
    cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    valid = [sorted(c[rest][t].tolist()) for _, t in cv.split(c[rest], y[rest], g[rest])]
    return sorted(c[test].tolist()), valid


@pytest.mark.parametrize(
    ("seed", "n_folds", "test_fraction"), [(0, 5, 0.2), (3, 4, 0.25), (11, 3, 0.1)]
)
def test_equals_stratified_group_kfold(seed: int, n_folds: int, test_fraction: float) -> None:
    """The split is scikit-learn's StratifiedGroupKFold, not a hand-written look-alike."""
    cases, patients, labels = _dataset(150, seed=seed)
    splits = make_splits(
        cases, patients, labels, seed=seed, n_folds=n_folds, test_fraction=test_fraction
    )
    test, valid = _sgkf_reference(
        cases, patients, labels, n_folds=n_folds, test_fraction=test_fraction, seed=seed
    )
    assert splits.test == test
    assert [f.valid for f in splits.folds] == valid


def test_lists_are_sorted() -> None:
    splits = make_splits(*_dataset(30, seed=2), seed=0)
    assert splits.test == sorted(splits.test)
    for fold in splits.folds:
        assert fold.train == sorted(fold.train) and fold.valid == sorted(fold.valid)


@pytest.mark.parametrize("seed", range(5))
def test_stratification_balanced(seed: int) -> None:
    cases, patients, labels = _dataset(200, seed=seed)
    splits = make_splits(cases, patients, labels, seed=seed)
    stratum = _strata_of_cases(cases, patients, labels)

    def fraction(ids: list[str], name: str) -> float:
        return float(np.mean([stratum[c] == name for c in ids]))

    assert abs(len(splits.test) / len(cases) - 0.2) < 0.02
    sizes = [len(f.valid) for f in splits.folds]
    assert max(sizes) - min(sizes) <= 8
    for name in ("malignant", "benign", "none"):
        overall = fraction(cases, name)
        assert abs(fraction(splits.test, name) - overall) < 0.05, name
        for fold in splits.folds:
            assert abs(fraction(fold.valid, name) - overall) < 0.05, (name, fold.index)
            assert abs(fraction(fold.train, name) - overall) < 0.03, (name, fold.index)


@pytest.mark.parametrize(
    ("test_fraction", "share"),
    [
        (0.1, 0.1),
        (0.2, 0.2),
        (0.25, 0.25),
        (1 / 3, 1 / 3),
        (0.4, 1 / 3),
        (0.5, 0.5),
        (0.7, 2 / 3),
        (0.8, 0.8),
    ],
)
def test_test_share_close_to_fraction(test_fraction: float, share: float) -> None:
    """The test share is 1/K (1 - 1/K above 0.5) for the K that comes closest."""
    cases, patients, labels = _dataset(300, seed=4)
    splits = make_splits(cases, patients, labels, seed=2, test_fraction=test_fraction)
    assert abs(len(splits.test) / len(cases) - share) < 0.02
    _assert_no_leakage(splits, cases, patients)


def test_unstratifiable_tiny_input_still_splits() -> None:
    """Three strata of one case each: too few to stratify, grouped and seeded all the same."""
    labels = ["MALIGNANT", "BENIGN", "unknown", "MALIGNANT"]
    s = make_splits(list("abcd"), list("1234"), labels, n_folds=3, test_fraction=0.25)
    _assert_no_leakage(s, list("abcd"), list("1234"))
    assert len(s.test) == 1


def test_patient_stratum() -> None:
    assert patient_stratum(["BENIGN", "MALIGNANT"]) == "malignant"
    assert patient_stratum(["BENIGN_WITHOUT_CALLBACK", "unknown"]) == "benign"
    assert patient_stratum(["unknown"]) == "none"
    assert patient_stratum(["malignant"]) == "malignant"


def test_input_errors() -> None:
    cases, patients, labels = _dataset(10, seed=0)
    with pytest.raises(ValueError, match="same length"):
        make_splits(cases, patients[:-1], labels)
    with pytest.raises(ValueError, match="not unique"):
        make_splits([*cases, cases[0]], [*patients, "X"], [*labels, "BENIGN"])
    with pytest.raises(ValueError, match="n_folds"):
        make_splits(cases, patients, labels, n_folds=1)
    with pytest.raises(ValueError, match="test_fraction"):
        make_splits(cases, patients, labels, test_fraction=1.0)
    with pytest.raises(ValueError, match="need at least 6"):
        make_splits(["a", "b", "c", "d", "e"], ["1", "2", "3", "4", "5"], ["BENIGN"] * 5)
    with pytest.raises(ValueError, match="non-empty strings"):
        make_splits(["a", ""], ["1", "2"], ["BENIGN"] * 2, n_folds=2, test_fraction=0)
    # Exactly n_folds + 1 patients works: one test patient, one per fold.
    s = make_splits(list("abcdef"), list("123456"), ["BENIGN"] * 6)
    assert len(s.test) == 1 and all(len(f.valid) == 1 for f in s.folds)
    s = make_splits(list("abcde"), list("12345"), ["BENIGN"] * 5, test_fraction=0)
    assert s.test == [] and all(len(f.valid) == 1 for f in s.folds)


def test_fold_cases() -> None:
    splits = make_splits(*_dataset(30, seed=3), seed=1)
    assert fold_cases(splits, None, "test") == splits.test
    assert fold_cases(splits, 1, "train") == splits.folds[0].train
    assert fold_cases(splits, 5, "valid") == splits.folds[4].valid
    with pytest.raises(KeyError, match="1-based"):
        fold_cases(splits, 0, "train")
    with pytest.raises(ValueError, match="fold number"):
        fold_cases(splits, None, "valid")
    with pytest.raises(ValueError, match="part"):
        fold_cases(splits, 1, "everything")  # type: ignore[arg-type]


# ----------------------------------------------------------------- the model / file


def _small() -> dict:
    """A hand-made valid split: 6 cases, 4 patients, test = patient D, 3 folds."""
    return {
        "schema_version": "1.0",
        "seed": 0,
        "n_folds": 3,
        "test_fraction": 0.2,
        "test": ["d1"],
        "folds": [
            {"index": 1, "train": ["b1", "c1", "c2"], "valid": ["a1", "a2"]},
            {"index": 2, "train": ["a1", "a2", "c1", "c2"], "valid": ["b1"]},
            {"index": 3, "train": ["a1", "a2", "b1"], "valid": ["c1", "c2"]},
        ],
        "patients": {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "c2": "C", "d1": "D"},
        "labels": dict.fromkeys(["a1", "a2", "b1", "c1", "c2", "d1"], "BENIGN"),
    }


def test_hand_made_valid_file() -> None:
    s = Splits.model_validate(_small())
    assert s.kind == "splits" and s.group_by == "patient_id" and s.stratify_by == "pathology"
    assert Splits.model_validate({**_small(), "schema_version": "1.7"}).schema_version == "1.7"
    assert s.non_test == ["a1", "a2", "b1", "c1", "c2"]
    assert s.fold(2).valid == ["b1"]


def _leaky(mutate: Callable[[dict], object]) -> str:
    data = _small()
    mutate(data)
    with pytest.raises(ValidationError) as info:
        Splits.model_validate(data)
    return str(info.value)


def test_validator_catches_patient_across_test_and_train() -> None:
    def move(d: dict) -> None:  # case a2 (patient A) to test, A's a1 still trains
        d["test"] = ["a2", "d1"]
        for f in d["folds"]:
            f["train"] = [c for c in f["train"] if c != "a2"]
            f["valid"] = [c for c in f["valid"] if c != "a2"]

    msg = _leaky(move)
    assert "test: patients ['A']" in msg and "'a1'" in msg and "mammo split" in msg


def test_validator_catches_patient_across_train_and_valid() -> None:
    def split_patient(d: dict) -> None:  # a2 validated in fold 2 while a1 trains there
        d["folds"][0] = {"index": 1, "train": ["a2", "b1", "c1", "c2"], "valid": ["a1"]}
        d["folds"][1] = {"index": 2, "train": ["a1", "c1", "c2"], "valid": ["a2", "b1"]}

    msg = _leaky(split_patient)
    assert "folds[0]: patients ['A'] have cases in both train and valid" in msg
    assert "folds[1]: patients ['A']" in msg


def test_validator_catches_case_in_two_places() -> None:
    msg = _leaky(lambda d: d["folds"][0]["train"].append("a1"))
    assert "folds[0]: cases ['a1'] are in both train and valid" in msg
    msg = _leaky(lambda d: d["folds"][1]["train"].append("d1"))
    assert "folds[1]: test cases ['d1'] appear in the fold" in msg
    msg = _leaky(lambda d: d["test"].append("d1"))
    assert "test: repeated case ids ['d1']" in msg


def test_validator_catches_bad_partitions() -> None:
    msg = _leaky(lambda d: d["folds"][2]["train"].remove("b1"))
    assert "folds[2]: non-test cases ['b1'] are in neither train nor valid" in msg

    def overlap(d: dict) -> None:  # valid sets overlap; b1 never validated
        d["folds"][1] = {"index": 2, "train": ["b1", "c1", "c2"], "valid": ["a1", "a2"]}

    msg = _leaky(overlap)
    assert "also in folds[0].valid" in msg and "in no fold's valid set" in msg and "'b1'" in msg


def test_validator_catches_structure_errors() -> None:
    assert "missing from patients/labels" in _leaky(lambda d: d["test"].append("zz"))
    assert "labels: keys differ" in _leaky(lambda d: d["labels"].pop("a1"))
    assert "n_folds is 4" in _leaky(lambda d: d.update(n_folds=4))

    def zero_based(d: dict) -> None:
        for k, f in enumerate(d["folds"]):
            f["index"] = k

    assert "index" in _leaky(zero_based)
    msg = _leaky(lambda d: d.update(schema_version="2.0"))
    assert "schema_version: '2.0' is not supported" in msg
    assert "extra" in _leaky(lambda d: d.update(surprise=1)).lower()


def test_error_lists_only_first_ids() -> None:
    cases = [f"c{i:02d}" for i in range(20)]
    data = {
        "seed": 0,
        "n_folds": 2,
        "test_fraction": 0.0,
        "test": [],
        "folds": [
            {"index": 1, "train": cases[:10], "valid": cases[:10] + cases[10:]},
            {"index": 2, "train": cases, "valid": []},
        ],
        "patients": {c: c for c in cases},
        "labels": dict.fromkeys(cases, "BENIGN"),
    }
    with pytest.raises(ValidationError) as info:
        Splits.model_validate(data)
    assert "(+5 more)" in str(info.value)


def test_save_load_roundtrip_atomic_and_deterministic(tmp_path: Path) -> None:
    splits = make_splits(*_dataset(25, seed=4), seed=2, n_folds=3)
    path = splits.save(tmp_path / "sub" / "splits.json")
    assert Splits.load(path) == splits
    first = path.read_bytes()
    make_splits(*_dataset(25, seed=4), seed=2, n_folds=3).save(path)
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["splits.json"]
    data = json.loads(first)
    assert list(data) == sorted(data) and data["kind"] == "splits"
    assert first.endswith(b"\n")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json.*mammo split"):
        Splits.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"seed": 0,', encoding="utf-8")
    with pytest.raises(SplitsFileError, match=r"broken.json.*not valid JSON \(line 1"):
        Splits.load(broken)
    leaky = tmp_path / "leaky.json"
    data = _small()
    data["test"] = ["a1", "d1"]
    leaky.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SplitsFileError, match="leaky.json") as info:
        Splits.load(leaky)
    assert "patients ['A']" in str(info.value)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "mammograms"}), encoding="utf-8")
    with pytest.raises(SplitsFileError, match="not 'splits'"):
        Splits.load(wrong)
    with pytest.raises(SplitsFileError, match=f"{tmp_path.name}.*is a folder"):
        Splits.load(tmp_path)  # e.g. the store given where the splits file is expected
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SplitsFileError, match="binary.json.*not a JSON text file"):
        Splits.load(binary)


def test_fold_model_is_frozen() -> None:
    fold = Fold(index=1, train=["a"], valid=["b"])
    with pytest.raises(ValidationError):
        fold.index = 2  # type: ignore[misc]
