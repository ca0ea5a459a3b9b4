"""Whole-cascade inference per mammogram, phase by phase, in float32 and bfloat16.

Per mammogram, exactly what the three stages' ``predict`` do, with the same library functions,
timed phase by phase:

===============  ==================================================================
read             ``MammogramsStore.load`` (native uint16 image and mass mask)
pre_breast       ``prepare_image`` to 1024x768x1
net_breast       unet5l f=16 1024x768 ``predict_on_batch``
post_breast      resize the map to native, ``breast_mask``, ``crop_case`` to 640x640
pre_mass         ``prepare_image`` to 640x640x3
net_mass         unetpp_xception 640x640 ``predict_on_batch``
post_mass        ``massseg.predict.postprocess`` (threshold, objects < 30 px removed)
pre_cls          components and ``crop_roi`` 224x224x3 per mass
net_cls          VGG16 classifier ``predict_on_batch`` over the mammogram's ROIs
write            ``StackedStoreWriter.write_case`` into a breast and a masses store
===============  ==================================================================

The networks have random weights (speed does not depend on them). Their masks are meaningless,
so the classifier's ROIs are cut around the case's ground-truth masses (1-2 per synthetic
mammogram), as many as a trained segmenter would find; when the random breast mask cuts a mass
off, the whole image is cropped instead.

Variants (``--variants``), each in its own child process (so each peak RSS is its own,
``ru_maxrss``), all with the same weights (saved by the first):

* ``unfolded``: float32, the networks as trained (what predict did before BatchNorm folding);
* ``float32``: what the stages' ``predict`` now run by default: ``inference_model`` with the
  BatchNorms folded into the convolutions (``mammo_common.keras.deployment.optimize``);
* ``bfloat16``: the same with ``--precision bfloat16``.

The first mammogram is warm-up (traces each network), the rest are timed. The maps of every
variant are compared with the ``unfolded`` ones (same weights, same images).

Usage::

    python bench/cascade_inference.py --quick   # native 1024x768, 3 timed mammograms
    python bench/cascade_inference.py           # native 2048x1536, 8 timed mammograms
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C
import _data as D

PHASES = ["read", "pre_breast", "net_breast", "post_breast", "pre_mass", "net_mass",
          "post_mass", "pre_cls", "net_cls", "write"]
NETS = ["net_breast", "net_mass", "net_cls"]
BREAST_IN = (1024, 768)
MASS_IN = (640, 640)
CLS_IN = 224


def worker(args: argparse.Namespace) -> None:
    import numpy as np

    rss0 = C.peak_rss_mib()
    import keras

    from breastseg.models import build_model as build_breast
    from breastseg.segment import breast_mask, crop_case
    from mammo_common.keras.deployment.optimize import inference_model
    from mammo_common.keras.training.data import prepare_image
    from mammo_common.postprocess import components
    from mammo_common.schema import Producer
    from mammo_common.store import StackedStoreWriter, open_store
    from mammo_common.transforms import resize
    from massclass.models import build_model as build_cls
    from massclass.rois import crop_roi
    from massseg.models import build_model as build_mass
    from massseg.predict import postprocess

    work = Path(args.work)
    keras.utils.set_random_seed(0)
    precision = "bfloat16" if args.variant == "bfloat16" else "float32"
    t0 = time.perf_counter()
    nets = {
        "breast": build_breast("unet5l", input_shape=(*BREAST_IN, 1), filters=16),
        "mass": build_mass("unetpp_xception", input_shape=(*MASS_IN, 3)),
        "cls": build_cls("vgg16", input_shape=(CLS_IN, CLS_IN, 3), weights=None),
    }
    for name, net in nets.items():
        wfile = work / f"cascade_{name}.weights.h5"
        if not args.reuse_weights:
            net.save_weights(wfile)
        else:
            net.load_weights(wfile)
    if args.variant != "unfolded":
        nets = {name: inference_model(net, precision=precision)[0] for name, net in nets.items()}
    build_s = time.perf_counter() - t0
    rss_models = C.peak_rss_mib()

    store = open_store(args.data, "mammograms")
    ids = store.case_ids[: args.n + 1]
    producer = Producer(package="bench", version="0", command="cascade_inference")
    sw = C.Stopwatch()
    per_case: list[dict[str, float]] = []
    per_case_cpu: list[dict[str, float]] = []
    probs_out: dict[str, Any] = {}
    n_rois = []
    common = {"n_cases": len(ids), "producer": producer, "parents": [store.as_parent()],
              "with_mass_masks": True, "overwrite": True}
    breast_w = StackedStoreWriter(work / f"casc_breast_{args.variant}.zarr", kind="breast",
                                  image_size=MASS_IN, meta_fields={"method": "unet"}, **common)
    masses_w = StackedStoreWriter(work / f"casc_masses_{args.variant}.zarr", kind="masses",
                                  image_size=MASS_IN, meta_fields={"threshold": 0.5,
                                  "min_object_pixels": 30, "largest_component": False,
                                  "tta": False}, **common)
    with breast_w as bw, masses_w as mw:
        for i, cid in enumerate(ids):
            before = {k: len(v) for k, v in sw.times.items()}
            with sw("read"):
                case = store.load(cid)
                image = np.asarray(case.image)
            with sw("pre_breast"):
                x = prepare_image(image, BREAST_IN, 1)[None]
            with sw("net_breast"):
                p = np.asarray(nets["breast"].predict_on_batch(x), np.float32)[0, ..., 0]
            with sw("post_breast"):
                p_native = np.clip(resize(p, image.shape, order=1, anti_aliasing=False), 0, 1)
                bmask = breast_mask(p_native, 0.5)
                if case.mass_mask is not None and not bmask[case.mass_mask > 0].all():
                    # random weights: a mask that cuts a mass off would leave nothing to
                    # classify; crop the whole image instead (same cost)
                    bmask = np.ones_like(bmask)
                cropped = crop_case(image, bmask, case.mass_mask, output_size=MASS_IN,
                                    margin=0.02)
            with sw("pre_mass"):
                xm = prepare_image(cropped.image, MASS_IN, 3)[None]
            with sw("net_mass"):
                pm = np.asarray(nets["mass"].predict_on_batch(xm), np.float32)[0, ..., 0]
            with sw("post_mass"):
                pm = np.clip(resize(pm, cropped.image.shape, order=1, anti_aliasing=False), 0, 1)
                pred = postprocess(pm, 0.5, 30)
            with sw("pre_cls"):
                truth = cropped.mass_mask if cropped.mass_mask is not None else pred
                comps = components(np.asarray(truth) > 0, min_pixels=30)
                img = cropped.image.astype(np.float32)
                img = img / img.max() if img.max() > 0 else img
                rois = np.stack([crop_roi(img, c, size=CLS_IN) for c in comps]) if comps \
                    else np.zeros((0, CLS_IN, CLS_IN, 3), np.float32)
            with sw("net_cls"):
                if len(rois):
                    np.asarray(nets["cls"].predict_on_batch(rois))
            with sw("write"):
                mass_mask = cropped.mass_mask if cropped.mass_mask is not None \
                    else cropped.breast_mask * 0
                arrays = {"images": cropped.image, "breast_masks": cropped.breast_mask,
                          "mass_masks": mass_mask}
                bw.write_case(i, case.record, cropped.transform, **arrays)
                mw.write_case(i, case.record, cropped.transform, **arrays,
                              mass_probs=pm.astype(np.float16), mass_pred=pred)
            row = {k: v[-1] for k, v in sw.times.items() if len(v) > before.get(k, 0)}
            per_case.append(row)
            per_case_cpu.append({k: v[-1] for k, v in sw.cpu.items()
                                 if len(v) > before.get(k, 0)})
            n_rois.append(len(rois))
            if i > 0:
                probs_out[f"breast_{i}"] = p.astype(np.float32)
                probs_out[f"mass_{i}"] = pm.astype(np.float32)
        t_fin = time.perf_counter()
    finalize_s = time.perf_counter() - t_fin
    np.savez_compressed(work / f"cascade_probs_{args.variant}.npz", **probs_out)
    timed = per_case[1:]
    result = {
        "variant": args.variant,
        "precision": precision,
        "build_s": build_s,
        "rss_before_tf_mib": rss0,
        "rss_after_models_mib": rss_models,
        "peak_rss_mib": C.peak_rss_mib(),
        "finalize_s": finalize_s,
        "warmup_case_s": per_case[0],
        "n_timed": len(timed),
        "rois_per_case": n_rois[1:],
        "phases": {ph: C.summarize([c[ph] for c in timed]) for ph in PHASES},
        "total": C.summarize([sum(c.values()) for c in timed]),
        "phases_cpu": {ph: C.summarize([c[ph] for c in per_case_cpu[1:]]) for ph in PHASES},
        "total_cpu": C.summarize([sum(c.values()) for c in per_case_cpu[1:]]),
        "policy": keras.mixed_precision.global_policy().name,
    }
    print("RESULT " + json.dumps(result))


def agreement(work: Path, variant: str, reference: str = "unfolded") -> dict[str, Any]:
    """A variant's maps vs the reference's: max |dp| and Dice of the 0.5-binarised masks."""
    import numpy as np

    a = np.load(work / f"cascade_probs_{reference}.npz")
    b = np.load(work / f"cascade_probs_{variant}.npz")
    out: dict[str, Any] = {}
    for net in ("breast", "mass"):
        keys = [k for k in a.files if k.startswith(net)]
        dmax = max(float(np.abs(a[k] - b[k]).max()) for k in keys)
        dices = []
        for k in keys:
            x, y = a[k] >= 0.5, b[k] >= 0.5
            s = x.sum() + y.sum()
            dices.append(1.0 if s == 0 else 2.0 * float((x & y).sum()) / float(s))
        out[net] = {"max_abs_prob_diff": dmax, "mask_dice_mean": float(np.mean(dices)),
                    "mask_dice_min": float(np.min(dices))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--native", default=None, help="native mammogram size (quick 1024x768)")
    p.add_argument("--n", type=int, default=None, help="timed mammograms (quick 3, 8)")
    p.add_argument("--variants", default="unfolded,float32,bfloat16",
                   help="comma list of unfolded, float32 (folded), bfloat16 (folded)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work", default=str(C.WORK_DIR), help=argparse.SUPPRESS)
    p.add_argument("--reuse-weights", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.n = args.n or (3 if args.quick else 8)
    if args.worker:
        worker(args)
        return
    native = tuple(int(v) for v in (args.native or ("1024x768" if args.quick else "2048x1536"))
                   .split("x"))
    patients = max(2, (args.n + 1 + 2) // 3 + 1)
    mg = D.mammograms_store(patients, native)
    results = {}
    variants = args.variants.split(",")
    unknown = set(variants) - {"unfolded", "float32", "bfloat16"}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}")
    for k, prec in enumerate(variants):
        C.log(f"cascade worker: {prec}")
        cmd = [sys.executable, __file__, "--worker", "--variant", prec, "--data", str(mg),
               "--n", str(args.n), "--work", args.work]
        if k > 0:
            cmd.append("--reuse-weights")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
            raise SystemExit(f"worker {prec} failed (rc {proc.returncode})")
        results[prec] = json.loads(line[len("RESULT "):])
    precs = list(results)
    rows = [[ph] + [1000.0 * results[q]["phases"][ph]["median_s"] for q in precs]
            for ph in PHASES]
    rows.append(["TOTAL per mammogram (median)"]
                + [1000.0 * results[q]["total"]["median_s"] for q in precs])
    rows.append(["total spread %"] + [results[q]["total"]["spread_pct"] for q in precs])
    rows.append(["TOTAL CPU time per mammogram (median, all threads)"]
                + [1000.0 * results[q]["total_cpu"]["median_s"] for q in precs])
    for ph in ("net_breast", "net_mass", "net_cls"):
        rows.append([f"{ph} CPU time"]
                    + [1000.0 * results[q]["phases_cpu"][ph]["median_s"] for q in precs])
    rows.append(["store finalize (once per run), ms"]
                + [1000.0 * results[q]["finalize_s"] for q in precs])
    rows.append(["peak RSS MiB"] + [results[q]["peak_rss_mib"] for q in precs])
    rows.append(["RSS after building models MiB"]
                + [results[q]["rss_after_models_mib"] for q in precs])
    C.print_table(["phase (ms, median)", *precs], rows,
                  title=f"Cascade per mammogram, native {native[0]}x{native[1]}, "
                        f"{args.n} timed mammograms after 1 warm-up")
    agree: dict[str, Any] = {}
    ratios: dict[str, dict[str, float]] = {}
    if "unfolded" in precs:
        base = results["unfolded"]
        for q in precs:
            if q == "unfolded":
                continue
            agree[q] = agreement(Path(args.work), q)
            ratios[q] = {
                "wall": results[q]["total"]["median_s"] / base["total"]["median_s"],
                "cpu": results[q]["total_cpu"]["median_s"] / base["total_cpu"]["median_s"],
                "networks_cpu": sum(results[q]["phases_cpu"][ph]["median_s"] for ph in NETS)
                / sum(base["phases_cpu"][ph]["median_s"] for ph in NETS),
            }
        C.print_table(["variant", "network", "max |p - p_unfolded|", "mask Dice vs unfolded "
                       "(mean)", "(min)"],
                      [[q, k, v["max_abs_prob_diff"], v["mask_dice_mean"], v["mask_dice_min"]]
                       for q, a in agree.items() for k, v in a.items()],
                      title="each variant vs the unfolded float32 networks, same random weights")
        C.print_table(["variant / unfolded", "total (wall)", "total (CPU time)",
                       "three networks (CPU time)"],
                      [[q, r["wall"], r["cpu"], r["networks_cpu"]] for q, r in ratios.items()],
                      title="time ratios, side by side in this run")
    path = C.write_results(
        "cascade_inference_quick" if args.quick else "cascade_inference",
        {"mode": "quick" if args.quick else "full", "native": list(native), "n_timed": args.n,
         "store": str(mg), "results": results, "agreement_vs_unfolded": agree,
         "ratios_vs_unfolded": ratios, "target_s_float32": 1.5},
    )
    C.log(f"wrote {path}")


if __name__ == "__main__":
    main()
