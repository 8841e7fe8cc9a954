"""Initialisers (zeros, ones, fill, eye, dirac, orthogonal, xnormal, xuniform, knormal,
kuniform, snormal, normal, uniform, cauchy, exponential, geometric, lognormal, random, gain)
as the original's init page shows them: values equal to torch.nn.init's (and the tensor
methods') from the same generator state, tensors selected by index and name, module
parameters by name and position, array data, bad input that changes nothing."""

import threading

import numpy as np
import pytest
import torch

import ktorch as kt

init = torch.nn.init


def test_seed_seeds_the_generator_torch_uses():
    kt.seed(11)
    a = torch.rand(5)
    torch.manual_seed(11)
    np.testing.assert_array_equal(a.numpy(), torch.rand(5).numpy())


# (function, positional options, keyword options, torch's in-place call)
CASES = [
    ("knormal", (), {}, lambda t: init.kaiming_normal_(t)),
    ("knormal", ("relu",), {}, lambda t: init.kaiming_normal_(t, nonlinearity="relu")),
    ("knormal", ("fanout", "relu"), {}, lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")),
    ("knormal", ("leakyrelu", 0.2), {}, lambda t: init.kaiming_normal_(t, a=0.2)),
    ("knormal", (0.1, "out", "tanh"), {}, lambda t: init.kaiming_normal_(t, 0.1, "fan_out", "tanh")),
    ("knormal", (), {"nonlinearity": "linear", "mode": "fan_in"},
     lambda t: init.kaiming_normal_(t, nonlinearity="linear")),
    ("knormal", (), {"slope": 0.3, "mode": "fanout", "nonlinearity": "leaky_relu"},
     lambda t: init.kaiming_normal_(t, a=0.3, mode="fan_out")),
    ("kuniform", (), {}, lambda t: init.kaiming_uniform_(t)),
    ("kuniform", ("relu", "fanout"), {}, lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")),
    ("kuniform", ("leakyrelu", 0.5), {}, lambda t: init.kaiming_uniform_(t, a=0.5)),
    ("kuniform", ("sigmoid",), {}, lambda t: init.kaiming_uniform_(t, nonlinearity="sigmoid")),
    ("kuniform", ("tanh",), {"a": 0.2}, lambda t: init.kaiming_uniform_(t, a=0.2, nonlinearity="tanh")),
    ("xnormal", (), {}, lambda t: init.xavier_normal_(t)),
    ("xnormal", (2.0,), {}, lambda t: init.xavier_normal_(t, 2.0)),
    ("xnormal", (), {"gain": 0.5}, lambda t: init.xavier_normal_(t, gain=0.5)),
    ("xuniform", (), {}, lambda t: init.xavier_uniform_(t)),
    ("xuniform", (1.5,), {}, lambda t: init.xavier_uniform_(t, 1.5)),
    ("xuniform", (), {"gain": init.calculate_gain("relu")}, lambda t: init.xavier_uniform_(t, init.calculate_gain("relu"))),
    ("orthogonal", (), {}, lambda t: init.orthogonal_(t)),
    ("orthogonal", (1.5,), {}, lambda t: init.orthogonal_(t, 1.5)),
    ("orthogonal", (), {"gain": 0.5}, lambda t: init.orthogonal_(t, gain=0.5)),
    ("normal", (), {}, lambda t: init.normal_(t)),
    ("normal", (2, 0.5), {}, lambda t: init.normal_(t, 2, 0.5)),
    ("normal", (1.0,), {}, lambda t: init.normal_(t, 1.0)),
    ("normal", (), {"std": 3.0}, lambda t: init.normal_(t, std=3.0)),
    ("uniform", (), {}, lambda t: init.uniform_(t)),
    ("uniform", (-2, 3), {}, lambda t: init.uniform_(t, -2, 3)),
    ("uniform", (), {"high": 5.0}, lambda t: init.uniform_(t, b=5.0)),
    ("cauchy", (), {}, lambda t: t.cauchy_()),
    ("cauchy", (1, 2), {}, lambda t: t.cauchy_(1, 2)),
    ("exponential", (), {}, lambda t: t.exponential_()),
    ("exponential", (3.0,), {}, lambda t: t.exponential_(3.0)),
    ("geometric", (0.3,), {}, lambda t: t.geometric_(0.3)),
    ("geometric", (), {"p": 0.7}, lambda t: t.geometric_(0.7)),
    ("lognormal", (), {}, lambda t: t.log_normal_()),
    ("lognormal", (0, 0.5), {}, lambda t: t.log_normal_(0, 0.5)),
    ("random", (), {}, lambda t: t.random_()),
    ("random", (10,), {}, lambda t: t.random_(10)),
    ("random", (-5, 5), {}, lambda t: t.random_(-5, 5)),
    ("random", (), {"low": 3, "high": 7}, lambda t: t.random_(3, 7)),
]


def shapes(f):
    if f == "orthogonal":
        return [(3, 5), (5, 3), (4, 2, 3)]
    return [(6, 4), (4, 3, 2, 2)]


def reference(fn, shape, dtype, seed):
    torch.manual_seed(seed)
    t = torch.zeros(shape, dtype=dtype)
    fn(t)
    return t.numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float", "double"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0] + "-" + "-".join(map(str, c[1] + tuple(c[2].items()))))
def test_values_equal_torch_from_the_same_seed(case, dtype):
    f, args, kw, fn = case
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for i, shape in enumerate(shapes(f)):
        want = reference(fn, shape, dtype, 100 + i)
        kt.seed(100 + i)
        t = kt.tensor(np.zeros(shape, np_dtype))
        assert getattr(kt, f)(t, *args, **kw) is None
        got = kt.tensor(t)
        assert got.dtype == np_dtype and got.shape == shape
        np.testing.assert_array_equal(got, want)
        # array data: a reset copy comes back, the input is left as it was
        a = np.zeros(shape, np_dtype)
        kt.seed(100 + i)
        np.testing.assert_array_equal(getattr(kt, f)(a, *args, **kw), want)
        assert not a.any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float", "double"])
@pytest.mark.parametrize("args", [(0.3,), (0.5, 0.1), (0.0,), (1.0,)])
def test_snormal_equals_torch_sparse(args, dtype):
    want = reference(lambda t: init.sparse_(t, *args), (7, 4), dtype, 5)
    kt.seed(5)
    t = kt.tensor(torch.zeros(7, 4, dtype=dtype))
    kt.snormal(t, *args)
    np.testing.assert_array_equal(kt.tensor(t), want)
    kt.seed(5)
    t = kt.tensor(torch.zeros(7, 4, dtype=dtype))
    kt.snormal(t, sparsity=args[0], std=args[1] if len(args) > 1 else 0.01)
    np.testing.assert_array_equal(kt.tensor(t), want)


def test_a_torch_tensor_gives_a_new_torch_tensor():
    x = torch.zeros(4, 3)
    torch.manual_seed(2)
    want = init.kaiming_uniform_(torch.zeros(4, 3), nonlinearity="relu")
    kt.seed(2)
    y = kt.kuniform(x, "relu")
    assert isinstance(y, torch.Tensor) and torch.equal(y, want)
    assert not x.any()


def test_fixed_values():
    t = kt.tensor(np.full((3, 4), 5.0, np.float32))
    kt.zeros(t)
    np.testing.assert_array_equal(kt.tensor(t), np.zeros((3, 4), np.float32))
    kt.ones(t)
    np.testing.assert_array_equal(kt.tensor(t), np.ones((3, 4), np.float32))
    kt.eye(t)
    np.testing.assert_array_equal(kt.tensor(t), np.eye(3, 4, dtype=np.float32))
    kt.fill(t, 2.5)
    np.testing.assert_array_equal(kt.tensor(t), np.full((3, 4), 2.5, np.float32))
    kt.fill(t, [0, 2], value=-1)
    np.testing.assert_array_equal(kt.tensor(t)[:, 0], [-1, 2.5, -1])
    n = kt.tensor(np.zeros(3, np.int64))
    kt.fill(n, 7)
    np.testing.assert_array_equal(kt.tensor(n), [7, 7, 7])
    kt.fill(n, True)
    np.testing.assert_array_equal(kt.tensor(n), [1, 1, 1])
    np.testing.assert_array_equal(kt.eye(np.zeros((2, 3))), np.eye(2, 3))
    np.testing.assert_array_equal(kt.fill(np.zeros(3), [1], 4), [0, 4, 0])
    for shape, groups in [((2, 2, 3), 1), ((4, 3, 3, 3), 1), ((4, 2, 3, 3), 2), ((6, 2, 3, 3, 3), 3)]:
        want = init.dirac_(torch.full(shape, 9.0), groups).numpy()
        t = kt.tensor(np.full(shape, 9.0, np.float32))
        kt.dirac(t, groups=groups)
        np.testing.assert_array_equal(kt.tensor(t), want)
    np.testing.assert_array_equal(kt.dirac(np.ones((2, 2, 3))),
                                  [[[0, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 1, 0]]])


def test_gain():
    for f in ["conv1d", "conv2d", "conv3d", "linear", "sigmoid", "tanh", "relu", "selu"]:
        assert kt.gain(f) == init.calculate_gain(f)
    for f in ["convtranspose1d", "convtranspose2d", "convtranspose3d"]:
        assert kt.gain(f) == 1.0
    assert kt.gain("conv_transpose2d") == 1.0
    assert kt.gain("leakyrelu") == init.calculate_gain("leaky_relu") == pytest.approx(1.414143, abs=1e-6)
    assert kt.gain("leakyrelu", 0.5) == init.calculate_gain("leaky_relu", 0.5) == pytest.approx(1.264911, abs=1e-6)
    assert kt.gain("tanh") == pytest.approx(1.666667, abs=1e-6)
    with pytest.raises(kt.KtorchError, match="gain: unrecognized nonlinearity `softmax`"):
        kt.gain("softmax")
    with pytest.raises(TypeError, match="gain:"):
        kt.gain(1)
    with pytest.raises(TypeError, match="gain:"):
        kt.gain("leakyrelu", "x")


def net():
    return kt.module(kt.seq("sequential", ("linear", 4, 3), "relu", ("linear", 3, 2)))


def values(q):
    return {k: v.copy() for k, v in kt.dict(kt.parms(q)).items()}


def same_except(before, after, changed):
    for k in before:
        if k in changed:
            assert not np.array_equal(before[k], after[k]), k
        else:
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)


def test_module_parameters_by_name_and_by_index():
    q = net()
    assert kt.parmnames(q) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    old = values(q)
    want = reference(lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), (3, 4), torch.float32, 8)
    kt.seed(8)
    assert kt.knormal(q, "0.weight", "fanout", "relu") is None
    new = values(q)
    np.testing.assert_array_equal(new["0.weight"], want)
    same_except(old, new, ["0.weight"])
    # by position among the parameters: 2 is 2.weight
    want = reference(lambda t: init.xavier_uniform_(t, 2.0), (2, 3), torch.float32, 9)
    kt.seed(9)
    kt.xuniform(q, 2, 2.0)
    np.testing.assert_array_equal(values(q)["2.weight"], want)
    same_except(new, values(q), ["2.weight"])
    # several names, several positions, options by name
    old = values(q)
    kt.zeros(q, ["0.bias", "2.bias"])
    assert not values(q)["0.bias"].any() and not values(q)["2.bias"].any()
    kt.uniform(q, [1, 3], low=1, high=2)
    assert (values(q)["0.bias"] >= 1).all() and (values(q)["2.bias"] >= 1).all()
    same_except(old, values(q), ["0.bias", "2.bias"])
    # a model's module, and a Tensor handle that shares a parameter
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    kt.ones(m, "2.bias")
    np.testing.assert_array_equal(values(q)["2.bias"], [1, 1])
    kt.fill(kt.parm(q, "0.bias"), 3)
    np.testing.assert_array_equal(values(q)["0.bias"], [3, 3, 3])
    # the training flag and gradients survive: still a parameter that trains
    assert kt.gradflag(q) == {k: True for k in kt.parmnames(q)}


def test_an_empty_selection_resets_nothing():
    d = kt.dict({"a": np.zeros((2, 3), np.float32)})
    for h in (d, kt.vector(np.zeros((2, 3), np.float32)), kt.tensor(np.zeros((2, 3), np.float32)), net()):
        before = snapshot(h) if kt.objclass(h) != "module" else values(h)
        kt.knormal(h, [])
        kt.fill(h, [], 1)
        if kt.objclass(h) == "module":
            same_except(before, values(h), [])
        else:
            unchanged(h, before)


def test_buffers_by_name():
    q = kt.module(kt.seq("sequential", ("batchnorm1d", "b", 3)))
    kt.fill(q, "b.running_var", 4.0)
    np.testing.assert_array_equal(kt.dict(kt.buffers(q))["b.running_var"], [4, 4, 4])


# ---- the page's examples ----

def test_page_syntax_examples():
    t = kt.tensor(np.zeros((3, 4), np.float32))
    want = reference(lambda x: init.normal_(x, 2, 0.5), (3, 4), torch.float32, 1)
    kt.seed(1)
    kt.normal(t, 2, .5)
    np.testing.assert_array_equal(kt.tensor(t), want)

    d = kt.dict({"a": np.zeros(10, np.float32), "b": np.zeros((4, 2), np.int64)})
    kt.random(d, 0, 10)
    r = kt.dict(d)
    assert r["a"].dtype == np.float32 and r["b"].dtype == np.int64 and r["b"].shape == (4, 2)
    for x in r.values():
        assert ((x >= 0) & (x < 10) & (x == np.round(x))).all()

    v = kt.vector(np.array([1, 2, 3], np.float32), np.zeros((4, 5), np.float32))
    kt.uniform(v)
    a, b = kt.vector(v)
    assert a.shape == (3,) and b.shape == (4, 5)
    assert all(((x >= 0) & (x < 1)).all() for x in (a, b)) and b.all()


def test_page_index_examples():
    t = kt.tensor(np.zeros((3, 4), np.float32))
    kt.normal(t, [0, 2])
    x = kt.tensor(t)
    assert x[0].all() and x[2].all() and not x[1].any()

    v = kt.vector(np.array([98, 99, 100]), np.zeros(10, np.int64))
    kt.random(v, 1, 0, 10)
    a, b = kt.vector(v)
    np.testing.assert_array_equal(a, [98, 99, 100])
    assert ((b >= 0) & (b < 10)).all()

    def three():
        return kt.vector(np.array([98, 99, 100.0]), np.zeros(10), np.zeros(5))

    v = three()
    kt.random(v, 2, 5)  # scalars 2 and 5 are the range
    for x in kt.vector(v):
        assert ((x >= 2) & (x < 5)).all()
    for sel in ([2], 2):  # a list selects; with all the options given, so does an int
        v = three()
        kt.random(v, sel, 5) if isinstance(sel, list) else kt.random(v, sel, 0, 5)
        a, b, c = kt.vector(v)
        np.testing.assert_array_equal(a, [98, 99, 100])
        assert not b.any() and ((c >= 0) & (c < 5)).all()
    v = three()
    kt.geometric(v, 1, .5)  # one option: two arguments are an index and the option
    a, b, c = kt.vector(v)
    np.testing.assert_array_equal(a, [98, 99, 100])
    assert (b >= 1).all() and not c.any()


def test_page_name_examples():
    m = kt.module(("linear", 2, 2))
    p = kt.parms(m)
    bias = kt.dict(p)["bias"].copy()
    kt.normal(p, "weight", 0, .01)
    d = kt.dict(p)
    np.testing.assert_array_equal(d["bias"], bias)
    assert np.abs(d["weight"]).max() < 0.1
    with pytest.raises(kt.KtorchError, match="zeros: a Module or Model needs parameter or buffer names"):
        kt.zeros(m)
    kt.zeros(m, "bias")
    np.testing.assert_array_equal(kt.dict(p)["bias"], [0, 0])
    np.testing.assert_array_equal(kt.dict(p)["weight"], d["weight"])


def test_page_kaiming_examples():
    t = kt.tensor(np.zeros((3, 4), np.float32))
    kt.kuniform(t)
    x = kt.tensor(t)
    assert np.abs(x).max() <= np.sqrt(3 / 4 * 2) and x.all()
    kt.kuniform(t, "leakyrelu", "fanout")
    assert np.abs(kt.tensor(t)).max() <= np.sqrt(3 / 3 * 2)

    t = kt.tensor(np.zeros((2, 3, 4), np.float32))
    kt.kuniform(t, [1])
    x = kt.tensor(t)
    assert not x[0].any() and x[1].all()
    # an index into a Tensor selects a row: its fans are those of the 3x4 row
    kt.seed(4)
    kt.knormal(t, 0, "relu")
    np.testing.assert_array_equal(kt.tensor(t)[0],
                                  reference(lambda w: init.kaiming_normal_(w, nonlinearity="relu"), (3, 4), torch.float32, 4))

    q = kt.module(kt.seq("sequential", ("linear", "fc", 2, 2), ("leakyrelu", "fn", .01)))
    old = values(q)
    want = reference(lambda w: init.kaiming_normal_(w, .01, "fan_out", "relu"), (2, 2), torch.float32, 6)
    kt.seed(6)
    kt.knormal(q, "fc.weight", "fanout", "relu", .01)
    np.testing.assert_array_equal(values(q)["fc.weight"], want)
    same_except(old, values(q), ["fc.weight"])

    d = kt.dict({"fanout": np.zeros((2, 3), np.float32), "relu": np.zeros((1, 4), np.float32)})
    kt.kuniform(d, "fanout")  # read as the fan mode: both reset
    assert all(x.all() for x in kt.dict(d).values())
    d = kt.dict({"fanout": np.zeros((2, 3), np.float32), "relu": np.zeros((1, 4), np.float32)})
    kt.kuniform(d, ["fanout"])  # a list: the key
    assert kt.dict(d)["fanout"].all() and not kt.dict(d)["relu"].any()


def test_page_array_examples():
    a = kt.normal(np.zeros((3, 4), np.float32))
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.all()
    a = kt.normal(np.zeros((3, 4), np.float32), 0, .01)
    assert np.abs(a).max() < 0.1
    r = kt.random([0], 0, 9)
    assert r.shape == (1,) and 0 <= r[0] < 9
    r = kt.random(np.float32(0), 5)
    assert np.ndim(r) == 0 and r.dtype == np.float32 and 0 <= r < 5


# ---- bad input ----

def snapshot(h):
    x = kt.tensor(h)
    if isinstance(x, dict):
        return {k: v.copy() for k, v in x.items()}
    if isinstance(x, list):
        return [v.copy() for v in x]
    return x.copy()


def unchanged(h, before):
    after = snapshot(h)
    if isinstance(before, dict):
        assert before.keys() == after.keys()
        for k in before:
            np.testing.assert_array_equal(before[k], after[k])
    elif isinstance(before, list):
        for b, a in zip(before, after, strict=True):
            np.testing.assert_array_equal(b, a)
    else:
        np.testing.assert_array_equal(before, after)


def fresh():
    return {
        "t": kt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "v": kt.vector(np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(4, dtype=np.float32)),
        "d": kt.dict({"a": np.arange(6, dtype=np.float32).reshape(3, 2), "b": np.arange(3, dtype=np.float32)}),
    }


BAD = [
    # (object, call, exception, message)
    ("t", lambda t: kt.knormal(t, "softmax"), kt.KtorchError, "knormal: unrecognized option `softmax`"),
    ("t", lambda t: kt.kuniform(t, nonlinearity="softmax"), kt.KtorchError, "kuniform: unrecognized nonlinearity"),
    ("t", lambda t: kt.knormal(t, mode="sideways"), kt.KtorchError, "knormal: unrecognized fan mode"),
    ("t", lambda t: kt.knormal(t, "relu", "tanh"), TypeError, "knormal: nonlinearity given twice"),
    ("t", lambda t: kt.knormal(t, [0]), kt.KtorchError, "knormal: fan in and fan out can not be computed"),
    ("v", lambda v: kt.xnormal(v), kt.KtorchError, "xnormal: fan in and fan out can not be computed"),
    ("t", lambda t: kt.snormal(t, 1.5), kt.KtorchError, "snormal: sparsity must be a fraction"),
    ("t", lambda t: kt.snormal(t, -0.1, 0.1), kt.KtorchError, "snormal: sparsity"),
    ("t", lambda t: kt.snormal(t), TypeError, "snormal: missing option `sparsity`"),
    ("t", lambda t: kt.dirac(t), kt.KtorchError, "dirac: expecting a 3, 4 or 5-dimensional tensor"),
    ("v", lambda v: kt.eye(v), kt.KtorchError, "eye: expecting a 2-dimensional tensor"),
    ("t", lambda t: kt.orthogonal(t, [1]), kt.KtorchError, "orthogonal: expecting a tensor of 2 or more"),
    ("t", lambda t: kt.normal(t, [3]), kt.KtorchError, "normal: index 3 invalid"),
    ("t", lambda t: kt.normal(t, 0, -1), kt.KtorchError, "normal: std must be non-negative"),
    ("t", lambda t: kt.uniform(t, 2, 1), kt.KtorchError, "uniform: low must not exceed high"),
    ("t", lambda t: kt.normal(t, 1, 2, 3, 4), TypeError, "normal: expecting at most 2 option"),
    ("t", lambda t: kt.normal(t, 1, mean=2), TypeError, "normal: option `mean` given twice"),
    ("t", lambda t: kt.normal(t, mean="x"), TypeError, "normal: expecting a number for mean"),
    ("t", lambda t: kt.cauchy(t, 0, 0), kt.KtorchError, "cauchy: sigma must be positive"),
    ("t", lambda t: kt.exponential(t, -1.0), kt.KtorchError, "exponential: rate must be positive"),
    ("t", lambda t: kt.geometric(t), TypeError, "geometric: missing option `p`"),
    ("t", lambda t: kt.geometric(t, 1.5), kt.KtorchError, "geometric: probability must be between 0 and 1"),
    ("t", lambda t: kt.lognormal(t, 0, 0), kt.KtorchError, "lognormal: std must be positive"),
    ("t", lambda t: kt.random(t, 0.5, 2.0), TypeError, "random: expecting an integer for low"),
    ("t", lambda t: kt.random(t, 5, 2), kt.KtorchError, "random: low must be less than high"),
    ("t", lambda t: kt.zeros(t, 1.5), TypeError, "zeros: expecting an index or list of indices"),
    ("t", lambda t: kt.zeros(t, "a"), kt.KtorchError, "zeros: a Tensor's rows are selected by index"),
    ("v", lambda v: kt.ones(v, [0, 2]), kt.KtorchError, "ones: vector index 2 invalid"),
    ("v", lambda v: kt.ones(v, [0], 1), TypeError, "ones: takes no options"),
    ("d", lambda d: kt.ones(d, "c"), kt.KtorchError, "ones: dictionary has no key `c`"),
    ("d", lambda d: kt.ones(d, ["a", "c"]), kt.KtorchError, "ones: dictionary has no key `c`"),
    ("d", lambda d: kt.ones(d, 0), kt.KtorchError, "ones: a Dict's tensors are selected by name"),
    ("d", lambda d: kt.fill(d, "a"), TypeError, "fill: expecting a number for the fill value"),
    ("d", lambda d: kt.fill(d), TypeError, "fill: missing the fill value"),
    # the second tensor does not fit: the first is not reset either
    ("d", lambda d: kt.kuniform(d), kt.KtorchError, "kuniform: fan in and fan out"),
    ("v", lambda v: kt.xuniform(v, [0, 1]), kt.KtorchError, "xuniform: fan in and fan out"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c[3].split("`")[0][:48])
def test_bad_input_raises_and_changes_nothing(case):
    name, fn, exc, msg = case
    h = fresh()[name]
    before = snapshot(h)
    with pytest.raises(exc, match="^" + msg.replace("(", r"\(").replace("`", "`")):
        fn(h)
    unchanged(h, before)


def test_libtorch_failure_part_way_puts_values_back():
    v = kt.vector(np.arange(4, dtype=np.float32), np.zeros(3, np.int8))
    before = snapshot(v)
    with pytest.raises(kt.KtorchError, match="^random: "):
        kt.random(v, 0, 1000)  # fine for the float tensor, out of range for int8
    unchanged(v, before)
    q = net()
    old = values(q)
    with pytest.raises(kt.KtorchError, match="knormal: parameter `0.wait` not found"):
        kt.knormal(q, ["0.weight", "0.wait"])
    with pytest.raises(kt.KtorchError, match="ones: parameter index 4 invalid"):
        kt.ones(q, [0, 4])
    with pytest.raises(kt.KtorchError, match="knormal: fan in and fan out"):
        kt.knormal(q, ["0.weight", "0.bias"])
    with pytest.raises(TypeError, match="zeros: expecting parameter or buffer names"):
        kt.zeros(q, 1.5)
    same_except(old, values(q), [])


def test_bad_objects():
    with pytest.raises(TypeError, match="normal: expecting a Tensor, Vector, Dict, Module, Model or array data"):
        kt.normal(kt.loss("mse"))
    with pytest.raises(TypeError, match="normal: expecting array data"):
        kt.normal("abc")
    t = kt.tensor(np.zeros(3, np.float32))
    kt.free(t)
    with pytest.raises(kt.KtorchError, match="zeros: Tensor has been freed"):
        kt.zeros(t)
    with pytest.raises(kt.KtorchError, match="normal: .*float"):
        kt.normal(kt.tensor(np.zeros(3, np.int64)))


def test_initialiser_while_another_thread_runs_forward():
    q = kt.module(kt.seq("sequential", ("linear", 32, 64), "relu", ("linear", 64, 8)))
    x = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    stop = threading.Event()
    errors, outs = [], []

    def runner():
        try:
            while not stop.is_set():
                outs.append(kt.tensor(kt.forward(q, x)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=runner)
    th.start()
    try:
        for i in range(100):
            kt.knormal(q, "0.weight", "relu")
            kt.orthogonal(q, ["2.weight"])
            kt.zeros(q, [1, 3])
            kt.fill(q, "2.bias", float(i))
    finally:
        stop.set()
        th.join()
    assert not errors
    assert outs and all(np.isfinite(o).all() for o in outs)


DEVICE_CASES = [c for c in CASES if c[0] in {"knormal", "xuniform", "orthogonal", "normal", "random", "geometric"}]


def test_values_on_the_device_equal_torch(device):
    for f, args, kw, fn in DEVICE_CASES:
        shape = shapes(f)[0]
        torch.manual_seed(3)
        want = torch.zeros(shape, device=device)
        fn(want)
        kt.seed(3)
        t = kt.tensor(np.zeros(shape, np.float32), device)
        getattr(kt, f)(t, *args, **kw)
        np.testing.assert_array_equal(kt.tensor(t), want.cpu().numpy(), err_msg=f)
    torch.manual_seed(4)
    want = init.sparse_(torch.zeros(7, 4, device=device), 0.4)
    kt.seed(4)
    t = kt.tensor(np.zeros((7, 4), np.float32), device)
    kt.snormal(t, 0.4)
    np.testing.assert_array_equal(kt.tensor(t), want.cpu().numpy())
    q = net()
    kt.to(q, device)
    torch.manual_seed(5)
    want = init.kaiming_uniform_(torch.zeros(3, 4, device=device), nonlinearity="relu")
    kt.seed(5)
    kt.kuniform(q, "0.weight", "relu")
    np.testing.assert_array_equal(values(q)["0.weight"], want.cpu().numpy())
