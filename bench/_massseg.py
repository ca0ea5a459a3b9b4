"""Shared pieces of the benchmarks that study one trained massseg model folder's objects.

``bench/objects_per_image.py`` and ``bench/object_threshold.py`` load a model folder (network,
refiner, false-positive settings), run the network on some cases of a breast store and measure
the objects of the refined maps as :mod:`massseg.fp_reduction` does.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def add_model_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--model``, ``--data``, ``--splits`` (the demo's by default) and ``--name``."""
    parser.add_argument("--model", type=Path, default=ROOT / "models/massseg/unet5l/fold_1")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "breast.zarr")
    parser.add_argument("--splits", type=Path, default=ROOT / "data" / "splits.json")
    parser.add_argument("--name", default=name, help="results file bench/results/<name>.json")


@dataclasses.dataclass
class MassModel:
    """A loaded massseg model folder: its card, folded network, refiners and scorer settings."""

    card: Any
    model: Any
    refiners: Any
    fp_settings: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        """The network's input shape ``(rows, cols, channels)``."""
        return tuple(int(d) for d in self.card.input_shape)

    @property
    def min_pixels(self) -> int:
        """Smallest object measured (the scorer's ``min_object_pixels``)."""
        return int(self.fp_settings["min_object_pixels"])


def load_mass_model(model_dir: Path) -> MassModel:
    """Load ``model_dir`` as ``massseg predict`` does (folded inference network, refiners)."""
    import importlib

    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model
    from mammo_common.schema.model_card import read_model_card
    from massseg.refine import load_refiners

    card = read_model_card(model_dir)
    importlib.import_module(f"massseg.models.{card.architecture}")
    settings = card.training.get("fp_reduction")
    if not settings:
        raise SystemExit(f"{model_dir}: trained without false-positive reduction")
    model = inference_model(load_model_folder(model_dir, "massseg")[0])[0]
    return MassModel(card, model, load_refiners([model_dir], [card]), dict(settings))


def network_maps(mm: MassModel, store: Any, indices: list[int]) -> tuple[list, list, list]:
    """Store images, whole-image probability maps and truth masks of ``indices``."""
    from mammo_common.keras.deployment.inference import predict_probabilities

    images, masks = store.array("images"), store.array("mass_masks")
    shape = mm.shape
    imgs, coarse, truths = [], [], []
    for start in range(0, len(indices), 16):
        chunk = indices[start : start + 16]
        x = np.stack([np.asarray(images[i]) for i in chunk])
        maps = predict_probabilities([mm.model], x, input_size=shape[:2], channels=shape[2],
                                     batch_size=16)
        imgs += list(x)
        coarse += list(maps)
        truths += [np.asarray(masks[i]) > 0 for i in chunk]
    return imgs, coarse, truths


def breast_masks(store: Any, indices: list[int]) -> list[np.ndarray] | None:
    """The store's breast masks of ``indices`` (what the scorer measures against), or None."""
    if not store.has("breast_masks"):
        return None
    masks = store.array("breast_masks")
    return [np.asarray(masks[i]) > 0 for i in indices]


def measure_objects(mm: MassModel, maps: tuple[list, list, list], threshold: float,
                    breasts: list[np.ndarray] | None = None) -> Any:
    """The :class:`massseg.fp_reduction.ObjectSet` of the refined maps at ``threshold``
    (``breasts``: the images' breast masks, as :func:`breast_masks` gives them)."""
    from massseg.fp_reduction import collect_objects

    imgs, coarse, truths = maps
    refined = [mm.refiners(x, m, threshold=threshold, min_object_pixels=mm.min_pixels)
               if mm.refiners else m for x, m in zip(imgs, coarse, strict=True)]
    return collect_objects(imgs, coarse, refined, truths, threshold=threshold,
                           min_object_pixels=mm.min_pixels, breasts=breasts)


def case_indices(store: Any, splits: Path, part: str, fold: int | None) -> list[int]:
    """Store rows of one part of the splits (``fold`` for train/valid)."""
    from mammo_common.stage import split_cases

    wanted = set(split_cases(splits, part, None if part == "test" else fold))
    return [i for i, c in enumerate(store.case_ids) if c in wanted]
