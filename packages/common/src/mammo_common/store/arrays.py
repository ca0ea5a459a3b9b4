"""Which arrays each stacked store kind holds, with their dtypes."""

from __future__ import annotations

import numpy as np

#: Arrays of a ``breast`` store: name -> (dtype, required).
BREAST_ARRAYS: dict[str, tuple[np.dtype, bool]] = {
    "images": (np.dtype("uint16"), True),
    "breast_masks": (np.dtype("uint8"), True),
    "mass_masks": (np.dtype("uint8"), False),
}

#: Arrays of a ``masses`` store: the breast arrays plus the predictions.
MASSES_ARRAYS: dict[str, tuple[np.dtype, bool]] = {
    **BREAST_ARRAYS,
    "mass_probs": (np.dtype("float16"), True),
    "mass_pred": (np.dtype("uint8"), True),
}

#: Arrays of a case group in a ``mammograms`` store.
CASE_ARRAYS: dict[str, tuple[np.dtype, bool]] = {
    "image": (np.dtype("uint16"), True),
    "breast_mask": (np.dtype("uint8"), False),
    "mass_mask": (np.dtype("uint8"), False),
    "mass_labels": (np.dtype("uint8"), False),
}

#: Binary arrays whose values must be 0 or 1.
BINARY_ARRAYS = frozenset({"breast_masks", "mass_masks", "mass_pred", "breast_mask", "mass_mask"})

STACKED_ARRAYS = {"breast": BREAST_ARRAYS, "masses": MASSES_ARRAYS}
