"""End to end on a fixture masses store: train (three phases, resumable), predict, evaluate.

Only mammo-common and mammo-massclass are used: the masses store is written by the test
fixture, so this proves the package works installed alone.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from mammo_common.errors import InputFileError
from mammo_common.keras.deployment.model_folder import load_model_folder
from mammo_common.keras.training import harness as training_mod
from mammo_common.store import open_store
from massclass.cli import app
from massclass.config import (
    EvaluateConfig,
    PhaseConfig,
    PredictConfig,
    RoiConfig,
    TrainConfig,
    TrainSettings,
)
from massclass.evaluate import evaluate, evaluate_paths
from massclass.predict import predict, predict_paths
from massclass.train import train, train_classifier

runner = CliRunner()


def _text(result) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(result.output.split())

TINY = {"arch": "tinycnn", "input_size": 32, "batch_size": 8,
        "arch_options": {"widths": [8, 16]}}


def _phases(epochs: tuple[int, int, int]) -> list[PhaseConfig]:
    return [
        PhaseConfig(name="head", trainable="head", learning_rate=1e-3, epochs=epochs[0]),
        PhaseConfig(name="top", trainable=0.25, learning_rate=1e-3, epochs=epochs[1]),
        PhaseConfig(name="all", trainable="all", learning_rate=1e-3, epochs=epochs[2],
                    early_stopping_patience=3),
    ]


@pytest.fixture(scope="module")
def cli_model(masses_data, tmp_path_factory) -> dict:
    """A model trained through the CLI (three phases, 1+1+2 epochs)."""
    root = tmp_path_factory.mktemp("cli")
    params = root / "params.yaml"
    params.write_text(
        "massclass:\n  train:\n    arch: tinycnn\n    input_size: 32\n"
        "    arch_options: {widths: [8, 16]}\n    roi: {margin: 0.3}\n"
        "  predict:\n    batch_size: 16\n"
    )
    out = root / "models" / "massclass" / "tinycnn" / "fold_1"
    result = runner.invoke(app, [
        "train", "--params", str(params), "--data", str(masses_data["store"]),
        "--splits", str(masses_data["splits"]), "--fold", "1", "--out", str(out),
        "--epochs", "1,1,2", "--threshold", "youden", "--class-weight", "balanced",
    ])
    assert result.exit_code == 0, result.output
    assert "trained massclass/tinycnn/fold_1" in _text(result)
    return {"out": out, "root": root, "params": params, "output": result.output}


def test_cli_train_writes_a_complete_folder(cli_model) -> None:
    out = cli_model["out"]
    assert {p.name for p in out.iterdir()} == {"model.keras", "model_card.json", "history.csv",
                                               "dvclive"}
    assert not (out.parent / ".fold_1.training").exists()
    model, card = load_model_folder(out, "massclass")
    assert card.architecture == "tinycnn" and card.task == "classification"
    assert card.input_shape == (32, 32, 3)
    assert card.training["roi"]["margin"] == 0.3
    assert card.training["class_weight"] == "balanced"
    assert card.data.fold == 1 and card.data.train_store_digest
    if "youden_threshold" in card.metrics:
        assert card.threshold == pytest.approx(card.metrics["youden_threshold"])
    lines = (out / "history.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["epoch", "phase", "phase_name", "phase_epoch"]
    assert [row.split(",")[2] for row in lines[1:]] == ["head", "top", "all", "all"]
    assert model.get_layer("malignancy").units == 1


def test_cli_predict_precision_options(cli_model, masses_data) -> None:
    """--precision bfloat16 / --no-fold-batchnorm reach the provenance; probabilities agree."""
    root = cli_model["root"]
    probs = {}
    for name, flags in (("f32", []), ("bf16", ["--precision", "bfloat16"]),
                        ("unfolded", ["--no-fold-batchnorm"])):
        diag = root / f"diagnosis_{name}.zarr"
        result = runner.invoke(app, [
            "predict", "--model", str(cli_model["out"]), "--data", str(masses_data["store"]),
            "--out", str(diag), "--params", str(cli_model["params"]), *flags,
        ])
        assert result.exit_code == 0, result.output
        store = open_store(diag, "diagnosis")
        params = store.meta.producer.params
        assert params["precision"] == ("bfloat16" if name == "bf16" else "float32")
        assert params["fold_batchnorm"] is (name != "unfolded")
        probs[name] = np.asarray(store.probabilities, np.float64)
    known = ~np.isnan(probs["f32"])
    np.testing.assert_allclose(probs["unfolded"][known], probs["f32"][known], atol=1e-5)
    assert np.abs(probs["bf16"][known] - probs["f32"][known]).max() < 0.05


def test_cli_predict_and_evaluate(cli_model, masses_data) -> None:
    root = cli_model["root"]
    diag = root / "diagnosis.zarr"
    result = runner.invoke(app, [
        "predict", "--model", str(cli_model["out"]), "--data", str(masses_data["store"]),
        "--out", str(diag), "--params", str(cli_model["params"]),
    ])
    assert result.exit_code == 0, result.output
    assert "2 case(s) with no mass found" in _text(result)
    store = open_store(diag, "diagnosis")
    assert store.meta.threshold == 0.5 and store.meta.threshold_method == "fixed"
    by_id = {d.case_id: d for d in store.meta.diagnoses}
    for missed in masses_data["missed"]:
        assert by_id[missed].label == "no_mass_found" and by_id[missed].probability is None
    two = by_id["case005"]
    assert len(two.masses) == 2
    assert two.probability == max(m.probability for m in two.masses)
    assert by_id["case000"].truth == "malignant" and by_id["case003"].truth == "benign"
    assert np.isnan(store.probabilities[masses_data["case_ids"].index("case003")])

    metrics, roc, png = root / "metrics.json", root / "roc.json", root / "roc.png"
    result = runner.invoke(app, [
        "evaluate", "--data", str(diag), "--splits", str(masses_data["splits"]),
        "--part", "test", "--out", str(metrics), "--roc", str(roc), "--roc-plot", str(png),
        "--n-bootstrap", "200",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(metrics.read_text())
    case = data["case"]
    for key in ("accuracy", "roc_auc", "roc_auc_ci", "sensitivity", "specificity", "precision",
                "f1", "mcc", "cohen_kappa", "confusion_matrix"):
        assert key in case
    assert data["n_evaluated"] == data["n_cases"] - data["n_unknown_truth"]
    assert data["mass"] is not None and "n_masses_without_truth_overlap" in data["mass"]
    points = json.loads(roc.read_text())
    assert points[0]["threshold"] is None and {"fpr", "tpr", "threshold"} <= set(points[-1])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_api_youden_threshold_and_ensemble(cli_model, masses_data, tmp_path) -> None:
    _, card = load_model_folder(cli_model["out"], "massclass")
    if "youden_threshold" not in card.metrics:
        pytest.skip("validation fold held one class")
    out = tmp_path / "diag.zarr"
    summary = predict(PredictConfig(models=[cli_model["out"], cli_model["out"]],
                                    data=masses_data["store"], out=out, threshold="youden"))
    assert summary.threshold_method == "youden"
    assert summary.threshold == pytest.approx(card.metrics["youden_threshold"])
    assert summary.n_no_mass_found == 2 and summary.n_cases == len(masses_data["case_ids"])
    result = evaluate(EvaluateConfig(data=out, out=tmp_path / "m.json"))
    assert result.part == "all" and result.n_no_mass_found == 2
    excluded = evaluate(EvaluateConfig(data=out, out=tmp_path / "m2.json", missed="exclude",
                                       n_bootstrap=50))
    assert excluded.n_evaluated == result.n_evaluated - 2


def test_deprecated_path_signatures_still_work(cli_model, masses_data, tmp_path) -> None:
    """``predict_paths``/``evaluate_paths``: the old positional forms, with a warning."""
    out = tmp_path / "diag.zarr"
    with pytest.warns(DeprecationWarning, match="predict_paths"):
        summary = predict_paths([cli_model["out"]], masses_data["store"], out,
                                PredictConfig(models=[tmp_path], data=tmp_path, out=tmp_path,
                                              threshold=0.3))
    assert summary.out == str(out) and summary.threshold == 0.3  # the settings, not the paths
    with pytest.warns(DeprecationWarning, match="evaluate_paths"):
        result = evaluate_paths(out, tmp_path / "m.json", splits=masses_data["splits"],
                                part="test")
    assert result.part == "test" and (tmp_path / "m.json").is_file()


def test_train_resumes_at_the_interrupted_phase(masses_data, tmp_path, monkeypatch,
                                                 keras_session) -> None:
    out = tmp_path / "fold_2"
    config = TrainConfig(**TINY, phases=_phases((1, 1, 1)), roi=RoiConfig(source="truth"),
                         data=masses_data["store"], splits=masses_data["splits"], fold=2,
                         out=out)
    real = training_mod.fit_resumable
    calls: list[str] = []
    fail = {"at": 2}

    def failing(model, *args, **kwargs):
        calls.append(str(kwargs["out_dir"]))
        if len(calls) == fail["at"]:
            raise KeyboardInterrupt
        return real(model, *args, **kwargs)

    monkeypatch.setattr(training_mod, "fit_resumable", failing)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert not out.exists()
    work = tmp_path / ".fold_2.training"
    assert "head" in json.loads((work / "phases.json").read_text())["completed"]

    calls.clear()
    fail["at"] = 0
    # resumed under other run options (progress bars): the settings alone are fingerprinted
    summary = train(config.model_copy(update={"progress": True}))
    assert summary.resumed
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["phase2_top", "phase3_all"]
    assert [p.epochs_run for p in summary.phases] == [1, 1, 1]
    assert summary.epochs_run == 3
    assert summary.train_rois["n_missed_cases"] == 0  # ground-truth ROIs miss nothing
    assert not work.exists()


def test_train_refuses_a_single_class(masses_data, tmp_path) -> None:
    from mammo_common.schema.splits import Splits

    splits = Splits.load(masses_data["splits"])
    settings = TrainSettings(**TINY, phases=_phases((1, 0, 0)),
                             roi=RoiConfig(benign_without_callback="exclude"))
    malignant_only = [c for c in splits.fold(1).train
                      if masses_data["pathology"][masses_data["case_ids"].index(c)]
                      == "MALIGNANT"]
    assert malignant_only
    fold = splits.fold(1).model_copy(update={"train": malignant_only})
    bad = splits.model_construct(**{**splits.__dict__, "folds": [fold, splits.fold(2)]})
    path = tmp_path / "splits.json"
    path.write_text(bad.to_json())
    with pytest.raises(InputFileError):
        train(TrainConfig(**settings.model_dump(), data=masses_data["store"], splits=path,
                          fold=1, out=tmp_path / "m"))
    assert not (tmp_path / "m").exists()
    # the deprecated positional form builds the same config
    with pytest.warns(DeprecationWarning, match="train_classifier"), \
            pytest.raises(InputFileError):
        train_classifier(masses_data["store"], path, 1, tmp_path / "m", settings)
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- bad input


def test_cli_help_teaches() -> None:
    for command in ("train", "predict", "evaluate", "models"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in _text(result)
    assert "massclass train" in _text(runner.invoke(app, ["--help"]))


def test_cli_wrong_store_kind(masses_data, tmp_path) -> None:
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", "--data", str(masses_data["store"]),
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "is a 'masses' store" in _text(result) and "massclass predict" in _text(result)
    assert not out.exists()


def test_cli_missing_model_folder(masses_data, tmp_path) -> None:
    out = tmp_path / "diag.zarr"
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"),
                                 "--data", str(masses_data["store"]), "--out", str(out)])
    assert result.exit_code == 2
    assert "model folder does not exist" in _text(result)
    assert not out.exists()


def test_cli_params_typo(masses_data, tmp_path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  train:\n    backbon: vgg16\n")
    out = tmp_path / "model"
    result = runner.invoke(app, [
        "train", "--params", str(params), "--data", str(masses_data["store"]),
        "--splits", str(masses_data["splits"]), "--fold", "1", "--out", str(out),
    ])
    assert result.exit_code == 2
    assert "massclass.train.backbon" in _text(result)
    assert not out.exists()


def test_cli_unknown_backbone_and_fold(masses_data, tmp_path) -> None:
    out = tmp_path / "model"
    base = ["train", "--data", str(masses_data["store"]), "--splits",
            str(masses_data["splits"]), "--out", str(out)]
    result = runner.invoke(app, [*base, "--fold", "1", "--arch", "vgg17"])
    assert result.exit_code == 2 and "vgg17" in _text(result)
    result = runner.invoke(app, [*base, "--fold", "9", "--arch", "tinycnn"])
    assert result.exit_code == 2 and "no fold 9" in _text(result)
    assert not out.exists()


def test_cli_arch_options_typo(masses_data, tmp_path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  train:\n    arch_options: {widthz: [4]}\n")
    out = tmp_path / "model"
    result = runner.invoke(app, [
        "train", "--params", str(params), "--data", str(masses_data["store"]),
        "--splits", str(masses_data["splits"]), "--fold", "1", "--out", str(out),
        "--arch", "tinycnn", "--weights", "none", "--input-size", "32",
    ])
    assert result.exit_code == 2, _text(result)
    assert "massclass.train.arch_options" in _text(result) and "widthz" in _text(result)
    assert not out.exists() and list(tmp_path.glob(".model*")) == []


def test_cli_models_lists_backbones() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for text in ("vgg16", "14,879,041", "inceptionv3", "efficientnetb0", "tinycnn"):
        assert text in _text(result)
    counted = runner.invoke(app, ["models", "--count", "--backbone", "tinycnn",
                                  "--input-size", "32"])
    assert counted.exit_code == 0 and "tinycnn" in _text(counted)
    assert keras.backend.backend() == "tensorflow"
