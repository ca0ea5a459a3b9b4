"""dvc.yaml declares the training curves and training metrics of every model the pipeline trains.

DVC itself resolves dvc.yaml against params.yaml (the ``massseg_train`` / ``massclass_train``
matrices and the ``${...}`` in the top-level plots), so these tests check what ``dvc plots
show`` and ``dvc plots diff`` will read, without running the pipeline (a few seconds).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("dvc.repo", reason="dvc is not installed in this environment")

REPO = Path(__file__).resolve().parents[2]
HISTORY = "history.csv"
REFINER = "refiner"
#: The DVCLive summary a model folder carries beside its history (mammo_common.keras.training.curves).
SUMMARY = "dvclive/metrics.json"


def resolve(root: Path) -> tuple[dict[str, list[str]], list[dict[str, Any]], dict[str, Any]]:
    """DVC's view of ``root``: ``({stage: outs}, top-level plots, params)``."""
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        dvcfile = load_file(repo, str(root / "dvc.yaml"))
        outs = {name: [str(o) for o in stage.outs] for name, stage in dvcfile.stages.items()}
        plots = list(dvcfile.plots)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    return outs, plots, params


def top_level_metrics(root: Path) -> list[str]:
    """The top-level ``metrics:`` of ``root/dvc.yaml``, ``${...}`` resolved by DVC."""
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(load_file(repo, str(root / "dvc.yaml")).metrics)


def missing_metrics(outs: dict[str, list[str]], metrics: list[str], params: dict) -> list[str]:
    """The trained models whose DVCLive ``metrics.json`` is not a declared metric."""
    wanted = {h.removesuffix(HISTORY) + SUMMARY for h in trained_histories(outs, params)}
    return sorted(wanted - set(metrics))


def trained_histories(outs: dict[str, list[str]], params: dict[str, Any]) -> dict[str, set]:
    """Every ``history.csv`` the training stages write, with the quantities that must be
    plotted (training and validation loss; the refiner logs its training loss only)."""
    histories: dict[str, set] = {}
    refine = (params.get("massseg", {}).get("train", {}) or {}).get("refine") is not None
    for stage, paths in outs.items():
        if not stage.split("@")[0].endswith("_train"):
            continue
        for folder in paths:
            histories[f"{folder}/{HISTORY}"] = {"loss", "val_loss"}
            if stage.startswith("massseg_train") and refine:
                histories[f"{folder}/{REFINER}/{HISTORY}"] = {"loss"}
    return histories


def declared(plots: list[dict[str, Any]]) -> dict[str, list[tuple[str, set]]]:
    """``{file: [(plot id, fields of one plot), ...]}`` of the top-level plots."""
    found: dict[str, list[tuple[str, set]]] = {}
    for entry in plots:
        ((name, spec),) = entry.items()
        if not isinstance(spec, dict) or not isinstance(spec.get("y"), dict):
            continue
        for file, fields in spec["y"].items():
            fields = [fields] if isinstance(fields, str) else list(fields)
            found.setdefault(file, []).append((name, set(fields)))
    return found


def missing(outs: dict[str, list[str]], plots: list[dict], params: dict) -> list[str]:
    """What the plots lack: one line per trained model whose curves are not declared."""
    have = declared(plots)
    problems = []
    for history, need in sorted(trained_histories(outs, params).items()):
        plotted = have.get(history, [])
        if not any(need <= fields for _, fields in plotted):
            problems.append(f"{history}: no plot of {sorted(need)}")
        if not any(fields - need for _, fields in plotted):
            problems.append(f"{history}: no metric plot")
    return problems


def test_every_trained_model_has_its_curves_declared() -> None:
    outs, plots, params = resolve(REPO)
    histories = trained_histories(outs, params)
    # the demo trains the breast model, the mass model (and its refiner), the classifier
    assert {h.split("/")[1] for h in histories} == {"breastseg", "massseg", "massclass"}
    assert missing(outs, plots, params) == []


def test_every_trained_model_has_its_training_metrics_declared() -> None:
    """``dvc metrics show`` / ``dvc exp show`` list each trained model's last-epoch values."""
    outs, _, params = resolve(REPO)
    metrics = top_level_metrics(REPO)
    assert missing_metrics(outs, metrics, params) == []
    wanted = {h.removesuffix(HISTORY) + SUMMARY for h in trained_histories(outs, params)}
    assert {m for m in metrics if m.endswith(SUMMARY)} == wanted, "a metric no stage trains"


def test_each_curve_plot_is_one_quantity_with_training_and_validation() -> None:
    outs, plots, params = resolve(REPO)
    histories = trained_histories(outs, params)
    for file, entries in declared(plots).items():
        if not file.endswith(HISTORY):
            continue
        assert file in histories, f"{file} is plotted but no stage trains it"
        for name, fields in entries:
            quantities = {f.removeprefix("val_") for f in fields}
            assert len(quantities) == 1, f"{name!r} mixes {sorted(fields)}"
            (quantity,) = quantities
            if not file.endswith(f"{REFINER}/{HISTORY}"):  # the refiner logs loss, val_dice
                assert fields == {quantity, f"val_{quantity}"}, f"{name!r} is not paired"
    specs = [next(iter(e.values())) for e in plots]
    assert all(s.get("x") == "epoch" for s in specs if any(
        f.endswith(HISTORY) for f in (s.get("y") or {})))


def test_plots_follow_the_params_and_an_undeclared_model_is_found(tmp_path: Path) -> None:
    """Another predicted backbone moves the plots; a second matrix arch must be declared."""
    from dvc.repo import Repo

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    pipeline = params["pipeline"]
    # the classifiers to train (a list) and the one to predict with, whatever their key names
    (trains,) = [k for k in pipeline if k.startswith("massclass_")
                 and k != "massclass_folds" and isinstance(pipeline[k], list)]
    (predicts,) = [k for k in pipeline if k.startswith("massclass_predict")]
    pipeline[trains], pipeline[predicts] = ["tinycnn"], "tinycnn"
    pipeline["massseg_archs"] = ["unet5l", "unetpp_xception"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    Repo.init(str(tmp_path), no_scm=True)
    outs, plots, params = resolve(tmp_path)
    files = set(declared(plots))
    assert "models/massclass/tinycnn/fold_1/history.csv" in files
    assert not any("descriptors" in f for f in files)
    assert missing(outs, plots, params) == [
        "models/massseg/unetpp_xception/fold_1/history.csv: no plot of ['loss', 'val_loss']",
        "models/massseg/unetpp_xception/fold_1/history.csv: no metric plot",
        "models/massseg/unetpp_xception/fold_1/refiner/history.csv: no plot of ['loss']",
        "models/massseg/unetpp_xception/fold_1/refiner/history.csv: no metric plot",
    ]
    metrics = top_level_metrics(tmp_path)
    assert "models/massclass/tinycnn/fold_1/dvclive/metrics.json" in metrics
    assert missing_metrics(outs, metrics, params) == [
        "models/massseg/unetpp_xception/fold_1/dvclive/metrics.json",
        "models/massseg/unetpp_xception/fold_1/refiner/dvclive/metrics.json",
    ]
