"""Shared fixtures of the breastseg tests: phantom store, splits and one trained tiny model.

The phantoms are described in :mod:`breastseg_phantoms`. Expensive things (the store, the
trained model) are built once per session.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from breastseg_phantoms import (
    INTERRUPT_AFTER,
    TINY_EPOCHS,
    TINY_FILTERS,
    TINY_INPUT,
    TINY_STEPS_FACTOR,
    write_phantom_store,
    write_splits,
)


def pytest_configure(config: pytest.Config) -> None:
    # The tests use no custom marker; the sessions run --strict-markers, so register any new
    # one here (config.addinivalue_line("markers", ...)).
    # Keras 3.15 + NumPy 2 warn on every tensor conversion; the noise hides real warnings.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    )


@pytest.fixture(scope="session")
def fresh_process() -> Iterator[object]:
    """A worker process that loads ``.keras`` files of the registry's networks it never built.

    Shared by the model tests (:func:`mammo_common.testing.run_model_test`): Python with
    TensorFlow takes seconds to start. It imports the modules that register the networks
    (``breastseg.models.MODULES``) only, as a user's process loading a model folder does.
    """
    from breastseg.models import MODULES
    from mammo_common.testing import FreshProcess

    with FreshProcess(sorted(set(MODULES.values()))) as worker:
        yield worker


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory) -> tuple[Path, Path]:
    """``(mammograms.zarr, splits.json)``: 30 phantoms (15 patients), 3 folds and a test set."""
    root = tmp_path_factory.mktemp("phantoms")
    store = write_phantom_store(root / "mammograms.zarr", 30)
    splits = write_splits(store, root / "splits.json")
    return store, splits


@dataclass
class TrainedModel:
    """The session's model folder and what its two training runs reported."""

    folder: Path
    result: object  # breastseg.train.TrainResult of the resumed run
    interrupted_state: dict  # what the interrupted run left on disk


def _interrupter(after_epochs: int):
    import keras

    class Interrupt(keras.callbacks.Callback):
        """Simulates Ctrl-C at the start of epoch ``after_epochs + 1``."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch >= after_epochs:
                raise KeyboardInterrupt

    return Interrupt()


@pytest.fixture(scope="session")
def trained_model(phantom_data, tmp_path_factory) -> TrainedModel:
    """A tiny unet5l trained once on fold 1 of the phantoms.

    The training is interrupted after :data:`INTERRUPT_AFTER` epochs and started again, so the
    session's model is also the resume test (training twice would cost another minute).
    """
    from breastseg.config import TrainConfig
    from breastseg.train import train, training_dir

    store, splits = phantom_data
    out = tmp_path_factory.mktemp("models") / "breastseg" / "unet5l" / "fold_1"
    config = TrainConfig(
        data=store,
        splits=splits,
        fold=1,
        out=out,
        input_size=TINY_INPUT,
        filters=TINY_FILTERS,
        epochs=TINY_EPOCHS,
        steps_multiplier=TINY_STEPS_FACTOR,
        early_stopping_patience=TINY_EPOCHS,
        seed=0,
    )
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_interrupter(INTERRUPT_AFTER)])
    work = training_dir(out)
    state = {
        "out_exists": out.exists(),
        "work_dir": work == out.parent / ".fold_1.training",
        "model_keras": (out / "model.keras").exists(),
        "history_rows": len((work / "history.csv").read_text().splitlines()) - 1,
        "checkpoint": (work / "checkpoint" / "state.json").is_file(),
    }
    result = train(config)
    return TrainedModel(folder=out, result=result, interrupted_state=state)
