"""Intensity augmentation: identity draws nothing, image-only, zero background, seeded, ranges."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mammo_common.keras.training.augment import (
    AugmentConfig,
    IntensityConfig,
    IntensityTransform,
    augment_image,
    augment_intensity,
    augment_pair,
    sample_intensity,
    sample_transform,
    with_intensity,
)


def breast_crop(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured half-disc 'breast' on an exactly-zero background, and a 'mass' mask in it."""
    yy, xx = np.mgrid[:size, :size]
    breast = (yy - size / 2) ** 2 + xx**2 < (0.8 * size) ** 2
    rng = np.random.default_rng(seed)
    texture = 0.35 + 0.25 * np.sin(yy / 3.0) * np.cos(xx / 5.0) + 0.1 * rng.random((size, size))
    mass = (yy - size / 2) ** 2 + (xx - size / 4) ** 2 < (size / 8) ** 2
    image = np.where(breast, texture + 0.2 * mass, 0.0).astype(np.float32)
    return image, mass.astype(np.uint8)


def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


ONE_EACH = {
    "gamma": IntensityConfig(gamma=(1.5, 1.7)),
    "curve": IntensityConfig(curve_p=1.0),
    "contrast": IntensityConfig(contrast=(1.3, 1.5)),
    "brightness": IntensityConfig(brightness=(0.05, 0.1)),
    "noise": IntensityConfig(noise_std=(0.02, 0.03)),
    "signal_noise": IntensityConfig(signal_noise_std=(0.02, 0.03)),
    "blur": IntensityConfig(blur_p=1.0, blur_sigma=(1.0, 2.0)),
    "sharpen": IntensityConfig(sharpen_p=1.0, sharpen_amount=(0.5, 1.0)),
    "background": IntensityConfig(background_p=1.0),
}


def test_identity_is_bit_identical_and_draws_nothing():
    image, _ = breast_crop()
    identities = [
        IntensityConfig(),
        IntensityConfig.none(),
        IntensityConfig(noise_p=1.0, noise_std=(0.0, 0.0), blur_sigma=(0.0, 0.0)),
        IntensityConfig(blur_p=1.0, blur_sigma=(0.0, 0.0), sharpen_p=0.0),
        IntensityConfig(sharpen_p=1.0, sharpen_amount=(0.0, 0.0)),
    ]
    for config in identities:
        assert config.is_identity
        rng = np.random.default_rng(3)
        before = rng_state(rng)
        out = augment_intensity(image, config, rng)
        assert rng_state(rng) == before
        np.testing.assert_array_equal(out, image)
    assert AugmentConfig().intensity.is_identity and AugmentConfig().is_noop
    for name, config in ONE_EACH.items():
        assert not config.is_identity, name
    assert not IntensityConfig.sources().is_identity


def test_geometric_presets_keep_their_bits_and_draws():
    """A preset with the identity intensity consumes exactly the geometric draws."""
    image, mask = breast_crop()
    for preset in (AugmentConfig.breast(), AugmentConfig.mass(), AugmentConfig.classifier()):
        assert preset.intensity.is_identity and not preset.is_identity and not preset.is_noop
        rng, ref = np.random.default_rng(11), np.random.default_rng(11)
        out_image, out_mask = augment_pair(image, mask, preset, rng)
        transform = sample_transform(preset, ref, image.shape)
        assert rng_state(rng) == rng_state(ref)
        np.testing.assert_array_equal(
            out_image, transform.apply(image, order=1, fill_mode=preset.fill_mode)
        )
        np.testing.assert_array_equal(
            out_mask, transform.apply(mask, order=0, fill_mode=preset.fill_mode)
        )


@pytest.mark.parametrize("name", list(ONE_EACH))
def test_each_change_alters_the_image_and_never_the_mask(name):
    image, mask = breast_crop()
    intensity = ONE_EACH[name]
    alone = AugmentConfig(intensity=intensity)
    out_image, out_mask = augment_pair(image, mask, alone, np.random.default_rng(0))
    assert out_mask is mask  # no geometry: the mask is passed through untouched
    assert out_image.dtype == np.float32 and out_image.shape == image.shape
    assert not np.array_equal(out_image, image)
    # with geometry, the mask is exactly the geometry-only mask of the same seed
    geo = AugmentConfig.mass()
    both = geo.model_copy(update={"intensity": intensity})
    img_geo, mask_geo = augment_pair(image, mask, geo, np.random.default_rng(5))
    img_both, mask_both = augment_pair(image, mask, both, np.random.default_rng(5))
    np.testing.assert_array_equal(mask_both, mask_geo)
    assert not np.array_equal(img_both, img_geo)


def test_gamma_curve_contrast_brightness_semantics():
    x = np.linspace(0.0, 1.0, 257, dtype=np.float32)[None, :]
    np.testing.assert_allclose(IntensityTransform(gamma=2.0).apply(x), x**2, atol=1e-6)
    for curve in ("sigmoid", "inverse"):
        for slope, center in [(1.0, 0.5), (8.0, 0.35), (30.0, 0.9), (30.0, 0.05)]:
            y = IntensityTransform(curve=curve, curve_slope=slope, curve_center=center).apply(x)
            assert np.all(np.diff(y[0]) >= 0), (curve, slope, center)  # monotone
            assert y[0, 0] == pytest.approx(0.0, abs=1e-5)
            assert y[0, -1] == pytest.approx(1.0, abs=1e-5)
            assert np.all(np.isfinite(y))
    s = IntensityTransform(curve="sigmoid", curve_slope=8.0, curve_center=0.5).apply(x)
    back = IntensityTransform(curve="inverse", curve_slope=8.0, curve_center=0.5).apply(s)
    np.testing.assert_allclose(back, x, atol=2e-3)
    assert s[0, 64] < x[0, 64] and s[0, 192] > x[0, 192]  # S-curve: more mid-tone contrast

    image, _ = breast_crop()
    fg = image > 0
    c = IntensityTransform(contrast=1.2).apply(image)
    assert c[fg].mean() == pytest.approx(image[fg].mean(), abs=1e-3)  # pivots about the mean
    assert c[fg].std() == pytest.approx(1.2 * image[fg].std(), rel=0.02)
    b = IntensityTransform(brightness=0.05).apply(image)
    np.testing.assert_allclose(b[fg], image[fg] + 0.05, atol=1e-6)


def test_noise_blur_sharpen_semantics():
    flat = np.full((128, 128), 0.5, np.float32)
    noisy = IntensityTransform(noise_std=0.02, seed=1).apply(flat)
    assert (noisy - flat).std() == pytest.approx(0.02, rel=0.05)
    ramp = np.tile(np.linspace(0.04, 0.96, 128, dtype=np.float32), (128, 1))
    shot = IntensityTransform(signal_noise_std=0.04, seed=2).apply(ramp) - ramp
    dark, bright = shot[:, :32].std(), shot[:, -32:].std()
    assert bright > 2.0 * dark  # std ~ sqrt(x)
    assert bright == pytest.approx(0.04 * np.sqrt(ramp[:, -32:].mean()), rel=0.1)

    image, _ = breast_crop()
    inner = (slice(16, 48), slice(4, 40))  # inside the breast, away from its edge

    def roughness(a):
        return np.abs(np.diff(a[inner], axis=1)).mean()

    blurred = IntensityTransform(blur_sigma=1.5).apply(image)
    sharpened = IntensityTransform(sharpen_sigma=1.0, sharpen_amount=1.0).apply(image)
    assert roughness(blurred) < 0.7 * roughness(image)
    assert roughness(sharpened) > 1.3 * roughness(image)


@pytest.mark.parametrize("name", [n for n in ONE_EACH if n != "background"])
def test_zero_background_stays_zero_unless_lifted(name):
    image, mask = breast_crop()
    zero = image == 0
    config = AugmentConfig(intensity=ONE_EACH[name])
    for seed in range(3):
        out, _ = augment_pair(image, mask, config, np.random.default_rng(seed))
        assert np.all(out[zero] == 0.0)
    free = ONE_EACH[name].model_copy(update={"preserve_zero": False})
    outs = [augment_intensity(image, free, np.random.default_rng(s)) for s in range(3)]
    if name in {"noise", "brightness"}:  # these lift zeros when zeros are not protected
        assert any(np.any(o[zero] > 0) for o in outs)


def test_background_lifting():
    image, _ = breast_crop()
    zero = image == 0
    config = IntensityConfig(background_p=1.0, background_level=(0.1, 0.2), background_noise=0.0)
    levels = []
    for seed in range(20):
        out = augment_intensity(image, config, np.random.default_rng(seed))
        level = out[zero]
        assert np.ptp(level) < 1e-6  # no noise asked for: one flat level
        assert 0.1 <= level[0] <= 0.2
        np.testing.assert_array_equal(out[~zero], image[~zero])  # foreground untouched
        levels.append(level[0])
    assert np.ptp(levels) > 0.05  # the level varies
    noisy = augment_intensity(
        image, config.model_copy(update={"background_noise": 0.02}), np.random.default_rng(0)
    )
    assert noisy[zero].std() > 0.001
    # off by default, also in the sources preset; sometimes with background_p
    assert IntensityConfig().background_p == 0 and IntensityConfig.sources().background_p == 0
    some = IntensityConfig.sources(background_p=0.5)
    lifted = [
        bool(np.any(augment_intensity(image, some, np.random.default_rng(s))[zero] > 0))
        for s in range(40)
    ]
    assert 5 < sum(lifted) < 35


def test_output_stays_in_unit_range():
    image, _ = breast_crop()
    image[0, -1] = 1.0  # a saturated marker
    wild = IntensityConfig(
        gamma=(0.3, 3.0),
        curve_p=1.0,
        curve_slope=(1.0, 30.0),
        contrast=(0.5, 3.0),
        brightness=(-0.5, 0.5),
        background_p=0.5,
        background_level=(0.0, 1.0),
        background_noise=0.5,
        noise_std=(0.0, 0.2),
        signal_noise_std=(0.0, 0.2),
        blur_p=0.3,
        sharpen_p=0.7,
        sharpen_amount=(1.0, 5.0),
    )
    config = AugmentConfig.classifier().model_copy(update={"intensity": wild})
    for seed in range(30):
        out = augment_image(image[..., None], config, np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == (64, 64, 1)
        assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0


def test_same_seed_same_bits_and_seeds_differ():
    image, mask = breast_crop()
    config = AugmentConfig.mass().model_copy(
        update={"intensity": IntensityConfig.sources(background_p=0.5)}
    )
    a = augment_pair(image, mask, config, np.random.default_rng(7))
    b = augment_pair(image, mask, config, np.random.default_rng(7))
    c = augment_pair(image, mask, config, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    t1 = sample_intensity(IntensityConfig.sources(), np.random.default_rng(1))
    t2 = sample_intensity(IntensityConfig.sources(), np.random.default_rng(1))
    assert t1 == t2
    # enabling one change does not move the draws of the others
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    base = sample_intensity(IntensityConfig(gamma=(0.5, 2.0)), rng_a)
    more = sample_intensity(IntensityConfig(gamma=(0.5, 2.0), blur_p=1.0), rng_b)
    assert base.gamma == more.gamma and base.seed == more.seed
    assert rng_state(rng_a) == rng_state(rng_b)


def test_sources_preset_spreads_means_and_contrasts():
    image, _ = breast_crop(96)
    fg = image > 0
    means, stds, gammas = [], [], []
    rng = np.random.default_rng(0)
    for _ in range(100):
        t = sample_intensity(IntensityConfig.sources(), rng)
        out = t.apply(image)
        means.append(out[fg].mean())
        stds.append(out[fg].std())
        gammas.append(t.gamma)
        assert np.all(out[~fg] == 0.0)
    means, stds = np.array(means), np.array(stds)
    ref_mean, ref_std = image[fg].mean(), image[fg].std()
    assert means.std() > 0.03 and np.ptp(means) > 0.15
    assert means.min() < ref_mean - 0.05 and means.max() > ref_mean + 0.05
    assert stds.min() < 0.85 * ref_std and stds.max() > 1.15 * ref_std
    assert 0.67 <= min(gammas) < 0.8 and 1.3 < max(gammas) <= 1.5


def test_integer_images_are_refused_when_intensity_changes():
    image = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    with pytest.raises(ValueError, match="float image"):
        augment_intensity(image, IntensityConfig.sources(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="float image"):
        augment_image(
            image, AugmentConfig(intensity=IntensityConfig.sources()), np.random.default_rng(0)
        )
    # the identity still takes any dtype, as before
    out = augment_image(image, AugmentConfig(), np.random.default_rng(0))
    assert np.array_equal(out, image)


def test_config_parsing_and_validation():
    config = IntensityConfig.model_validate(
        {"gamma": [0.6, 1.7], "contrast": [0.8, 1.25], "noise_p": 0.5, "blur_p": 0.2}
    )
    assert config.gamma == (0.6, 1.7) and isinstance(config.gamma, tuple)
    assert IntensityConfig.model_validate("sources") == IntensityConfig.sources()
    assert IntensityConfig.model_validate("none").is_identity
    # round trip through a JSON dump (the model card)
    dumped = (
        AugmentConfig.mass()
        .model_copy(update={"intensity": IntensityConfig.sources()})
        .model_dump(mode="json")
    )
    assert dumped["intensity"]["gamma"] == [0.67, 1.5]
    assert AugmentConfig.model_validate(dumped).intensity == IntensityConfig.sources()
    bad = [
        {"gama": [0.6, 1.7]},  # unknown key
        {"gamma": [1.7, 0.6]},  # reversed range
        {"gamma": [0.0, 1.0]},  # gamma must be positive
        {"gamma": [1.0]},  # not a pair
        {"noise_p": 1.5},
        {"blur_p": 0.6, "sharpen_p": 0.6},
        {"curve_center": [0.0, 0.5]},
    ]
    for values in bad:
        with pytest.raises(ValidationError):
            IntensityConfig.model_validate(values)
    with pytest.raises(ValidationError, match="preset"):
        IntensityConfig.model_validate("film")
    with pytest.raises(ValidationError):
        IntensityConfig().gamma = (0.5, 2.0)  # frozen


def test_with_intensity():
    assert with_intensity(None, IntensityConfig()) is None
    assert with_intensity(None, None) is None
    assert with_intensity(AugmentConfig.mass(), IntensityConfig()) == AugmentConfig.mass()
    alone = with_intensity(None, IntensityConfig.sources())
    assert alone is not None and alone.is_identity and not alone.is_noop
    both = with_intensity(AugmentConfig.breast(), IntensityConfig.sources())
    assert both.rotation_range == 45 and both.intensity == IntensityConfig.sources()


@pytest.mark.keras  # runs in the common_keras session, deselected in the core one
def test_datasets_apply_intensity_without_geometry():
    from mammo_common.keras.training.data import ClassificationDataset, SegmentationDataset

    image, mask = breast_crop(32)
    images = np.stack([image, image]).astype(np.float32)
    masks = np.stack([mask, mask])
    config = with_intensity(None, IntensityConfig(contrast=(1.5, 1.5)))
    plain = SegmentationDataset(images, masks, batch_size=2)
    ds = SegmentationDataset(images, masks, batch_size=2, augment=config)
    x0, y0 = plain[0]
    x1, y1 = ds[0]
    np.testing.assert_array_equal(y1, y0)
    assert not np.array_equal(x1, x0)
    np.testing.assert_array_equal(x1[:, image == 0], 0.0)
    cls = ClassificationDataset(
        images, [0, 1], batch_size=2, image_size=None, channels=3, augment=config
    )
    xc, _ = cls[0]
    np.testing.assert_allclose(xc[..., 0], x1[..., 0])
