"""Configs: reference defaults, strict keys, params-file merging; package isolation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mammo_common.errors import ConfigError
from massclass.config import EvaluateConfig, PredictConfig, TrainConfig, load_section


def test_reference_defaults() -> None:
    cfg = TrainConfig()
    assert cfg.arch == "vgg16" and cfg.input_size == 224 and cfg.batch_size == 8
    assert [(p.trainable, p.learning_rate, p.epochs) for p in cfg.phases] == [
        ("head", 1e-3, 3), (0.25, 1e-4, 10), ("all", 1e-5, 100)]
    assert cfg.phases[2].early_stopping_patience is not None
    assert cfg.roi.benign_without_callback == "benign" and cfg.augment
    assert PredictConfig().threshold == 0.5
    assert EvaluateConfig().missed == "benign"


def test_params_merge_and_typos(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("massclass:\n  train:\n    arch: resnet50v2\n    roi: {margin: 0.5}\n")
    cfg = load_section(TrainConfig, params, "train", {"roi": {"representation": "image+mask"}})
    assert cfg.arch == "resnet50v2"
    assert cfg.roi.margin == 0.5 and cfg.roi.representation == "image+mask"
    assert load_section(PredictConfig, params, "predict", {}).threshold == 0.5  # no section
    params.write_text("massclass:\n  train:\n    roi: {margn: 0.5}\n")
    with pytest.raises(ConfigError, match=r"massclass\.train\.roi\.margn"):
        load_section(TrainConfig, params, "train")
    with pytest.raises(ConfigError):
        load_section(PredictConfig, None, "predict", {"threshold": 1.5})
    assert load_section(PredictConfig, None, "predict", {"threshold": "youden"}).threshold == \
        "youden"


def test_no_stage_imports_another() -> None:
    src = Path(__file__).parents[1] / "src" / "massclass"
    pattern = re.compile(r"^\s*(from|import)\s+(breastseg|massseg)\b", re.MULTILINE)
    offenders = [p.name for p in src.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_intensity_augment_from_params(tmp_path: Path) -> None:
    """``intensity_augment`` parses from YAML (lists become tuples); typos are errors."""
    assert TrainConfig().intensity_augment.is_identity
    params = tmp_path / "params.yaml"
    params.write_text(
        "massclass:\n  train:\n    intensity_augment:\n"
        "      contrast: [0.8, 1.25]\n      background_p: 0.3\n"
    )
    cfg = load_section(TrainConfig, params, "train")
    assert cfg.intensity_augment.contrast == (0.8, 1.25)
    assert cfg.intensity_augment.background_p == 0.3
    params.write_text("massclass:\n  train:\n    intensity_augment: {contrast: [1.25, 0.8]}\n")
    with pytest.raises(ConfigError, match="intensity_augment"):
        load_section(TrainConfig, params, "train")
    params.write_text("massclass:\n  train:\n    intensity_augment: {contrst: [0.8, 1.2]}\n")
    with pytest.raises(ConfigError, match=r"massclass\.train\.intensity_augment\.contrst"):
        load_section(TrainConfig, params, "train")


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
        load_section(TrainConfig, params, "train")
    assert err.value.field == "massclass.train.backbone"
    with pytest.raises(ConfigError, match="arch_options"):
        load_section(TrainConfig, None, "train", {"backbone_options": {"widths": [4]}})
