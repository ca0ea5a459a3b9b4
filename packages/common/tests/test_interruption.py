"""Interrupted commands leave nothing that passes for a finished output, and a rerun completes.

``mammo ingest`` and ``mammo synth`` run as real subprocesses
(``python -m mammo_common.cli ...``) and are killed with SIGKILL (or interrupted with SIGINT)
once their hidden staging folder holds part of the output. A ``sitecustomize`` module on
``PYTHONPATH`` slows each case down a little (a sleep before each one), so the kill lands in
the middle of the run on any machine without needing a large dataset.

Stage commands (``breastseg/massseg/massclass predict`` and ``train``) are covered by the stage
packages' own tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from formats import tree_digest
from typer.testing import CliRunner

from mammo_common.cli import app
from mammo_common.errors import EXIT_INTERRUPTED, StoreError
from mammo_common.store import open_store
from mammo_common.synth import synth

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")

runner = CliRunner()

#: Seconds each case (ingest) or image (synth) is delayed in the subprocess.
DELAY = 0.2

SITECUSTOMIZE = f'''
"""Test hook: slow the mammo writers down so that a kill lands mid-run."""
import os
import time

if os.environ.get("MAMMO_TEST_THROTTLE"):
    import mammo_common.synth as _synth
    from mammo_common.store.writers import MammogramsWriter as _Writer

    _add_case = _Writer.add_case
    _write_image = _synth.write_image

    def _slow_add_case(self, *args, **kwargs):
        time.sleep({DELAY})
        return _add_case(self, *args, **kwargs)

    def _slow_write_image(*args, **kwargs):
        time.sleep({DELAY})
        return _write_image(*args, **kwargs)

    _Writer.add_case = _slow_add_case
    _synth.write_image = _slow_write_image
'''


def start(tmp_path: Path, *args: str | Path) -> subprocess.Popen:
    """Start ``python -m mammo_common.cli ARGS`` with the throttle hook."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, MAMMO_TEST_THROTTLE="1", MAMMO_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(hook), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, "-m", "mammo_common.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        # A test runner started in the background by a non-interactive shell inherits SIGINT
        # ignored, and Python keeps an ignored SIGINT ignored: give the child the default
        # disposition so that Ctrl-C (SIGINT) reaches it as it would from a terminal.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def staging(final: Path) -> list[Path]:
    """The hidden staging paths of ``final`` (``.NAME.tmp-*``)."""
    return sorted(final.parent.glob(f".{final.name}.tmp-*"))


def wait_for(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    """Poll until ``ready()`` holds; fail if the process ends first or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():
            return
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the command ended (exit {proc.returncode}) before the kill:\n{out}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the staging folder never filled up")


def n_staged_cases(final: Path) -> int:
    tmp = staging(final)
    if not tmp or not (tmp[0] / "cases").is_dir():
        return 0
    return sum(1 for _ in (tmp[0] / "cases").iterdir())


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A synthetic CBIS-DDSM source of about ten images, and its number of images."""
    out = tmp_path_factory.mktemp("interrupt") / "raw"
    result = synth(out, cases=4, seed=3, size=(96, 72))
    return out, result.n_images


def test_sigkill_during_ingest_leaves_no_store_and_rerun_cleans_up(raw, tmp_path) -> None:
    raw, n_images = raw
    final = tmp_path / "out" / "m.zarr"
    proc = start(tmp_path, "ingest", raw, final)
    wait_for(proc, lambda: n_staged_cases(final) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists(), "a killed ingest must not leave the final store"
    with pytest.raises(StoreError, match="does not exist"):
        open_store(final)
    stale = staging(final)
    assert len(stale) == 1, "the kill landed mid-run: its staging folder is left behind"
    with pytest.raises(StoreError):  # the half-written staging folder is no finished store
        open_store(stale[0])

    result = runner.invoke(app, ["ingest", str(raw), str(final)])
    assert result.exit_code == 0, result.output
    assert len(open_store(final, "mammograms", deep=True)) == n_images
    assert staging(final) == [], "the rerun removes the stale temporary"
    assert sorted(p.name for p in final.parent.iterdir()) == ["m.zarr"]


def test_sigint_during_overwrite_keeps_the_old_store(raw, tmp_path) -> None:
    raw, _ = raw
    final = tmp_path / "m.zarr"
    assert runner.invoke(app, ["ingest", str(raw), str(final)]).exit_code == 0
    before = tree_digest(final)
    proc = start(tmp_path, "ingest", raw, final, "--overwrite")
    wait_for(proc, lambda: n_staged_cases(final) >= 2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    text = out.decode(errors="replace")
    assert proc.returncode == EXIT_INTERRUPTED, text
    assert "interrupted" in text and "Traceback" not in text
    assert tree_digest(final) == before, "the old store is untouched"
    open_store(final, "mammograms", deep=True)
    assert staging(final) == [], "Ctrl-C removes the staging folder itself"


def test_sigkill_during_synth_leaves_no_folder_and_rerun_matches(tmp_path) -> None:
    final = tmp_path / "raw"
    args = ["synth", final, "--cases", "4", "--seed", "5", "--size", "64x48"]

    def started() -> bool:
        tmp = staging(final)
        cbis = tmp[0] / "CBIS-DDSM" if tmp else None
        return cbis is not None and cbis.is_dir() and sum(1 for _ in cbis.iterdir()) >= 2

    proc = start(tmp_path, *args)
    wait_for(proc, started)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not final.exists()
    assert len(staging(final)) == 1

    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert staging(final) == []
    reference = tmp_path / "reference"
    synth(reference, cases=4, seed=5, size=(64, 48))
    assert tree_digest(final) == tree_digest(reference), "the rerun equals an uninterrupted run"
