"""Shared fixtures of the stage reliability tests: tiny stores and model folders, built once.

Everything is CPU-size and built once per test session, through the stages' own CLIs (in
process, with ``typer.testing.CliRunner``) or Python APIs:

* ``mammograms``: ``mammo synth --cases 4 --size 96x72`` + ``mammo ingest`` (11 cases), and
  its splits (2 folds);
* ``breastseg_model``: a unet5l at 32x32, f=2, trained one epoch;
* ``breast_store``: ``breastseg predict --method threshold`` at 32x32;
* ``massseg_model``: a unet5l at 32x32, filters=2, trained one epoch;
* ``masses_store``: ``massseg predict`` with a low threshold (every case gets a "mass");
* ``massclass_model``: a tinycnn at 32x32, one epoch per phase, and ``diagnosis_store``
  (``massclass predict``);
* ``deterministic_params``: a params.yaml turning on ``deterministic`` training (breastseg and
  massseg), and ``massseg_reference``: an uninterrupted deterministic massseg training (two
  epochs) that the determinism and interruption tests compare with.

Runs in the ``reliability`` nox session (the four packages installed).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMMO_NO_PROGRESS", "1")
# As in the massseg tests: TensorFlow 2.21's oneDNN kernels crash in some tiny-width training
# steps, and are not bit-reproducible across runs; the Eigen kernels are fine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_helpers import invoke

#: Network input of every tiny model (rows, cols).
TINY = "32x32"


def pytest_configure(config: pytest.Config) -> None:
    # Keras 3.15 + NumPy 2 warn on every tensor conversion; the noise hides real warnings.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    )


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's folder of shared fixtures (read-only for the tests)."""
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def mammograms(root: Path) -> Path:
    """A ``mammograms`` store of 11 synthetic 96x72 mammograms (4 patients)."""
    from mammo_common.cli import app

    raw, store = root / "raw", root / "mammograms.zarr"
    invoke(app, "synth", raw, "--cases", 4, "--size", "96x72", "--seed", 0)
    invoke(app, "ingest", raw, store)
    return store


@pytest.fixture(scope="session")
def splits(root: Path, mammograms: Path) -> Path:
    """Two patient-grouped folds and a test set of ``mammograms``."""
    from mammo_common.cli import app

    out = root / "splits.json"
    invoke(app, "split", mammograms, "-o", out, "--folds", 2, "--test-fraction", 0.25)
    return out


@pytest.fixture(scope="session")
def breastseg_model(root: Path, mammograms: Path, splits: Path) -> Path:
    """A tiny breastseg unet5l model folder (32x32, f=2, one epoch)."""
    from breastseg.cli import app

    out = root / "models" / "breastseg" / "unet5l" / "fold_1"
    invoke(app, "train", "--data", mammograms, "--splits", splits, "--fold", 1, "--out", out,
           "--input-size", TINY, "--filters", 2, "--epochs", 1, "--batch-size", 2,
           "--no-augment")
    return out


@pytest.fixture(scope="session")
def breast_store(root: Path, mammograms: Path) -> Path:
    """The ``breast`` store of ``mammograms`` (threshold method, 32x32)."""
    from breastseg.cli import app

    out = root / "breast.zarr"
    invoke(app, "predict", "--method", "threshold", "--data", mammograms, "--out", out,
           "--output-size", TINY)
    return out


@pytest.fixture(scope="session")
def massseg_model(root: Path, breast_store: Path, splits: Path) -> Path:
    """A tiny massseg unet5l model folder (32x32, filters=2, one epoch)."""
    from massseg.cli import app

    out = root / "models" / "massseg" / "unet5l" / "fold_1"
    invoke(app, "train", "--arch", "unet5l", "--data", breast_store, "--splits", splits,
           "--fold", 1, "--out", out, "--input-size", TINY, "--width", "filters=2",
           "--epochs", 1, "--no-augment")
    return out


@pytest.fixture(scope="session")
def masses_store(root: Path, breast_store: Path, massseg_model: Path) -> Path:
    """The ``masses`` store of ``breast_store``; the low threshold gives every case a mass."""
    from massseg.cli import app

    out = root / "masses.zarr"
    invoke(app, "predict", "--model", massseg_model, "--data", breast_store, "--out", out,
           "--threshold", 0.3, "--min-object-pixels", 2)
    return out


@pytest.fixture(scope="session")
def massclass_model(root: Path, masses_store: Path, splits: Path) -> Path:
    """A tiny massclass tinycnn model folder (32x32, one epoch per phase).

    Fold 2 is used: its training patients hold both benign and malignant masses.
    """
    from massclass.cli import app

    out = root / "models" / "massclass" / "tinycnn" / "fold_2"
    invoke(app, "train", "--arch", "tinycnn", "--data", masses_store, "--splits", splits,
           "--fold", 2, "--out", out, "--input-size", 32, "--epochs", "1,1,1",
           "--weights", "none", "--batch-size", 4, "--roi-source", "truth")
    return out


@pytest.fixture(scope="session")
def diagnosis_store(root: Path, masses_store: Path, massclass_model: Path) -> Path:
    """The ``diagnosis`` store of ``masses_store``."""
    from massclass.cli import app

    out = root / "diagnosis.zarr"
    invoke(app, "predict", "--model", massclass_model, "--data", masses_store, "--out", out)
    return out


@pytest.fixture(scope="session")
def deterministic_params(root: Path) -> Path:
    """params.yaml asking both segmentation stages for deterministic training."""
    path = root / "params-deterministic.yaml"
    path.write_text(
        "breastseg:\n  train:\n    deterministic: true\n"
        "massseg:\n  train:\n    deterministic: true\n"
    )
    return path


def massseg_train_args(data: Path, splits: Path, out: Path, params: Path) -> list[object]:
    """``massseg train`` of the deterministic tests: tiny unet5l, two augmented epochs."""
    return ["train", "--arch", "unet5l", "--data", data, "--splits", splits, "--fold", 1,
            "--out", out, "--input-size", TINY, "--width", "filters=2", "--epochs", 2,
            "--seed", 7, "--params", params]


@pytest.fixture(scope="session")
def massseg_reference(
    root: Path, breast_store: Path, splits: Path, deterministic_params: Path
) -> Path:
    """An uninterrupted deterministic massseg training (model folder)."""
    from massseg.cli import app

    out = root / "deterministic" / "massseg" / "unet5l" / "fold_1"
    invoke(app, *massseg_train_args(breast_store, splits, out, deterministic_params))
    return out
