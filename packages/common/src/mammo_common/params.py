"""Read a stage's section of ``params.yaml`` into its pydantic config (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from mammo_common.errors import ConfigError

M = TypeVar("M", bound=pydantic.BaseModel)


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
        overrides: Values given on the command line; ``None`` means "not given" and is ignored.
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
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
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
