"""A scoped memo of loaded models, so a batch loads every model folder once.

The one-shot stage plugins (:mod:`mammo_common.oneshot`) load their models inside
``run(case, model_dirs)``, one case at a time. A :class:`~mammo_common.oneshot.Cascade` runs
every case with its own :class:`ModelCache` active: while it is, the two expensive steps every
plugin goes through,

* :func:`mammo_common.keras.deployment.model_folder.load_model_folder` (reading ``model.keras``) and
* :func:`mammo_common.keras.deployment.optimize.inference_model` (folding BatchNorms into a copy),

return the object built on their first call for the same arguments instead of building it
again. The same Keras model object is thus reused for every image, and with it the predict
function Keras traced for it. Outside an active cache both functions behave exactly as before.

This module does not import Keras; the cache only stores what the callers build.

Example:
    >>> cache = ModelCache()
    >>> with cache.active():
    ...     memoized(("answer",), lambda: 42)
    42
    >>> cache.builds
    1
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["ModelCache", "active_cache", "memoized"]

T = TypeVar("T")

_ACTIVE: ContextVar[ModelCache | None] = ContextVar("mammo_model_cache", default=None)


class ModelCache:
    """Objects built once per key while the cache is active (see the module docstring).

    Attributes:
        builds: How many objects were built (cache misses) so far.
        hits: How many calls were answered from the cache.
        builds_by_kind: Builds per kind (the first element of a tuple key, e.g.
            ``load_model_folder``, ``inference_model``).
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self.builds = 0
        self.hits = 0
        self.builds_by_kind: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The object stored under ``key``, built with ``make()`` on the first call.

        An exception raised by ``make`` propagates and nothing is stored.
        """
        if key in self._items:
            self.hits += 1
            return self._items[key]  # type: ignore[no-any-return]
        value = make()
        self._items[key] = value
        self.builds += 1
        self.builds_by_kind[str(key[0]) if isinstance(key, tuple) and key else ""] += 1
        return value

    def clear(self) -> None:
        """Drop every stored object (the models can then be garbage-collected)."""
        self._items.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[ModelCache]:
        """Make this the cache :func:`memoized` uses, for the ``with`` block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def active_cache() -> ModelCache | None:
    """The cache active in this context, if any."""
    return _ACTIVE.get()


def memoized(key: Hashable, make: Callable[[], T]) -> T:
    """``make()``, or its stored result for ``key`` while a :class:`ModelCache` is active."""
    cache = _ACTIVE.get()
    if cache is None:
        return make()
    return cache.get(key, make)
