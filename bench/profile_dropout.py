"""What a cheaper dropout mask would save: Keras' dropout vs a byte-per-activation mask.

``bench/profile_ops.py`` puts dropout at 15 % of unet5l's training op time (10 % for
unetpp_xception), half of it generating random numbers: Keras' TensorFlow dropout
(``tf.nn.experimental.stateless_dropout``) draws one float32 per activation. This times, on
unet5l's widest dropout inputs (batch 2; level-1 decoder concatenation 1024x768x32, level-1
pooling output 512x384x16), forward + backward of:

* ``keras``: ``tf.nn.experimental.stateless_dropout``, what ``keras.layers.Dropout`` runs on
  TensorFlow (``keras.random.dropout``);
* ``bytes``: one random *byte* per activation (``stateless_random_uniform_full_int`` int32
  draws bit-cast to 4 uint8 each), kept where ``byte >= round(rate * 256)``, scaled by
  ``256 / (256 - round(rate * 256))`` (the rate is quantised to 1/256: exact for 0.5).

Not used by the networks (it would change every trained model's random stream); a
measurement of the remedy docs/benchmarks.md names.

Usage::

    python bench/profile_dropout.py
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--rate", type=float, default=0.5)
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    rate = args.rate
    cut = round(rate * 256)
    rows: list[list[Any]] = []
    out: list[dict[str, Any]] = []
    for shape in [(2, 1024, 768, 32), (2, 512, 384, 16)]:
        x = tf.random.uniform(shape)
        n = int(np.prod(shape))

        # the seed is a function argument (a new one each call, as in training), so that
        # grappler cannot constant-fold the random mask; every output element is consumed
        @tf.function
        def keras_step(seed, x=x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)
                s = tf.reduce_sum(y * y)
            return tf.reduce_sum(tape.gradient(s, x))

        @tf.function
        def bytes_step(seed, x=x, shape=shape, n=n):
            with tf.GradientTape() as tape:
                tape.watch(x)
                bits = tf.random.stateless_uniform([n // 4], seed=seed, minval=None,
                                                   maxval=None, dtype=tf.int32)
                keep = tf.reshape(tf.bitcast(bits, tf.uint8), shape) >= cut
                y = tf.where(keep, x * (256.0 / (256 - cut)), 0.0)
                s = tf.reduce_sum(y * y)
            return tf.reduce_sum(tape.gradient(s, x))

        def seed(k: int) -> Any:
            return tf.constant([k, 7], tf.int32)

        steps = {"keras": keras_step, "bytes": bytes_step}
        for fn in steps.values():
            fn(seed(0)).numpy()
        times: dict[str, list[float]] = {k: [] for k in steps}
        for rep in range(args.reps):
            for key, fn in steps.items():
                t0 = time.perf_counter()
                fn(seed(rep + 1)).numpy()
                times[key].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        out.append({"shape": list(shape), "rate": rate, "median_s": med, "times_s": times})
        rows.append(["x".join(map(str, shape)), 1000 * med["keras"], 1000 * med["bytes"],
                     med["keras"] / med["bytes"]])
    C.print_table(["input", "Keras dropout fwd+bwd ms", "byte mask ms", "speed-up"], rows,
                  title=f"dropout rate {rate}, medians of {args.reps}")
    path = C.write_results("profile_dropout", {"results": out})
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
