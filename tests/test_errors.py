"""Bad input: each call raises kt.KtorchError or TypeError naming the function (or carrying
libtorch's own message), the interpreter survives, and the objects are unchanged."""

import warnings

import numpy as np
import pytest
import torch

import ktorch as kt

torch.set_num_threads(1)

X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], dtype=np.int64)
XC = np.arange(18, dtype=np.float32).reshape(6, 3) / 10
YC = np.ones((6, 3), np.float32)
F32, F64, I64 = np.float32, np.float64, np.int64
NAN, INF = float("nan"), float("inf")


def quiet(make):
    """A torch tensor made without torch's beta/prototype warnings (pytest makes warnings errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


# torch.Tensor kinds tch cannot hold or ktorch does not compute with (issue 8, item 3)
TX = torch.from_numpy(X)
ODD = {
    "coo": quiet(lambda: TX.to_sparse()),
    "csr": quiet(lambda: TX.to_sparse_csr()),
    "mkldnn": quiet(lambda: TX.to_mkldnn()),
    "jagged": quiet(lambda: torch.nested.nested_tensor([torch.zeros(8), torch.zeros(3)], layout=torch.jagged)),
    "nested": quiet(lambda: torch.nested.nested_tensor([torch.zeros(8), torch.zeros(3)])),
    "meta": torch.empty(10, 4, device="meta"),
    "float8": torch.zeros(10, dtype=torch.float8_e4m3fn),
    "qint8": torch.quantize_per_tensor(TX, 0.1, 0, torch.qint8),
    "uint64big": torch.tensor([2**63] * 10, dtype=torch.uint64),
    "complex32": quiet(lambda: torch.zeros(3, 4, dtype=torch.complex32)),
    "bits8": torch.zeros(10, 3, dtype=torch.bits8),
    "int4": torch.zeros(10, 4, dtype=torch.int4),
    "float4": torch.zeros(10, 4, dtype=torch.float4_e2m1fn_x2),
}


def freed(h):
    kt.free(h)
    return h


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
        # a model with no data at all (calls in the wrong order)
        self.q0 = kt.module(("linear", 4, 3))
        self.m0 = kt.model(self.q0, kt.loss("ce"), kt.opt("sgd", self.q0, 0.1))
        # a callback module whose behaviour each case picks
        self.cbmode = "ok"
        self.cq = kt.module(("callback", "cb", self._cb, {"parms": {"x": [0.5, 2.5, 3]}}))
        self.cm = kt.model(self.cq, kt.loss("mse"), kt.opt("sgd", self.cq, 0.1))
        kt.train(self.cm, {"batchsize": 2, "shuffle": False})
        kt.train(self.cm, XC, YC)

    def _cb(self, mod, x):
        mode = self.cbmode
        if mode == "raise":
            raise ValueError("boom")
        if mode == "none":
            return None
        if mode == "str":
            return "abc"
        if mode == "shape":
            return torch.zeros(7)
        if mode == "sparse":
            return ODD["coo"]
        if mode == "uint64":
            return torch.tensor([[2**63] * 3] * 2, dtype=torch.uint64)
        if mode == "reenter-model":
            kt.train(self.cm, "batchsize")
        if mode == "reenter-module":
            kt.forward(self.cq, x)
        if mode == "reenter-parm":
            kt.parm(self.cq, "x")
        return kt.mul(kt.parm(mod, "x"), x)

    def cb(self, mode, call):
        self.cbmode = mode
        try:
            return call()
        finally:
            self.cbmode = "ok"

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
            "parms0": {n: kt.tensor(kt.parm(self.q0, n)).copy() for n in kt.parmnames(self.q0)},
            "size0": kt.datasize(self.m0),
            "cx": kt.tensor(kt.parm(self.cq, "x")).copy(),
            "ctrain": dict(kt.train(self.cm)),
            "csize": kt.datasize(self.cm),
            "cdata": [np.array(a).copy() for a in kt.data(self.cm)],
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
    ("loss-target-batch", lambda e: kt.loss(e.l, np.zeros((3, 4), np.float32), np.zeros(5, np.int64)), K, "loss: ce:"),
    ("mse-shape", lambda e: kt.mse(np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32)), K, "mse: output size [3, 4] does not match target size [5, 2]"),
    ("loss-too-many-settings", lambda e: kt.loss("mse", 1, 2), K, "mse:"),
    ("loss-bad-reduction", lambda e: kt.loss("mse", {"reduce": "nosuch"}), K, "mse: reduce: unrecognized value `nosuch`"),
    ("model-loss-shape", lambda e: kt.loss(e.m, np.zeros((3, 3), np.float32), np.zeros(7, np.int64)), K, "loss: ce:"),
    ("run-target-shape", lambda e: kt.backstep(e.m, X, np.zeros(3, np.int64)), K, "ce: Expected input batch_size (10) to match target batch_size (3)"),
    # step functions
    ("backward-args", lambda e: kt.backward(e.m, X), T, "backward: expecting (model) or (model, inputs, targets)"),
    ("backstep-args", lambda e: kt.backstep(e.m, X), T, "backstep: expecting (model) or (model, inputs, targets)"),
    ("run-args", lambda e: kt.run(e.m, X), T, "run: expecting (model) or (model, inputs, targets)"),
    ("clip-negative", lambda e: kt.clip(e.q, -1.0), K, "clip: maximum norm must be non-negative"),
    # --- wrong types and arities, None where data is needed ---
    ("tensor-none", lambda e: kt.tensor(None), T, "tensor: expecting array data"),
    ("vector-none", lambda e: kt.vector(X, None), T, "vector: expecting array data"),
    ("dict-none-value", lambda e: kt.dict({"a": None}), T, "dict: expecting array data"),
    ("dict-int-key", lambda e: kt.dict({1: X}), T, "dict: dictionary keys must be strings"),
    ("mul-none", lambda e: kt.mul(None, X), T, "mul: expecting array data"),
    ("add-arity", lambda e: kt.add(X), T, "add()"),
    ("model-none", lambda e: kt.model(None, None, None), T, "model: module expects a Module, given NoneType"),
    ("model-arity", lambda e: kt.model(e.q, e.l), T, "model()"),
    ("opt-none", lambda e: kt.opt(None), T, "opt: expecting an optimizer name"),
    ("loss-arity", lambda e: kt.loss(e.l, X), T, "loss: expecting (loss or model, output, target)"),
    ("module-none", lambda e: kt.module(None), K, "module: expecting a module type"),
    ("train-none-data", lambda e: kt.train(e.m, None), T, "train: expecting data"),
    ("train-no-args", lambda e: kt.train(), T, "train: expecting a Model"),
    ("train-3-data-args", lambda e: kt.train(e.m, X, Y, Y), T, "train: expecting (model, inputs[, targets])"),
    ("train-pos-and-kw", lambda e: kt.train(e.m, "batchsize", 3, shuffle=True), T, "train: options given both by position and by keyword"),
    ("train-scalar-data", lambda e: kt.train(e.m, 5), K, "train: data must have at least one dimension"),
    ("train-ragged-data", lambda e: kt.train(e.m, [[1.0], [1.0, 2.0]], Y), T, "train: cannot make a tensor"),
    ("input-scalar", lambda e: kt.input(e.m, 3.0), K, "input: data must have at least one dimension"),
    ("forward-none-input", lambda e: kt.forward(e.q, None), T, "forward: expecting data"),
    ("forward-no-args", lambda e: kt.forward(), T, "forward: expecting a Module or Model"),
    ("backward-int", lambda e: kt.backward(3), T, "backward: expecting a Tensor, Vector, Dict or Model"),
    ("backward-bad-mode", lambda e: kt.backward(kt.mean(kt.tensor(X, "grad")), "nosuch"), K, "backward: unrecognized mode: nosuch"),
    ("zerograd-int", lambda e: kt.zerograd(3), T, "zerograd: expecting"),
    ("nograd-loss", lambda e: kt.nograd(e.l), T, "nograd: a Loss has no parameters"),
    ("clip-loss", lambda e: kt.clip(e.l, 1.0), T, "clip: a Loss has no parameters"),
    ("free-int", lambda e: kt.free(3), T, "free: expecting a ktorch handle"),
    ("addref-int", lambda e: kt.addref(3), T, "addref: expecting a ktorch handle"),
    ("use-class-mismatch", lambda e: kt.use(e.t, e.q), T, "use: expecting a second Tensor"),
    ("objclass-int", lambda e: kt.objclass(3), T, "objclass: expecting a ktorch handle"),
    ("seed-str", lambda e: kt.seed("x"), T, "seed: expecting an integer seed"),
    ("grad-module", lambda e: kt.grad(e.q), T, "grad: expecting a Tensor, Vector or Dict"),
    ("parmnames-loss", lambda e: kt.parmnames(e.l), T, "parmnames: expecting a Module or Model"),
    ("parm-value-str", lambda e: kt.parm(e.q, "0.bias", "abc"), T, "parm: expecting array data"),
    ("datasize-tensor", lambda e: kt.datasize(e.t), T, "datasize: expecting a Model"),
    ("batchinit-tensor", lambda e: kt.batchinit(e.t), T, "batchinit: expecting a Model"),
    ("unshuffle-tensor", lambda e: kt.unshuffle(e.t), T, "unshuffle: expecting a Model"),
    ("restore-int", lambda e: kt.restore(3), T, "restore: expecting a Model, Tensor, Vector or Dict"),
    ("shuffle-int", lambda e: kt.shuffle(3), T, "shuffle: expecting a Model, Tensor, Vector or Dict"),
    ("batch-model-size", lambda e: kt.batch(e.m, 3), T, "batch: batch(model) takes no size"),
    ("batch-tensor-no-size", lambda e: kt.batch(e.t), T, "batch: expecting a batch size"),
    ("batch-tensor-float-size", lambda e: kt.batch(e.t, 2.5), K, "batch: size expects an integer"),
    ("tensor-ragged", lambda e: kt.tensor([[1, 2], [3]]), T, "tensor: cannot make a tensor"),
    ("tensor-str-array", lambda e: kt.tensor(np.array(["a", "b"])), T, "tensor: cannot make a tensor from array of dtype <U1"),
    ("tensor-object-array", lambda e: kt.tensor(np.array([1, "a"], dtype=object)), T, "tensor: cannot make a tensor from array of dtype object"),
    ("metrics-int", lambda e: kt.train(e.m, "metrics", 3), K, "metrics: value expects a symbol"),
    # --- freed handles ---
    ("freed-vector-forward", lambda e: kt.forward(e.q, e.fv), K, "forward: Vector has been freed"),
    ("freed-dict-select", lambda e: kt.train(e.m, (e.fd, ["a"]), Y), K, "train: Dict has been freed"),
    ("freed-tensor-train", lambda e: kt.train(e.m, e.ft, Y), K, "train: Tensor has been freed"),
    ("freed-free-again", lambda e: kt.free(e.ft), K, "free: Tensor has been freed"),
    ("freed-addref", lambda e: kt.addref(e.fq), K, "addref: Module has been freed"),
    ("freed-use-source", lambda e: kt.use(e.t, e.ft), K, "use: Tensor has been freed"),
    ("freed-use-target", lambda e: kt.use(e.ft, kt.tensor(X)), K, "use: Tensor has been freed"),
    ("freed-objclass", lambda e: kt.objclass(e.ft), K, "objclass: Tensor has been freed"),
    ("freed-info", lambda e: kt.info(e.fq), K, "info: Module has been freed"),
    ("freed-opt-in-model", lambda e: kt.model(e.q, e.l, e.fo), K, "model: Optimizer has been freed"),
    ("freed-loss-in-model", lambda e: kt.model(e.q, e.fl, e.o), K, "model: Loss has been freed"),
    ("freed-model-testrun", lambda e: kt.testrun(e.fm), K, "testrun: Model has been freed"),
    ("freed-model-batch", lambda e: kt.batch(e.fm), K, "batch: Model has been freed"),
    ("freed-model-testinit", lambda e: kt.testinit(e.fm), K, "testinit: Model has been freed"),
    ("freed-model-datasize", lambda e: kt.datasize(e.fm), K, "datasize: Model has been freed"),
    ("freed-model-unshuffle", lambda e: kt.unshuffle(e.fm), K, "unshuffle: Model has been freed"),
    ("freed-model-zerograd", lambda e: kt.zerograd(e.fm), K, "zerograd: Model has been freed"),
    ("freed-model-step", lambda e: kt.step(e.fm), K, "step: Model has been freed"),
    ("freed-opt-lr", lambda e: kt.lr(e.fo), K, "lr: Optimizer has been freed"),
    ("freed-opt-nograd", lambda e: kt.nograd(e.fo), K, "nograd: Optimizer has been freed"),
    ("freed-opt-add-group", lambda e: kt.opt(e.fo, 1, e.q), K, "opt: Optimizer has been freed"),
    ("freed-module-in-opt", lambda e: kt.opt("sgd", e.fq), K, "opt: Module has been freed"),
    ("freed-module-parm", lambda e: kt.parm(e.fq, "weight"), K, "parm: Module has been freed"),
    ("freed-module-clip", lambda e: kt.clip(e.fq, 1.0), K, "clip: Module has been freed"),
    ("freed-module-forward-alone", lambda e: kt.forward(e.fq), K, "forward: Module has been freed"),
    ("freed-tensor-grad", lambda e: kt.grad(e.ft), K, "grad: Tensor has been freed"),
    ("freed-tensor-backward", lambda e: kt.backward(e.ft), K, "backward: Tensor has been freed"),
    ("freed-tensor-restore", lambda e: kt.restore(e.ft), K, "restore: Tensor has been freed"),
    ("freed-vector-shuffle", lambda e: kt.shuffle(e.fv), K, "shuffle: Vector has been freed"),
    ("freed-vector-values", lambda e: kt.tensor(e.fv), K, "tensor: Vector has been freed"),
    # --- calls in the wrong order: no data, no test data ---
    ("batch-before-data", lambda e: kt.batch(e.m0), K, "batch: no training data defined"),
    ("run-before-data", lambda e: kt.run(e.m0), K, "run: no training data defined"),
    ("backstep-before-data", lambda e: kt.backstep(e.m0), K, "backstep: no training data defined"),
    ("backward-before-data", lambda e: kt.backward(e.m0), K, "backward: no training data defined"),
    ("shuffle-before-data", lambda e: kt.shuffle(e.m0), K, "shuffle: no training data defined"),
    ("unshuffle-before-data", lambda e: kt.unshuffle(e.m0), K, "unshuffle: no training data defined"),
    ("forward-model-before-data", lambda e: kt.forward(e.m0), K, "forward:"),
    ("testrun-without-testdata", lambda e: kt.testrun(e.m), K, "testrun: no test data defined"),
    ("testbatch-without-testdata", lambda e: kt.testbatch(e.m), K, "testbatch: no test data defined"),
    ("eforward-without-testdata", lambda e: kt.eforward(e.m), K, "eforward:"),
    ("evaluate-without-testdata", lambda e: kt.evaluate(e.m), K, "evaluate:"),
    ("target-before-inputs", lambda e: kt.target(e.m0, Y), K, "target: no inputs defined"),
    ("step-lbfgs-without-closure", lambda e: kt.step(kt.opt("lbfgs", e.q)), K, "lbfgs: step needs a closure"),
    # --- empty and zero-sized data ---
    ("train-empty-vs-targets", lambda e: kt.train(e.m, np.zeros((0, 4), F32), Y), K, "train: tensor size mismatch, 0 vs 10"),
    ("batch-empty-tensor", lambda e: kt.batch(kt.tensor(np.zeros((0, 4), F32)), 1), K, "batch:"),
    ("mse-empty-vs-rows", lambda e: kt.mse(np.zeros((0, 3), F32), np.zeros((2, 3), F32)), K, "mse: output size [0, 3] does not match target size [2, 3]"),
    ("vector-select-empty-vector", lambda e: kt.train(e.m, (kt.vector(), [0]), Y), K, "train:"),
    # --- mismatched shapes and dtypes ---
    ("test-data-mismatch", lambda e: kt.test(e.m, X, Y[:3]), K, "test: tensor size mismatch, 10 vs 3"),
    ("testrun-data-mismatch", lambda e: kt.testrun(e.m, X, Y[:3]), K, "testrun: tensor size mismatch, 10 vs 3"),
    ("data-mismatch", lambda e: kt.data(e.m, X, Y[:3]), K, "data: tensor size mismatch, 10 vs 3"),
    ("target-mismatch", lambda e: kt.target(e.m, Y[:2]), K, "target: tensor size mismatch, 10 vs 2"),
    ("input-mismatch", lambda e: kt.input(e.m, X[:3]), K, "input: tensor size mismatch, 3 vs 10"),
    ("select-bad-index", lambda e: kt.train(e.m, (kt.vector(X, X), [0, 5]), Y), K, "train: vector index 5 invalid for vector of 2 tensor(s)"),
    ("select-negative-index", lambda e: kt.train(e.m, (kt.vector(X, X), [-1]), Y), K, "train: vector index -1 invalid"),
    ("select-bad-key", lambda e: kt.train(e.m, (kt.dict({"a": X}), ["b"]), Y), K, "train: dictionary has no key `b`"),
    ("backstep-double-inputs", lambda e: kt.backstep(e.m, X.astype(F64), Y), K, "must have the same dtype"),
    ("backstep-long-inputs", lambda e: kt.backstep(e.m, X.astype(I64), Y), K, "must have the same dtype"),
    ("backstep-float-targets-ce", lambda e: kt.backstep(e.m, X, Y.astype(F32)), K, "ce: expects integer class targets"),
    ("backstep-3d-inputs", lambda e: kt.backstep(e.m, X.reshape(10, 2, 2), Y), K, "mat1 and mat2 shapes cannot be multiplied"),
    ("mul-shape", lambda e: kt.mul(X, np.zeros((3, 3), F32)), K, "The size of tensor a (4) must match"),
    ("mean-dim", lambda e: kt.mean(X, 5), K, "Dimension out of range"),
    ("std-dim", lambda e: kt.std(X, -5), K, "Dimension out of range"),
    ("ce-batch-mismatch", lambda e: kt.ce(X, Y[:3]), K, "ce: Expected input batch_size (10) to match target batch_size (3)"),
    ("parm-transposed", lambda e: kt.parm(e.q, "0.weight", np.zeros((4, 8), F32)), K, "parm: parameter `0.weight` has size"),
    ("lstm-features", lambda e: kt.forward(e.lstm, np.zeros((3, 2, 5), F32)), K, "lstm: expected input with 4 features"),
    # --- NaN/inf where a number must be finite or in range ---
    ("lr-nan", lambda e: kt.lr(e.o, NAN), K, "lr: learning rate must be non-negative, given NaN"),
    ("lr-negative", lambda e: kt.lr(e.m, -1.0), K, "lr: learning rate must be non-negative"),
    ("lr-list-length", lambda e: kt.lr(e.o, [0.1, 0.2]), K, "lr:"),
    ("lr-str", lambda e: kt.lr(e.o, "x"), K, "lr: rate expects a number"),
    ("opt-lr-nan", lambda e: kt.opt("sgd", e.q, NAN), K, "sgd: lr must be non-negative, given NaN"),
    ("clip-nan", lambda e: kt.clip(e.q, NAN), K, "clip: maximum norm must be non-negative, given NaN"),
    ("clipv-nan", lambda e: kt.clipv(e.q, NAN), K, "clipv: clip value must be non-negative, given NaN"),
    ("clipv-negative", lambda e: kt.clipv(e.q, -1.0), K, "clipv: clip value must be non-negative"),
    ("clip-normtype-zero", lambda e: kt.clip(e.q, 1.0, 0), K, "clip: norm type must be positive"),
    ("clipnorm-option-nan", lambda e: kt.train(e.m, "clipnorm", NAN), K, "clipnorm: maximum norm must be non-negative"),
    ("clipnorm-option-normtype", lambda e: kt.train(e.m, "clipnorm", [1.0, 0.0]), K, "clipnorm: norm type must be positive"),
    ("clipvalue-option-negative", lambda e: kt.train(e.m, "clipvalue", -1.0), K, "clipvalue: must be non-negative"),
    # --- out-of-range and ill-typed options ---
    ("batchsize-huge", lambda e: kt.train(e.m, "batchsize", 2**70), K, "train"),
    ("batchsize-float", lambda e: kt.train(e.m, "batchsize", 2.5), K, "batchsize: value expects an integer"),
    ("batchsize-bool", lambda e: kt.train(e.m, "batchsize", True), K, "batchsize: value expects an integer"),
    ("test-batchsize-negative", lambda e: kt.test(e.m, "batchsize", -1), K, "test: batchsize must be non-negative"),
    ("droplast-int", lambda e: kt.train(e.m, "droplast", 3), K, "droplast: value expects a boolean"),
    ("hidden-str", lambda e: kt.train(e.m, "hidden", "x"), K, "hidden: value expects a boolean"),
    ("task-negative", lambda e: kt.train(e.m, "task", -1), K, "task: must be non-negative"),
    ("tasks-zero", lambda e: kt.train(e.m, "tasks", 0), K, "tasks: must be at least 1"),
    ("shuffleseed-str", lambda e: kt.train(e.m, "shuffleseed", "x"), K, "shuffleseed: value expects an integer"),
    ("nonfinite-unknown", lambda e: kt.train(e.m, nonfinite="maybe"), K, "nonfinite: unrecognized setting `maybe`"),
    ("nonfinite-int", lambda e: kt.train(e.m, "nonfinite", 3), K, "nonfinite:"),
    ("nonfinite-test", lambda e: kt.test(e.m, "nonfinite", "skip"), K, "nonfinite: not set for evaluation"),
    ("option-list-too-many-values", lambda e: kt.train(e.m, ["batchsize"], [1, 2]), K, "train: 1 name(s) given with 2 value(s)"),
    ("shuffle-model-dim", lambda e: kt.shuffle(e.m, 1), K, "shuffle: models shuffle along the first dimension only"),
    ("shuffle-tensor-dim", lambda e: kt.shuffle(e.t, 5), K, "shuffle: dimension 5 invalid for tensor with 2 dimension(s)"),
    ("batch-tensor-negative", lambda e: kt.batch(e.t, -1), K, "batch: size -1 not in the range 1-9"),
    ("batch-tensor-bad-dim", lambda e: kt.batch(e.t, (3, 5)), K, "batch: dimension 5 invalid"),
    ("opt-momentum-negative", lambda e: kt.opt("sgd", e.q, 0.1, -0.5), K, "sgd: momentum must be non-negative"),
    ("opt-nesterov-no-momentum", lambda e: kt.opt("sgd", e.q, 0.1, 0.0, 0.0, 0.0, True), K, "sgd: nesterov momentum requires a momentum"),
    ("opt-too-many-settings", lambda e: kt.opt("sgd", e.q, 0.1, 0.9, 0, 0, False, 9, 9, 9), K, "sgd: expecting at most 5 positional setting(s), given 8"),
    ("opt-eps-negative", lambda e: kt.opt("adam", e.q, eps=-1.0), K, "adam: eps must be non-negative"),
    ("opt-setting-str", lambda e: kt.opt("sgd", e.q, "x"), K, "sgd: lr expects a number"),
    ("opt-group-negative", lambda e: kt.opt(e.o3, -1, e.q), K, "opt: group -1 invalid, must be non-negative"),
    ("opt-group-duplicate-parms", lambda e: kt.opt(e.o, 1, e.q), K, "opt: some parameters appear more than once"),
    ("tensor-randn-negative", lambda e: kt.tensor("randn", [-1, 3]), K, "tensor: negative size -1"),
    ("tensor-randint-low-high", lambda e: kt.tensor("randint", 5, 2, 10), K, "tensor: randint: high 2 must be greater than low 5"),
    ("tensor-full-arity", lambda e: kt.tensor("full", [2, 2]), K, "tensor: full expects 2-2 argument(s), given 1"),
    ("tensor-eye-negative", lambda e: kt.tensor("eye", -2), K, "tensor: eye: negative size"),
    ("tensor-arange-step0", lambda e: kt.tensor("arange", 0, 10, 0), K, "tensor: arange: step must be non-zero"),
    ("tensor-linspace-negative", lambda e: kt.tensor("linspace", 0, 1, -3), K, "tensor: linspace: number of steps must be non-negative"),
    ("tensor-randperm-negative", lambda e: kt.tensor("randperm", -3), K, "tensor: randperm: negative size -3"),
    ("tensor-size-overflow", lambda e: kt.tensor("randn", [2**40, 2**40]), K, "overflow"),
    # --- unknown names and module/loss settings ---
    ("module-empty-name", lambda e: kt.module(""), K, "module: unrecognized module type"),
    ("module-empty-tuple", lambda e: kt.module(()), K, "module: empty module spec"),
    ("module-empty-list", lambda e: kt.module([]), K, "module: empty module list"),
    ("module-size-overflow", lambda e: kt.module(("linear", 2**31, 2**31)), K, "overflow"),
    ("linear-float-size", lambda e: kt.module(("linear", 2.5, 3)), K, "linear: in expects an integer"),
    ("linear-zero", lambda e: kt.module(("linear", 0, 3)), K, "linear: in must be positive, given 0"),
    ("conv-zero-kernel", lambda e: kt.module(("conv2d", 1, 1, 0)), K, "conv2d: size must be positive"),
    ("conv-negative-stride", lambda e: kt.module(("conv2d", 1, 1, 3, {"stride": -1})), K, "conv2d: stride must be positive"),
    ("embed-negative", lambda e: kt.module(("embed", -1, 3)), K, "embed: rows must be positive"),
    ("lstm-zero", lambda e: kt.module(("lstm", 0, 3)), K, "lstm: in must be positive"),
    ("batchnorm-zero", lambda e: kt.module(("batchnorm1d", 0)), K, "batchnorm1d: in must be positive"),
    ("drop-negative", lambda e: kt.module(("drop", -0.1)), K, "drop: p must be in the range 0-1"),
    ("loss-unknown-option", lambda e: kt.loss("ce", {"nosuch": 1}), K, "ce: unrecognized option: nosuch"),
    ("loss-bad-weight", lambda e: kt.loss("ce", {"weight": "x"}), K, "ce: weight expects a number"),
    ("lossfn-unknown", lambda e: kt._lossfn("nosuch", X, X), K, "loss: unrecognized loss: nosuch"),
    ("help-unknown", lambda e: kt.help("nosuch"), K, "help: no help for `nosuch`"),
    ("callback-not-callable", lambda e: kt.module(("callback", "cb", 3, {"parms": {"x": [1.0]}})), K, "callback: fn expects a callable"),
    ("callback-bad-parms", lambda e: kt.module(("callback", "cb", lambda m, x: x, {"parms": 3})), K, "callback: parms expects a dict"),
    ("callback-no-fn", lambda e: kt.module(("callback", "cb")), K, "callback: fn not defined"),
    # --- a callback module that raises, returns the wrong thing, or calls back in ---
    ("cb-raise-forward", lambda e: e.cb("raise", lambda: kt.forward(e.cq, XC[0])), K, "callback: ValueError: boom"),
    ("cb-raise-backstep", lambda e: e.cb("raise", lambda: kt.backstep(e.cm)), K, "callback: ValueError: boom"),
    ("cb-raise-run", lambda e: e.cb("raise", lambda: kt.run(e.cm)), K, "callback: ValueError: boom"),
    ("cb-raise-evaluate", lambda e: e.cb("raise", lambda: kt.evaluate(e.cq, XC)), K, "callback: ValueError: boom"),
    ("cb-returns-none", lambda e: e.cb("none", lambda: kt.forward(e.cq, XC[0])), K, "callback: TypeError: callback: expecting array data, given NoneType"),
    ("cb-returns-str", lambda e: e.cb("str", lambda: kt.run(e.cm)), K, "callback: TypeError: callback: expecting array data, given str"),
    ("cb-wrong-shape-backstep", lambda e: e.cb("shape", lambda: kt.backstep(e.cm)), K, "mse: output size [7] does not match target size [6, 3]"),
    ("cb-wrong-shape-run", lambda e: e.cb("shape", lambda: kt.run(e.cm)), K, "mse: output size [7] does not match target size [2, 3]"),
    ("cb-wrong-arity", lambda e: kt.forward(kt.module(("callback", "cb", lambda m: m, {"parms": {"x": [1.0]}})), XC[0]), K, "callback: TypeError"),
    ("cb-reenter-model-run", lambda e: e.cb("reenter-model", lambda: kt.run(e.cm)), K, "in use by this thread"),
    ("cb-reenter-model-backstep", lambda e: e.cb("reenter-model", lambda: kt.backstep(e.cm)), K, "in use by this thread"),
    ("cb-reenter-module-forward", lambda e: e.cb("reenter-module", lambda: kt.forward(e.cq, XC[0])), K, "in use by this thread"),
    ("cb-reenter-parm-run", lambda e: e.cb("reenter-parm", lambda: kt.run(e.cm)), K, "in use by this thread"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("mul-sparse-coo", lambda e: kt.mul(ODD["coo"], X), T, "mul: sparse_coo tensors are not supported, given a torch.Tensor with layout torch.sparse_coo"),
    ("vector-sparse-csr", lambda e: kt.vector(X, ODD["csr"]), T, "vector: sparse_csr tensors are not supported, given a torch.Tensor with layout torch.sparse_csr"),
    ("data-mkldnn", lambda e: kt.data(e.m, ODD["mkldnn"], Y), T, "data: mkldnn tensors are not supported, given a torch.Tensor with layout torch._mkldnn"),
    ("forward-sparse-coo", lambda e: kt.forward(e.q, ODD["coo"]), T, "forward: sparse_coo tensors are not supported"),
    ("parm-nested-jagged", lambda e: kt.parm(e.q, "0.bias", ODD["jagged"]), T, "parm: nested tensors are not supported, given a torch.Tensor with layout torch.jagged"),
    ("parm-nested-strided", lambda e: kt.parm(e.q, "0.bias", ODD["nested"]), T, "parm: nested tensors are not supported, given a nested torch.Tensor"),
    ("train-meta", lambda e: kt.train(e.m, ODD["meta"], Y), T, "train: meta tensors hold no data, given a torch.Tensor on device meta"),
    ("tensor-meta", lambda e: kt.tensor(ODD["meta"]), T, "tensor: meta tensors hold no data"),
    ("target-float8", lambda e: kt.target(e.m, ODD["float8"]), T, "target: float8_e4m3fn tensors are not supported, given a torch.Tensor of dtype torch.float8_e4m3fn"),
    ("input-qint8", lambda e: kt.input(e.m, ODD["qint8"]), T, "input: qint8 tensors are not supported, given a torch.Tensor of dtype torch.qint8"),
    ("tensor-uint64-big", lambda e: kt.tensor(ODD["uint64big"]), T, "tensor: uint64 values of 2**63 or more do not fit int64, given a torch.Tensor"),
    ("tensor-uint64-big-numpy", lambda e: kt.tensor(np.array([2**64 - 1], np.uint64)), T, "tensor: uint64 values of 2**63 or more do not fit int64, given a numpy array"),
    ("train-uint64-big-list", lambda e: kt.train(e.m, X, [2**63] * 10), T, "train: uint64 values of 2**63 or more"),
    ("target-uint64-big", lambda e: kt.target(e.m, ODD["uint64big"]), T, "target: uint64 values of 2**63 or more"),
    ("mse-complex32", lambda e: kt.mse(ODD["complex32"], ODD["complex32"]), T, "mse: complex32 tensors are not supported"),
    ("loss-bits8", lambda e: kt.loss(e.l, ODD["bits8"], Y), T, "loss: bits8 tensors are not supported, given a torch.Tensor of dtype torch.bits8"),
    ("backstep-int4", lambda e: kt.backstep(e.m, ODD["int4"], Y), T, "backstep: int4 tensors are not supported"),
    ("run-float4", lambda e: kt.run(e.m, ODD["float4"], Y), T, "run: float4_e2m1fn_x2 tensors are not supported"),
    ("cb-returns-sparse", lambda e: e.cb("sparse", lambda: kt.forward(e.cq, XC[0])), K, "callback: TypeError: callback: sparse_coo tensors are not supported"),
    ("cb-returns-uint64-big", lambda e: e.cb("uint64", lambda: kt.run(e.cm)), K, "callback: TypeError: callback: uint64 values of 2**63 or more"),
    # --- floats for integer options: finite, integral and in range, never saturated (item 4) ---
    ("batchsize-1e300", lambda e: kt.train(e.m, batchsize=1e300), K, "batchsize: value expects an integer, given float 1e300, outside the 64-bit integer range"),
    ("tasks-1e300", lambda e: kt.train(e.m, "tasks", 1e300), K, "tasks: value expects an integer, given float 1e300"),
    ("task-2**63", lambda e: kt.train(e.m, task=2.0**63), K, "task: value expects an integer, given float"),
    ("shuffleseed-minus-1e300", lambda e: kt.train(e.m, shuffleseed=-1e300), K, "shuffleseed: value expects an integer"),
    ("test-batchsize-1e300", lambda e: kt.test(e.m, batchsize=1e300), K, "batchsize: value expects an integer, given float 1e300"),
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
    # the callback model still trains after whatever the case did to it
    assert np.isfinite(kt.run(e.cm))
    assert kt.datasize(e.cm) == 6


def test_catalogue_size():
    assert len({c[0] for c in CASES}) == len(CASES) >= 200


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


# ---------------------------------------------------------------------------
# Inputs that look odd but are valid: they must work and give the right values.
# ---------------------------------------------------------------------------

BASE = np.arange(60, dtype=np.float32).reshape(6, 10) / 7

STRIDED = {
    "every-other-row-col": lambda: BASE[::2, ::3],
    "transposed": lambda: BASE.T,
    "fortran-order": lambda: np.asfortranarray(BASE),
    "column-slice": lambda: BASE[:, 3],
    "broadcast-zero-stride": lambda: np.broadcast_to(np.arange(3, dtype=np.float32), (4, 3)),
    "negative-stride-rows": lambda: BASE[::-1],
    "negative-stride-cols": lambda: BASE[:, ::-2],
    "big-endian": lambda: BASE.astype(">f4"),
    "unaligned-view": lambda: np.frombuffer(b"\0" + np.arange(5, dtype=np.float32).tobytes(), np.float32, 5, 1)[:],
}


@pytest.mark.parametrize("make", list(STRIDED.values()), ids=list(STRIDED))
def test_strided_numpy_tensor_values(make):
    a = make()
    t = kt.tensor(a)
    got = kt.tensor(t)
    np.testing.assert_array_equal(got, np.asarray(a))
    assert got.shape == a.shape
    assert got.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")


@pytest.mark.parametrize("make", [STRIDED["every-other-row-col"], STRIDED["transposed"], STRIDED["negative-stride-rows"]],
                         ids=["every-other", "transposed", "negative-stride"])
def test_strided_numpy_as_model_data(make):
    a = np.ascontiguousarray(make())
    x = make()
    q = kt.module(("linear", a.shape[1], 2))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    y = np.zeros((a.shape[0], 2), np.float32)
    kt.train(m, x, y)
    np.testing.assert_array_equal(kt.data(m)[0], a)
    np.testing.assert_allclose(kt.evaluate(q, x), kt.evaluate(q, a), rtol=1e-6)


def test_nan_inf_tensor_values():
    a = np.array([[np.nan, np.inf], [-np.inf, 1.5]], np.float32)
    got = kt.tensor(kt.tensor(a))
    np.testing.assert_array_equal(got, a)  # array_equal treats nan == nan only with equal_nan
    assert np.isnan(got[0, 0]) and got[0, 1] == np.inf and got[1, 0] == -np.inf
    np.testing.assert_array_equal(kt.tensor(kt.add(a, a)), a + a)


def test_empty_tensor_values():
    for shape in [(0,), (0, 4), (3, 0)]:
        a = np.zeros(shape, np.float32)
        got = kt.tensor(kt.tensor(a))
        assert got.shape == shape
    assert kt.size(kt.tensor(np.zeros((0, 4), np.float32))) == [0, 4]


def test_empty_training_data_runs_no_batches():
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    w = kt.tensor(kt.parm(q, "weight")).copy()
    assert kt.train(m, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) == 0
    assert kt.batchinit(m) == 0
    assert kt.batch(m) is False
    kt.run(m)
    np.testing.assert_array_equal(kt.tensor(kt.parm(q, "weight")), w)
    assert kt.datasize(m) == 0


def test_init_without_data_is_minus_one():
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    assert kt.batchinit(m) == -1
    assert kt.testinit(m) == -1
    assert kt.datasize(m) == 0
    assert kt.input(m) is None and kt.target(m) is None


@pytest.mark.parametrize("bs,nb", [(0, 1), (1, 10), (9, 2), (10, 1), (11, 1)], ids=["0", "1", "n-1", "n", "n+1"])
def test_batch_sizes(bs, nb):
    """Batch size 0 means the whole data, 1 a row at a time, n and n+1 a single batch; each
    run equals torch's SGD over the same batches."""
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    y = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    kt.train(m, {"batchsize": bs, "shuffle": False, "metrics": "batchloss"})
    assert kt.train(m, X, y) == nb
    assert kt.batchinit(m) == nb
    sizes = []
    while kt.batch(m):
        sizes.append(kt.datasize(m))
    assert len(sizes) == nb and sum(sizes) == 10
    assert kt.datasize(m) == 10  # restored after the last batch
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "weight")).copy()))
        lin.bias.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "bias")).copy()))
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    want = []
    step = 10 if bs == 0 else bs
    for i in range(0, 10, step):
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(X[i:i + step])), torch.from_numpy(y[i:i + step]))
        loss.backward()
        o.step()
        want.append(loss.item())
    got = kt.run(m)
    np.testing.assert_allclose(np.ravel(got), want, rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    for bs2 in (0, 1, 10, 11):
        kt.test(m, "batchsize", bs2)
        assert np.isfinite(kt.testrun(m, X, y))


def test_batch_tensor_sizes():
    t = kt.tensor(X)
    for size, n in [(1, 10), (9, 2)]:
        count = 0
        while kt.batch(t, size):
            count += 1
        assert count == n
        assert kt.restore(t) == 10
    assert kt.batch(t, 3, 3) is not None or True
    assert kt.size(t) == [1, 4]
    kt.restore(t)
    np.testing.assert_array_equal(kt.tensor(t), X)


# ---------------------------------------------------------------------------
# Non-finite gradients: the nonfinite option and the gradnorm metric.
# ---------------------------------------------------------------------------

def regression(nonfinite=None, batchsize=5, clipnorm=None):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((10, 3)).astype(np.float32)
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    opts = {"batchsize": batchsize, "shuffle": False, "metrics": ["batchloss", "gradnorm"]}
    if nonfinite is not None:
        opts["nonfinite"] = nonfinite
    if clipnorm is not None:
        opts["clipnorm"] = clipnorm
    kt.train(m, opts)
    return q, m, x, y


def parms(q):
    return {n: kt.tensor(kt.parm(q, n)).copy() for n in kt.parmnames(q)}


def torch_of(q):
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "weight")).copy()))
        lin.bias.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "bias")).copy()))
    return lin


def test_nonfinite_default_is_proceed():
    q, m, x, y = regression()
    assert kt.train(m, "nonfinite") == "proceed"
    x[0, 0] = np.nan
    kt.train(m, x, y)
    kt.run(m)
    assert np.isnan(kt.tensor(kt.parm(q, "weight"))).all()  # the NaN gradient went into the update


def test_nonfinite_skip_single_batch_leaves_parameters():
    q, m, x, y = regression("skip", batchsize=0)
    x[2, 1] = np.inf
    kt.train(m, x, y)
    before = parms(q)
    out = kt.run(m)
    assert same(parms(q), before)
    assert not np.isfinite(out[1]).any()
    assert kt.datasize(m) == 10


def test_nonfinite_skip_matches_torch():
    """Batch 0 has a NaN input: skipped; batch 1 is an ordinary SGD step."""
    q, m, x, y = regression("skip")
    x[1, 2] = np.nan
    kt.train(m, x, y)
    lin = torch_of(q)
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    o.zero_grad()
    loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(x[5:])), torch.from_numpy(y[5:]))
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in lin.parameters()]).item()
    o.step()
    losses, norms = kt.run(m)
    assert np.isnan(norms[0]) and np.isnan(losses[0])
    np.testing.assert_allclose(norms[1], norm, rtol=1e-5)
    np.testing.assert_allclose(losses[1], loss.item(), rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "bias")), lin.bias.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_raise(bad):
    q, m, x, y = regression("raise")
    x[0, 0] = bad
    kt.train(m, x, y)
    before = parms(q)
    want = "nan" if np.isnan(bad) else "inf"
    # the brief asks for "nan"; Rust's Display gives "NaN"/"inf": compare without case
    with pytest.raises(kt.KtorchError, match=f"(?i)^run: non-finite gradient norm: {want}"):
        kt.run(m)
    assert same(parms(q), before)
    assert kt.datasize(m) == 10
    assert kt.train(m, "nonfinite") == "raise"
    # the model is usable afterwards
    kt.train(m, np.nan_to_num(x, posinf=0.0), y)
    assert np.isfinite(kt.run(m)[0]).all()


def test_nonfinite_raise_backstep():
    q, m, x, y = regression("raise")
    x[0, 0] = np.nan
    before = parms(q)
    with pytest.raises(kt.KtorchError, match="(?i)^backstep: non-finite gradient norm: nan"):
        kt.backstep(m, x, y)
    assert same(parms(q), before)


def test_nan_target_gradient_skip():
    q, m, x, y = regression("skip", batchsize=0)
    y[3, 0] = np.nan
    kt.train(m, x, y)
    before = parms(q)
    kt.run(m)
    assert same(parms(q), before)


@pytest.mark.parametrize("clipnorm", [None, 0.05], ids=["noclip", "clip"])
def test_gradnorm_metric_matches_torch(clipnorm):
    q, m, x, y = regression(batchsize=4, clipnorm=clipnorm)
    kt.train(m, x, y)
    lin = torch_of(q)
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    want_norm, want_loss = [], []
    for i in range(0, 10, 4):
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(x[i:i + 4])), torch.from_numpy(y[i:i + 4]))
        loss.backward()
        grads = [p.grad for p in lin.parameters()]
        total = torch.nn.utils.get_total_norm(grads).item()
        if clipnorm is not None:
            ret = torch.nn.utils.clip_grad_norm_(lin.parameters(), clipnorm).item()
            assert abs(ret - total) <= 1e-6 * max(1.0, total)
        want_norm.append(total)
        want_loss.append(loss.item())
        o.step()
    losses, norms = kt.run(m)
    assert len(norms) == 3
    np.testing.assert_allclose(norms, want_norm, rtol=1e-5)
    np.testing.assert_allclose(losses, want_loss, rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_gradnorm_nan_reported_with_proceed():
    q, m, x, y = regression(batchsize=5)
    x[7, 0] = np.nan
    kt.train(m, x, y)
    losses, norms = kt.run(m)
    assert np.isfinite(norms[0]) and np.isnan(norms[1])


# ---------------------------------------------------------------------------
# Callbacks and failures in the middle of a pass.
# ---------------------------------------------------------------------------

def test_callback_good_values():
    e = Env()
    np.testing.assert_allclose(kt.tensor(kt.forward(e.cq, XC[1])), np.array([0.5, 2.5, 3]) * XC[1], rtol=1e-6)
    np.testing.assert_allclose(kt.evaluate(e.cq, np.asfortranarray(XC)), np.array([0.5, 2.5, 3]) * XC, rtol=1e-6)


def test_callback_reentry_does_not_hang():
    """A callback calling back into ktorch on the object it runs inside raises, promptly."""
    e = Env()
    import time
    t0 = time.monotonic()
    for mode, call in [("reenter-model", lambda: kt.run(e.cm)), ("reenter-module", lambda: kt.forward(e.cq, XC[0])),
                       ("reenter-model", lambda: kt.backward(e.cm))]:
        with pytest.raises(kt.KtorchError, match="in use by this thread"):
            e.cb(mode, call)
    assert time.monotonic() - t0 < 10
    assert np.isfinite(kt.run(e.cm))


def test_callback_fails_mid_pass_restores_data():
    """The callback raises on the 2nd batch: the error surfaces and the data is back to full size;
    the first batch's update stays (the optimizer step already happened)."""
    calls = []

    def fn(mod, x):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("second batch")
        return kt.mul(kt.parm(mod, "x"), x)

    q = kt.module(("callback", "cb", fn, {"parms": {"x": [0.5, 2.5, 3]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    kt.train(m, {"batchsize": 2, "shuffle": True})
    kt.train(m, XC, YC)
    with pytest.raises(kt.KtorchError, match="callback: ValueError: second batch"):
        kt.run(m)
    assert kt.datasize(m) == 6
    # full size; the rows a permutation of the data (a shuffled pass leaves the shuffled order)
    got = kt.data(m)[0]
    np.testing.assert_array_equal(got[np.argsort(got[:, 0])], XC)
    kt.unshuffle(m)
    np.testing.assert_array_equal(kt.data(m)[0], XC)
    calls.clear()
    calls.append(1)  # the next call is the 2nd again: make it pass
    calls.append(1)
    assert np.isfinite(kt.run(m))


def test_failed_run_mid_pass_restores_batching():
    """Wrong feature count fails on the first forward: data restored, model usable."""
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.train(m, "batchsize", 3)
    kt.train(m, np.zeros((10, 5), np.float32), Y)
    before = parms(q)
    with pytest.raises(kt.KtorchError, match="mat1 and mat2"):
        kt.run(m)
    assert kt.datasize(m) == 10
    assert same(parms(q), before)
    kt.train(m, X, Y)
    assert np.isfinite(kt.run(m))
