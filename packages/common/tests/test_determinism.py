"""Same arguments, same bytes: synth, ingest (every format) and split, through the CLI.

"Same arguments" includes the output path, which ingest records in the store's lineage
(producer parameters); a second run therefore writes to the same path after the first result
was moved aside. synth does not record its output path, so its outputs are compared across two
folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from formats import write_bcdr, write_cbis, write_folder, write_inbreast
from typer.testing import CliRunner

from mammo_common.cli import app

runner = CliRunner()


def mammo(*args: str | Path) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_files(first: Path, second: Path) -> None:
    a, b = files(first), files(second)
    assert sorted(a) == sorted(b), "the same files are written"
    differing = [name for name in a if a[name] != b[name]]
    assert differing == [], f"bytes differ in {differing[:5]}"


SYNTH = ["--cases", "2", "--seed", "7", "--size", "64x48"]


def test_synth_is_byte_identical(tmp_path: Path) -> None:
    mammo("synth", tmp_path / "a" / "raw", *SYNTH)
    mammo("synth", tmp_path / "b" / "raw", *SYNTH)
    assert_same_files(tmp_path / "a" / "raw", tmp_path / "b" / "raw")
    assert len(files(tmp_path / "a" / "raw")) > 5

    mammo("synth", tmp_path / "c" / "raw", "--cases", "2", "--seed", "8", "--size", "64x48")
    assert files(tmp_path / "c" / "raw") != files(tmp_path / "a" / "raw"), "the seed matters"


def _synth_source(root: Path) -> None:
    mammo("synth", root, *SYNTH)


@pytest.mark.parametrize(
    "writer", [_synth_source, write_cbis, write_inbreast, write_bcdr, write_folder],
    ids=["synth", "cbis-ddsm", "inbreast", "bcdr", "folder"],
)
def test_ingest_is_byte_identical(tmp_path: Path, writer) -> None:
    source, out = tmp_path / "raw", tmp_path / "m.zarr"
    writer(source)
    mammo("ingest", source, out)
    out.rename(tmp_path / "first.zarr")
    mammo("ingest", source, out)
    assert_same_files(tmp_path / "first.zarr", out)
    mammo("ingest", source, out, "--overwrite")
    assert_same_files(tmp_path / "first.zarr", out)


def test_split_is_byte_identical(tmp_path: Path) -> None:
    source, store = tmp_path / "raw", tmp_path / "m.zarr"
    mammo("synth", source, "--cases", "6", "--seed", "1", "--size", "48x36")
    mammo("ingest", source, store)
    args = ["split", store, "--folds", "2", "--test-fraction", "0.25"]
    mammo(*args, "-o", tmp_path / "a.json", "--seed", "3")
    mammo(*args, "-o", tmp_path / "b.json", "--seed", "3")
    mammo(*args, "-o", tmp_path / "c.json", "--seed", "4")
    first = (tmp_path / "a.json").read_bytes()
    assert (tmp_path / "b.json").read_bytes() == first
    assert (tmp_path / "c.json").read_bytes() != first, "another seed gives other splits"
