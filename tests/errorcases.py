"""Shared pieces of the bad-input catalogue (tests/test_errors_*.py): data, odd tensor kinds,
the environment each case runs in, and the check every case gets: kt.KtorchError or TypeError
naming the function (or carrying libtorch's own message), the interpreter survives, and the
objects are unchanged."""

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


K, T = "KtorchError", "TypeError"

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


def check_msg(msg, want):
    if want.endswith(":"):
        assert msg.startswith(want), msg
    else:
        assert want in msg, msg


def check_case(call, exc, want):
    """Runs one catalogue case in a fresh environment: the error, its message, nothing changed."""
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
    assert np.isfinite(kt.run(e.m))
    assert kt.datasize(e.m) == 10
    # the callback model still trains after whatever the case did to it
    assert np.isfinite(kt.run(e.cm))
    assert kt.datasize(e.cm) == 6
