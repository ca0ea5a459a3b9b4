"""Shared test setup for mammo-common.

Test modules that need Keras import it (``import keras``) like any other dependency: a broken
install fails loudly instead of reading as skips. The core session installs mammo-common
without Keras; there, and only when Keras is not installed at all, the modules of
:data:`KERAS_MODULES` are left out of collection. Any module holding ``keras`` or
``tensorflow`` at top level is marked ``keras`` automatically (single tests can carry the
marker too), and the nox sessions select by that marker.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")

import pytest

#: The test modules that import Keras at top level.
KERAS_MODULES = [
    "test_keras_batchnorm_calibration.py", "test_keras_data.py", "test_keras_distribute.py",
    "test_keras_export.py", "test_keras_fused_batchnorm.py", "test_keras_inference.py",
    "test_keras_losses.py", "test_keras_optimize.py", "test_keras_training.py",
    "test_model_cache.py", "test_model_folder.py", "test_testing.py", "test_keras_encoders.py",
]
collect_ignore = KERAS_MODULES if importlib.util.find_spec("keras") is None else []


def pytest_configure(config: pytest.Config) -> None:
    # Every marker the tests use is registered here (the sessions run --strict-markers).
    config.addinivalue_line("markers", "keras: needs Keras and a backend (TensorFlow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if "keras" in names or "tensorflow" in names or "tf" in names:
            item.add_marker(pytest.mark.keras)


@pytest.fixture(scope="session")
def fresh_process() -> Iterator[object]:
    """A worker process that loads ``.keras`` files it never built (Keras tests only).

    Shared by the model tests (:func:`mammo_common.testing.run_model_test`): Python with a
    Keras backend takes seconds to start. It imports the modules that register mammo-common's
    Keras classes only, as a user's process loading a model does.
    """
    from mammo_common.testing import FreshProcess

    imports = [
        "mammo_common.keras.networks.unet5l",
        "mammo_common.keras.training.fused_batchnorm",
        "mammo_common.keras.deployment.optimize",
    ]
    with FreshProcess(imports) as worker:
        yield worker
