"""The full protocol's smoke run (`python3 dev.py pipeline --full --smoke`): its params and CLI.

The run itself is the `full_smoke` nox session; these check what it is made of, in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mammo_common.full_smoke import (
    SMOKE_DIR,
    _earlier_rows,
    _lock_entries,
    _tree_stopped,
    prepare_workspace,
    smoke_params,
    stage_groups,
)
from mammo_common.pipeline import main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def full() -> dict:
    return yaml.safe_load((REPO / "params-full.yaml").read_text())


def test_smoke_params_keep_the_grid_and_cut_training(full: dict) -> None:
    params = smoke_params(full)
    assert params["pipeline"] == full["pipeline"]  # every network, fold and classifier
    assert len(params["pipeline"]["massseg_archs"]) == 10
    assert params["pipeline"]["massseg_folds"] == [1, 2, 3, 4, 5]
    for stage in ("breastseg", "massseg"):
        train = params[stage]["train"]
        assert train["input_size"] == full[stage]["train"]["input_size"]
        assert train["batch_size"] == full[stage]["train"]["batch_size"]
        assert (train["epochs"], train["steps_per_epoch"]) == (1, 1)
        assert train["early_stopping_patience"] == 1 and train["reduce_lr_patience"] == 1
    assert params["massclass"]["train"]["input_size"] == 224
    phases = params["massclass"]["train"]["phases"]
    assert [p["name"] for p in phases] == ["head", "top", "all"]  # the reference's three
    assert all(p["epochs"] == 1 for p in phases)
    assert params["split"] == full["split"]
    assert params["massclass"]["train"]["roi"] == {"source": "truth"}
    assert full["breastseg"]["train"]["epochs"] == 100, "the input is not modified"


def test_smoke_params_cut_folds_and_refiner() -> None:
    full = {
        "pipeline": {"massseg_folds": [1, 2, 3, 4, 5], "massclass_folds": [1, 2, 3, 4, 5]},
        "split": {},
        "breastseg": {"train": {}},
        "massseg": {"train": {"early_stopping_patience": None,
                              "refine": {"epochs": 30, "batch_size": 8}}},
        "massclass": {"train": {"epochs": [3, 10, 100], "phases": [
            {"name": "a", "trainable": "all", "learning_rate": 0.1, "epochs": 7}]}},
    }
    params = smoke_params(full, folds=2)
    assert params["pipeline"]["massseg_folds"] == [1, 2]
    assert params["pipeline"]["massclass_folds"] == [1, 2]
    assert params["massseg"]["train"]["early_stopping_patience"] is None  # never stops stays
    assert params["massseg"]["train"]["refine"] == {"epochs": 1, "batch_size": 8,
                                                    "samples_per_epoch": 8}
    assert params["massclass"]["train"]["phases"] == [
        {"name": "a", "trainable": "all", "learning_rate": 0.1, "epochs": 1}]
    assert "epochs" not in params["massclass"]["train"]


@pytest.mark.parametrize("folds", [0, -1])
def test_smoke_params_refuse_no_folds(full: dict, folds: int) -> None:
    with pytest.raises(ValueError, match="folds"):
        smoke_params(full, folds=folds)


def test_smoke_params_refuse_a_missing_section(full: dict) -> None:
    del full["massseg"]
    with pytest.raises(ValueError, match="massseg"):
        smoke_params(full)


def test_smoke_workspace_is_not_the_checkout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder of its own"):
        prepare_workspace(tmp_path, tmp_path)


def test_smoke_folder_is_ignored_by_git_and_dvc() -> None:
    assert f"/{SMOKE_DIR}/" in (REPO / ".gitignore").read_text().splitlines()
    assert f"{SMOKE_DIR}/" in (REPO / ".dvcignore").read_text().splitlines()


@pytest.mark.parametrize("argv", [["--smoke"], ["--full", "--smoke-folds", "2"],
                                  ["--full", "--smoke", "--smoke-jobs", "0"],
                                  ["--full", "--smoke", "--smoke-folds", "9"],
                                  ["--full", "--smoke", "--smoke-size", "big"]])
def test_smoke_options_are_checked(argv: list[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert not (tmp_path / SMOKE_DIR).exists() and not (tmp_path / "params.yaml").exists()


def test_smoke_dir_as_the_checkout_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--full", "--smoke", "--smoke-dir", str(tmp_path)]) == 2
    assert "a folder of its own" in capsys.readouterr().out
    assert not (tmp_path / "params.yaml").exists()


def test_up_to_date_stages_keep_their_earlier_measurement(tmp_path: Path) -> None:
    """A resumed run reports the cost a stage had when it last ran, not DVC's skip."""
    assert _lock_entries(tmp_path) == {} and _earlier_rows(tmp_path / "none.json") == {}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(
        {"schema": "2.0", "stages": {"ingest": {"cmd": "mammo ingest"}}}))
    assert _lock_entries(tmp_path) == {"ingest": {"cmd": "mammo ingest"}}
    results = tmp_path / "full_smoke.json"
    results.write_text(json.dumps({"stages": [
        {"stage": "ingest", "exit_code": 0, "seconds": 90.0, "ran": True},
        {"stage": "split", "exit_code": 0, "seconds": 9.0, "ran": False,
         "check_seconds": 2.0},  # carried over from a run before: still a measurement
        {"stage": "results", "exit_code": 0, "seconds": 2.0, "ran": False},  # a skip only
        {"stage": "report", "exit_code": 1, "seconds": 5.0, "ran": True},  # failed
    ]}))
    assert list(_earlier_rows(results)) == ["ingest", "split"]


def test_workspace_copies_the_stage_sources_without_the_runner(tmp_path: Path) -> None:
    """A change to the runner must not re-run every stage of a resumed smoke run."""
    from mammo_common.full_smoke import _copy_sources

    _copy_sources(REPO, tmp_path)
    common = tmp_path / "packages/common/src/mammo_common"
    assert (common / "store").is_dir() and (tmp_path / "dvc.yaml").is_file()
    assert not (common / "full_smoke.py").exists() and not (common / "pipeline.py").exists()
    assert (tmp_path / "packages/massseg/src/massseg/train.py").is_file()
    assert not list(tmp_path.rglob("__pycache__"))


def test_matrix_entries_form_groups_that_may_run_together() -> None:
    names = ["ingest", "split", "massseg_train@unet5l-1", "massseg_train@unet5l-2",
             "massseg_train@unetpp-1", "massseg_predict", "massclass_train@vgg16-1",
             "massclass_predict", "report"]
    assert stage_groups(names) == [
        ["ingest"], ["split"],
        ["massseg_train@unet5l-1", "massseg_train@unet5l-2", "massseg_train@unetpp-1"],
        ["massseg_predict"], ["massclass_train@vgg16-1"], ["massclass_predict"], ["report"],
    ]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc only")
def test_a_stopped_descendant_counts_as_stopped() -> None:
    """A shared machine pauses work with SIGSTOP; those seconds are not the stage's."""
    import signal
    import subprocess
    import sys
    import time

    children: list[str] = []
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys; "
        "subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])")])
    try:
        for _ in range(100):
            children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
            if children:
                break
            time.sleep(0.05)
        assert children and not _tree_stopped(parent.pid)
        os.kill(int(children[0]), signal.SIGSTOP)
        time.sleep(0.2)
        assert _tree_stopped(parent.pid)
        os.kill(int(children[0]), signal.SIGCONT)
        time.sleep(0.2)
        assert not _tree_stopped(parent.pid)
    finally:
        for pid in map(int, children):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
