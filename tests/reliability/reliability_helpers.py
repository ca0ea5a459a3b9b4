"""Helpers of the stage reliability tests: CLI calls, refusal checks, digests, subprocesses."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

runner = CliRunner()

#: Seconds each throttled step (a written case, a training batch) is delayed in a subprocess.
DELAY = 0.15

#: Installed as ``sitecustomize`` on the ``PYTHONPATH`` of throttled subprocesses: slows the
#: stacked-store writer (``MAMMO_TEST_THROTTLE=writer``: breastseg and massseg predict) or the
#: training batches (``=dataset``: massseg/breastseg train) so that a kill lands mid-run on any
#: machine, without a large dataset.
SITECUSTOMIZE = f'''
"""Test hook: slow the stage commands down so that a kill lands mid-run."""
import os
import time

_what = os.environ.get("MAMMO_TEST_THROTTLE", "")
if _what == "writer":
    from mammo_common.store.writers import StackedStoreWriter as _Writer

    _write_case = _Writer.write_case

    def _slow_write_case(self, *args, **kwargs):
        time.sleep({DELAY})
        return _write_case(self, *args, **kwargs)

    _Writer.write_case = _slow_write_case
elif _what == "dataset":
    from mammo_common.keras.training.data import SegmentationDataset as _Dataset

    _getitem = _Dataset.__getitem__

    def _slow_getitem(self, idx):
        time.sleep({DELAY})
        return _getitem(self, idx)

    _Dataset.__getitem__ = _slow_getitem
'''


def invoke(app: typer.Typer, *args: object) -> Result:
    """Run a CLI in process and require success."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{args} failed (exit {result.exit_code}):\n{result.output}"
    return result


def call(app: typer.Typer, *args: object) -> Result:
    """Run a CLI in process, whatever its exit code."""
    return runner.invoke(app, [str(a) for a in args])


def hidden_siblings(path: Path) -> list[str]:
    """Names of the hidden paths next to ``path`` that belong to it (staging, old, training)."""
    if not path.parent.is_dir():
        return []
    return sorted(p.name for p in path.parent.glob(f".{path.name}*"))


def staging(final: Path) -> list[Path]:
    """The hidden staging paths of ``final`` (``.NAME.tmp-*``)."""
    return sorted(final.parent.glob(f".{final.name}.tmp-*"))


def assert_refused(result: Result, out: Path, *needles: str) -> str:
    """Exit 2, one ``error:`` message with a fix naming ``needles``, no traceback, no output."""
    text = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{text}\n{result.exception!r}"
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert text.count("Fix:") == 1, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    assert not out.exists(), f"nothing is written for bad input, but {out} exists"
    assert hidden_siblings(out) == [], f"hidden temporaries left: {hidden_siblings(out)}"
    return text


def file_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tree_digest(root: Path) -> str:
    """One SHA-256 over every file's relative path and bytes under ``root``."""
    h = hashlib.sha256()
    for name, digest in file_digests(root).items():
        h.update(name.encode())
        h.update(digest.encode())
    return h.hexdigest()


def model_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every weight array in a model folder's ``model.keras``, by HDF5 path."""
    with zipfile.ZipFile(folder / "model.keras") as archive:
        data = archive.read("model.weights.h5")
    weights: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(
            lambda name, obj: weights.__setitem__(name, obj[()])
            if isinstance(obj, h5py.Dataset) else None
        )
    return weights


def assert_same_weights(a: Path, b: Path) -> None:
    """The two model folders hold bit-identical weights."""
    wa, wb = model_weights(a), model_weights(b)
    assert wa and sorted(wa) == sorted(wb)
    differ = [name for name in wa if not np.array_equal(wa[name], wb[name])]
    assert differ == [], f"weights differ between {a} and {b}: {differ[:5]}"


def cli_command(package: str, *args: object) -> list[str]:
    """``python -m <package>.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", f"{package}.cli", *map(str, args)]


def start(tmp_path: Path, package: str, *args: object, throttle: str = "") -> subprocess.Popen:
    """Start a stage CLI as a subprocess, with the throttle hook when ``throttle`` is given."""
    env = dict(os.environ, MAMMO_NO_PROGRESS="1")
    if throttle:
        hook = tmp_path / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env["MAMMO_TEST_THROTTLE"] = throttle
        env["PYTHONPATH"] = os.pathsep.join([str(hook), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        cli_command(package, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll until ``ready()`` holds; fail if the process ends first or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the command ended (exit {proc.returncode}) before the kill:\n{out}")
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    pytest.fail("the command never reached the point of the kill")
