"""Shared test setup for mammo-massclass.

The Keras backend and TensorFlow's log level are set before any test imports Keras. The
``masses_store`` fixture writes a small phantom ``masses`` store with
``mammo_common.store.StackedStoreWriter`` (no other stage is needed), once per session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from massclass_synth import write_masses_store, write_splits


def pytest_configure(config: pytest.Config) -> None:
    # Every marker the tests use is registered here (the sessions run --strict-markers).
    config.addinivalue_line("markers", "keras: needs Keras and a backend (TensorFlow)")
    config.addinivalue_line("markers", "slow: builds full-size ImageNet backbones")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if "keras" in names or "tensorflow" in names or "tf" in names:
            item.add_marker(pytest.mark.keras)


@pytest.fixture(scope="session")
def masses_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A phantom ``masses`` store (24 cases, 2 missed by segmentation) and its splits file."""
    root = tmp_path_factory.mktemp("massclass_data")
    store = root / "masses.zarr"
    info = write_masses_store(store)
    splits = write_splits(root / "splits.json", info)
    return {"store": store, "splits": splits, "root": root, **info}


@pytest.fixture(scope="session")
def fresh_process() -> Iterator[object]:
    """A worker process that loads ``.keras`` classifiers it never built.

    Shared by the model tests (:func:`mammo_common.testing.run_model_test`): Python with
    TensorFlow takes seconds to start. It imports ``massclass.models`` only (which registers
    the classifier's classes), as a user's process loading a model folder does.
    """
    from mammo_common.testing import FreshProcess

    with FreshProcess(["massclass.models"]) as worker:
        yield worker


@pytest.fixture
def keras_session():
    """Clear the Keras session before and after a test."""
    import keras

    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
