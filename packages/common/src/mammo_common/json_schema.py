"""Export the JSON Schema of every contract model (kept under ``docs/schema/`` in the repo)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from mammo_common.store.atomic import write_text_atomic

#: File stem -> "module:Class" of every model whose JSON Schema is published.
SCHEMA_MODELS: dict[str, str] = {
    "case_record": "mammo_common.schema.cases:CaseRecord",
    "producer": "mammo_common.schema.lineage:Producer",
    "store_mammograms": "mammo_common.schema.stores:MammogramsMeta",
    "store_breast": "mammo_common.schema.stores:BreastMeta",
    "store_masses": "mammo_common.schema.stores:MassesMeta",
    "store_diagnosis": "mammo_common.schema.stores:DiagnosisMeta",
    "splits": "mammo_common.schema.splits:Splits",
    "model_card": "mammo_common.schema.model_card:ModelCard",
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each published model, by file stem (models not importable skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for stem, target in SCHEMA_MODELS.items():
        module_name, cls_name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError):
            continue
        out[stem] = cls.model_json_schema()
    return out


def render(schema: dict[str, Any]) -> str:
    """Deterministic JSON text of a schema."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export_json_schemas(out_dir: str | Path) -> list[Path]:
    """Write ``<stem>.schema.json`` for every model into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in json_schemas().items():
        path = out_dir / f"{stem}.schema.json"
        write_text_atomic(path, render(schema))
        written.append(path)
    return written
