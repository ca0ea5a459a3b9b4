"""``breastseg predict``: write the ``breast`` store the mass-segmentation stage reads.

Example:
    >>> from breastseg.config import PredictConfig
    >>> from breastseg.predict import predict
    >>> result = predict(PredictConfig(  # doctest: +SKIP
    ...     model="models/breastseg/unet5l/fold_1", data="mammograms.zarr", out="breast.zarr"))

Cases stream one at a time (read, segment, crop, write), so memory stays constant whatever the
number of cases; the store appears only when complete (atomic rename).

The breast mask of each case is post-processed (:mod:`breastseg.postprocess`, settings
``postprocess``) with the case's laterality; the settings are recorded in the store's producer
parameters (``params.postprocess``), and a case whose laterality the image contradicts, or
whose mask could not be trusted, gets a note in its record.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from breastseg import __version__
from breastseg.config import PredictConfig
from breastseg.segment import crop_case, make_segmenter, segment_checked
from mammo_common.cli_support import track
from mammo_common.errors import StoreError
from mammo_common.schema import Producer
from mammo_common.store import MammogramsStore, StackedStoreWriter, open_store
from mammo_common.store.atomic import check_output_path

__all__ = ["PredictResult", "predict"]

PACKAGE = "mammo-breastseg"


class PredictResult(BaseModel):
    """What ``predict`` wrote.

    Attributes:
        out: The ``breast`` store.
        n_cases: Cases written.
        method: ``unet`` or ``threshold``.
        image_size: Stored (rows, cols).
        with_mass_masks: Whether ground-truth mass masks were carried.
        empty_cases: Cases where no breast was found (kept whole, not blanked).
        chest_wall: How many cases had the chest wall on the ``left``, on the ``right``, or
            ``unknown``.
        artefact_pixels: Pixels of the thresholded masks that post-processing removed (labels,
            markers, rulers, film edges, thin bridges), all cases together.
        labeller_fallback_cases: Cases whose network mask lost part of the breast or took in
            the background and were given the threshold labeller's mask
            (``labeller_fallback``).
        seconds: Wall time.
    """

    model_config = ConfigDict(extra="forbid")

    out: Path
    n_cases: int
    method: str
    image_size: tuple[int, int]
    with_mass_masks: bool
    empty_cases: list[str]
    chest_wall: dict[str, int] = {}
    artefact_pixels: int = 0
    labeller_fallback_cases: list[str] = []
    seconds: float


def _has_array(store: MammogramsStore, case_id: str, name: str) -> bool:
    return name in store.group[f"cases/{case_id}"]


def predict(config: PredictConfig) -> PredictResult:
    """Segment, blank, crop and resize every case of a ``mammograms`` store.

    Args:
        config: Validated settings.

    Returns:
        A summary of the written store.

    Raises:
        StoreError: If the input is not a valid ``mammograms`` store.
        ModelFolderError: If the model folder is missing or incompatible.
        MammoError: If the output exists (without ``overwrite``) or would overwrite the input.
    """
    start = time.perf_counter()
    inputs = (config.data,) + ((config.model,) if config.model else ())
    check_output_path(Path(config.out), overwrite=config.overwrite, inputs=inputs)
    store = open_store(config.data, "mammograms")
    assert isinstance(store, MammogramsStore)
    if len(store) == 0:
        raise StoreError("holds no case", path=config.data, fix="re-run mammo ingest")
    segmenter = make_segmenter(
        config.method,
        config.model,
        tta_flips=config.tta,
        batch_size=config.batch_size,
        labeller=config.labeller,
        precision=config.precision,
        fold_batchnorm=config.fold_batchnorm,
        postprocess=config.postprocess,
    )
    case_ids = store.case_ids
    fallback_share = config.labeller_fallback if config.method == "unet" else None
    with_mass = any(_has_array(store, cid, "mass_mask") for cid in case_ids)
    params = {
        **segmenter.params,
        "output_size": list(config.output_size),
        "margin": config.margin,
        "normalize": config.normalize,
        "threshold": config.threshold,
        "postprocess": config.postprocess.model_dump(),
        "labeller_fallback": fallback_share,
    }
    producer = Producer(
        package=PACKAGE,
        version=__version__,
        command=f"breastseg predict --method {config.method}",
        model_ids=segmenter.model_ids,
        params=params,
    )
    empty: list[str] = []
    fallback: list[str] = []
    sides = {"left": 0, "right": 0, "unknown": 0}
    removed = 0
    with StackedStoreWriter(
        config.out,
        kind="breast",
        n_cases=len(case_ids),
        image_size=config.output_size,
        producer=producer,
        parents=[store.as_parent()],
        with_mass_masks=with_mass,
        meta_fields={"method": config.method},
        overwrite=config.overwrite,
        inputs=inputs,
    ) as writer:
        for index, case_id in enumerate(track(case_ids, "breastseg predict")):
            case = store.load(case_id)
            prob = segmenter.probabilities(case.image)
            segmented, replaced = segment_checked(
                case.image, prob, config.threshold, postprocess=config.postprocess,
                labeller=config.labeller, labeller_fallback=fallback_share,
                laterality=case.record.laterality,
            )
            if replaced:
                fallback.append(case_id)
            sides[segmented.chest_wall or "unknown"] += 1
            removed += segmented.removed_pixels
            cropped = crop_case(
                case.image,
                segmented.mask,
                case.mass_mask,
                output_size=config.output_size,
                margin=config.margin,
                normalize=config.normalize,
            )
            record = case.record
            notes = list(record.notes)
            notes.extend(
                f"breastseg: {note}" for note in segmented.notes if not note.startswith("empty")
            )
            if cropped.empty:
                empty.append(case_id)
                notes.append(f"breastseg ({config.method}): no breast found; whole image kept")
            if with_mass and case.mass_mask is None:
                notes.append("no ground-truth mass mask in the source; mass_masks is all zero")
            if notes != record.notes:
                record = record.model_copy(update={"notes": notes})
            arrays = {"images": cropped.image, "breast_masks": cropped.breast_mask}
            if with_mass:
                arrays["mass_masks"] = (
                    cropped.mass_mask
                    if cropped.mass_mask is not None
                    else cropped.breast_mask * 0
                )
            writer.write_case(index, record, cropped.transform, **arrays)
    return PredictResult(
        out=config.out,
        n_cases=len(case_ids),
        method=config.method,
        image_size=config.output_size,
        with_mass_masks=with_mass,
        empty_cases=empty,
        chest_wall=sides,
        artefact_pixels=removed,
        labeller_fallback_cases=fallback,
        seconds=round(time.perf_counter() - start, 3),
    )
