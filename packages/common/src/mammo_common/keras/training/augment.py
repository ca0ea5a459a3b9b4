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

Intensity augmentation (:class:`IntensityConfig`, the ``intensity`` field of
:class:`AugmentConfig`) varies what changes between sources of mammograms (digitiser, film,
vendor processing): the tone curve, contrast and brightness, the background level, noise and
sharpness. It acts on the image only, never on the mask, after the geometric transform, and it
expects floats in [0, 1] (what the datasets feed it); the result is clipped to [0, 1]. Per
sample, in this order:

1. tone curve: gamma ``x -> x**g`` with ``g`` log-uniform in ``gamma``; then, with probability
   ``curve_p``, a smooth monotone curve fixing 0 and 1: a normalised sigmoid (an S-curve, the
   film-like characteristic curve) or its inverse (mid-tones flattened, ends stretched, as some
   digital processing), slope ``curve_slope``, centre ``curve_center``;
2. contrast and brightness: ``x -> (x - m) * c + m + b`` with ``m`` the mean of the foreground
   (pixels above ``background_threshold``), ``c`` in ``contrast``, ``b`` in ``brightness``;
3. background: with probability ``background_p``, pixels at or below ``background_threshold``
   (the blanked or film background) become a level in ``background_level`` plus Gaussian noise
   (std up to ``background_noise``), so a model cannot rely on a black background;
4. sharpness: with probability ``blur_p`` a Gaussian blur (``blur_sigma`` pixels), else with
   probability ``sharpen_p`` an unsharp mask ``x + a * (x - blur(x))``;
5. noise: with probability ``noise_p``, Gaussian noise of std
   ``sqrt(s**2 + q**2 * x)``: ``s`` in ``noise_std`` (additive) and ``q`` in
   ``signal_noise_std`` (signal-dependent, Poisson-like; the std at ``x = 1``);
6. clip to [0, 1]; with ``preserve_zero``, pixels that were exactly 0 (the zero background of
   breast crops, and a ``"constant"`` fill) are 0 again, unless the background was lifted.

The defaults are the identity, which draws no random numbers, so a geometric preset with the
default ``intensity`` gives the same bits for a seed as before intensity existed.
:meth:`IntensityConfig.sources` is a moderate recipe. Every parameter is drawn from the same
per-sample Generator (16 uniforms and one noise seed, in a fixed order, whatever is enabled), so
a seed gives the same bits in any thread.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

__all__ = [
    "AffineTransform",
    "AugmentConfig",
    "IntensityConfig",
    "IntensityTransform",
    "PairedAugmenter",
    "augment_image",
    "augment_intensity",
    "augment_pair",
    "sample_intensity",
    "sample_transform",
    "with_intensity",
]

FillMode = Literal["wrap", "constant", "reflect", "nearest"]

_SCIPY_MODE = {
    "wrap": "grid-wrap",
    "constant": "constant",
    "reflect": "reflect",
    "nearest": "nearest",
}


_Probability = Annotated[float, Field(ge=0.0, le=1.0)]
_Positive = Annotated[float, Field(gt=0.0, le=10.0)]
_NonNegative = Annotated[float, Field(ge=0.0)]
_Unit = Annotated[float, Field(ge=0.0, le=1.0)]
_Signed = Annotated[float, Field(ge=-1.0, le=1.0)]
_Slope = Annotated[float, Field(ge=1.0, le=30.0)]
_Center = Annotated[float, Field(gt=0.0, lt=1.0)]
_Sigma = Annotated[float, Field(ge=0.0, le=50.0)]

_N_INTENSITY_DRAWS = 16


class IntensityConfig(BaseModel):
    """Random intensity changes between mammogram sources (image only; identity by default).

    Ranges are ``(low, high)`` pairs (a YAML list parses); a value is drawn uniformly in each
    (log-uniformly for ``gamma``), and equal ends fix it. The module docstring gives the order
    of the steps. Images must be floats in [0, 1]; the result is clipped to [0, 1].

    Attributes:
        gamma: Exponent range of ``x -> x**g`` (log-uniform); ``(1, 1)`` is off.
        curve_p: Probability of a random smooth monotone curve after the gamma.
        curve_slope: Slope range of the curve's sigmoid (higher: stronger curve).
        curve_center: Range of the sigmoid's centre (the mid-tone it pivots about).
        contrast: Factor range ``c`` of ``(x - m) * c + m + b`` (``m``: foreground mean).
        brightness: Offset range ``b`` of the same map.
        background_p: Probability of lifting the background (off by default).
        background_level: Range of the lifted background level.
        background_noise: Largest std of the Gaussian noise on the lifted background (the std
            is drawn in ``[0, background_noise]``).
        background_threshold: Pixels at or below it are background: left out of the
            foreground mean and lifted by ``background_p``.
        noise_p: Probability of noise.
        noise_std: Range of the additive Gaussian noise std.
        signal_noise_std: Range of the signal-dependent noise std at ``x = 1`` (the std is
            proportional to ``sqrt(x)``, as Poisson noise).
        blur_p: Probability of a Gaussian blur.
        blur_sigma: Blur std range in pixels.
        sharpen_p: Probability of an unsharp mask (``blur_p + sharpen_p <= 1``; never both).
        sharpen_sigma: Range of the unsharp mask's blur std in pixels.
        sharpen_amount: Range of the unsharp mask's amount ``a`` in ``x + a * (x - blur(x))``.
        preserve_zero: Pixels exactly 0 before the change stay 0 unless the background was
            lifted (the zero background of breast crops stays black).

    A string ``"sources"`` or ``"none"`` in place of the mapping selects that preset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: tuple[_Positive, _Positive] = (1.0, 1.0)
    curve_p: _Probability = 0.0
    curve_slope: tuple[_Slope, _Slope] = (3.0, 8.0)
    curve_center: tuple[_Center, _Center] = (0.35, 0.65)
    contrast: tuple[_Positive, _Positive] = (1.0, 1.0)
    brightness: tuple[_Signed, _Signed] = (0.0, 0.0)
    background_p: _Probability = 0.0
    background_level: tuple[_Unit, _Unit] = (0.02, 0.15)
    background_noise: _Unit = 0.01
    background_threshold: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.005
    noise_p: _Probability = 1.0
    noise_std: tuple[_Unit, _Unit] = (0.0, 0.0)
    signal_noise_std: tuple[_Unit, _Unit] = (0.0, 0.0)
    blur_p: _Probability = 0.0
    blur_sigma: tuple[_Sigma, _Sigma] = (0.5, 1.5)
    sharpen_p: _Probability = 0.0
    sharpen_sigma: tuple[_Sigma, _Sigma] = (0.5, 2.0)
    sharpen_amount: tuple[_NonNegative, _NonNegative] = (0.2, 0.8)
    preserve_zero: bool = True

    @model_validator(mode="before")
    @classmethod
    def _preset_by_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            presets = {"none": cls.none, "sources": cls.sources}
            if data not in presets:
                raise ValueError(
                    f"unknown intensity preset {data!r}; use {' or '.join(presets)} or a mapping"
                )
            return presets[data]().model_dump()
        return data

    @model_validator(mode="after")
    def _ranges(self) -> IntensityConfig:
        for name, value in self:
            if isinstance(value, tuple) and value[0] > value[1]:
                raise ValueError(f"{name}: the range {list(value)} must be [low, high]")
        if self.blur_p + self.sharpen_p > 1.0 + 1e-9:
            raise ValueError("blur_p + sharpen_p must be at most 1 (never both on one image)")
        return self

    @classmethod
    def none(cls) -> IntensityConfig:
        """No intensity change."""
        return cls()

    @classmethod
    def sources(cls, background_p: float = 0.0) -> IntensityConfig:
        """Moderate changes as between mammogram sources (digitisers, films, vendors).

        * gamma log-uniform in 0.67-1.5 (every image);
        * a sigmoid or inverse-sigmoid curve (slope 3-8, centre 0.35-0.65) on 30 %;
        * contrast 0.75-1.33 about the foreground mean, brightness -0.08..0.08;
        * noise on 70 %: additive std 0-0.02 and signal-dependent std 0-0.03 (at x = 1);
        * a Gaussian blur of 0.3-1.2 px on 25 %, an unsharp mask (0.5-2 px, amount 0.2-0.8)
          on 20 %;
        * the zero background kept; lifting it (to 0.02-0.15, noise std up to 0.01) only with
          ``background_p`` > 0.

        Args:
            background_p: Probability of lifting the background (0: never).
        """
        return cls(
            gamma=(0.67, 1.5),
            curve_p=0.3,
            curve_slope=(3.0, 8.0),
            curve_center=(0.35, 0.65),
            contrast=(0.75, 1.33),
            brightness=(-0.08, 0.08),
            background_p=background_p,
            background_level=(0.02, 0.15),
            background_noise=0.01,
            noise_p=0.7,
            noise_std=(0.0, 0.02),
            signal_noise_std=(0.0, 0.03),
            blur_p=0.25,
            blur_sigma=(0.3, 1.2),
            sharpen_p=0.2,
            sharpen_sigma=(0.5, 2.0),
            sharpen_amount=(0.2, 0.8),
        )

    @property
    def is_identity(self) -> bool:
        """True when no draw can change an image (then nothing is drawn at all)."""
        return (
            self.gamma == (1.0, 1.0)
            and self.curve_p == 0
            and self.contrast == (1.0, 1.0)
            and self.brightness == (0.0, 0.0)
            and self.background_p == 0
            and (self.noise_p == 0 or self.noise_std == self.signal_noise_std == (0.0, 0.0))
            and (self.blur_p == 0 or self.blur_sigma == (0.0, 0.0))
            and (
                self.sharpen_p == 0
                or self.sharpen_sigma == (0.0, 0.0)
                or self.sharpen_amount == (0.0, 0.0)
            )
        )


@dataclasses.dataclass(frozen=True)
class IntensityTransform:
    """One drawn intensity change (see the module docstring for the steps).

    Attributes:
        gamma: Exponent of ``x -> x**gamma``.
        curve: ``"none"``, ``"sigmoid"`` (S-curve) or ``"inverse"`` (its inverse).
        curve_slope: Slope of the sigmoid.
        curve_center: Centre of the sigmoid.
        contrast: Factor about the foreground mean.
        brightness: Offset.
        background_level: Level of the lifted background; None: not lifted.
        background_noise: Std of the noise on the lifted background.
        background_threshold: Pixels at or below it are background.
        noise_std: Additive Gaussian noise std.
        signal_noise_std: Signal-dependent noise std at ``x = 1``.
        blur_sigma: Gaussian blur std in pixels (0: none).
        sharpen_sigma: Unsharp-mask blur std in pixels (0: none).
        sharpen_amount: Unsharp-mask amount.
        preserve_zero: Keep exactly-zero pixels at 0 (unless the background is lifted).
        seed: Seed of the noise fields.
    """

    gamma: float = 1.0
    curve: Literal["none", "sigmoid", "inverse"] = "none"
    curve_slope: float = 1.0
    curve_center: float = 0.5
    contrast: float = 1.0
    brightness: float = 0.0
    background_level: float | None = None
    background_noise: float = 0.0
    background_threshold: float = 0.005
    noise_std: float = 0.0
    signal_noise_std: float = 0.0
    blur_sigma: float = 0.0
    sharpen_sigma: float = 0.0
    sharpen_amount: float = 0.0
    preserve_zero: bool = True
    seed: int = 0

    def apply(self, image: NDArray) -> NDArray[np.float32]:
        """Applies the change to a float image ``(H, W[, C])`` in [0, 1].

        Args:
            image: The image (values outside [0, 1] are clipped first).

        Returns:
            A new float32 array of the same shape, in [0, 1].
        """
        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (H, W, C), got shape {arr.shape}")
        x = np.clip(arr.astype(np.float32), 0.0, 1.0)
        zero = (x <= 0.0) if self.preserve_zero and self.background_level is None else None
        if zero is not None and not zero.any():
            zero = None
        background = x <= self.background_threshold
        noise = np.random.default_rng(self.seed)
        out = self._tone(x)
        if self.contrast != 1.0 or self.brightness != 0.0:
            foreground = ~background
            m = float(np.mean(out, where=foreground)) if foreground.any() else float(out.mean())
            out = (out - np.float32(m)) * np.float32(self.contrast) + np.float32(
                m + self.brightness
            )
            if zero is not None:
                out[zero] = 0.0
        if self.background_level is not None and background.any():
            level = np.full(out.shape, self.background_level, np.float32)
            if self.background_noise > 0:
                level += np.float32(self.background_noise) * noise.standard_normal(
                    out.shape, dtype=np.float32
                )
            out = np.where(background, level, out)
        sigma = self.blur_sigma or self.sharpen_sigma
        if sigma > 0 and (self.blur_sigma > 0 or self.sharpen_amount > 0):
            spatial = (sigma, sigma) + (0.0,) * (out.ndim - 2)
            blurred = ndimage.gaussian_filter(out, spatial, mode="reflect")
            if self.blur_sigma > 0:
                out = blurred
            else:
                out = out + np.float32(self.sharpen_amount) * (out - blurred)
        if self.noise_std > 0 or self.signal_noise_std > 0:
            field = noise.standard_normal(out.shape, dtype=np.float32)
            if self.signal_noise_std > 0:
                std = np.sqrt(
                    np.float32(self.noise_std**2)
                    + np.float32(self.signal_noise_std**2) * np.clip(out, 0.0, 1.0)
                )
                out = out + std * field
            else:
                out = out + np.float32(self.noise_std) * field
        out = np.clip(out, 0.0, 1.0, out=out)  # every array here is this call's own
        if zero is not None:
            out[zero] = 0.0
        return out.astype(np.float32, copy=False)

    def _tone(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        out = x
        if self.gamma != 1.0:
            out = np.power(out, np.float32(self.gamma))
        if self.curve == "none":
            return out
        k, c = float(self.curve_slope), float(self.curve_center)
        lo = 1.0 / (1.0 + math.exp(k * c))  # sigmoid(k (0 - c))
        hi_tail = 1.0 / (1.0 + math.exp(k * (1.0 - c)))  # 1 - sigmoid(k (1 - c))
        span = 1.0 - lo - hi_tail
        if self.curve == "sigmoid":
            s = 1.0 / (1.0 + np.exp(np.float32(-k) * (out - np.float32(c))))
            return np.clip((s - np.float32(lo)) / np.float32(span), 0.0, 1.0)
        # inverse: c + logit(p) / k with p = lo + y * span, written with both tails exact
        y = np.clip(out, 0.0, 1.0)
        p = np.float32(lo) + y * np.float32(span)
        q = np.float32(hi_tail) + (np.float32(1.0) - y) * np.float32(span)
        inv = np.float32(c) + (np.log(p) - np.log(q)) / np.float32(k)
        return np.clip(inv, 0.0, 1.0)


def sample_intensity(config: IntensityConfig, rng: np.random.Generator) -> IntensityTransform:
    """Draws one intensity change.

    Always draws 16 uniforms and one noise seed, in a fixed order, whatever is enabled, so a
    Generator in a given state always gives the same change. Call it only when
    ``config.is_identity`` is false if no numbers may be drawn for the identity.
    """
    u = rng.random(_N_INTENSITY_DRAWS)
    seed = int(rng.integers(0, 2**63 - 1))

    def between(r: tuple[float, float], v: float) -> float:
        return float(r[0] + (r[1] - r[0]) * v)

    g0, g1 = config.gamma
    gamma = float(math.exp(math.log(g0) + (math.log(g1) - math.log(g0)) * u[0]))
    curve: Literal["none", "sigmoid", "inverse"] = "none"
    if u[1] < config.curve_p:
        curve = "sigmoid" if u[4] < 0.5 else "inverse"
    lifted = u[7] < config.background_p
    noisy = u[10] < config.noise_p
    blur = u[13] < config.blur_p
    sharpen = not blur and u[13] < config.blur_p + config.sharpen_p
    return IntensityTransform(
        gamma=gamma,
        curve=curve,
        curve_slope=between(config.curve_slope, u[2]),
        curve_center=between(config.curve_center, u[3]),
        contrast=between(config.contrast, u[5]),
        brightness=between(config.brightness, u[6]),
        background_level=between(config.background_level, u[8]) if lifted else None,
        background_noise=config.background_noise * float(u[9]) if lifted else 0.0,
        background_threshold=config.background_threshold,
        noise_std=between(config.noise_std, u[11]) if noisy else 0.0,
        signal_noise_std=between(config.signal_noise_std, u[12]) if noisy else 0.0,
        blur_sigma=between(config.blur_sigma, u[14]) if blur else 0.0,
        sharpen_sigma=between(config.sharpen_sigma, u[14]) if sharpen else 0.0,
        sharpen_amount=between(config.sharpen_amount, u[15]) if sharpen else 0.0,
        preserve_zero=config.preserve_zero,
        seed=seed,
    )


def augment_intensity(
    image: NDArray, config: IntensityConfig, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Applies one random intensity change to a float image in [0, 1]; returns float32.

    The identity config returns the image as float32 unchanged and draws nothing.

    Raises:
        ValueError: For an integer image when the change is not the identity (scale it to
            [0, 1] first, e.g. with ``mammo_common.keras.training.data.normalize_image``).
    """
    arr = np.asarray(image)
    if config.is_identity:
        return arr.astype(np.float32, copy=False)
    _require_float(arr)
    return sample_intensity(config, rng).apply(arr)


def _require_float(image: NDArray) -> None:
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"intensity augmentation needs a float image in [0, 1], got dtype {image.dtype}; "
            "scale it first (normalize_image)"
        )


class AugmentConfig(BaseModel):
    """Random affine augmentation settings (``ImageDataGenerator`` semantics).

    The defaults are the identity (no augmentation); use the presets for the recipes. The
    geometric presets leave ``intensity`` at the identity; add intensity changes with
    ``preset.model_copy(update={"intensity": IntensityConfig.sources()})`` or
    :func:`with_intensity`.
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
    intensity: IntensityConfig = Field(
        default_factory=IntensityConfig,
        description="intensity changes of the image (never the mask), after the geometry",
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
        """True when no random *geometric* transform can change an image.

        The intensity settings are not considered (see ``intensity.is_identity`` and
        :attr:`is_noop`).
        """
        return not (
            self.rotation_range
            or self.width_shift
            or self.height_shift
            or self.shear_range
            or self.zoom_range
            or self.horizontal_flip
            or self.vertical_flip
        )

    @property
    def is_noop(self) -> bool:
        """True when neither the geometry nor the intensity can change an image."""
        return self.is_identity and self.intensity.is_identity


def with_intensity(
    preset: AugmentConfig | None, intensity: IntensityConfig | None
) -> AugmentConfig | None:
    """A geometric preset (None: no geometry) with intensity settings; None when a no-op.

    What the stages' training uses: ``with_intensity(AugmentConfig.mass() if augment else
    None, config.intensity_augment)``. The intensity applies whether or not the geometric
    augmentation is on.
    """
    base = AugmentConfig.none() if preset is None else preset
    if intensity is not None:
        base = base.model_copy(update={"intensity": intensity})
    return None if base.is_noop else base


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


def _check_intensity_input(image: NDArray, config: AugmentConfig) -> None:
    if not config.intensity.is_identity:
        _require_float(image)


def augment_image(
    image: NDArray, config: AugmentConfig, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Applies one random transform, then the intensity change, to ``(H, W[, C])``.

    The geometric transform is drawn first (only when the geometry is not the identity), then
    the intensity change (only when it is not the identity). Returns float32.
    """
    image = np.asarray(image)
    _check_intensity_input(image, config)
    if config.is_identity:
        out = image.astype(np.float32, copy=False)
    else:
        transform = sample_transform(config, rng, image.shape)
        out = transform.apply(
            image, order=_image_order(config), fill_mode=config.fill_mode, cval=config.cval
        ).astype(np.float32, copy=False)
    if not config.intensity.is_identity:
        out = sample_intensity(config.intensity, rng).apply(out)
    return out


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
        it is filled with 0 under ``"constant"`` (whatever ``cval``). The intensity change
        (``config.intensity``), drawn after the geometric transform, alters the image only.

    Raises:
        ValueError: When the sizes differ, or for an integer image with an intensity change.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    _check_intensity_input(image, config)
    if config.is_identity:
        out_image = image.astype(np.float32, copy=False)
        if not config.intensity.is_identity:
            out_image = sample_intensity(config.intensity, rng).apply(out_image)
        return out_image, mask
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
    if not config.intensity.is_identity:
        out_image = sample_intensity(config.intensity, rng).apply(out_image)
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
