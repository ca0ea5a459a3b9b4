"""The run report: one page an imaging researcher can read without opening code.

``mammo report`` gathers what the pipeline left on disk — metrics JSON per stage, training
histories of the models in the stores' lineage, the PNGs the stages drew (overlays, ROC), and
the lineage of every store — and writes ``report.md`` with its pictures, plus a
self-contained ``index.html``.

Only the models that made the given stores (their producers' ``model_ids``, and those of the
stores upstream of them, followed through each store's recorded parents) have their training
curves in the report: other model folders under ``models_dir`` (another architecture or fold
trained for comparison, an unfinished training's working folder) are not what produced the
results shown, so they are left out (:func:`lineage_model_ids`).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mammo_common.errors import MammoError
from mammo_common.plots import read_history, read_phase_names, training_curves
from mammo_common.schema.model_card import HISTORY_FILE
from mammo_common.store import open_store
from mammo_common.store.atomic import atomic_path
from mammo_common.viz import write_contact_sheet


class ReportConfig(BaseModel):
    """What to gather and where to write the report."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Path("reports")
    stores: list[Path] = Field(default_factory=list)
    metrics_dir: Path = Path("metrics")
    models_dir: Path = Path("models")
    plots_dir: Path = Path("plots")
    title: str = "mammo pipeline run"


class ReportResult(BaseModel):
    """Where the report went and what it holds."""

    markdown: Path
    html: Path
    n_metrics_files: int
    n_models: int
    n_images: int


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _flat_metrics(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MammoError(
            f"cannot read metrics ({exc})", path=path, fix="re-run its stage"
        ) from None
    if not isinstance(data, dict):
        return {}
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, int | float | str | bool):
            flat[key] = value
        elif isinstance(value, dict):  # one level of nesting, e.g. {"case": {...}}
            flat.update({f"{key}.{k}": v for k, v in value.items()
                         if isinstance(v, int | float | str | bool)})
    return flat


def lineage_model_ids(stores: Sequence[str | Path]) -> list[str]:
    """The ids of the models in the stores' lineage (``<stage>/<arch>/fold_<k>``), sorted.

    Each store's producer lists the models that wrote it; its recorded parents (the stores it
    was derived from) are followed too, when they can be opened where they were recorded, so
    the diagnosis store alone brings in the mass and breast models upstream of it.

    Args:
        stores: The stores whose lineage is reported.

    Returns:
        The model ids, each once, sorted (the order of ``models/<stage>/...``).

    Raises:
        MammoError: If one of ``stores`` cannot be opened (a parent that cannot is skipped).
    """
    ids: set[str] = set()
    seen: set[Path] = set()
    pending: list[tuple[Path, bool]] = [(Path(s), True) for s in stores]
    while pending:
        path, given = pending.pop()
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            store = open_store(path)
        except (MammoError, OSError):
            if given:
                raise
            continue  # a raw folder, or a parent moved since: its models are unknown
        ids.update(store.meta.producer.model_ids)
        pending.extend((Path(parent.path), False) for parent in store.meta.parents)
    return sorted(ids)


def build_report(config: ReportConfig) -> ReportResult:
    """Write ``report.md``, its PNGs and a self-contained ``index.html`` into ``config.out``."""
    md: list[str] = [f"# {config.title}", ""]
    images: list[tuple[str, Path]] = []
    with atomic_path(config.out) as tmp:
        tmp.mkdir(parents=True)
        # 1. headline metrics, one table per file
        metric_files = [
            p for p in (sorted(config.metrics_dir.rglob("*.json"))
                        if config.metrics_dir.is_dir() else [])
            if "cases" not in p.relative_to(config.metrics_dir).parts[:-1]  # per-case detail
        ]
        md += ["## Metrics", ""]
        for path in metric_files:
            flat = _flat_metrics(path)
            if not flat:
                continue
            md += [f"**{path.relative_to(config.metrics_dir)}**", "", "| metric | value |",
                   "|---|---|"]
            md += [f"| {k} | {_fmt(v)} |" for k, v in flat.items()]
            md.append("")
        if not metric_files:
            md += ["(no metrics found)", ""]
        # 2. training curves of the models in the stores' lineage
        lineage = lineage_model_ids(config.stores)
        histories = [config.models_dir / mid / HISTORY_FILE for mid in lineage]
        missing = [mid for mid, hist in zip(lineage, histories, strict=True)
                   if not hist.is_file()]
        histories = [hist for hist in histories if hist.is_file()]
        md += ["## Training curves", ""]
        if not lineage:
            md += ["(no model in the stores' lineage)", ""]
        if missing:
            md += [f"Not found under `{config.models_dir}`: "
                   + ", ".join(f"`{mid}`" for mid in missing), ""]
        for k, hist in enumerate(histories):
            model_id = str(hist.parent.relative_to(config.models_dir))
            name = f"curves_{k:02d}.png"
            training_curves(read_history(hist), title=model_id,
                            phase_names=read_phase_names(hist)).save(tmp / name)
            md += [f"### {model_id}", "", f"![training curves of {model_id}]({name})", ""]
            images.append((model_id, tmp / name))
            card = hist.parent / "model_card.json"
            if card.is_file():
                info = json.loads(card.read_text(encoding="utf-8"))
                keep = {k: info.get(k) for k in ("architecture", "input_shape", "weights_origin",
                                                 "threshold") if k in info}
                if keep:
                    md += ["`" + json.dumps(keep) + "`", ""]
        # 3. pictures the stages drew
        pngs = sorted(config.plots_dir.rglob("*.png")) if config.plots_dir.is_dir() else []
        md += ["## Figures", ""]
        for k, png in enumerate(pngs):
            name = f"figure_{k:02d}.png"
            (tmp / name).write_bytes(png.read_bytes())
            label = str(png.relative_to(config.plots_dir))
            md += [f"### {label}", "", f"![{label}]({name})", ""]
            images.append((label, tmp / name))
        # 4. data lineage and contact sheets of the stores
        md += ["## Data lineage", "", "| store | kind | cases | producer | parents |",
               "|---|---|---|---|---|"]
        sheets: list[tuple[str, str]] = []
        for k, store_path in enumerate(config.stores):
            store = open_store(store_path)
            prod = store.meta.producer
            parents = ", ".join(f"{p.kind} `{p.path}`" for p in store.meta.parents) or "-"
            models = f" models {', '.join(prod.model_ids)}" if prod.model_ids else ""
            md.append(f"| `{store_path}` | {store.kind} | {len(store)} | {prod.package} "
                      f"{prod.version} `{prod.command}`{models} | {parents} |")
            if store.kind != "diagnosis":
                name = f"sheet_{k:02d}_{store.kind}.png"
                write_contact_sheet(store, tmp / name, max_cases=12, tile=160)
                sheets.append((f"{store.kind}: {store_path}", name))
                images.append((store.kind, tmp / name))
        md.append("")
        if sheets:
            md += ["## Cases", "", "Contours: yellow breast, cyan ground-truth mass, orange "
                   "predicted mass.", ""]
            for label, name in sheets:
                md += [f"### {label}", "", f"![{label}]({name})", ""]
        text = "\n".join(md) + "\n"
        (tmp / "report.md").write_text(text, encoding="utf-8")
        (tmp / "index.html").write_text(_html(text, tmp), encoding="utf-8")
    return ReportResult(
        markdown=config.out / "report.md",
        html=config.out / "index.html",
        n_metrics_files=len(metric_files),
        n_models=len(histories),
        n_images=len(images),
    )


def _html(markdown: str, folder: Path) -> str:
    """A minimal Markdown-to-HTML rendering with images inlined (tables, headings, images)."""
    out = ["<!doctype html><meta charset='utf-8'><title>mammo report</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
           "img{max-width:100%}</style>"]
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            data = base64.b64encode((folder / src.rstrip(")")).read_bytes()).decode()
            out.append(f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out) + "\n"
