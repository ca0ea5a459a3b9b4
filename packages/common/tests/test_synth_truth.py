"""The truth sidecar: `mammo synth` writes each phantom's exact masks, ingest reads the breast.

Checks that the sidecar exists for every image (normals included), equals what ``render`` drew,
has deterministic bytes without ancillary PNG chunks, and that the CBIS-DDSM importer fills
``breast_mask`` from it, refuses bad sidecar files case by case (reported, case kept) and
behaves as before on a tree without a sidecar.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
from formats import write_cbis
from PIL import Image

from mammo_common import open_store
from mammo_common.ingest import IngestConfig, run_ingest
from mammo_common.ingest.cbis_ddsm import FULL_FOLDER
from mammo_common.ingest.common import TRUTH_PARENT_KIND
from mammo_common.synth import render, sample_dataset, synth
from mammo_common.synth.truth import (
    BREAST_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_FILE,
    PECTORAL_FILE,
    README_FILE,
    TRUTH_DIR,
    encode_mask_png,
    mass_file,
)

CASES, SEED, SIZE = 3, 0, (128, 96)


def _case_id(spec) -> str:
    return f"{spec.patient_id}_{spec.side}_{spec.view}"


def _png(path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L"
        return np.asarray(img)


def _chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    tags, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tags.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return tags


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth") / "raw"
    synth(root, cases=CASES, seed=SEED, size=SIZE)
    return root


def _ingest(source, out):
    return run_ingest(IngestConfig(source=source, out=out, progress=False))


def _copy(raw, tmp_path):
    src = tmp_path / "raw"
    shutil.copytree(raw, src)
    return src


def test_sidecar_for_every_image_equals_the_render(raw):
    specs = sample_dataset(CASES, SEED)
    image_folders = {p.name for p in (raw / "CBIS-DDSM").iterdir() if FULL_FOLDER.match(p.name)}
    truth = raw / TRUTH_DIR
    sidecar_folders = {p.name for p in truth.iterdir() if p.is_dir()}
    assert sidecar_folders == image_folders == {s.name for s in specs}
    assert any(not s.lesions for s in specs)  # normal images have a sidecar too
    for spec in specs:
        ph = render(spec, SIZE, SEED)
        folder = truth / spec.name
        breast = _png(folder / BREAST_FILE)
        assert breast.shape == SIZE and breast.dtype == np.uint8
        assert set(np.unique(breast)) <= {0, 255}
        np.testing.assert_array_equal(breast, np.where(ph.breast_mask, 255, 0))
        np.testing.assert_array_equal(_png(folder / PECTORAL_FILE) > 0, ph.pectoral_mask)
        masses = sorted(p.name for p in folder.glob("mass_*.png"))
        assert masses == [mass_file(k) for k in range(1, len(spec.lesions) + 1)]
        for k, body in enumerate(ph.mass_masks, 1):
            np.testing.assert_array_equal(_png(folder / mass_file(k)) > 0, body)
        # lossless, nothing but the image: no time stamp or text chunk
        assert _chunks((folder / BREAST_FILE).read_bytes()) == [b"IHDR", b"IDAT", b"IEND"]
    index = json.loads((truth / INDEX_FILE).read_text())
    assert index["format"] == FORMAT_NAME and index["format_version"] == FORMAT_VERSION
    assert set(index["images"]) == image_folders
    assert "breast.png" in (truth / README_FILE).read_text()


def test_sidecar_bytes_are_deterministic(raw, tmp_path):
    synth(tmp_path / "again", cases=CASES, seed=SEED, size=SIZE)
    a, b = raw / TRUTH_DIR, tmp_path / "again" / TRUTH_DIR
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    assert encode_mask_png(mask) == encode_mask_png(mask.astype(np.uint8) * 255)


def test_ingest_fills_breast_mask_from_the_sidecar(raw, tmp_path):
    result = _ingest(raw, tmp_path / "m.zarr")
    specs = sample_dataset(CASES, SEED)
    assert result.n_skipped == 0 and result.n_cases == len(specs)
    assert result.n_breast_mask_cases == result.breast_masks_from_truth_sidecar == len(specs)
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    for spec in specs:
        case_id = _case_id(spec)
        stored = store.array(case_id, "breast_mask")
        assert stored is not None, case_id
        sidecar = _png(raw / TRUTH_DIR / spec.name / BREAST_FILE)
        np.testing.assert_array_equal(stored, (sidecar > 0).astype(np.uint8))
        np.testing.assert_array_equal(stored.astype(bool), render(spec, SIZE, SEED).breast_mask)
        assert any("truth sidecar" in n for n in store.record(case_id).notes)
    kinds = [p.kind for p in store.meta.parents]
    assert kinds == ["raw-cbis-ddsm", TRUTH_PARENT_KIND]
    assert store.meta.parents[1].path.endswith(TRUTH_DIR)


def _garbage(path):
    arr = _png(path).copy()
    arr[: arr.shape[0] // 2] = 128
    Image.fromarray(arr).save(path)


def _wrong_size(path):
    arr = _png(path)
    Image.fromarray(arr[:, : arr.shape[1] // 2]).save(path)


def _empty(path):
    Image.fromarray(np.zeros(_png(path).shape, np.uint8)).save(path)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:40])


def _missing(path):
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_wrong_size, "native size"),
        (_garbage, "values other than 0/255 or 0/1"),
        (_empty, "empty"),
        (_truncated, "cannot be read"),
        (_missing, "has no"),
    ],
)
def test_bad_sidecar_mask_is_skipped_and_the_case_kept(raw, tmp_path, damage, reason):
    src = _copy(raw, tmp_path)
    spec = sample_dataset(CASES, SEED)[1]
    damage(src / TRUTH_DIR / spec.name / BREAST_FILE)
    result = _ingest(src, tmp_path / "m.zarr")
    store = open_store(tmp_path / "m.zarr", "mammograms", deep=True)
    assert _case_id(spec) in store.case_ids  # still ingested, without a breast mask
    assert store.array(_case_id(spec), "breast_mask") is None
    assert result.n_breast_mask_cases == result.n_cases - 1
    skipped = [s for s in result.skipped if "truth sidecar" in s.reason]
    assert len(skipped) == 1, result.skipped
    assert spec.name in skipped[0].path and _case_id(spec) in skipped[0].reason
    assert reason in skipped[0].reason and "Fix:" in skipped[0].reason
    assert store.meta.skipped == result.skipped
    others = [c for c in store.case_ids if c != _case_id(spec)]
    assert all(store.array(c, "breast_mask") is not None for c in others)


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        ({"format": FORMAT_NAME, "format_version": 99}, "format_version 99"),
        ({"format": "something else", "format_version": 1}, "not a truth index"),
        (None, "no truth.json"),
        ("{not json", "cannot be read as JSON"),
    ],
)
def test_unusable_index_ignores_the_sidecar(raw, tmp_path, index, reason):
    src = _copy(raw, tmp_path)
    path = src / TRUTH_DIR / INDEX_FILE
    if index is None:
        path.unlink()
    else:
        path.write_text(index if isinstance(index, str) else json.dumps(index))
    result = _ingest(src, tmp_path / "m.zarr")
    assert result.n_cases == len(sample_dataset(CASES, SEED))
    assert result.n_breast_mask_cases == 0
    [skip] = result.skipped
    assert reason in skip.reason and skip.path.startswith(TRUTH_DIR)
    store = open_store(tmp_path / "m.zarr", "mammograms")
    assert [p.kind for p in store.meta.parents] == ["raw-cbis-ddsm"]


def test_sidecar_beside_csvs_in_a_subfolder(raw, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(raw, src / "download")
    result = _ingest(src, tmp_path / "m.zarr")
    assert result.n_skipped == 0
    assert result.breast_masks_from_truth_sidecar == result.n_cases > 0


@pytest.mark.skipif(os.name == "nt", reason="symbolic links")
def test_sidecar_linked_from_outside_is_refused(raw, tmp_path):
    src = _copy(raw, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(src / TRUTH_DIR, outside)
    (src / TRUTH_DIR).symlink_to(outside, target_is_directory=True)
    result = _ingest(src, tmp_path / "m.zarr")
    assert result.n_breast_mask_cases == 0
    assert any("truth sidecar not used" in s.reason and "outside" in s.reason
               for s in result.skipped)


def test_tree_without_sidecar_ingests_as_before(raw, tmp_path):
    # a real-format CBIS-DDSM tree: no sidecar, no breast masks, no extra parent or skip
    write_cbis(tmp_path / "real")
    real = _ingest(tmp_path / "real", tmp_path / "real.zarr")
    store = open_store(tmp_path / "real.zarr", "mammograms")
    assert real.n_breast_mask_cases == 0 and real.breast_masks_from_truth_sidecar == 0
    assert all(store.array(c, "breast_mask") is None for c in store.case_ids)
    assert [p.kind for p in store.meta.parents] == ["raw-cbis-ddsm"]
    assert not any("truth" in s.reason for s in real.skipped)
    # the synthetic tree without its sidecar: the same cases and masses, no breast masks
    src = _copy(raw, tmp_path)
    shutil.rmtree(src / TRUTH_DIR)
    bare = _ingest(src, tmp_path / "bare.zarr")
    with_truth = _ingest(raw, tmp_path / "full.zarr")
    assert bare.n_skipped == 0 and bare.n_breast_mask_cases == 0
    assert with_truth.n_breast_mask_cases == with_truth.n_cases == bare.n_cases
    a = open_store(tmp_path / "bare.zarr", "mammograms")
    b = open_store(tmp_path / "full.zarr", "mammograms")
    assert a.case_ids == b.case_ids
    for case_id in a.case_ids:
        assert a.array(case_id, "breast_mask") is None
        np.testing.assert_array_equal(a.array(case_id, "mass_mask"), b.array(case_id, "mass_mask"))
        np.testing.assert_array_equal(a.array(case_id, "image"), b.array(case_id, "image"))
        notes_b = [n for n in b.record(case_id).notes if "truth sidecar" not in n]
        assert a.record(case_id).notes == notes_b
