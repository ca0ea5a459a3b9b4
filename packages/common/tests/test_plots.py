"""Figures: which panels the training curves hold, phase names, the ROC figure."""

from __future__ import annotations

import numpy as np

from mammo_common.plots import (
    curve_panels,
    read_history,
    read_phase_names,
    roc_figure,
    training_curves,
)

HISTORY = (
    "epoch,phase,phase_name,phase_epoch,loss,auc,val_loss,val_auc,lr,seconds\n"
    "1,1,head,1,0.70,0.55,0.69,0.52,0.001,1.0\n"
    "2,1,head,2,0.66,0.61,0.68,0.55,0.001,1.0\n"
    "3,2,all,1,0.60,0.70,0.64,0.60,0.0001,1.0\n"
    "4,2,all,2,0.52,0.78,0.62,0.63,0.0001,1.0\n"
)


def test_panels_leave_out_bookkeeping_and_pair_validation(tmp_path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HISTORY)
    history = read_history(path)
    # phase_epoch, phase and seconds are counters, not curves (they flattened the old plot)
    assert curve_panels(history) == ["loss", "auc", "lr"]
    assert read_phase_names(path) == ["head", "all"]
    constant_lr = {**history, "lr": [0.001] * 4}
    assert curve_panels(constant_lr) == ["loss", "auc"]
    assert curve_panels({"epoch": [1.0], "val_dice": [0.5]}) == ["dice"]


def test_training_curves_draw_one_panel_per_quantity(tmp_path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HISTORY)
    three = training_curves(read_history(path), title="m", phase_names=["head", "all"])
    one = training_curves({"epoch": [1.0, 2.0], "loss": [1.0, 0.5]})
    assert three.mode == one.mode == "RGB"
    assert three.width >= 2.5 * one.width  # three panels side by side
    assert np.asarray(three).std() > 10  # something is drawn



def test_roc_figure_draws_band_and_curve() -> None:
    fpr = np.array([0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 1.0, 1.0])
    plain = np.asarray(roc_figure(fpr, tpr, auc=0.875, ci=(0.7, 1.0)))
    banded = np.asarray(roc_figure(fpr, tpr, auc=0.875, ci=(0.7, 1.0), operating_point=(0.5, 1.0),
                                   band=(np.linspace(0, 1, 11), np.zeros(11), np.ones(11))))
    assert plain.shape == banded.shape
    assert (np.abs(plain.astype(int) - banded.astype(int)).sum(axis=-1) > 30).mean() > 0.2
