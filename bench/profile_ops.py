"""Where a training step's time goes, by layer type: the TensorFlow profiler, aggregated.

For each network (the reference sizes of ``train_throughput.py``, batch 2, Adam, the harness's
loss), compiled as ``fit_resumable`` compiles it (BatchNorms on the fused kernel unless
``--bn keras``), after two warm-up steps, ``--steps`` training steps run under
``tf.profiler.experimental``. The trace's TensorFlow op events (``name:Type`` on the executor
threads) are summed per op type and, through the op's name scope (``<model>/<layer>/...``, and
``gradient_tape/<model>/<layer>/...`` for its gradient), per Keras layer class (Conv2D,
BatchNormalization, Activation, Concatenate...); what belongs to no layer is the loss or the
optimizer update. Op times include the intra-op threads working for them; two inter-op threads
may run ops at the same time, so the shares are of the summed op time, not of wall time.

Usage::

    python bench/profile_ops.py --quick    # unet5l 512x384, unetpp_xception 320x320
    python bench/profile_ops.py            # unet5l 1024x768, unetpp_xception 640x640
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import shutil
import time
from typing import Any

import _common as C
from train_throughput import FULL, QUICK, build


def is_conv(op_type: str) -> bool:
    """Convolutions and matmuls, forward and backward, whatever oneDNN renamed them to
    (``_MklNativeFusedConv2D``, ``_MklNativeConv2DBackpropFilterWithBias``...)."""
    return any(k in op_type for k in ("Conv2D", "DepthwiseConv2d", "MatMul"))


def _layer_classes(model: Any) -> dict[str, str]:
    classes: dict[str, str] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        classes[layer.name] = type(layer).__name__
    return classes


def _scope_layer(op_name: str, classes: dict[str, str]) -> str | None:
    for part in op_name.split("/")[:4]:
        part = re.sub(r"_\d+$", "", part) if part not in classes else part
        if part in classes:
            return part
    return None


def profile(name: str, shape: tuple[int, int, int], args: argparse.Namespace) -> dict[str, Any]:
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from mammo_common.keras.training.fused_batchnorm import use_fused_batchnorm
    from mammo_common.keras.training.losses import get_loss

    keras.backend.clear_session()
    model = build(name, shape)
    if args.bn == "fused":
        use_fused_batchnorm(model)
    loss = "binary_crossentropy" if name == "vgg16" else get_loss("dice")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
    rng = np.random.default_rng(0)
    x = rng.random((2, *shape), dtype=np.float32)
    y = (rng.integers(0, 2, (2, 1)) if name == "vgg16"
         else rng.random((2, *shape[:2], 1)) > 0.9).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    logdir = C.WORK_DIR / f"profile_ops_{name}"
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(str(logdir))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    wall = (time.perf_counter() - t0) / args.steps
    tf.profiler.experimental.stop()
    files = glob.glob(str(logdir / "**" / "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(files[0], "rb") as fh:
        space.ParseFromString(fh.read())
    classes = _layer_classes(model)
    by_type: collections.Counter[str] = collections.Counter()
    by_class: collections.Counter[str] = collections.Counter()
    by_class_conv: collections.Counter[str] = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                if ":" not in meta.name or not meta.display_name:
                    continue
                op_type = meta.display_name
                seconds = event.duration_ps * 1e-12 / args.steps
                by_type[op_type] += seconds
                layer = _scope_layer(meta.name.split(":")[0], classes)
                if layer is None:
                    low = meta.name.lower()
                    group = ("optimizer (Adam update)" if "adam" in low or "resourceapply" in low
                             or "assignvariable" in low or "readvariable" in low
                             else "loss and other")
                else:
                    group = classes[layer]
                by_class[group] += seconds
                if is_conv(op_type):
                    by_class_conv[group] += seconds
    total = sum(by_type.values())
    conv = sum(v for k, v in by_type.items() if is_conv(k))
    del model
    keras.backend.clear_session()
    return {"model": name, "input": list(shape), "bn": args.bn, "steps": args.steps,
            "wall_s_per_step": wall, "op_s_per_step": total, "conv_op_s_per_step": conv,
            "by_op_type_s": dict(by_type.most_common()),
            "by_layer_class_s": dict(by_class.most_common()),
            "by_layer_class_conv_s": dict(by_class_conv)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default="unet5l,unetpp_xception")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--bn", default="fused", choices=["fused", "keras"])
    p.add_argument("--top", type=int, default=12, help="op types listed per model")
    args = p.parse_args()
    sizes = QUICK if args.quick else FULL
    results = []
    for name in args.models.split(","):
        C.log(f"profiling {name} {sizes[name]}")
        r = profile(name, sizes[name], args)
        results.append(r)
        total = r["op_s_per_step"]
        rows = [[cls, 1000 * s, 100 * s / total,
                 1000 * r["by_layer_class_conv_s"].get(cls, 0.0)]
                for cls, s in r["by_layer_class_s"].items()]
        C.print_table(["layer class", "ms/step", "% of op time", "of which conv/matmul ms"],
                      rows, title=f"{name} {r['input']}: {1000 * r['wall_s_per_step']:.0f} ms "
                                  f"wall per step, {1000 * total:.0f} ms summed op time, "
                                  f"{100 * r['conv_op_s_per_step'] / total:.0f} % of it in "
                                  f"convolutions (BN {args.bn})")
        rows = [[op, 1000 * s, 100 * s / total]
                for op, s in list(r["by_op_type_s"].items())[: args.top]]
        C.print_table(["op type", "ms/step", "% of op time"], rows, title=f"{name}: top op types")
    path = C.write_results("profile_ops_quick" if args.quick else "profile_ops",
                           {"mode": "quick" if args.quick else "full", "results": results})
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
