"""A corpus of bad inputs, each run through the real ``mammo`` CLI.

Every bad input must end in one clear message naming the file, the problem and the fix, exit
code 2 (README, "Exit codes"), no traceback, and no output at all (neither the output path nor a
hidden temporary next to it). When the rest of a source is usable, the importer skips the bad
file instead and reports it, in the command's output and in the store's ``skipped`` list.

The corpus is written by the tests (see ``formats.py``); nothing is downloaded. Also here: the
safe-loading checks (ingest never opens a file outside the source folder, whether reached by a
``../`` or absolute path in a CSV or by a symbolic link), with an audit hook recording every file
the process opens.

Model folders (missing, incompatible, Lambda layers, corrupt) are covered by
``test_model_folder.py`` (Keras) and the stage packages' CLI tests.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import struct
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from formats import (
    phantom_image,
    tree_digest,
    write_bcdr,
    write_cbis,
    write_dicom,
    write_folder,
    write_inbreast,
)
from PIL import Image
from test_store import write_breast, write_mammograms
from typer.testing import CliRunner, Result

from mammo_common import open_store
from mammo_common.cli import app
from mammo_common.errors import EXIT_BAD_INPUT, InputFileError
from mammo_common.imageio import read_image
from mammo_common.ingest.dicom import read_dicom

runner = CliRunner()

# ---------------------------------------------------------------------------- assertions


def mammo(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result: Result, out: Path, *needles: str) -> str:
    """Exit 2, one ``error:`` message with a fix naming ``needles``, no traceback, no output."""
    text = result.output
    assert result.exit_code == EXIT_BAD_INPUT, text
    assert "Traceback" not in text and not isinstance(result.exception, AssertionError)
    assert [line for line in text.splitlines() if line.startswith("error:")].__len__() == 1, text
    assert "Fix:" in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    assert not out.exists(), "nothing is written for bad input"
    leftovers = sorted(p.name for p in out.parent.glob(f".{out.name}*"))
    assert leftovers == [], f"hidden temporaries left: {leftovers}"
    return text


def assert_skipped(result: Result, store: Path, file_part: str, *reason_parts: str) -> str:
    """Exit 0, and ``file_part`` reported as skipped (output and store) with the reason."""
    text = result.output
    assert result.exit_code == 0, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "skipped " in line and file_part in line]
    assert lines, f"{file_part!r} is not reported as skipped:\n{text}"
    for part in reason_parts:
        assert any(part in line for line in lines), f"{part!r} not in {lines}"
    skipped = open_store(store, "mammograms", deep=True).meta.skipped
    recorded = [s for s in skipped if file_part in s.path or file_part in s.reason]
    assert recorded, f"{file_part!r} not in the store's skipped list: {skipped}"
    for part in reason_parts:
        assert any(part in s.reason for s in recorded), f"{part!r} not in {recorded}"
    return text


# ------------------------------------------------------------------------- the corpus


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


BAD_DICOMS: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (lambda p: write_dicom(p, phantom_image(), truncate_to=1000), "is truncated"),
    "not-dicom": (lambda p: p.write_bytes(b"%PDF-1.4 not an image\n" * 40), "not a DICOM file"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "damaged": (lambda p: p.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4),
                "has no Rows/Columns"),
    "enormous": (lambda p: write_dicom(p, phantom_image(), header_shape=(65_535, 65_535)),
                 "more than the limit"),
    "all-black": (lambda p: write_dicom(p, np.zeros((64, 48), np.uint16)), "is blank"),
}
BAD_NAME = "90000001_badbadbad_MG_L_CC_ANON.dcm"


@pytest.mark.parametrize("kind", sorted(BAD_DICOMS))
def test_bad_dicom_alone_is_refused(tmp_path: Path, kind: str) -> None:
    make, problem = BAD_DICOMS[kind]
    (tmp_path / "src" / "AllDICOMs").mkdir(parents=True)
    make(tmp_path / "src" / "AllDICOMs" / BAD_NAME)
    out = tmp_path / "m.zarr"
    assert_refused(mammo("ingest", tmp_path / "src", out), out, BAD_NAME, problem,
                   "no usable case")


@pytest.mark.parametrize("kind", sorted(BAD_DICOMS))
def test_bad_dicom_among_good_ones_is_skipped(tmp_path: Path, kind: str) -> None:
    make, problem = BAD_DICOMS[kind]
    write_inbreast(tmp_path / "src")
    make(tmp_path / "src" / "AllDICOMs" / BAD_NAME)
    out = tmp_path / "m.zarr"
    result = mammo("ingest", tmp_path / "src", out)
    assert_skipped(result, out, BAD_NAME, problem, "Fix:")
    assert len(open_store(out)) == 2


def test_truncated_cbis_mammogram_is_skipped(tmp_path: Path) -> None:
    write_cbis(tmp_path / "src")
    image = next((tmp_path / "src" / "CBIS-DDSM").glob("Mass-Test_P_00002_RIGHT_MLO/*/*/1-1.dcm"))
    write_dicom(image, phantom_image(), truncate_to=2000)
    out = tmp_path / "m.zarr"
    result = mammo("ingest", tmp_path / "src", out)
    assert_skipped(result, out, "P_00002_RIGHT_MLO", "is truncated")
    assert "P_00002_RIGHT_MLO" not in open_store(out).case_ids


def test_enormous_headers_are_refused_before_allocation(tmp_path: Path) -> None:
    """Headers claiming 4-10 billion pixels (8-20 GB) are refused with a few MB of memory at most."""
    dcm = write_dicom(tmp_path / "big.dcm", phantom_image(), header_shape=(65_535, 65_535))
    png = tmp_path / "big.png"
    png.write_bytes(_png_claiming(100_000, 100_000))
    png_under_bomb_limit = tmp_path / "big2.png"
    png_under_bomb_limit.write_bytes(_png_claiming(12_000, 12_000))
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, np.ones((8, 8), np.uint16))
    with tifffile.TiffFile(tif, mode="r+b") as handle:
        handle.pages[0].tags["ImageWidth"].overwrite(100_000)
        handle.pages[0].tags["ImageLength"].overwrite(100_000)
    small = tmp_path / "small.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(small)
    read_image(small)  # import the decoders before measuring
    read_dicom(write_dicom(tmp_path / "small.dcm", phantom_image()))
    for path, reader in ((dcm, read_dicom), (png, read_image),
                         (png_under_bomb_limit, read_image), (tif, read_image)):
        tracemalloc.start()
        try:
            with pytest.raises(InputFileError, match="claims") as info:
                reader(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert path.name in str(info.value) and "Fix:" in str(info.value)
        assert peak < 8 * 2**20, f"{path.name}: peak {peak / 2**20:.1f} MiB before refusing"


# --------------------------------------------------------------------------------- CSVs


CBIS_CSV = "mass_case_description_train_set.csv"


def test_empty_csv_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / CBIS_CSV).write_bytes(b"")
    out = tmp_path / "m.zarr"
    assert_refused(mammo("ingest", src, out), out, CBIS_CSV, "is empty")


def test_csv_missing_columns_is_refused(tmp_path: Path) -> None:
    write_cbis(tmp_path / "src")
    (tmp_path / "src" / "calc_case_description_train_set.csv").unlink()
    csv = tmp_path / "src" / CBIS_CSV
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(line.rsplit(",", 3)[0] for line in lines) + "\n")
    out = tmp_path / "m.zarr"
    assert_refused(mammo("ingest", tmp_path / "src", out), out, CBIS_CSV, "no column(s)",
                   "image file path")


def test_bcdr_csv_missing_columns_is_refused(tmp_path: Path) -> None:
    write_bcdr(tmp_path / "src")
    sub = tmp_path / "src" / "BCDR-F01_dataset"
    (sub / "bcdr_f01_outlines.csv").write_text("patient_id,whatever\n3,4\n")
    (sub / "bcdr_f01_img.csv").unlink()
    out = tmp_path / "m.zarr"
    assert_refused(mammo("ingest", tmp_path / "src", out), out, "bcdr_f01_outlines.csv",
                   "not a BCDR outlines CSV", "lw_x_points")


def test_garbled_csv(tmp_path: Path) -> None:
    junk = bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    write_cbis(tmp_path / "src")
    calc = tmp_path / "src" / "calc_case_description_train_set.csv"
    calc.write_bytes(junk)
    out = tmp_path / "m.zarr"
    assert_skipped(mammo("ingest", tmp_path / "src", out), out, calc.name,
                   "cannot be read as CSV")
    (tmp_path / "src" / CBIS_CSV).write_bytes(junk.replace(b"\0", b"\1"))
    (tmp_path / "src" / "CBIS-DDSM").rename(tmp_path / "elsewhere")
    out2 = tmp_path / "m2.zarr"
    assert_refused(mammo("ingest", tmp_path / "src", out2), out2, CBIS_CSV,
                   "cannot be read as CSV")


def test_garbled_inbreast_csv_is_skipped(tmp_path: Path) -> None:
    write_inbreast(tmp_path / "src")
    (tmp_path / "src" / "INbreast.csv").write_bytes(b"\xff\xfe\x00garbage;\x00\n" * 50)
    out = tmp_path / "m.zarr"
    assert_skipped(mammo("ingest", tmp_path / "src", out), out, "INbreast.csv", "File Name")
    assert len(open_store(out)) == 2


# ------------------------------------------------------------------------ safe loading


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event in ("open", "os.listdir", "os.scandir") and args:
        target = args[0]
        if isinstance(target, (str, bytes, os.PathLike)):
            _OPENED.append(os.fsdecode(target))


sys.addaudithook(_audit)


@contextlib.contextmanager
def never_opened(folder: Path) -> Iterator[None]:
    """Fail if the code under test opens or lists anything inside ``folder``."""
    global _OPENED
    _OPENED = []
    try:
        yield
        seen = list(_OPENED)
    finally:
        _OPENED = None
    root = folder.resolve()
    touched = sorted({p for p in seen if Path(p).resolve().is_relative_to(root)})
    assert touched == [], f"read outside the source folder: {touched}"
    assert seen, "the audit hook recorded nothing"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the source holding files a source must not reach."""
    folder = tmp_path / "outside"
    write_dicom(folder / "secret.dcm", phantom_image(seed=99))
    mask = np.zeros((64, 48), np.uint8)
    mask[10:20, 10:20] = 255
    write_dicom(folder / "secret_mask.dcm", mask)
    (folder / "secret.csv").write_text("patient_id\nP_1\n")
    Image.fromarray(phantom_image(seed=98).astype(np.uint8)).save(folder / "secret.png")
    tifffile.imwrite(folder / "secret.tif", (phantom_image(seed=97) // 257).astype(np.uint8))
    (folder / "secret.xml").write_bytes(b"<plist><dict/></plist>")
    return folder


def test_csv_paths_escaping_the_source_are_refused(tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "src"
    write_cbis(src)
    csv_path = src / CBIS_CSV
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    template = next(r for r in rows if r["patient_id"] == "P_00004")
    image_key, roi_key = "image file path", "ROI mask file path"
    for pid, key, value in (
        ("P_00006", image_key, "../../outside/secret.dcm"),
        ("P_00007", image_key, str(outside / "secret.dcm")),
        ("P_00008", roi_key, "..\\..\\outside\\secret_mask.dcm"),
    ):
        rows.append({**template, "patient_id": pid, key: value})
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(template))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "m.zarr"
    with never_opened(outside):
        result = mammo("ingest", src, out)
    assert_skipped(result, out, "P_00006", "climbs out of the source folder")
    assert_skipped(result, out, "P_00007", "is absolute")
    assert_skipped(result, out, "P_00008", "climbs out")
    assert_skipped(result, out, "P_00003", "climbs out")

    write_bcdr(tmp_path / "bcdr")
    info = tmp_path / "bcdr" / "BCDR-F01_dataset" / "bcdr_f01_img.csv"
    info.write_text(info.read_text().replace(" patient_4/study_6/img_4_6_1_LMLO.tif",
                                             "../../outside/secret.tif"))
    out = tmp_path / "b.zarr"
    with never_opened(outside):
        result = mammo("ingest", tmp_path / "bcdr", out)
    assert_skipped(result, out, "bcdr_f01_img.csv:4", "climbs out")


def _link(path: Path, target: Path) -> None:
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links need privileges on Windows")
def test_symlinks_out_of_the_source_are_refused(tmp_path: Path, outside: Path) -> None:
    outside_msg = "outside the source folder"
    # CBIS-DDSM: a linked full mammogram, ROI mask and CSV; a linked CBIS-DDSM tree
    cbis = tmp_path / "cbis"
    write_cbis(cbis)
    image = next((cbis / "CBIS-DDSM").glob("Mass-Test_P_00002_RIGHT_MLO/*/*/1-1.dcm"))
    _link(image, outside / "secret.dcm")
    # row 2 of P_00001 lists (columns swapped) the file in the -crop folder as its ROI mask
    roi = next((cbis / "CBIS-DDSM").glob("Mass-Training_P_00001_LEFT_CC_2/*/*-crop/1-1.dcm"))
    _link(roi, outside / "secret_mask.dcm")
    _link(cbis / "calc_case_description_test_set.csv", outside / "secret.csv")
    out = tmp_path / "c.zarr"
    with never_opened(outside):
        result = mammo("ingest", cbis, out)
    assert_skipped(result, out, "P_00002_RIGHT_MLO", outside_msg)
    assert_skipped(result, out, "calc_case_description_test_set.csv", outside_msg)
    assert_skipped(result, out, "P_00001_LEFT_CC", outside_msg)

    tree = tmp_path / "tree"
    (cbis / "CBIS-DDSM").rename(tree)
    _link(cbis / "CBIS-DDSM", tree)
    out = tmp_path / "c2.zarr"
    with never_opened(tree):
        assert_refused(mammo("ingest", cbis, out), out, "CBIS-DDSM", outside_msg)

    # INbreast: a linked DICOM and a linked XML (its image is skipped, not imported bare)
    inb = tmp_path / "inbreast"
    write_inbreast(inb)
    _link(inb / "AllDICOMs" / BAD_NAME, outside / "secret.dcm")
    _link(inb / "AllXML" / "20586934.xml", outside / "secret.xml")
    out = tmp_path / "i.zarr"
    with never_opened(outside):
        result = mammo("ingest", inb, out)
    assert_skipped(result, out, BAD_NAME, outside_msg)
    assert_skipped(result, out, "20586934.xml", outside_msg)
    assert open_store(out).case_ids == ["20586908"]

    # BCDR: a linked TIFF; folder: a linked PNG
    bcdr = tmp_path / "bcdr"
    write_bcdr(bcdr)
    _link(bcdr / "BCDR-F01_dataset" / "patient_3" / "study_5" / "img_3_5_1_RCC.tif",
          outside / "secret.tif")
    out = tmp_path / "b.zarr"
    with never_opened(outside):
        result = mammo("ingest", bcdr, out)
    assert_skipped(result, out, "img_3_5_1_RCC.tif", outside_msg)

    folder = tmp_path / "folder"
    write_folder(folder)
    _link(folder / "mass_seg_08" / "test" / "mg" / "0.png", outside / "secret.png")
    out = tmp_path / "f.zarr"
    with never_opened(outside):
        result = mammo("ingest", folder, out)
    assert_skipped(result, out, "mass_seg_08/test/mg/0.png", outside_msg)


# ----------------------------------------------------------------- masks, values, blanks


def _folder_with(tmp_path: Path, *, mask: np.ndarray | None = None,
                 image: np.ndarray | None = None, suffix: str = ".png") -> Path:
    """write_folder's layout with ``train01/0`` replaced by ``image`` and/or ``mask``."""
    src = tmp_path / "src"
    write_folder(src)
    subset = src / "mass_seg_08" / "train01"
    if mask is not None:
        Image.fromarray(mask).save(subset / "mask" / "0.png")
    if image is not None:
        (subset / "mg" / "0.png").unlink()
        tifffile.imwrite(subset / "mg" / f"0{suffix}", image) if suffix == ".tif" else (
            Image.fromarray(image).save(subset / "mg" / f"0{suffix}"))
    return src


def test_mask_of_another_size(tmp_path: Path) -> None:
    half = np.zeros((32, 24), np.uint8)
    half[5:15, 5:15] = 255
    src = _folder_with(tmp_path / "a", mask=half)
    out = tmp_path / "a.zarr"
    result = mammo("ingest", src, out)
    assert result.exit_code == 0, result.output
    record = open_store(out).record("mass_seg_08_train01_0")
    assert any("resized to the image's 64x48" in n for n in record.notes)

    stripe = np.zeros((10, 300), np.uint8)
    stripe[2:5, 10:50] = 255
    src = _folder_with(tmp_path / "b", mask=stripe)
    out = tmp_path / "b.zarr"
    assert_skipped(mammo("ingest", src, out), out, "train01/mask/0.png",
                   "10x300 but the image is 64x48")


def test_mask_of_another_shape_alone_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for kind, arr in (("mg", (phantom_image() // 257).astype(np.uint8)),
                      ("mask", np.full((10, 300), 255, np.uint8))):
        (src / kind).mkdir(parents=True)
        Image.fromarray(arr).save(src / kind / "0.png")
    out = tmp_path / "m.zarr"
    assert_refused(mammo("ingest", src, out, "--format", "folder"), out, "mask/0.png",
                   "another aspect ratio")


def test_all_black_image_is_skipped(tmp_path: Path) -> None:
    src = _folder_with(tmp_path, image=np.zeros((64, 48), np.uint8))
    out = tmp_path / "m.zarr"
    assert_skipped(mammo("ingest", src, out), out, "train01/mg/0.png", "is blank")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_skipped(tmp_path: Path, value: float) -> None:
    image = phantom_image().astype(np.float32)
    image[5, 5] = value
    src = _folder_with(tmp_path, image=image, suffix=".tif")
    out = tmp_path / "m.zarr"
    assert_skipped(mammo("ingest", src, out), out, "train01/mg/0.tif", "NaN or infinite")


def test_nan_tiff_in_bcdr_is_skipped(tmp_path: Path) -> None:
    write_bcdr(tmp_path / "src")
    image = phantom_image().astype(np.float32)
    image[0, :] = np.nan
    tifffile.imwrite(tmp_path / "src" / "BCDR-F01_dataset" / "patient_3" / "study_5"
                     / "img_3_5_1_LCC.tif", image)
    out = tmp_path / "m.zarr"
    assert_skipped(mammo("ingest", tmp_path / "src", out), out, "img_3_5_1_LCC.tif",
                   "NaN or infinite")


# ----------------------------------------------------------------------------- stores


def _breast_store(path: Path) -> Path:
    parent = open_store(write_mammograms(path.parent / "parent.zarr"))
    return write_breast(path, parent)


def _retag(store: Path, **changes: object) -> Path:
    group = zarr.open_group(str(store), mode="r+", zarr_format=3)
    meta = dict(group.attrs["mammo"])
    meta.update(changes)
    group.attrs["mammo"] = meta
    return store


def _reshape(store: Path) -> Path:
    group = zarr.open_group(str(store), mode="r+", zarr_format=3)
    del group["images"]
    group.create_array("images", shape=(2, 16, 12), dtype="uint16", fill_value=0)
    return store


def _half_written(store: Path) -> Path:
    zarr.open_group(str(store), mode="w", zarr_format=3).create_group("cases")
    return store


def _file(store: Path) -> Path:
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a store")
    return store


BAD_STORES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "unknown-version": (lambda p: _retag(write_mammograms(p), schema_version="9.0"),
                        ("mammo.schema_version", "'9.0' is not supported", "upgrade")),
    "unknown-kind": (lambda p: _retag(write_mammograms(p), kind="xray"),
                     ("mammo.kind", "unknown store kind 'xray'")),
    "wrong-shape": (lambda p: _reshape(_breast_store(p)),
                    ("images", "has shape (2, 16, 12)", "re-create the breast store")),
    "bad-metadata": (lambda p: _retag(write_mammograms(p), case_ids="P_1"),
                     ("mammo.case_ids", "re-create the store")),
    "half-written": (_half_written, ("no 'mammo' attribute", "never finished")),
    "not-a-store": (_file, ("not a Zarr v3 store",)),
    "missing": (lambda p: p, ("does not exist",)),
}


@pytest.mark.parametrize("damage", sorted(BAD_STORES))
def test_bad_store_is_refused_by_every_reader(tmp_path: Path, damage: str) -> None:
    make, needles = BAD_STORES[damage]
    store = make(tmp_path / "in" / "s.zarr")
    before = tree_digest(tmp_path / "in") if (tmp_path / "in").exists() else ""
    outs = tmp_path / "outs"
    outs.mkdir()
    for command, out in (("validate", None), ("info", None), ("split", outs / "splits.json"),
                         ("show", outs / "sheet.png"), ("report", outs / "report")):
        args = [command, store] + ([] if out is None else ["-o", out])
        text = assert_refused(mammo(*args), out or outs / "none", str(store), *needles)
        assert text.count("Fix:") == 1, text
    assert list(outs.iterdir()) == []
    if before:
        assert tree_digest(tmp_path / "in") == before, "readers never modify a store"


def test_store_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    breast = _breast_store(tmp_path / "b.zarr")
    result = mammo("validate", breast, "--kind", "mammograms")
    assert_refused(result, tmp_path / "none", str(breast), "mammo.kind",
                   "is a 'breast' store, but a 'mammograms' store is needed", "mammo ingest")


def test_output_problems_are_reported_without_traceback(tmp_path: Path) -> None:
    write_inbreast(tmp_path / "src")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = mammo("ingest", tmp_path / "src", blocker / "m.zarr")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    assert str(blocker) in result.output
    result = mammo("ingest", tmp_path / "src", tmp_path / "src" / "m.zarr")
    assert_refused(result, tmp_path / "src" / "m.zarr", "inside an input")
    shutil.rmtree(tmp_path / "src")
