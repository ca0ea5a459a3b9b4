"""What happens to one mammogram: probability map -> breast mask -> blanked, cropped, resized.

Both ``predict`` and ``evaluate`` go through these functions, so the numbers ``evaluate``
reports are those of the masks ``predict`` uses.

Per case (see :func:`breast_mask` and :func:`crop_case`):

1. A segmenter gives a breast probability map at the image's native size (the U-Net of a
   model folder, or the threshold labeller).
2. The mask is ``prob >= threshold``, post-processed by :mod:`breastseg.postprocess`: parts
   thinner than ``cut_width`` cut off (film-edge strips, rulers, markers, bridges to labels),
   the breast's component kept (the largest one on the chest-wall edge, the side from the
   case's laterality or inferred from the mask), holes filled.
3. Pixels outside the mask are set to 0 (labels, scanner marks, film noise removed).
4. The crop box is the mask's bounding box grown by ``margin`` of its sides; image, mask and
   ground-truth mass mask are cropped to it and resized to the output size (image bilinear,
   masks nearest); the :class:`~mammo_common.schema.CaseTransform` records the mapping.

An empty mask (nothing found) keeps the whole, unblanked image and is reported.

**Safeguard against a network that loses the breast** (:func:`check_with_labeller`, setting
``labeller_fallback``): a network trained on one kind of mammogram can, on an unfamiliar one
(another film, another vendor, a fatty breast whose tissue is nearly as dark as the
background), draw only the bright part of the breast (the pectoral muscle, the dense core),
or take a grey film background for breast. Everything downstream then works on a fraction of
the breast, or on a crop mostly of background. After step 2 the network's mask is compared
with the threshold labeller's (:mod:`breastseg.labeller`); when it holds less than
``labeller_fallback`` of the labeller's breast and lies within it (the two agree on where the
breast is and the network stopped short), or is more than ``1 / labeller_fallback`` times the
labeller's breast and holds it (the network took in the background), and the labeller's mask
looks like a breast (it does not cover most of the image border or the whole image), the
labeller's mask is used instead and the case's record says so. Where the network is right
this changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from breastseg.labeller import LabellerConfig, label_breast
from breastseg.postprocess import (
    BORDER_WARNING,
    BreastMask,
    PostprocessConfig,
    border_share,
    postprocess_breast_mask,
)
from mammo_common.errors import ModelFolderError
from mammo_common.postprocess import binarize
from mammo_common.schema import CaseTransform
from mammo_common.transforms import apply_transform, crop_box_from_mask, make_transform

__all__ = [
    "CroppedCase",
    "Segmenter",
    "UNetSegmenter",
    "breast_mask",
    "check_with_labeller",
    "crop_case",
    "make_segmenter",
    "segment_breast",
    "segment_checked",
]


class Segmenter(Protocol):
    """Anything that maps a native mammogram to a breast probability map."""

    method: str
    model_ids: list[str]

    @property
    def params(self) -> dict[str, Any]:
        """Parameters recorded in the output's provenance."""
        ...

    def probabilities(self, image: NDArray) -> NDArray[np.float32]:
        """Breast probability map of the image's shape."""
        ...


class UNetSegmenter:
    """The trained network of a model folder (``breastseg train``).

    Args:
        model_dir: The model folder (``model.keras`` + ``model_card.json``).
        tta_flips: Average over flipped copies.
        batch_size: Images per forward pass.
        precision: Inference compute, ``float32`` or ``bfloat16``.
        fold_batchnorm: Fold BatchNorms into the convolutions before them.
    """

    method = "unet"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        tta_flips: bool = False,
        batch_size: int = 1,
        precision: str = "float32",
        fold_batchnorm: bool = True,
    ):
        from breastseg._keras import load_breast_model
        from mammo_common.keras.deployment.optimize import inference_model

        self.model_dir = Path(model_dir)
        model, self.card = load_breast_model(self.model_dir)
        self.model, self.optimization = inference_model(
            model, precision=precision, fold_batchnorm=fold_batchnorm  # type: ignore[arg-type]
        )
        self.tta_flips = tta_flips
        self.batch_size = batch_size
        shape = self.model.input_shape
        self.input_size = (int(shape[1]), int(shape[2]))
        self.channels = int(shape[3])
        self.model_ids = [self.card.model_id]

    @property
    def params(self) -> dict[str, Any]:
        card = self.card
        return {
            "method": self.method,
            "model_dir": str(self.model_dir),
            "input_size": list(self.input_size),
            "tta_flips": self.tta_flips,
            "precision": self.optimization.precision,
            "batchnorms_folded": len(self.optimization.folded),
            "model_id": card.model_id,
            "training_masks": card.training.get("mask_sources"),
        }

    def probabilities(self, image: NDArray) -> NDArray[np.float32]:
        from mammo_common.keras.deployment.inference import predict_probabilities

        return predict_probabilities(
            [self.model],
            np.asarray(image)[None],
            input_size=self.input_size,
            channels=self.channels,
            tta_flips=self.tta_flips,
            batch_size=self.batch_size,
        )[0]


def make_segmenter(
    method: str,
    model: Path | None,
    *,
    tta_flips: bool = False,
    batch_size: int = 1,
    labeller: Any = None,
    precision: str = "float32",
    fold_batchnorm: bool = True,
    postprocess: PostprocessConfig | None = None,
) -> Segmenter:
    """The segmenter of a ``--method``: ``unet`` (needs ``model``) or ``threshold``.

    ``postprocess`` is handed to the threshold labeller (its step 4); the caller applies it
    again to every segmenter's map with :func:`segment_breast`.
    """
    if method == "threshold":
        from breastseg.threshold import ThresholdSegmenter

        return ThresholdSegmenter(labeller, postprocess=postprocess)
    if model is None:
        raise ModelFolderError(
            "method 'unet' needs a model folder", field="model", fix="pass --model DIR"
        )
    return UNetSegmenter(
        model,
        tta_flips=tta_flips,
        batch_size=batch_size,
        precision=precision,
        fold_batchnorm=fold_batchnorm,
    )


def segment_breast(
    prob: NDArray,
    threshold: float = 0.5,
    *,
    postprocess: PostprocessConfig | None = None,
    laterality: str | None = None,
    holes: bool | None = None,
    warn: bool = True,
) -> BreastMask:
    """The stage's breast mask of a probability map, and what its post-processing did.

    Args:
        prob: Breast probability map (or a 0/1 mask) of the native image.
        threshold: Pixels with ``prob >= threshold`` are breast before post-processing.
        postprocess: Post-processing settings; defaults (everything on) when ``None``.
        laterality: The case's laterality (``L``, ``R``, ``unknown``), for the chest-wall side.
        holes: Overrides ``postprocess.fill_holes`` when given.
        warn: Warn (:class:`~breastseg.postprocess.BreastMaskWarning`) about an empty mask.

    Returns:
        The mask (uint8 0/1) with the chest-wall side used, pixels removed and filled, notes.
    """
    cfg = postprocess or PostprocessConfig()
    if holes is not None and holes != cfg.fill_holes:
        cfg = cfg.model_copy(update={"fill_holes": holes})
    return postprocess_breast_mask(
        binarize(prob, threshold), cfg, laterality=laterality, warn=warn
    )


#: The network's mask must lie this much inside the labeller's for the labeller to take over.
FALLBACK_WITHIN = 0.8
#: A labeller mask covering more than this share of the image is not trusted as a breast.
FALLBACK_MAX_IMAGE_SHARE = 0.97


def check_with_labeller(
    image: NDArray,
    segmented: BreastMask,
    *,
    min_share: float | None,
    labeller: LabellerConfig | None = None,
    postprocess: PostprocessConfig | None = None,
    laterality: str | None = None,
) -> tuple[BreastMask, bool]:
    """Replace a network's breast mask that lost most of the breast, or took in the
    background, by the threshold labeller's.

    Two failures, one rule each, both needing a labeller mask that looks like a breast (under
    :data:`~breastseg.postprocess.BORDER_WARNING` of the image border, under
    :data:`FALLBACK_MAX_IMAGE_SHARE` of the image):

    * **lost**: the network's mask holds less than ``min_share`` of the labeller's breast and
      lies within it (at least :data:`FALLBACK_WITHIN` of it), or is empty;
    * **overgrown**: the network's mask is more than ``1 / min_share`` times the labeller's
      breast and holds it (at least :data:`FALLBACK_WITHIN` of the labeller's mask inside):
      the film background, or everything exposed, taken for breast.

    Args:
        image: The native mammogram.
        segmented: The network's post-processed mask (:func:`segment_breast`).
        min_share: See above, in (0, 1); ``None`` turns the check off.
        labeller: Threshold labeller settings.
        postprocess: Post-processing settings (applied inside the labeller too).
        laterality: The case's laterality.

    Returns:
        The mask to use and whether it is the labeller's. A replaced mask carries a note that
        says how the network's mask compared with the labeller's.
    """
    if min_share is None:
        return segmented, False
    found = segmented.mask.astype(bool)
    exposed = label_breast(image, labeller, postprocess=postprocess, laterality=laterality) > 0
    n_exposed = int(exposed.sum())
    n_found = int(found.sum())
    if n_exposed == 0:
        return segmented, False
    overlap = int((found & exposed).sum())
    lost = n_found < min_share * n_exposed and overlap >= FALLBACK_WITHIN * n_found
    overgrown = n_found * min_share > n_exposed and overlap >= FALLBACK_WITHIN * n_exposed
    if not (lost or overgrown):
        return segmented, False  # they agree, or disagree on where the breast is
    background = border_share(exposed) >= BORDER_WARNING
    if background or n_exposed > FALLBACK_MAX_IMAGE_SHARE * exposed.size:
        return segmented, False  # the labeller took the background: not a breast to trust
    bound = f"under labeller_fallback {min_share:g}" if lost else f"over 1/{min_share:g}"
    note = (
        f"the network's breast mask held {n_found / n_exposed:.0%} of the breast the threshold "
        f"labeller finds ({bound}); the labeller's mask was used"
    )
    notes = [n for n in segmented.notes if not n.startswith("empty")] + [note]
    return replace(segmented, mask=exposed.astype(np.uint8), notes=notes), True


def segment_checked(
    image: NDArray,
    prob: NDArray,
    threshold: float,
    *,
    postprocess: PostprocessConfig | None,
    labeller: LabellerConfig | None,
    labeller_fallback: float | None,
    laterality: str | None = None,
) -> tuple[BreastMask, bool]:
    """The stage's breast mask of one image: :func:`segment_breast`, then the safeguard.

    ``predict``, ``evaluate`` and ``mammo run`` all call this, so the masks ``evaluate`` scores
    are those ``predict`` stores. ``labeller_fallback=None`` skips the safeguard (the
    threshold method, which is the labeller already).

    Returns:
        The mask and whether it is the labeller's (:func:`check_with_labeller`).
    """
    segmented = segment_breast(
        prob, threshold, postprocess=postprocess, laterality=laterality, warn=False
    )
    return check_with_labeller(
        image, segmented, min_share=labeller_fallback, labeller=labeller,
        postprocess=postprocess, laterality=laterality,
    )


def breast_mask(
    prob: NDArray,
    threshold: float = 0.5,
    *,
    holes: bool | None = None,
    postprocess: PostprocessConfig | None = None,
    laterality: str | None = None,
) -> NDArray[np.uint8]:
    """Binarise and post-process: the stage's breast mask (uint8 0/1).

    See :func:`segment_breast` (this returns its mask only) and :mod:`breastseg.postprocess`.
    """
    return segment_breast(
        prob, threshold, postprocess=postprocess, laterality=laterality, holes=holes
    ).mask


#: Where ``normalize_breast`` puts the breast's 0.5th and 99.5th percentiles (fractions of 65535).
BREAST_RANGE = (0.05, 0.95)


def normalize_breast(image: NDArray, mask: NDArray) -> NDArray[np.uint16]:
    """Stretch the breast's 0.5th-99.5th percentiles to ``BREAST_RANGE`` (uint16, clipped).

    The intensity scale of a mammogram depends on the film, the digitiser or the vendor's
    processing; the breast's own percentiles do not depend on the background, labels or film
    edges, so this puts every source on one scale without assuming a black background.
    """
    values = np.asarray(image)[np.asarray(mask) > 0]
    if values.size == 0:
        return np.asarray(image).astype(np.uint16, copy=False)
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    a, b = BREAST_RANGE
    scaled = (np.asarray(image, np.float32) - lo) / (hi - lo) * (b - a) + a
    return np.rint(np.clip(scaled, 0.0, 1.0) * 65535.0).astype(np.uint16)


@dataclass
class CroppedCase:
    """One case mapped into the ``breast`` store."""

    image: NDArray[np.uint16]
    breast_mask: NDArray[np.uint8]
    mass_mask: NDArray[np.uint8] | None
    transform: CaseTransform
    empty: bool


def crop_case(
    image: NDArray,
    mask: NDArray,
    mass_mask: NDArray | None,
    *,
    output_size: tuple[int, int],
    margin: float,
    normalize: str = "none",
) -> CroppedCase:
    """Blank the background, crop to the breast box with a margin and resize.

    With ``normalize="percentile"`` the breast's intensities are also stretched so that its
    0.5th..99.5th percentiles span ``BREAST_RANGE`` of the uint16 range (see
    :func:`normalize_breast`): the next stages then see the same intensity scale whatever the
    film, digitiser or vendor curve, and the background stays exactly 0.

    Args:
        image: Native image (uint16).
        mask: Native breast mask (0/1) of the same shape.
        mass_mask: Native ground-truth mass mask, or ``None``.
        output_size: Stored ``(rows, cols)``.
        margin: Margin fraction around the breast's bounding box.
        normalize: ``none`` (keep the values) or ``percentile`` (stretch the breast).

    Returns:
        The stored arrays and the case's transform; ``empty`` when no breast was found (then the
        whole image is kept, not blanked).
    """
    image = np.asarray(image)
    mask = np.asarray(mask).astype(np.uint8, copy=False)
    empty = not mask.any()
    if empty:
        blanked = image
        mask = np.ones_like(mask)
    else:
        if normalize == "percentile":
            image = normalize_breast(image, mask)
        blanked = np.where(mask > 0, image, 0).astype(image.dtype, copy=False)
    box = crop_box_from_mask(mask, margin)
    transform = make_transform(image.shape, box, output_size)
    stored = apply_transform(blanked, transform, order=1)
    stored_mask = apply_transform(mask, transform, order=0)
    stored_mass = None
    if mass_mask is not None:
        stored_mass = apply_transform(np.asarray(mass_mask, np.uint8), transform, order=0)
    return CroppedCase(
        image=stored.astype(np.uint16, copy=False),
        breast_mask=stored_mask,
        mass_mask=stored_mass,
        transform=transform,
        empty=empty,
    )
