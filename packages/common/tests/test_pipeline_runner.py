"""The headline table of `python3 dev.py pipeline` reads the stages' metrics files."""

from __future__ import annotations

import json
from pathlib import Path

from mammo_common.pipeline import headline


def test_headline_reads_flat_and_nested_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "breastseg.json").write_text(json.dumps({"dice_mean": 0.97, "jaccard_mean": 0.9}))
    (metrics / "massseg.json").write_text(json.dumps({"dice_mean": 0.61, "auc_mean": None}))
    (metrics / "massclass.json").write_text(
        json.dumps({"case": {"accuracy": 0.75, "roc_auc": 0.8, "roc_auc_ci": [0.6, 0.95]}})
    )
    rows = {label: value for label, value, _ in headline(tmp_path)}
    assert rows["breast Dice"] == "0.970"
    assert rows["mass Dice"] == "0.610"
    assert rows["mass pixel AUC"] == "n/a"
    assert rows["classification ROC AUC"] == "0.800"
    assert rows["classification ROC AUC 95% CI"] == "0.600-0.950"


def test_headline_without_metrics(tmp_path: Path) -> None:
    assert {value for _, value, _ in headline(tmp_path)} == {"n/a"}
