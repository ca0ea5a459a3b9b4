"""Configs: reference defaults, strict keys, params-file merging, loaders; package isolation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from mammo_common.errors import ConfigError
from mammo_common.params import load_section as _load_section
from massclass.config import (
    EvaluateConfig,
    EvaluateSettings,
    PredictConfig,
    PredictSettings,
    TrainConfig,
    TrainSettings,
)


def load_section(model, params, part, overrides=None):
    """One ``massclass.<part>`` section into ``model`` (a missing section counts as empty)."""
    return _load_section(model, params, f"massclass.{part}", overrides, missing_ok=True)


def _loader(config, settings_model, part):
    """As the CLI loads a command's config: ``load(params, paths=..., **options)``."""

    def load(params=None, *, paths, **settings):
        return _load_section(config, params, f"massclass.{part}", settings, paths=paths,
                             settings_model=settings_model, missing_ok=True)

    return load


load_train_config = _loader(TrainConfig, TrainSettings, "train")
load_predict_config = _loader(PredictConfig, PredictSettings, "predict")
load_evaluate_config = _loader(EvaluateConfig, EvaluateSettings, "evaluate")

PATHS = {"data": "data/masses.zarr", "splits": "data/splits.json", "fold": 1,
         "out": "models/massclass/vgg16/fold_1"}


def test_reference_defaults() -> None:
    cfg = TrainSettings()
    assert cfg.arch == "vgg16" and cfg.input_size == 224 and cfg.batch_size == 8
    assert [(p.trainable, p.learning_rate, p.epochs) for p in cfg.phases] == [
        ("head", 1e-3, 3), (0.25, 1e-4, 10), ("all", 1e-5, 100)]
    assert cfg.phases[2].early_stopping_patience is not None
    assert cfg.roi.benign_without_callback == "benign" and cfg.augment
    assert PredictSettings().threshold == 0.5
    assert EvaluateSettings().missed == "benign"


def test_params_merge_and_typos(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  train:\n    arch: resnet50v2\n    roi: {margin: 0.5}\n")
    cfg = load_section(TrainSettings, params, "train", {"roi": {"representation": "image+mask"}})
    assert cfg.arch == "resnet50v2"
    assert cfg.roi.margin == 0.5 and cfg.roi.representation == "image+mask"
    assert load_section(PredictSettings, params, "predict", {}).threshold == 0.5  # no section
    params.write_text("massclass:\n  train:\n    roi: {margn: 0.5}\n")
    with pytest.raises(ConfigError, match=r"massclass\.train\.roi\.margn"):
        load_section(TrainSettings, params, "train")
    with pytest.raises(ConfigError):
        load_section(PredictSettings, None, "predict", {"threshold": 1.5})
    assert load_section(PredictSettings, None, "predict", {"threshold": "youden"}).threshold == \
        "youden"


def test_no_stage_imports_another() -> None:
    src = Path(__file__).parents[1] / "src" / "massclass"
    pattern = re.compile(r"^\s*(from|import)\s+(breastseg|massseg)\b", re.MULTILINE)
    offenders = [p.name for p in src.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_intensity_augment_from_params(tmp_path: Path) -> None:
    """``intensity_augment`` parses from YAML (lists become tuples); typos are errors."""
    assert TrainSettings().intensity_augment.is_identity
    params = tmp_path / "params.yaml"
    params.write_text(
        "massclass:\n  train:\n    intensity_augment:\n"
        "      contrast: [0.8, 1.25]\n      background_p: 0.3\n"
    )
    cfg = load_section(TrainSettings, params, "train")
    assert cfg.intensity_augment.contrast == (0.8, 1.25)
    assert cfg.intensity_augment.background_p == 0.3
    params.write_text("massclass:\n  train:\n    intensity_augment: {contrast: [1.25, 0.8]}\n")
    with pytest.raises(ConfigError, match="intensity_augment"):
        load_section(TrainSettings, params, "train")
    params.write_text("massclass:\n  train:\n    intensity_augment: {contrst: [0.8, 1.2]}\n")
    with pytest.raises(ConfigError, match=r"massclass\.train\.intensity_augment\.contrst"):
        load_section(TrainSettings, params, "train")


def test_balanced_class_weights_equalise_the_classes() -> None:
    import numpy as np

    from massclass.train import balanced_class_weight

    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    weights = balanced_class_weight(labels)
    assert weights == {0: 8 / 12, 1: 8 / 4}
    # each class then weighs half of the total
    assert weights[0] * 6 == weights[1] * 2 == 4.0


def test_renamed_keys_are_refused_naming_the_new_key(tmp_path) -> None:
    """``backbone``/``backbone_options`` are the old names of ``arch``/``arch_options``."""
    from mammo_common.errors import ConfigError
    from mammo_common.params import RENAMED_KEYS

    for old, new in TrainConfig.RENAMED.items():
        assert RENAMED_KEYS[old] == new and new in TrainConfig.model_fields
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  train:\n    backbone: vgg16\n")
    with pytest.raises(ConfigError, match="'arch'") as err:
        load_section(TrainSettings, params, "train")
    assert err.value.field == "massclass.train.backbone"
    with pytest.raises(ConfigError, match="arch_options"):
        load_section(TrainSettings, None, "train", {"backbone_options": {"widths": [4]}})


def test_configs_are_settings_plus_paths() -> None:
    """As in massseg: ``*Config`` = ``*Settings`` + the paths and run options."""
    for settings, config, added in (
        (TrainSettings, TrainConfig, {"data", "splits", "fold", "out", "resume", "work_dir",
                                      "keep_work", "progress", "strategy"}),
        (PredictSettings, PredictConfig, {"models", "data", "out", "overwrite"}),
        (EvaluateSettings, EvaluateConfig, {"data", "out", "roc", "roc_plot", "splits", "part",
                                            "fold", "masses"}),
    ):
        assert issubclass(config, settings)
        assert set(config.model_fields) - set(settings.model_fields) == added
    with pytest.raises(pydantic.ValidationError, match="data"):
        TrainConfig()
    cfg = TrainConfig(**PATHS)
    assert cfg.resume and not cfg.keep_work and cfg.strategy == "none" and cfg.work_dir is None
    assert set(cfg.settings().model_dump()) == set(TrainSettings.model_fields) - {"epochs"}
    assert type(cfg.settings()) is TrainSettings


def test_load_train_config(tmp_path: Path) -> None:
    """The file's section, the options over it, the paths added (as the CLI builds it)."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "massclass:\n  train:\n    arch: tinycnn\n    weights: imagenet\n"
        "    roi: {margin: 0.5}\n"
    )
    cfg = load_train_config(
        params, paths={**PATHS, "resume": False, "progress": True, "strategy": "mirrored"},
        arch=None, epochs="1, 0,2", weights="None", threshold=" Youden ",
        roi={"representation": "image+mask"},
    )
    assert isinstance(cfg, TrainConfig)
    assert cfg.arch == "tinycnn" and cfg.weights is None and cfg.threshold == "youden"
    assert [p.epochs for p in cfg.phases] == [1, 0, 2]
    assert cfg.roi.margin == 0.5 and cfg.roi.representation == "image+mask"
    assert cfg.data == Path(PATHS["data"]) and cfg.fold == 1 and not cfg.resume
    assert cfg.progress and cfg.strategy == "mirrored"
    # what the model card records: the settings, without the shorthand or the paths
    dumped = cfg.settings().model_dump(mode="json")
    assert "epochs" not in dumped and "data" not in dumped
    assert [p["epochs"] for p in dumped["phases"]] == [1, 0, 2]
    # no params file, no section: the reference's settings
    assert load_train_config(paths=PATHS).phases == TrainSettings().phases
    assert load_train_config(params, paths=PATHS).weights == "imagenet"
    params.write_text("massclass:\n  predict: {}\n")
    assert load_train_config(params, paths=PATHS).arch == "vgg16"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"epochs": "1,x,2"}, "not a comma-separated list of integers"),
        ({"epochs": "1,2"}, "epochs gives 2 values for 3 phases"),
        ({"epochs": "-1,1,1"}, "non-negative"),
        ({"epochs": "0,0,0"}, "at least one phase needs epochs > 0"),
        ({"threshold": "often"}, "neither a number nor 'youden'"),
        ({"threshold": "card"}, "threshold"),
        ({"threshold": "1.5"}, "threshold must be in (0, 1)"),
    ],
)
def test_options_are_checked_by_the_config(settings: dict, needle: str) -> None:
    """The checks the CLI did are the config's: the API and the CLI refuse the same values."""
    with pytest.raises(ConfigError, match=re.escape(needle)) as err:
        load_train_config(None, paths=PATHS, **settings)
    assert err.value.field.startswith("massclass.train")
    with pytest.raises(pydantic.ValidationError, match=re.escape(needle)):
        TrainConfig(**PATHS, **settings)


def test_weights_none_spellings() -> None:
    for text in ("none", "NULL", "scratch", None):
        assert TrainSettings(weights=text).weights is None
    assert TrainSettings(weights="imagenet").weights == "imagenet"
    assert TrainSettings(weights="w/none.h5").weights == "w/none.h5"


def test_load_predict_and_evaluate_config(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  predict:\n    batch_size: 16\n"
                      "  evaluate:\n    n_bootstrap: 50\n")
    cfg = load_predict_config(
        params, paths={"models": ["m1", "m2"], "data": "masses.zarr", "out": "d.zarr",
                       "overwrite": True},
        threshold="CARD", batch_size=None,
    )
    assert isinstance(cfg, PredictConfig) and cfg.models == [Path("m1"), Path("m2")]
    assert cfg.threshold == "card" and cfg.batch_size == 16 and cfg.overwrite
    assert load_predict_config(paths={"models": ["m"], "data": "a", "out": "b"},
                               threshold="0.25").threshold == 0.25
    with pytest.raises(ConfigError, match="neither a number nor 'youden'/'card'") as err:
        load_predict_config(params, paths={"models": ["m"], "data": "a", "out": "b"},
                            threshold="sometimes")
    assert err.value.field == "massclass.predict.threshold" and err.value.path == str(params)
    with pytest.raises(ConfigError, match="models"):
        load_predict_config(paths={"models": [], "data": "a", "out": "b"})

    ev = load_evaluate_config(params, paths={"data": "d.zarr", "out": "m.json", "fold": 2,
                                             "part": "valid", "roc": None},
                              missed="exclude")
    assert isinstance(ev, EvaluateConfig)
    assert ev.n_bootstrap == 50 and ev.missed == "exclude" and ev.part == "valid"
    assert ev.fold == 2 and ev.roc is None and ev.splits is None
    assert load_evaluate_config(paths={"data": "d", "out": "m"}).part == "test"
    with pytest.raises(ConfigError, match="part"):
        load_evaluate_config(paths={"data": "d", "out": "m", "part": "tset"})


def test_the_cli_loads_configs_with_the_shared_loader() -> None:
    """Every command loads its config with ``mammo_common.params.load_section`` (as massseg's
    and breastseg's do): no loader of its own."""
    import massclass.cli
    import massclass.config

    source = Path(massclass.cli.__file__).read_text(encoding="utf-8")
    assert source.count("load_section(") == 3
    assert not [n for n in dir(massclass.config) if n.startswith(("load_", "_load"))]


@pytest.mark.parametrize("module", ["massclass.cli", "massclass.config", "massclass.train",
                                    "massclass.predict", "massclass.evaluate"])
def test_importing_does_not_import_keras(module: str) -> None:
    """Keras comes in when a command runs (as in massseg), not with the CLI or the config."""
    code = f"import sys, {module}; sys.exit('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"importing {module} imports keras {result.stderr}"
