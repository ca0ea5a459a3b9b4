"""Configs of the massseg commands: params.yaml sections, overrides, clear errors (no Keras)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mammo_common.errors import ConfigError
from mammo_common.params import load_section
from massseg.config import (
    CVConfig,
    EvaluateConfig,
    EvaluateSettings,
    MassSegParams,
    PredictConfig,
    PredictSettings,
    TrainConfig,
    TrainSettings,
    parse_kwargs,
    parse_size,
    reference_learning_rate,
)

PATHS = {"data": "b.zarr", "splits": "s.json", "fold": 1, "out": "m/fold_1"}


def _loader(config, settings_model, section):
    """As the CLI loads a command's config: ``load(params, paths=..., **options)``."""

    def load(params=None, *, paths, **settings):
        return load_section(config, params, f"massseg.{section}", settings, paths=paths,
                            settings_model=settings_model)

    return load


load_train_config = _loader(TrainConfig, TrainSettings, "train")
load_cv_config = _loader(CVConfig, TrainSettings, "train")
load_predict_config = _loader(PredictConfig, PredictSettings, "predict")
load_evaluate_config = _loader(EvaluateConfig, EvaluateSettings, "evaluate")


def test_parse_size_and_kwargs() -> None:
    assert parse_size("640x640") == (640, 640)
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size("64") == (64, 64)
    assert parse_size([32, 64]) == (32, 64)
    assert parse_size(None) is None
    with pytest.raises(ValueError, match="ROWSxCOLS"):
        parse_size("big")
    assert parse_kwargs(["filters=4", "dropout=0.1,deep_supervision=false"]) == {
        "filters": 4, "dropout": 0.1, "deep_supervision": False,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_kwargs(["filters"])


def test_reference_defaults() -> None:
    s = TrainSettings()
    assert (s.epochs, s.batch_size, s.loss, s.steps_multiplier) == (100, 2, "dice", 3)
    assert (s.reduce_lr_patience, s.reduce_lr_factor, s.min_lr) == (3, 0.1, 1e-8)
    assert s.lr_schedule == "plateau"  # the reference's; "poly" is nnU-Net's decay
    assert TrainSettings(lr_schedule="poly").lr_schedule == "poly"
    with pytest.raises(ValidationError):
        TrainSettings(lr_schedule="cosine")
    assert s.early_stopping_patience == 5 and s.augment and s.threshold == 0.5
    assert reference_learning_rate("unet5l") == 1e-3
    assert TrainSettings(arch="unet5l").effective_learning_rate == 1e-3
    assert TrainSettings(arch="unet_vgg16").effective_learning_rate == 1e-4
    assert TrainSettings(arch="unet5l", learning_rate=0.5).effective_learning_rate == 0.5


def test_params_file_then_overrides(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "massseg:\n  train:\n    arch: unet5l\n    epochs: 7\n    input_size: 64x64\n"
        "    arch_options: {filters: 4}\n  predict:\n    tta: true\n",
        encoding="utf-8",
    )
    cfg = load_train_config(params, paths=PATHS, epochs=3, batch_size=None)
    assert cfg.arch == "unet5l" and cfg.epochs == 3 and cfg.input_size == (64, 64)
    assert cfg.arch_options == {"filters": 4} and cfg.batch_size == 2
    assert cfg.fold == 1 and cfg.out == Path("m/fold_1")
    pcfg = load_predict_config(params, paths={"models": ["a"], "data": "b", "out": "c"})
    assert pcfg.tta is True and pcfg.min_object_pixels == 30 and pcfg.threshold is None


def test_null_in_the_params_file_is_a_value(tmp_path: Path) -> None:
    """``early_stopping_patience: null`` means "never stop early", not "the default (5)"."""
    params = tmp_path / "params.yaml"
    params.write_text("massseg:\n  train:\n    early_stopping_patience: null\n"
                      "    refine: {size: 32}\n", encoding="utf-8")
    cfg = load_train_config(params, paths=PATHS, early_stopping_patience=None)
    assert cfg.early_stopping_patience is None
    assert cfg.refine is not None and cfg.refine.size == 32
    assert load_train_config(None, paths=PATHS).early_stopping_patience == 5
    assert load_train_config(params, paths=PATHS, early_stopping_patience=3).early_stopping_patience == 3


def test_misspelt_arch_options_are_an_error(tmp_path: Path) -> None:
    """keras.Model drops unknown constructor arguments, so the config checks them (imports Keras)."""
    params = tmp_path / "params.yaml"
    params.write_text("massseg:\n  train:\n    arch: unet5l\n    arch_options: {filterz: 4}\n",
                      encoding="utf-8")
    with pytest.raises(ConfigError, match="unet5l has no argument 'filterz'") as info:
        load_train_config(params, paths=PATHS)
    assert info.value.path == str(params) and "arch_options" in str(info.value)
    with pytest.raises(ConfigError, match="it accepts dropout, filters"):
        load_cv_config(None, paths={"data": "b", "splits": "s", "out": "o"}, arch="unet5l",
                       arch_options={"filters": 4, "dropuot": 0.1})


def test_params_typo_is_an_error(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massseg:\n  train:\n    epohcs: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_train_config(params, paths=PATHS)
    assert "epohcs" in err.value.message and "params.yaml" in err.value.message
    # paths are command-line only: a path key in the file is a typo too
    params.write_text("massseg:\n  train:\n    data: x.zarr\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="data"):
        load_train_config(params, paths=PATHS)


def test_bad_values_are_errors() -> None:
    with pytest.raises(ConfigError, match="unknown network"):
        load_train_config(paths=PATHS, arch="unet6")
    with pytest.raises(ConfigError, match="loss"):
        load_train_config(paths=PATHS, loss="dise")
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_train_config(paths=PATHS, mixed_precision="int8")
    with pytest.raises(ConfigError, match="fold"):
        load_train_config(paths={**PATHS, "fold": 0})


def test_cv_config_folds() -> None:
    cfg = load_cv_config(paths={"data": "b", "splits": "s", "out": "cv", "folds": "1, 3"},
                         arch="unet5l", epochs=2)
    assert cfg.folds == [1, 3]
    fold = cfg.fold_config(3)
    assert fold.fold == 3 and fold.out == Path("cv/fold_3") and fold.epochs == 2
    with pytest.raises(ValueError):
        CVConfig(data="b", splits="s", out="cv", folds=[1, 1])


def test_evaluate_config_needs_one_source() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        load_evaluate_config(paths={"out": "m.json"})
    with pytest.raises(ConfigError, match="splits"):
        load_evaluate_config(paths={"out": "m.json", "data": "x"}, part="test")
    with pytest.raises(ConfigError, match="fold"):
        load_evaluate_config(paths={"out": "m.json", "data": "x", "splits": "s"}, part="valid")
    assert EvaluateConfig(out="m.json", cv="cv").cv == Path("cv")


def test_a_count_given_as_the_overlays_folder_is_refused() -> None:
    """``--overlays 0`` meant "no overlays" but would have drawn them into a folder "0"."""
    with pytest.raises(ConfigError, match="--n-overlays"):
        load_evaluate_config(paths={"out": "m.json", "data": "x", "overlays_dir": "0"})
    assert load_evaluate_config(
        paths={"out": "m.json", "data": "x", "overlays_dir": "plots/0"}
    ).overlays_dir == Path("plots/0")


def test_whole_section_validates() -> None:
    params = MassSegParams.model_validate(
        {"train": {"arch": "unet5l"}, "predict": {"tta": True}, "evaluate": {"overlays": 2}}
    )
    assert params.train.arch == "unet5l" and params.predict.tta and params.evaluate.overlays == 2
    with pytest.raises(ValueError):
        MassSegParams.model_validate({"trian": {}})


def test_intensity_augment_from_params(tmp_path: Path) -> None:
    """``intensity_augment`` parses from YAML (lists become tuples); typos are errors."""
    assert TrainSettings().intensity_augment.is_identity
    params = tmp_path / "params.yaml"
    params.write_text(
        "massseg:\n  train:\n    arch: unet5l\n    intensity_augment:\n"
        "      gamma: [0.6, 1.7]\n      noise_std: [0.0, 0.02]\n      blur_p: 0.2\n",
        encoding="utf-8",
    )
    cfg = load_train_config(params, paths=PATHS)
    assert cfg.intensity_augment.gamma == (0.6, 1.7) and cfg.intensity_augment.blur_p == 0.2
    assert not cfg.intensity_augment.is_identity
    assert cfg.model_dump(mode="json")["intensity_augment"]["gamma"] == [0.6, 1.7]
    assert TrainSettings(intensity_augment="sources").intensity_augment.curve_p == 0.3
    params.write_text(
        "massseg:\n  train:\n    intensity_augment: {gama: [0.6, 1.7]}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="intensity_augment.gama"):
        load_train_config(params, paths=PATHS)
