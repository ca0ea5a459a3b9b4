"""One tiny distributed training, run in a fresh process by test_keras_distribute.py.

Usage: ``python distribute_worker.py mirrored|multiworker OUT_DIR`` (multiworker reads
TF_CONFIG). Prints ``JSON:{...}`` with the replica count, the history and what was written.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(mode: str, out: str) -> None:
    from mammo_common.keras.training.distribute import get_strategy, is_chief, strategy_scope

    strategy = get_strategy(mode, logical_cpus=2 if mode == "mirrored" else None)
    import keras
    import numpy as np

    from mammo_common.keras.networks import unet5l
    from mammo_common.keras.training.data import SegmentationDataset
    from mammo_common.keras.training.harness import fit_resumable

    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, (8, 32, 32), dtype=np.uint16)
    masks = (rng.random((8, 32, 32)) > 0.5).astype(np.uint8)
    train = SegmentationDataset(images, masks, batch_size=4, shuffle=True, seed=0,
                                steps_per_epoch=2)
    # two batches of each: under MultiWorkerMirroredStrategy each worker gets every other one
    valid = SegmentationDataset(images, masks, batch_size=4)
    keras.utils.set_random_seed(0)
    with strategy_scope(strategy):
        model = unet5l.build((32, 32, 1), filters=2)
    result = fit_resumable(model, train, valid, out_dir=out, epochs=1, progress=False,
                           strategy=strategy, jit_compile=False)
    variable = model.trainable_variables[0]
    print("JSON:" + json.dumps({
        "replicas": int(strategy.num_replicas_in_sync),
        "strategy": type(strategy).__name__,
        "variable_type": type(getattr(variable, "value", variable)).__name__,
        "chief": is_chief(strategy),
        "loss": result.history[-1]["loss"],
        "val_loss": result.history[-1]["val_loss"],
        "epochs_run": result.epochs_run,
        "written": sorted(os.listdir(out)) if os.path.isdir(out) else [],
        "trainable_sum": float(sum(np.sum(np.asarray(w)) for w in model.trainable_weights)),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
