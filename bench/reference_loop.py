"""The reference's way of predicting versus ours, side by side, same networks and images.

``reference`` (printed as "reference (per-image predict)"): a labelled variant of the
reference's test loop, with a folder of PNG files (``mass_seg_08/test/mg/0.png, 1.png, ...``):
load the ``.keras`` model, then in a Python loop per file: read the PNG (8-bit), scale to
[0, 1], resize to the network input (skimage), add batch and channel axes, ``model.predict(x)``
on that one image (``verbose=0``), threshold at 0.5 and write the mask PNG into ``pred/``. The
reference's notebook itself calls ``model.predict(generator, n)`` once over a generator of
batches of one image, then thresholds and saves each result (issue 16, item 2); that way is
not measured here.

``ours``: ``massseg.predict.predict`` (what ``massseg predict`` runs) on a breast store holding
the same images: load the model folder, fold its BatchNorms into the convolutions
(``mammo_common.keras.optimize``), stream batches of 4 through ``predict_on_batch``, resize
back, threshold, remove objects < 30 px, write the masses store (probabilities as float16 and
masks, atomically). ``ours_unfolded`` is the same with ``fold_batchnorm=False`` (the network
exactly as the reference runs it); ``ours_bf16`` with ``precision="bfloat16"``.

Every way is timed whole (model load included, as each is one run), in rotating order in one
process after one untimed run of each. Ratio = reference / way (target >= 2 for ``ours``).

Usage::

    python bench/reference_loop.py --quick   # unet5l f=16 at 256x256, 16 images
    python bench/reference_loop.py           # unet5l f=16 and unetpp_xception at 640x640, 16
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import _common as C
import _data as D


def export_png_folder(breast: Path, folder: Path) -> int:
    """Writes the store's images as 8-bit PNGs ``mg/<k>.png`` (the reference's layout)."""
    import numpy as np
    from PIL import Image

    from mammo_common.store import open_store

    store = open_store(breast, "breast")
    mg = folder / "mg"
    if mg.exists():
        return len(list(mg.glob("*.png")))
    mg.mkdir(parents=True)
    images = store.array("images")
    for k in range(len(store)):
        img = np.asarray(images[k]).astype(np.float32)
        img8 = np.round(img / 65535.0 * 255.0).astype(np.uint8)
        Image.fromarray(img8).save(mg / f"{k}.png")
    return len(store)


def reference_run(
    model_file: Path, folder: Path, input_size: tuple[int, int, int], arch: str
) -> None:
    """The notebooks' loop: one ``model.predict`` per PNG file."""
    import importlib

    import keras
    import numpy as np
    import skimage.io
    import skimage.transform

    # the network's module registers its classes, as the notebooks' model imports did
    importlib.import_module(f"massseg.models.{arch}")
    model = keras.saving.load_model(model_file, compile=False)
    pred_dir = folder / "pred"
    shutil.rmtree(pred_dir, ignore_errors=True)
    pred_dir.mkdir()
    files = sorted((folder / "mg").glob("*.png"), key=lambda p: int(p.stem))
    rows, cols, ch = input_size
    for f in files:
        img = skimage.io.imread(f).astype(np.float64) / 255.0
        img = skimage.transform.resize(img, (rows, cols))
        x = np.repeat(img[None, ..., None], ch, axis=-1)
        p = model.predict(x, verbose=0)
        mask = ((p[0, ..., 0] > 0.5) * 255).astype(np.uint8)
        skimage.io.imsave(pred_dir / f.name, mask, check_contrast=False)


def ours_run(model_dir: Path, breast: Path, out: Path, **settings: Any) -> None:
    from massseg.config import PredictConfig
    from massseg.predict import predict

    predict(PredictConfig(models=[model_dir], data=breast, out=out, overwrite=True, **settings))


WAYS = {
    "ours": {},
    "ours_unfolded": {"fold_batchnorm": False},
    "ours_bf16": {"precision": "bfloat16"},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=16, help="images")
    p.add_argument("--reps", type=int, default=None, help="timed runs of each (3)")
    p.add_argument("--archs", default=None, help="quick: unet5l; full: unet5l,unetpp_xception")
    p.add_argument("--name", default=None, help="results name (default reference_loop[_quick])")
    p.add_argument("--ways", default="ours,ours_unfolded,ours_bf16",
                   help=f"our variants besides the reference: {', '.join(WAYS)}")
    args = p.parse_args()
    ways = args.ways.split(",")
    if set(ways) - set(WAYS):
        raise SystemExit(f"unknown ways {sorted(set(ways) - set(WAYS))}; known {list(WAYS)}")
    size = 256 if args.quick else 640
    reps = args.reps or 3
    archs = (args.archs or ("unet5l" if args.quick else "unet5l,unetpp_xception")).split(",")
    work = C.WORK_DIR

    mg = D.mammograms_store(4, (512, 384))
    base = D.breast_store(mg, (size, size))
    breast = D.replicate_breast_store(base, args.n)
    folder = work / f"mass_seg_08_{size}_n{args.n}" / "test"
    export_png_folder(breast, folder)

    import keras

    from massseg.models import build_model

    results: dict[str, Any] = {}
    rows = []
    for arch in archs:
        shape = (size, size, 1 if arch == "unet5l" else 3)
        model_dir = work / f"models_ref_{size}" / "massseg" / arch / "fold_1"
        if not (model_dir / "model.keras").exists():
            kw = {"filters": 16} if arch == "unet5l" else {}
            D.save_random_model("massseg", arch, build_model(arch, input_shape=shape, **kw),
                                model_dir)
            keras.backend.clear_session()
        out = work / f"ref_ours_{arch}_{size}.zarr"
        fns = {
            "reference": lambda md=model_dir, s=shape, a=arch: reference_run(
                md / "model.keras", folder, s, a),
        }
        for way in ways:
            fns[way] = lambda md=model_dir, o=out, kw=WAYS[way]: ours_run(md, breast, o, **kw)
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        warm: dict[str, float] = {}
        for k, fn in fns.items():
            C.log(f"{arch}: warm-up run, {k}")
            t0 = time.perf_counter()
            fn()
            warm[k] = time.perf_counter() - t0
            keras.backend.clear_session()
        names = list(fns)
        for r in range(reps):
            order = names[r % len(names):] + names[:r % len(names)]
            for k in order:
                C.log(f"{arch}: run {r + 1}/{reps}, {k}")
                c0, t0 = time.process_time(), time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
                keras.backend.clear_session()
        stats = {k: C.summarize(v) | {"warmup_s": [warm[k]], "cpu_s": C.summarize(cpu[k])}
                 for k, v in times.items()}
        ref = stats["reference"]
        ratio = {k: ref["median_s"] / stats[k]["median_s"] for k in ways}
        cpu_ratio = {k: ref["cpu_s"]["median_s"] / stats[k]["cpu_s"]["median_s"] for k in ways}
        results[arch] = {"input": list(shape), "runs": stats, "ratio_reference_to_way": ratio,
                         "cpu_ratio_reference_to_way": cpu_ratio}
        for k in fns:
            s = stats[k]
            label = "reference (per-image predict)" if k == "reference" else k
            rows.append([arch, label, s["median_s"], s["spread_pct"], s["median_s"] / args.n,
                         ratio.get(k, ""), s["cpu_s"]["median_s"], cpu_ratio.get(k, "")])
    C.print_table(
        ["network", "way", "run s (median)", "spread %", "s/image", "ratio ref/ours",
         "CPU s", "CPU ratio"], rows,
        title=f"{args.n} images at {size}x{size}, {reps} timed runs each (rotating order)",
    )
    path = C.write_results(
        args.name or ("reference_loop_quick" if args.quick else "reference_loop"),
        {"mode": "quick" if args.quick else "full", "size": size, "n_images": args.n,
         "reps": reps, "results": results, "target_ratio": 2.0},
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
