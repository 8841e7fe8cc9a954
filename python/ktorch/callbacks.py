"""Callbacks for ``kt.fit``: the training history, early stopping, best-model keeping, CSV and
TensorBoard logs, learning-rate schedules.

A callback is an instance of a ``Callback`` subclass. ``kt.fit`` gives it the model
(``self.model``) and the fit's parameters (``self.params``: ``epochs``, ``metrics``,
``test_metrics``, ``test``, ``scalars``), then calls its hooks in list order::

    on_train_begin(logs)         before the first epoch (logs is empty)
    on_epoch_begin(epoch, logs)  epoch counts from 0
    on_epoch_end(epoch, logs)    logs: this epoch's metrics by name
    on_train_end(logs)           the last epoch's logs; also on Ctrl-C or an error

Log names: the training metrics under their option names (``loss``, ``accuracy``,
``batchloss``, ...), the test metrics with the prefix ``test_`` (``test_loss``,
``test_accuracy``), and ``lr``, the learning rate in effect during the epoch (a float, or a
list with one rate per parameter group). Setting ``self.stop_training = True`` in a hook
ends the fit after the current epoch.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import string
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np

from ktorch import _ktorch as _kt

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "TensorBoard",
    "StepLR",
    "CosineLR",
    "ReduceLROnPlateau",
    "get_parms",
    "set_parms",
    "save_parms",
    "load_parms",
]

SCALAR_METRICS = ("loss", "accuracy")
"""The metrics that are one number per epoch (the others are arrays: batchloss, gradnorm, ...)."""


# -- argument checks: TypeError for a wrong type, KtorchError for a bad value, naming the function


def _given(v: Any) -> str:
    return f"{v!r} ({type(v).__name__})" if not isinstance(v, (int, float, str)) or isinstance(v, bool) else repr(v)


def _int(fn: str, arg: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise TypeError(f"{fn}: {arg} expects {what}, given {_given(v)}")
    if v < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise _kt.KtorchError(f"{fn}: {arg} expects {what}, given {v}")
    return int(v)


def _num(fn: str, arg: str, v: Any, low: float | None = None, below: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{fn}: {arg} expects a number, given {_given(v)}")
    x = float(v)
    if math.isnan(x) or (low is not None and x < low) or (below is not None and x >= below):
        bounds = [f">= {low:g}"] if low is not None else []
        bounds += [f"< {below:g}"] if below is not None else []
        what = " ".join(["a number", " and ".join(bounds)]).strip()
        raise _kt.KtorchError(f"{fn}: {arg} expects {what}, given {v}")
    return x


def _choice(fn: str, arg: str, v: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{fn}: {arg} expects one of {', '.join(choices)}, given {_given(v)}")
    if v not in choices:
        raise _kt.KtorchError(f"{fn}: {arg} expects one of {', '.join(choices)}, given {v!r}")
    return v


def _name(fn: str, arg: str, v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{fn}: {arg} expects a metric name (str), given {_given(v)}")
    return v


def _path(fn: str, arg: str, v: Any) -> str:
    if not isinstance(v, (str, os.PathLike)):
        raise TypeError(f"{fn}: {arg} expects a file path, given {_given(v)}")
    return os.fspath(v)


def _mode(monitor: str, mode: str) -> str:
    """auto: max for accuracy, min otherwise."""
    if mode == "auto":
        return "max" if "accuracy" in monitor else "min"
    return mode


def _check_monitor(fn: str, monitor: str, params: Mapping[str, Any]) -> None:
    scalars = params.get("scalars", [])
    if monitor not in scalars:
        raise _kt.KtorchError(f"{fn}: monitor expects a scalar metric of this fit, one of "
                              f"{', '.join(scalars) or '(none)'}, given {monitor!r}")


def _scalars(logs: Mapping[str, Any]) -> dict[str, float]:
    """The logs that are single numbers; a list of numbers (lr with several groups) as name_0, name_1, ..."""
    out: dict[str, float] = {}
    for k, v in logs.items():
        if isinstance(v, (list, tuple)):
            if all(isinstance(x, numbers.Real) for x in v):
                out.update({f"{k}_{i}": float(x) for i, x in enumerate(v)})
        elif isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.ndim == 0):
            out[k] = float(v)
    return out


# -- parameters


def get_parms(m: _kt.Model | _kt.Module) -> dict[str, np.ndarray]:
    """Copies of every parameter of a model or module, by name (numpy arrays).

    Parameters only: buffers (batch norm running statistics) and optimizer state are not included.
    """
    out = {}
    for name in _kt.parmnames(m):
        p = _kt.parm(m, name)
        assert p is not None
        out[name] = np.array(_kt.tensor(p), copy=True)
        _kt.free(p)
    return out


def set_parms(m: _kt.Model | _kt.Module, parms: Mapping[str, Any]) -> None:
    """Copies values into the named parameters (as ``kt.parm(m, name, value)`` does for each)."""
    for name, value in parms.items():
        _kt.parm(m, name, value)


def save_parms(m: _kt.Model | _kt.Module | Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes the parameters (of a model/module, or a dict of arrays) to an uncompressed ``.npz`` file.

    The file holds the parameter arrays only, by name; a full state file (buffers, optimizer
    state, options) is the work of a later ``state`` api.
    """
    parms = m if isinstance(m, Mapping) else get_parms(m)
    with open(_path("save_parms", "path", path), "wb") as f:
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in parms.items()}
        np.savez(f, **arrays)


def load_parms(m: _kt.Model | _kt.Module, path: str | os.PathLike[str]) -> None:
    """Reads a file written by ``save_parms`` (or ``ModelCheckpoint``) into the model's parameters."""
    with np.load(_path("load_parms", "path", path)) as f:
        set_parms(m, {k: f[k] for k in f.files})


# -- the base class and the history


class Callback:
    """Base class of fit callbacks: override any of the hooks (each does nothing here)."""

    model: Any = None
    params: dict[str, Any] = {}  # replaced per fit by set_params
    stop_training: bool = False

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Before the epoch's training pass."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """After the epoch's training and test passes, with their metrics in logs."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """After the last epoch, or when the fit ends by an exception (Ctrl-C)."""


class History:
    """Every metric per epoch: ``h["loss"]``, ``h["test_accuracy"]``, ``h["lr"]`` are lists with one
    value per epoch run (floats for scalar metrics, numpy arrays for batchloss, predict, ...);
    ``h.history`` is the dict of those lists and ``h.epoch`` the epoch numbers (from 0)."""

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def record(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Appends one epoch's logs (a name missing on either side gets None)."""
        n = len(self.epoch)
        for k in self.history:
            if k not in logs:
                self.history[k].append(None)
        for k, v in logs.items():
            self.history.setdefault(k, [None] * n).append(v)
        self.epoch.append(epoch)

    def __getitem__(self, name: str) -> list[Any]:
        return self.history[name]

    def __contains__(self, name: object) -> bool:
        return name in self.history

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self) -> list[str]:
        return list(self.history)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, logs={list(self.history)})"


class _Best(Callback):
    """Tracks the best value of a monitored scalar (Keras rules: an improvement beats the best by more
    than min_delta)."""

    _fn = "_Best"

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor = _name(self._fn, "monitor", monitor)
        self.mode = _choice(self._fn, "mode", mode, ("auto", "min", "max"))
        self.min_delta = _num(self._fn, "min_delta", min_delta, low=0.0)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if _mode(self.monitor, self.mode) == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_parms: dict[str, np.ndarray] | None = None

    def _improved(self, current: float) -> bool:
        if _mode(self.monitor, self.mode) == "min":
            return current + self.min_delta < self.best
        return current - self.min_delta > self.best

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _check_monitor(self._fn, self.monitor, self.params)
        self._reset()


class EarlyStopping(_Best):
    """Stops the fit when ``monitor`` has not improved for ``patience`` epochs (0 and 1 both stop at
    the first epoch without improvement, as in Keras).

    mode: "min", "max" or "auto" (max for accuracy metrics, min otherwise); an improvement beats the
    best value by more than ``min_delta``. With ``restore_best``, the parameters of the best epoch are
    kept (copies) and copied back when the fit ends (also when it ends without stopping early, or by
    Ctrl-C). After the fit: ``stopped_epoch`` (None when it ran every epoch), ``best``, ``best_epoch``.
    """

    _fn = "EarlyStopping"

    def __init__(self, monitor: str = "test_loss", patience: int = 0, mode: str = "auto", min_delta: float = 0.0,
                 restore_best: bool = False, verbose: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = _int(self._fn, "patience", patience, 0)
        self.restore_best = bool(restore_best)
        self.verbose = verbose
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.wait = 0
        self.stopped_epoch = None
        self.stop_training = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = float((logs or {})[self.monitor])
        if self._improved(current):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best:
                self.best_parms = get_parms(self.model)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best and self.best_parms is not None:
            set_parms(self.model, self.best_parms)
        if self.verbose and self.stopped_epoch is not None:
            print(f"EarlyStopping: stopped at epoch {self.stopped_epoch}, best {self.monitor} "
                  f"{self.best:.6g} at epoch {self.best_epoch}")


class ModelCheckpoint(_Best):
    """Keeps the parameters of the best epoch by ``monitor`` in memory (``best_parms``, a dict of
    arrays, with ``best`` and ``best_epoch``) and, given a ``path``, writes them to a ``.npz`` file
    (``save_parms``'s format, read back with ``kt.callbacks.load_parms``).

    path may use ``{epoch}`` and scalar log names, e.g. ``"ckpt-{epoch:03d}-{test_loss:.3f}.npz"``.
    save_best_only=False writes a file every epoch (the in-memory copy stays the best one).
    restore_best copies the best parameters back into the model when the fit ends.
    Files hold parameters only: buffers, optimizer state and options come with the state api.
    """

    _fn = "ModelCheckpoint"

    def __init__(self, path: str | os.PathLike[str] | None = None, monitor: str = "test_loss", mode: str = "auto",
                 min_delta: float = 0.0, save_best_only: bool = True, restore_best: bool = False) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path = None if path is None else _path(self._fn, "path", path)
        self.save_best_only = bool(save_best_only)
        self.restore_best = bool(restore_best)
        self.saved: list[str] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.path is not None:
            known = {"epoch", "lr", *self.params.get("scalars", [])}
            for _, field, _, _ in string.Formatter().parse(self.path):
                name = (field or "").split(".")[0].split("[")[0]
                if field is not None and name not in known:
                    raise _kt.KtorchError(f"{self._fn}: path names {field!r}, not epoch or a scalar log of this fit "
                                          f"({', '.join(sorted(known))})")
        self.saved = []

    def _save(self, epoch: int, logs: Mapping[str, Any], parms: Mapping[str, np.ndarray]) -> None:
        if self.path is None:
            return
        path = self.path.format(epoch=epoch, **_scalars(logs))
        save_parms(parms, path)
        self.saved.append(path)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        current = float(logs[self.monitor])
        if self._improved(current):
            self.best, self.best_epoch = current, epoch
            self.best_parms = get_parms(self.model)
            self._save(epoch, logs, self.best_parms)
        elif not self.save_best_only:
            self._save(epoch, logs, get_parms(self.model))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best and self.best_parms is not None:
            set_parms(self.model, self.best_parms)


class CSVLogger(Callback):
    """Writes one row per epoch to a CSV file: ``epoch`` then the scalar logs (loss, accuracy, test_loss,
    ..., lr; a rate per group as lr_0, lr_1, ...). Array metrics (batchloss, predict, ...) are left out.
    With ``append``, rows go after an existing file's (its header is kept)."""

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        self.path = _path("CSVLogger", "path", path)
        if not isinstance(separator, str) or len(separator) != 1:
            raise TypeError(f"CSVLogger: separator expects one character, given {_given(separator)}")
        self.separator = separator
        self.append = bool(append)
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._keys = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
        self._file = open(self.path, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._file is None:
            return
        row = _scalars(logs or {})
        if self._writer is None:
            if self._keys is None:
                self._keys = list(row)
                csv.writer(self._file, delimiter=self.separator).writerow(["epoch", *self._keys])
            self._writer = csv.DictWriter(self._file, ["epoch", *self._keys], delimiter=self.separator,
                                          extrasaction="ignore", restval="")
        self._writer.writerow({"epoch": epoch, **{k: repr(v) for k, v in row.items()}})
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None


class TensorBoard(Callback):
    """Writes the scalar logs per epoch (tags as the log names: loss, test_loss, accuracy, lr, ...) and,
    with ``batchloss`` in the training metrics, each batch's loss (tag ``batchloss``, step = batches so
    far) to TensorBoard event files in ``logdir``, with ``torch.utils.tensorboard.SummaryWriter``
    (needs the ``tensorboard`` package). View with ``tensorboard --logdir <logdir>``."""

    def __init__(self, logdir: str | os.PathLike[str] = "runs") -> None:
        self.logdir = _path("TensorBoard", "logdir", logdir)
        self.writer: Any = None
        self._step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # pragma: no cover - tensorboard is an optional dependency
            raise ImportError("TensorBoard: needs the tensorboard package (pip install tensorboard)") from e
        self.writer = SummaryWriter(log_dir=self.logdir)
        self._step = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.writer is None:
            return
        logs = logs or {}
        for k, v in _scalars(logs).items():
            self.writer.add_scalar(k, v, epoch)
        bl = logs.get("batchloss")
        if isinstance(bl, np.ndarray) and bl.ndim == 1:
            for b in bl:
                self.writer.add_scalar("batchloss", float(b), self._step)
                self._step += 1
        self.writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


# -- learning-rate schedules over kt.lr, stepped at each epoch's end as torch's schedulers are


class _Schedule(Callback):
    """Per group: base rates read with kt.lr when the fit begins; each epoch's end sets the next rates.
    The epoch count starts again with each fit."""

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.base_lrs = list(_kt.lr(self.model) or [])
        self.last_epoch = 0

    def _next(self, lrs: list[float]) -> list[float] | None:
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch += 1
        new = self._next(list(_kt.lr(self.model) or []))
        if new is not None:
            _kt.lr(self.model, new)


class StepLR(_Schedule):
    """Multiplies each group's rate by ``gamma`` every ``step_size`` epochs (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _int("StepLR", "step_size", step_size, 1)
        self.gamma = _num("StepLR", "gamma", gamma, low=0.0)

    def _next(self, lrs: list[float]) -> list[float] | None:
        if self.last_epoch % self.step_size != 0:
            return None
        return [lr * self.gamma for lr in lrs]


class CosineLR(_Schedule):
    """Cosine annealing from each group's rate to ``eta_min`` over ``T_max`` epochs, back up over the next
    T_max, and so on (torch.optim.lr_scheduler.CosineAnnealingLR, its recursive form)."""

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:  # torch's name
        self.T_max = _int("CosineLR", "T_max", T_max, 1)
        self.eta_min = _num("CosineLR", "eta_min", eta_min, low=0.0)

    def _next(self, lrs: list[float]) -> list[float] | None:
        e, t, eta = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - t) % (2 * t) == 0:
            return [lr + (base - eta) * (1 - math.cos(math.pi / t)) / 2
                    for lr, base in zip(lrs, self.base_lrs, strict=True)]
        return [(1 + math.cos(math.pi * e / t)) / (1 + math.cos(math.pi * (e - 1) / t)) * (lr - eta) + eta
                for lr in lrs]


class ReduceLROnPlateau(_Schedule):
    """Multiplies the rates by ``factor`` when ``monitor`` has not improved for more than ``patience``
    epochs (torch.optim.lr_scheduler.ReduceLROnPlateau: threshold, threshold_mode "rel"/"abs",
    cooldown, min_lr (one, or one per group), eps). mode "auto": max for accuracy, min otherwise."""

    _fn = "ReduceLROnPlateau"

    def __init__(self, monitor: str = "test_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0.0, eps: float = 1e-8) -> None:
        fn = self._fn
        self.monitor = _name(fn, "monitor", monitor)
        self.factor = _num(fn, "factor", factor, low=0.0, below=1.0)
        self.patience = _int(fn, "patience", patience, 0)
        self.mode = _choice(fn, "mode", mode, ("auto", "min", "max"))
        self.threshold = _num(fn, "threshold", threshold, low=0.0)
        self.threshold_mode = _choice(fn, "threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = _int(fn, "cooldown", cooldown, 0)
        if isinstance(min_lr, (list, tuple)):
            self.min_lr: float | list[float] = [_num(fn, "min_lr", x, low=0.0) for x in min_lr]
        else:
            self.min_lr = _num(fn, "min_lr", min_lr, low=0.0)
        self.eps = _num(fn, "eps", eps, low=0.0)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        _check_monitor(self._fn, self.monitor, self.params)
        n = len(self.base_lrs)
        if isinstance(self.min_lr, list) and len(self.min_lr) != n:
            raise _kt.KtorchError(f"{self._fn}: min_lr expects one rate per group ({n}), given {len(self.min_lr)}")
        self.min_lrs = self.min_lr if isinstance(self.min_lr, list) else [self.min_lr] * n
        self.best = math.inf if self._min else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    @property
    def _min(self) -> bool:
        return _mode(self.monitor, self.mode) == "min"

    def _is_better(self, a: float, best: float) -> bool:
        if self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold) if self._min else a > best * (self.threshold + 1.0)
        return a < best - self.threshold if self._min else a > best + self.threshold

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = float((logs or {})[self.monitor])
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            lrs = list(_kt.lr(self.model) or [])
            new = []
            for old, low in zip(lrs, self.min_lrs, strict=True):
                lr = max(old * self.factor, low)
                new.append(lr if old - lr > self.eps else old)
            _kt.lr(self.model, new)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
