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

Models are loaded once: :func:`load_cascade` discovers the plugins and chooses their model
folders once and returns a :class:`Cascade` whose :meth:`Cascade.run` does one image. Every
``run`` goes through the plugins with the cascade's own
:class:`~mammo_common.model_cache.ModelCache` active, so the model folders a plugin loads
(``load_model_folder``) and the inference copies it builds (``inference_model``) are made on
the first image and reused for every later one; a plugin needs nothing special for that.
:func:`run_one` is a one-image cascade; :func:`mammo_common.oneshot_batch.run_batch` streams
files and folders through one cascade (``mammo run PATH... --out-dir DIR``).

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
    "Cascade",
    "CascadeStage",
    "MassFinding",
    "OneShotCase",
    "StagePlugin",
    "discover_stages",
    "find_model_folders",
    "input_laterality",
    "load_cascade",
    "read_input_image",
    "render_overlay",
    "run_file",
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
        laterality: ``L`` or ``R`` when known (a DICOM header or the file name, in a batch);
            breastseg's post-processing puts the chest wall on that side.
        work_size: Size of the breast crop the mass stages see (``breastseg predict
            --output-size``; 640x640 in the reference).
        work_image: What the mass stages see (the breast crop, or the native image).
        transform: Native -> work mapping (None: the work image is the native image).
        breast_mask: Native breast mask (uint8 0/1), if breastseg ran.
        work_breast_mask: The breast mask on the work image (uint8 0/1), as ``breastseg
            predict`` stores it beside the crop, if breastseg ran and found a breast.
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
    laterality: str | None = None
    work_size: tuple[int, int] = (640, 640)
    work_image: NDArray | None = None
    transform: CaseTransform | None = None
    breast_mask: NDArray | None = None
    work_breast_mask: NDArray | None = None
    mass_probs: NDArray | None = None
    mass_pred: NDArray | None = None
    min_object_pixels: int = 30
    masses: list[MassFinding] = dataclasses.field(default_factory=list)
    threshold: float | None = None
    stages_run: list[str] = dataclasses.field(default_factory=list)
    model_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    _native_masks: dict[int, NDArray] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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

    def work_mask(self, mass: MassFinding) -> NDArray[np.uint8]:
        """One mass's own mask on the work image (uint8 0/1)."""
        work = np.zeros(np.shape(self.work_image), np.uint8)
        work[mass.component.slices] = np.asarray(mass.component.mask, dtype=np.uint8)
        return work

    def native_mask(self, mass: MassFinding) -> NDArray[np.uint8]:
        """One mass's mask on the native image (nearest, as :meth:`to_native` maps it).

        Only the mass's window is mapped (:func:`~mammo_common.transforms.
        invert_transform_window`, equal to the whole-image inverse there and 0 elsewhere); the
        result is kept for the next call (overlay, summary, SEG), so treat it as read-only.
        """
        cached = self._native_masks.get(id(mass))
        if cached is not None:
            return cached
        work = self.work_mask(mass)
        if self.transform is None:
            native = work
        else:
            from mammo_common.transforms import invert_transform_window

            window = self.native_bbox(mass.bbox)
            y0, x0, y1, x1 = window
            native = np.zeros(tuple(self.transform.original_shape), np.uint8)
            native[y0:y1, x0:x1] = invert_transform_window(work, self.transform, window)
        self._native_masks[id(mass)] = native
        return native

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


@dataclasses.dataclass(frozen=True)
class CascadeStage:
    """One stage of a :class:`Cascade`: its plugin and the model folders chosen for it."""

    plugin: StagePlugin
    folders: tuple[Path, ...]

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.plugin.name


class Cascade:
    """The installed stages with their model folders, ready to run image after image.

    Made by :func:`load_cascade`. Each :meth:`run` does one mammogram with every stage that has
    a model; the models are loaded on the first image and reused (see the module docstring).
    Use it as a context manager, or call :meth:`close`, to drop the models.

    Attributes:
        models: The models folder.
        stages: The stages that will run, by ``order``, with their model folders.
        notes: What is skipped for every image (stages not installed, without a model, that
            failed to load); each case's ``notes`` start with these.
        work_size: Size of the breast crop the mass stages see.
        cache: The models loaded so far (``cache.builds`` counts the loads).
    """

    def __init__(
        self,
        models: Path,
        stages: Sequence[CascadeStage],
        *,
        notes: Sequence[str] = (),
        work_size: tuple[int, int] = (640, 640),
    ) -> None:
        from mammo_common.model_cache import ModelCache

        self.models = Path(models)
        self.stages = list(stages)
        self.notes = list(notes)
        self.work_size = (int(work_size[0]), int(work_size[1]))
        self.cache = ModelCache()

    def __enter__(self) -> Cascade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stage_names(self) -> list[str]:
        """Names of the stages that have a model, in running order."""
        return [stage.name for stage in self.stages]

    def run(
        self, image: NDArray, *, source: str = "", laterality: str | None = None
    ) -> OneShotCase:
        """Run every stage on one mammogram.

        Args:
            image: The native 2-D image (uint16; uint8/float accepted as the stages accept
                them).
            source: Where the image came from (for the summary and error messages).
            laterality: ``L`` or ``R`` when known (anything else is treated as unknown).

        Returns:
            The filled-in :class:`OneShotCase` (``notes`` says what was skipped).

        Raises:
            InputFileError: The image is not 2-D.
        """
        image = np.asarray(image)
        if image.ndim != 2:
            raise InputFileError(f"the image has shape {image.shape}, not 2-D",
                                 path=source or None, fix="pass a single-frame gray mammogram")
        case = OneShotCase(image=image, source=source, work_size=self.work_size,
                           notes=list(self.notes),
                           laterality=laterality if laterality in ("L", "R") else None)
        with self.cache.active():
            for stage in self.stages:
                plugin = stage.plugin
                missing = [f for f in plugin.requires if getattr(case, f, None) is None]
                if missing:
                    case.notes.append(
                        f"{plugin.name} needs {', '.join(missing)}, which no earlier stage "
                        "produced; skipped"
                    )
                    continue
                plugin.run(case, list(stage.folders))
                case.stages_run.append(plugin.name)
        if "breastseg" not in case.stages_run and case.stages_run:
            case.notes.append("no breast segmentation: the mass stages saw the whole image")
        return case

    def close(self) -> None:
        """Drop the loaded models."""
        self.cache.clear()


def load_cascade(
    models: str | Path,
    *,
    plugins: Sequence[StagePlugin] | None = None,
    work_size: tuple[int, int] = (640, 640),
) -> Cascade:
    """Discover the stages and choose their model folders once, for any number of images.

    Args:
        models: The models folder (``<models>/<stage>/<arch>/fold_<k>/``).
        plugins: Stage plugins (default: :func:`discover_stages`).
        work_size: Size of the breast crop the mass stages see.

    Returns:
        The :class:`Cascade` (its ``notes`` say which stages are skipped and why).

    Raises:
        InputFileError: ``models`` is not a folder.
        ConfigError: No stage is installed.
    """
    models = Path(models)
    if not models.is_dir():
        raise InputFileError(
            "is not a folder", path=models, field="--models",
            fix="pass the folder holding <stage>/<arch>/fold_<k>/ model folders (e.g. models/)",
        )
    notes: list[str] = []
    if plugins is None:
        plugins, notes = discover_stages()
    plugins = sorted(plugins, key=lambda p: (p.order, p.name))
    if not plugins:
        raise ConfigError(
            "no pipeline stage is installed (none registers a 'mammo.stages' entry point)",
            fix="pip install mammo-breastseg mammo-massseg mammo-massclass",
        )
    installed = {p.name for p in plugins}
    for name, dist in KNOWN_STAGES.items():
        if name not in installed:
            notes.append(f"{name} is not installed (pip install {dist}); skipped")
    stages: list[CascadeStage] = []
    for plugin in plugins:
        folders = find_model_folders(models, plugin.name, plugin.selection_metric)
        if not folders:
            notes.append(
                f"no {plugin.name} model under {models / plugin.name}/<arch>/fold_<k>; skipped"
            )
            continue
        stages.append(CascadeStage(plugin=plugin, folders=tuple(folders)))
    return Cascade(models, stages, notes=notes, work_size=work_size)


def input_laterality(path: str | Path) -> str | None:
    """``L``/``R`` of a mammogram file as ``mammo ingest --format images`` finds it.

    DICOM ImageLaterality, then Laterality, then the file name (``LEFT``, ``R_CC``, ``LMLO``,
    ...: :func:`mammo_common.ingest.images.name_hints`); None when none says.
    """
    from pathlib import PurePosixPath

    from mammo_common.ingest.images import name_hints

    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom", ".dic", ""):
        from mammo_common.ingest.dicom import read_header

        try:
            ds = read_header(path)
            for name in ("ImageLaterality", "Laterality"):
                value = str(ds.get(name) or "").strip().upper()
                side = {"L": "L", "R": "R", "LEFT": "L", "RIGHT": "R"}.get(value)
                if side is not None:
                    return side
        except Exception:  # an unreadable header: the pixels' reader says why
            pass
    for field, value, _ in name_hints(PurePosixPath(path.name)):
        if field == "laterality":
            return value
    return None


def run_one(
    image: NDArray,
    models: str | Path,
    *,
    plugins: Sequence[StagePlugin] | None = None,
    source: str = "",
    work_size: tuple[int, int] = (640, 640),
    laterality: str | None = None,
) -> OneShotCase:
    """Run every installed stage that has a model on one mammogram (a one-image cascade).

    For several images, :func:`load_cascade` once and call :meth:`Cascade.run` for each.

    Args:
        image: The native 2-D image (uint16; uint8/float accepted as the stages accept them).
        models: The models folder (``<models>/<stage>/<arch>/fold_<k>/``).
        plugins: Stage plugins (default: :func:`discover_stages`).
        source: Where the image came from (for the summary).
        work_size: Size of the breast crop the mass stages see.
        laterality: ``L`` or ``R`` when known.

    Returns:
        The filled-in :class:`OneShotCase` (``notes`` says what was skipped).

    Raises:
        InputFileError: ``models`` is not a folder or the image is not 2-D.
        ConfigError: No stage is installed.
    """
    with load_cascade(models, plugins=plugins, work_size=work_size) as cascade:
        return cascade.run(image, source=source, laterality=laterality)


def run_file(
    path: str | Path,
    models: str | Path,
    *,
    out: str | Path | None = None,
    json_out: str | Path | None = None,
    work_size: tuple[int, int] = (640, 640),
    plugins: Sequence[StagePlugin] | None = None,
) -> OneShotCase:
    """``mammo run FILE``: read one mammogram, run the cascade, write the overlay and JSON.

    The laterality for breastseg comes from :func:`input_laterality`, as a batch finds it.

    Args:
        path: The mammogram (:func:`read_input_image`).
        models: The models folder.
        out: Overlay PNG to write (:func:`render_overlay`), if any.
        json_out: JSON summary to write (:meth:`OneShotCase.summary`), if any.
        work_size: Size of the breast crop the mass stages see.
        plugins: Stage plugins (default: :func:`discover_stages`).

    Returns:
        The filled-in :class:`OneShotCase`.

    Raises:
        InputFileError: Unreadable image, no models folder, or an overlay path not ending in
            ``.png`` (checked before anything runs).
        ConfigError: No stage is installed.
    """
    from mammo_common.store.atomic import write_json_atomic

    if out is not None and Path(out).suffix.lower() != ".png":
        raise InputFileError("the overlay is a PNG", path=out, field="--out",
                             fix="give a path ending in .png")
    pixels = read_input_image(path)
    case = run_one(pixels, models, plugins=plugins, source=str(path), work_size=work_size,
                   laterality=input_laterality(path))
    if out is not None:
        render_overlay(case, out)
    if json_out is not None:
        write_json_atomic(json_out, case.summary())
    return case


# --------------------------------------------------------------------------- overlay


def render_overlay(case: OneShotCase, out: str | Path, *, max_side: int = 1024) -> Path:
    """Draw the breast outline, mass contours and labels on the native image (PNG, atomic).

    One matplotlib panel (:func:`mammo_common.viz.draw_panels`): the file name and the
    diagnosis in the title, the breast outline yellow, masses magenta (malignant) or orange
    (benign / not classified), each labelled ``#k malignant 0.83``, a legend below. The
    image's longer side is drawn at ``max_side`` pixels at most (400 at least).
    """
    from PIL import Image

    from mammo_common.plots import save_png
    from mammo_common.viz import COLORS, Panel, draw_panels

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputFileError("the overlay is a PNG", path=out, field="--out",
                             fix="give a path ending in .png")
    image = np.asarray(case.image)
    side = max(400, min(max_side, max(image.shape)))
    # masks at twice the drawn size at most: the contours stay sub-pixel, the work small
    scale = min(1.0, 2 * side / max(image.shape))
    shape = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))

    def small(mask: NDArray) -> NDArray:
        m = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8))
        return np.asarray(m.resize(shape[::-1], Image.Resampling.NEAREST)) > 0

    masks: dict[str, NDArray | None] = {"breast": None, "malignant": None, "pred": None}
    if case.breast_mask is not None:
        masks["breast"] = small(case.breast_mask)
    notes: list[tuple[float, float, str, str]] = []
    for mass in case.masses:
        key = "malignant" if mass.label == "malignant" else "pred"
        mask = small(case.native_mask(mass))
        masks[key] = mask if masks[key] is None else masks[key] | mask
        y0, x0, y1, _ = case.native_bbox(mass.bbox)
        text = f"#{mass.index}"
        if mass.probability is not None:
            text += f" {mass.label} {mass.probability:.2f}"
        top = y0 > 0.06 * image.shape[0]  # room above the mass for the label
        notes.append((float(x0), float(y0 - 2 if top else y1 + 2), text,
                      "bottom" if top else "top"))
    diag = case.diagnosis
    head = diag["label"].replace("_", " ") + (
        f" (p={diag['probability']:.2f})" if diag["probability"] is not None else "")
    name = Path(case.source).name if case.source else ""
    panel = Panel(
        image=_display_gray(image), windowed=True,
        masks={k: v for k, v in masks.items() if v is not None},
        title=f"{name}\n{head}" if name else head,
        colors={"pred": COLORS["pred"]},
        labels={"pred": "mass (benign / not classified)", "malignant": "mass (malignant)"},
        notes=notes,
    )
    return save_png(draw_panels([panel], columns=1, panel_px=side, font_size=10.0), out)


def _display_gray(image: NDArray, sample_pixels: int = 1_000_000) -> NDArray[np.uint8]:
    """:func:`mammo_common.viz.to_uint8`'s 1st-99.9th percentile window, made fast for large
    images: the percentiles of an evenly strided sample of about ``sample_pixels``, applied
    through a lookup table to integer images of up to 16 bits."""
    from mammo_common.viz import to_uint8

    if image.size <= sample_pixels or image.dtype not in (np.uint8, np.uint16):
        return to_uint8(image)
    step = math.ceil(math.sqrt(image.size / sample_pixels))
    lo, hi = np.percentile(image[::step, ::step].astype(np.float32), [1.0, 99.9])
    if hi <= lo:
        hi = lo + 1.0
    levels = np.arange(np.iinfo(image.dtype).max + 1, dtype=np.float32)
    lut = (np.clip((levels - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    return lut[image]
