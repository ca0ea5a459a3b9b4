"""Shared helpers of ``demo_spread.py`` and ``cross_style.py``: run the demo pipeline in a copy.

A *copy* is a ``git clone --local`` of this repository's HEAD (so ``.dvc/`` and every tracked
file come along) with the working tree's ``params.yaml`` and ``dvc.yaml`` copied over it, no
``dvc.lock`` (every stage runs), DVC's analytics and update check off, and its own ``data/raw``
written by ``mammo synth``. Commands run with the repository's ``.venv/bin`` first on ``PATH``;
with ``code="copy"`` (the default of the scripts) ``PYTHONPATH`` points at the copy's
``packages/*/src``, so the run uses the committed code of HEAD even while the working tree's
packages are being edited (the ``.venv`` installs them editable from the working tree);
``code="venv"`` runs the working tree's code instead.

Also the light results writer used by the three scripts (machine, versions, git state, command
line; unlike ``_common.write_results`` it does not import TensorFlow).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = Path(os.environ.get("MAMMO_BENCH_WORK", "/tmp/mammo-bench"))
VENV_BIN = REPO / ".venv" / "bin"
PACKAGE_SRCS = ("packages/common/src", "packages/breastseg/src", "packages/massseg/src",
                "packages/massclass/src")
#: Distributions whose versions every results file records.
VERSIONED = ("numpy", "scipy", "scikit-learn", "pyyaml", "dvc", "tensorflow", "tensorflow-cpu",
             "keras", "zarr", "mammo-common", "mammo-breastseg", "mammo-massseg",
             "mammo-massclass")


# --------------------------------------------------------------------------- logging, results


def log(msg: str) -> None:
    """Progress message on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def versions(names: Iterable[str] = VERSIONED) -> dict[str, str | None]:
    """Installed versions of ``names`` (distribution names), without importing them."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path = REPO) -> dict[str, Any]:
    """HEAD commit and the paths that differ from it (``git status --porcelain``)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    status = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
              if line]
    return {"commit": git("rev-parse", "HEAD") or None, "modified": status}


def machine_info() -> dict[str, Any]:
    """CPU, cores, load, Python, date: what a wall time needs next to it."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def results_path(name: str) -> Path:
    """``bench/results/<name>.json``."""
    return RESULTS_DIR / f"{name}.json"


def load_results(name: str) -> dict[str, Any]:
    """The results file ``name`` as written before, or ``{}`` (missing or unreadable)."""
    try:
        return json.loads(results_path(name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Writes ``bench/results/<name>.json`` atomically, with command, machine, versions, git."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "git": git_state(),
        **payload,
    }
    path = results_path(name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """Prints (and returns) a Markdown table; floats with 3 decimals, ``None`` as ``n/a``."""
    return _common.print_table(headers, rows, title, fmt=_fmt)


# --------------------------------------------------------------------------- headline metrics


@dataclass(frozen=True)
class Metric:
    """One headline metric of the demo: where it is, and its target if it has one.

    Attributes:
        name: Short name used in the results files.
        label: Human label for tables.
        file: Metrics file relative to the pipeline root.
        key: Dotted key in that file (a list index is a number: ``case.roc_auc_ci.0``).
        target: Lower bound every run should reach, or ``None``.
    """

    name: str
    label: str
    file: str
    key: str
    target: float | None = None


METRICS: tuple[Metric, ...] = (
    Metric("breast_dice", "breast Dice", "metrics/breastseg.json", "dice_mean", 0.97),
    Metric("breast_jaccard", "breast Jaccard", "metrics/breastseg.json", "jaccard_mean"),
    Metric("breast_dice_min", "breast Dice, lowest image", "metrics/breastseg.json", "dice_min"),
    Metric("mass_dice", "mass Dice (per image mean)", "metrics/massseg.json", "dice_mean", 0.80),
    Metric("mass_jaccard", "mass IoU", "metrics/massseg.json", "jaccard_mean"),
    Metric("mass_pixel_auc", "mass pixel AUC", "metrics/massseg.json", "auc_mean"),
    Metric("mass_empty_images_clean", "images without a mass left clean (share)",
           "metrics/massseg.json", "empty_images_clean"),
    Metric("case_accuracy", "case accuracy", "metrics/massclass.json", "case.accuracy"),
    Metric("case_roc_auc", "case ROC AUC", "metrics/massclass.json", "case.roc_auc", 0.90),
    Metric("case_roc_auc_ci_low", "case ROC AUC, 95% CI low", "metrics/massclass.json",
           "case.roc_auc_ci.0", 0.75),
    Metric("case_roc_auc_ci_high", "case ROC AUC, 95% CI high", "metrics/massclass.json",
           "case.roc_auc_ci.1"),
    Metric("case_n_evaluated", "cases evaluated (classification)", "metrics/massclass.json",
           "n_evaluated"),
    Metric("case_mcc", "case Matthews correlation at the operating point",
           "metrics/massclass.json", "case.mcc"),
    Metric("mass_roc_auc", "mass-level ROC AUC (detections on a true mass)",
           "metrics/massclass.json", "mass.roc_auc"),
)


def _dotted(data: Any, key: str) -> Any:
    node = data
    for part in key.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def read_metrics(root: Path) -> dict[str, float | None]:
    """The headline metrics found under ``root`` (``None`` where a file or key is missing)."""
    cache: dict[str, Any] = {}
    out: dict[str, float | None] = {}
    for m in METRICS:
        if m.file not in cache:
            try:
                cache[m.file] = json.loads((root / m.file).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                cache[m.file] = {}
        value = _dotted(cache[m.file], m.key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        out[m.name] = float(value) if ok and value == value else None
    return out


# --------------------------------------------------------------------------- commands


@dataclass
class RunRecord:
    """What one command did.

    Attributes:
        cmd: The command line.
        rc: Exit status (``None`` in a dry run).
        wall_s: Wall time.
        cpu_s: User + system CPU time of the command and all its descendants.
        stage_s: For ``dvc repro``: seconds from each "Running stage" line to the next.
        log: File holding the command's output.
        loadavg_start: 1/5/15-minute load averages when it started.
        loadavg_end: ... and when it ended.
    """

    cmd: str
    rc: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    log: str | None = None
    loadavg_start: list[float] = field(default_factory=list)
    loadavg_end: list[float] = field(default_factory=list)


_STAGE_RE = re.compile(r"Running stage '([^']+)'")


class Runner:
    """Runs (or, dry, prints) commands; streams their output to a log, stage lines to stderr.

    Args:
        dry_run: Print the commands and run nothing.
        log_dir: Where each command's output goes (``<n>_<name>.log``).
    """

    def __init__(self, *, dry_run: bool, log_dir: Path) -> None:
        self.dry_run = dry_run
        self.log_dir = log_dir
        self._n = 0

    def note(self, msg: str) -> None:
        """A step that is not a command (file edits), printed in a dry run, logged otherwise."""
        if self.dry_run:
            print(f"# {msg}", flush=True)
        else:
            log(msg)

    def run(
        self,
        cmd: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        name: str = "cmd",
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
    ) -> RunRecord:
        """Runs ``cmd`` in ``cwd``; raises ``SystemExit`` on failure when ``check``."""
        text = shlex.join([str(c) for c in cmd])
        rec = RunRecord(cmd=text)
        if self.dry_run:
            print(f"(cd {shlex.quote(str(cwd))} && {text})", flush=True)
            return rec
        self._n += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{time.strftime('%Y%m%d-%H%M%S')}_{self._n:02d}_{name}.log"
        rec.log = str(log_path)
        log(f"$ {text}   (in {cwd}; output: {log_path})")
        rec.loadavg_start = list(os.getloadavg())
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        stage, stage_t0 = None, t0
        with log_path.open("w", encoding="utf-8") as fh:
            fh.write(f"$ {text}\n# cwd {cwd}\n")
            proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=dict(env or os.environ),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace")
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    fh.write(line)
                    fh.flush()
                    found = _STAGE_RE.search(line)
                    if found:
                        now = time.perf_counter()
                        if stage is not None:
                            rec.stage_s[stage] = now - stage_t0
                        stage, stage_t0 = found.group(1), now
                        log(f"  stage {stage} (after {now - t0:.0f} s)")
                    if on_line is not None:
                        on_line(line)
                rc = proc.wait()
            except KeyboardInterrupt:
                proc.wait()  # the child got the same SIGINT; let it clean up
                raise
        rec.wall_s = time.perf_counter() - t0
        if stage is not None:
            rec.stage_s[stage] = time.perf_counter() - stage_t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rec.cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        rec.loadavg_end = list(os.getloadavg())
        rec.rc = rc
        log(f"  exit {rc} after {rec.wall_s:.0f} s wall, {rec.cpu_s:.0f} s CPU")
        if rc != 0 and check:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            print("\n".join(tail), file=sys.stderr)
            raise SystemExit(f"command failed (exit {rc}): {text}\nfull output: {log_path}")
        return rec


# --------------------------------------------------------------------------- the copy


def copy_env(copy: Path, code: str) -> dict[str, str]:
    """Environment of commands run in ``copy``: ``.venv/bin`` first; the copy's code or not.

    Args:
        copy: The copy's root.
        code: ``copy`` (``PYTHONPATH`` = the copy's ``packages/*/src``) or ``venv`` (the code
            the ``.venv`` has installed: this checkout's working tree).
    """
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env.pop("PYTHONHOME", None)
    if code == "copy":
        env["PYTHONPATH"] = os.pathsep.join(str(copy / p) for p in PACKAGE_SRCS)
    else:
        env.pop("PYTHONPATH", None)
    env.update(DVC_NO_ANALYTICS="1", MAMMO_NO_PROGRESS="1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1")
    return env


def dry_run_preamble(code: str, style_needed: bool) -> None:
    """What a dry run cannot show as commands: the environment, and whether --style exists."""
    src = "<copy>/" + ":<copy>/".join(PACKAGE_SRCS)
    print(f"# every command runs with PATH={VENV_BIN}:$PATH, DVC_NO_ANALYTICS=1, "
          f"MAMMO_NO_PROGRESS=1" + (f", PYTHONPATH={src}" if code == "copy" else
                                    " (no PYTHONPATH: .venv's editable working tree)"),
          flush=True)
    if style_needed:
        here = synth_has_style(copy_env(REPO, "venv"))
        print(f"# mammo synth --style: {'available' if here else 'NOT available yet'} in this "
              "working tree" + ("; the copy's committed code must have it too (--code copy)"
                                if code == "copy" else ""), flush=True)


def make_copy(dest: Path, runner: Runner) -> None:
    """Clones HEAD to ``dest``, puts the working ``params.yaml``/``dvc.yaml`` over it.

    Also removes ``dvc.lock`` (every stage runs) and sets DVC's ``core.analytics`` and
    ``core.check_update`` to false in the copy's local config.
    """
    if not runner.dry_run:
        dest.parent.mkdir(parents=True, exist_ok=True)
    runner.run(["git", "clone", "--quiet", "--local", "--no-hardlinks", str(REPO), str(dest)],
               cwd=REPO, name="git_clone")
    runner.note(f"copy the working tree's params.yaml and dvc.yaml into {dest}; remove dvc.lock")
    if not runner.dry_run:
        for name in ("params.yaml", "dvc.yaml"):
            shutil.copyfile(REPO / name, dest / name)
        (dest / "dvc.lock").unlink(missing_ok=True)
    dvc = str(VENV_BIN / "dvc")
    for key in ("core.analytics", "core.check_update"):
        runner.run([dvc, "config", "--local", key, "false"], cwd=dest, env=copy_env(dest, "venv"),
                   name="dvc_config")


def set_params(params_file: Path, updates: Mapping[str, Any], runner: Runner) -> None:
    """Sets dotted keys (``massseg.train.seed``) in a params file (comments are not kept)."""
    if not updates:
        return
    runner.note(f"set in {params_file}: " + ", ".join(f"{k}={v!r}" for k, v in updates.items()))
    if runner.dry_run:
        return
    import yaml

    doc = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    for key, value in updates.items():
        node = doc
        *parents, last = key.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise SystemExit(f"{params_file}: no section {p!r} on the way to {key!r}")
            node = node[p]
        if last not in node:
            raise SystemExit(f"{params_file}: no key {key!r} (the CLIs would reject a new one)")
        node[last] = value
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def read_params(params_file: Path) -> dict[str, Any]:
    """A params file as a dict."""
    import yaml

    return yaml.safe_load(params_file.read_text(encoding="utf-8"))


def synth_command(out: Path | str, *, cases: int | None, seed: int | None,
                  size: str | None, style: str | None) -> list[str]:
    """``mammo synth OUT`` with only the options given (the others keep their defaults)."""
    cmd = [str(VENV_BIN / "mammo"), "synth", str(out)]
    if cases is not None:
        cmd += ["--cases", str(cases)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if size is not None:
        cmd += ["--size", size]
    if style is not None:
        cmd += ["--style", style]
    return cmd


def synth_has_style(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``mammo synth`` (with this environment's code) takes ``--style``."""
    try:
        out = subprocess.run([str(VENV_BIN / "mammo"), "synth", "--help"], capture_output=True,
                             text=True, env=dict(env or os.environ), timeout=120,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--style" in out.stdout


def dvc_repro(copy: Path, env: Mapping[str, str], runner: Runner) -> RunRecord:
    """``dvc repro`` in the copy (resumes: finished stages are not re-run)."""
    return runner.run([str(VENV_BIN / "dvc"), "repro"], cwd=copy, env=env, name="dvc_repro")


# --------------------------------------------------------------------------- dvc.yaml commands


_VAR_RE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


def stage_commands(root: Path, stages: Sequence[str]) -> dict[str, list[str]]:
    """The commands of ``stages`` in ``root/dvc.yaml``, ``${...}`` filled from ``params.yaml``.

    Matrix stages (``${item...}``) are not supported: only plain stages.
    """
    import yaml

    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    params = read_params(root / "params.yaml")
    out: dict[str, list[str]] = {}
    for name in stages:
        if name not in dvc:
            raise SystemExit(f"{root / 'dvc.yaml'} has no stage {name!r}")
        cmd = dvc[name]["cmd"]
        if isinstance(cmd, list):
            if len(cmd) != 1:
                raise SystemExit(f"stage {name!r} has several commands; not supported")
            cmd = cmd[0]

        def fill(m: re.Match[str], stage: str = name) -> str:
            value = _dotted(params, m.group(1))
            if value is None or isinstance(value, dict | list):
                raise SystemExit(f"stage {stage!r}: cannot fill ${{{m.group(1)}}} from params")
            return str(value)

        out[name] = shlex.split(_VAR_RE.sub(fill, " ".join(str(cmd).split())))
    return out


def rewrite_paths(cmd: Sequence[str], mapping: Callable[[str], str]) -> list[str]:
    """Applies ``mapping`` to every argument of ``cmd`` (paths are whole arguments in dvc.yaml)."""
    return [mapping(a) for a in cmd]


def with_venv_exe(cmd: Sequence[str]) -> list[str]:
    """The first word as the ``.venv/bin`` executable when there is one."""
    exe = VENV_BIN / cmd[0]
    return [str(exe) if exe.exists() else cmd[0], *cmd[1:]]
