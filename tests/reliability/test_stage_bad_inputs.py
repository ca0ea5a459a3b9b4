"""Bad inputs to the stage commands, each through the real CLI (``CliRunner``).

Every ``predict`` command is given, one at a time: a store of the wrong kind, of an unknown
schema version, with a wrongly shaped array, a missing store, a missing model folder, the model
folder of another stage, a corrupt ``model.keras`` (garbage bytes; a zip that is no Keras
archive), and a params.yaml with a typo in a key (or no valid YAML at all). Every ``train``
command: a store of the wrong kind, a typo in a key of params.yaml and in a key nested in one of
its options (massseg and massclass ``arch_options``, breastseg ``labeller``),
and a folder given as the splits file. Every ``evaluate``: a store of the wrong kind, a missing
store, a folder as the splits file. Each must end with exit code 2, one ``error:`` line naming
the file (and field) with a ``Fix:``, no traceback, nothing at the output path and no hidden
temporary next to it, and the inputs unchanged.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import zarr
from reliability_helpers import assert_refused, call, tree_digest

from breastseg.cli import app as breastseg_app
from massclass.cli import app as massclass_app
from massseg.cli import app as massseg_app

STAGES = {"breastseg": breastseg_app, "massseg": massseg_app, "massclass": massclass_app}

#: The input store kind of each stage's predict command, and a store of another kind.
INPUT = {"breastseg": "mammograms", "massseg": "breast", "massclass": "masses"}
WRONG = {"breastseg": "breast", "massseg": "mammograms", "massclass": "breast"}
#: The model folder of another stage, for each stage.
OTHER_STAGE = {"breastseg": "massseg", "massseg": "breastseg", "massclass": "massseg"}


@pytest.fixture(scope="module")
def inputs(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Every shared store and model folder, by name."""
    names = {
        "mammograms": "mammograms", "breast": "breast_store", "masses": "masses_store",
        "breastseg_model": "breastseg_model", "massseg_model": "massseg_model",
        "massclass_model": "massclass_model",
    }
    return {key: request.getfixturevalue(fixture) for key, fixture in names.items()}


# ----------------------------------------------------------------------------- damage


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _retag(store: Path, **changes: object) -> Path:
    group = zarr.open_group(str(store), mode="r+", zarr_format=3)
    meta = dict(group.attrs["mammo"])
    meta.update(changes)
    group.attrs["mammo"] = meta
    return store


def _reshape(store: Path) -> tuple[Path, str]:
    """Replace one array by a wrongly shaped one; returns the store and the array's name."""
    group = zarr.open_group(str(store), mode="r+", zarr_format=3)
    if "cases" in group:  # mammograms: one case's mass mask of another size
        case_id = next(iter(group["cases"].group_keys()))
        name = f"cases/{case_id}/mass_mask"
        del group[name]
        group.create_array(name, shape=(10, 10), dtype="uint8", fill_value=0)
        return store, name
    del group["images"]
    group.create_array("images", shape=(2, 32, 32), dtype="uint16", fill_value=0)
    return store, "images"


def _corrupt_model(folder: Path) -> Path:
    (folder / "model.keras").write_bytes(b"\x00garbage, not a Keras archive\n" * 64)
    return folder


def _foreign_zip(folder: Path) -> Path:
    (folder / "model.keras").unlink()
    with zipfile.ZipFile(folder / "model.keras", "w") as zf:
        zf.writestr("readme.txt", "a zip archive, but no Keras model")
    return folder


#: One bad input each (the others are good); see :func:`_setup`.
CASES = [
    "wrong-kind", "unknown-version", "wrong-shape", "missing-store", "missing-model",
    "other-stage-model", "corrupt-model", "foreign-zip-model", "params-typo", "params-not-yaml",
]


def _setup(stage: str, case: str, inputs: dict[str, Path], tmp: Path) -> tuple[
    Path, Path, Path | None, tuple[str, ...]
]:
    """``(data, model, params, needles)`` for one bad-input case; the damaged path is a needle."""
    data = inputs[INPUT[stage]]
    model = inputs[f"{stage}_model"]
    params: Path | None = None
    needles: tuple[str, ...]
    if case == "wrong-kind":
        data = inputs[WRONG[stage]]
        needles = (str(data), "mammo.kind", f"is a '{WRONG[stage]}' store",
                   f"a '{INPUT[stage]}' store is needed")
    elif case == "unknown-version":
        data = _retag(_copy(data, tmp / "in" / "v9.zarr"), schema_version="9.0")
        needles = (str(data), "mammo.schema_version", "'9.0' is not supported", "upgrade")
    elif case == "wrong-shape":
        data, name = _reshape(_copy(data, tmp / "in" / "shape.zarr"))
        needles = (str(data), name, "(10, 10)" if "cases" in name else "(2, 32, 32)")
    elif case == "missing-store":
        data = tmp / "in" / "absent.zarr"
        needles = (str(data), "does not exist")
    elif case == "missing-model":
        model = tmp / "in" / "models" / "absent"
        needles = (str(model), "does not exist")
    elif case == "other-stage-model":
        model = inputs[f"{OTHER_STAGE[stage]}_model"]
        needles = (str(model), f"is a {OTHER_STAGE[stage]} model", f"not a {stage} model")
    elif case == "corrupt-model":
        model = _corrupt_model(_copy(model, tmp / "in" / "models" / "corrupt"))
        needles = (str(model / "model.keras"), "corrupt")
    elif case == "foreign-zip-model":
        model = _foreign_zip(_copy(model, tmp / "in" / "models" / "foreign"))
        needles = (str(model / "model.keras"), "cannot be loaded")
    elif case == "params-typo":
        params = tmp / "in" / "params.yaml"
        params.parent.mkdir(parents=True, exist_ok=True)
        params.write_text(f"{stage}:\n  predict:\n    treshold: 0.5\n")
        needles = (str(params), f"{stage}.predict.treshold")
    elif case == "params-not-yaml":
        params = tmp / "in" / "params.yaml"
        params.parent.mkdir(parents=True, exist_ok=True)
        params.write_text(f"{stage}:\n  predict: [unclosed\n")
        needles = (str(params), "YAML")
    else:  # pragma: no cover
        raise AssertionError(case)
    return data, model, params, needles


def _predict_args(stage: str, data: Path, model: Path, out: Path, params: Path | None) -> list:
    args = ["predict", "--data", data, "--model", model, "--out", out]
    if stage == "breastseg":
        args += ["--output-size", "32x32"]
    return args + (["--params", params] if params is not None else [])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_bad_input_to_predict_is_refused(stage: str, case: str, inputs, tmp_path: Path) -> None:
    data, model, params, needles = _setup(stage, case, inputs, tmp_path)
    watched = [p for p in (data, model, params) if p is not None and p.exists()]
    before = {p: tree_digest(p) if p.is_dir() else p.read_bytes() for p in watched}
    out = tmp_path / "out" / "result.zarr"
    result = call(STAGES[stage], *_predict_args(stage, data, model, out, params))
    assert_refused(result, out, *needles)
    for path, digest in before.items():
        assert (tree_digest(path) if path.is_dir() else path.read_bytes()) == digest, (
            f"{path} was modified"
        )


# ----------------------------------------------------------------------------- train


def _train_args(stage: str, data: Path, splits: Path, out: Path, params: Path | None) -> list:
    args = ["train", "--data", data, "--splits", splits, "--fold", 1, "--out", out]
    if stage == "massseg":
        args += ["--arch", "unet5l", "--input-size", "32x32", "--epochs", 1]
    elif stage == "breastseg":
        args += ["--input-size", "32x32", "--filters", 2, "--epochs", 1]
    else:
        args += ["--arch", "tinycnn", "--input-size", 32, "--weights", "none",
                 "--epochs", "1,1,1"]
    return args + (["--params", params] if params is not None else [])


#: The store each stage trains on (breastseg: mammograms, massseg: breast, massclass: masses).
TRAIN_INPUT = {"breastseg": "mammograms", "massseg": "breast", "massclass": "masses"}

#: A misspelt key inside a nested option of each stage's train section.
NESTED_TYPO = {
    "breastseg": ("labeller: {smoothing: 2}", "breastseg.train.labeller.smoothing"),
    "massseg": ("arch_options: {filterz: 2}", "unet5l has no argument 'filterz'"),
    "massclass": ("arch_options: {widthz: [4]}", "massclass.train.arch_options"),
}


@pytest.mark.parametrize(
    "case", ["wrong-kind", "params-typo", "params-nested-typo", "splits-folder"]
)
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_bad_input_to_train_is_refused(
    stage: str, case: str, inputs, splits: Path, tmp_path: Path
) -> None:
    """Bad input to ``train``: refused before anything (model or training folder) is written.

    The fold is 2 for massclass (its fold-1 training patients hold one class only).
    """
    data = inputs[TRAIN_INPUT[stage]]
    params = None
    if case == "wrong-kind":
        data = inputs[WRONG[stage]]
        needles: tuple[str, ...] = (str(data), "mammo.kind", f"is a '{WRONG[stage]}' store")
    elif case == "params-typo":
        params = tmp_path / "params.yaml"
        params.write_text(f"{stage}:\n  train:\n    epochz: 1\n")
        needles = (str(params), f"{stage}.train.epochz")
    elif case == "params-nested-typo":
        params = tmp_path / "params.yaml"
        option, message = NESTED_TYPO[stage]
        params.write_text(f"{stage}:\n  train:\n    {option}\n")
        needles = (message,) + ((str(params),) if stage != "massclass" else ())
    else:
        splits = inputs["mammograms"]  # a folder where the splits JSON file is expected
        needles = (str(splits), "is a folder", "mammo split")
    out = tmp_path / "models" / stage / "fold_1"
    args = _train_args(stage, data, splits, out, params)
    if stage == "massclass":
        args[args.index("--fold") + 1] = 2
    assert_refused(call(STAGES[stage], *args), out, *needles)
    assert not out.parent.exists() or list(out.parent.iterdir()) == [], "nothing is written"


# ----------------------------------------------------------------------------- evaluate


def _evaluate_args(stage: str, data: Path, splits: Path, out: Path) -> list:
    args = ["evaluate", "--data", data, "--splits", splits, "--part", "test", "--out", out]
    return args + (["--method", "threshold"] if stage == "breastseg" else [])


#: The store each stage's evaluate scores.
EVALUATE_INPUT = {"breastseg": "mammograms", "massseg": "masses", "massclass": "diagnosis"}


@pytest.mark.parametrize("case", ["wrong-kind", "missing-store", "splits-folder"])
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_bad_input_to_evaluate_is_refused(
    stage: str, case: str, inputs, splits: Path, diagnosis_store: Path, tmp_path: Path
) -> None:
    data = diagnosis_store if stage == "massclass" else inputs[EVALUATE_INPUT[stage]]
    if case == "wrong-kind":
        data = inputs["breast"]
        needles: tuple[str, ...] = (str(data), "mammo.kind", "is a 'breast' store")
    elif case == "missing-store":
        data = tmp_path / "absent.zarr"
        needles = (str(data), "does not exist")
    else:
        splits = inputs["mammograms"]
        needles = (str(splits), "is a folder", "mammo split")
    out = tmp_path / "metrics" / "metrics.json"
    assert_refused(call(STAGES[stage], *_evaluate_args(stage, data, splits, out)), out, *needles)
    assert not out.parent.exists() or list(out.parent.iterdir()) == [], "nothing is written"
