"""One-shot inference for one mammogram (``mammo run``) through whichever stages are installed.

mammo-common never imports a stage. Each stage package registers a small plugin object in the
entry-point group ``mammo.stages`` (``[project.entry-points."mammo.stages"]`` in its
``pyproject.toml``); :func:`discover_stages` loads them with :mod:`importlib.metadata`. A plugin
(:class:`StagePlugin`) has a ``name`` (its models live under ``<models>/<name>/``), an
``order`` (1 breastseg, 2 massseg, 3 massclass), the fields of :class:`OneShotCase` it
``requires`` and a ``run(case, model_dirs)`` that fills in its part of the case:

1. **breastseg** segments the breast on the native image, blanks the background, crops to the
   breast and resizes to ``work_size`` (``case.work_image``, ``case.transform``,
   ``case.breast_mask``), exactly as ``breastseg predict`` does;
2. **massseg** gives ``case.mass_probs`` / ``case.mass_pred`` on the work image and one
   :class:`MassFinding` per connected mass, as ``massseg predict`` does;
3. **massclass** gives each mass its malignancy probability and label, as
   ``massclass predict`` does.

A stage that is not installed, has no model under ``<models>``, or lacks its inputs is
skipped with a note; without breastseg the mass stages see the whole image.

Model choice (:func:`find_model_folders`): the folders ``<models>/<stage>/<arch>/fold_<k>``
holding a model card are grouped by architecture; the architecture with the highest mean of
the plugin's ``selection_metric`` over its folds wins (ties and missing metrics: alphabetical
order), and all of its folds are used as an ensemble (probabilities averaged).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mammo_common.errors import ConfigError, InputFileError, MammoError
from mammo_common.schema import CaseTransform

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_STAGES",
    "MassFinding",
    "OneShotCase",
    "StagePlugin",
    "discover_stages",
    "find_model_folders",
    "read_input_image",
    "render_overlay",
    "run_one",
]

#: Entry-point group in which stage packages register their one-shot plugin.
ENTRY_POINT_GROUP = "mammo.stages"
#: The pipeline's stages and the distribution that provides each.
KNOWN_STAGES: dict[str, str] = {
    "breastseg": "mammo-breastseg",
    "massseg": "mammo-massseg",
    "massclass": "mammo-massclass",
}
_FOLD = re.compile(r"fold_(\d+)$")


@dataclasses.dataclass
class MassFinding:
    """One mass found by mass segmentation (work-image coordinates).

    Attributes:
        index: 1-based number in raster order (the numbering ``massclass predict`` writes).
        bbox: ``(y0, x0, y1, x1)`` in work-image pixels, end-exclusive.
        area: Pixels in the work image.
        component: The :class:`~mammo_common.postprocess.Component` (its mask and slices).
        probability: Malignancy probability (None until a classifier ran).
        label: ``malignant`` / ``benign`` (None until a classifier ran).
    """

    index: int
    bbox: tuple[int, int, int, int]
    area: int
    component: Any = dataclasses.field(repr=False)
    probability: float | None = None
    label: str | None = None


@dataclasses.dataclass
class OneShotCase:
    """Everything known about the mammogram; stages fill it in turn.

    Attributes:
        image: The native image (uint16).
        source: Where it came from (file path).
        work_size: Size of the breast crop the mass stages see (``breastseg predict
            --output-size``; 640x640 in the reference).
        work_image: What the mass stages see (the breast crop, or the native image).
        transform: Native -> work mapping (None: the work image is the native image).
        breast_mask: Native breast mask (uint8 0/1), if breastseg ran.
        mass_probs: Mass probability map on the work image, if massseg ran.
        mass_pred: Post-processed mass mask on the work image (uint8 0/1).
        min_object_pixels: Smallest mass kept (massseg's post-processing).
        masses: The masses found.
        threshold: Malignancy threshold used by the classifier.
        stages_run: Stages that ran, in order.
        model_ids: Model ids used, per stage.
        notes: What was skipped or unusual, for the user.
    """

    image: NDArray
    source: str = ""
    work_size: tuple[int, int] = (640, 640)
    work_image: NDArray | None = None
    transform: CaseTransform | None = None
    breast_mask: NDArray | None = None
    mass_probs: NDArray | None = None
    mass_pred: NDArray | None = None
    min_object_pixels: int = 30
    masses: list[MassFinding] = dataclasses.field(default_factory=list)
    threshold: float | None = None
    stages_run: list[str] = dataclasses.field(default_factory=list)
    model_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.work_image is None:
            self.work_image = self.image

    def to_native(self, work_mask: NDArray) -> NDArray:
        """A work-image mask mapped onto the native image (nearest)."""
        if self.transform is None:
            return np.asarray(work_mask)
        from mammo_common.transforms import invert_transform

        return invert_transform(np.asarray(work_mask), self.transform, order=0)

    def native_bbox(self, bbox: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A work-image box in native pixels (:func:`mammo_common.transforms.box_to_native`)."""
        if self.transform is None:
            return bbox
        from mammo_common.transforms import box_to_native

        return box_to_native(bbox, self.transform)

    def native_mask(self, mass: MassFinding) -> NDArray[np.uint8]:
        """One mass's mask on the native image."""
        work = np.zeros(np.shape(self.work_image), np.uint8)
        work[mass.component.slices] = mass.component.mask
        return self.to_native(work)

    @property
    def diagnosis(self) -> dict[str, Any]:
        """The case's diagnosis: its most malignant mass (``no_mass_found`` without masses)."""
        if "massseg" not in self.stages_run:
            return {"label": "not_segmented", "probability": None}
        if not self.masses:
            return {"label": "no_mass_found", "probability": None}
        probs = [m.probability for m in self.masses if m.probability is not None]
        if not probs:
            return {"label": "masses_not_classified", "probability": None}
        p = max(probs)
        thr = 0.5 if self.threshold is None else self.threshold
        return {"label": "malignant" if p >= thr else "benign", "probability": p}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (native coordinates)."""
        return {
            "source": self.source,
            "image_shape": list(np.shape(self.image)),
            "stages_run": list(self.stages_run),
            "model_ids": {k: list(v) for k, v in self.model_ids.items()},
            "threshold": self.threshold,
            "diagnosis": self.diagnosis,
            "masses": [
                {
                    "index": m.index,
                    "bbox_native": list(self.native_bbox(m.bbox)),
                    "bbox_work": list(m.bbox),
                    "area_work": m.area,
                    "area_native": int(self.native_mask(m).sum()),
                    "probability": m.probability,
                    "label": m.label,
                }
                for m in self.masses
            ],
            "notes": list(self.notes),
        }


@runtime_checkable
class StagePlugin(Protocol):
    """What a stage registers under the ``mammo.stages`` entry-point group."""

    name: str
    order: int
    requires: tuple[str, ...]
    selection_metric: str

    def run(self, case: OneShotCase, model_dirs: Sequence[Path]) -> None:
        """Fill in this stage's part of ``case`` with the models in ``model_dirs``."""
        ...


def discover_stages() -> tuple[list[StagePlugin], list[str]]:
    """The installed stage plugins (by ``order``) and notes on those that failed to load."""
    plugins: list[StagePlugin] = []
    notes: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken stage must not stop the others
            notes.append(f"stage {ep.name} is installed but failed to load "
                         f"({type(exc).__name__}: {exc}); skipped")
            continue
        if not isinstance(obj, StagePlugin):
            notes.append(f"entry point {ep.name} ({ep.value}) is not a stage plugin; skipped")
            continue
        plugins.append(obj)
    plugins.sort(key=lambda p: (p.order, p.name))
    return plugins, notes


def _fold_number(path: Path) -> int:
    m = _FOLD.search(path.name)
    return int(m.group(1)) if m else 0


def find_model_folders(root: str | Path, stage: str, metric: str | None = None) -> list[Path]:
    """The model folders to use for ``stage``: all folds of its best architecture.

    Args:
        root: The models folder (``models/``), holding ``<stage>/<arch>/fold_<k>/``.
        stage: The stage name.
        metric: Card metric (higher is better) ranking the architectures by their mean over
            folds; architectures without it rank last; ties go alphabetically.

    Returns:
        The chosen architecture's fold folders, by fold number (empty if none).
    """
    from mammo_common.schema.model_card import CARD_FILE, MODEL_FILE, read_model_card

    base = Path(root) / stage
    if not base.is_dir():
        return []
    groups: dict[str, list[Path]] = {}
    for folder in sorted(base.glob("*/fold_*")):
        if (folder / CARD_FILE).is_file() and (folder / MODEL_FILE).is_file():
            groups.setdefault(folder.parent.name, []).append(folder)
    if not groups:
        return []

    def score(arch: str) -> tuple[float, str]:
        values = []
        for folder in groups[arch]:
            try:
                value = read_model_card(folder).metrics.get(metric or "", float("nan"))
            except MammoError:
                continue
            if math.isfinite(value):
                values.append(value)
        return (-float(np.mean(values)) if values else math.inf, arch)

    best = min(groups, key=score)
    return sorted(groups[best], key=_fold_number)


def read_input_image(path: str | Path) -> NDArray[np.uint16]:
    """Read a mammogram for ``mammo run``: DICOM (``.dcm``, ``.dicom`` or no suffix) with
    LUTs applied, or PNG/TIFF/JPEG as ``mammo ingest`` reads a folder (8-bit scaled to 16).

    Raises:
        InputFileError: Missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("is not a file", path=path, fix="check the path")
    if path.suffix.lower() in (".dcm", ".dicom", ""):
        from mammo_common.ingest.dicom import read_dicom

        image, _ = read_dicom(path)
        return image
    from mammo_common.imageio import read_image, to_uint16

    arr, _ = read_image(path)
    image, _ = to_uint16(arr)
    return image


def run_one(
    image: NDArray,
    models: str | Path,
    *,
    plugins: Sequence[StagePlugin] | None = None,
    source: str = "",
    work_size: tuple[int, int] = (640, 640),
) -> OneShotCase:
    """Run every installed stage that has a model on one mammogram.

    Args:
        image: The native 2-D image (uint16; uint8/float accepted as the stages accept them).
        models: The models folder (``<models>/<stage>/<arch>/fold_<k>/``).
        plugins: Stage plugins (default: :func:`discover_stages`).
        source: Where the image came from (for the summary).
        work_size: Size of the breast crop the mass stages see.

    Returns:
        The filled-in :class:`OneShotCase` (``notes`` says what was skipped).

    Raises:
        InputFileError: ``models`` is not a folder or the image is not 2-D.
        ConfigError: No stage is installed.
    """
    models = Path(models)
    if not models.is_dir():
        raise InputFileError(
            "is not a folder", path=models, field="--models",
            fix="pass the folder holding <stage>/<arch>/fold_<k>/ model folders (e.g. models/)",
        )
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputFileError(f"the image has shape {image.shape}, not 2-D", path=source or None,
                             fix="pass a single-frame gray mammogram")
    notes: list[str] = []
    if plugins is None:
        plugins, notes = discover_stages()
    plugins = sorted(plugins, key=lambda p: (p.order, p.name))
    if not plugins:
        raise ConfigError(
            "no pipeline stage is installed (none registers a 'mammo.stages' entry point)",
            fix="pip install mammo-breastseg mammo-massseg mammo-massclass",
        )
    case = OneShotCase(image=image, source=source, work_size=tuple(work_size), notes=notes)
    installed = {p.name for p in plugins}
    for name, dist in KNOWN_STAGES.items():
        if name not in installed:
            case.notes.append(f"{name} is not installed (pip install {dist}); skipped")
    for plugin in plugins:
        folders = find_model_folders(models, plugin.name, plugin.selection_metric)
        if not folders:
            case.notes.append(
                f"no {plugin.name} model under {models / plugin.name}/<arch>/fold_<k>; skipped"
            )
            continue
        missing = [field for field in plugin.requires if getattr(case, field, None) is None]
        if missing:
            case.notes.append(
                f"{plugin.name} needs {', '.join(missing)}, which no earlier stage produced; "
                "skipped"
            )
            continue
        plugin.run(case, folders)
        case.stages_run.append(plugin.name)
    if "breastseg" not in case.stages_run and case.stages_run:
        case.notes.append("no breast segmentation: the mass stages saw the whole image")
    return case


# --------------------------------------------------------------------------- overlay


def render_overlay(case: OneShotCase, out: str | Path, *, max_side: int = 1024) -> Path:
    """Draw the breast outline, mass contours and labels on the native image (PNG, atomic).

    Breast outline green, masses red (malignant) or orange (benign / not classified), each
    labelled ``#k malignant 0.83``; the diagnosis is written in the top-left corner.
    """
    from PIL import Image, ImageDraw

    from mammo_common.store.atomic import atomic_path
    from mammo_common.viz import COLORS, contour, to_uint8

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputFileError("the overlay is a PNG", path=out, field="--out",
                             fix="give a path ending in .png")
    image = np.asarray(case.image)
    scale = min(1.0, max_side / max(image.shape))
    shape = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    gray = Image.fromarray(to_uint8(image)).resize(shape[::-1], Image.Resampling.BILINEAR)
    rgb = np.stack([np.asarray(gray)] * 3, axis=-1)

    def small(mask: NDArray) -> NDArray:
        m = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8))
        return np.asarray(m.resize(shape[::-1], Image.Resampling.NEAREST)) > 0

    width = max(1, round(max(shape) / 400))
    if case.breast_mask is not None:
        rgb[contour(small(case.breast_mask), width)] = COLORS["breast"]
    for mass in case.masses:
        color = COLORS["pred"] if mass.label == "malignant" else (255, 150, 0)
        rgb[contour(small(case.native_mask(mass)), width)] = color
    canvas = Image.fromarray(rgb)
    draw = ImageDraw.Draw(canvas)
    for mass in case.masses:
        y0, x0, y1, _ = case.native_bbox(mass.bbox)
        text = f"#{mass.index}"
        if mass.probability is not None:
            text += f" {mass.label} {mass.probability:.2f}"
        x = min(max(0, int(x0 * scale)), max(0, shape[1] - 8 * len(text)))
        above = int(y0 * scale) - 12
        y = above if above >= 0 else max(0, min(shape[0] - 12, int(y1 * scale) + 2))
        draw.rectangle((x, y, x + 6 * len(text) + 2, y + 11), fill=(0, 0, 0))
        draw.text((x + 1, y), text, fill=(255, 255, 255))
    diag = case.diagnosis
    head = diag["label"] + (f" (p={diag['probability']:.2f})" if diag["probability"] is not None
                            else "")
    draw.rectangle((0, 0, 6 * len(head) + 4, 12), fill=(0, 0, 0))
    draw.text((2, 0), head, fill=(255, 255, 255))
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    return out
