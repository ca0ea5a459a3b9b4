"""breastseg train config: ``intensity_augment`` and ``lr_schedule`` from ``params.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest

from breastseg.config import TrainConfig
from mammo_common.errors import ConfigError
from mammo_common.params import load_section

PATHS = {"data": "m.zarr", "splits": "s.json", "out": "models/fold_1"}


def test_intensity_augment_from_params(tmp_path: Path) -> None:
    assert TrainConfig(**PATHS).intensity_augment.is_identity
    params = tmp_path / "params.yaml"
    params.write_text(
        "breastseg:\n  train:\n    input_size: 128x96\n    intensity_augment:\n"
        "      gamma: [0.6, 1.7]\n      curve_p: 0.3\n      preserve_zero: false\n",
        encoding="utf-8",
    )
    cfg = load_section(TrainConfig, params, "breastseg.train", PATHS)
    assert cfg.intensity_augment.gamma == (0.6, 1.7) and cfg.intensity_augment.curve_p == 0.3
    assert cfg.intensity_augment.preserve_zero is False
    params.write_text(
        "breastseg:\n  train:\n    intensity_augment: {gamma: [0.6, 1.7], nois: 0.1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"breastseg\.train\.intensity_augment\.nois"):
        load_section(TrainConfig, params, "breastseg.train", PATHS)


def test_renamed_keys_are_refused_naming_the_new_key(tmp_path) -> None:
    """``lr_patience`` & co. are the old names: refused with the name every stage uses."""
    from breastseg.config import EvaluateConfig, PredictConfig, TrainConfig
    from mammo_common.errors import ConfigError
    from mammo_common.params import RENAMED_KEYS, load_section

    for config in (TrainConfig, PredictConfig, EvaluateConfig):
        assert config.RENAMED, config
        for old, new in config.RENAMED.items():
            assert RENAMED_KEYS[old] == new and new in config.model_fields, (config, old)
            assert old not in config.model_fields
    params = tmp_path / "params.yaml"
    params.write_text("breastseg:\n  train:\n    lr_patience: 2\n")
    with pytest.raises(ConfigError, match="reduce_lr_patience") as err:
        load_section(TrainConfig, params, "breastseg.train",
                     {"data": "d", "splits": "s", "out": "o"})
    assert err.value.field == "breastseg.train.lr_patience"


def test_lr_schedule_from_params(tmp_path: Path) -> None:
    """``lr_schedule``: the reference's plateau rule by default, nnU-Net's poly decay on ask;
    the harness gets the matching arguments (no plateau rule beside the poly decay)."""
    from mammo_common.keras.training.harness import ReduceLROnPlateauConfig, schedule_arguments

    assert TrainConfig(**PATHS).lr_schedule == "plateau"
    params = tmp_path / "params.yaml"
    params.write_text("breastseg:\n  train:\n    lr_schedule: poly\n", encoding="utf-8")
    cfg = load_section(TrainConfig, params, "breastseg.train", PATHS)
    assert schedule_arguments(cfg.lr_schedule, 3, 0.1, 1e-8) == {
        "reduce_lr": None, "lr_schedule": "poly"}
    plateau = schedule_arguments("plateau", 2, 0.5, 1e-6)
    assert plateau["lr_schedule"] == "constant"
    assert plateau["reduce_lr"] == ReduceLROnPlateauConfig(patience=2, factor=0.5, min_lr=1e-6)
    params.write_text("breastseg:\n  train:\n    lr_schedule: cosine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"breastseg\.train\.lr_schedule"):
        load_section(TrainConfig, params, "breastseg.train", PATHS)
