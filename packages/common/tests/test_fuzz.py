"""Property-based fuzzing (hypothesis) of the readers of untrusted files.

The CSV readers (CBIS-DDSM, BCDR, INbreast's semicolon CSV), the INbreast OsiriX plist XML
reader and the DICOM reader are fed arbitrary or mutated bytes and text. Whatever they get, they
must return usable data, skip (and report) what they cannot use, or raise the project's
:class:`~mammo_common.errors.MammoError`; never another exception, never hang (every example has
a deadline), and never write anywhere (the source tree is unchanged; the output folder holds the
finished store or nothing).

Examples are derandomised so CI is stable; each property runs in a few seconds.
"""

from __future__ import annotations

import plistlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from formats import (
    osirix_plist,
    phantom_image,
    tree_digest,
    write_bcdr,
    write_cbis,
    write_dicom,
    write_inbreast,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammo_common.errors import MammoError
from mammo_common.ingest import IngestConfig, iter_source_cases, run_ingest
from mammo_common.ingest.dicom import read_dicom
from mammo_common.ingest.inbreast import read_rois
from mammo_common.ingest.report import IngestReport

FUZZ = settings(
    max_examples=60,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------------ mutations


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, keep: int = 0) -> bytes:
    """``seed`` with a few bytes overwritten, spans deleted or inserted, and maybe truncated.

    The first ``keep`` bytes are left alone (e.g. the DICOM preamble and ``DICM`` marker, so
    that the mutations reach the header and the pixel data).
    """
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        if len(data) <= keep:
            break
        op = draw(st.sampled_from(("flip", "flip", "flip", "delete", "insert", "truncate")))
        pos = draw(st.integers(keep, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[pos:]
    return bytes(data)


JUNK_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(
    ("../../etc/passwd", "/etc/passwd", "C:\\x.dcm", "\x00", "nan", "inf", "-1e999", "1e999",
     ";", ",", '"', "\n", "\r\n", "a" * 300, "Mass", "4a", " ", "..", "./.", "e")
)


@st.composite
def mutated_text(draw: st.DrawFn, seed: str) -> str:
    """``seed`` with cells replaced by junk, lines deleted or duplicated, or junk inserted."""
    lines = seed.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        k = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("cell", "cell", "delete", "duplicate", "insert")))
        if op == "cell":
            sep = "," if "," in lines[k] else ";"
            cells = lines[k].rstrip("\r\n").split(sep)
            cells[draw(st.integers(0, len(cells) - 1))] = draw(JUNK_TEXT)
            lines[k] = sep.join(cells) + "\n"
        elif op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        else:
            lines.insert(k, draw(JUNK_TEXT) + "\n")
    return "".join(lines)


def text_or_junk(seed: str) -> st.SearchStrategy[bytes]:
    """Mutated ``seed`` (encoded), or arbitrary bytes."""
    return st.one_of(
        mutated_text(seed).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated_text(seed).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated_bytes(seed.encode()),
        st.binary(max_size=300),
    )


# -------------------------------------------------------------------------------- helpers


def consume(source: Path, fmt: str) -> IngestReport:
    """Run an importer over ``source`` to the end (no store is written); return its report."""
    report = IngestReport(source)
    config = IngestConfig(source=source, out=source.parent / "unused.zarr", progress=False)
    for item in iter_source_cases(source, fmt, report, config):  # type: ignore[arg-type]
        assert item.image.ndim == 2 and item.image.dtype == np.uint16
        for mask in (item.mass_mask, item.mass_labels):
            assert mask is None or mask.shape == item.image.shape
    return report


def only_mammo_errors(fn: Callable[[], object]) -> None:
    """Call ``fn``: it may succeed or raise MammoError, nothing else."""
    try:
        fn()
    except MammoError as exc:
        assert exc.message and exc.exit_code == 2


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny source of each format, written once and reused by the examples."""
    root = tmp_path_factory.mktemp("fuzz")
    made = {}
    for name, writer in (("cbis", write_cbis), ("bcdr", write_bcdr), ("inbreast", write_inbreast)):
        writer(root / name)
        made[name] = root / name
    return made


# ---------------------------------------------------------------------------- CSV readers


CBIS_CSV = "mass_case_description_train_set.csv"
BCDR_CSV = "BCDR-F01_dataset/bcdr_f01_outlines.csv"


def _seed_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seeds(sources: dict[str, Path]) -> dict[str, str]:
    return {
        "cbis": _seed_text(sources["cbis"] / CBIS_CSV),
        "bcdr": _seed_text(sources["bcdr"] / BCDR_CSV),
        "inbreast": _seed_text(sources["inbreast"] / "INbreast.csv"),
    }


def _fuzz_csv(source: Path, rel: str, fmt: str, data: bytes) -> None:
    path = source / rel
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        before = tree_digest(source)
        only_mammo_errors(lambda: consume(source, fmt))
        assert tree_digest(source) == before, "the importer must never write into the source"
    finally:
        path.write_bytes(original)


@FUZZ
@given(data=st.data())
def test_cbis_csv_reader_survives_anything(sources, seeds, data) -> None:
    blob = data.draw(text_or_junk(seeds["cbis"]))
    _fuzz_csv(sources["cbis"], CBIS_CSV, "cbis-ddsm", blob)


@FUZZ
@given(data=st.data())
def test_bcdr_csv_reader_survives_anything(sources, seeds, data) -> None:
    blob = data.draw(text_or_junk(seeds["bcdr"]))
    _fuzz_csv(sources["bcdr"], BCDR_CSV, "bcdr", blob)


@FUZZ
@given(data=st.data())
def test_inbreast_csv_reader_survives_anything(sources, seeds, data) -> None:
    blob = data.draw(text_or_junk(seeds["inbreast"]))
    _fuzz_csv(sources["inbreast"], "INbreast.csv", "inbreast", blob)


@settings(FUZZ, max_examples=12, deadline=5000)
@given(data=st.data())
def test_ingest_writes_the_store_or_nothing(sources, seeds, data) -> None:
    """Through run_ingest: a fuzzed CSV gives a valid store or a MammoError, and no stray file."""
    blob = data.draw(text_or_junk(seeds["cbis"]))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(sources["cbis"], source)
        (source / CBIS_CSV).write_bytes(blob)
        before = tree_digest(source)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        out = out_dir / "m.zarr"
        try:
            run_ingest(IngestConfig(source=source, out=out, progress=False))
        except MammoError:
            assert not out.exists()
        assert tree_digest(source) == before
        assert sorted(p.name for p in out_dir.iterdir()) in ([], ["m.zarr"])
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["out", "src"]


# --------------------------------------------------------------------------- INbreast XML


#: Text a plist can hold (XML forbids most control characters).
PLIST_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30
) | st.sampled_from(("Mass", "Spiculated Region", "Calcification", "(1, 2)", "(nan, 1)",
                     "(1e999, 2)", "(e, 1)", "(-5, -7, 0)", "4a"))
PLIST_VALUES = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | PLIST_TEXT | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(("Images", "ROIs", "Name", "Point_px", "NumberOfPoints",
                                       "x")) | PLIST_TEXT, children, max_size=4),
    max_leaves=20,
)


def _structured_plist(value: object) -> bytes:
    return plistlib.dumps({"Images": [{"ROIs": value}]} if not isinstance(value, dict) else value)


ROI_SEED = osirix_plist([
    ("Mass", [(10.0, 20.0), (20.0, 20.0), (20.0, 30.0), (10.0, 30.0)]),
    ("Calcification", [(30.0, 40.0)]),
    ("Spiculated Region", [(1.0, 1.0), (40.0, 2.0), (30.0, 60.0)]),
])


@FUZZ
@given(
    blob=st.one_of(
        mutated_bytes(ROI_SEED),
        PLIST_VALUES.map(_structured_plist),
        st.binary(max_size=300),
        st.just(b'<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaaaaaaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><plist><string>&b;</string></plist>'),
    )
)
def test_inbreast_xml_reader_survives_anything(sources, blob) -> None:
    source = sources["inbreast"]
    xml = source / "AllXML" / "20586908.xml"
    original = xml.read_bytes()
    xml.write_bytes(blob)
    try:
        only_mammo_errors(lambda: read_rois(xml))
        report = consume(source, "inbreast")
        assert report.used or report.skipped
    finally:
        xml.write_bytes(original)


# ---------------------------------------------------------------------------------- DICOM


@pytest.fixture(scope="module")
def dicom_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("dcm") / "seed.dcm"
    write_dicom(path, phantom_image((16, 12)), window=(20000.0, 40000.0), rescale=(0.0, 1.0))
    return path.read_bytes()


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_dicom_reader_survives_anything(dicom_seed, data) -> None:
    blob = data.draw(st.one_of(mutated_bytes(dicom_seed, keep=132), mutated_bytes(dicom_seed),
                               st.binary(max_size=400)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.dcm"
        path.write_bytes(blob)

        def read() -> None:
            image, info = read_dicom(path, max_pixels=1_000_000)
            assert image.ndim == 2 and image.dtype == np.uint16
            assert info.shape == image.shape

        only_mammo_errors(read)
        assert [p.name for p in Path(tmp).iterdir()] == ["x.dcm"]
