"""The shared config toolkit: one size type, strict keys, renamed keys named, deep merging."""

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
    load_config,
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
        load_config(_Demo, params_file=params, section="stage.train")
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
        load_config(_Demo, params_file=params, section="stage.train", overrides=overrides)
    assert err.value.field == "stage.train.tta_flips"
    assert "'tta'" in str(err.value) and "renamed" in str(err.value)


def test_new_keys_load_and_overrides_merge_deeply(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("stage:\n  train:\n    arch: unetpp\n    nested: {a: 1, b: 2}\n")
    cfg = load_config(_Demo, params_file=params, section="stage.train",
                      overrides={"tta": True, "nested": {"b": 3}, "arch": None})
    assert (cfg.arch, cfg.tta, cfg.nested) == ("unetpp", True, {"a": 1, "b": 3})


def test_deep_merge_skips_none_and_keeps_inputs() -> None:
    base = {"roi": {"margin": 0.25, "source": "pred"}, "seed": 0}
    merged = deep_merge(base, {"roi": {"margin": 0.5}, "seed": None})
    assert merged == {"roi": {"margin": 0.5, "source": "pred"}, "seed": 0}
    assert base == {"roi": {"margin": 0.25, "source": "pred"}, "seed": 0}

