"""Shared helpers of the benchmark scripts: environment, machine info, timing, FLOPs, output.

Import this module before TensorFlow or Keras (it sets ``KERAS_BACKEND`` and TF log levels).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = Path(os.environ.get("MAMMO_BENCH_WORK", "/tmp/mammo-bench"))
VENV_BIN = Path(sys.executable).parent
_START = {"loadavg": list(os.getloadavg()), "date": _dt.datetime.now(_dt.UTC)}


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags relevant to dense math (AVX2/AVX-512/AMX...)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                keep = ("avx", "fma", "amx", "f16c")
                return sorted(f for f in flags if f.startswith(keep))
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, load, library versions and date, for every results file."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _START["date"].isoformat(timespec="seconds"),
        "loadavg_start": _START["loadavg"],
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(total_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    for mod in ("numpy", "tensorflow", "keras", "zarr"):
        try:
            info[f"{mod}_version"] = __import__(mod).__version__
        except Exception:  # best effort
            info[f"{mod}_version"] = None
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        info["tf_onednn_opts"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86)")
    return info


# --------------------------------------------------------------------------- timing


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repetition times (seconds)."""
    ts = sorted(float(t) for t in times)
    med = statistics.median(ts)
    out = {
        "n": len(ts),
        "median_s": med,
        "min_s": ts[0],
        "max_s": ts[-1],
        "spread_pct": 100.0 * (ts[-1] - ts[0]) / med if med > 0 else 0.0,
        "times_s": ts,
    }
    if len(ts) >= 4:
        q = statistics.quantiles(ts, n=4)
        out["iqr_s"] = q[2] - q[0]
    return out


def time_reps(fn: Callable[[], Any], *, warmup: int, reps: int) -> dict[str, Any]:
    """Runs ``fn`` ``warmup`` times untimed, then ``reps`` times timed (:func:`summarize`)."""
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    out = summarize(times)
    out["warmup_s"] = warm
    return out


class Stopwatch:
    """Accumulates named phase times: ``with sw("read"): ...``."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}  # process CPU time (all threads)
        self._name: str | None = None
        self._t0 = 0.0
        self._c0 = 0.0

    def __call__(self, name: str) -> Stopwatch:
        self._name = name
        return self

    def __enter__(self) -> Stopwatch:
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._name is not None
        self.times.setdefault(self._name, []).append(time.perf_counter() - self._t0)
        self.cpu.setdefault(self._name, []).append(time.process_time() - self._c0)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- TF helpers


def set_precision(precision: str) -> None:
    """``float32`` or ``bfloat16`` (Keras ``mixed_bfloat16`` policy) for models built next."""
    import keras

    keras.mixed_precision.set_global_policy(
        "float32" if precision == "float32" else f"mixed_{precision}"
    )


def make_matmul(dtype: str, n: int) -> Callable[[], Any]:
    """A callable running one dense ``n x n @ n x n`` matmul in ``dtype`` (2 n^3 FLOPs)."""
    import tensorflow as tf

    tf_dtype = {"float32": tf.float32, "bfloat16": tf.bfloat16}[dtype]
    a = tf.cast(tf.random.uniform((n, n), dtype=tf.float32), tf_dtype)
    b = tf.cast(tf.random.uniform((n, n), dtype=tf.float32), tf_dtype)

    @tf.function
    def mm(x, y):
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1, :1], tf.float32))

    return lambda: mm(a, b).numpy()


def matmul_rate(dtype: str, n: int, *, warmup: int = 2, reps: int = 5) -> dict[str, Any]:
    """Dense ``n x n @ n x n`` matmul rate of this machine (FLOP/s = 2 n^3 / time)."""
    stats = time_reps(make_matmul(dtype, n), warmup=warmup, reps=reps)
    flops = 2.0 * n**3
    stats.update(
        dtype=dtype,
        n=n,
        flops=flops,
        gflops_median=flops / stats["median_s"] / 1e9,
        gflops_best=flops / stats["min_s"] / 1e9,
    )
    return stats


def count_forward_flops(model: Any, input_shape: Sequence[int]) -> dict[str, Any]:
    """FLOPs (2 x multiply-accumulates) of one forward pass of ``model`` on one image.

    The model is traced once (``training=False``) into a TF graph and the dense ops are counted
    from their static shapes: ``Conv2D`` (incl. the 1x1 half of separable convs),
    ``DepthwiseConv2dNative``, ``Conv2DBackpropInput`` (transposed convs), ``MatMul`` /
    ``BatchMatMul`` (Dense). Element-wise ops (BatchNorm, ReLU, adds, pooling, resizing) are
    not counted: they are memory-bound and not what the matmul peak measures.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((1, *[int(d) for d in input_shape]), tf.float32)
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(spec).graph
    by_type: dict[str, float] = {}

    def shape(t) -> list[int]:
        return [int(d) if d is not None else 1 for d in t.shape.as_list()]

    def visit(g) -> None:
        for op in g.get_operations():
            t = op.type
            flops = 0.0
            if t == "Conv2D":
                out = shape(op.outputs[0])
                kh, kw, cin, _cout = shape(op.inputs[1])
                flops = 2.0 * _prod(out) * kh * kw * cin
            elif t == "DepthwiseConv2dNative":
                out = shape(op.outputs[0])
                kh, kw, _cin, _mult = shape(op.inputs[1])
                flops = 2.0 * _prod(out) * kh * kw
            elif t == "Conv2DBackpropInput":
                kh, kw, cout, cin = shape(op.inputs[1])
                inp = shape(op.inputs[2])  # the transposed conv's input (n, h, w, cin)
                flops = 2.0 * _prod(inp[:3]) * cin * kh * kw * cout
            elif t in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
                a, b = shape(op.inputs[0]), shape(op.inputs[1])
                ta = op.get_attr("transpose_a") if t == "MatMul" else op.get_attr("adj_x")
                tb = op.get_attr("transpose_b") if t == "MatMul" else op.get_attr("adj_y")
                m = a[-1] if ta else a[-2]
                k = a[-2] if ta else a[-1]
                n = b[-2] if tb else b[-1]
                flops = 2.0 * _prod(a[:-2]) * m * k * n
            if flops:
                by_type[t] = by_type.get(t, 0.0) + flops
        for func in getattr(g, "_functions", {}).values():  # nested tf.functions, if any
            sub = getattr(func, "graph", None)
            if sub is not None:
                visit(sub)

    visit(graph)
    total = sum(by_type.values())
    return {"forward_flops_per_image": total, "by_op": by_type}


def profiler_flops(model: Any, input_shape: Sequence[int]) -> float | None:
    """TF profiler's float-op count of one forward pass (cross-check; includes element-wise)."""
    import tensorflow as tf

    try:
        spec = tf.TensorSpec((1, *[int(d) for d in input_shape]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False))
        graph = fn.get_concrete_function(spec).graph
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        prof = tf.compat.v1.profiler.profile(graph=graph, options=opts)
        return float(prof.total_float_ops)
    except Exception:  # the profiler is best effort
        return None


def _prod(xs: Sequence[int]) -> float:
    p = 1.0
    for x in xs:
        p *= x
    return p


# --------------------------------------------------------------------------- output


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Writes ``bench/results/<name>.json`` with machine info and the command line."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    info["loadavg_end"] = list(os.getloadavg())
    doc = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str = "",
    fmt: Callable[[Any], str] = _fmt,
) -> str:
    """Prints (and returns) a Markdown table, each cell written by ``fmt``."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = [f"\n{title}\n"] if title else []
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def log(msg: str) -> None:
    """Progress message on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
