"""Refit the false-positive scorer of a trained model folder, without training the network again.

The scorer (:mod:`massseg.fp_reduction`) is fitted after the network, on what the network
finds on its own training images, with its operating point chosen on the validation images.
Changing its settings (``scorer``, ``max_objects``, ``tolerance``...) or moving to a newer
scorer therefore needs only the network's predictions, not a new network: this module loads the
folder's network and refiner as training left them (unfolded, float32, so the maps are the ones
training saw), collects the objects of the fold's training and validation images in the store
the model was trained on, fits the new scorer and replaces ``fp_reduction.json`` and the card's
``training.fp_reduction`` and ``fp_reduction_*`` metrics atomically. The network, the refiner
and their training records are untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mammo_common.errors import ConfigError, ModelFolderError, StoreError
from mammo_common.store import BreastStore, open_store
from massseg.config import FPReductionSettings

__all__ = ["RefitConfig", "RefitResult", "refit_fp_reduction"]


class RefitConfig(BaseModel):
    """What ``massseg refit-fp`` refits.

    Attributes:
        model: The trained model folder (``models/massseg/<arch>/fold_<k>``).
        data: The ``breast`` store it was trained on (its digest must match the card's).
        splits: The splits file it was trained with.
        settings: Scorer settings replacing those of the card (fields not given keep the
            card's values; a folder trained without a scorer gets the defaults).
    """

    model_config = ConfigDict(extra="forbid")

    model: Path
    data: Path
    splits: Path
    settings: dict[str, Any] = {}


class RefitResult(BaseModel):
    """What the refit wrote: the scorer's kind, operating point and validation figures."""

    model_config = ConfigDict(extra="forbid")

    model: Path
    scorer: str
    threshold: float
    max_objects: int | None
    valid_dice: float | None
    valid_dice_before: float | None
    valid_auc: float | None
    valid_masses_kept: int | None
    valid_false_kept: int | None


def refit_fp_reduction(config: RefitConfig) -> RefitResult:
    """Fit a new false-positive scorer for ``config.model`` and write it into the folder.

    Raises:
        ModelFolderError: The folder is not a massseg model, or was trained on another store.
        StoreError: The store lacks ground-truth masses or the fold's cases.
    """
    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.schema.model_card import CARD_FILE, read_model_card
    from mammo_common.stage import load_fold
    from mammo_common.store.atomic import write_text_atomic
    from massseg.fp_reduction import FP_REDUCTION_FILE, load_fp_reduction
    from massseg.models import MODEL_NAMES
    from massseg.refine import load_refiners
    from massseg.train import _indices, _Rows, fit_scorer

    folder = Path(config.model)
    card = read_model_card(folder)
    if card.stage != "massseg":
        raise ModelFolderError(f"a {card.stage} model, not a massseg one", path=folder,
                               field="stage", fix="give a models/massseg/<arch>/fold_<k> folder")
    store = open_store(config.data, "breast")
    assert isinstance(store, BreastStore)
    if card.data.train_store_digest not in (None, store.digest):
        raise ModelFolderError(
            f"trained on another store (card digest {card.data.train_store_digest}, "
            f"{config.data}: {store.digest})", path=folder / CARD_FILE,
            field="data.train_store_digest", fix="give the breast store the model was trained on",
        )
    if not store.meta.has_mass_masks:
        raise StoreError("has no ground-truth mass_masks to fit on", path=config.data,
                         fix="give the breast store the model was trained on")
    if card.data.fold is None:
        raise ModelFolderError("trained on all folds: no validation images for the operating "
                               "point", path=folder / CARD_FILE, field="data.fold",
                               fix="refit a fold_<k> model")
    _, train_ids, valid_ids = load_fold(config.splits, card.data.fold)
    train_idx = _indices(store, list(train_ids), "train", config.splits)
    valid_idx = _indices(store, list(valid_ids), "valid", config.splits)
    try:
        settings = FPReductionSettings.model_validate(
            {**(card.training.get("fp_reduction") or {}), **config.settings})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"bad scorer setting: {first['msg']}",
                          field=".".join(str(p) for p in first["loc"]),
                          fix="see massseg.fp_reduction (scorer boosted_trees or logistic; "
                          "max_objects auto, none or a number)") from exc
    before = None
    if (folder / FP_REDUCTION_FILE).is_file():
        before = load_fp_reduction(folder).info.get("valid_dice")

    model = load_model_folder(folder, "massseg", known_architectures=MODEL_NAMES)[0]
    refiners = load_refiners([folder], [card], fold_batchnorm=False)
    breasts = _Rows(store.array("breast_masks")) if store.has("breast_masks") else None
    scorer = fit_scorer(
        settings, model, refiners, _Rows(store.array("images")),
        _Rows(store.array("mass_masks")), train_idx, valid_idx, threshold=card.threshold,
        seed=int(card.training.get("seed", 0)), breasts=breasts,
    )
    training = {**card.training, "fp_reduction": settings.model_dump(mode="json")}
    metrics = {k: v for k, v in card.metrics.items() if not k.startswith("fp_reduction_")}
    metrics.update(scorer.card_metrics())
    new_card = card.model_copy(update={"training": training, "metrics": metrics})
    scorer.save(folder)
    write_text_atomic(folder / CARD_FILE, new_card.to_json())
    return RefitResult(
        model=folder, scorer=settings.scorer, threshold=scorer.threshold,
        max_objects=scorer.max_objects, valid_dice=scorer.info.get("valid_dice"),
        valid_dice_before=before, valid_auc=scorer.info.get("valid_auc"),
        valid_masses_kept=scorer.info.get("valid_masses_kept"),
        valid_false_kept=scorer.info.get("valid_false_kept"),
    )
