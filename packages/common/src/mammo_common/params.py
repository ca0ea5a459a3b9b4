"""Read a stage's section of ``params.yaml`` into its pydantic config (unknown keys are errors).

Every stage builds its configs from the pieces here, so the three read alike:

* :class:`StrictConfig`: the base of every config (``extra="forbid"``: a typo is an error) that
  refuses a key renamed in an earlier version with a message naming the new key
  (:data:`RENAMED_KEYS`).
* :data:`Size`: ``(rows, cols)`` written ``1024x768``, ``1024,768``, ``640`` (square),
  ``[1024, 768]`` or a single integer.
* :func:`load_section`: a command's config from its section of a params file, the options
  given over it (deep-merged) and its paths: the one config loader of every stage.
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
    "load_section",
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


def _section_values(
    params_file: str | Path | None, section: str, *, missing_ok: bool
) -> dict[str, Any]:
    """``section`` of ``params_file`` (``{}`` without a file, or when missing and allowed)."""
    if params_file is None:
        return {}
    try:
        return read_params_section(params_file, section)
    except ConfigError as exc:
        if missing_ok and exc.problem == "section is missing":
            return {}
        raise


def _validate(
    model: type[M], values: dict[str, Any], params_file: str | Path | None, section: str | None
) -> M:
    """``values`` validated as ``model``; a problem is a :class:`ConfigError` naming the key."""
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
        where = f"{section}.{field}" if section and field else (section or field)
        raise ConfigError(
            f"{err.get('msg')} ({len(exc.errors())} problem(s) in all)",
            path=params_file,
            field=where,
            fix=f"check the spelling and type; valid keys: {', '.join(model.model_fields)}",
        ) from None


def load_section(
    model: type[M],
    params_file: str | Path | None,
    section: str,
    settings: dict[str, Any] | None = None,
    *,
    paths: dict[str, Any] | None = None,
    settings_model: type[pydantic.BaseModel] | None = None,
    missing_ok: bool = False,
) -> M:
    """A command's config: its ``params.yaml`` section, the options given over it, the paths.

    The one config loader of every stage (``breastseg``, ``massseg``, ``massclass``) and of
    ``mammo split``. Values are layered, later ones winning:

    1. ``section`` of ``params_file`` (when given), where ``None`` is a value:
       ``early_stopping_patience: null`` means "never stop early", not "the default";
    2. ``settings``, the options given on the command line (or in Python), where ``None``
       means "not given" and is skipped; a mapping is merged key by key into the file's
       (``{"roi": {"margin": 0.5}}`` changes one key of ``roi``);
    3. ``paths``, merged the same way, after the settings were validated.

    With ``settings_model`` (the stage's ``*Settings``: the keys a params section may hold),
    layers 1 and 2 are validated as ``settings_model`` first, so a path written in the params
    file is an unknown key, and the result plus ``paths`` is then validated as ``model`` (the
    ``*Config``, the settings plus paths and run options). Without it, ``model`` takes all
    three layers at once (breastseg's configs, which hold both).

    Args:
        model: The config class to return.
        params_file: ``params.yaml``, or ``None`` for defaults and options only.
        section: Dotted section of it, e.g. ``"massseg.train"``; it also prefixes the key an
            error names (``massseg.train.epochs``).
        settings: Options over the file's values (``None`` values: not given).
        paths: Paths and run options (``None`` values: not given).
        settings_model: What the params section may hold, validated before ``paths`` are
            added (``None``: ``model`` validates everything).
        missing_ok: A missing section counts as empty (defaults) instead of an error.

    Returns:
        The validated config.

    Raises:
        ConfigError: A missing or invalid params file or section, an unknown key (typos are
            errors, not ignored), a renamed key (naming its new name) or a bad value; the
            message names the file, the key and the fix.
    """
    values = deep_merge(
        _section_values(params_file, section, missing_ok=missing_ok), settings or {}
    )
    if settings_model is None:
        return _validate(model, deep_merge(values, paths or {}), params_file, section)
    validated = _validate(settings_model, values, params_file, section)
    return _validate(model, deep_merge(validated.model_dump(), paths or {}), None, None)
