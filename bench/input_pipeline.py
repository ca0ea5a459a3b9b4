"""Input pipeline overhead: training from the Zarr-backed loader with augmentation vs from memory.

One small network (unet5l, f=8) is compiled once (as the harness does: fused BatchNorm
kernels, Adam, Dice loss, ``jit_compile="auto"``) and trained for the same number of steps per
epoch, alternating epochs (A B A B ... so drift on a shared machine hits both alike) between:

- ``memory``: the breast store's images and masks loaded into numpy beforehand
  (``load_arrays``), ``model.fit(x, y, batch_size=2, shuffle=True)`` (Keras' array adapter);
- ``memory_ds``: the same preloaded arrays through ``SegmentationDataset`` without
  augmentation (the same PyDataset path as ``zarr``; isolates reading + augmenting);
- ``zarr``: ``SegmentationDataset`` over the store's lazy Zarr arrays with the mass-segmentation
  augmentation (``AugmentConfig.mass()``), ``workers=1`` (the harness default: items are read
  and augmented in the training loop's thread);
- ``zarr_w2``: the same with ``workers=2`` (a background thread pool prefetches batches).

Each epoch is one ``fit(epochs=1)`` call, as the harness (``fit_resumable``) runs them. The
first epoch of each variant is warm-up (tracing). The loader overhead is the ratio of the zarr
median epoch time to the faster in-memory variant's (target <= 1.10). Because this machine's
epoch times are bimodal (the hypervisor sometimes gives a process ~1.1 of its 2 vCPUs for a
while), the script also reports the **paired** ratio: in each round, the zarr epoch over the
faster in-memory epoch of the same round (run next to it in time), median over the rounds
(``paired_ratio_zarr_to_memory``); and the CPU-time ratio. The loader alone (no model) is also
timed.

Usage::

    python bench/input_pipeline.py --quick   # 256x256 store, ~1 min
    python bench/input_pipeline.py           # 640x640 store (the mass stage's size)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as C
import _data as D


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=None, help="store/model side (quick 256, 640)")
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (quick 10, 16)")
    p.add_argument("--reps", type=int, default=None, help="timed epochs per variant (6, 5)")
    p.add_argument("--variants", default="memory,memory_ds,zarr,zarr_w2")
    args = p.parse_args()
    size = args.size or (256 if args.quick else 640)
    steps = args.steps or (10 if args.quick else 16)
    reps = args.reps or (6 if args.quick else 5)
    batch = 2

    mg = D.mammograms_store(4, (512, 384))
    base = D.breast_store(mg, (size, size))
    store_path = D.replicate_breast_store(base, steps * batch)

    import keras
    import numpy as np

    from mammo_common.keras.training.augment import AugmentConfig
    from mammo_common.keras.training.data import SegmentationDataset, load_arrays
    from mammo_common.keras.training.losses import get_loss
    from mammo_common.store import open_store
    from massseg.models import build_model

    store = open_store(store_path, "breast")
    images, masks = store.array("images"), store.array("mass_masks")
    t0 = time.perf_counter()
    x, y = load_arrays(images, masks, image_size=(size, size), channels=1)
    load_s = time.perf_counter() - t0

    def dataset(workers: int) -> SegmentationDataset:
        return SegmentationDataset(
            images, masks, batch_size=batch, image_size=(size, size), channels=1, shuffle=True,
            seed=0, augment=AugmentConfig.mass(), steps_per_epoch=steps, workers=workers,
        )

    datasets = {
        "zarr": dataset(1),
        "zarr_w2": dataset(2),
        "memory_ds": SegmentationDataset(x, y, batch_size=batch, channels=1, shuffle=True, seed=0,
                                         steps_per_epoch=steps),
    }
    variants = args.variants.split(",")

    # loader alone: every batch of one epoch, no model
    loader_only: dict[str, Any] = {}
    for name in ("zarr",):
        ds = datasets[name]

        def one_epoch(ds=ds) -> None:
            for i in range(len(ds)):
                ds[i]

        loader_only[name] = C.time_reps(one_epoch, warmup=1, reps=reps)

    model = build_model("unet5l", input_shape=(size, size, 1), filters=args.filters)
    from mammo_common.keras.training.fused_batchnorm import use_fused_batchnorm

    use_fused_batchnorm(model)  # as fit_resumable does
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("dice"),
                  jit_compile="auto")

    cpu: dict[str, list[float]] = {v: [] for v in variants}

    def fit(variant: str, epoch: int) -> float:
        c, t = time.process_time(), time.perf_counter()
        if variant == "memory":
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
        else:
            model.fit(datasets[variant].for_epoch(epoch), epochs=1, verbose=0)
        cpu[variant].append(time.process_time() - c)
        return time.perf_counter() - t

    times: dict[str, list[float]] = {v: [] for v in variants}
    warm: dict[str, float] = {}
    for v in variants:
        C.log(f"warm-up epoch: {v}")
        warm[v] = fit(v, 0)
    cpu = {v: [] for v in variants}
    for r in range(reps):
        for v in variants if r % 2 == 0 else list(reversed(variants)):
            times[v].append(fit(v, r + 1))
    stats = {v: C.summarize(t) | {"warmup_s": [warm[v]], "cpu_s": C.summarize(cpu[v])}
             for v, t in times.items()}
    mems = [stats[v]["median_s"] for v in ("memory", "memory_ds") if v in stats]
    base_med = min(mems) if mems else None
    mems_cpu = [stats[v]["cpu_s"]["median_s"] for v in ("memory", "memory_ds") if v in stats]
    base_cpu = min(mems_cpu) if mems_cpu else None

    # per round: zarr's epoch over the faster in-memory epoch of the same round
    memory_variants = [v for v in ("memory", "memory_ds") if v in times]
    paired = []
    if "zarr" in times and memory_variants:
        for r in range(reps):
            paired.append(times["zarr"][r] / min(times[v][r] for v in memory_variants))
    paired_median = float(np.median(paired)) if paired else None

    rows = []
    for v, s in stats.items():
        ratio = s["median_s"] / base_med if base_med else float("nan")
        s["ratio_to_memory"] = ratio  # to the faster in-memory variant
        s["step_ms"] = 1000.0 * s["median_s"] / steps
        s["cpu_ratio_to_memory"] = s["cpu_s"]["median_s"] / base_cpu if base_cpu else None
        rows.append([v, s["median_s"], s["spread_pct"], s["step_ms"], ratio,
                     s["cpu_s"]["median_s"], s["cpu_ratio_to_memory"] or float("nan")])
    lo = loader_only["zarr"]
    rows.append(["zarr loader alone (no model)", lo["median_s"], lo["spread_pct"],
                 1000.0 * lo["median_s"] / steps, float("nan"), float("nan"), float("nan")])
    C.print_table(
        ["variant", "epoch s (median)", "spread %", "ms/step", "ratio to fastest memory",
         "CPU s/epoch", "CPU ratio"], rows,
        title=(f"unet5l f={args.filters} at {size}x{size}, batch {batch}, {steps} steps/epoch, "
               f"{reps} timed epochs each (alternating); CPU = process CPU time"),
    )
    if paired_median is not None:
        C.log(f"zarr / memory, paired by round (median of {len(paired)}): {paired_median:.3f} "
              f"({', '.join(f'{r:.2f}' for r in paired)})")
    path = C.write_results(
        "input_pipeline_quick" if args.quick else "input_pipeline",
        {"mode": "quick" if args.quick else "full", "size": size, "filters": args.filters,
         "batch": batch, "steps_per_epoch": steps, "reps": reps, "store": str(store_path),
         "preload_s": load_s, "x_bytes": int(x.nbytes + y.nbytes),
         "epochs": stats, "loader_only": loader_only,
         "ratio_zarr_to_memory": stats.get("zarr", {}).get("ratio_to_memory"),
         "cpu_ratio_zarr_to_memory": stats.get("zarr", {}).get("cpu_ratio_to_memory"),
         "paired_ratio_zarr_to_memory": paired_median, "paired_ratios": paired,
         "target_ratio": 1.10, "dtype_x": str(np.asarray(x).dtype)},
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
