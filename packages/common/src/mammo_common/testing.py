"""One shared test that every network and backbone of the project passes.

Like keras-hub's ``TestCase.run_backbone_test`` / ``run_model_saving_test``: the stages' tests
call :func:`run_model_test` on each network of their registries instead of repeating their own
build and round-trip code. It checks, in order:

1. **build**: the model is built (from a builder, under :func:`keras.utils.set_random_seed`);
2. **parameter count**: the exact ``(total, non-trainable)`` count the caller expects (the
   published counts of docs/ARCHITECTURES.md live in each package's tests);
3. **forward shape**: ``model(x, training=False)`` has the expected shape(s), dtype, and is
   finite;
4. **get_config / from_config**: every named constructor argument of every project-defined
   class in the model is in its ``get_config()`` (an argument left out would be rebuilt with
   its default), the config survives JSON, ``from_config`` gives the same class, config and
   weight shapes, and with the original's weights the same outputs;
5. **save / load**: a ``.keras`` file loads (``safe_mode=True``) as the same class with the same
   config and bit-identical weights and outputs;
6. **fresh process**: the file loads in another Python process that never built the model
   (only the modules the caller names are imported there, as a user's process would) and
   gives the same outputs.

Before checks 4-6 every floating-point variable (trainable or not: BatchNorm statistics too)
is moved off its initial value by a seeded perturbation (:func:`perturb_weights`), so a
variable that is not saved, or restored into the wrong slot, changes the outputs.

Tolerances: inside one process the same kernels run on the same inputs, so outputs must be
equal bit for bit. In another process only the accumulation order of float32 sums may change
(thread partitioning); each reordered sum moves its result by a few units in the last place
(float32 epsilon is 1.2e-7), so :data:`FLOAT32_RTOL` (1e-5, about 84 epsilon) relative to the
output's scale bounds a network of tens of layers with room to spare, without being so loose
that a wrong weight could pass.

The module imports Keras and NumPy only; it never imports pytest, and every failure is an
``AssertionError`` naming the network and the check. Example::

    from mammo_common.testing import FreshProcess, run_model_test

    with FreshProcess(imports=["mammo_common.keras.networks.unet5l"]) as fresh:
        run_model_test(
            lambda: unet5l.build((64, 64, 1)),
            np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32),
            expected_output_shape=(2, 64, 64, 1),
            expected_params=(1_947_153, 3_168),
            tmp_path=tmp_path,
            fresh_process=fresh,
        )
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = [
    "FLOAT32_RTOL",
    "FLOAT32_UNIT_ROUNDOFF",
    "FreshProcess",
    "ModelTestResult",
    "accumulated_terms",
    "assert_outputs_close",
    "check_config_round_trip",
    "check_forward",
    "check_fresh_process",
    "check_parameter_count",
    "check_saving",
    "count_parameters",
    "float32_tolerance",
    "largest_activation",
    "perturb_weights",
    "run_model_test",
]

#: Relative tolerance of outputs computed in another process (see the module docstring).
FLOAT32_RTOL = 1e-5

#: The unit roundoff of float32, ``u = 2**-24``: a rounded operation's relative error is at most u.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def float32_tolerance(magnitude: float, n_terms: int, *, lam: float = 6.0) -> float:
    """How far two float32 evaluations of the same value may differ, from the error bound.

    A sum of ``n`` rounded terms differs from its exact value by at most about ``gamma_n * S``
    (``S`` the sum of the terms' magnitudes, ``gamma_n = n u / (1 - n u)``; Higham, *Accuracy
    and Stability of Numerical Algorithms*, 2002, eq. 3.4). That worst case assumes every
    rounding error has the same sign; with independent errors the bound is
    ``lam * sqrt(n) * u * S`` to first order, which holds with probability at least
    ``1 - 2 n exp(-lam**2 (1 - u)**2 / 2)`` (Higham and Mary, *A new approach to probabilistic
    rounding error analysis*, SIAM J. Sci. Comput. 41, 2019; a union bound, so pessimistic:
    ``lam = 6`` gives at least 1 - 3e-8 n). Two evaluations that order the sums differently
    (another backend, thread partitioning, a folded BatchNorm) are each within that of the
    exact value, so they differ by at most twice it.

    For a network, ``S`` is taken as the largest activation it computes and ``n`` as the
    fan-ins summed over its layers: an estimate (cancellation can make a layer's sum of
    magnitudes exceed its largest output, a later layer's gain can amplify an earlier error),
    which the square-root bound absorbs in practice (for unet5l with BatchNorm statistics far
    from the identity: 50 times the largest folding difference seen under JAX, 900 times that
    under TensorFlow; ``test_keras_optimize``).

    Args:
        magnitude: The size of the accumulated terms (for a network, the largest absolute
            activation it computes, :func:`largest_activation`).
        n_terms: Rounded operations accumulated into each value (for a network, the fan-ins
            along its layers, :func:`accumulated_terms`).
        lam: Standard deviations of the probabilistic bound.

    Returns:
        The absolute tolerance: ``2 * lam * sqrt(n_terms) * u * magnitude``.
    """
    return 2.0 * lam * float(np.sqrt(max(n_terms, 1))) * FLOAT32_UNIT_ROUNDOFF * magnitude


def accumulated_terms(model: keras.Model) -> int:
    """Rounded operations accumulated into an output of ``model``, layer by layer (a bound).

    The fan-in of every convolution and dense layer (a separable one counts its depthwise and
    its pointwise part, a transposed one the inputs of all its taps), plus two per weighted
    layer for its bias, normalisation and activation. Counting every layer, not only those on
    one path, over-counts networks with branches: the tolerance errs on the loose side.
    """
    total = 0
    for layer in _all_layers(model):
        depthwise = getattr(layer, "depthwise_kernel", None)
        pointwise = getattr(layer, "pointwise_kernel", None)
        kernel = getattr(layer, "kernel", None)
        if depthwise is not None:
            total += int(np.prod(depthwise.shape[:-2])) + 2
            if pointwise is not None:
                total += int(pointwise.shape[-2])
        elif kernel is not None:
            shape = tuple(kernel.shape)
            if isinstance(layer, keras.layers.Conv2DTranspose | keras.layers.Conv1DTranspose):
                total += int(np.prod(shape[:-2])) * int(shape[-1]) + 2
            else:
                total += int(np.prod(shape[:-1])) + 2
    return total


def largest_activation(model: keras.Model, x: np.ndarray) -> float:
    """The largest absolute value any top-level layer of ``model`` computes on ``x``.

    A nested model counts with its output only (its own layers' outputs belong to its graph,
    not to ``model``'s): call this on the nested model too where its inside matters.
    """
    outputs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer | keras.Model):
            continue
        outputs.extend(keras.tree.flatten(layer.output))
    outputs.extend(keras.tree.flatten(model.outputs))
    probe = keras.Model(model.inputs, outputs)
    return max(float(np.max(np.abs(np.asarray(v)))) for v in keras.tree.flatten(probe(x)))


#: Top-level packages whose classes are Keras's own (their configs are not checked here).
_KERAS_PACKAGES = frozenset({"keras", "tf_keras", "tensorflow"})


@dataclass(frozen=True)
class ModelTestResult:
    """What :func:`run_model_test` leaves for further checks.

    Attributes:
        model: The tested model (its weights perturbed, see :func:`perturb_weights`).
        outputs: Its outputs on the test input, one array per model output.
        params: ``(total, non_trainable)`` parameter counts.
    """

    model: keras.Model
    outputs: list[np.ndarray]
    params: tuple[int, int]


# --------------------------------------------------------------------------- helpers


def count_parameters(model: keras.Model) -> tuple[int, int]:
    """``(total, non_trainable)`` parameter counts of a built model."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable + frozen, frozen


def _outputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Eager inference outputs as NumPy arrays, flattened (one per model output)."""
    return [
        np.asarray(keras.ops.convert_to_numpy(y))
        for y in keras.tree.flatten(model(x, training=False))
    ]


def _label(model: keras.Model) -> str:
    return f"{type(model).__name__} {model.name!r}"


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model and every layer nested in it (sub-models included)."""
    # Keras 3 has no public recursive layer walk; ``_flatten_layers`` is what ``summary`` uses.
    return list(model._flatten_layers(include_self=True, recursive=True))


def _finalize_state(model: keras.Model) -> None:
    """Call every layer's ``finalize_state()``, as loading a ``.keras`` file does.

    Some Keras layers compute tensors from their variables when built or loaded
    (``Normalization``: its mean and variance, e.g. inside EfficientNet); variables assigned
    directly are not used until this runs.
    """
    for layer in _all_layers(model):
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()


def _config_json(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj.get_config(), sort_keys=True)
    except TypeError as exc:
        raise AssertionError(f"{what}: get_config() is not JSON-serialisable: {exc}") from exc


def assert_outputs_close(
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    *,
    rtol: float | None,
    what: str,
) -> None:
    """Assert two output lists agree: bit for bit (``rtol=None``) or within ``rtol``.

    With a tolerance, the absolute part is ``rtol`` times the largest ``|expected|`` value (the
    output's scale), so outputs near zero are held to the precision of the large ones.

    Raises:
        AssertionError: Naming ``what`` and the first output that differs.
    """
    if len(actual) != len(expected):
        raise AssertionError(f"{what}: {len(actual)} outputs, expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        message = f"{what}: output {i}"
        if rtol is None:
            np.testing.assert_array_equal(a, e, err_msg=f"{message} (bit-identical expected)")
        else:
            scale = max(float(np.max(np.abs(e))) if e.size else 0.0, 1e-30)
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=message)


def perturb_weights(model: keras.Model, seed: int = 0) -> None:
    """Move every floating-point variable off its initial value, reproducibly.

    A variable holding one constant (zero biases and BatchNorm means, unit scales and
    variances) gets ``uniform(0, 0.05)`` added to each element, so a variance stays positive;
    any other (randomly initialised kernels) is multiplied elementwise by ``uniform(0.9,
    1.1)``, which keeps its scale, so deep networks stay finite. The NumPy generator is
    seeded with ``seed``. Integer variables (seed states, counters) are left alone. Then
    every layer's ``finalize_state()`` runs, as after loading (layers such as Keras's
    ``Normalization`` use tensors derived from their variables).
    """
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if not keras.backend.is_float_dtype(variable.dtype):
            continue
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        if value.size == 0:
            continue
        if np.all(value == value.flat[0]):
            value = value + rng.uniform(0.0, 0.05, value.shape)
        else:
            value = value * rng.uniform(0.9, 1.1, value.shape)
        variable.assign(value.astype(variable.dtype))
    _finalize_state(model)


# ----------------------------------------------------------------------------- checks


def check_parameter_count(model: keras.Model, expected: tuple[int, int]) -> tuple[int, int]:
    """Assert the exact ``(total, non_trainable)`` parameter counts; return them."""
    counts = count_parameters(model)
    if counts != tuple(expected):
        raise AssertionError(
            f"{_label(model)}: (total, non-trainable) parameters {counts}, "
            f"expected {tuple(expected)}"
        )
    return counts


def check_forward(
    model: keras.Model,
    input_data: np.ndarray,
    expected_output_shape: Sequence[int] | Sequence[Sequence[int]],
    *,
    expected_dtype: str | None = "float32",
) -> list[np.ndarray]:
    """Run ``model(x, training=False)`` and check its outputs' shapes, dtype and finiteness.

    Args:
        model: A built model.
        input_data: One input batch.
        expected_output_shape: The output's shape with the batch dimension, or a list of
            shapes for a model with several outputs (in ``keras.tree.flatten`` order).
        expected_dtype: Dtype of every output; ``None`` not to check it.

    Returns:
        The outputs, one array each.
    """
    outputs = _outputs(model, input_data)
    shapes = list(expected_output_shape)
    if shapes and isinstance(shapes[0], int | np.integer):
        shapes = [tuple(shapes)]
    got = [tuple(y.shape) for y in outputs]
    if got != [tuple(s) for s in shapes]:
        raise AssertionError(f"{_label(model)}: output shapes {got}, expected {shapes}")
    for i, y in enumerate(outputs):
        if expected_dtype is not None and y.dtype != np.dtype(expected_dtype):
            raise AssertionError(f"{_label(model)}: output {i} is {y.dtype}, not {expected_dtype}")
        if not np.all(np.isfinite(y)):
            raise AssertionError(f"{_label(model)}: output {i} is not finite")
    return outputs


def check_config_round_trip(
    model: keras.Model,
    input_data: np.ndarray,
    expected_outputs: Sequence[np.ndarray],
    *,
    config_exempt: Iterable[str] = (),
) -> keras.Model:
    """``get_config`` holds every constructor argument and ``from_config`` rebuilds the model.

    Args:
        model: A built model.
        input_data: One input batch.
        expected_outputs: ``model``'s outputs on ``input_data``.
        config_exempt: Constructor arguments that are deliberately not in a config (say why at
            the call site, e.g. ``weights``: a loaded model gets its weights from its file).

    Returns:
        The rebuilt model, holding ``model``'s weights.
    """
    exempt = set(config_exempt)
    for layer in _all_layers(model):
        cls = type(layer)
        if cls.__module__.split(".")[0] in _KERAS_PACKAGES:
            continue
        config = layer.get_config()
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name not in config and param.name not in exempt:
                raise AssertionError(
                    f"{_label(model)}: {cls.__qualname__}({param.name}=...) is not in "
                    f"{cls.__qualname__}.get_config() (keys: {sorted(config)}); from_config "
                    "would rebuild it with the default"
                )

    label = _label(model)
    config_json = _config_json(model, label)
    revived = type(model).from_config(json.loads(config_json))
    if type(revived) is not type(model):
        raise AssertionError(f"{label}: from_config gave a {type(revived).__name__}")
    if _config_json(revived, label) != config_json:
        raise AssertionError(f"{label}: from_config(get_config()).get_config() differs")
    if count_parameters(revived) != count_parameters(model):
        raise AssertionError(
            f"{label}: from_config has {count_parameters(revived)} parameters, "
            f"the original {count_parameters(model)}"
        )
    shapes = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in revived.weights] != shapes:
        raise AssertionError(f"{label}: from_config's weights differ in shape or order")
    revived.set_weights(model.get_weights())
    _finalize_state(revived)  # set_weights only assigns; loading finalizes too
    assert_outputs_close(
        _outputs(revived, input_data), expected_outputs, rtol=None,
        what=f"{label}: from_config with the original's weights",
    )
    return revived


def check_saving(
    model: keras.Model,
    input_data: np.ndarray,
    expected_outputs: Sequence[np.ndarray],
    path: str | os.PathLike,
) -> keras.Model:
    """Save ``model`` to ``path`` (``.keras``) and load it back in this process.

    The loaded model must be of the same class, with the same config, bit-identical weights
    and bit-identical outputs.

    Returns:
        The loaded model.
    """
    label = _label(model)
    path = Path(path)
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    if type(loaded) is not type(model):
        raise AssertionError(f"{label}: loaded as a {type(loaded).__name__}")
    if _config_json(loaded, label) != _config_json(model, label):
        raise AssertionError(f"{label}: the loaded model's get_config() differs")
    saved, restored = model.get_weights(), loaded.get_weights()
    if len(saved) != len(restored):
        raise AssertionError(f"{label}: {len(restored)} weights loaded, {len(saved)} saved")
    for i, (a, b) in enumerate(zip(saved, restored, strict=True)):
        np.testing.assert_array_equal(b, a, err_msg=f"{label}: loaded weight {i} differs")
    assert_outputs_close(
        _outputs(loaded, input_data), expected_outputs, rtol=None,
        what=f"{label}: loaded from {path.name}",
    )
    return loaded


# ----------------------------------------------------------------------- fresh process

_WORKER = r"""
import importlib, json, os, sys, traceback
reply = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # anything else printed (Keras, TensorFlow) goes to stderr
sys.stdout = sys.stderr
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
import keras
import numpy as np
reply.write(json.dumps({"ready": True}) + "\n")
for line in sys.stdin:
    request = json.loads(line)
    try:
        keras.backend.clear_session()
        model = keras.saving.load_model(request["model"], compile=False, safe_mode=True)
        outputs = keras.tree.flatten(model(np.load(request["input"]), training=False))
        np.savez(request["output"], *[keras.ops.convert_to_numpy(y) for y in outputs])
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        answer = {"ok": True, "class": type(model).__qualname__,
                  "params": [trainable + frozen, frozen]}
        del model
    except Exception:
        answer = {"ok": False, "error": traceback.format_exc()}
    reply.write(json.dumps(answer) + "\n")
"""


class FreshProcess:
    """A Python worker process that loads ``.keras`` files it never built.

    Starting Python with Keras and TensorFlow costs seconds, so one worker serves many
    models (use it as a context manager, or a session-scoped fixture, and :meth:`close` it).
    It imports only ``imports`` (the modules that register the project's classes with Keras,
    as a user's process must) and clears the Keras session before each model. It inherits
    this process's environment (``KERAS_BACKEND``, ``TF_ENABLE_ONEDNN_OPTS``...).

    Args:
        imports: Modules to import before loading anything.
        paths: Folders put in front of the worker's ``sys.path`` (``PYTHONPATH``), for
            ``imports`` that are not installed (a test folder's own modules).
        timeout: Seconds to wait for the worker to start or to answer one request.
    """

    def __init__(
        self,
        imports: Iterable[str] = (),
        *,
        paths: Iterable[str | os.PathLike] = (),
        timeout: float = 600.0,
    ) -> None:
        self.imports = list(imports)
        self.timeout = timeout
        env = dict(os.environ)
        extra = [os.fspath(p) for p in paths]
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([*extra, env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
        self._dir = tempfile.TemporaryDirectory(prefix="mammo-fresh-")
        self._stderr = open(Path(self._dir.name) / "stderr.txt", "w+b")  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps(self.imports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._count = 0
        answer = self._answer("start")
        if not answer.get("ready"):
            raise AssertionError(f"fresh process did not start: {answer}")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace")

    def _answer(self, what: str) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise AssertionError(
                f"fresh process: no answer to {what} in {self.timeout} s"
            ) from None
        if line is None:
            raise AssertionError(
                f"fresh process exited ({self._process.wait()}) during {what}:\n"
                f"{self._stderr_tail()}"
            )
        return json.loads(line)

    def load_and_predict(
        self, path: str | os.PathLike, input_data: np.ndarray
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Load ``path`` in the worker and run ``model(x, training=False)`` there.

        Returns:
            The outputs (one array each) and the worker's report: the loaded class's name
            (``class``) and ``params`` (``[total, non_trainable]``).

        Raises:
            AssertionError: If the worker cannot load or run the model (its traceback
                included) or has died.
        """
        if self._process.poll() is not None:
            raise AssertionError(f"fresh process has exited:\n{self._stderr_tail()}")
        self._count += 1
        folder = Path(self._dir.name)
        x_path, y_path = folder / f"x{self._count}.npy", folder / f"y{self._count}.npz"
        np.save(x_path, np.asarray(input_data))
        request = {"model": str(Path(path).resolve()), "input": str(x_path),
                   "output": str(y_path)}
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._answer(f"loading {Path(path).name}")
        if not answer["ok"]:
            raise AssertionError(
                f"fresh process could not load {Path(path).name} (imports: {self.imports}):\n"
                f"{answer['error']}"
            )
        with np.load(y_path) as saved:
            outputs = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        x_path.unlink()
        y_path.unlink()
        return outputs, answer

    def close(self) -> None:
        """Stop the worker and remove its files."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()
        self._dir.cleanup()

    def __enter__(self) -> FreshProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_fresh_process(
    model: keras.Model,
    path: str | os.PathLike,
    input_data: np.ndarray,
    expected_outputs: Sequence[np.ndarray],
    fresh: FreshProcess,
    *,
    rtol: float = FLOAT32_RTOL,
) -> None:
    """The ``.keras`` file at ``path`` loads in ``fresh`` as ``model``'s class and agrees."""
    label = _label(model)
    outputs, report = fresh.load_and_predict(path, input_data)
    if report["class"] != type(model).__qualname__:
        raise AssertionError(f"{label}: a fresh process loaded a {report['class']}")
    if tuple(report["params"]) != count_parameters(model):
        raise AssertionError(
            f"{label}: a fresh process loaded {tuple(report['params'])} parameters, "
            f"expected {count_parameters(model)}"
        )
    assert_outputs_close(outputs, expected_outputs, rtol=rtol, what=f"{label}: fresh process")


# -------------------------------------------------------------------------- the tester


def run_model_test(
    model: keras.Model | Callable[[], keras.Model],
    input_data: np.ndarray,
    *,
    expected_output_shape: Sequence[int] | Sequence[Sequence[int]],
    expected_params: tuple[int, int],
    tmp_path: str | os.PathLike,
    fresh_process: FreshProcess | bool = True,
    fresh_imports: Iterable[str] = (),
    config_exempt: Iterable[str] = (),
    expected_dtype: str | None = "float32",
    seed: int = 0,
    rtol: float = FLOAT32_RTOL,
    keep_file: bool = False,
) -> ModelTestResult:
    """Run every check of this module on one network (see the module docstring).

    Args:
        model: A built model, or a function building one (called after
            ``keras.utils.set_random_seed(seed)``).
        input_data: One input batch (a single array).
        expected_output_shape: Output shape with the batch dimension (a list of shapes for
            several outputs).
        expected_params: Exact ``(total, non_trainable)`` parameter counts.
        tmp_path: Folder for the ``.keras`` file.
        fresh_process: A :class:`FreshProcess` to load the file in (shared between tests to
            save its start-up), ``True`` to start one for this model, ``False`` to skip the
            check.
        fresh_imports: Modules a worker started here imports (with ``fresh_process=True``).
        config_exempt: Constructor arguments deliberately not in ``get_config()``.
        expected_dtype: Dtype of every output; ``None`` not to check it.
        seed: Seed of the build and of :func:`perturb_weights`.
        rtol: Tolerance of the fresh process's outputs (same-process ones are exact).
        keep_file: Keep the ``.keras`` file (removed by default: full-size networks make
            files of up to a hundred megabytes).

    Returns:
        The model (weights perturbed), its outputs on ``input_data`` and its counts.

    Raises:
        AssertionError: On the first check that fails.
    """
    keras.utils.set_random_seed(seed)
    if not isinstance(model, keras.Model):
        model = model()
    if not isinstance(model, keras.Model) or not model.built:
        raise AssertionError(f"the builder returned {model!r}, not a built keras.Model")
    params = check_parameter_count(model, expected_params)
    check_forward(model, input_data, expected_output_shape, expected_dtype=expected_dtype)

    perturb_weights(model, seed)
    outputs = _outputs(model, input_data)
    if not all(np.all(np.isfinite(y)) for y in outputs):
        raise AssertionError(f"{_label(model)}: not finite with perturbed weights")
    check_config_round_trip(model, input_data, outputs, config_exempt=config_exempt)

    path = Path(tmp_path) / f"{model.name}.keras"
    check_saving(model, input_data, outputs, path)
    try:
        if fresh_process is True:
            with FreshProcess(fresh_imports) as fresh:
                check_fresh_process(model, path, input_data, outputs, fresh, rtol=rtol)
        elif fresh_process:
            check_fresh_process(model, path, input_data, outputs, fresh_process, rtol=rtol)
    finally:
        if not keep_file:
            path.unlink(missing_ok=True)
    return ModelTestResult(model=model, outputs=outputs, params=params)
