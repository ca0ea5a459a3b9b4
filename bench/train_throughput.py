"""Training throughput (images/s) and model FLOPs utilisation (MFU) of the reference networks.

For each network (unet5l 1024x768 f=16, unetpp_xception 640x640, VGG16 classifier 224x224 with
every layer trainable), batch 2, float32 and bfloat16 mixed precision: compile as the training
harness does (Adam, Dice loss / binary cross-entropy, ``jit_compile`` as asked), run warm-up
steps (the first traces the graph), then time single ``train_on_batch`` steps on random data.

FLOPs per training step = 3 x forward FLOPs x batch, forward FLOPs counted from the traced
graph's Conv2D / depthwise / transposed-conv / MatMul ops (``_common.count_forward_flops``;
cross-checked with the TF profiler). MFU = achieved FLOP/s / this machine's dense matmul
FLOP/s in the same dtype (2048^3 ``tf.linalg.matmul``), where each timed training step is
followed by one timed matmul, so numerator and denominator see the same load on a shared
machine; the medians are compared. The matmul rate is also measured alone before and after.

``--bn keras,fused`` (default) runs each network twice, side by side: with Keras 3's BatchNorm
ops, and with TensorFlow's fused BatchNorm kernel, which ``fit_resumable`` switches every
BatchNorm to before compiling (``mammo_common.keras.training.fused_batchnorm``); VGG16 has
no BatchNorm.

``jit="auto"`` is what the training harness passes to ``compile``; on this CPU build Keras
resolves it to no XLA (recorded as ``jit_compile_resolved``). ``--xla-models unet5l``
additionally runs those networks with ``jit_compile=True`` (XLA fusion). It is off by default
because at 1024x768 on 2 cores unet5l was once seen still compiling after several minutes; that
attempt wrote no results file, so its time and memory must be re-measured before they are cited.

Usage::

    python bench/train_throughput.py --quick   # ~2-3 min on 2 cores: smaller inputs
    python bench/train_throughput.py           # reference sizes (~5-10 min on idle cores)
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
    name: str, shape: tuple[int, int, int], precision: str, jit: str, bn: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    import keras
    import numpy as np

    from mammo_common.keras.training.losses import get_loss

    keras.backend.clear_session()
    gc.collect()
    C.set_precision(precision)
    t0 = time.perf_counter()
    model = build(name, shape)
    if bn == "fused":  # what fit_resumable does before compiling
        from mammo_common.keras.training.fused_batchnorm import use_fused_batchnorm

        use_fused_batchnorm(model)
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
    C.log(f"{name} {shape} {precision} jit={jit} bn={bn}: warm-up (tracing)")
    warm: list[float] = []
    step = model.train_on_batch
    mm = C.make_matmul(precision, args.matmul_n)
    for _ in range(args.warmup):
        t0 = time.perf_counter()
        step(x, y)
        warm.append(time.perf_counter() - t0)
        mm()
    # interleaved: each timed training step is followed by a timed matmul, so both see the
    # same load on this shared machine; MFU compares their medians
    steps, mms, cpu_steps, cpu_mms = [], [], [], []
    for _ in range(args.steps):
        c0, t0 = time.process_time(), time.perf_counter()
        step(x, y)
        c1, t1 = time.process_time(), time.perf_counter()
        mm()
        c2, t2 = time.process_time(), time.perf_counter()
        steps.append(t1 - t0)
        mms.append(t2 - t1)
        cpu_steps.append(c1 - c0)
        cpu_mms.append(c2 - c1)
    stats = C.summarize(steps)
    stats["cpu_s"] = C.summarize(cpu_steps)
    stats["matmul_cpu_s"] = C.summarize(cpu_mms)
    stats["warmup_s"] = warm
    mm_flops = 2.0 * args.matmul_n**3
    stats["matmul_interleaved"] = C.summarize(mms) | {
        "n": args.matmul_n, "gflops_median": mm_flops / C.summarize(mms)["median_s"] / 1e9}
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
    p.add_argument("--jit", default="auto", help="comma list of auto,on,off for every model")
    p.add_argument("--xla-models", default=None,
                   help="models also run with jit_compile=True (default none)")
    p.add_argument("--bn", default="keras,fused",
                   help="BatchNorm training kernels: keras (Keras 3's ops), fused (TF's fused "
                        "kernel, what fit_resumable uses); both are run side by side")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (first traces)")
    p.add_argument("--steps", type=int, default=None, help="timed steps")
    p.add_argument("--matmul-n", type=int, default=None, help="matmul side (2048)")
    p.add_argument("--name", default=None, help="results name (default train_throughput[_quick])")
    args = p.parse_args()
    sizes = QUICK if args.quick else FULL
    args.warmup = args.warmup or 2
    args.steps = args.steps or (3 if args.quick else 5)
    jits = args.jit.split(",")
    xla_models = [m for m in (args.xla_models or "").split(",") if m]
    mm_n = args.matmul_n = args.matmul_n or 2048
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
            for jit in jits + (["on"] if name in xla_models and "on" not in jits else []):
                for bn in args.bn.split(","):
                    if bn == "fused" and name == "vgg16" and "keras" in args.bn:
                        continue  # VGG16 has no BatchNorm
                    stats = run_one(name, shape, precision, jit, bn, args)
                    results.append(
                        {"model": name, "input": list(shape), "precision": precision,
                         "jit": jit, "bn": bn, "batch": args.batch, **stats}
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
        r["mfu_vs_run_peak"] = achieved / 1e9 / peak[r["precision"]]
        r["mfu"] = achieved / 1e9 / r["matmul_interleaved"]["gflops_median"]
        # the same ratio per CPU-second (process CPU time): insensitive to time-slicing by
        # other users of the machine, sensitive to threads spinning idle
        mm_cpu = r["matmul_cpu_s"]["median_s"]
        r["mfu_cpu_time"] = (f["train_flops_per_step"] / r["cpu_s"]["median_s"]) / (
            2.0 * args.matmul_n**3 / mm_cpu) if mm_cpu > 0 else None
        rows.append([
            r["model"], "x".join(map(str, r["input"][:2])), r["precision"], r["jit"], r["bn"],
            r["median_s"], r["spread_pct"], r["images_per_s"],
            f["train_flops_per_step"] / 1e9, r["achieved_gflops"],
            r["matmul_interleaved"]["gflops_median"], 100.0 * r["mfu"],
            100.0 * (r["mfu_cpu_time"] or 0.0),
        ])
    C.print_table(
        ["model", "input", "precision", "jit", "BN", "step s (median)", "spread %", "images/s",
         "GFLOP/step", "GFLOP/s", "matmul GFLOP/s (interleaved)", "MFU %",
         "MFU % (CPU time)"],
        rows,
        title=f"Training, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up",
    )
    C.print_table(
        ["dtype", "n", "GFLOP/s before (median)", "GFLOP/s after (median)", "best seen",
         "max of medians"],
        [[d, mm_n, peak_before[d]["gflops_median"], peak_after[d]["gflops_median"],
          max(peak_before[d]["gflops_best"], peak_after[d]["gflops_best"]), peak[d]]
         for d in precisions],
        title="Dense matmul rate of this machine, before and after the models (MFU uses the "
              "matmuls interleaved with each model's steps instead)",
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
