"""Tests of the shared stage toolkit (mammo_common.stage): digests, splits selection, per-case
scores, the model card and the training work folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_splits import _small

from mammo_common.errors import EXIT_BAD_INPUT, InputFileError
from mammo_common.schema.model_card import DataLineage, ModelCard
from mammo_common.schema.splits import Splits, SplitsFileError, SplitsNotFoundError
from mammo_common.stage import (
    CaseScore,
    file_digest,
    load_fold,
    load_splits,
    split_cases,
    training_card,
    training_work_dir,
)

SMALL = _small()  # the hand-made split of test_splits.py


@pytest.fixture
def splits_file(tmp_path: Path) -> Path:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(SMALL), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- digest


def test_file_digest_is_the_model_card_format(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(b'{"a": 1}\n')
    digest = file_digest(path)
    assert digest == "sha256:" + hashlib.sha256(b'{"a": 1}\n').hexdigest()
    assert digest == file_digest(str(path))  # stable, str or Path
    path.write_bytes(b'{"a": 2}\n')
    assert file_digest(path) != digest


def test_file_digest_streams_large_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * (5 * 4096 + 7)  # > 1 MiB, not a multiple of the block
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_digest(path) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_file_digest_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "none.json")


# --------------------------------------------------------------------------- splits


def test_split_cases_selects_each_part(splits_file: Path) -> None:
    assert split_cases(splits_file, "test") == ["d1"]
    assert split_cases(splits_file, "all") == ["a1", "a2", "b1", "c1", "c2", "d1"]
    assert split_cases(splits_file, "valid", 2) == ["b1"]
    assert split_cases(splits_file, "train", 1) == ["b1", "c1", "c2"]
    assert split_cases(splits_file, "test", 99) == ["d1"]  # the fold is ignored for test
    loaded = Splits.load(splits_file)
    assert split_cases(loaded, "valid", 3, path=splits_file) == ["c1", "c2"]


def test_load_fold_returns_the_splits_and_both_parts(splits_file: Path) -> None:
    splits, train, valid = load_fold(splits_file, 3)
    assert isinstance(splits, Splits) and splits.test == ["d1"]
    assert train == ["a1", "a2", "b1"] and valid == ["c1", "c2"]


def _one_error(call, *args, **kwargs) -> SplitsFileError:
    """Every splits problem is a SplitsFileError, a user-facing input error (exit code 2)."""
    with pytest.raises(SplitsFileError) as info:
        call(*args, **kwargs)
    err = info.value
    assert isinstance(err, InputFileError) and isinstance(err, ValueError)
    assert err.exit_code == EXIT_BAD_INPUT
    assert str(err).count("Fix:") == 1  # the CLIs print one message with one fix
    return err


def test_a_missing_fold_names_file_field_and_fix(splits_file: Path) -> None:
    for err in (_one_error(split_cases, splits_file, "valid", 9),
                _one_error(load_fold, splits_file, 9)):
        assert err.path == str(splits_file) and err.field == "folds"
        text = str(err)
        assert str(splits_file) in text
        assert "fold 9 does not exist" in text and "no fold 9" in text and "1..3" in text
        assert err.fix is not None and "between 1 and 3" in err.fix and "Fix:" in text


def test_a_fold_part_without_fold_and_an_unknown_part(splits_file: Path) -> None:
    err = _one_error(split_cases, splits_file, "train")
    assert err.field == "folds" and "needs a fold" in str(err) and "--fold" in str(err)
    err = _one_error(split_cases, splits_file, "validation", 1)
    assert err.field == "part" and "'validation'" in str(err)
    assert "train, valid, test, all" in str(err)


def test_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    for call, args in ((load_splits, (missing,)), (split_cases, (missing, "test")),
                       (load_fold, (missing, 1))):
        err = _one_error(call, *args)
        assert isinstance(err, SplitsNotFoundError) and isinstance(err, FileNotFoundError)
        assert "nope.json" in str(err) and "does not exist" in str(err)
        assert err.fix == "create it with `mammo split`"


def test_a_folder_as_splits_file(tmp_path: Path) -> None:
    err = _one_error(split_cases, tmp_path, "test")
    assert str(err) == (f"splits file {str(tmp_path)!r} is a folder. Fix: regenerate the file "
                        "with `mammo split` (mammo_common.splits.make_splits)")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({k: v for k, v in SMALL.items() if k != "seed"}, "seed"),
        ({**SMALL, "n_folds": "three"}, "n_folds"),
        ({**SMALL, "test": ["a1"]}, "test"),  # a1 also in the folds: leakage
    ],
)
def test_an_invalid_file_names_file_field_and_fix(
    tmp_path: Path, content: dict, field: str
) -> None:
    path = tmp_path / "bad_splits.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    err = _one_error(split_cases, path, "test")
    text = str(err)
    assert "bad_splits.json" in text and field in text and "mammo split" in text


def test_not_json_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    text = str(_one_error(load_splits, path))
    assert "broken.json" in text and "not valid JSON" in text and "mammo split" in text


# --------------------------------------------------------------------------- scores

BREAST = {"case_id": "c1", "dice": 0.9, "jaccard": 0.8, "reference": "store",
          "pred_pixels": 10, "reference_pixels": 11, "empty_prediction": False}
MASS = {"case_id": "c2", "dice": 1.0, "jaccard": 1.0, "auc": None, "dice_unprocessed": 0.5,
        "truth_pixels": 0, "pred_pixels": 0}


@pytest.mark.parametrize("row", [BREAST, MASS], ids=["breast", "mass"])
def test_case_score_writes_exactly_its_stage_keys(row: dict) -> None:
    score = CaseScore(**row)
    assert score.model_dump() == row  # the per-case JSON keys of that stage, no others
    assert json.loads(score.model_dump_json()) == row
    assert CaseScore.model_validate(score.model_dump()).model_dump() == row


def test_case_score_refuses_mixed_or_incomplete_rows() -> None:
    with pytest.raises(ValidationError, match="not both"):
        CaseScore(**BREAST, truth_pixels=3)
    with pytest.raises(ValidationError, match="missing"):
        CaseScore(**{k: v for k, v in MASS.items() if k != "dice_unprocessed"})
    with pytest.raises(ValidationError, match="must not be None"):
        CaseScore(**{**BREAST, "reference": None})
    with pytest.raises(ValidationError):
        CaseScore(**BREAST, colour="red")


# --------------------------------------------------------------------------- work folder


# --------------------------------------------------------------------------- model card


class _TwoReplicas:
    """Stands in for a ``tf.distribute`` strategy: only ``num_replicas_in_sync`` is read."""

    num_replicas_in_sync = 2


@pytest.mark.parametrize(
    ("distribution", "replicas", "task", "notes"),
    [(None, 1, "segmentation", ""), (_TwoReplicas(), 2, "classification", "a note")],
)
def test_training_card_is_the_card_the_stages_wrote(
    splits_file: Path, distribution, replicas: int, task: str, notes: str
) -> None:
    """The builder writes exactly the card each stage used to build by hand (same JSON)."""
    card = training_card(
        stage="massseg", package="mammo-massseg", package_version="0.1.0", arch="unet5l",
        fold=2, data=Path("data/breast.zarr"), data_digest="sha256:abc", splits=splits_file,
        n_train=5, n_valid=2, n_test=3, input_shape=(64, 48, 1),
        normalization="divide_by_max_uint16", threshold=0.4,
        training={"epochs": 3, "optimizer": "adam"}, strategy="mirrored",
        distribution=distribution, metrics={"best_val_dice": 0.5}, weights_origin="scratch",
        task=task, notes=notes,
    )
    by_hand = ModelCard(
        stage="massseg", package="mammo-massseg", package_version="0.1.0",
        architecture="unet5l", model_id="massseg/unet5l/fold_2", task=task,
        input_shape=(64, 48, 1), normalization="divide_by_max_uint16", threshold=0.4,
        training={"epochs": 3, "optimizer": "adam", "strategy": "mirrored",
                  "replicas": replicas},
        data=DataLineage(
            train_store="data/breast.zarr", train_store_digest="sha256:abc",
            splits=str(splits_file), splits_digest=file_digest(splits_file), fold=2,
            n_train_cases=5, n_valid_cases=2, n_test_cases=3,
        ),
        metrics={"best_val_dice": 0.5}, weights_origin="scratch", created_by="massseg train",
        notes=notes,
    )
    assert card.to_json() == by_hand.to_json()


def test_training_card_refuses_a_bad_architecture_name(splits_file: Path) -> None:
    with pytest.raises(ValidationError, match="architecture"):
        training_card(
            stage="massseg", package="mammo-massseg", package_version="0.1.0", arch="U-Net",
            fold=1, data="d", data_digest=None, splits=splits_file, n_train=1, n_valid=1,
            n_test=1, input_shape=(8, 8, 1), normalization="none", threshold=0.5,
            training={}, strategy="none", metrics={}, weights_origin="scratch",
        )


def test_training_work_dir_is_hidden_next_to_the_model_folder() -> None:
    out = Path("models/massseg/unet5l/fold_1")
    assert training_work_dir(out) == Path("models/massseg/unet5l/.fold_1.training")
    work = training_work_dir(Path("/abs/fold_2"))
    assert work.parent == Path("/abs") and work.name == ".fold_2.training"
    assert out not in work.parents  # replacing the model folder never drops it


def test_the_toolkit_imports_no_keras() -> None:
    """mammo-common's core (no Keras installed) and every stage import it cheaply."""
    code = ("import sys, mammo_common.stage; "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
