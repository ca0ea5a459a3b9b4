"""The shared config toolkit: one size type, strict keys, renamed keys named, deep merging, one
loader (``load_section``) for every stage."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pydantic
import pytest

from mammo_common.errors import ConfigError
from mammo_common.params import (
    Size,
    StrictConfig,
    deep_merge,
    load_section,
    parse_size,
)


class _Demo(StrictConfig):
    RENAMED: ClassVar[dict[str, str]] = {"tta_flips": "tta", "model": "arch"}

    arch: str = "unet5l"
    tta: bool = False
    input_size: Size = (64, 48)
    nested: dict[str, int] = pydantic.Field(default_factory=dict)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024x768", (1024, 768)), ("1024,768", (1024, 768)), ("640", (640, 640)),
     ("32 X 16", (32, 16)), (96, (96, 96)), ([32, 64], (32, 64)), ((8, 4), (8, 4))],
)
def test_every_size_spelling_gives_rows_cols(text, size) -> None:
    assert parse_size(text) == size
    assert _Demo(input_size=text).input_size == size


@pytest.mark.parametrize("bad", ["big", "1x2x3", [1, 2, 3], "0x10", [-4, 4]])
def test_bad_sizes_are_refused(bad) -> None:
    with pytest.raises(pydantic.ValidationError, match="size"):
        _Demo(input_size=bad)


def test_unknown_key_is_an_error_naming_the_valid_keys(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("stage:\n  train:\n    archh: unet5l\n")
    with pytest.raises(ConfigError) as err:
        load_section(_Demo, params, "stage.train")
    text = str(err.value)
    assert "stage.train.archh" in text and "arch" in text and str(params) in text


@pytest.mark.parametrize("where", ["file", "override", "direct"])
def test_renamed_key_names_the_new_key(tmp_path: Path, where: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("stage:\n  train:\n    tta_flips: true\n" if where == "file" else "stage:\n  train: {}\n")
    if where == "direct":
        with pytest.raises(pydantic.ValidationError, match="'tta_flips' was renamed 'tta'"):
            _Demo(tta_flips=True)
        return
    overrides = {"tta_flips": True} if where == "override" else None
    with pytest.raises(ConfigError) as err:
        load_section(_Demo, params, "stage.train", overrides)
    assert err.value.field == "stage.train.tta_flips"
    assert "'tta'" in str(err.value) and "renamed" in str(err.value)


def test_new_keys_load_and_overrides_merge_deeply(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("stage:\n  train:\n    arch: unetpp\n    nested: {a: 1, b: 2}\n")
    cfg = load_section(_Demo, params, "stage.train",
                       {"tta": True, "nested": {"b": 3}, "arch": None})
    assert (cfg.arch, cfg.tta, cfg.nested) == ("unetpp", True, {"a": 1, "b": 3})


def test_deep_merge_skips_none_and_keeps_inputs() -> None:
    base = {"roi": {"margin": 0.25, "source": "pred"}, "seed": 0}
    merged = deep_merge(base, {"roi": {"margin": 0.5}, "seed": None})
    assert merged == {"roi": {"margin": 0.5, "source": "pred"}, "seed": 0}
    assert base == {"roi": {"margin": 0.25, "source": "pred"}, "seed": 0}



class _Settings(StrictConfig):
    """A stage's ``*Settings``: what its params section may hold."""

    RENAMED: ClassVar[dict[str, str]] = {"lr_patience": "reduce_lr_patience"}

    epochs: int = pydantic.Field(default=100, ge=1)
    early_stopping_patience: int | None = 5
    reduce_lr_patience: int = 3
    nested: dict[str, int] = pydantic.Field(default_factory=dict)


class _Config(_Settings):
    """Its ``*Config``: the settings plus the paths given on the command line."""

    data: Path
    out: Path


def _params(tmp_path: Path, text: str) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(text, encoding="utf-8")
    return params


def test_load_section_layers_file_settings_then_paths(tmp_path: Path) -> None:
    params = _params(tmp_path, "stage:\n  train:\n    epochs: 7\n    nested: {a: 1, b: 2}\n")
    cfg = load_section(_Config, params, "stage.train", {"nested": {"b": 3}, "epochs": None},
                       paths={"data": "d.zarr", "out": "m", "epochs": None},
                       settings_model=_Settings)
    assert isinstance(cfg, _Config)
    assert (cfg.epochs, cfg.nested, cfg.data, cfg.out) == (7, {"a": 1, "b": 3}, Path("d.zarr"),
                                                            Path("m"))
    # no file: the defaults, the options and the paths
    cfg = load_section(_Config, None, "stage.train", {"epochs": 2},
                       paths={"data": "d", "out": "m"}, settings_model=_Settings)
    assert (cfg.epochs, cfg.early_stopping_patience) == (2, 5)


def test_load_section_null_in_the_file_is_a_value_none_in_options_is_not(tmp_path: Path) -> None:
    """``early_stopping_patience: null`` means "never", not "the default"; an option left out
    (``None``) keeps the file's value."""
    params = _params(tmp_path, "stage:\n  train:\n    early_stopping_patience: null\n")
    paths = {"data": "d", "out": "m"}
    for settings_model in (_Settings, None):
        cfg = load_section(_Config, params, "stage.train", {"early_stopping_patience": None},
                           paths=paths, settings_model=settings_model)
        assert cfg.early_stopping_patience is None
        cfg = load_section(_Config, params, "stage.train", {"early_stopping_patience": 3},
                           paths=paths, settings_model=settings_model)
        assert cfg.early_stopping_patience == 3
    assert load_section(_Config, None, "stage.train", paths=paths).early_stopping_patience == 5


def test_load_section_refuses_paths_in_the_file_with_a_settings_model(tmp_path: Path) -> None:
    """With ``settings_model`` the params section holds settings only: a path there is a typo;
    without it (one config holding both) it is a value."""
    params = _params(tmp_path, "stage:\n  train:\n    data: x.zarr\n")
    with pytest.raises(ConfigError) as err:
        load_section(_Config, params, "stage.train", paths={"data": "d", "out": "m"},
                     settings_model=_Settings)
    assert err.value.field == "stage.train.data" and err.value.path == str(params)
    cfg = load_section(_Config, params, "stage.train", {"out": "m"})
    assert cfg.data == Path("x.zarr")


@pytest.mark.parametrize("where", ["file", "settings"])
def test_load_section_renamed_key_names_the_new_key(tmp_path: Path, where: str) -> None:
    text = "    lr_patience: 2\n" if where == "file" else "    epochs: 3\n"
    params = _params(tmp_path, "stage:\n  train:\n" + text)
    settings = {"lr_patience": 2} if where == "settings" else None
    with pytest.raises(ConfigError, match="reduce_lr_patience") as err:
        load_section(_Config, params, "stage.train", settings, paths={"data": "d", "out": "m"},
                     settings_model=_Settings)
    assert err.value.field == "stage.train.lr_patience"
    assert "renamed" in str(err.value)


def test_load_section_missing_section(tmp_path: Path) -> None:
    """A missing section is an error naming it, unless ``missing_ok`` (then: defaults)."""
    params = _params(tmp_path, "stage:\n  predict: {}\n")
    with pytest.raises(ConfigError, match="section is missing") as err:
        load_section(_Settings, params, "stage.train")
    assert err.value.field == "stage.train"
    assert load_section(_Settings, params, "stage.train", missing_ok=True) == _Settings()
    assert load_section(_Settings, params, "other.train", missing_ok=True) == _Settings()
    with pytest.raises(ConfigError, match="not found"):
        load_section(_Settings, tmp_path / "absent.yaml", "stage.train", missing_ok=True)


def test_load_section_bad_value_names_the_key_and_the_file(tmp_path: Path) -> None:
    params = _params(tmp_path, "stage:\n  train:\n    epochs: 0\n")
    with pytest.raises(ConfigError) as err:
        load_section(_Config, params, "stage.train", paths={"data": "d", "out": "m"},
                     settings_model=_Settings)
    assert err.value.field == "stage.train.epochs" and err.value.path == str(params)
    # a missing path is the command line's problem, not the file's
    with pytest.raises(ConfigError) as err:
        load_section(_Config, params, "stage.train", {"epochs": 2}, paths={"data": "d"},
                     settings_model=_Settings)
    assert err.value.field == "out" and err.value.path is None
