"""Reference PNG folders ingest, and format detection."""

from __future__ import annotations

import numpy as np
import pytest
from formats import tree_digest, write_folder

from mammo_common import open_store
from mammo_common.errors import InputFileError
from mammo_common.imageio import read_image
from mammo_common.ingest import IngestConfig, detect_format, run_ingest


def test_folder(tmp_path):
    expected = write_folder(tmp_path / "src")
    before = tree_digest(tmp_path / "src")
    assert detect_format(tmp_path / "src") == "folder"
    res = run_ingest(IngestConfig(source=tmp_path / "src", out=tmp_path / "m.zarr",
                                  progress=False))
    assert tree_digest(tmp_path / "src") == before
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    assert sorted(store.case_ids) == sorted(expected)
    for case_id, mask in expected.items():
        np.testing.assert_array_equal(store.array(case_id, "mass_mask"), mask)
    first = store.record("mass_seg_08_train01_0")
    assert first.patient_id == "PX" and first.abnormality == "mass"
    assert store.record("mass_seg_08_train01_1").patient_id == "PX"
    assert store.record("mass_seg_08_test_0").patient_id == "mass_seg_08_test_0"
    assert any("subset mass_seg_08/train01" in n for n in first.notes)
    reasons = " ".join(f"{s.path} {s.reason}" for s in res.skipped)
    assert "valid01/mg/0.png" in reasons and "same pixels" in reasons
    assert "test/mg/5.png" in reasons and "without a mask" in reasons


def test_flat_folder_breast_masks(tmp_path):
    write_folder(tmp_path / "src")
    flat = tmp_path / "src" / "mass_seg_08" / "test"
    res = run_ingest(IngestConfig(source=flat, out=tmp_path / "b.zarr", folder_mask="breast",
                                  progress=False))
    store = open_store(tmp_path / "b.zarr", "mammograms")
    assert store.case_ids == ["0"] and res.n_cases == 1
    data = store.load("0")
    assert data.breast_mask is not None and data.mass_mask is None


def test_unknown_format_lists_the_formats(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputFileError) as err:
        detect_format(tmp_path)
    for fmt in ("cbis-ddsm", "inbreast", "bcdr", "folder"):
        assert fmt in err.value.message
    with pytest.raises(InputFileError):
        run_ingest(IngestConfig(source=tmp_path, out=tmp_path.parent / "o.zarr", progress=False))
    assert not (tmp_path.parent / "o.zarr").exists()


def test_read_image_refuses_truncated_and_huge(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)).save(path)
    arr, info = read_image(path)
    assert arr.dtype == np.uint16 and info.bits == 16
    with pytest.raises(InputFileError, match="limit"):
        read_image(path, max_pixels=100)
    data = path.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"t\.png"):
        read_image(tmp_path / "t.png")
