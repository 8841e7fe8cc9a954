"""kt.fit and kt.callbacks: history against explicit run/testrun loops, early stopping, best-model keeping,
CSV and TensorBoard logs, learning-rate schedules against torch's, bad arguments, Ctrl-C."""

import csv
import os
import signal

import numpy as np
import pytest
import torch
from conftest import spirals

import ktorch as kt
from ktorch import callbacks as cb

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one libtorch thread


X, Y = spirals(100, 3, 0)
XT, YT = spirals(50, 3, 1)
TRAIN = {"batchsize": 60, "shuffle": True, "metrics": ["loss", "accuracy", "batchloss"]}
TEST = {"batchsize": 1000, "metrics": ["loss", "accuracy"]}


def _model(seed=5, train=None, test=None, lr=0.2, with_test=True, groups=1):
    """The spiral model on small data; groups=2 adds a second parameter group (rate 0.05, no gradients)."""
    kt.seed(seed)
    q = kt.module(kt.seq("sequential", ("linear", 2, 16), "relu", ("linear", 16, 3)))
    o = kt.opt("sgd", q, lr, 0.9)
    if groups == 2:
        kt.opt(o, 1, kt.module(("linear", 2, 2)))
        kt.lr(o, [lr, 0.05])
    m = kt.model(q, kt.loss("ce"), o)
    kt.train(m, **(TRAIN if train is None else train))
    kt.test(m, **(TEST if test is None else test))
    kt.train(m, X, Y)
    if with_test:
        kt.test(m, XT, YT)
    return m


def _equal(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


class Inject(cb.Callback):
    """Replaces a log value by a constructed sequence (placed before the callbacks that read it)."""

    def __init__(self, name, values):
        self.name, self.values = name, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]


class Snap(cb.Callback):
    """The parameters at each epoch's end, and which hooks ran."""

    def __init__(self):
        self.parms, self.calls = [], []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"begin{epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"end{epoch}")
        self.parms.append(cb.get_parms(self.model))

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


# -- history


@pytest.mark.parametrize("extra", [{}, {"dictionary": True}, {"dictionary": True, "tensor": True}, {"tensor": True}])
def test_history_matches_explicit_loop(extra):
    m = _model(train={**TRAIN, **extra}, test={**TEST, **extra})
    h = kt.fit(m, 4, verbose=0)
    assert len(h) == 4 and h.epoch == [0, 1, 2, 3]
    assert h.keys() == ["loss", "accuracy", "batchloss", "test_loss", "test_accuracy", "lr"]
    m2 = _model()  # same seed, same weights and shuffles
    for e in range(4):
        loss, acc, bl = kt.run(m2)
        tloss, tacc = kt.testrun(m2)
        assert h["loss"][e] == float(loss) and h["accuracy"][e] == float(acc)
        np.testing.assert_array_equal(h["batchloss"][e], bl)
        assert h["test_loss"][e] == float(tloss) and h["test_accuracy"][e] == float(tacc)
        assert h["lr"][e] == 0.2
    assert isinstance(h["loss"][0], float) and h["batchloss"][0].shape == (5,)
    np.testing.assert_array_equal(kt.tensor(kt.parm(m, "0.weight")), kt.tensor(kt.parm(m2, "0.weight")))


def test_single_metric_and_array_metrics():
    m = _model(train={"batchsize": 100, "metrics": "accuracy"}, test={"metrics": ["predict"]})
    h = kt.fit(m, 2, verbose=0)
    assert h.keys() == ["accuracy", "test_predict", "lr"]
    assert all(isinstance(a, float) for a in h["accuracy"])
    assert h["test_predict"][0].shape == (150,)
    m = _model(train={"batchsize": 100, "metrics": []}, test={"metrics": "loss"})
    assert kt.fit(m, 1, verbose=0).keys() == ["test_loss", "lr"]


def test_test_pass_when_data_and_asked():
    m = _model(with_test=False)
    h = kt.fit(m, 2, verbose=0)
    assert "test_loss" not in h and len(h["loss"]) == 2
    with pytest.raises(kt.KtorchError, match="fit: test is True but the model has no test data"):
        kt.fit(m, 1, test=True)
    m = _model()
    assert "test_loss" not in kt.fit(m, 1, test=False, verbose=0)


def test_lr_per_group_and_verbose_lines(capsys):
    m = _model(groups=2)
    h = kt.fit(m, 2, verbose=1)
    assert h["lr"] == [[0.2, 0.05], [0.2, 0.05]]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2  loss ") and "test_accuracy" in out[1]
    assert "lr 0.2 0.05" in out[0]
    kt.fit(m, 1, verbose=0)
    assert capsys.readouterr().out == ""


def test_history_argument_and_callback_order():
    m, h, s = _model(), cb.History(), Snap()
    assert kt.fit(m, 2, callbacks=s, history=h, verbose=0) is h
    assert s.calls == ["train_begin", "begin0", "end0", "begin1", "end1", "train_end"]
    assert s.params["metrics"] == TRAIN["metrics"] and s.params["scalars"] == [
        "loss", "accuracy", "test_loss", "test_accuracy"]
    kt.fit(m, 1, history=h, verbose=0)  # appends
    assert len(h) == 3 and h.epoch == [0, 1, 0]


def test_stop_training_from_a_callback():
    class Stop(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.stop_training = epoch == 1

    h = kt.fit(_model(), 10, callbacks=[Stop()], verbose=0)
    assert len(h) == 2


# -- early stopping and best parameters

SEQ = [5.0, 4.0, 3.0, 3.5, 3.2, 2.9, 3.0, 3.1, 3.3, 3.4, 3.5, 3.6]


@pytest.mark.parametrize("kw, monitor, values, stopped, best_epoch", [
    ({"patience": 2}, "test_loss", SEQ, 4, 2),
    ({"patience": 3}, "test_loss", SEQ, 8, 5),
    ({"patience": 0}, "test_loss", SEQ, 3, 2),
    ({"patience": 1}, "test_loss", SEQ, 3, 2),
    ({"patience": 3, "min_delta": 0.2}, "test_loss", SEQ, 5, 2),
    ({"patience": 20}, "test_loss", SEQ, None, 5),
    ({"patience": 2}, "test_accuracy", [10, 20, 30, 25, 40, 39, 38, 50], 6, 4),  # auto: max
    ({"patience": 2, "mode": "max"}, "loss", [1.0, 2.0, 1.0, 1.5, 1.7, 2.0, 3.0], 3, 1),
    ({"patience": 2}, "test_loss", [1.0, float("nan"), float("nan"), 0.5], 2, 0),
])
def test_early_stopping_on_constructed_sequence(kw, monitor, values, stopped, best_epoch):
    es = cb.EarlyStopping(monitor=monitor, **kw)
    h = kt.fit(_model(), len(values), callbacks=[Inject(monitor, values), es], verbose=0)
    assert es.stopped_epoch == stopped and es.best_epoch == best_epoch
    assert len(h) == (len(values) if stopped is None else stopped + 1)
    assert es.best == values[best_epoch]


def test_early_stopping_restores_the_best_epochs_parameters():
    values = [3.0, 2.0, 1.0, 1.5, 1.6, 1.7, 1.8]
    s, es = Snap(), cb.EarlyStopping(patience=3, restore_best=True)
    kt.fit(_model(), 7, callbacks=[Inject("test_loss", values), s, es], verbose=0)
    assert es.stopped_epoch == 5 and len(s.parms) == 6
    now = cb.get_parms(es.model)
    for k, v in s.parms[2].items():
        np.testing.assert_array_equal(now[k], v)
    assert not np.array_equal(now["0.weight"], s.parms[5]["0.weight"])


def test_checkpoint_keeps_and_restores_the_best_by_real_test_loss(tmp_path):
    s = Snap()
    ck = cb.ModelCheckpoint(str(tmp_path / "best-{epoch:02d}-{test_loss:.3f}.npz"), restore_best=True)
    m = _model(lr=0.5)
    h = kt.fit(m, 8, callbacks=[s, ck], verbose=0)
    best = int(np.argmin(h["test_loss"]))
    assert ck.best_epoch == best and ck.best == h["test_loss"][best]
    for k, v in s.parms[best].items():
        np.testing.assert_array_equal(ck.best_parms[k], v)
        np.testing.assert_array_equal(kt.tensor(kt.parm(m, k)), v)
    assert all(os.path.exists(p) for p in ck.saved) and ck.saved[-1].endswith(
        f"best-{best:02d}-{h['test_loss'][best]:.3f}.npz")
    m2 = _model(seed=99)
    cb.load_parms(m2, ck.saved[-1])
    for k, v in s.parms[best].items():
        np.testing.assert_array_equal(kt.tensor(kt.parm(m2, k)), v)


def test_checkpoint_every_epoch_and_without_restore(tmp_path):
    ck = cb.ModelCheckpoint(tmp_path / "e{epoch}.npz", monitor="loss", save_best_only=False)
    m = _model()
    kt.fit(m, 3, callbacks=[ck], verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["e0.npz", "e1.npz", "e2.npz"]
    with np.load(tmp_path / "e2.npz") as f:  # the last epoch's file holds the current parameters
        np.testing.assert_array_equal(f["2.bias"], kt.tensor(kt.parm(m, "2.bias")))
    cb.save_parms(m, tmp_path / "now.npz")
    assert set(np.load(tmp_path / "now.npz").files) == set(kt.parmnames(m))


# -- CSV and TensorBoard


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    h = kt.fit(_model(), 3, callbacks=[cb.CSVLogger(path)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "test_loss", "test_accuracy", "lr"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for i, name in enumerate(rows[0][1:], 1):
        assert [float(r[i]) for r in rows[1:]] == h[name]  # exact: written with repr
    m = _model(groups=2)
    kt.fit(m, 2, callbacks=[cb.CSVLogger(path, append=True)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 6 and rows[0][0] == "epoch" and [r[0] for r in rows[4:]] == ["0", "1"]
    assert rows[4][-1] == ""  # lr_0, lr_1 are not columns of the appended file's header
    kt.fit(m, 1, callbacks=[cb.CSVLogger(tmp_path / "g.csv", separator=";")], verbose=0)
    assert (tmp_path / "g.csv").read_text().splitlines()[0].endswith(";lr_0;lr_1")


def test_tensorboard_events_readable(tmp_path):
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

    h = kt.fit(_model(), 3, callbacks=[cb.TensorBoard(tmp_path)], verbose=0)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))
    ea = ea_module.EventAccumulator(str(tmp_path))
    ea.Reload()
    tags = ea.Tags()["scalars"]
    assert set(tags) == {"loss", "accuracy", "test_loss", "test_accuracy", "lr", "batchloss"}
    for name in ("loss", "test_loss", "test_accuracy", "lr"):
        ev = ea.Scalars(name)
        assert [e.step for e in ev] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in ev], h[name], rtol=1e-6)
    bl = ea.Scalars("batchloss")
    assert [e.step for e in bl] == list(range(15))
    np.testing.assert_allclose([e.value for e in bl], np.concatenate(h["batchloss"]), rtol=1e-6)


# -- learning-rate schedules against torch.optim.lr_scheduler


def _torch_rates(make, epochs, metrics=None, rates=(0.2, 0.05)):
    ps = [torch.zeros(1, requires_grad=True) for _ in rates]
    o = torch.optim.SGD([{"params": [p], "lr": r} for p, r in zip(ps, rates, strict=True)])
    s = make(o)
    out = []
    for e in range(epochs):
        out.append([g["lr"] for g in o.param_groups])
        o.step()
        s.step() if metrics is None else s.step(metrics[e])
    return out


@pytest.mark.parametrize("ours, theirs, epochs", [
    (lambda: cb.StepLR(3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 10),
    (lambda: cb.StepLR(1), lambda o: torch.optim.lr_scheduler.StepLR(o, 1), 5),
    (lambda: cb.CosineLR(4, 0.01), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 4, 0.01), 13),
    (lambda: cb.CosineLR(5), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5), 12),
])
def test_schedules_equal_torch(ours, theirs, epochs):
    m = _model(groups=2)
    h = kt.fit(m, epochs, callbacks=[ours()], verbose=0)
    assert h["lr"] == _torch_rates(theirs, epochs)  # exact


SEQ_P = [1.0, 0.9, 0.95, 0.95, 0.96, 0.8, 0.85, 0.9, 0.91, 0.7, 0.75, 0.76, 0.77, 0.78, 0.79, 0.6]


@pytest.mark.parametrize("kw, tkw, monitor", [
    ({"factor": 0.5, "patience": 1}, {"factor": 0.5, "patience": 1}, "test_loss"),
    ({"factor": 0.5, "patience": 0, "cooldown": 2, "min_lr": [0.03, 0.01]},
     {"factor": 0.5, "patience": 0, "cooldown": 2, "min_lr": [0.03, 0.01]}, "test_loss"),
    ({"factor": 0.2, "patience": 1, "threshold": 0.06, "threshold_mode": "abs"},
     {"factor": 0.2, "patience": 1, "threshold": 0.06, "threshold_mode": "abs"}, "loss"),
    ({"factor": 0.5, "patience": 1, "mode": "max"}, {"factor": 0.5, "patience": 1, "mode": "max"}, "test_loss"),
    ({"factor": 0.5, "patience": 1}, {"factor": 0.5, "patience": 1, "mode": "max"}, "test_accuracy"),  # auto: max
])
def test_reduce_on_plateau_equals_torch(kw, tkw, monitor):
    m = _model(groups=2)
    h = kt.fit(m, len(SEQ_P), callbacks=[Inject(monitor, SEQ_P), cb.ReduceLROnPlateau(monitor, **kw)], verbose=0)
    assert h["lr"] == _torch_rates(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **tkw), len(SEQ_P), SEQ_P)


def test_reduce_on_plateau_on_real_test_loss():
    m = _model(lr=0.9)
    h = kt.fit(m, 12, callbacks=[cb.ReduceLROnPlateau(factor=0.5, patience=0)], verbose=0)
    expect = _torch_rates(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=0),
                          12, h["test_loss"], rates=(0.9,))
    assert h["lr"] == [r[0] for r in expect]


# -- bad arguments


def test_fit_bad_arguments():
    m = _model()
    for epochs, err, msg in [(0, kt.KtorchError, "fit: epochs expects a positive integer, given 0"),
                             (-3, kt.KtorchError, "fit: epochs expects a positive integer, given -3"),
                             (2.5, TypeError, "fit: epochs expects a positive integer, given 2.5"),
                             ("3", TypeError, "fit: epochs expects a positive integer, given '3'"),
                             (True, TypeError, "fit: epochs expects a positive integer, given True")]:
        with pytest.raises(err, match=msg):
            kt.fit(m, epochs)
    assert len(kt.fit(m, np.int64(1), verbose=0)) == 1
    with pytest.raises(TypeError, match="fit: model expects a Model, given"):
        kt.fit(kt.module("relu"), 1)
    with pytest.raises(TypeError, match="fit: callbacks expects Callback objects .* given object at index 1"):
        kt.fit(m, 1, callbacks=[cb.StepLR(1), object()])
    with pytest.raises(TypeError, match="fit: callbacks expects a list of Callback objects"):
        kt.fit(m, 1, callbacks=print)
    with pytest.raises(kt.KtorchError, match="fit: verbose expects 0, 1 or 2, given 5"):
        kt.fit(m, 1, verbose=5)
    with pytest.raises(TypeError, match="fit: test expects None, True or False"):
        kt.fit(m, 1, test="yes")
    with pytest.raises(TypeError, match="fit: history expects a History"):
        kt.fit(m, 1, history={})
    q = kt.module(("linear", 2, 3))
    with pytest.raises(kt.KtorchError, match="fit: the model has no training data"):
        kt.fit(kt.model(q, kt.loss("ce"), kt.opt("sgd", q)), 1)


def test_callback_bad_arguments(tmp_path):
    m = _model()
    log = cb.CSVLogger(tmp_path / "x.csv")
    with pytest.raises(kt.KtorchError, match=r"EarlyStopping: monitor expects a scalar metric of this fit, one of "
                                             r"loss, accuracy, test_loss, test_accuracy, given 'val_loss'"):
        kt.fit(m, 1, callbacks=[log, cb.EarlyStopping("val_loss")])
    assert log._file is None  # the callbacks begun before were ended
    with pytest.raises(kt.KtorchError, match="ModelCheckpoint: monitor .* given 'batchloss'"):
        kt.fit(m, 1, callbacks=[cb.ModelCheckpoint(monitor="batchloss")])
    with pytest.raises(kt.KtorchError, match="ModelCheckpoint: path names 'val_loss', not epoch or a scalar log"):
        kt.fit(m, 1, callbacks=[cb.ModelCheckpoint(tmp_path / "{epoch}-{val_loss:.2f}.npz")])
    with pytest.raises(kt.KtorchError, match="ReduceLROnPlateau: monitor .* given 'test_loss'"):
        kt.fit(_model(with_test=False), 1, callbacks=[cb.ReduceLROnPlateau()])
    with pytest.raises(kt.KtorchError, match="ReduceLROnPlateau: min_lr expects one rate per group"):
        kt.fit(m, 1, callbacks=[cb.ReduceLROnPlateau(min_lr=[0.1, 0.1])])
    for make, err, msg in [
        (lambda: cb.EarlyStopping(3), TypeError, "EarlyStopping: monitor expects a metric name"),
        (lambda: cb.EarlyStopping(patience=-1), kt.KtorchError, "EarlyStopping: patience expects an integer >= 0"),
        (lambda: cb.EarlyStopping(mode="up"), kt.KtorchError, "EarlyStopping: mode expects one of auto, min, max"),
        (lambda: cb.EarlyStopping(min_delta=-1), kt.KtorchError, "EarlyStopping: min_delta expects a number >= 0"),
        (lambda: cb.StepLR(0), kt.KtorchError, "StepLR: step_size expects a positive integer, given 0"),
        (lambda: cb.StepLR(1.5), TypeError, "StepLR: step_size expects a positive integer, given 1.5"),
        (lambda: cb.CosineLR(4, "0"), TypeError, "CosineLR: eta_min expects a number"),
        (lambda: cb.ReduceLROnPlateau(factor=1.0), kt.KtorchError,
         "ReduceLROnPlateau: factor expects a number >= 0 and < 1, given 1.0"),
        (lambda: cb.ReduceLROnPlateau(threshold_mode="x"), kt.KtorchError, "threshold_mode expects one of rel, abs"),
        (lambda: cb.CSVLogger(3), TypeError, "CSVLogger: path expects a file path"),
        (lambda: cb.CSVLogger("a.csv", separator=";;"), TypeError, "CSVLogger: separator expects one character"),
        (lambda: cb.TensorBoard(None), TypeError, "TensorBoard: logdir expects a file path"),
    ]:
        with pytest.raises(err, match=msg):
            make()


# -- Ctrl-C


def test_interrupt_ends_callbacks_and_keeps_history(tmp_path):
    class Interrupt(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    s, es, h = Snap(), cb.EarlyStopping(patience=10, restore_best=True), cb.History()
    m = _model()
    values = [3.0, 1.0, 2.0]
    with pytest.raises(KeyboardInterrupt) as ei:
        kt.fit(m, 10, callbacks=[Inject("test_loss", values), s, es, cb.CSVLogger(tmp_path / "l.csv"), Interrupt()],
               history=h, verbose=0)
    assert ei.value.history is h and len(h) == 3
    assert s.calls[-1] == "train_end"
    np.testing.assert_array_equal(kt.tensor(kt.parm(m, "0.weight")), s.parms[1]["0.weight"])  # best restored
    assert len((tmp_path / "l.csv").read_text().splitlines()) == 4  # header and 3 epochs, closed


def test_sigint_during_fit():
    class Kill(cb.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    s = Snap()
    with pytest.raises(KeyboardInterrupt) as ei:
        kt.fit(_model(), 5, callbacks=[Kill(), s], verbose=0)
    assert len(ei.value.history) == 1 and s.calls[-1] == "train_end"
