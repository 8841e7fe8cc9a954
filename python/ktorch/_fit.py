"""kt.fit: epochs of kt.run (and kt.testrun) with callbacks, returning a History."""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ktorch import _ktorch as _kt
from ktorch.callbacks import SCALAR_METRICS, Callback, History, _given, _int

TEST_PREFIX = "test_"
"""Test metrics are logged as test_loss, test_accuracy, ... (ktorch calls its held-out data test data)."""


def _value(v: Any) -> Any:
    """A metric as a float (one number) or numpy array(s); Tensor handles (option tensor) read out."""
    if isinstance(v, (_kt.Tensor, _kt.Vector, _kt.Dict)):
        v = _kt.tensor(v)
    if isinstance(v, (list, Mapping)):
        return v
    a = np.asarray(v)
    return float(a) if a.ndim == 0 else a


def _named(result: Any, options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """run/testrun's result by metric name: a dict (option dictionary), the value alone for one
    metric, a list in metrics order for several."""
    names = list(options["metrics"])
    if options["dictionary"]:
        items = list(result.items())
    elif len(names) == 1:
        items = [(names[0], result)]
    else:
        items = list(zip(names, result, strict=True))
    return {prefix + k: _value(v) for k, v in items}


def _callbacks(callbacks: Any) -> list[Callback]:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks expects a list of Callback objects, given {_given(callbacks)}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks expects Callback objects (kt.callbacks.Callback), "
                            f"given {type(cb).__name__} at index {i}")
    return list(callbacks)


def _line(epoch: int, epochs: int, logs: Mapping[str, Any], seconds: float) -> str:
    parts = [f"epoch {epoch + 1:{len(str(epochs))}d}/{epochs}"]
    for k, v in logs.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.2f}" if k.endswith("accuracy") else f"{k} {v:.4g}")
        elif isinstance(v, list) and k == "lr":
            parts.append(f"lr {' '.join(f'{x:.4g}' for x in v)}")
    parts.append(f"{seconds:.2f}s")
    return "  ".join(parts)


def fit(m: _kt.Model, epochs: int = 1, *, callbacks: Sequence[Callback] | Callback | None = None,
        verbose: int = 1, test: bool | None = None, history: History | None = None) -> History:
    """Trains for ``epochs`` epochs: each is ``kt.run(m)`` then, with test data, ``kt.testrun(m)``.

    Returns a History: every metric of the train option ``metrics`` per epoch under its name
    (``loss``, ``accuracy``, ``batchloss``, ...), the test option's metrics with the prefix
    ``test_`` (``test_loss``, ...), and ``lr``, the rate(s) in effect during the epoch (a float,
    or a list with one per parameter group). Data and options come from ``kt.train``/``kt.test``.

    callbacks: ``kt.callbacks.Callback`` objects, called in order (see ``kt.callbacks``); one that
    sets ``stop_training`` ends the fit after that epoch.
    verbose: 0 silent, 1 or 2 one line per epoch.
    test: None runs the test pass when the model has test data, False never, True requires it.
    history: a History to record into (kept whatever happens to the fit).

    Ctrl-C (or any exception) during the fit: the callbacks' ``on_train_end`` run (files are
    closed, best parameters restored on request), then the exception propagates with the History
    of the epochs completed as its ``history`` attribute.
    """
    if not isinstance(m, _kt.Model):
        raise TypeError(f"fit: model expects a Model, given {_given(m)}")
    epochs = _int("fit", "epochs", epochs, 1)
    cbs = _callbacks(callbacks)
    if isinstance(verbose, bool):
        verbose = int(verbose)
    if not isinstance(verbose, numbers.Integral):
        raise TypeError(f"fit: verbose expects 0, 1 or 2, given {_given(verbose)}")
    if verbose not in (0, 1, 2):
        raise _kt.KtorchError(f"fit: verbose expects 0, 1 or 2, given {verbose}")
    if test is not None and not isinstance(test, bool):
        raise TypeError(f"fit: test expects None, True or False, given {_given(test)}")
    if history is None:
        history = History()
    elif not isinstance(history, History):
        raise TypeError(f"fit: history expects a History, given {_given(history)}")
    if _kt.datasize(m) == 0:
        raise _kt.KtorchError("fit: the model has no training data, define it with kt.train(m, x, y)")
    has_test = _kt.testsize(m) > 0
    if test and not has_test:
        raise _kt.KtorchError("fit: test is True but the model has no test data, define it with kt.test(m, x, y)")
    test = has_test if test is None else test

    keys = ["metrics", "dictionary"]
    metrics = list(_kt.train(m, "metrics"))
    test_metrics = list(_kt.test(m, "metrics")) if test else []
    scalars = [k for k in metrics if k in SCALAR_METRICS] + [TEST_PREFIX + k for k in test_metrics
                                                            if k in SCALAR_METRICS]
    params = {"epochs": epochs, "metrics": metrics, "test_metrics": test_metrics, "test": test,
              "scalars": scalars, "verbose": verbose}
    for cb in cbs:
        cb.set_model(m)
        cb.set_params(params)
        cb.stop_training = False

    begun: list[Callback] = []
    try:
        for cb in cbs:
            cb.on_train_begin({})
            begun.append(cb)
    except BaseException:
        for cb in begun:
            cb.on_train_end({})
        raise

    logs: dict[str, Any] = {}
    try:
        for epoch in range(epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            lr = list(_kt.lr(m) or [])
            t0 = time.perf_counter()
            now = _named(_kt.run(m), _kt.train(m, keys), "")
            if test:
                now.update(_named(_kt.testrun(m), _kt.test(m, keys), TEST_PREFIX))
            if lr:
                now["lr"] = lr[0] if len(lr) == 1 else lr
            seconds = time.perf_counter() - t0
            logs = now
            history.record(epoch, logs)
            if verbose:
                print(_line(epoch, epochs, logs, seconds), flush=True)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if any(cb.stop_training for cb in cbs):
                break
    except BaseException as e:
        try:
            e.history = history  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions without a __dict__
            pass
        for cb in cbs:
            cb.on_train_end(dict(logs))
        raise
    for cb in cbs:
        cb.on_train_end(dict(logs))
    return history
