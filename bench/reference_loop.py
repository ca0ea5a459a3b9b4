"""The reference's way of predicting versus ours, side by side, same networks and images.

``reference`` (the headline): the reference's test loop as its notebooks wrote it (the
``testGenerator`` / ``predict_generator`` / ``saveResult`` pattern of the U-Net code they build
on), with a folder of PNG files (``mass_seg_08/test/mg/0.png, 1.png, ...``): load the
``.keras`` model, then **one** ``model.predict(generator, steps=n)`` call over a Python
generator that yields batches of one image (per file: read the PNG (8-bit), scale to [0, 1],
resize to the network input with skimage, add batch and channel axes), then, per result,
threshold at 0.5 and write the mask PNG into ``pred/``.

``reference_per_image`` (a labelled extra, the loop this script measured before issue 16): the
same per-file steps, but one ``model.predict(x)`` call per image.

``ours``: ``massseg.predict.predict`` (what ``massseg predict`` runs) on a breast store holding
the same images: load the model folder, fold its BatchNorms into the convolutions
(``mammo_common.keras.deployment.optimize``), prepare each batch of 4 in float32 (scale,
bilinear resize), ``predict_on_batch``, resize back, threshold, remove objects < 30 px, write the
masses store (probabilities as float16 and masks, atomically). ``ours_unfolded`` is the same with
``fold_batchnorm=False`` (the network exactly as the reference runs it); ``ours_bf16`` with
``precision="bfloat16"``. The breast network (unet5l at 1024x768) goes through the same
function: ``breastseg predict`` runs the same ``inference_model`` and ``predict_probabilities``
code on it, but also post-processes the breast mask and crops the image for the mass stage,
which the reference's loop does not do, so the massseg path is the like-for-like one.

Every way is timed whole (model load included, as each is one run), in rotating order in one
process after one untimed run of each; process CPU time and the load average before each run
are recorded too. Ratio = reference / way (issue 16's target: >= 1.5 for ``ours`` at 640x640 in
float32). ``network_only``: after the ways, the same images through the loaded network alone
(``predict_on_batch``, batches of 4, already prepared, no I/O), unfolded and folded, float32:
the floor every way pays, hence the most any float32 way can gain.

Usage::

    python bench/reference_loop.py --quick   # unet5l f=16 at 256x256, 16 images
    python bench/reference_loop.py           # unetpp_xception 640x640, unet5l f=16 1024x768, 16
"""

from __future__ import annotations

import argparse
import importlib
import os
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


def _reference_setup(model_file: Path, folder: Path, arch: str) -> tuple[Any, list[Path], Path]:
    import keras

    # the network's module registers its classes, as the notebooks' model imports did
    importlib.import_module(f"massseg.models.{arch}")
    model = keras.saving.load_model(model_file, compile=False)
    pred_dir = folder / "pred"
    shutil.rmtree(pred_dir, ignore_errors=True)
    pred_dir.mkdir()
    files = sorted((folder / "mg").glob("*.png"), key=lambda p: int(p.stem))
    return model, files, pred_dir


def _reference_image(path: Path, input_size: tuple[int, int, int]) -> Any:
    """One file as the notebooks' generator prepared it: (1, rows, cols, channels) float64."""
    import numpy as np
    import skimage.io
    import skimage.transform

    rows, cols, ch = input_size
    img = skimage.io.imread(path).astype(np.float64) / 255.0
    img = skimage.transform.resize(img, (rows, cols))
    return np.repeat(img[None, ..., None], ch, axis=-1)


def _save_mask(prob: Any, path: Path) -> None:
    import numpy as np
    import skimage.io

    mask = ((prob[..., 0] > 0.5) * 255).astype(np.uint8)
    skimage.io.imsave(path, mask, check_contrast=False)


def reference_run(
    model_file: Path, folder: Path, input_size: tuple[int, int, int], arch: str
) -> None:
    """The notebooks' loop: one ``model.predict`` over a batch-of-one generator, then save."""
    model, files, pred_dir = _reference_setup(model_file, folder, arch)

    def test_generator():
        for f in files:  # Keras 3 wants a tuple where tf.keras 2 took the bare array
            yield (_reference_image(f, input_size),)

    results = model.predict(test_generator(), steps=len(files), verbose=0)
    for f, prob in zip(files, results, strict=True):
        _save_mask(prob, pred_dir / f.name)


def reference_per_image_run(
    model_file: Path, folder: Path, input_size: tuple[int, int, int], arch: str
) -> None:
    """The labelled extra: one ``model.predict`` call per PNG file."""
    model, files, pred_dir = _reference_setup(model_file, folder, arch)
    for f in files:
        prob = model.predict(_reference_image(f, input_size), verbose=0)
        _save_mask(prob[0], pred_dir / f.name)


def ours_run(model_dir: Path, breast: Path, out: Path, **settings: Any) -> None:
    from massseg.config import PredictConfig
    from massseg.predict import predict

    predict(PredictConfig(models=[model_dir], data=breast, out=out, overwrite=True, **settings))


REFERENCES = {
    "reference": reference_run,
    "reference_per_image": reference_per_image_run,
}
WAYS = {
    "ours": {},
    "ours_unfolded": {"fold_batchnorm": False},
    "ours_bf16": {"precision": "bfloat16"},
}
LABELS = {
    "reference": "reference (one predict over a batch-of-one generator)",
    "reference_per_image": "extra: per-image predict loop",
}
# the reference's network sizes (rows, cols); --quick runs unet5l at 256x256
FULL_SIZES = {"unetpp_xception": (640, 640), "unet5l": (1024, 768)}


def network_only(model_dir: Path, shape: tuple[int, int, int], n: int, reps: int) -> dict:
    """``n`` prepared images through the loaded network alone, unfolded vs folded (float32)."""
    import keras
    import numpy as np

    from mammo_common.keras.deployment.model_folder import load_model_folder
    from mammo_common.keras.deployment.optimize import inference_model
    from massseg.models import MODEL_NAMES

    model = load_model_folder(model_dir, "massseg", known_architectures=MODEL_NAMES)[0]
    nets = {"unfolded": model, "folded": inference_model(model)[0]}
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)

    def run(net: Any) -> None:
        for _ in range(0, n, 4):
            net.predict_on_batch(x)

    times: dict[str, list[float]] = {k: [] for k in nets}
    cpu: dict[str, list[float]] = {k: [] for k in nets}
    for net in nets.values():
        run(net)
    for r in range(reps):
        for k in list(nets)[r % 2 :] + list(nets)[: r % 2]:
            c0, t0 = time.process_time(), time.perf_counter()
            run(nets[k])
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    del nets, model
    keras.backend.clear_session()
    return {k: C.summarize(v) | {"cpu_s": C.summarize(cpu[k])} for k, v in times.items()}


def save(args: argparse.Namespace, reps: int, results: dict[str, Any]) -> Path:
    return C.write_results(
        args.name or ("reference_loop_quick" if args.quick else "reference_loop"),
        {
            "mode": "quick" if args.quick else "full",
            "n_images": args.n,
            "reps": reps,
            "float32_target_ratio_640": 1.5,
            "results": results,
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=16, help="images")
    p.add_argument("--reps", type=int, default=None, help="timed runs of each (3)")
    p.add_argument(
        "--archs",
        default=None,
        help="quick: unet5l; full: unetpp_xception,unet5l (each at its own size)",
    )
    p.add_argument("--name", default=None, help="results name (default reference_loop[_quick])")
    p.add_argument(
        "--ways",
        default="reference_per_image,ours,ours_unfolded,ours_bf16",
        help=f"variants besides the reference: {', '.join([*list(REFERENCES)[1:], *WAYS])}",
    )
    p.add_argument("--no-network-only", action="store_true", help="skip the network-only floor")
    args = p.parse_args()
    ways = args.ways.split(",") if args.ways else []
    known = set(REFERENCES) | set(WAYS)
    if set(ways) - known:
        raise SystemExit(f"unknown ways {sorted(set(ways) - known)}; known {sorted(known)}")
    reps = args.reps or 3
    archs = (args.archs or ("unet5l" if args.quick else "unetpp_xception,unet5l")).split(",")
    work = C.WORK_DIR
    mg = D.mammograms_store(4, (512, 384))

    import keras

    from massseg.models import build_model

    results: dict[str, Any] = {}
    rows = []
    for arch in archs:
        size = (256, 256) if args.quick else FULL_SIZES[arch]
        tag = f"{size[0]}x{size[1]}"
        base = D.breast_store(mg, size)
        breast = D.replicate_breast_store(base, args.n)
        folder = work / f"mass_seg_08_{tag}_n{args.n}" / "test"
        export_png_folder(breast, folder)
        shape = (*size, 1 if arch == "unet5l" else 3)
        model_dir = work / f"models_ref_{tag}" / "massseg" / arch / "fold_1"
        if not (model_dir / "model.keras").exists():
            kw = {"filters": 16} if arch == "unet5l" else {}
            D.save_random_model(
                "massseg", arch, build_model(arch, input_shape=shape, **kw), model_dir
            )
            keras.backend.clear_session()
        out = work / f"ref_ours_{arch}_{tag}.zarr"
        fns = {
            "reference": lambda md=model_dir, s=shape, a=arch, f=folder: reference_run(
                md / "model.keras", f, s, a
            ),
        }
        for way in ways:
            if way in REFERENCES:
                fns[way] = lambda md=model_dir, s=shape, a=arch, f=folder, fn=REFERENCES[way]: fn(
                    md / "model.keras", f, s, a
                )
            else:
                fns[way] = lambda md=model_dir, o=out, b=breast, kw=WAYS[way]: ours_run(
                    md, b, o, **kw
                )
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        load: dict[str, list[float]] = {k: [] for k in fns}
        warm: dict[str, float] = {}
        for k, fn in fns.items():
            C.log(f"{arch} {tag}: warm-up run, {k}")
            t0 = time.perf_counter()
            fn()
            warm[k] = time.perf_counter() - t0
            keras.backend.clear_session()
        names = list(fns)
        for r in range(reps):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                C.log(f"{arch} {tag}: run {r + 1}/{reps}, {k} (load {os.getloadavg()[0]:.2f})")
                load[k].append(os.getloadavg()[0])
                c0, t0 = time.process_time(), time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
                keras.backend.clear_session()
        stats = {
            k: C.summarize(v)
            | {
                "warmup_s": [warm[k]],
                "cpu_s": C.summarize(cpu[k]),
                "loadavg_1min_before_runs": load[k],
            }
            for k, v in times.items()
        }
        ref = stats["reference"]
        others = [k for k in fns if k != "reference"]
        ratio = {k: ref["median_s"] / stats[k]["median_s"] for k in others}
        ratio_min = {k: ref["min_s"] / stats[k]["min_s"] for k in others}
        cpu_ratio = {k: ref["cpu_s"]["median_s"] / stats[k]["cpu_s"]["median_s"] for k in others}
        res: dict[str, Any] = {
            "input": list(shape),
            "runs": stats,
            "ratio_reference_to_way": ratio,
            "ratio_reference_to_way_by_min": ratio_min,
            "cpu_ratio_reference_to_way": cpu_ratio,
        }
        if not args.no_network_only:
            C.log(f"{arch} {tag}: network only, unfolded vs folded")
            net = network_only(model_dir, shape, args.n, reps)
            res["network_only"] = net
            res["ratio_reference_to_network_only"] = {
                k: ref["median_s"] / v["median_s"] for k, v in net.items()
            }
            res["ratio_reference_to_network_only_by_min"] = {
                k: ref["min_s"] / v["min_s"] for k, v in net.items()
            }
        results[f"{arch}_{tag}"] = res
        save(args, reps, results)  # after each network: an interrupted run keeps what it has
        for k in fns:
            s = stats[k]
            rows.append(
                [
                    f"{arch} {tag}",
                    LABELS.get(k, k),
                    s["median_s"],
                    s["min_s"],
                    s["median_s"] / args.n,
                    ratio.get(k, ""),
                    ratio_min.get(k, ""),
                    s["cpu_s"]["median_s"],
                    cpu_ratio.get(k, ""),
                ]
            )
        for k, v in res.get("network_only", {}).items():
            rows.append(
                [
                    f"{arch} {tag}",
                    f"network only, {k}",
                    v["median_s"],
                    v["min_s"],
                    v["median_s"] / args.n,
                    res["ratio_reference_to_network_only"][k],
                    res["ratio_reference_to_network_only_by_min"][k],
                    v["cpu_s"]["median_s"],
                    "",
                ]
            )
    C.print_table(
        [
            "network",
            "way",
            "run s (median)",
            "run s (min)",
            "s/image",
            "ref/way (median)",
            "ref/way (min)",
            "CPU s",
            "CPU ratio",
        ],
        rows,
        title=f"{args.n} images, {reps} timed runs each (rotating order)",
    )
    C.log(f"wrote {save(args, reps, results)}")


if __name__ == "__main__":
    main()
