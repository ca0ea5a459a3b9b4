"""The store contract: good stores open, bad ones are refused with a message naming the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from mammo_common import open_store
from mammo_common.errors import MammoError, StoreError
from mammo_common.schema import CaseDiagnosis, CaseRecord, CaseTransform, Producer
from mammo_common.store import (
    MammogramsWriter,
    StackedStoreWriter,
    atomic_path,
    write_diagnosis_store,
)

PRODUCER = Producer(package="mammo-common", version="0.0.0", command="test", params={"a": 1})


def _record(i: int, shape=(40, 30)) -> CaseRecord:
    return CaseRecord(
        case_id=f"P_{i:05d}_LEFT_CC",
        patient_id=f"P_{i:05d}",
        laterality="L",
        view="CC",
        abnormality="mass",
        pathology="MALIGNANT" if i % 2 else "BENIGN",
        original_shape=shape,
    )


def write_mammograms(path: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    with MammogramsWriter(path, source_format="test", producer=PRODUCER) as writer:
        for i in range(n):
            image = rng.integers(0, 65535, size=(40, 30), dtype=np.uint16)
            mask = np.zeros((40, 30), np.uint8)
            mask[10:20, 5:15] = 1
            writer.add_case(_record(i), image, mass_mask=mask)
        writer.skip("bad.dcm", "not a DICOM file")
    return path


def write_breast(path: Path, parent, n: int = 3, size=(16, 12), producer=PRODUCER) -> Path:
    with StackedStoreWriter(
        path,
        kind="breast",
        n_cases=n,
        image_size=size,
        producer=producer,
        parents=[parent.as_parent()],
        with_mass_masks=True,
    ) as writer:
        for i in range(n):
            tf = CaseTransform(original_shape=(40, 30), crop_box=(0, 0, 40, 30), output_shape=size)
            writer.write_case(
                i,
                _record(i),
                tf,
                images=np.full(size, 1000 * i, np.uint16),
                breast_masks=np.ones(size, np.uint8),
                mass_masks=np.zeros(size, np.uint8),
            )
    return path


def test_mammograms_round_trip(tmp_path: Path) -> None:
    store = open_store(write_mammograms(tmp_path / "m.zarr"), "mammograms", deep=True)
    assert len(store) == 3
    case = store.load(store.case_ids[1])
    assert case.image.dtype == np.uint16 and case.image.shape == (40, 30)
    assert case.mass_mask.sum() == 100 and case.breast_mask is None
    assert case.record.pathology == "MALIGNANT"
    assert store.meta.skipped[0].reason == "not a DICOM file"
    assert store.digest.startswith("sha256:")


def test_stacked_and_diagnosis_round_trip(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    breast = open_store(write_breast(tmp_path / "b.zarr", mammo), "breast", deep=True)
    assert breast.array("images").shape == (3, 16, 12)
    assert breast.meta.parents[0].digest == mammo.digest
    diags = [CaseDiagnosis(case_id=c.case_id, label="no_mass_found") for c in breast.cases]
    write_diagnosis_store(tmp_path / "d.zarr", cases=breast.cases, diagnoses=diags,
                          producer=PRODUCER)
    diag = open_store(tmp_path / "d.zarr", "diagnosis")
    assert np.isnan(diag.probabilities).all()


def test_wrong_kind_names_store_field_and_fix(tmp_path: Path) -> None:
    path = write_mammograms(tmp_path / "m.zarr")
    with pytest.raises(StoreError) as info:
        open_store(path, "masses")
    msg = str(info.value)
    assert str(path) in msg and "mammo.kind" in msg and "massseg predict" in msg


def test_unknown_version_refused(tmp_path: Path) -> None:
    path = write_mammograms(tmp_path / "m.zarr")
    group = zarr.open_group(str(path), mode="r+")
    meta = dict(group.attrs["mammo"])
    meta["schema_version"] = "9.0"
    group.attrs["mammo"] = meta
    with pytest.raises(StoreError, match="schema_version '9.0' is not supported"):
        open_store(path)


def test_inconsistent_arrays_refused(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    path = write_breast(tmp_path / "b.zarr", mammo)
    group = zarr.open_group(str(path), mode="r+")
    del group["breast_masks"]
    group.create_array("breast_masks", shape=(2, 16, 12), dtype="uint8")
    with pytest.raises(StoreError, match=r"breast_masks.*shape"):
        open_store(path)


def test_non_binary_mask_found_by_deep_check(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    path = write_breast(tmp_path / "b.zarr", mammo)
    zarr.open_group(str(path), mode="r+")["mass_masks"][1] = 7
    open_store(path)  # shallow check passes
    with pytest.raises(StoreError, match="values other than 0 and 1"):
        open_store(path, deep=True)


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a Zarr v3 store"):
        open_store(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a mammo store"):
        open_store(tmp_path / "foreign.zarr")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.zarr"
    with pytest.raises(RuntimeError):
        with MammogramsWriter(out, source_format="test", producer=PRODUCER) as writer:
            writer.add_case(_record(0), np.ones((40, 30), np.uint16))
            raise RuntimeError("crash in the middle")
    assert list(tmp_path.iterdir()) == []


def test_stacked_writer_refuses_missing_cases(tmp_path: Path) -> None:
    mammo = open_store(write_mammograms(tmp_path / "m.zarr"))
    out = tmp_path / "b.zarr"
    with pytest.raises(StoreError, match="never written"):
        with StackedStoreWriter(out, kind="breast", n_cases=2, image_size=(8, 8),
                                producer=PRODUCER, parents=[mammo.as_parent()]) as writer:
            tf = CaseTransform(original_shape=(40, 30), crop_box=(0, 0, 40, 30),
                               output_shape=(8, 8))
            writer.write_case(0, _record(0), tf, images=np.zeros((8, 8)),
                              breast_masks=np.zeros((8, 8)))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.zarr"]


def test_no_overwrite_without_consent_and_no_writing_into_input(tmp_path: Path) -> None:
    path = write_mammograms(tmp_path / "m.zarr")
    with pytest.raises(MammoError, match="already exists"):
        MammogramsWriter(path, source_format="t", producer=PRODUCER)
    with pytest.raises(MammoError, match="inside an input"):
        MammogramsWriter(path / "x.zarr", source_format="t", producer=PRODUCER, inputs=(path,))
    write_mammograms_again = MammogramsWriter(path, source_format="t", producer=PRODUCER,
                                              overwrite=True)
    with write_mammograms_again as writer:
        writer.add_case(_record(5), np.ones((40, 30), np.uint16))
    assert open_store(path).case_ids == ["P_00005_LEFT_CC"]


def test_stale_temporaries_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".m.zarr.tmp-1-deadbeef"
    stale.mkdir()
    write_mammograms(tmp_path / "m.zarr")
    assert not stale.exists()


def test_atomic_path_for_files(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    with pytest.raises(ValueError), atomic_path(out) as tmp:
        tmp.write_text("{}")
        raise ValueError
    assert not out.exists()
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"ok": 1}))
    assert json.loads(out.read_text()) == {"ok": 1}


def test_bad_values_refused(tmp_path: Path) -> None:
    with pytest.raises(MammoError, match="NaN"):
        with MammogramsWriter(tmp_path / "m.zarr", source_format="t", producer=PRODUCER) as w:
            image = np.ones((40, 30), np.float32)
            image[0, 0] = np.nan
            w.add_case(_record(0), image)
    with pytest.raises(MammoError, match="do not fit uint16"):
        with MammogramsWriter(tmp_path / "m.zarr", source_format="t", producer=PRODUCER) as w:
            w.add_case(_record(0), np.full((40, 30), -5, np.int32))
    with pytest.raises(MammoError, match="differs from image shape"):
        with MammogramsWriter(tmp_path / "m.zarr", source_format="t", producer=PRODUCER) as w:
            w.add_case(_record(0), np.ones((40, 30), np.uint16),
                       mass_mask=np.ones((20, 30), np.uint8))
    assert not (tmp_path / "m.zarr").exists()


def test_same_input_same_bytes(tmp_path: Path) -> None:
    a = write_mammograms(tmp_path / "a" / "m.zarr")
    b = write_mammograms(tmp_path / "b" / "m.zarr")
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
