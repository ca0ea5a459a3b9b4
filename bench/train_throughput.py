"""Training throughput (images/s) and model FLOPs utilisation (MFU) of the reference networks.

For each network (unet5l 1024x768 f=16, unetpp_xception 640x640, VGG16 classifier 224x224 with
every layer trainable), batch 2, float32 and bfloat16 mixed precision: compile as the training
harness does (Adam, Dice loss / binary cross-entropy, ``jit_compile`` as asked), run warm-up
steps (the first traces the graph), then time single ``train_on_batch`` steps on random data.

FLOPs per training step = 3 x forward FLOPs x batch, forward FLOPs counted from the traced
graph's Conv2D / depthwise / transposed-conv / MatMul ops (``_common.count_forward_flops``;
cross-checked with the TF profiler). MFU = achieved FLOP/s / this machine's dense matmul
FLOP/s in the same dtype, measured in the same run before and after the models (the higher
of the two medians is the denominator).

Usage::

    python bench/train_throughput.py --quick   # ~2-3 min on 2 cores: smaller inputs
    python bench/train_throughput.py           # reference sizes, jit auto and off (~15-25 min)
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import _common as C

FULL = {
    "unet5l": (1024, 768, 1),
    "unetpp_xception": (640, 640, 3),
    "vgg16": (224, 224, 3),
}
QUICK = {
    "unet5l": (512, 384, 1),
    "unetpp_xception": (320, 320, 3),
    "vgg16": (224, 224, 3),
}


def build(name: str, shape: tuple[int, int, int]):
    """Builds a network with random weights (every layer trainable)."""
    if name == "vgg16":
        from massclass.models import build_model

        return build_model("vgg16", input_shape=shape, weights=None, trainable=True)
    from massseg.models import build_model

    kwargs: dict[str, Any] = {"filters": 16} if name == "unet5l" else {}
    return build_model(name, input_shape=shape, **kwargs)


def run_one(
    name: str, shape: tuple[int, int, int], precision: str, jit: str, args: argparse.Namespace
) -> dict[str, Any]:
    import keras
    import numpy as np

    from mammo_common.keras.losses import get_loss

    keras.backend.clear_session()
    gc.collect()
    C.set_precision(precision)
    t0 = time.perf_counter()
    model = build(name, shape)
    build_s = time.perf_counter() - t0
    loss = "binary_crossentropy" if name == "vgg16" else get_loss("dice")
    jit_arg: bool | str = {"auto": "auto", "on": True, "off": False}[jit]
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, jit_compile=jit_arg)
    rng = np.random.default_rng(0)
    b = args.batch
    x = rng.random((b, *shape), dtype=np.float32)
    if name == "vgg16":
        y = rng.integers(0, 2, (b, 1)).astype(np.float32)
    else:
        y = (rng.random((b, *shape[:2], 1)) > 0.9).astype(np.float32)
    C.log(f"{name} {shape} {precision} jit={jit}: warm-up (tracing)")
    stats = C.time_reps(lambda: model.train_on_batch(x, y), warmup=args.warmup, reps=args.steps)
    stats["build_s"] = build_s
    stats["jit_compile_resolved"] = bool(getattr(model, "jit_compile", False))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    stats["trainable_params"] = trainable
    stats["total_params"] = int(model.count_params())
    del model
    keras.backend.clear_session()
    C.set_precision("float32")
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs, fewer steps (~2-3 min)")
    p.add_argument("--models", default="unet5l,unetpp_xception,vgg16")
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--jit", default=None, help="comma list of auto,on,off (quick: auto)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (first traces)")
    p.add_argument("--steps", type=int, default=None, help="timed steps")
    p.add_argument("--matmul-n", type=int, default=None, help="matmul side (quick 2048, 4096)")
    p.add_argument("--name", default=None, help="results name (default train_throughput[_quick])")
    args = p.parse_args()
    sizes = QUICK if args.quick else FULL
    args.warmup = args.warmup or 2
    args.steps = args.steps or (3 if args.quick else 5)
    jits = (args.jit or ("auto" if args.quick else "auto,off")).split(",")
    mm_n = args.matmul_n or (2048 if args.quick else 4096)
    precisions = args.precisions.split(",")

    import tensorflow as tf  # noqa: F401 - import before timing

    C.log("matmul peak (before)")
    peak_before = {d: C.matmul_rate(d, mm_n, reps=7) for d in precisions}

    flops: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    for name in args.models.split(","):
        shape = sizes[name]
        import keras

        keras.backend.clear_session()
        C.set_precision("float32")
        model = build(name, shape)
        f = C.count_forward_flops(model, shape)
        f["profiler_forward_flops_per_image"] = C.profiler_flops(model, shape)
        f["train_flops_per_step"] = 3.0 * f["forward_flops_per_image"] * args.batch
        flops[name] = f
        del model
        for precision in precisions:
            for jit in jits:
                stats = run_one(name, shape, precision, jit, args)
                results.append(
                    {"model": name, "input": list(shape), "precision": precision, "jit": jit,
                     "batch": args.batch, **stats}
                )

    C.log("matmul peak (after)")
    peak_after = {d: C.matmul_rate(d, mm_n, reps=7) for d in precisions}
    peak = {d: max(peak_before[d]["gflops_median"], peak_after[d]["gflops_median"])
            for d in precisions}

    rows = []
    for r in results:
        f = flops[r["model"]]
        achieved = f["train_flops_per_step"] / r["median_s"]
        r["images_per_s"] = r["batch"] / r["median_s"]
        r["achieved_gflops"] = achieved / 1e9
        r["mfu"] = achieved / 1e9 / peak[r["precision"]]
        rows.append([
            r["model"], "x".join(map(str, r["input"][:2])), r["precision"], r["jit"],
            r["median_s"], r["spread_pct"], r["images_per_s"],
            f["train_flops_per_step"] / 1e9, r["achieved_gflops"], 100.0 * r["mfu"],
        ])
    C.print_table(
        ["model", "input", "precision", "jit", "step s (median)", "spread %", "images/s",
         "GFLOP/step", "GFLOP/s", "MFU %"],
        rows,
        title=f"Training, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up",
    )
    C.print_table(
        ["dtype", "n", "GFLOP/s before (median)", "GFLOP/s after (median)", "best seen",
         "denominator"],
        [[d, mm_n, peak_before[d]["gflops_median"], peak_after[d]["gflops_median"],
          max(peak_before[d]["gflops_best"], peak_after[d]["gflops_best"]), peak[d]]
         for d in precisions],
        title="Dense matmul rate of this machine (same run)",
    )
    C.print_table(
        ["model", "input", "forward GFLOP/image (graph count)", "TF profiler GFLOP/image"],
        [[n, "x".join(map(str, sizes[n][:2])), f["forward_flops_per_image"] / 1e9,
          (f["profiler_forward_flops_per_image"] or 0) / 1e9] for n, f in flops.items()],
        title="FLOP count",
    )
    path = C.write_results(
        args.name or ("train_throughput_quick" if args.quick else "train_throughput"),
        {"mode": "quick" if args.quick else "full", "batch": args.batch,
         "matmul_before": peak_before, "matmul_after": peak_after,
         "matmul_peak_gflops": peak, "flops": flops, "results": results},
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
