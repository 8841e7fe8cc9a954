"""Hard edges (issue 8, items 3 and 4).

Item 3, no panic reaches Python: every dtype, layout and device a CPU machine can give a
torch.Tensor (and every numpy dtype) goes to every function that takes data. Each call
either works and gives the right values, or raises TypeError / KtorchError naming the
function, never PanicException or another exception, and a refused call changes nothing.

Item 4, wrong answers instead of errors: floats for integer options, a huge number of
tasks, meta tensors, lbfgs under the nonfinite option, data resized after it was given.
"""

import warnings

import numpy as np
import pytest
import torch

import ktorch as kt

torch.set_num_threads(1)

BASE = torch.arange(12.0).reshape(4, 3)


def quiet(make):
    """Makes a tensor, without torch's beta/prototype warnings (pytest turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


# ---------------------------------------------------------------------------
# The catalogue: every torch dtype, layout and CPU-machine device, odd strided views,
# and every numpy dtype. Each entry: (id, make, outcome) where outcome is
# ("ok", dtype the values come back as) or ("refused", words the message must hold).
# ---------------------------------------------------------------------------

ALL_DTYPES = sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str)
ALL_LAYOUTS = sorted({v for v in vars(torch).values() if isinstance(v, torch.layout)}, key=str)

# what each admitted dtype becomes: unsigned 16/32/64-bit integers are widened (losslessly)
WIDENED = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}
SUPPORTED = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
             torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128} | set(WIDENED)
QUANTIZED = {torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4}
KIND_NAME = {torch.float32: "float", torch.float64: "double", torch.float16: "half", torch.bfloat16: "bfloat",
             torch.int64: "long", torch.int32: "int", torch.int16: "short", torch.uint8: "byte",
             torch.int8: "char", torch.bool: "bool", torch.complex64: "cfloat", torch.complex128: "cdouble"}


def of_dtype(d):
    """A 4x3 tensor of dtype d: the values 0..11 where torch can convert to d, else zeros."""
    if d in QUANTIZED:
        return lambda: torch.quantize_per_tensor(BASE, 1.0, 0, d)
    if d.is_complex:
        return lambda: torch.complex(BASE, -BASE / 2).to(d)

    def make():
        try:
            return BASE.to(d)
        except (RuntimeError, TypeError):
            return torch.zeros(4, 3, dtype=d)
    return make


def of_layout(layout):
    return {
        torch.sparse_coo: lambda: BASE.to_sparse(),
        torch.sparse_csr: lambda: BASE.to_sparse_csr(),
        torch.sparse_csc: lambda: BASE.to_sparse_csc(),
        torch.sparse_bsr: lambda: BASE.to_sparse_bsr((2, 1)),
        torch.sparse_bsc: lambda: BASE.to_sparse_bsc((2, 1)),
        torch._mkldnn: lambda: BASE.to_mkldnn(),
        torch.jagged: lambda: torch.nested.nested_tensor([BASE[0], BASE[1, :2]], layout=torch.jagged),
    }[layout]


TORCH = []
for d in ALL_DTYPES:
    name = str(d).removeprefix("torch.")
    if d in SUPPORTED:
        TORCH.append((f"dtype-{name}", of_dtype(d), ("ok", WIDENED.get(d, d))))
    else:
        TORCH.append((f"dtype-{name}", of_dtype(d), ("refused", [f"{name} tensors are not supported", str(d)])))
TORCH += [
    ("uint64-2**63", lambda: torch.tensor([[2**63, 1, 2]] * 4, dtype=torch.uint64),
     ("refused", ["uint64 values of 2**63 or more do not fit int64"])),
    ("uint64-max-int64", lambda: torch.tensor([[2**63 - 1, 1, 2]] * 4, dtype=torch.uint64), ("ok", torch.int64)),
    ("uint16-max", lambda: torch.tensor([[65535, 0, 7]] * 4, dtype=torch.uint16), ("ok", torch.int32)),
    ("uint32-max", lambda: torch.tensor([[2**32 - 1, 0, 7]] * 4, dtype=torch.uint32), ("ok", torch.int64)),
]
for layout in ALL_LAYOUTS:
    if layout is torch.strided:
        continue
    short = str(layout).removeprefix("torch.").lstrip("_").replace("jagged", "nested")
    TORCH.append((f"layout-{short}-{layout}", of_layout(layout),
                  ("refused", [f"{short} tensors are not supported", f"layout {layout}"])))
TORCH += [
    ("nested-strided", lambda: torch.nested.nested_tensor([BASE[0], BASE[1, :2]]),
     ("refused", ["nested tensors are not supported"])),
    ("device-meta", lambda: torch.empty(4, 3, device="meta"), ("refused", ["meta tensors hold no data", "device meta"])),
    ("meta-uint16", lambda: torch.empty(4, 3, dtype=torch.uint16, device="meta"), ("refused", ["meta"])),
    # strided, but odd: these work, with the right values
    ("conj-view", lambda: torch.complex(BASE, BASE / 3).conj(), ("ok", torch.complex64)),
    ("neg-view", lambda: torch._neg_view(BASE), ("ok", torch.float32)),
    ("requires-grad", lambda: BASE.clone().requires_grad_(), ("ok", torch.float32)),
    ("transposed", lambda: torch.arange(12.0).reshape(3, 4).t(), ("ok", torch.float32)),
    ("zero-stride", lambda: torch.arange(3.0).expand(4, 3), ("ok", torch.float32)),
    ("offset-view", lambda: torch.arange(20.0)[5:17].view(4, 3), ("ok", torch.float32)),
]
if torch.cuda.is_available():
    TORCH.append(("device-cuda", lambda: BASE.cuda(), ("ok", torch.float32)))



def numpy_of(nd):
    a = np.arange(12).reshape(4, 3) % 5
    return (a - 0.5j * a).astype(nd) if np.dtype(nd).kind == "c" else a.astype(nd)


NUMPY = []
for nd in [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
           np.float16, np.float32, np.float64, np.complex64, np.complex128, np.longlong, np.ulonglong, np.intc,
           np.uintc]:
    want = torch.from_numpy(np.zeros(1, np.dtype(np.dtype(nd).str))).dtype
    NUMPY.append((f"numpy-{nd.__name__}", lambda nd=nd: numpy_of(nd), ("ok", WIDENED.get(want, want))))
NUMPY += [
    ("numpy-uint64-2**63", lambda: np.full((4, 3), 2**63, np.uint64),
     ("refused", ["uint64 values of 2**63 or more do not fit int64"])),
    ("numpy-list-2**63", lambda: [[2**63, 2**63 + 1, 2**64 - 1]] * 4, ("refused", ["uint64 values of 2**63 or more"])),
    ("numpy-list-2**64", lambda: [[2**64, 0, 1]] * 4, ("refused", ["cannot make a tensor"])),
    ("numpy-longdouble", lambda: np.ones((4, 3), np.longdouble), ("refused", ["cannot make a tensor"])),
    ("numpy-clongdouble", lambda: np.ones((4, 3), np.clongdouble), ("refused", ["cannot make a tensor"])),
    ("numpy-datetime64", lambda: np.zeros((4, 3), "datetime64[s]"), ("refused", ["datetime64"])),
    ("numpy-timedelta64", lambda: np.zeros((4, 3), "timedelta64[s]"), ("refused", ["timedelta64"])),
    ("numpy-str", lambda: np.full((4, 3), "a"), ("refused", ["<U1"])),
    ("numpy-bytes", lambda: np.full((4, 3), b"a"), ("refused", ["|S1"])),
    ("numpy-object", lambda: np.full((4, 3), None, object), ("refused", ["object"])),
    ("numpy-void", lambda: np.zeros((4, 3), [("a", np.int32)]), ("refused", ["cannot make a tensor"])),
]
CATALOGUE = TORCH + NUMPY


def test_catalogue_covers_every_dtype_and_layout():
    made = {quiet(m).dtype for _, m, _ in TORCH}
    assert set(ALL_DTYPES) <= made, set(ALL_DTYPES) - made
    layouts = {quiet(m).layout for _, m, _ in TORCH}
    assert set(ALL_LAYOUTS) <= layouts, set(ALL_LAYOUTS) - layouts
    assert {"cpu", "meta"} <= {quiet(m).device.type for _, m, _ in TORCH}
    assert len(ALL_DTYPES) >= 40


def reference(x, dtype):
    """What ktorch should hold for admitted data x: a plain strided torch tensor of `dtype`."""
    if not isinstance(x, torch.Tensor):
        a = np.array(x)
        x = torch.from_numpy(a.view(np.dtype(a.dtype.str)))  # numpy.ulonglong is uint64 to torch
    t = x
    return t.detach().resolve_conj().resolve_neg().cpu().to(dtype)


def values(t):
    """torch values as ktorch returns them (numpy has no bfloat16)."""
    t = t.detach().resolve_conj().resolve_neg().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def equal(got, want):
    want = values(want) if isinstance(want, torch.Tensor) else np.asarray(want)
    got = np.asarray(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got.astype(np.complex128), want.astype(np.complex128), rtol=1e-3, atol=1e-3)


class Env:
    """A linear model 3 -> 4 with 4 rows of data; a callback module that returns whatever it is told."""

    def __init__(self):
        self.q = kt.module(("linear", 3, 4))
        self.m = kt.model(self.q, kt.loss("mse"), kt.opt("sgd", self.q, 0.1))
        self.x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
        self.y = np.ones((4, 4), np.float32)
        kt.train(self.m, {"batchsize": 2, "shuffle": False})
        kt.train(self.m, self.x, self.y)
        self.out = None
        self.cq = kt.module(("callback", "cb", lambda mod, x: self.out, {"parms": {"p": [1.0]}}))

    def state(self):
        return {"weight": kt.tensor(kt.parm(self.q, "weight")).copy(), "data": [a.copy() for a in kt.data(self.m)],
                "size": kt.datasize(self.m), "batches": kt.batchinit(self.m)}


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], list):
            assert all(np.array_equal(x, y) for x, y in zip(a[k], b[k], strict=True)), k
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def first_value(h):
    return kt.tensor(h)[0] if isinstance(h, kt.Vector) else kt.tensor(h)


# Each consumer: (name, function named in errors, call(env, x), check(env, result, ref) for admitted data).
# `ref` is the reference torch tensor; checks compare with torch computing the same thing.


def float_ref(r):
    return r if r.is_floating_point() or r.is_complex() else r.float()


def zero_loss(ref):
    """The loss of data against itself: 0, in the real dtype of the data."""
    return torch.zeros((), dtype=(ref.real if ref.is_complex() else ref).dtype)


def check_train(e, r, ref):
    assert r == 2  # 4 rows, batches of 2
    equal(kt.data(e.m)[0], ref)


def check_forward(e, r, ref):
    w, b = (torch.from_numpy(kt.tensor(kt.parm(e.q, n))) for n in ("weight", "bias"))
    equal(r, torch.nn.functional.linear(ref, w, b))


def check_parm(e, r, ref):
    assert r is None
    equal(kt.tensor(kt.parm(e.q, "weight")), (ref.real if ref.is_complex() else ref).float())


def check_info(e, r, ref):
    (d,) = r
    assert d["dtype"] == KIND_NAME[ref.dtype] and d["size"] == list(ref.shape) and d["layout"] == "strided"
    assert d["device"] == ("cuda" if "cuda" in d["device"] else "cpu")


CONSUMERS = [
    ("tensor", "tensor", lambda e, x: kt.tensor(kt.tensor(x)), lambda e, r, ref: equal(r, ref)),
    ("vector", "vector", lambda e, x: kt.vector(kt.vector(x, x)),
     lambda e, r, ref: len(r) == 2 and all(equal(a, ref) is None for a in r)),
    ("dict", "dict", lambda e, x: kt.dict(kt.dict({"a": x})), lambda e, r, ref: equal(r["a"], ref)),
    ("mul", "mul", lambda e, x: kt.tensor(kt.mul(x, x)), lambda e, r, ref: equal(r, ref * ref)),
    ("add", "add", lambda e, x: kt.tensor(kt.add(x, x)), lambda e, r, ref: equal(r, ref + ref)),
    ("mean", "mean", lambda e, x: kt.tensor(kt.mean(x)), lambda e, r, ref: equal(r, float_ref(ref).mean())),
    ("std", "std", lambda e, x: kt.tensor(kt.std(x, 0)), lambda e, r, ref: equal(r, float_ref(ref).std(0))),
    ("train-data", "train", lambda e, x: kt.train(e.m, x, e.y), check_train),
    ("data", "data", lambda e, x: kt.data(e.m, x, e.y), check_train),
    ("test-data", "test", lambda e, x: kt.test(e.m, x, e.y),
     lambda e, r, ref: equal(kt.testdata(e.m)[0], ref)),
    ("input", "input", lambda e, x: kt.input(e.m, x), lambda e, r, ref: equal(kt.tensor(kt.input(e.m)), ref)),
    ("target", "target", lambda e, x: kt.target(e.m, x), lambda e, r, ref: equal(kt.target(e.m), ref)),
    ("forward", "forward", lambda e, x: kt.tensor(kt.forward(e.q, x)), check_forward),
    ("evaluate", "evaluate", lambda e, x: kt.evaluate(e.q, x), check_forward),
    ("parm-value", "parm", lambda e, x: kt.parm(e.q, "weight", x), check_parm),
    ("loss", "mse", lambda e, x: kt.tensor(kt.mse(x, x)), lambda e, r, ref: equal(r, zero_loss(ref))),
    ("loss-handle", "loss", lambda e, x: kt.tensor(kt.loss(kt.loss("l1"), x, x)), lambda e, r, ref: equal(r, zero_loss(ref))),
    ("backward", "backward", lambda e, x: kt.backward(e.m, x, e.y), lambda e, r, ref: np.isfinite(r)),
    ("backstep", "backstep", lambda e, x: kt.backstep(e.m, x, e.y), lambda e, r, ref: np.isfinite(r)),
    ("run", "run", lambda e, x: kt.run(e.m, x, e.y), lambda e, r, ref: np.isfinite(float(r))),
    ("info", "vector", lambda e, x: kt.info(kt.vector(x)), check_info),
    ("size", "vector", lambda e, x: kt.size(kt.vector(x)), lambda e, r, ref: r == [list(ref.shape)]),
    ("grad", "vector", lambda e, x: kt.grad(kt.vector(x)), lambda e, r, ref: r == [None] or ref.requires_grad),
    ("batch", "vector", lambda e, x: (lambda v: (kt.batch(v, 3), first_value(v)))(kt.vector(x)),
     lambda e, r, ref: r[0] is True and equal(r[1], ref[:3])),
    ("callback", "callback", lambda e, x: (setattr(e, "out", x), kt.tensor(kt.forward(e.cq, e.x)))[1],
     lambda e, r, ref: equal(r, ref)),
]

# the consumers that may raise libtorch's error for an admitted dtype the float32 module (or,
# for the losses, the loss) does not take; every other consumer works for every admitted dtype
FLOAT32_ONLY = {"forward", "evaluate", "backward", "backstep", "run"}
# the consumers that hand data to the float32 module: floating data of another dtype is
# converted when given as numpy (a copy anyway) and refused when given as torch (shared)
MEETS_MODULE = FLOAT32_ONLY | {"train-data", "data", "test-data", "input", "target"}


def module_dtype_rule(x, dtype, name):
    if name not in MEETS_MODULE or not dtype.is_floating_point or dtype == torch.float32:
        return None
    return "refused" if isinstance(x, torch.Tensor) else "converted"

def cases():
    for cid, make, outcome in CATALOGUE:
        for name, fname, call, check in CONSUMERS:
            yield pytest.param(make, outcome, fname, call, check, name, id=f"{cid}-{name}")


@pytest.mark.parametrize("make,outcome,fname,call,check,name", list(cases()))
def test_kinds_catalogue(make, outcome, fname, call, check, name):
    x = quiet(make)
    e = Env()
    before = e.state()
    rule = module_dtype_rule(x, outcome[1], name) if outcome[0] == "ok" else None
    try:
        r = call(e, x)
    except (kt.KtorchError, TypeError) as err:
        msg = str(err)
        if rule == "refused" and "the module's parameters torch.float32" in msg:
            assert isinstance(err, kt.KtorchError) and msg.startswith(f"{fname}: "), msg
            assert f"torch.{str(outcome[1]).split('.')[-1]}" in msg, msg
            same(e.state(), before)
            return
        if outcome[0] == "refused":
            # refused at the boundary: named, with what was given, and nothing changed
            if fname == "callback":
                assert isinstance(err, kt.KtorchError) and "callback: TypeError: callback: " in msg, msg
            else:
                assert isinstance(err, TypeError) and msg.startswith(f"{fname}: "), msg
            for words in outcome[1]:
                assert words in msg, msg
            same(e.state(), before)
            return
        # admitted data that the operation itself cannot take: libtorch's error, as a KtorchError
        assert isinstance(err, kt.KtorchError), msg
        assert name in FLOAT32_ONLY | {"loss", "loss-handle"}, f"{name} must work for {outcome[1]}: {msg}"
        assert not (name in FLOAT32_ONLY and outcome[1] == torch.float32), msg
        assert not (name.startswith("loss") and outcome[1].is_floating_point), msg
        return
    assert outcome[0] == "ok", f"{name} accepted data it must refuse ({outcome[1]}): {r!r}"
    assert rule != "refused" or name in {"backward", "backstep"}, f"{name} took {outcome[1]} torch data"
    ref = reference(x, torch.float32 if rule == "converted" else outcome[1])
    res = check(e, r, ref)
    assert res is None or bool(np.all(res)), res


def test_kinds_never_reach_info_after_data():
    """The original reports: a uint16/32/64 array as data, then data, target, vector, info."""
    for nd in (np.uint16, np.uint32, np.uint64):
        e = Env()
        y = np.arange(4, dtype=nd)
        kt.train(e.m, e.x, np.stack([y] * 4, 1))
        got = kt.target(e.m)
        assert got.dtype == (np.int32 if nd == np.uint16 else np.int64)
        np.testing.assert_array_equal(got, np.stack([y] * 4, 1))
        kt.target(e.m, torch.from_numpy(np.stack([y] * 4, 1).astype(nd)))
        v = kt.vector(torch.tensor([1, 2, 3], dtype=getattr(torch, np.dtype(nd).name)))
        assert kt.info(v)[0]["dtype"] == ("int" if nd == np.uint16 else "long")
        np.testing.assert_array_equal(kt.vector(v)[0], [1, 2, 3])


def test_torch_data_stays_shared():
    """Admitted torch.Tensor data is zero-copy: the model sees the caller's later writes."""
    x = torch.zeros(4, 3)
    e = Env()
    kt.train(e.m, x, e.y)
    x[1, 2] = 7.0
    assert kt.data(e.m)[0][1, 2] == 7.0
    v = kt.vector(x)
    x[0, 0] = 5.0
    assert kt.vector(v)[0][0, 0] == 5.0


# ---------------------------------------------------------------------------
# Item 4: floats for integer options are refused, not saturated.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("stage,name", [("train", "batchsize"), ("train", "tasks"), ("train", "task"),
                                        ("train", "shuffleseed"), ("test", "batchsize")])
@pytest.mark.parametrize("value", [1e300, -1e300, 2.0**63, float("inf"), float("nan"), 2.5],
                         ids=["1e300", "-1e300", "2**63", "inf", "nan", "2.5"])
def test_float_integer_options_refused(stage, name, value):
    e = Env()
    f = getattr(kt, stage)
    before = dict(f(e.m))
    with pytest.raises(kt.KtorchError, match=f"^{stage}: {name}: value expects an integer, given float"):
        f(e.m, **{name: value})
    with pytest.raises(kt.KtorchError, match=f"^{stage}: {name}: value expects an integer"):
        f(e.m, name, value)
    assert dict(f(e.m)) == before


def test_integral_floats_in_range_still_work():
    e = Env()
    kt.train(e.m, batchsize=3.0, tasks=2.0, task=1.0, shuffleseed=-5.0)
    assert [kt.train(e.m, n) for n in ("batchsize", "tasks", "task", "shuffleseed")] == [3, 2, 1, -5]
    kt.test(e.m, batchsize=2.0**62)
    assert kt.test(e.m, "batchsize") == 2**62


# ---------------------------------------------------------------------------
# Item 4: a huge number of tasks visits the right batches; batchinit agrees with run.
# ---------------------------------------------------------------------------

def task_model(task, tasks):
    q = kt.module(("linear", 2, 1))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.0))
    x = np.repeat(np.arange(50, dtype=np.float32)[:, None], 2, 1)
    kt.train(m, {"batchsize": 10, "shuffle": False, "tasks": tasks, "task": task, "metrics": "batchloss"})
    kt.train(m, x, np.zeros((50, 1), np.float32))
    return m


@pytest.mark.parametrize("task,tasks,want", [(3, 2**63 - 1, [3]), (0, 2**63 - 1, [0]), (4, 2**63 - 1, [4]),
                                             (2**63 - 2, 2**63 - 1, []), (1, 2, [1, 3]), (0, 1, [0, 1, 2, 3, 4]),
                                             (3, 2**62, [3])])
def test_tasks_visit_their_batches(task, tasks, want):
    m = task_model(task, tasks)
    assert kt.batchinit(m) == len(want)
    seen = []
    while kt.batch(m):
        seen.append(int(kt.tensor(kt.input(m))[0, 0]) // 10)
        assert len(seen) <= 10
    assert seen == want
    assert kt.datasize(m) == 50
    losses = kt.run(m)
    assert np.size(losses) == len(want) if want else losses is None or np.size(losses) == 0, losses


# ---------------------------------------------------------------------------
# Item 4: meta tensors are refused (tch reads their device as mps).
# ---------------------------------------------------------------------------

def test_meta_tensor_refused_everywhere():
    mt = torch.empty(4, 3, device="meta")
    for f, call in [("tensor", lambda: kt.tensor(mt)), ("vector", lambda: kt.vector(mt)),
                    ("mul", lambda: kt.mul(mt, mt)), ("train", lambda: kt.train(Env().m, mt, mt))]:
        with pytest.raises(TypeError, match=f"^{f}: meta tensors hold no data, given a torch.Tensor on device meta"):
            call()


# ---------------------------------------------------------------------------
# Item 4: lbfgs honours nonfinite at every evaluation of its step.
# ---------------------------------------------------------------------------

def lbfgs_model(nonfinite, lr, search=None):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    kt.seed(5)
    q = kt.module(("linear", 3, 1))
    o = kt.opt("lbfgs", q, lr) if search is None else kt.opt("lbfgs", q, lr, search=search)
    m = kt.model(q, kt.loss("mse"), o)
    kt.train(m, {"batchsize": 0, "shuffle": False, "nonfinite": nonfinite, "metrics": ["loss", "gradnorm"]})
    kt.train(m, x, y)
    return q, o, m


def weights(q):
    return {n: kt.tensor(kt.parm(q, n)).copy() for n in kt.parmnames(q)}


@pytest.mark.parametrize("search", [None, "strong_wolfe"], ids=["fixed", "wolfe"])
def test_lbfgs_raise_undoes_the_step(search):
    q, o, m = lbfgs_model("raise", 1e25, search)
    before = weights(q)
    with pytest.raises(kt.KtorchError, match="^run: non-finite (gradient norm|loss)"):
        kt.run(m)
    after = weights(q)
    for n in before:
        np.testing.assert_array_equal(after[n], before[n])
    assert max(np.abs(a).max() for a in after.values()) < 10
    # the optimizer state is as before the step too: going on with lr 1 equals a fresh model
    kt.lr(o, 1.0)
    kt.run(m)
    q2, _, m2 = lbfgs_model("raise", 1.0, search)
    kt.run(m2)
    for n, w in weights(q2).items():
        np.testing.assert_array_equal(weights(q)[n], w)


@pytest.mark.parametrize("search", [None, "strong_wolfe"], ids=["fixed", "wolfe"])
def test_lbfgs_skip_leaves_parameters_and_state(search):
    q, o, m = lbfgs_model("skip", 1e25, search)
    before = weights(q)
    for _ in range(3):
        kt.run(m)
        kt.backstep(m)
    for n, w in weights(q).items():
        np.testing.assert_array_equal(w, before[n])
    kt.lr(o, 1.0)
    kt.run(m)
    q2, _, m2 = lbfgs_model("skip", 1.0, search)
    kt.run(m2)
    for n, w in weights(q2).items():
        np.testing.assert_array_equal(weights(q)[n], w)


def test_lbfgs_proceed_still_moves():
    """The default policy is unchanged: the huge step is taken."""
    q, o, m = lbfgs_model("proceed", 1e25)
    kt.run(m)
    w = weights(q)
    assert not all(np.isfinite(a).all() and np.abs(a).max() < 10 for a in w.values())


def test_lbfgs_skip_matches_torch_when_finite():
    """With finite evaluations skip changes nothing: one step equals torch.optim.LBFGS."""
    q, o, m = lbfgs_model("skip", 1.0)
    x, y = kt.data(m)
    lin = torch.nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(weights(q)["weight"]))
        lin.bias.copy_(torch.from_numpy(weights(q)["bias"]))
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        return loss
    opt.step(closure)
    kt.run(m)
    np.testing.assert_allclose(weights(q)["weight"], lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Item 4: torch.Tensor data is shared (zero-copy), but the model keeps its own view:
# resizing the given tensor afterwards never reaches the model's sizes.
# ---------------------------------------------------------------------------

def resized(shape):
    x = torch.randn(400, 2)
    y = torch.randint(0, 3, (400,))
    q = kt.module(("linear", 2, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.train(m, {"batchsize": 100, "shuffle": True})
    kt.train(m, x, y)
    kt.test(m, x, y)
    x0 = x.clone()
    x.resize_(shape)
    return q, m, x0, y


@pytest.mark.parametrize("shape", [(5, 2), (4000, 2), (), (400, 3)], ids=["smaller", "larger", "scalar", "wider"])
@pytest.mark.parametrize("f", ["run", "batchinit", "batch", "backstep", "shuffle", "unshuffle", "testrun", "testinit",
                               "testbatch", "datasize", "backward"])
def test_resizing_given_data_does_not_reach_the_model(f, shape):
    # before: inputs and targets had different row counts and run trained nothing
    q, m, x0, y = resized(shape)
    getattr(kt, f)(m)
    assert kt.info(m)["train"] == 400 and kt.info(m)["test"] == 400
    assert kt.batchinit(m) == 4
    assert np.isfinite(float(kt.run(m)))
    assert kt.testinit(m) == 4


def test_the_model_reads_the_values_it_was_given():
    # the data is shared, not copied: the model trains on the given values
    x = torch.randn(400, 2)
    y = torch.randint(0, 3, (400,))
    q = kt.module(("linear", 2, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.train(m, x, y)
    x.mul_(0).add_(1)  # written in place: the model sees the new values
    np.testing.assert_array_equal(kt.data(m)[0], np.ones((400, 2), np.float32))
    x.resize_(5, 2)  # resized: the model keeps its 400 rows
    assert kt.data(m)[0].shape == (400, 2)


def test_libtorch_errors_name_the_function():
    # libtorch rejecting admitted data: the message still starts with the function's name
    q = kt.module(("linear", 2, 3))
    with pytest.raises(kt.KtorchError, match=r"^forward: .*(dtype|Long|Float)"):
        kt.forward(q, np.zeros((4, 2), np.int64))
    with pytest.raises(kt.KtorchError, match=r"^mul: .*size"):
        kt.mul(np.zeros(3, "f"), np.zeros(4, "f"))


# ------------------------------------------------------- sizes and values past the checks


@pytest.mark.parametrize("call,msg", [
    (lambda: kt.module(("encoder", ("encoderlayer", 8, 2), 10**12)),
     "encoder: layers must be at most 10000, given 1000000000000"),
    (lambda: kt.module(("attention", 2**62, 2)), "attention: dim of 4611686018427387904 is too large"),
    (lambda: kt.module(("selfattention", 2**62, 2)), "selfattention: dim of 4611686018427387904 is too large"),
    (lambda: kt.cudadevice("cuda:9223372036854775808"), "cudadevice: device cuda:9223372036854775808 not available"),
    (lambda: kt.evaluate(kt.module(("fmaxpool2d", 2**62, 4)), np.zeros((1, 1, 8, 9), np.float32)),
     "fmaxpool2d: output size [4, 4] with kernel size [4611686018427387904, 4611686018427387904] does not fit"),
], ids=["encoder-layers", "attention-dim", "selfattention-dim", "cudadevice-wraps", "fmaxpool-kernel"])
def test_huge_sizes_are_refused(call, msg):
    """Sizes that would overflow or allocate without bound are refused before anything is built."""
    with pytest.raises(kt.KtorchError) as e:
        call()
    assert str(e.value).startswith(msg), str(e.value)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_fractional_pool_samples_outside_the_unit_interval_are_refused(bad):
    q = kt.module(("fmaxpool2d", 2, 4))
    x = np.random.default_rng(0).random((2, 3, 8, 9)).astype(np.float32)
    s = np.full((2, 3, 2), 0.5, np.float32)
    s[1, 2, 0] = bad
    with pytest.raises(kt.KtorchError, match=r"^fmaxpool2d: random samples must be in \[0, 1\)"):
        kt.evaluate(q, x, s)
    assert kt.evaluate(q, x, np.full((2, 3, 2), 0.5, np.float32)).shape == (2, 3, 4, 4)


def test_indexselect_refuses_a_negative_index_written_into_its_buffer():
    q = kt.module(("indexselect", 1, [0, 2]))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(kt.evaluate(q, x), x[:, [0, 2]])
    kt.fill(q, "ind", -3)
    with pytest.raises(kt.KtorchError, match="indexselect: ind -3 out of range for size 3 of dimension 1"):
        kt.evaluate(q, x)


def test_dirac_of_an_empty_tensor_with_any_groups_returns_at_once():
    w = kt.tensor(np.zeros((0, 3, 3, 3), np.float32))
    assert kt.dirac(w, groups=2**62) is None
    assert kt.tensor(w).shape == (0, 3, 3, 3)
