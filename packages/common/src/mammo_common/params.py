"""Read a stage's section of ``params.yaml`` into its pydantic config (unknown keys are errors).

Every stage builds its configs from the pieces here, so the three read alike:

* :class:`StrictConfig`: the base of every config (``extra="forbid"``: a typo is an error) that
  refuses a key renamed in an earlier version with a message naming the new key
  (:data:`RENAMED_KEYS`).
* :data:`Size`: ``(rows, cols)`` written ``1024x768``, ``1024,768``, ``640`` (square),
  ``[1024, 768]`` or a single integer.
* :func:`load_config`: a section of a params file, deep-merged with values from other files and
  with command-line overrides, validated into a config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict

from mammo_common.errors import ConfigError

__all__ = [
    "RENAMED_KEYS",
    "Size",
    "StrictConfig",
    "deep_merge",
    "load_config",
    "parse_size",
    "read_params_section",
    "renamed_key_message",
]

M = TypeVar("M", bound=pydantic.BaseModel)

#: Params keys renamed so that one idea has one name in every stage: old key -> new key. A
#: config lists the ones that apply to it in ``StrictConfig.RENAMED`` (``model`` is still the
#: model *folder* of the predict and evaluate commands, so only training configs rename it).
RENAMED_KEYS: dict[str, str] = {
    "model": "arch",  # the network choice (breastseg train)
    "backbone": "arch",  # the network choice (massclass train)
    "backbone_options": "arch_options",  # its builder's extra arguments (massclass train)
    "model_kwargs": "arch_options",  # the same (massseg train)
    "tta_flips": "tta",  # test-time augmentation (breastseg predict/evaluate)
    "lr_patience": "reduce_lr_patience",  # the plateau patience (breastseg train)
    "lr_factor": "reduce_lr_factor",  # the plateau factor (breastseg train)
    "steps_per_epoch_factor": "steps_multiplier",  # steps per epoch (breastseg train)
}


def renamed_key_message(old: str, new: str) -> str:
    """The error text for a params key that was renamed."""
    return f"'{old}' was renamed '{new}' (one name in every stage): write '{new}' instead"


def parse_size(value: Any) -> Any:
    """``"1024x768"``, ``"1024,768"``, ``"640"``, ``640`` or ``[1024, 768]`` -> ``(rows, cols)``.

    ``None`` and values of other types are returned unchanged for pydantic to judge.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        parts = [p for p in re.split(r"[xX*, ]+", value.strip()) if p]
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"size {value!r} must look like ROWSxCOLS, e.g. 1024x768 (or 640)")
        return int(parts[0]), int(parts[1])
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"size {list(value)!r} must have two values (rows, columns)")
        return tuple(value)
    return value


def _positive_size(size: tuple[int, int]) -> tuple[int, int]:
    if min(size) <= 0:
        raise ValueError(f"size {size[0]}x{size[1]} must be positive")
    return size


#: An image size ``(rows, cols)``, positive, in any spelling :func:`parse_size` accepts.
Size = Annotated[tuple[int, int], BeforeValidator(parse_size), AfterValidator(_positive_size)]


class StrictConfig(pydantic.BaseModel):
    """Base of every stage config: unknown keys are errors, renamed keys name their new key.

    Subclasses list the renamed keys that apply to them in ``RENAMED`` (old -> new).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    RENAMED: ClassVar[dict[str, str]] = {}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _refuse_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in cls.RENAMED.items():
                if old in data:
                    raise ValueError(renamed_key_message(old, new))
        return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, mappings merged key by key; ``None`` in ``extra`` skipped."""
    out = dict(base)
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_params_section(path: str | Path, section: str) -> dict[str, Any]:
    """Return ``section`` (dotted, e.g. ``"massseg.train"``) of a YAML params file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("params file not found", path=path, fix="check the --params path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({exc})", path=path, fix="fix the syntax") from None
    node: Any = data
    for key in section.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(
                "section is missing", path=path, field=section, fix=f"add a '{section}' section"
            )
        node = node[key]
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise ConfigError(
            "section is not a mapping", path=path, field=section, fix="use key: value"
        )
    return dict(node)


def load_config(
    model: type[M],
    *,
    params_file: str | Path | None = None,
    section: str | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> M:
    """Build a config from a params file section and explicit overrides (``None`` values ignored).

    Args:
        model: The pydantic config class.
        params_file: ``params.yaml`` (optional).
        section: Dotted section of it, e.g. ``massseg.train``.
        overrides: Values given on the command line; ``None`` means "not given" and is ignored;
            a mapping is merged key by key into the file's (``{"roi": {"margin": 0.5}}``
            changes one key of ``roi``).
        base: Values already validated or read from a file, applied after the section and
            before ``overrides``, where ``None`` is a value (``early_stopping_patience: null``
            means "never stop early", not "the default").

    Raises:
        ConfigError: naming the file, the bad key and the fix (typos are errors, not ignored).
    """
    values: dict[str, Any] = {}
    if params_file is not None and section:
        values.update(read_params_section(params_file, section))
    values.update(base or {})
    values = deep_merge(values, overrides or {})
    for old, new in getattr(model, "RENAMED", {}).items():
        if old in values:
            raise ConfigError(
                f"'{old}' was renamed '{new}' (one name in every stage)",
                path=params_file,
                field=f"{section}.{old}" if section else old,
                fix=f"write '{new}' instead of '{old}'",
            )
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        where = f"{section}.{field}" if section else field
        raise ConfigError(
            f"{err.get('msg')} ({len(exc.errors())} problem(s) in all)",
            path=params_file,
            field=where,
            fix=f"check the spelling and type; valid keys: {', '.join(model.model_fields)}",
        ) from None
