"""Run in a fresh process with KERAS_BACKEND=jax: build every network tiny, forward once.

Prints one JSON object: name -> {"shape", "min", "max", "finite", "seconds"} or {"error"}.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

assert os.environ.get("KERAS_BACKEND") == "jax", "run with KERAS_BACKEND=jax"

import numpy as np  # noqa: E402

# name -> (builder, input shape, kwargs)
SEG = {
    "unet5l": ((64, 64, 1), {"filters": 4}),
    "resunet": ((64, 64, 1), {"filters": (4, 8, 8, 16)}),
    "multiresunet": ((64, 64, 3), {"filters": (4, 8, 8, 16, 16)}),
    "attention_unet": ((64, 64, 3), {"filters": 4}),
    "unetpp": ((64, 64, 3), {"filters": (4, 8, 8, 16, 16)}),
    "unetpp_xception": ((64, 96, 3), {"filters": 2, "weights": None}),
    "unet_xception": ((64, 96, 3), {"start_filters": 2, "weights": None}),
    "unet_vgg16": ((64, 96, 3), {"decoder_filters": (8, 8, 4, 4), "weights": None}),
    "unet_resnet50": ((64, 96, 3), {"decoder_filters": (8, 8, 4, 4), "weights": None}),
    "deeplabv3plus": ((64, 96, 3), {"aspp_filters": 16, "low_level_filters": 8,
                                    "weights": None}),
}


def _build(name: str):
    if name.startswith("massseg:"):
        from massseg.models import build_model

        arch = name.split(":", 1)[1]
        shape, kwargs = SEG[arch]
        return build_model(arch, shape, **kwargs), shape
    if name == "common:unet5l":
        from mammo_common.keras.networks import unet5l

        return unet5l.build((32, 48, 1), filters=2), (32, 48, 1)
    if name.startswith("massclass:"):
        from massclass.models import build_model

        backbone = name.split(":", 1)[1]
        options = {
            "tinycnn": {"backbone_options": {"widths": [4, 8]}},
            # the demo's setting: the eight descriptors and the margin profile
            "descriptors": {"backbone_options": {"profile": True}},
        }.get(backbone, {})
        return build_model(backbone, (32, 32, 3), weights=None, **options), (32, 32, 3)
    raise KeyError(name)


def main(names: list[str]) -> None:
    import keras

    results: dict[str, dict] = {"_backend": {"backend": keras.backend.backend()}}
    rng = np.random.default_rng(0)
    for name in names:
        start = time.perf_counter()
        try:
            keras.utils.set_random_seed(0)
            model, shape = _build(name)
            x = rng.random((2, *shape)).astype("float32")
            y = keras.ops.convert_to_numpy(model(x, training=False))
            results[name] = {
                "shape": list(y.shape), "min": float(y.min()), "max": float(y.max()),
                "finite": bool(np.isfinite(y).all()),
                "seconds": round(time.perf_counter() - start, 2),
            }
            keras.backend.clear_session()
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()[-1500:]}
    # TF-only features refuse clearly under JAX
    for feature in ("export", "strategy"):
        try:
            if feature == "export":
                from mammo_common.keras.deployment.export import export_segmentation
                from mammo_common.keras.networks import unet5l

                export_segmentation(unet5l.build((32, 32, 1), filters=2), "/nonexistent/x")
            else:
                from mammo_common.keras.training.distribute import get_strategy

                get_strategy("mirrored")
            results[f"_{feature}"] = {"error": None}
        except Exception as exc:
            results[f"_{feature}"] = {"error": type(exc).__name__, "message": str(exc)}
    print("JSON:" + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
