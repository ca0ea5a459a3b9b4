"""Paired random affine augmentation (image + mask) in NumPy/SciPy, with a seeded Generator.

The reference augmented with two Keras ``ImageDataGenerator`` objects sharing a seed, so the
image and its mask got the same random transform. This module does the same explicitly: one
random :class:`AffineTransform` is drawn per sample and applied to both arrays, the image
with linear interpolation, the mask with nearest neighbour (or linear then ``> 0.5``). It is
pure NumPy/SciPy (``scipy.ndimage.affine_transform``), so it runs in any backend's
``keras.utils.PyDataset`` and in worker threads.

Parameter semantics follow ``ImageDataGenerator`` so the reference's settings mean the same:

* ``rotation_range``: degrees, ``theta ~ U(-r, r)``.
* ``width_shift`` / ``height_shift``: fractions of the width / height, ``~ U(-f, f)``.
* ``shear_range``: **degrees** (as Keras: the reference's ``0.2`` is a 0.2-degree shear).
* ``zoom_range``: ``z`` gives independent row / column factors ``~ U(1 - z, 1 + z)``; a factor
  above 1 zooms out (the output samples a larger input region), as Keras.
* ``horizontal_flip`` / ``vertical_flip``: each with probability 0.5, after the affine.
* ``fill_mode``: ``"wrap"`` (periodic; SciPy's ``"grid-wrap"``, which is what "wrap" means;
  SciPy's own ``"wrap"`` mode, used by Keras, has an off-by-one seam), ``"constant"``
  (``cval``), ``"reflect"``, ``"nearest"``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

__all__ = [
    "AffineTransform",
    "AugmentConfig",
    "PairedAugmenter",
    "augment_image",
    "augment_pair",
    "sample_transform",
]

FillMode = Literal["wrap", "constant", "reflect", "nearest"]

_SCIPY_MODE = {
    "wrap": "grid-wrap",
    "constant": "constant",
    "reflect": "reflect",
    "nearest": "nearest",
}


class AugmentConfig(BaseModel):
    """Random affine augmentation settings (``ImageDataGenerator`` semantics).

    The defaults are the identity (no augmentation); use the presets for the recipes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rotation_range: float = Field(0.0, ge=0, le=180, description="degrees, U(-r, r)")
    width_shift: float = Field(0.0, ge=0, lt=1, description="fraction of the width")
    height_shift: float = Field(0.0, ge=0, lt=1, description="fraction of the height")
    shear_range: float = Field(0.0, ge=0, lt=90, description="degrees (Keras semantics)")
    zoom_range: float = Field(0.0, ge=0, lt=1, description="factors U(1 - z, 1 + z)")
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: FillMode = "wrap"
    cval: float = Field(0.0, description="fill value of the image for fill_mode='constant'")
    image_interpolation: Literal["linear", "nearest"] = "linear"
    mask_interpolation: Literal["nearest", "linear"] = Field(
        "nearest", description="nearest, or linear interpolation then > 0.5"
    )

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation."""
        return cls()

    @classmethod
    def breast(cls) -> AugmentConfig:
        """Breast segmentation recipe: rotation 45, shifts/shear/zoom 0.1, flips, wrap."""
        return cls(
            rotation_range=45,
            width_shift=0.1,
            height_shift=0.1,
            shear_range=0.1,
            zoom_range=0.1,
            horizontal_flip=True,
            vertical_flip=True,
            fill_mode="wrap",
        )

    @classmethod
    def mass(cls) -> AugmentConfig:
        """Mass segmentation recipe: rotation 90, shifts/shear/zoom 0.2, flips, wrap."""
        return cls(
            rotation_range=90,
            width_shift=0.2,
            height_shift=0.2,
            shear_range=0.2,
            zoom_range=0.2,
            horizontal_flip=True,
            vertical_flip=True,
            fill_mode="wrap",
        )

    @classmethod
    def classifier(cls) -> AugmentConfig:
        """Classifier recipe: flips, rotation 90, shifts 0.2, zoom 0.2, constant fill."""
        return cls(
            rotation_range=90,
            width_shift=0.2,
            height_shift=0.2,
            zoom_range=0.2,
            horizontal_flip=True,
            vertical_flip=True,
            fill_mode="constant",
        )

    @property
    def is_identity(self) -> bool:
        """True when no random transform can change an image."""
        return not (
            self.rotation_range
            or self.width_shift
            or self.height_shift
            or self.shear_range
            or self.zoom_range
            or self.horizontal_flip
            or self.vertical_flip
        )


@dataclasses.dataclass(frozen=True)
class AffineTransform:
    """One drawn transform (Keras ``apply_affine_transform`` parameters, then flips).

    Attributes:
        theta: Rotation in degrees.
        tx: Shift along rows in pixels.
        ty: Shift along columns in pixels.
        shear: Shear angle in degrees.
        zx: Zoom factor along rows.
        zy: Zoom factor along columns.
        flip_horizontal: Mirror the columns after the affine.
        flip_vertical: Mirror the rows after the affine.
    """

    theta: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    shear: float = 0.0
    zx: float = 1.0
    zy: float = 1.0
    flip_horizontal: bool = False
    flip_vertical: bool = False

    @property
    def has_affine(self) -> bool:
        """Whether the transform resamples (anything besides flips)."""
        return bool(self.theta or self.tx or self.ty or self.shear or self.zx != 1 or self.zy != 1)

    def matrix(self, height: int, width: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The output-to-input ``(2x2 matrix, offset)`` for ``scipy.ndimage.affine_transform``.

        Composed as Keras: rotation @ shift @ shear @ zoom, about the image centre.
        """
        t = math.radians(self.theta)
        s = math.radians(self.shear)
        rotation = np.array(
            [[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]]
        )
        shift = np.array([[1, 0, self.tx], [0, 1, self.ty], [0, 0, 1]])
        shear = np.array([[1, -math.sin(s), 0], [0, math.cos(s), 0], [0, 0, 1]])
        zoom = np.array([[self.zx, 0, 0], [0, self.zy, 0], [0, 0, 1]])
        m = rotation @ shift @ shear @ zoom
        cx, cy = (height - 1) / 2.0, (width - 1) / 2.0
        to_center = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
        from_center = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        m = to_center @ m @ from_center
        return m[:2, :2], m[:2, 2]

    def apply(
        self,
        x: NDArray,
        *,
        order: int,
        fill_mode: FillMode = "wrap",
        cval: float = 0.0,
    ) -> NDArray:
        """Applies the transform to ``(H, W)`` or ``(H, W, C)``; dtype is kept for order 0.

        Args:
            x: The array (rows, columns[, channels]).
            order: Spline order (0 nearest, 1 linear).
            fill_mode: How points outside the input are filled.
            cval: Fill value for ``"constant"``.

        Returns:
            The transformed array, same shape (float32 for ``order > 0``).
        """
        arr = np.asarray(x)
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (H, W, C), got shape {arr.shape}")
        out = arr
        if self.has_affine:
            matrix, offset = self.matrix(arr.shape[0], arr.shape[1])
            src = arr if order == 0 else arr.astype(np.float32, copy=False)
            mode = _SCIPY_MODE[fill_mode]
            if arr.ndim == 2:
                out = ndimage.affine_transform(
                    src, matrix, offset, order=order, mode=mode, cval=cval
                )
            else:
                out = np.stack(
                    [
                        ndimage.affine_transform(
                            src[..., c], matrix, offset, order=order, mode=mode, cval=cval
                        )
                        for c in range(arr.shape[2])
                    ],
                    axis=-1,
                )
        elif order > 0:
            out = arr.astype(np.float32, copy=False)
        if self.flip_horizontal:
            out = out[:, ::-1]
        if self.flip_vertical:
            out = out[::-1]
        return np.ascontiguousarray(out)


def sample_transform(
    config: AugmentConfig, rng: np.random.Generator, shape: tuple[int, ...]
) -> AffineTransform:
    """Draws one random transform for an image of ``shape`` (rows, cols, ...).

    The draws are made in a fixed order (rotation, shifts, shear, zoom, flips) whether or not
    a parameter is enabled, so a Generator in a given state always gives the same transform.
    """
    rows, cols = int(shape[0]), int(shape[1])
    u = rng.uniform(-1.0, 1.0, size=5)
    zoom = rng.uniform(1.0 - config.zoom_range, 1.0 + config.zoom_range, size=2)
    flips = rng.random(2) < 0.5
    return AffineTransform(
        theta=float(u[0] * config.rotation_range),
        tx=float(u[1] * config.height_shift * rows),
        ty=float(u[2] * config.width_shift * cols),
        shear=float(u[3] * config.shear_range),
        zx=float(zoom[0]) if config.zoom_range else 1.0,
        zy=float(zoom[1]) if config.zoom_range else 1.0,
        flip_horizontal=bool(flips[0] and config.horizontal_flip),
        flip_vertical=bool(flips[1] and config.vertical_flip),
    )


def _image_order(config: AugmentConfig) -> int:
    return 1 if config.image_interpolation == "linear" else 0


def augment_image(
    image: NDArray, config: AugmentConfig, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Applies one random transform to an image ``(H, W[, C])``; returns float32."""
    if config.is_identity:
        return np.asarray(image, dtype=np.float32)
    transform = sample_transform(config, rng, np.shape(image))
    out = transform.apply(
        image, order=_image_order(config), fill_mode=config.fill_mode, cval=config.cval
    )
    return out.astype(np.float32, copy=False)


def augment_pair(
    image: NDArray, mask: NDArray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray]:
    """Applies the SAME random transform to an image and its mask.

    Args:
        image: ``(H, W[, C])`` image (any numeric dtype; returned as float32).
        mask: ``(H, W[, 1])`` binary mask; returned with its dtype, values 0/1.
        config: Augmentation settings.
        rng: Seeded Generator; one transform is drawn from it.

    Returns:
        ``(image, mask)`` transformed identically. The mask uses nearest neighbour, or
        linear interpolation then ``> 0.5`` when ``config.mask_interpolation == "linear"``;
        it is filled with 0 under ``"constant"`` (whatever ``cval``).
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    if config.is_identity:
        return image.astype(np.float32, copy=False), mask
    transform = sample_transform(config, rng, image.shape)
    out_image = transform.apply(
        image, order=_image_order(config), fill_mode=config.fill_mode, cval=config.cval
    ).astype(np.float32, copy=False)
    if config.mask_interpolation == "nearest":
        out_mask = transform.apply(mask, order=0, fill_mode=config.fill_mode, cval=0.0)
    else:
        lin = transform.apply(
            mask.astype(np.float32), order=1, fill_mode=config.fill_mode, cval=0.0
        )
        out_mask = (lin > 0.5).astype(mask.dtype)
    return out_image, out_mask


class PairedAugmenter:
    """A seeded callable: ``augmenter(image, mask)`` -> identically transformed pair.

    Args:
        config: Augmentation settings.
        seed: Seed (or a Generator) of the random transforms.
    """

    def __init__(self, config: AugmentConfig, seed: int | np.random.Generator | None = 0):
        self.config = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def __call__(
        self, image: NDArray, mask: NDArray | None = None
    ) -> tuple[NDArray[np.float32], NDArray | None]:
        """Augments ``image`` (and ``mask`` with the same transform, if given)."""
        if mask is None:
            return augment_image(image, self.config, self.rng), None
        return augment_pair(image, mask, self.config, self.rng)
