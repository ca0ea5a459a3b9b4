"""Seed spread of the demo pipeline's headline metrics: one full ``dvc repro`` per seed.

For each seed of ``--seeds`` (default 0 1 2) the script makes a copy of the repository
(``git clone --local`` of HEAD, the working ``params.yaml`` and ``dvc.yaml`` over it, no
``dvc.lock``; see ``_demo_runner.py``) under ``$MAMMO_BENCH_WORK/demo_spread/``, sets every
stage's training seed in the copy's ``params.yaml`` (``breastseg.train.seed``,
``massseg.train.seed``, ``massclass.train.seed``), writes ``data/raw`` there with
``mammo synth`` (default arguments, i.e. what ``data.dvc`` tracks, unless ``--data-seeds``,
``--cases``, ``--size`` or ``--style`` say otherwise), runs ``dvc repro`` with the repository's
``.venv`` and collects ``metrics/{breastseg,massseg,massclass}.json``.

Reported per headline metric: mean, sd (n-1), min and max over the seeds, next to the demo's
targets (breast Dice >= 0.97, mass Dice >= 0.80, case ROC AUC >= 0.90 with its 95% CI low
>= 0.75), and whether every seed clears each target; per run the wall time and CPU time of
``dvc repro`` (and of each stage), with the load average before and after (the machine may be
shared: compare CPU times across runs, not wall times).

A run takes about 10-15 minutes on 2 cores. The script is resumable: the results file is
rewritten after every seed and a seed already in it is skipped (``--force`` re-runs it); an
interrupted run's copy is kept and ``dvc repro`` continues there from its last finished stage
(that run's times then cover only the continuation; it is flagged ``resumed``). Copies are
deleted after a successful run unless ``--keep``.

By default (``--code copy``) the stages run the committed code of the copy (``PYTHONPATH`` =
its ``packages/*/src``), not the working tree's; ``--code venv`` runs what ``.venv`` has
installed (this checkout's working tree, editable).

Usage::

    .venv/bin/python bench/demo_spread.py --dry-run          # print the commands only
    .venv/bin/python bench/demo_spread.py                    # seeds 0 1 2 (~30-45 min)
    .venv/bin/python bench/demo_spread.py --seeds 3 4        # more seeds, same results file
    .venv/bin/python bench/demo_spread.py --seeds 0 1 2 --data-seeds   # vary the data too
    # seed 0 is this checkout's own demo run (metrics/*.json, dvc.lock), seeds 1 2 are re-run:
    .venv/bin/python bench/demo_spread.py --name demo_spread_300 --checkout 0 --seeds 0 1 2

``--checkout SEED --metrics-dir DIR --note TEXT`` records the ``metrics/*.json`` of DIR instead
(whose ``params.yaml`` must train with SEED; no ``dvc status`` check: the note says how they were
made, e.g. a kept run's model refitted with ``massseg refit-fp`` and re-predicted).

``--checkout SEED`` saves one run (about an hour on the slower 2-core machines): it records the
checkout's ``metrics/*.json`` as the run of training seed SEED instead of repeating it, after
checking that ``params.yaml`` trains every stage with that seed and that ``dvc status`` reports
the pipeline up to date (so the metrics are what the committed code and data produce). Its wall
and CPU times are not known (``null``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _demo_runner as R

NAME = "demo_spread"
#: The training seeds of every stage.
TRAIN_SEED_KEYS = ("breastseg.train.seed", "massseg.train.seed", "massclass.train.seed")


def run_key(seed: int, args: argparse.Namespace) -> str:
    """Results key of one run: ``train0``, ``train0_data0``, ``train0_film_c48_256x192``..."""
    key = f"train{seed}" + (f"_data{seed}" if args.data_seeds else "")
    key += "" if args.style is None else f"_{args.style}"
    key += "" if args.cases is None else f"_c{args.cases}"
    return key + ("" if args.size is None else f"_{args.size}")


def run_group(data_seeds: bool, style: str | None, cases: int | None, size: str | None) -> str:
    """Which runs are summarised together: same data settings, training seeds vary."""
    parts = ["data varies with the seed" if data_seeds else "data fixed"]
    parts += [f"{k} {v}" for k, v in (("style", style), ("cases", cases), ("size", size))
              if v is not None]
    return ", ".join(parts)


def run_one(seed: int, args: argparse.Namespace, runner: R.Runner) -> dict[str, Any]:
    """One full pipeline run in its copy; returns its metrics, times and settings."""
    data_seed = seed if args.data_seeds else None
    key = run_key(seed, args)
    copy = args.work / key
    resumed = False
    if copy.exists() and (args.force or not (copy / ".git").exists()):
        runner.note(f"remove the previous copy {copy}")
        if not runner.dry_run:
            shutil.rmtree(copy)
    if copy.exists():
        resumed = True
        R.log(f"{key}: continuing in the existing copy {copy}")
    else:
        R.make_copy(copy, runner)
    env = R.copy_env(copy, args.code)
    updates = dict.fromkeys(TRAIN_SEED_KEYS, seed)
    R.set_params(copy / "params.yaml", updates, runner)
    synth_rec = None
    if runner.dry_run or not (copy / "data" / "raw").exists():
        if args.style is not None and not runner.dry_run and not R.synth_has_style(env):
            raise SystemExit("mammo synth has no --style option in this code "
                             f"(--code {args.code}); drop --style or wait for it")
        synth_rec = runner.run(
            R.synth_command("data/raw", cases=args.cases, seed=data_seed, size=args.size,
                            style=args.style),
            cwd=copy, env=env, name="synth")
    repro = R.dvc_repro(copy, env, runner)
    if runner.dry_run:
        return {}
    metrics = R.read_metrics(copy)
    record = {
        "seed": seed,
        "group": run_group(args.data_seeds, args.style, args.cases, args.size),
        "train_seed_keys": list(TRAIN_SEED_KEYS),
        "data": {"seed": data_seed, "cases": args.cases, "size": args.size,
                 "style": args.style, "default_synth_arguments": data_seed is None
                 and args.cases is None and args.size is None and args.style is None},
        "code": args.code,
        "copy": str(copy),
        "copy_git": R.git_state(copy),
        "resumed": resumed,
        "metrics": metrics,
        "dvc_repro": vars(repro),
        "synth": vars(synth_rec) if synth_rec else None,
        "wall_s": repro.wall_s,
        "cpu_s": repro.cpu_s,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if not args.keep:
        shutil.rmtree(copy)
    return record


def checkout_run(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """This checkout's own demo run as the run of training seed ``seed`` (no re-run).

    Raises:
        SystemExit: When ``params.yaml`` trains a stage with another seed, a metrics file is
            missing or ``dvc status`` does not report the pipeline up to date.
    """
    root = (args.metrics_dir or R.REPO).resolve()
    params = R.read_params(root / "params.yaml")
    wrong = {k: R._dotted(params, k) for k in TRAIN_SEED_KEYS if R._dotted(params, k) != seed}
    if wrong:
        raise SystemExit(f"--checkout {seed}: {root / 'params.yaml'} trains with other seeds: "
                         f"{wrong}; run that seed in a copy instead (drop --checkout)")
    if root == R.REPO.resolve():
        status = subprocess.run([str(R.VENV_BIN / "dvc"), "status", "-q"], cwd=R.REPO,
                                env={**os.environ, "DVC_NO_ANALYTICS": "1"}, check=False,
                                capture_output=True, text=True)
        if status.returncode != 0:
            raise SystemExit("--checkout: `dvc status` reports changed stages or data; run "
                             "`dvc repro` first (or drop --checkout)\n" + status.stdout[-2000:])
    metrics = R.read_metrics(root)
    missing = [k for k, v in metrics.items() if v is None]
    if missing:
        raise SystemExit(f"--checkout: metrics missing in {root / 'metrics'}: {missing}")
    return {
        "seed": seed,
        "group": run_group(False, None, None, None),
        "train_seed_keys": list(TRAIN_SEED_KEYS),
        "data": {"seed": None, "cases": None, "size": None, "style": None,
                 "default_synth_arguments": True},
        "code": "checkout",
        "copy": None,
        "copy_git": R.git_state(R.REPO),
        "resumed": False,
        "from_checkout": (
            "metrics/*.json of this checkout (dvc status: up to date), not re-run"
            if root == R.REPO.resolve() else
            f"metrics/*.json of {root} (its params.yaml; not a DVC run: {args.note or 'no note'})"
        ),
        "metrics": metrics,
        "dvc_repro": None,
        "synth": None,
        "wall_s": None,
        "cpu_s": None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def summarize(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric: n, mean, sd, min, max over the runs, target, every run clears it."""
    out = []
    for m in R.METRICS:
        vals = [r["metrics"].get(m.name) for r in runs.values()]
        got = [v for v in vals if v is not None]
        row: dict[str, Any] = {
            "metric": m.name, "label": m.label, "file": m.file, "key": m.key, "n": len(got),
            "n_missing": len(vals) - len(got),
            "mean": statistics.fmean(got) if got else None,
            "sd": statistics.stdev(got) if len(got) > 1 else None,
            "min": min(got) if got else None, "max": max(got) if got else None,
            "values": dict(zip(runs, vals, strict=True)),
            "target": m.target,
        }
        if m.target is not None:
            row["runs_clearing"] = sum(v is not None and v >= m.target for v in vals)
            row["all_clear"] = bool(vals) and row["runs_clearing"] == len(vals)
        out.append(row)
    return out


def summarize_groups(runs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """:func:`summarize` of each group of runs (same data settings)."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for key, run in runs.items():
        groups.setdefault(run.get("group", "?"), {})[key] = run
    return {g: summarize(members) for g, members in groups.items()}


def _payload(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"runs": runs, "summary_by_group": summarize_groups(runs),
            "targets": {m.name: m.target for m in R.METRICS if m.target is not None}}


def _times(run: dict[str, Any]) -> list[Any]:
    """Wall and CPU minutes and load averages of a run (``None`` for a ``--checkout`` run)."""
    repro = run.get("dvc_repro")
    if not repro:
        return [None, None, "checkout"]
    return [run["wall_s"] / 60, run["cpu_s"] / 60,
            f"{repro['loadavg_start'][0]:.1f}/{repro['loadavg_end'][0]:.1f}"]


def print_summary(runs: dict[str, dict[str, Any]], summary: list[dict[str, Any]]) -> None:
    """The spread table and the per-run times."""
    R.print_table(
        ["metric (test set)", "n", "mean", "sd", "min", "max", "target", "every run clears"],
        [[s["label"], s["n"], s["mean"], s["sd"], s["min"], s["max"],
          None if s["target"] is None else f">= {s['target']}",
          s.get("all_clear", "")] for s in summary],
        title=f"Demo pipeline over {len(runs)} runs: {', '.join(runs)}")
    R.print_table(
        ["run", *(m.label for m in R.METRICS if m.target is not None), "wall min", "CPU min",
         "load start/end", "resumed"],
        [[k, *(r["metrics"].get(m.name) for m in R.METRICS if m.target is not None),
          *_times(r), r["resumed"]] for k, r in runs.items()],
        title="Per run (dvc repro)")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the missing seeds, print and write the summary."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="training seeds (one full pipeline run each)")
    p.add_argument("--data-seeds", action="store_true",
                   help="also use each seed as the mammo synth seed (default: data fixed)")
    p.add_argument("--cases", type=int, default=None, help="mammo synth --cases (default: its)")
    p.add_argument("--size", default=None, help="mammo synth --size ROWSxCOLS (default: its)")
    p.add_argument("--style", default=None, help="mammo synth --style (film|digital|mixed)")
    p.add_argument("--code", choices=("copy", "venv"), default="copy",
                   help="copy: the copy's committed packages (PYTHONPATH); venv: the working "
                        "tree's (what .venv has installed)")
    p.add_argument("--work", type=Path, default=R.WORK_DIR / NAME, help="where the copies go")
    p.add_argument("--force", action="store_true", help="re-run seeds already in the results")
    p.add_argument("--keep", action="store_true", help="keep each copy after its run")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--name", default=NAME,
                   help=f"results file bench/results/<name>.json (default: {NAME})")
    p.add_argument("--checkout", type=int, default=None, metavar="SEED",
                   help="record this checkout's metrics/*.json as the run of training seed "
                        "SEED instead of re-running it (params.yaml must train with SEED and "
                        "dvc status be clean)")
    p.add_argument("--metrics-dir", type=Path, default=None,
                   help="with --checkout: read metrics/*.json and params.yaml here instead of "
                        "this checkout (no dvc status check; say how they were made in --note)")
    p.add_argument("--note", default=None, help="with --metrics-dir: how its metrics were made")
    args = p.parse_args(argv)
    if args.metrics_dir is not None and args.checkout is None:
        p.error("--metrics-dir goes with --checkout SEED")
    if args.checkout is not None and (args.data_seeds or args.style or args.cases or args.size):
        p.error("--checkout records the default demo; it does not combine with --data-seeds, "
                "--style, --cases or --size")
    args.work = args.work.resolve()

    runner = R.Runner(dry_run=args.dry_run, log_dir=args.work / "logs")
    previous = R.load_results(args.name)
    runs: dict[str, dict[str, Any]] = dict(previous.get("runs", {}))
    todo = []
    for seed in args.seeds:
        key = run_key(seed, args)
        if key in runs and not args.force:
            R.log(f"{key}: in {R.results_path(args.name)} already, skipped (--force re-runs it)")
        else:
            todo.append((seed, key))
    R.log(f"{len(todo)} run(s) to do: {', '.join(k for _, k in todo) or 'none'}"
          + ("  [dry run]" if args.dry_run else ""))
    if args.dry_run and todo:
        R.dry_run_preamble(args.code, args.style is not None)
    for i, (seed, key) in enumerate(todo, 1):
        R.log(f"run {i}/{len(todo)}: {key}")
        if args.dry_run:
            print(f"\n## {key}", flush=True)
        if seed == args.checkout:
            record = {} if args.dry_run else checkout_run(seed, args)
            runner.note(f"{key}: this checkout's metrics/*.json, not re-run")
        else:
            record = run_one(seed, args, runner)
        if args.dry_run:
            continue
        runs[key] = record
        R.log(f"{key}: " + ", ".join(f"{k}={v:.3f}" for k, v in record["metrics"].items()
                                     if v is not None)
              + ("" if record["wall_s"] is None else f"; {record['wall_s'] / 60:.1f} min"))
        R.write_results(args.name, _payload(runs))
    if args.dry_run:
        return
    selected = {k: runs[k] for k in (run_key(s, args) for s in args.seeds) if k in runs}
    if selected:
        print_summary(selected, summarize(selected))
    path = R.write_results(args.name, _payload(runs))
    R.log(f"wrote {path} ({len(runs)} run(s) in all; the table above: the --seeds asked for)")


if __name__ == "__main__":
    main()
