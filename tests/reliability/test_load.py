"""Load: predict over 500 synthetic cases loses no case and streams with flat memory.

The ``mammograms`` stores (50 and 500 cases of SIDE x SIDE phantoms) are written directly with
``MammogramsWriter``. ``breastseg predict --method threshold`` runs on each in its own
subprocess, through a small wrapper process that reports the peak resident memory of its
children (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, so nothing else this test session ran is
counted).

Tolerance: the 500-case peak must stay within 1.3x the 50-case peak. The peak is dominated by
the interpreter and its libraries (NumPy, SciPy, scikit-image, Zarr, pydantic: about
105 MB here) and by one case's working arrays; a predict that kept every input image in memory
would add 450 x SIDE^2 x 2 bytes (59 MB at SIDE=256; measured: x1.56, caught), while allocator
noise and the growing per-case records (a few hundred kB for 500 cases) stay far below the
30 % margin (measured: x1.05).

Then ``massseg predict`` with the tiny model runs over the 500-case breast store (in process):
500 cases in, the same 500 out, in order.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import cli_command, invoke

from mammo_common.schema import CaseRecord, Producer
from mammo_common.store import MammogramsWriter, open_store

#: Image side of the load phantoms (pixels).
SIDE = 256
#: Allowed ratio of the 500-case to the 50-case peak resident memory.
TOLERANCE = 1.3

WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'PEAK_RSS_KB {peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def write_phantoms(path: Path, n: int) -> list[str]:
    """A ``mammograms`` store of ``n`` phantoms (a bright half-disc breast); their case ids."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    producer = Producer(package="tests", version="0", command="load phantoms")
    ids = []
    with MammogramsWriter(path, source_format="folder", producer=producer) as writer:
        for i in range(n):
            radius = SIDE * (0.55 + 0.3 * ((i * 37) % 100) / 100)
            breast = (rows - SIDE / 2) ** 2 + cols**2 < radius**2
            image = np.where(breast, 20000 + 40 * (i % 200), 1500).astype(np.uint16)
            case_id = f"P_{i:05d}_LEFT_CC"
            record = CaseRecord(
                case_id=case_id, patient_id=f"P_{i:05d}", laterality="L", view="CC",
                abnormality="none", pathology="unknown", original_shape=image.shape,
            )
            writer.add_case(record, image)
            ids.append(case_id)
    return ids


def peak_rss_kb(*command: str) -> tuple[int, str]:
    """Run ``command`` under the wrapper; its children's peak RSS (kB) and its output."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB")][-1]
    return int(line.split()[1]), proc.stdout


@pytest.fixture(scope="module")
def breast_500(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """``breastseg predict`` over 50 and 500 cases: the 500-case breast store and its ids.

    Asserts no case is lost and the peak memory is flat (see the module docstring).
    """
    root = tmp_path_factory.mktemp("load")
    peaks = {}
    for n in (50, 500):
        ids = write_phantoms(root / f"m{n}.zarr", n)
        out = root / f"b{n}.zarr"
        peaks[n], output = peak_rss_kb(*cli_command(
            "breastseg", "predict", "--method", "threshold", "--data", root / f"m{n}.zarr",
            "--out", out, "--output-size", "64x64"))
        store = open_store(out, "breast", deep=True)
        assert store.case_ids == ids, f"{n} cases in, {len(store)} out:\n{output}"
    ratio = peaks[500] / peaks[50]
    assert ratio <= TOLERANCE, (
        f"peak RSS {peaks[500] / 1024:.0f} MB for 500 cases vs {peaks[50] / 1024:.0f} MB for 50 "
        f"(x{ratio:.2f} > x{TOLERANCE}): predict does not stream"
    )
    return root / "b500.zarr", ids


def test_breastseg_predict_500_cases_streams(breast_500) -> None:
    store, ids = breast_500
    assert len(open_store(store, "breast")) == len(ids) == 500


def test_massseg_predict_500_cases_loses_none(breast_500, massseg_model: Path,
                                              tmp_path: Path) -> None:
    from massseg.cli import app

    breast, ids = breast_500
    out = tmp_path / "masses.zarr"
    invoke(app, "predict", "--model", massseg_model, "--data", breast, "--out", out)
    store = open_store(out, "masses", deep=True)
    assert store.case_ids == ids
    assert store.array("mass_pred").shape == (500, 64, 64)
