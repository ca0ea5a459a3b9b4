"""Where unet5l's time goes: per-level convolution rate and the element-wise work around it.

unet5l keeps f=16 channels at full resolution (1024x768). This profile times, level by level,
the encoder's 3x3 convolution (Cin -> Cout at that level's size) forward + backward
(``tf.GradientTape``, the training step's shape; the forward output is returned so that it is
not pruned: runs before issue 16 timed only the two gradient convs against a count of three, so
their ``conv_gflops`` read 1.5x too high) and the BatchNorm + ReLU that follow it, in
float32 and bfloat16, each timed rep followed by a timed 2048^3 matmul of the same dtype
(side by side, as in ``train_throughput.py``). A level's conv rate over the matmul rate says
how well oneDNN uses the cores at that width; the element-wise share says how much of the
level's time does no FLOPs that count.

Two remedies are timed at each level, side by side with the above:

* ``fused BN``: the same BatchNorm + ReLU through TensorFlow's fused kernel
  (``FusedBatchNormV3``, one oneDNN pass forward and one backward; what tf.keras 2 used, and
  what ``mammo_common.keras.layers.FusedBatchNormalization`` uses in training on TensorFlow)
  instead of the moments + arithmetic Keras 3 emits (several passes over memory);
* ``NCHW conv``: the convolution in channels-first layout (oneDNN reorders to its blocked
  layout either way; reported if the TensorFlow build supports it on CPU).

Usage::

    python bench/profile_unet5l.py --quick   # 512x384 (~1 min)
    python bench/profile_unet5l.py           # 1024x768
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    h, w = (512, 384) if args.quick else (1024, 768)
    batch = 2

    import numpy as np
    import tensorflow as tf

    f = args.filters
    levels = [(1, h, w, f, f), (2, h // 2, w // 2, 2 * f, 2 * f), (3, h // 4, w // 4, 4 * f, 4 * f),
              (4, h // 8, w // 8, 8 * f, 8 * f), (5, h // 16, w // 16, 16 * f, 16 * f)]
    rows: list[list[Any]] = []
    out: list[dict[str, Any]] = []
    for dtype in ("float32", "bfloat16"):
        tfd = {"float32": tf.float32, "bfloat16": tf.bfloat16}[dtype]
        mm = C.make_matmul(dtype, 2048)
        mm()
        for lvl, hh, ww, cin, cout in levels:
            x = tf.cast(tf.random.uniform((batch, hh, ww, cin)), tfd)
            k = tf.Variable(tf.cast(tf.random.normal((3, 3, cin, cout)) * 0.1, tfd))
            gamma = tf.Variable(tf.ones((cout,), tfd))

            @tf.function
            def conv_step(x=x, k=k):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.nn.conv2d(x, k, 1, "SAME")
                    s = tf.reduce_sum(tf.cast(y, tf.float32))
                gx, gk = tape.gradient(s, [x, k])
                # s is returned too: without it Grappler prunes the forward conv (a sum's
                # gradients do not need it) and 2 of the 3 counted convs run (issue 16)
                return s + 1e-30 * (tf.reduce_sum(tf.cast(gx[:1, :1, :1], tf.float32))
                                    + tf.reduce_sum(tf.cast(gk[:1], tf.float32)))

            y0 = tf.cast(tf.random.uniform((batch, hh, ww, cout)), tfd)

            @tf.function
            def bn_relu_step(y=y0, gamma=gamma, tfd=tfd):
                with tf.GradientTape() as tape:
                    tape.watch(y)
                    mean, var = tf.nn.moments(tf.cast(y, tf.float32), axes=[0, 1, 2])
                    z = tf.nn.relu(tf.cast((tf.cast(y, tf.float32) - mean)
                                           * tf.math.rsqrt(var + 1e-3), tfd) * gamma)
                    s = tf.reduce_sum(tf.cast(z, tf.float32))
                g = tape.gradient(s, y)
                return tf.reduce_sum(tf.cast(g[:1, :1, :1], tf.float32))

            beta = tf.Variable(tf.zeros((cout,), tf.float32))
            gamma32 = tf.Variable(tf.ones((cout,), tf.float32))

            @tf.function
            def fused_bn_relu_step(y=y0, gamma=gamma32, beta=beta):
                with tf.GradientTape() as tape:
                    tape.watch(y)
                    z, _, _ = tf.compat.v1.nn.fused_batch_norm(
                        y, gamma, beta, epsilon=1e-3, is_training=True)
                    z = tf.nn.relu(z)
                    s = tf.reduce_sum(tf.cast(z, tf.float32))
                g = tape.gradient(s, y)
                return tf.reduce_sum(tf.cast(g[:1, :1, :1], tf.float32))

            x_nchw = tf.transpose(x, [0, 3, 1, 2])

            @tf.function
            def conv_nchw_step(x=x_nchw, k=k):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.nn.conv2d(x, k, 1, "SAME", data_format="NCHW")
                    s = tf.reduce_sum(tf.cast(y, tf.float32))
                gx, gk = tape.gradient(s, [x, k])
                # s is returned too: without it Grappler prunes the forward conv (a sum's
                # gradients do not need it) and 2 of the 3 counted convs run (issue 16)
                return s + 1e-30 * (tf.reduce_sum(tf.cast(gx[:1, :1, :1], tf.float32))
                                    + tf.reduce_sum(tf.cast(gk[:1], tf.float32)))

            steps = {"conv": conv_step, "bn_relu": bn_relu_step,
                     "fused_bn_relu": fused_bn_relu_step, "conv_nchw": conv_nchw_step}
            for key, fn in list(steps.items()):
                try:
                    fn().numpy()
                except Exception as exc:  # an op/layout this TF build lacks on CPU
                    C.log(f"level {lvl} {dtype} {key}: not supported ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120]})")
                    del steps[key]
            times: dict[str, list[float]] = {key: [] for key in steps}
            tm = []
            for _ in range(args.reps):
                for key, fn in steps.items():
                    t0 = time.perf_counter()
                    fn().numpy()
                    times[key].append(time.perf_counter() - t0)
                t2 = time.perf_counter()
                mm()
                tm.append(time.perf_counter() - t2)
            tc, te = times["conv"], times["bn_relu"]
            med = {key: float(np.median(v)) for key, v in times.items()}
            conv_flops = 3 * 2.0 * batch * hh * ww * cout * 9 * cin  # fwd + 2 backward convs
            c, e, m = (float(np.median(v)) for v in (tc, te, tm))
            rate = conv_flops / c / 1e9
            mm_rate = 2.0 * 2048**3 / m / 1e9
            fused = med.get("fused_bn_relu")
            nchw = med.get("conv_nchw")
            rec = {"dtype": dtype, "level": lvl, "size": [hh, ww], "cin": cin, "cout": cout,
                   "conv_fwd_bwd_s": c, "bn_relu_fwd_bwd_s": e, "matmul_s": m,
                   "fused_bn_relu_fwd_bwd_s": fused, "conv_nchw_fwd_bwd_s": nchw,
                   "conv_gflops": rate, "matmul_gflops": mm_rate, "conv_vs_matmul": rate / mm_rate,
                   "elementwise_share": e / (c + e), "conv_flops": conv_flops,
                   "times": {**times, "matmul": tm}}
            out.append(rec)
            rows.append([dtype, lvl, f"{hh}x{ww}", f"{cin}->{cout}", 1000 * c, 1000 * e,
                         rate, mm_rate, 100 * rate / mm_rate, 100 * e / (c + e),
                         1000 * fused if fused else "n/a", e / fused if fused else "n/a",
                         1000 * nchw if nchw else "n/a"])
    C.print_table(
        ["dtype", "level", "size", "channels", "conv fwd+bwd ms", "BN+ReLU fwd+bwd ms",
         "conv GFLOP/s", "matmul GFLOP/s", "conv/matmul %", "element-wise share %",
         "fused BN+ReLU ms", "BN speed-up fused", "NCHW conv ms"],
        rows, title=f"unet5l f={f} encoder convs at {h}x{w}, batch {batch} (medians of "
                    f"{args.reps})",
    )
    path = C.write_results("profile_unet5l_quick" if args.quick else "profile_unet5l",
                           {"mode": "quick" if args.quick else "full", "input": [h, w],
                            "filters": f, "batch": batch, "levels": out})
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
