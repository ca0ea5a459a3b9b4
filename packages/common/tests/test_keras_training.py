"""fit_resumable: best weights, history, plateau/early stopping state, exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from mammo_common.errors import ConfigError
from mammo_common.keras.training.augment import AugmentConfig
from mammo_common.keras.training.curves import read_curves, read_summary
from mammo_common.keras.training.data import SegmentationDataset
from mammo_common.keras.training.harness import (
    BEST_WEIGHTS,
    HISTORY_CSV,
    ReduceLROnPlateauConfig,
    fit_resumable,
    mixed_precision_policy,
    poly_learning_rate,
    read_history_csv,
    set_global_determinism,
    write_history_csv,
)
from mammo_common.keras.training.metrics import DiceCoefficient

SIZE = 16


def tiny_model(seed: int = 0) -> keras.Model:
    set_global_determinism(seed)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def data(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        r, c = rng.integers(3, SIZE - 5, 2)
        masks[i, r : r + 4, c : c + 5] = 1
    images = (masks.astype(np.int64) * 40000 + rng.integers(0, 20000, masks.shape)).astype(
        np.uint16
    )
    return images, masks


class Recorder(keras.callbacks.Callback):
    """Keeps the weights after every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: dict[int, list[np.ndarray]] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in self.model.get_weights()]


class Boom(keras.callbacks.Callback):
    """Raises in the middle of a given epoch (an in-process 'kill')."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.at and batch == 1:
            raise KeyboardInterrupt("simulated interruption")


def datasets(seed: int = 0):
    images, masks = data()
    train = SegmentationDataset(
        images, masks, range(6), batch_size=2, shuffle=True, seed=seed, augment=AugmentConfig.mass()
    )
    valid = SegmentationDataset(images, masks, [6, 7], batch_size=2)
    return train, valid


def test_keeps_the_best_weights_and_stops_early(tmp_path):
    images, masks = data()
    train = SegmentationDataset(images, masks, range(6), batch_size=2)
    # validation targets are the inverted masks: the better the fit, the worse val_loss
    valid = SegmentationDataset(images, 1 - masks, [6, 7], batch_size=2)
    model, rec = tiny_model(), Recorder()
    result = fit_resumable(
        model,
        train,
        valid,
        out_dir=tmp_path,
        epochs=8,
        learning_rate=0.05,
        early_stopping_patience=2,
        metrics=[DiceCoefficient()],
        progress=False,
        callbacks=[rec],
        restore_best=False,
    )
    val = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert result.best_value == pytest.approx(min(val))
    assert result.best_epoch < result.epochs_run
    assert result.stopped_early and result.stop_reason == "early_stopping"
    assert result.epochs_run == result.best_epoch + 2
    # the last weights are in memory; best.weights.h5 holds the best epoch's
    last = model.get_weights()
    model.load_weights(tmp_path / BEST_WEIGHTS)
    for got, want in zip(model.get_weights(), rec.weights[result.best_epoch], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, b) for a, b in zip(last, model.get_weights(), strict=True))
    rows = read_history_csv(tmp_path / HISTORY_CSV)
    assert [r["epoch"] for r in rows] == list(range(1, result.epochs_run + 1))
    header = (tmp_path / HISTORY_CSV).read_text().splitlines()[0].split(",")
    assert header == ["epoch", "loss", "dice", "val_loss", "val_dice", "lr", "seconds"]
    assert rows[0]["val_loss"] == pytest.approx(val[0])
    # a finished run is not trained again
    again = fit_resumable(
        tiny_model(),
        train,
        valid,
        out_dir=tmp_path,
        epochs=8,
        learning_rate=0.05,
        early_stopping_patience=2,
        metrics=[DiceCoefficient()],
        progress=False,
    )
    assert again.resumed_from == result.epochs_run and again.history == result.history


def test_reduce_lr_on_plateau_and_history(tmp_path):
    train, valid = datasets()
    result = fit_resumable(
        tiny_model(),
        train,
        valid,
        out_dir=tmp_path,
        epochs=3,
        learning_rate=1e-2,
        loss="binary_crossentropy",  # Keras' own names work too
        early_stopping_patience=None,
        reduce_lr=ReduceLROnPlateauConfig(patience=1, min_delta=10.0),
        progress=False,
    )
    # Keras semantics: epoch 2 does not improve, so epoch 3 runs at the reduced rate
    assert [r["lr"] for r in result.history] == pytest.approx([1e-2, 1e-2, 1e-3])
    assert not result.stopped_early and result.epochs_run == 3
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "epoch_0003",
        "state.json",
    ]


def run_training(
    out: Path,
    epochs: int = 3,
    boom: int | None = None,
    resume: bool = True,
    callbacks: list | None = None,
):
    """The run every resume test repeats (also run by the SIGKILL child process)."""
    train, valid = datasets()
    model = tiny_model()
    callbacks = list(callbacks or []) + ([] if boom is None else [Boom(boom)])
    result = fit_resumable(
        model,
        train,
        valid,
        out_dir=out,
        epochs=epochs,
        learning_rate=1e-2,
        reduce_lr=ReduceLROnPlateauConfig(patience=1, min_delta=10.0),
        seed=0,
        deterministic=True,
        progress=False,
        callbacks=callbacks,
        restore_best=False,
        resume=resume,
    )
    return model, result


def strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_resume_after_an_interruption_matches_an_uninterrupted_run(tmp_path):
    ref_model, ref = run_training(tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        run_training(tmp_path / "cut", boom=1)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 1
    model, result = run_training(tmp_path / "cut")
    assert result.resumed_from == 1 and result.epochs_run == 3
    assert strip(result.history) == strip(ref.history)
    for a, b in zip(model.get_weights(), ref_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # resume=False starts afresh
    _, fresh = run_training(tmp_path / "cut", epochs=1, resume=False)
    assert fresh.resumed_from == 0 and fresh.epochs_run == 1


def run_poly(out: Path, epochs: int = 4, boom: int | None = None):
    """A poly-schedule run (the one the poly resume test interrupts and repeats)."""
    train, valid = datasets()
    model = tiny_model()
    result = fit_resumable(
        model, train, valid, out_dir=out, epochs=epochs, learning_rate=1e-2, reduce_lr=None,
        lr_schedule="poly", early_stopping_patience=None, seed=0, deterministic=True,
        progress=False, callbacks=[] if boom is None else [Boom(boom)], restore_best=False,
    )
    return model, result


def test_poly_schedule_decays_every_epoch_and_resumes_exactly(tmp_path):
    assert poly_learning_rate(1e-2, 0, 4) == pytest.approx(1e-2)
    assert poly_learning_rate(1e-2, 2, 4) == pytest.approx(1e-2 * 0.5**0.9)
    ref_model, ref = run_poly(tmp_path / "ref")
    expected = [1e-2 * (1 - e / 4) ** 0.9 for e in range(4)]
    assert [r["lr"] for r in ref.history] == pytest.approx(expected)
    assert ref.history[-1]["lr"] < ref.history[0]["lr"] / 3
    # the optimizer really trains at the scheduled rate (not only the history says so)
    assert float(ref_model.optimizer.learning_rate.numpy()) == pytest.approx(expected[-1])
    with pytest.raises(KeyboardInterrupt):
        run_poly(tmp_path / "cut", boom=2)
    model, result = run_poly(tmp_path / "cut")
    assert result.resumed_from == 2
    assert strip(result.history) == strip(ref.history)
    for a, b in zip(model.get_weights(), ref_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the schedule depends on the run's length: resuming with other epochs is refused
    with pytest.raises(ConfigError, match="epochs"):
        run_poly(tmp_path / "cut", epochs=6)


def test_poly_schedule_refuses_the_plateau_rule_beside_it(tmp_path):
    train, valid = datasets()
    with pytest.raises(ConfigError, match="plateau"):
        fit_resumable(
            tiny_model(), train, valid, out_dir=tmp_path, epochs=1, lr_schedule="poly",
            progress=False,
        )
    with pytest.raises(ConfigError, match="unknown lr_schedule"):
        fit_resumable(
            tiny_model(), train, valid, out_dir=tmp_path, epochs=1, lr_schedule="cosine",
            reduce_lr=None, progress=False,
        )


def test_training_curves_are_logged_with_dvclive_every_epoch(tmp_path):
    """out_dir/dvclive holds history.csv's values (step = epoch), each epoch once after a
    resume; resume=False starts the curves afresh too."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(out, boom=1)
    assert read_curves(out)["val_loss"] == [(1, read_history_csv(out / HISTORY_CSV)[0]["val_loss"])]
    _, result = run_training(out)
    assert result.resumed_from == 1
    rows = read_history_csv(out / HISTORY_CSV)
    curves = read_curves(out)
    assert sorted(curves) == ["loss", "lr", "val_loss"]  # history.csv's, less epoch and seconds
    for name, points in curves.items():
        assert points == [(int(r["epoch"]), r[name]) for r in rows], name
    assert len({v for _, v in curves["lr"]}) > 1  # the plateau rule cut it
    summary = read_summary(out)
    assert summary["step"] == 3
    assert {k: v for k, v in summary.items() if k != "step"} == {
        k: v for k, v in rows[-1].items() if k not in ("epoch", "seconds")
    }
    assert not (tmp_path / "dvc.yaml").exists() and not (out / "dvc.yaml").exists()
    run_training(out, epochs=1, resume=False)
    assert [s for s, _ in read_curves(out)["loss"]] == [1]
    # write_history_csv alone leaves a folder's files as they were
    (tmp_path / "plain").mkdir()
    write_history_csv(tmp_path / "plain" / HISTORY_CSV, rows)
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == [HISTORY_CSV]


CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import keras
    import test_keras_training as t

    out, kill_at = sys.argv[1], int(sys.argv[2])

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_at and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    model, result = t.run_training(out, callbacks=[Kill()])
    np.savez(os.path.join(out, "final.npz"), *model.get_weights())
    print("RESULT" + json.dumps(result.model_dump()))
    """
)


def _child(script: Path, out: Path, kill_at: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONHASHSEED": "0",
    }
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(kill_at)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)))
    killed = _child(script, tmp_path / "cut", 1)
    ref_model, ref = run_training(tmp_path / "ref")  # uninterrupted, meanwhile, in-process
    killed.communicate(timeout=300)
    assert killed.returncode == -9  # SIGKILL during the second epoch
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 1
    resumed = _result(_child(script, tmp_path / "cut", -1))
    assert resumed["resumed_from"] == 1 and resumed["epochs_run"] == 3
    assert strip(resumed["history"]) == strip(ref.history)
    with np.load(tmp_path / "cut" / "final.npz") as got:
        weights = [got[f"arr_{i}"] for i in range(len(got.files))]
    for a, b in zip(weights, ref_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "cut" / BEST_WEIGHTS).stat().st_size > 0
    assert len(read_history_csv(tmp_path / "cut" / HISTORY_CSV)) == 3


def test_refuses_bad_settings(tmp_path):
    train, valid = datasets()
    with pytest.raises(ConfigError, match="not among the logged values"):
        fit_resumable(
            tiny_model(),
            train,
            valid,
            out_dir=tmp_path / "a",
            epochs=1,
            monitor="val_dice",
            progress=False,
        )
    with pytest.raises(ConfigError, match="unknown loss"):
        fit_resumable(
            tiny_model(),
            train,
            valid,
            out_dir=tmp_path / "e",
            epochs=1,
            loss="hinge_dice",
            progress=False,
        )
    with pytest.raises(ConfigError, match="needs validation data"):
        fit_resumable(tiny_model(), train, None, out_dir=tmp_path / "b", epochs=1, progress=False)
    with pytest.raises(ConfigError, match="mixed_bfloat16"):
        fit_resumable(
            tiny_model(),
            train,
            valid,
            out_dir=tmp_path / "c",
            epochs=1,
            mixed_precision="bfloat16",
            progress=False,
        )
    fit_resumable(tiny_model(), train, valid, out_dir=tmp_path / "d", epochs=1, progress=False)
    with pytest.raises(ConfigError, match="learning_rate"):
        fit_resumable(
            tiny_model(),
            train,
            valid,
            out_dir=tmp_path / "d",
            epochs=2,
            learning_rate=0.5,
            progress=False,
        )


def test_mixed_precision_bfloat16(tmp_path):
    train, valid = datasets()
    with mixed_precision_policy("bfloat16") as policy:
        model = tiny_model()
    assert policy == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    result = fit_resumable(
        model,
        train,
        valid,
        out_dir=tmp_path,
        epochs=1,
        loss="bce_dice",
        mixed_precision="bfloat16",
        metrics=[DiceCoefficient()],
        progress=False,
    )
    assert np.isfinite(result.history[0]["loss"])
    assert model.dtype_policy.name == "mixed_bfloat16"
