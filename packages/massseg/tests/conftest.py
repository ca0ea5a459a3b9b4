"""Shared test setup for mammo-massseg.

The Keras backend and TensorFlow's log level are set here, before any test module imports
Keras. Modules holding ``keras`` or ``tensorflow`` at top level are marked ``keras``
automatically (as in mammo-common), so a session can select or skip them by marker.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")
# TensorFlow 2.21's oneDNN CPU kernels crash (SIGSEGV / abort) in graph-mode training steps
# of some small-channel networks with a strided 1x1 shortcut next to a strided 3x3 conv (a
# tiny resunet, e.g. widths (4, 8, 8, 16) at 64x64); the Eigen kernels are fine. Tests use
# tiny widths, so they run without oneDNN. Set TF_ENABLE_ONEDNN_OPTS=1 to test with it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Every marker the tests use is registered here (the sessions run --strict-markers).
    config.addinivalue_line("markers", "keras: needs Keras and a backend (TensorFlow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if "keras" in names or "tensorflow" in names or "tf" in names:
            item.add_marker(pytest.mark.keras)


@pytest.fixture
def keras_session():
    """Clear the Keras session (global state, layer-name counters) before and after a test.

    ``free_memory=False`` skips the forced garbage collection (about a second per call on a
    busy machine); Python's own collector still frees dropped models.
    """
    import keras

    keras.backend.clear_session(free_memory=False)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def fresh_process() -> Iterator[object]:
    """A worker process that loads ``.keras`` files of the registry's networks it never built.

    Shared by the model tests (:func:`mammo_common.testing.run_model_test`): Python with
    TensorFlow takes seconds to start. It imports the registry's network modules only, as a
    user's process loading a model folder does.
    """
    from mammo_common.testing import FreshProcess
    from massseg.models import MODEL_NAMES

    with FreshProcess([f"massseg.models.{name}" for name in MODEL_NAMES]) as worker:
        yield worker
