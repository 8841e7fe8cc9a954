"""Bad input: each call raises kt.KtorchError or TypeError naming the function (or carrying
libtorch's own message), the interpreter survives, and the objects are unchanged."""

import numpy as np
import pytest
import torch

import ktorch as kt

torch.set_num_threads(1)

X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], dtype=np.int64)


class Env:
    def __init__(self):
        self.q = kt.module(kt.seq("sequential", ("linear", 4, 8), "relu", ("linear", 8, 3)))
        self.l = kt.loss("ce")
        self.o = kt.opt("sgd", self.q, 0.1, 0.9)
        self.m = kt.model(self.q, self.l, self.o)
        kt.train(self.m, {"batchsize": 4, "shuffle": False})
        kt.train(self.m, X, Y)
        self.t = kt.tensor(X)
        # an optimizer with 3 groups
        self.o3 = kt.opt("sgd", kt.module(("linear", 2, 2)))
        kt.opt(self.o3, 1, kt.module(("linear", 2, 2)))
        kt.opt(self.o3, 2, kt.module(("linear", 2, 2)))
        self.lstm = kt.module(("lstm", 4, 5))
        # freed handles of every class
        self.ft = kt.tensor(X)
        self.fv = kt.vector(X, X)
        self.fd = kt.dict({"a": X})
        self.fq = kt.module(("linear", 4, 3))
        self.fl = kt.loss("mse")
        self.fo = kt.opt("adam", kt.module(("linear", 2, 2)))
        self.fm = kt.model(kt.module(("linear", 4, 3)), kt.loss("ce"), kt.opt("sgd", kt.module(("linear", 4, 3))))
        kt.free(self.ft, self.fv, self.fd, self.fq, self.fl, self.fo)
        kt.free(self.fm)

    def snapshot(self):
        return {
            "parms": {n: kt.tensor(kt.parm(self.q, n)).copy() for n in kt.parmnames(self.q)},
            "train": dict(kt.train(self.m)),
            "test": dict(kt.test(self.m)),
            "lr": kt.lr(self.o),
            "lr3": kt.lr(self.o3),
            "t": kt.tensor(self.t).copy(),
            "size": kt.datasize(self.m),
            "data": [np.array(a).copy() for a in kt.data(self.m)],
        }


def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b


K, T = "KtorchError", "TypeError"

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # unknown names
    ("module-unknown", lambda e: kt.module("nosuch"), K, "module: unrecognized module type: nosuch"),
    ("module-unknown-in-seq", lambda e: kt.module(kt.seq("sequential", "relu", "nosuch")), K, "module: unrecognized module type"),
    ("loss-unknown", lambda e: kt.loss("nosuch"), K, "loss: unrecognized loss: nosuch"),
    ("opt-unknown", lambda e: kt.opt("nosuch", e.q), K, "opt: unrecognized optimizer: nosuch"),
    # wrong types
    ("module-int", lambda e: kt.module(3), K, "module:"),
    ("module-not-container", lambda e: kt.module(["relu", "relu"]), K, "relu: not a container"),
    ("forward-int", lambda e: kt.forward(3, X), T, "forward: expecting a Module or Model"),
    ("step-module", lambda e: kt.step(e.q), T, "step: expecting an Optimizer or Model"),
    ("lr-module", lambda e: kt.lr(e.q), T, "lr: expecting an Optimizer or Model"),
    ("model-wrong-order", lambda e: kt.model(e.l, e.l, e.o), T, "model"),
    ("tensor-object", lambda e: kt.tensor(object()), T, "tensor: expecting array data"),
    ("tensor-option-int", lambda e: kt.tensor(X, 3), T, "tensor: expecting option names as strings"),
    ("dict-int", lambda e: kt.dict(3), T, "dict:"),
    ("parm-int-name", lambda e: kt.parm(e.q, 3), T, "parm: expecting a parameter name"),
    ("opt-loss-params", lambda e: kt.opt("sgd", e.l), T, "opt: a Loss has no parameters"),
    ("opt-group-str", lambda e: kt.opt(e.o3, "x", e.q), T, "opt: group expects an integer"),
    ("clip-normtype-str", lambda e: kt.clip(e.q, 1.0, "x"), T, "clip: norm type expects a number"),
    ("run-module", lambda e: kt.run(e.q), T, "run: expecting a Model, given Module"),
    ("shuffle-str", lambda e: kt.train(e.m, "shuffle", "x"), K, "shuffle: value expects a boolean"),
    ("batchsize-str", lambda e: kt.train(e.m, "batchsize", "x"), K, "batchsize:"),
    # freed handles
    ("freed-tensor-values", lambda e: kt.tensor(e.ft), K, "tensor: Tensor has been freed"),
    ("freed-tensor-mul", lambda e: kt.mul(e.ft, e.ft), K, "mul: Tensor has been freed"),
    ("freed-tensor-size", lambda e: kt.size(e.ft), K, "size:"),
    ("freed-vector", lambda e: kt.vector(e.fv), K, "vector:"),
    ("freed-dict", lambda e: kt.dict(e.fd), K, "dict:"),
    ("freed-module-forward", lambda e: kt.forward(e.fq, X), K, "forward: Module has been freed"),
    ("freed-module-parmnames", lambda e: kt.parmnames(e.fq), K, "parmnames:"),
    ("freed-loss", lambda e: kt.loss(e.fl, X, X), K, "loss: Loss has been freed"),
    ("freed-opt-step", lambda e: kt.step(e.fo), K, "step: Optimizer has been freed"),
    ("freed-model-run", lambda e: kt.run(e.fm), K, "run: Model has been freed"),
    ("freed-model-train", lambda e: kt.train(e.fm, "batchsize"), K, "train:"),
    ("freed-in-model", lambda e: kt.model(e.fq, e.l, e.o), K, "model: Module has been freed"),
    # shapes
    ("forward-shape", lambda e: kt.forward(e.q, np.zeros((2, 5), np.float32)), K, "mat1 and mat2 shapes cannot be multiplied"),
    ("evaluate-shape", lambda e: kt.evaluate(e.q, np.zeros((2, 5), np.float32)), K, "mat1 and mat2"),
    ("forward-no-input", lambda e: kt.forward(kt.module(("linear", 4, 3))), K, "linear: forward"),
    ("lstm-hidden-only", lambda e: kt.forward(e.lstm, np.zeros((3, 2, 4), np.float32), np.zeros((1, 2, 5), np.float32)),
     K, "lstm: expects both hidden and cell state"),
    ("parm-size", lambda e: kt.parm(e.q, "0.weight", np.zeros((2, 2), np.float32)), K, "parm: parameter `0.weight` has size"),
    ("parm-name", lambda e: kt.parm(e.q, "nosuch"), K, "parm: parameter `nosuch` not found"),
    ("train-data-mismatch", lambda e: kt.train(e.m, X, Y[:5]), K, "train: tensor size mismatch, 10 vs 5"),
    # module settings
    ("linear-missing", lambda e: kt.module(("linear", 4)), K, "linear:"),
    ("linear-negative", lambda e: kt.module(("linear", -1, 3)), K, "linear: in must be positive"),
    ("linear-unknown-setting", lambda e: kt.module(("linear", 4, 3, {"nosuch": 1})), K, "linear: unrecognized option: nosuch"),
    ("conv-missing-size", lambda e: kt.module(("conv2d", 2, 3)), K, "conv2d:"),
    ("softmax-no-dim", lambda e: kt.module("softmax"), K, "softmax:"),
    ("drop-p", lambda e: kt.module(("drop", 1.5)), K, "drop: p must be in the range 0-1"),
    # options
    ("batchsize-negative", lambda e: kt.train(e.m, "batchsize", -1), K, "train: batchsize must be non-negative"),
    ("batchsize-negative-kw", lambda e: kt.train(e.m, batchsize=-3), K, "train:"),
    ("option-unknown", lambda e: kt.train(e.m, "nosuch", 1), K, "train: unrecognized option: nosuch"),
    ("option-unknown-dict", lambda e: kt.train(e.m, {"batchsize": 2, "nosuch": 1}), K, "train: unrecognized option"),
    ("option-bad-in-dict", lambda e: kt.train(e.m, {"batchsize": 2, "shuffle": True, "metrics": "nosuch"}), K, "metrics: unrecognized metric: nosuch"),
    ("metric-unknown", lambda e: kt.test(e.m, "metrics", ["loss", "nosuch"]), K, "metrics: unrecognized metric"),
    ("test-clipnorm", lambda e: kt.test(e.m, "clipnorm", 1.0), K, "clipnorm: not set for evaluation"),
    ("test-shuffle", lambda e: kt.test(e.m, "shuffle", True), K, "shuffle: not set for evaluation"),
    ("clipnorm-negative", lambda e: kt.train(e.m, "clipnorm", -1.0), K, "clipnorm"),
    ("task-range", lambda e: kt.train(e.m, {"tasks": 2, "task": 2}), K, "train: task 2 implies at least 3 tasks, but only 2 defined"),
    ("option-list-length", lambda e: kt.train(e.m, ["batchsize", "shuffle"], [3]), K, "train: 2 name(s) given with 1 value(s)"),
    # tensors
    ("tensor-mode", lambda e: kt.tensor("nosuch", [3]), K, "tensor: unrecognized creation mode: nosuch"),
    ("tensor-option", lambda e: kt.tensor(X, "nosuch"), K, "tensor: unrecognized tensor option: nosuch"),
    ("tensor-randn-option", lambda e: kt.tensor("randn", [3, 4], "nosuch"), K, "tensor: unrecognized tensor option"),
    ("tensor-randint-missing", lambda e: kt.tensor("randint", 10), K, "tensor:"),
    ("tensor-bad-device", lambda e: kt.tensor(X, "cuda:x"), K, "tensor: unrecognized device: cuda:x"),
    ("batch-size-range", lambda e: kt.batch(e.t, 20), K, "batch: size 20 not in the range 1-9"),
    ("batch-size-zero", lambda e: kt.batch(e.t, 0), K, "batch: size 0 not in the range 1-9"),
    ("batch-index", lambda e: kt.batch(e.t, 4, 5), K, "batch: batch[5] invalid, valid range is from 0-2"),
    # optimizers
    ("opt-group-too-big", lambda e: kt.opt(e.o3, 4, e.q), K, "opt: group 4 invalid, cannot be greater than number of groups(3)"),
    ("opt-group-missing-parms", lambda e: kt.opt(e.o3, 1), T, "opt: expecting (optimizer, group, parameters"),
    ("opt-lr-negative", lambda e: kt.opt("sgd", e.q, -1.0), K, "sgd: lr must be non-negative"),
    ("opt-adam-beta", lambda e: kt.opt("adam", e.q, 0.1, 2.0), K, "adam: beta1 must be in the range [0,1)"),
    ("opt-unknown-setting", lambda e: kt.opt("sgd", e.q, 0.1, nosuch=1), K, "sgd: unrecognized option: nosuch"),
    ("opt-group-bad-setting", lambda e: kt.opt(e.o3, 1, kt.module(("linear", 2, 2)), -5.0), K, "sgd: lr must be non-negative"),
    # losses
    ("loss-target-batch", lambda e: kt.loss(e.l, np.zeros((3, 4), np.float32), np.zeros(5, np.int64)), K, "ce:"),
    ("mse-shape", lambda e: kt.mse(np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32)), K, "mse: output size [3, 4] does not match target size [5, 2]"),
    ("loss-too-many-settings", lambda e: kt.loss("mse", 1, 2), K, "mse:"),
    ("loss-bad-reduction", lambda e: kt.loss("mse", {"reduce": "nosuch"}), K, "mse: reduce: unrecognized value `nosuch`"),
    ("model-loss-shape", lambda e: kt.loss(e.m, np.zeros((3, 3), np.float32), np.zeros(7, np.int64)), K, "ce:"),
    ("run-target-shape", lambda e: kt.backstep(e.m, X, np.zeros(3, np.int64)), K, "ce: Expected input batch_size (10) to match target batch_size (3)"),
    # step functions
    ("backward-args", lambda e: kt.backward(e.m, X), T, "backward: expecting (model) or (model, inputs, targets)"),
    ("backstep-args", lambda e: kt.backstep(e.m, X), T, "backstep: expecting (model) or (model, inputs, targets)"),
    ("run-args", lambda e: kt.run(e.m, X), T, "run: expecting (model) or (model, inputs, targets)"),
    ("clip-negative", lambda e: kt.clip(e.q, -1.0), K, "clip: maximum norm must be non-negative"),
]


def check_msg(msg, want):
    if want.endswith(":"):
        assert msg.startswith(want), msg
    else:
        assert want in msg, msg


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    e = Env()
    before = e.snapshot()
    with pytest.raises((kt.KtorchError, TypeError)) as info:
        call(e)
    assert type(info.value).__name__ == exc, f"{type(info.value).__name__}: {info.value}"
    check_msg(str(info.value), want)
    assert same(e.snapshot(), before)
    # the interpreter and the objects still work
    out = kt.evaluate(e.q, X)
    assert out.shape == (10, 3)
    assert kt.run(e.m) is not None or True
    assert kt.datasize(e.m) == 10


def test_ktorcherror_is_runtimeerror():
    assert issubclass(kt.KtorchError, RuntimeError)


def test_backward_twice_libtorch_message():
    x = kt.tensor(X, "grad")
    y = kt.mean(kt.mul(x, x))
    kt.backward(y)
    g1 = kt.grad(x).copy()
    with pytest.raises(kt.KtorchError, match="backward through the graph a second time"):
        kt.backward(y)
    np.testing.assert_array_equal(kt.grad(x), g1)


def test_failed_option_set_restores_all():
    e = Env()
    before = kt.train(e.m)
    with pytest.raises(kt.KtorchError):
        kt.train(e.m, {"batchsize": 3, "droplast": True, "shuffle": True, "clipnorm": 1.0, "nosuch": 2})
    assert same(kt.train(e.m), before)
    assert kt.train(e.m, "batchsize") == 4


def test_freed_handle_free_again_and_survives():
    t = kt.tensor(X)
    kt.free(t)
    with pytest.raises(kt.KtorchError, match="^size:"):
        kt.size(t)
    with pytest.raises(kt.KtorchError, match="^info:"):
        kt.info(t)
    with pytest.raises(kt.KtorchError, match="^tensor:"):
        kt.tensor(t)


def test_addref_survives_free():
    t = kt.tensor(X)
    t2 = kt.addref(t)
    kt.free(t)
    np.testing.assert_array_equal(kt.tensor(t2), X)
    with pytest.raises(kt.KtorchError):
        kt.tensor(t)
