"""The real dvc.yaml, end to end at CI size: every stage's output validates, every metrics file
exists, a second `dvc repro` does nothing, and the breastseg stage can be swapped for the
threshold stand-in without touching the rest.

Runs in the `pipeline` nox session (all four packages and DVC installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mammo_common import open_store

REPO = Path(__file__).resolve().parents[2]

#: CI-size parameters: tiny images, tiny widths, one or two epochs per stage.
TINY = {
    "pipeline": {
        "massseg_archs": ["unet5l"],
        "massseg_folds": [1],
        "massseg_predict_arch": "unet5l",
        "massclass_archs": ["tinycnn"],
        "massclass_folds": [1],
        "massclass_predict_arch": "tinycnn",
    },
    "split": {"folds": 3, "test_fraction": 0.25, "seed": 0},
    "breastseg": {
        "train": {"input_size": [64, 48], "filters": 4, "epochs": 2, "batch_size": 3},
        "predict": {"output_size": [64, 64]},
        "evaluate": {"part": "test"},
    },
    "massseg": {
        "train": {"input_size": [64, 64], "epochs": 2, "batch_size": 2,
                  "arch_options": {"filters": 4}},
        "predict": {"min_object_pixels": 4},
        "evaluate": {"part": "test", "overlays": 1},
    },
    "massclass": {
        "train": {
            "input_size": 32,
            "weights": None,
            "batch_size": 4,
            "phases": [
                {"name": "head", "trainable": "head", "learning_rate": 0.001, "epochs": 1},
                {"name": "all", "trainable": "all", "learning_rate": 0.0001, "epochs": 1},
            ],
            "roi": {"source": "truth"},
        },
        "predict": {"threshold": 0.5},
        "evaluate": {"n_bootstrap": 50},
    },
}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAMMO_NO_PROGRESS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None and not shutil.which(
        "dvc"
    ):
        pytest.skip("dvc is not installed in this environment")
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    for src in sorted((REPO / "packages").glob("*/src")):  # the stages' code dependencies
        shutil.copytree(src, root / src.relative_to(REPO),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    (root / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    _run(["dvc", "init", "--no-scm", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    _run([sys.executable, "-m", "mammo_common.cli", "synth", "data/raw", "--cases", "8",
          "--size", "128x96", "--seed", "1"], root)
    _run(["dvc", "repro"], root)
    return root


def test_every_stage_output_validates(workspace: Path) -> None:
    kinds = {"mammograms": "mammograms", "breast": "breast", "masses": "masses",
             "diagnosis": "diagnosis"}
    for name, kind in kinds.items():
        store = open_store(workspace / "data" / f"{name}.zarr", kind, deep=True)
        assert len(store) > 0
        if kind != "mammograms":
            assert store.meta.parents, f"{name} records its parent"
    for name in ("breastseg", "massseg", "massclass"):
        metrics = json.loads((workspace / "metrics" / f"{name}.json").read_text())
        assert metrics, name
    assert (workspace / "plots" / "massclass_roc.json").is_file()
    report = (workspace / "reports" / "report.md").read_text()
    assert "## Metrics" in report and "## Data lineage" in report
    for card in (workspace / "models").rglob("model_card.json"):
        assert json.loads(card.read_text())["architecture"]


def test_second_repro_does_nothing(workspace: Path) -> None:
    status = _run(["dvc", "status"], workspace)
    assert "up to date" in status.stdout.lower(), status.stdout


def test_changing_a_massclass_param_reruns_only_massclass(workspace: Path) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["massclass"]["evaluate"]["n_bootstrap"] = 60
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], workspace).stdout
    changed = {line.strip().rstrip(":") for line in status.splitlines()
               if line and not line.startswith(("\t", " "))}
    assert changed, status
    assert all(name.startswith(("massclass", "report")) for name in changed), changed
    _run(["dvc", "repro"], workspace)


def test_changing_a_stage_package_reruns_only_its_stages(workspace: Path) -> None:
    """dvc.yaml lists each stage's package sources: a code change re-runs the stages using it."""
    source = workspace / "packages" / "massclass" / "src" / "massclass" / "descriptors.py"
    original = source.read_text()
    source.write_text(original + "\n# a code change\n")
    try:
        status = _run(["dvc", "status"], workspace).stdout
        changed = {line.strip().rstrip(":") for line in status.splitlines()
                   if line and not line.startswith(("\t", " "))}
        assert changed == {"massclass_train@tinycnn-1", "massclass_predict",
                           "massclass_evaluate"}, status
        # bytecode written next to the sources is not a code change
        cache = source.parent / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "stray.cpython-311.pyc").write_bytes(b"x")
        source.write_text(original)
        status = _run(["dvc", "status"], workspace).stdout
        assert "up to date" in status.lower(), status
    finally:
        source.write_text(original)


def test_threshold_stand_in_replaces_breastseg(workspace: Path) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["breastseg"]["predict"]["method"] = "threshold"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro"], workspace)
    breast = open_store(workspace / "data" / "breast.zarr", "breast", deep=True)
    assert breast.meta.method == "threshold"
    masses = open_store(workspace / "data" / "masses.zarr", "masses")
    assert masses.meta.parents[0].digest == breast.digest
    open_store(workspace / "data" / "diagnosis.zarr", "diagnosis")
