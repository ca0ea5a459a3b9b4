"""Evaluation metrics (numpy only): pure functions and streaming accumulators.

Segmentation (per image and pooled Dice, Jaccard, pixel ROC AUC), binary classification
(positive = malignant) and percentile bootstrap confidence intervals, as the reference
reports them. See the submodules for conventions (thresholds, empty masks, zero division).
"""

from mammo_common.metrics._common import EmptyPolicy
from mammo_common.metrics.accumulators import (
    BinnedAUC,
    ClassificationAccumulator,
    DiceAccumulator,
    SegmentationAccumulator,
)
from mammo_common.metrics.bootstrap import BootstrapResult, bootstrap_ci
from mammo_common.metrics.classification import (
    ConfusionMatrix,
    accuracy,
    classification_report,
    cohen_kappa,
    confusion_matrix,
    f1,
    mcc,
    precision,
    recall,
    roc_auc,
    roc_curve,
    sensitivity,
    specificity,
    youden_threshold,
)
from mammo_common.metrics.segmentation import (
    binarize,
    dice,
    jaccard,
    pixel_auc,
    pooled_dice,
    pooled_jaccard,
    pooled_pixel_auc,
    segmentation_report,
)

__all__ = [
    "BinnedAUC",
    "BootstrapResult",
    "ClassificationAccumulator",
    "ConfusionMatrix",
    "DiceAccumulator",
    "EmptyPolicy",
    "SegmentationAccumulator",
    "accuracy",
    "binarize",
    "bootstrap_ci",
    "classification_report",
    "cohen_kappa",
    "confusion_matrix",
    "dice",
    "f1",
    "jaccard",
    "mcc",
    "pixel_auc",
    "pooled_dice",
    "pooled_jaccard",
    "pooled_pixel_auc",
    "precision",
    "recall",
    "roc_auc",
    "roc_curve",
    "segmentation_report",
    "sensitivity",
    "specificity",
    "youden_threshold",
]
