"""The stand-in breast segmenter without a network (``breastseg predict --method threshold``).

It runs :func:`breastseg.labeller.label_breast` (Otsu plus morphology) on each mammogram and
feeds the same post-processing, cropping and store writing as the U-Net, so it writes the same
``breast`` store, with ``method="threshold"`` in the store's metadata. It shows that a stage can
be swapped for anything that writes a valid store, and it is a quick baseline on clean images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from breastseg.labeller import LABELLER_DESCRIPTION, LabellerConfig, label_breast
from breastseg.postprocess import PostprocessConfig

__all__ = ["ThresholdSegmenter"]


class ThresholdSegmenter:
    """Segment breasts by thresholding (see :mod:`breastseg.labeller`).

    Args:
        config: Labeller settings; defaults when ``None``.
        postprocess: The labeller's breast-mask post-processing (its step 4); defaults when
            ``None``. Without the case's laterality the chest-wall side is inferred here;
            ``predict`` post-processes the map again with it.
    """

    method = "threshold"

    def __init__(
        self, config: LabellerConfig | None = None, *, postprocess: PostprocessConfig | None = None
    ) -> None:
        self.config = config or LabellerConfig()
        self.postprocess = postprocess or PostprocessConfig()
        self.model_ids: list[str] = []
        self.description = LABELLER_DESCRIPTION

    @property
    def params(self) -> dict[str, Any]:
        """Parameters recorded in the output store's producer."""
        return {"method": self.method, "labeller": self.config.model_dump()}

    def probabilities(self, image: NDArray) -> NDArray[np.float32]:
        """A 0/1 "probability" map of the native image (the labeller's mask)."""
        return label_breast(image, self.config, postprocess=self.postprocess).astype(np.float32)
