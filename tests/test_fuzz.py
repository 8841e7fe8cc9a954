"""Property-based fuzzing of the api with Hypothesis: random sequences of calls on random small
models and data. Every call either succeeds or raises kt.KtorchError / TypeError; anything else
(another exception type, a pyo3 PanicException, a crash, a hang) fails. After each example every
handle is released and kt.objects() is back where it started.

The same strategies drive the soak in bench/fuzz_soak.py (many more examples)."""

import faulthandler
import gc
import math
import time
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ktorch as kt

torch.set_num_threads(1)

ALLOWED = (kt.KtorchError, TypeError)
DATA = (np.ndarray, torch.Tensor)
HANDLES = (kt.Tensor, kt.Vector, kt.Dict, kt.Module, kt.Loss, kt.Optimizer, kt.Model)

# ---------------------------------------------------------------------------
# value strategies
# ---------------------------------------------------------------------------

small_int = st.integers(-2, 6)
odd_float = st.sampled_from([0.0, 0.1, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf, 1e30])
any_scalar = st.one_of(small_int, odd_float, st.booleans(), st.none(), st.sampled_from(["x", "sum", "skip", ""]),
                       st.integers(-(2**70), 2**70))
dtypes = st.sampled_from(["float32", "float32", "float32", "float64", "int64", "bool", "uint16", "uint32", "uint64"])
# torch.Tensor kinds: unsigned (widened), and dtypes, layouts, devices ktorch refuses (issue 8, item 3)
TORCH_FORMS = ["torch", "conj", "uint16", "uint32", "uint64", "uint64big", "float8", "complex32", "qint8", "bits8",
               "int4", "sparse_coo", "sparse_csr", "mkldnn", "nested", "jagged", "meta"]


def torch_form(a, form):
    """The array as a torch.Tensor of the given kind (a plain one where the kind cannot hold it)."""
    t = torch.from_numpy(a.copy())
    f = t.double().nan_to_num(0.0, 0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if form == "conj":
                return torch.complex(f, f).conj()
            if form in ("uint16", "uint32", "uint64"):
                return (f.abs() * 100).to(getattr(torch, form))
            if form == "uint64big":
                return torch.full(t.shape, 2**63, dtype=torch.uint64)
            if form == "float8":
                return f.to(torch.float8_e4m3fn)
            if form == "complex32":
                return f.to(torch.complex32)
            if form == "qint8":
                return torch.quantize_per_tensor(f.float(), 0.1, 0, torch.qint8)
            if form in ("bits8", "int4"):
                return torch.zeros(t.shape, dtype=getattr(torch, form))
            if form == "sparse_coo":
                return t.to_sparse()
            if form == "sparse_csr":
                return t.to_sparse_csr()
            if form == "mkldnn":
                return t.float().to_mkldnn()
            if form in ("nested", "jagged"):
                layout = torch.jagged if form == "jagged" else torch.strided
                return torch.nested.nested_tensor([f.reshape(-1), f.reshape(-1)[:1]], layout=layout)
            if form == "meta":
                return torch.empty(t.shape, dtype=t.dtype, device="meta")
        except (RuntimeError, TypeError, ValueError, IndexError):
            pass
        return t


@st.composite
def arrays(draw, rows=None):
    """A small numpy array: random shape (empty allowed), dtype, NaN/inf, and layout."""
    r = draw(st.integers(0, 6)) if rows is None else rows
    ndim = draw(st.integers(1, 3))
    shape = [r] + [draw(st.integers(0, 5)) for _ in range(ndim - 1)]
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape)
    dtype = draw(dtypes)
    a = (np.abs(x) * 1000).astype(dtype) if dtype.startswith("uint") else x.astype(dtype)
    if a.dtype.kind == "f" and a.size and draw(st.booleans()):
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(["c", "c", "c", "fortran", "strided", "reversed", "transposed"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim > 1:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "reversed":
        a = a[::-1]
    elif layout == "transposed" and a.ndim == 2:
        a = np.ascontiguousarray(a.T).T
    form = draw(st.sampled_from(["numpy"] * 12 + TORCH_FORMS))
    return a if form == "numpy" else torch_form(a, form)


@st.composite
def targets(draw, rows):
    """Targets for rows (sometimes the wrong number of rows): classes or floats."""
    n = rows if draw(st.integers(0, 5)) else draw(st.integers(0, 7))
    kind = draw(st.sampled_from(["class", "float", "float2"]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    if kind == "class":
        return rng.integers(0, 3, n)
    if kind == "float":
        return rng.standard_normal(n).astype(np.float32)
    return rng.standard_normal((n, draw(st.integers(1, 4)))).astype(np.float32)


def cb_ok(mod, x):
    return kt.mul(kt.parm(mod, "x"), x)


def cb_raise(mod, x):
    raise ValueError("fuzz callback")


def cb_none(mod, x):
    return None


def cb_torch(mod, x):
    return torch.zeros(3)


CALLBACKS = [cb_ok, cb_raise, cb_none, cb_torch]

sizes = st.integers(-1, 5)
module_specs = st.one_of(
    st.builds(lambda a, b: ("linear", a, b), sizes, sizes),
    st.builds(lambda a, b, c: kt.seq("sequential", ("linear", a, b), "relu", ("linear", b, c)), sizes, sizes, sizes),
    st.sampled_from(["relu", "identity", "nosuch", "softmax", ("softmax", 1), ("drop", 0.5), ("drop", 1.5),
                     ("linear", 4), (), [], ("conv1d", 1, 2, 0)]),
    st.builds(lambda a, b: ("lstm", a, b), sizes, sizes),
    st.builds(lambda a, b: ("embed", a, b), sizes, sizes),
    st.builds(lambda f, n: ("callback", "cb", f, {"parms": {"x": [0.5] * n}}), st.sampled_from(CALLBACKS), st.integers(1, 4)),
    st.builds(lambda a, b, k: ("linear", a, b, {k: True}), sizes, sizes, st.sampled_from(["bias", "nosuch"])),
)
loss_names = st.sampled_from(["mse", "ce", "l1", "bce", "huber", "nll", "nosuch"])
opt_names = st.sampled_from(["sgd", "adam", "rmsprop", "lbfgs", "adagrad", "nosuch"])
train_opts = st.sampled_from(["batchsize", "droplast", "shuffle", "clipnorm", "clipvalue", "metrics", "tensor",
                              "dictionary", "nonfinite", "tasks", "task", "hidden", "shuffleseed", "dist", "distcheck",
                              "nosuch"])
metric_values = st.sampled_from(["loss", "batchloss", "gradnorm", "accuracy", "predict", "nosuch", ["loss", "gradnorm"]])
creation = st.sampled_from(["randn", "rand", "zeros", "ones", "randint", "arange", "eye", "randperm", "linspace",
                            "full", "empty", "nosuch"])
options = st.sampled_from([(), ("grad",), ("double",), ("long",), ("nosuch",), ("float", "grad")])

# ---------------------------------------------------------------------------
# ops: (name, args) drawn up front; handles referenced by index into the pool
# ---------------------------------------------------------------------------

idx = st.integers(0, 50)


@st.composite
def ops(draw):
    kind = draw(st.sampled_from(OPS))
    if kind == "tensor":
        return kind, (draw(arrays()), draw(options))
    if kind == "tmode":
        mode = draw(creation)
        args = draw(st.lists(st.one_of(small_int, st.lists(small_int, max_size=3)), max_size=3))
        return kind, (mode, args, draw(options))
    if kind in ("vector", "dict"):
        return kind, (draw(st.lists(st.one_of(arrays(), idx), max_size=3)),)
    if kind == "module":
        return kind, (draw(module_specs),)
    if kind == "loss":
        return kind, (draw(loss_names), draw(st.sampled_from([None, {"reduce": "sum"}, {"reduce": "nosuch"}, 3])))
    if kind == "opt":
        return kind, (draw(opt_names), draw(st.one_of(st.none(), idx)), draw(st.lists(odd_float, max_size=2)))
    if kind == "optgroup":
        return kind, (draw(idx), draw(small_int), draw(idx))
    if kind == "model":
        return kind, (draw(idx), draw(idx), draw(idx))
    if kind in ("train", "test"):
        name = draw(train_opts)
        val = draw(metric_values) if name == "metrics" else draw(any_scalar)
        return kind, (draw(idx), name, val, draw(st.booleans()))
    if kind in ("data", "testdata", "input", "target"):
        rows = draw(st.integers(0, 7))
        return kind, (draw(idx), draw(arrays(rows)), draw(targets(rows)), draw(st.booleans()))
    if kind == "tbatch":
        return kind, (draw(idx), draw(st.one_of(small_int, st.tuples(small_int, small_int))), draw(st.one_of(st.none(), small_int)))
    if kind in ("forward", "nforward", "eforward", "evaluate"):
        return kind, (draw(idx), draw(st.one_of(st.none(), arrays(), idx)))
    if kind in ("backstep", "backward", "run", "testrun"):
        rows = draw(st.integers(0, 7))
        data = draw(st.one_of(st.none(), st.tuples(arrays(rows), targets(rows))))
        return kind, (draw(idx), data)
    if kind == "clip":
        return kind, (draw(idx), draw(odd_float), draw(st.one_of(st.none(), odd_float, st.booleans())))
    if kind == "clipv":
        return kind, (draw(idx), draw(odd_float))
    if kind == "lr":
        return kind, (draw(idx), draw(st.one_of(st.none(), odd_float, st.lists(odd_float, max_size=3))))
    if kind == "parm":
        return kind, (draw(idx), draw(st.sampled_from(["weight", "bias", "x", "0.weight", "nosuch"])),
                      draw(st.one_of(st.none(), arrays())))
    if kind == "binary":
        return kind, (draw(st.sampled_from(["mul", "add"])), draw(idx), draw(idx))
    if kind == "reduce":
        return kind, (draw(st.sampled_from(["mean", "std"])), draw(idx), draw(st.one_of(st.none(), small_int)))
    if kind == "lossfn":
        return kind, (draw(loss_names), draw(idx), draw(idx))
    if kind == "use":
        return kind, (draw(idx), draw(idx))
    if kind == "shuffle":
        return kind, (draw(idx), draw(st.sampled_from([0, 0, 1, 5])))
    # plain one-handle calls
    return kind, (draw(idx),)


ONE = ["batch", "testbatch", "restore", "testrestore", "batchinit", "testinit", "unshuffle", "datasize", "testsize",
       "step", "zerograd", "nograd", "free", "free", "addref", "objclass", "size", "info", "grad", "parmnames", "values",
       "options", "testoptions"]
OPS = (["tensor", "tensor", "tmode", "vector", "dict", "module", "module", "module", "loss", "loss", "opt", "opt",
        "optgroup", "model", "model", "model", "model", "train", "test", "data", "data", "testdata", "input", "target",
        "tbatch", "forward", "nforward", "eforward", "evaluate", "backstep", "backward", "run", "run", "testrun", "clip",
        "clipv", "lr", "parm", "binary", "reduce", "lossfn", "use", "shuffle"] + ONE)

programs = st.lists(ops(), min_size=5, max_size=30)


class Interp:
    """Runs a program against a pool of handles; counts calls and errors."""

    def __init__(self, stats=None):
        self.pool = []
        self.stats = stats if stats is not None else Counter()

    def pick(self, i, *classes):
        """The i-th handle of the given classes (any handle every third time); 3 when none."""
        if classes and i % 3:
            c = [h for h in self.pool if isinstance(h, classes)]
            if c:
                return c[i % len(c)]
        if self.pool:
            return self.pool[i % len(self.pool)]
        return 3

    def keep(self, r):
        if isinstance(r, HANDLES):
            self.pool.append(r)
        elif isinstance(r, list):
            for x in r:
                self.keep(x)
        elif isinstance(r, dict):
            for x in r.values():
                self.keep(x)

    def call(self, op):
        name, args = op
        self.stats["calls"] += 1
        try:
            r = self.dispatch(name, args)
        except ALLOWED as e:
            self.stats[f"{type(e).__name__}"] += 1
            msg = str(e)
            assert msg, f"{name}: empty error message"
            return None
        self.stats["ok"] += 1
        self.keep(r)
        return r

    def dispatch(self, name, a):
        p = self.pick
        T, M, Q, L, OPT = (kt.Tensor, kt.Vector, kt.Dict), kt.Model, kt.Module, kt.Loss, kt.Optimizer
        if name == "tensor":
            return kt.tensor(a[0], *a[1])
        if name == "tmode":
            return kt.tensor(a[0], *a[1], *a[2])
        if name == "vector":
            return kt.vector(*[x if isinstance(x, DATA) else p(x, *T) for x in a[0]])
        if name == "dict":
            return kt.dict({f"k{i}": x if isinstance(x, DATA) else p(x, *T) for i, x in enumerate(a[0])})
        if name == "module":
            return kt.module(a[0])
        if name == "loss":
            return kt.loss(a[0]) if a[1] is None else kt.loss(a[0], a[1])
        if name == "opt":
            return kt.opt(a[0]) if a[1] is None else kt.opt(a[0], p(a[1], Q, M), *a[2])
        if name == "optgroup":
            return kt.opt(p(a[0], OPT), a[1], p(a[2], Q))
        if name == "model":
            return kt.model(p(a[0], Q), p(a[1], L), p(a[2], OPT))
        if name in ("train", "test"):
            f = getattr(kt, name)
            m = p(a[0], M)
            return f(m, **{a[1]: a[2]}) if a[3] else f(m, a[1], a[2])
        if name in ("data", "testdata"):
            return getattr(kt, name)(p(a[0], M), a[1], a[2]) if a[3] else getattr(kt, name)(p(a[0], M))
        if name == "input":
            return kt.input(p(a[0], M), a[1]) if a[3] else kt.input(p(a[0], M))
        if name == "target":
            return kt.target(p(a[0], M), a[2]) if a[3] else kt.target(p(a[0], M))
        if name == "tbatch":
            return kt.batch(p(a[0], *T), a[1]) if a[2] is None else kt.batch(p(a[0], *T), a[1], a[2])
        if name in ("forward", "nforward", "eforward", "evaluate"):
            f = getattr(kt, name)
            h = p(a[0], Q, M)
            if a[1] is None:
                return f(h)
            return f(h, a[1] if isinstance(a[1], DATA) else p(a[1], *T))
        if name in ("backstep", "backward", "run", "testrun"):
            f = getattr(kt, name)
            h = p(a[0], M, *T) if name == "backward" else p(a[0], M)
            return f(h) if a[1] is None else f(h, *a[1])
        if name == "clip":
            h = p(a[0], M, Q, OPT, *T)
            return kt.clip(h, a[1]) if a[2] is None else kt.clip(h, a[1], a[2])
        if name == "clipv":
            return kt.clipv(p(a[0], M, Q, OPT, *T), a[1])
        if name == "lr":
            return kt.lr(p(a[0], OPT, M)) if a[1] is None else kt.lr(p(a[0], OPT, M), a[1])
        if name == "parm":
            h = p(a[0], Q, M)
            return kt.parm(h, a[1]) if a[2] is None else kt.parm(h, a[1], a[2])
        if name == "binary":
            return getattr(kt, a[0])(p(a[1], kt.Tensor), p(a[2], kt.Tensor))
        if name == "reduce":
            f = getattr(kt, a[0])
            return f(p(a[1], kt.Tensor)) if a[2] is None else f(p(a[1], kt.Tensor), a[2])
        if name == "lossfn":
            if a[0] == "nosuch":  # loss(l or model, output, target)
                return kt.loss(p(a[1], L, M), p(a[1], kt.Tensor), p(a[2], kt.Tensor))
            return getattr(kt, a[0])(p(a[1], kt.Tensor), p(a[2], kt.Tensor))
        if name == "use":
            return kt.use(p(a[0]), p(a[1]))
        if name == "shuffle":
            return kt.shuffle(p(a[0], M, *T), a[1])
        h = p(a[0], M)
        if name in ("batch", "testbatch", "restore", "testrestore", "batchinit", "testinit", "unshuffle",
                    "datasize", "testsize", "step"):
            return getattr(kt, name)(h if name != "step" else p(a[0], OPT, M))
        if name == "values":
            return kt.tensor(p(a[0], *T))
        if name == "options":
            return kt.train(h)
        if name == "testoptions":
            return kt.test(h)
        h = p(a[0])
        if name == "addref":
            return kt.addref(h)
        if name == "free":
            return kt.free(h)
        if name in ("zerograd", "nograd", "objclass", "size", "info", "grad", "parmnames"):
            return getattr(kt, name)(h)
        raise AssertionError(f"unknown op {name}")

    def run(self, program):
        for op in program:
            self.call(op)

    def release(self):
        """Frees every handle (freeing twice must raise KtorchError) and drops the pool."""
        for h in self.pool:
            try:
                kt.free(h)
            except kt.KtorchError:
                pass
        self.pool.clear()


def execute(program, stats=None, check_objects=True):
    """One example: run, release, check the live-handle count returns to its start."""
    gc.collect()
    start = kt.objects()
    it = Interp(stats)
    try:
        it.run(program)
    finally:
        it.release()
        del it
        gc.collect()
    if check_objects:
        assert kt.objects() == start, f"kt.objects() {kt.objects()} after the example, {start} before"


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture
def watchdog():
    """A hang dumps every thread's stack and ends the process instead of blocking forever."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@FUZZ
@given(programs)
def test_fuzz_api_calls(program):
    """Random call sequences: each call succeeds or raises KtorchError/TypeError (a call that raises
    anything else, a PanicException included, fails the example)."""
    execute(program, check_objects=False)


@FUZZ
@given(programs)
def test_fuzz_handles_released(program):
    """After an example's handles are freed and dropped, kt.objects() is back where it started."""
    execute(program, check_objects=True)


@FUZZ
@given(st.lists(ops(), min_size=5, max_size=30))
def test_fuzz_model_heavy(program):
    """A fixed small working model first, so that training calls get past the argument checks."""
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    fixed = [("module", (kt.seq("sequential", ("linear", 4, 3), "relu", ("linear", 3, 3)),)),
             ("loss", ("ce", None)), ("opt", ("sgd", 0, [0.1])), ("model", (1, 1, 1)),
             ("data", (0, x, np.array([0, 1, 2, 0, 1, 2]), True))]
    execute(fixed + program, check_objects=False)


def test_fuzz_within_time(watchdog):
    """The bounded fuzz stays fast: one more pass of 20 examples timed."""
    t0 = time.monotonic()
    stats = Counter()

    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(programs)
    def inner(program):
        execute(program, stats, check_objects=False)

    inner()
    assert time.monotonic() - t0 < 60
    assert stats["calls"] > 100 and stats["ok"] > 0
