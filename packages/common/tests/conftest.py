"""Shared test setup for mammo-common.

Test modules that need Keras import it with ``keras = pytest.importorskip("keras")`` (so the
core session without TensorFlow skips them); any module holding ``keras`` or ``tensorflow`` at
top level is marked ``keras`` automatically, and the nox sessions select by that marker.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "keras: needs Keras and a backend (TensorFlow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module) if module is not None else {}
        if "keras" in names or "tensorflow" in names or "tf" in names:
            item.add_marker(pytest.mark.keras)
