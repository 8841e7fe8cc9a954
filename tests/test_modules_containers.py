"""Containers: seqnest, seqjoin, seqdict, seqlist, fork, recur, transform, moduledict,
modulelist and parmdict, against torch and the original's worked examples.

Each container is mirrored by a torch.nn.Module with children of the same names: the
ktorch module's state_dict loads into it strictly (so the names are torch's), and outputs,
input gradients and parameter gradients then match. The original's examples (kmodules.rst)
run with the values they print. States rebuild each container with its children; bad
options and children raise KtorchError naming the type. Also here: the hidden/hiddencell
metrics joining every batch's state, restore with a dimension, and help entries.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn

import ktorch as kt

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = dict(rtol=1e-5, atol=1e-6)
CONTAINERS = ["seqnest", "seqjoin", "seqdict", "seqlist", "fork", "recur", "transform",
              "moduledict", "modulelist", "parmdict"]


def r(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


class Mirror(nn.Module):
    """A torch module with the given children (by name) and forward function."""

    def __init__(self, fwd, kids):
        super().__init__()
        for k, m in kids.items():
            self.add_module(k, m)
        self.fwd = fwd

    def forward(self, *xs):
        return self.fwd(self, *xs)


def seqn(*ms):
    return nn.Sequential(*ms)


def kid(m, k):
    return m.get_submodule(k)


def mirrored(q, tm):
    """Loads q's state_dict into the torch mirror (strict: the names must be torch's)."""
    tm.load_state_dict(kt.state_dict(q))
    return tm


def check_against_torch(q, tm, xs, grads=True):
    """Training-mode outputs, then input and parameter gradients, equal torch's."""
    mirrored(q, tm)
    kx = [kt.tensor(x, "grad") for x in xs]
    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    y = kt.forward(q, *kx)
    ty = tm(*tx)
    ty = list(ty) if isinstance(ty, (tuple, list)) else [ty]
    got = kt.tensor(y)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(ty)
    for a, b in zip(got, ty, strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)
    if not grads:
        return
    gs = [r(*t.shape, seed=5 + i) for i, t in enumerate(ty)]
    kt.backward(y, gs[0] if len(gs) == 1 else kt.vector(*gs))
    torch.autograd.backward(ty, [torch.from_numpy(g) for g in gs])
    for k, t in zip(kx, tx, strict=True):
        np.testing.assert_allclose(kt.grad(k), t.grad.numpy(), **TOL)
    names = kt.parmnames(q)
    assert names == [n for n, _ in tm.named_parameters()]
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(kt.grad(kt.parm(q, n)), p.grad.numpy(), **TOL)


# ---- the containers against torch ----


def test_seqnest_in_sequential():
    q = kt.module(kt.seq("sequential", kt.seq("seqnest", ("linear", 5, 4), "relu"), ("linear", 4, 2)))
    tm = seqn(seqn(nn.Linear(5, 4), nn.ReLU()), nn.Linear(4, 2))
    check_against_torch(q, tm, [r(3, 5)])


def test_seqnest_takes_up_to_three_inputs():
    q = kt.module(kt.seq("seqnest", ("bilinear", 3, 4, 2), "tanh"))
    tm = Mirror(lambda m, x, y: kid(m, "0")(x, y).tanh(), {"0": nn.Bilinear(3, 4, 2), "1": nn.Tanh()})
    check_against_torch(q, tm, [r(6, 3), r(6, 4)])
    with pytest.raises(kt.KtorchError, match="seqnest: forward expects 1-3 input tensor"):
        kt.forward(q, *[r(2, 3)] * 4)


def test_seqjoin_two_blocks_and_join():
    spec = kt.seq("seqjoin", kt.seq("sequential", ("linear", 4, 3), "relu"),
                  kt.seq("sequential", ("linear", 5, 2)), ("cat", 1))
    q = kt.module(spec)
    assert kt.childnames(q) == ["qx", "qy", "join"]
    kids = {"qx": seqn(nn.Linear(4, 3), nn.ReLU()), "qy": seqn(nn.Linear(5, 2))}
    tm = Mirror(lambda m, x, y: torch.cat([m.qx(x), m.qy(y)], 1), kids)
    check_against_torch(q, tm, [r(6, 4), r(6, 5)])


def test_seqjoin_one_block_and_y_defaulting_to_x():
    q = kt.module(kt.seq("seqjoin", kt.seq("sequential", ("linear", 4, 4)), "mul"))
    tm1 = Mirror(lambda m, x: m.qx(x) * x, {"qx": seqn(nn.Linear(4, 4))})
    check_against_torch(q, tm1, [r(3, 4)])
    # with y given and no second block, y joins as it is
    tm2 = Mirror(lambda m, x, y: m.qx(x) * y, {"qx": tm1.qx})
    check_against_torch(q, tm2, [r(3, 4), r(3, 4, seed=1)])
    # an empty block passes its input through
    q = kt.module(kt.seq("seqjoin", "sequential", "sequential", "mul"))
    x, y = r(2, 3), r(2, 3, seed=2)
    np.testing.assert_allclose(kt.evaluate(q, x, y), x * y, **TOL)


@pytest.mark.parametrize("kind", ["seqdict", "seqlist"])
def test_seqdict_seqlist_pass_extra_inputs_to_blocks_that_take_them(kind):
    # x = F(a); x = G(x, b): a linear block, then a bilinear block taking the 2nd input
    spec = kt.seq(kind, kt.seq(("sequential", "f"), ("linear", 4, 3), "relu"),
                  kt.seq(("sequential", "g"), ("bilinear", 3, 5, 2)),
                  kt.seq(("sequential", "h"), ("linear", 2, 2)))
    q = kt.module(spec)
    names = ["f", "g", "h"] if kind == "seqdict" else ["0", "1", "2"]
    assert kt.childnames(q) == names
    kids = dict(zip(names, [seqn(nn.Linear(4, 3), nn.ReLU()), seqn(nn.Bilinear(3, 5, 2)),
                            seqn(nn.Linear(2, 2))], strict=True))

    def fwd(m, a, b):
        f, g, h = (kid(m, n) for n in names)
        return h(g[0](f(a), b))

    tm = Mirror(fwd, kids)
    check_against_torch(q, tm, [r(6, 4), r(6, 5)])
    # a single input runs every block on it (the bilinear then fails for want of its 2nd)
    with pytest.raises(kt.KtorchError, match="bilinear"):
        kt.evaluate(q, r(6, 4))


def test_seqdict_takes_up_to_eight_inputs_and_skips_empty_blocks():
    q = kt.module(kt.seq("seqdict", kt.seq(("sequential", "a"), "cat"), ("sequential", "empty"),
                         kt.seq(("sequential", "b"), "mul")))
    x, y, z = r(2, 3), r(1, 3, seed=1), r(3, 3, seed=2)
    np.testing.assert_allclose(kt.evaluate(q, x, y), np.concatenate([x, y]) * y, **TOL)
    with pytest.raises(kt.KtorchError, match="seqdict: forward expects 1-8 input tensor"):
        kt.evaluate(q, *[z] * 9)


def test_fork_against_torch():
    q = kt.module(kt.seq("fork", ("linear", 3, 2), kt.seq("sequential", ("linear", 3, 4), "tanh")))
    assert kt.childnames(q) == ["a", "qb"]
    kids = {"a": nn.Linear(3, 2), "qb": seqn(nn.Linear(3, 4), nn.Tanh())}
    tm = Mirror(lambda m, x: (m.a(x), m.qb(x)), kids)
    check_against_torch(q, tm, [r(5, 3)])


def test_fork_missing_branch_returns_the_input():
    x = r(2, 3)
    a, b = kt.evaluate(kt.module(kt.seq("fork", "relu")), x)
    np.testing.assert_allclose(a, np.maximum(x, 0))
    np.testing.assert_array_equal(b, x)
    a, b = kt.evaluate(kt.module("fork"), x)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_recur_with_input_and_output_blocks(cell):
    spec = kt.seq(("recur", False), kt.seq("sequential", ("linear", 3, 4)), (cell, 4, 5, {"batchfirst": True}),
                  kt.seq("sequential", ("linear", 5, 2)))
    q = kt.module(spec)
    assert kt.childnames(q) == ["in", cell, "out"]
    tcell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](4, 5, batch_first=True)

    def fwd(m, x, *h):
        st = (tuple(h) if cell == "lstm" else h[0]) if h else None
        y, hs = kid(m, cell)(m.get_submodule("in")(x), st)
        return (m.out(y), *(hs if cell == "lstm" else (hs,)))

    kids = {"in": seqn(nn.Linear(3, 4)), cell: tcell, "out": seqn(nn.Linear(5, 2))}
    tm = Mirror(fwd, kids)
    x = r(2, 6, 3)
    check_against_torch(q, tm, [x])
    # the state goes in again with the next input
    states = kt.evaluate(q, x)[1:]
    x2 = r(2, 6, 3, seed=9)
    got = kt.evaluate(q, x2, *states)
    want = tm(torch.from_numpy(x2), *map(torch.from_numpy, states))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)


def test_recur_detach_option():
    q = kt.module(kt.seq(("recur", False), ("gru", 2, 3)))
    assert kt.state(q)[0]["options"] == {"detach": False}
    v = kt.forward(q, r(4, 1, 2))
    assert [i["gradient"] for i in kt.info(v)] == ["grad", "grad"]
    q = kt.module(kt.seq(("recur", {"detach": True}), ("gru", 2, 3)))
    assert [i["gradient"] for i in kt.info(kt.forward(q, r(4, 1, 2)))] == ["grad", "nograd"]


def test_transform_runs_the_block_of_its_mode():
    q = kt.module(kt.seq("transform", kt.seq("sequential", ("randomflip", 1.0, -1)),
                         kt.seq("sequential", ("zscore", 0.5, 0.25))))
    assert kt.childnames(q) == ["train", "eval"]
    x = r(2, 3, 4, 4)
    np.testing.assert_array_equal(kt.tensor(kt.forward(q, x)), x[..., ::-1])
    np.testing.assert_allclose(kt.evaluate(q, x), (x - 0.5) / 0.25, **TOL)
    kt.training(q, False)
    np.testing.assert_allclose(kt.tensor(kt.forward(q, x)), (x - 0.5) / 0.25, **TOL)
    # no evaluation block, or an empty one: the input passes through
    for spec in [kt.seq("transform", kt.seq("sequential", ("randomflip", 1.0))),
                 kt.seq("transform", "sequential", "sequential"), "transform"]:
        np.testing.assert_array_equal(kt.evaluate(kt.module(spec), x), x)


def test_moduledict_and_modulelist_against_torch():
    spec = kt.seq("moduledict", ("linear", "enc", 4, 3), ("linear", "dec", 3, 4), ("batchnorm1d", 3))
    q = kt.module(spec)
    td = nn.ModuleDict({"enc": nn.Linear(4, 3), "dec": nn.Linear(3, 4), "2": nn.BatchNorm1d(3)})
    assert list(kt.state_dict(q)) == list(td.state_dict())
    mirrored(q, td)
    x = r(5, 4)
    enc, dec = kt.child(q, "enc"), kt.child(q, "dec")
    y = kt.evaluate(dec, kt.evaluate(enc, x))
    np.testing.assert_allclose(y, td["dec"](td["enc"](torch.from_numpy(x))).detach().numpy(), **TOL)
    with pytest.raises(kt.KtorchError, match="moduledict: no forward calculation defined"):
        kt.forward(q, x)
    # a list: children by position, whatever their names
    q = kt.module(kt.seq("modulelist", ("linear", "a", 4, 3), "relu", ("linear", 3, 2)))
    tl = nn.ModuleList([nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)])
    assert kt.childnames(q) == ["0", "1", "2"]
    assert list(kt.state_dict(q)) == list(tl.state_dict())
    mirrored(q, tl)
    kx = kt.tensor(x, "grad")
    h = kx
    for i in range(3):
        h = kt.forward(kt.child(q, str(i)), h)
    tx = torch.tensor(x, requires_grad=True)
    th = tx
    for m in tl:
        th = m(th)
    np.testing.assert_allclose(kt.tensor(h), th.detach().numpy(), **TOL)
    g = r(5, 2, seed=4)
    kt.backward(h, g)
    th.backward(torch.from_numpy(g))
    np.testing.assert_allclose(kt.grad(kx), tx.grad.numpy(), **TOL)
    for n, p in tl.named_parameters():
        np.testing.assert_allclose(kt.grad(kt.parm(q, n)), p.grad.numpy(), **TOL)
    with pytest.raises(kt.KtorchError, match="modulelist: no forward calculation defined"):
        kt.evaluate(q, x)


def test_parmdict_against_torch():
    a, b = r(2, 3), np.arange(4.0)
    q = kt.module(("parmdict", "p", {"a": a, "b": b, "c": [1, 2], "d": 0.5}))
    tp = nn.ParameterDict({"a": torch.from_numpy(a), "b": torch.from_numpy(b),
                           "c": torch.tensor([1.0, 2.0]), "d": torch.tensor(0.5)})
    sd = kt.state_dict(q)
    assert list(sd) == list(tp.state_dict()) == ["a", "b", "c", "d"]
    for k, t in tp.state_dict().items():
        assert sd[k].dtype == t.dtype and sd[k].shape == t.shape
        np.testing.assert_array_equal(sd[k].numpy(), t.numpy())
    assert kt.gradflag(q) == {k: True for k in "abcd"}
    with pytest.raises(kt.KtorchError, match="parmdict: no forward calculation defined"):
        kt.forward(q, a)
    # in a container, under the parmdict's name
    q = kt.module(kt.seq("moduledict", ("parmdict", "p", {"w": a}), ("linear", "f", 3, 2)))
    assert kt.parmnames(q) == ["p.w", "f.weight", "f.bias"]
    # the dtype option converts every parameter
    q = kt.module(("parmdict", {"a": [1.0, 2.0], "dtype": "double"}))
    assert kt.state_dict(q)["a"].dtype == torch.float64


# ---- the original's worked examples (kmodules.rst) ----

X7 = np.array([-3, -2, -1, 0, 1, 2, 3], np.float32)


def test_doc_fork():
    m = kt.module(kt.seq("fork", kt.seq("sequential", "sigmoid"), kt.seq("sequential", "relu")))
    assert kt.childnames(m) == ["qa", "qb"]
    a, b = kt.evaluate(m, X7)
    np.testing.assert_allclose(a, [0.04743, 0.1192, 0.2689, 0.5, 0.7311, 0.8808, 0.9526], atol=5e-5)
    np.testing.assert_array_equal(b, [0, 0, 0, 0, 1, 2, 3])
    m = kt.module(kt.seq("fork", "sigmoid", kt.seq("sequential", "relu", ("drop", 0.5))))
    assert kt.childnames(m) == ["a", "qb"]
    a, b = kt.tensor(kt.forward(m, X7))
    np.testing.assert_allclose(a, [0.04743, 0.1192, 0.2689, 0.5, 0.7311, 0.8808, 0.9526], atol=5e-5)
    relu = np.maximum(X7, 0)
    assert all(v in (0, 2 * x) for v, x in zip(b, relu, strict=True))  # dropout at .5: 0 or doubled


def test_doc_recur():
    q = kt.module(kt.seq("recur", ("lstm", 100, 512)))
    assert kt.childnames(q) == ["lstm"]
    x = kt.tensor("randn", [3, 5, 100])
    v = kt.forward(q, x)
    assert [a.shape for a in kt.tensor(v)] == [(3, 5, 512), (1, 5, 512), (1, 5, 512)]
    # a new input with the current hidden state
    h, c = kt.tensor(v)[1:]
    x2 = np.random.default_rng(1).standard_normal((3, 5, 100)).astype(np.float32)
    v2 = kt.tensor(kt.forward(q, x2, h, c))
    lstm = nn.LSTM(100, 512)
    lstm.load_state_dict({k[5:]: t for k, t in kt.state_dict(q).items()})
    y, (h2, c2) = lstm(torch.from_numpy(x2), (torch.from_numpy(h), torch.from_numpy(c)))
    for a, b in zip(v2, [y, h2, c2], strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_doc_seqjoin():
    q = kt.module(kt.seq("seqjoin", kt.seq(("sequential", "f"), "relu"), kt.seq(("sequential", "g"), "sigmoid"),
                         "cat"))
    assert kt.childnames(q) == ["f", "g", "join"]
    x, y = np.array([-1, 2, 1], np.float32), np.array([1, 2, 3], np.float32)
    np.testing.assert_allclose(kt.evaluate(q, x, y), [0, 2, 1, 0.7311, 0.8808, 0.9526], atol=5e-5)
    q = kt.module(kt.seq("seqjoin", kt.seq("sequential", "relu"), "matmul"))
    assert kt.childnames(q) == ["qx", "join"]
    assert kt.evaluate(q, X7) == 14.0


def test_doc_seqdict():
    q = kt.module(kt.seq("seqdict", kt.seq(("sequential", "a"), ("sigmoid", "f")),
                         kt.seq(("sequential", "b"), ("cat", "c"))))
    rows = kt.state(q)
    assert [(x["depth"], x["name"], x["module"]) for x in rows] == [
        (0, None, "seqdict"), (1, "a", "sequential"), (2, "f", "sigmoid"), (1, "b", "sequential"), (2, "c", "cat")]
    x, y = np.array([-2, -1, 0, 1, 2, 3.0]), np.array([99, 100.0])
    want = [0.1192, 0.2689, 0.5, 0.7311, 0.8808, 0.9526, 99, 100]
    np.testing.assert_allclose(kt.evaluate(q, x, y), want, atol=5e-5)
    q = kt.module(kt.seq("seqdict", kt.seq(("sequential", "a"), ("sigmoid", "f")),
                         kt.seq(("sequential", "b"), ("cat", "c"), ("reshape", "mat", [2, 4]))))
    np.testing.assert_allclose(kt.evaluate(q, x, y), np.reshape(want, (2, 4)), atol=5e-5)


def test_doc_seqlist():
    m = kt.module(kt.seq("seqlist", kt.seq("sequential", "sigmoid"), kt.seq("sequential", "relu"),
                         kt.seq("sequential", "mul")))
    got = kt.evaluate(m, X7, np.array(1000, np.float32))
    np.testing.assert_allclose(got, [47.43, 119.2, 268.9, 500, 731.1, 880.8, 952.6], atol=0.05)


def test_doc_seqnest():
    q = kt.module(kt.seq("sequential", kt.seq("seqnest", ("linear", 5, 2), "relu")))
    x = np.tile(np.arange(5, dtype=np.float32), (3, 1))
    w, b = kt.tensor(kt.parm(q, "0.0.weight")), kt.tensor(kt.parm(q, "0.0.bias"))
    want = np.maximum(x @ w.T + b, 0)
    got = kt.evaluate(q, x)
    assert got.shape == (3, 2) and (got[0] == got).all()  # three equal rows, as printed
    np.testing.assert_allclose(got, want, **TOL)


def test_doc_transform():
    spec = kt.seq("transform",
                  kt.seq("sequential", ("randomflip", 0.5, -1), ("randomcrop", 32, 4), ("zscore", 0.5, 0.25)),
                  kt.seq("sequential", ("zscore", 0.5, 0.25)))
    m = kt.module(spec)
    rows = [(x["depth"], x["name"], x["module"]) for x in kt.state(m)]
    assert rows == [(0, None, "transform"), (1, "train", "sequential"), (2, "0", "randomflip"),
                    (2, "1", "randomcrop"), (2, "2", "zscore"), (1, "eval", "sequential"), (2, "0", "zscore")]
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    y = kt.tensor(kt.forward(m, x))
    assert y.shape == x.shape
    # a crop of the zero-padded image, maybe flipped, then zscored: padding shows as -2
    assert set(np.unique(y[y < (0 - 0.5) / 0.25 + 1e-6])) <= {-2.0}
    np.testing.assert_allclose(kt.evaluate(m, x), (x - 0.5) / 0.25, **TOL)


# ---- state ----

SPECS = {
    "seqnest": kt.seq("seqnest", ("linear", 3, 4), "relu"),
    "seqjoin": kt.seq("seqjoin", kt.seq("sequential", ("linear", 3, 3)), kt.seq(("sequential", "y"), "relu"),
                      ("cat", "j", 1)),
    "seqdict": kt.seq("seqdict", kt.seq(("sequential", "a"), ("linear", 3, 3)), kt.seq(("sequential", "b"), "mul")),
    "seqlist": kt.seq("seqlist", kt.seq("sequential", ("linear", 3, 3)), kt.seq("sequential", "relu")),
    "fork": kt.seq("fork", ("linear", 3, 2), kt.seq("sequential", ("batchnorm1d", 3))),
    "recur": kt.seq(("recur", False), kt.seq("sequential", ("linear", 3, 4)), ("lstm", 4, 2)),
    "transform": kt.seq("transform", kt.seq("sequential", ("zscore", 0.1, 2.0)), kt.seq("sequential", "relu")),
    "moduledict": kt.seq("moduledict", ("linear", "a", 3, 2), kt.seq("seqlist", kt.seq("sequential", "relu"))),
    "modulelist": kt.seq("modulelist", ("linear", 3, 2), ("parmdict", {"w": [1.0, 2.0]})),
    "parmdict": ("parmdict", {"a": np.arange(6.0).reshape(2, 3), "b": [0.5]}),
}
INPUTS = {"seqjoin": (r(2, 3), r(2, 3, seed=1)), "seqdict": (r(2, 3), r(2, 3, seed=1)),
          "recur": (r(5, 2, 3),)}


def same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype
    return type(a) is type(b) and a == b


def test_every_container_is_listed():
    names = kt.help("module")
    assert set(CONTAINERS) <= set(names) and len(names) == len(set(names))
    assert set(SPECS) == set(CONTAINERS)


@pytest.mark.parametrize("name", CONTAINERS)
def test_state_round_trip(name):
    q = kt.module(SPECS[name])
    if kt.parmnames(q):
        kt.freeze(q, [kt.parmnames(q)[0]])
    s = kt.state(q)
    top = s[0] if isinstance(s, list) else s
    assert top["module"] == name
    q2 = kt.module(s)
    assert same(kt.state(q2), s)
    assert kt.parmnames(q2) == kt.parmnames(q) and kt.childnames(q2) == kt.childnames(q)
    assert list(kt.state_dict(q2)) == list(kt.state_dict(q))
    assert kt.gradflag(q2) == kt.gradflag(q)
    if name not in ("moduledict", "modulelist", "parmdict"):
        xs = INPUTS.get(name, (r(2, 3),))
        a, b = kt.evaluate(q, *xs), kt.evaluate(q2, *xs)
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True):
            np.testing.assert_array_equal(x, y)


def test_state_of_a_parmdict_keeps_parameters_once():
    s = kt.state(kt.module(SPECS["parmdict"]))
    assert s["options"] == {} and list(s["parms"]) == ["a", "b"]
    assert s["parms"]["a"].dtype == np.float64 and s["parms"]["b"].dtype == np.float32


def test_state_keeps_the_names_given_and_given_defaults():
    q = kt.module(kt.seq("fork", ("relu", "left"), kt.seq(("sequential", "right"), "tanh")))
    assert kt.childnames(q) == ["left", "right"]
    assert kt.childnames(kt.module(kt.state(q))) == ["left", "right"]
    q = kt.module(kt.seq("transform", kt.seq(("sequential", "aug"), "relu")))
    assert kt.childnames(q) == ["aug"]
    # recur names its children by role, whatever they are called
    q = kt.module(kt.seq("recur", kt.seq(("sequential", "pre"), "relu"), ("gru", "g", 2, 2)))
    assert kt.childnames(q) == ["in", "gru"]


# ---- errors ----

ERRORS = [
    ("seqnest-option", ("seqnest", 1), "seqnest: expecting at most 0 positional setting"),
    ("seqjoin-empty", "seqjoin", "seqjoin: join module not defined"),
    ("seqjoin-no-join", kt.seq("seqjoin", "sequential"), "seqjoin: join module not defined"),
    ("seqjoin-join-first", kt.seq("seqjoin", "cat", "sequential"),
     "seqjoin: cannot add cat module `0`: at least one sequential module must be defined before the join"),
    ("seqjoin-three", kt.seq("seqjoin", "sequential", "sequential", "sequential", "cat"),
     "seqjoin: cannot add sequential module `2`: both sequential modules already defined"),
    ("seqjoin-after-join", kt.seq("seqjoin", "sequential", "cat", "sequential"),
     "seqjoin: cannot add sequential module `2`: the join module is already defined"),
    ("seqdict-leaf", kt.seq("seqdict", "sequential", ("relu", "r")),
     "seqdict: expecting sequential modules, given relu module `r`"),
    ("seqlist-leaf", kt.seq("seqlist", ("linear", 2, 2)), "seqlist: expecting sequential modules, given linear"),
    ("fork-three", kt.seq("fork", "relu", "relu", "tanh"),
     "fork: cannot add tanh module `2`: both left and right forks already defined"),
    ("fork-names", kt.seq("fork", ("relu", "b"), "tanh"), "fork: child name `b` used twice"),
    ("recur-none", "recur", "recur: no recurrent lstm, gru or rnn module defined"),
    ("recur-two", kt.seq("recur", ("gru", 2, 2), ("lstm", 2, 2)), "recur: cannot add lstm module, gru module already"),
    ("recur-leaf", kt.seq("recur", ("linear", 2, 2)), "recur: unable to add linear module `0`, expecting sequential"),
    ("recur-two-in", kt.seq("recur", "sequential", "sequential", ("gru", 2, 2)),
     "recur: cannot add sequential module `1`: a sequential module for output processing needs a recurrent"),
    ("recur-two-out", kt.seq("recur", ("gru", 2, 2), "sequential", "sequential"),
     "recur: cannot add sequential module `2`: sequential module for output processing already added"),
    ("recur-detach", ("recur", {"detach": "yes"}), "recur: detach"),
    ("recur-option", ("recur", {"nosuch": 1}), "recur: unrecognized option: nosuch"),
    ("transform-leaf", kt.seq("transform", "relu"), "transform: cannot add relu module `0`: expecting sequential"),
    ("transform-three", kt.seq("transform", "sequential", "sequential", "sequential"),
     "transform: both training and evaluation transforms already defined"),
    ("moduledict-option", ("moduledict", 3), "moduledict: expecting at most 0 positional"),
    ("parmdict-positional", ("parmdict", [1.0]), "parmdict: expecting parameters by name in a dict"),
    ("parmdict-int", ("parmdict", {"a": np.arange(3)}), "parmdict: parameter a must be a floating-point tensor"),
    ("parmdict-str", ("parmdict", {"a": "x"}), "parmdict: parameter a expects a tensor"),
    ("parmdict-children", kt.seq("parmdict", "relu"), "parmdict: cannot hold child modules"),
    ("no-forward-child", kt.seq("sequential", "moduledict"),
     "sequential: cannot hold moduledict module `0`: it has no forward calculation"),
    ("no-forward-fork", kt.seq("fork", ("parmdict", {"a": 1.0})), "fork: cannot hold parmdict module `0`"),
]


@pytest.mark.parametrize("spec,msg", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_options_and_children(spec, msg):
    with pytest.raises(kt.KtorchError) as e:
        kt.module(spec)
    assert msg in str(e.value)


def test_bad_inputs():
    with pytest.raises(kt.KtorchError, match="fork: forward expects 1 input tensor"):
        kt.evaluate(kt.module(kt.seq("fork", "relu")), r(2), r(2))
    with pytest.raises(kt.KtorchError, match="seqjoin: forward expects 1-2 input tensor"):
        kt.evaluate(kt.module(SPECS["seqjoin"]), r(2, 3), r(2, 3), r(2, 3))
    with pytest.raises(kt.KtorchError, match="transform: forward expects 1 input tensor"):
        kt.evaluate(kt.module(SPECS["transform"]), r(2, 3), r(2, 3))
    with pytest.raises(kt.KtorchError, match="recur: forward expects 1-3 input tensor"):
        kt.evaluate(kt.module(SPECS["recur"]), *[r(5, 2, 3)] * 4)


# ---- hidden state metrics: every batch's state, joined along dim 0 ----


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hidden_metrics_join_every_batch(cell):
    kt.seed(1)
    q = kt.module((cell, 3, 5, {"batchfirst": True}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.0))
    x = np.random.default_rng(1).standard_normal((6, 4, 3)).astype(np.float32)
    y = np.zeros((6, 4, 5), np.float32)
    metrics = ["hidden", "hiddencell"] if cell == "lstm" else ["hidden"]
    kt.train(m, batchsize=2, metrics=metrics)
    kt.train(m, x, y)
    got = kt.run(m)
    got = got if isinstance(got, list) else [got]
    want = [[], []]
    for i in range(3):
        out = kt.evaluate(q, x[2 * i:2 * i + 2])
        for j in range(len(metrics)):
            want[j].append(out[j + 1])
    for g, w in zip(got, want, strict=False):
        assert g.shape == (3, 2, 5)  # one layer's state per batch, batches along dim 0
        np.testing.assert_allclose(g, np.concatenate(w), **TOL)
    # a shorter last batch cannot be joined: an error saying why
    kt.train(m, x[:5], y[:5])
    with pytest.raises(kt.KtorchError, match="hidden: batch 3 has a state of size"):
        kt.run(m)
    kt.train(m, droplast=True)
    got = kt.run(m)
    assert (got[0] if cell == "lstm" else got).shape == (2, 2, 5)


# ---- restore with a dimension ----


def test_restore_along_the_batching_dimension():
    t = kt.tensor(np.arange(20).reshape(2, 10))
    assert kt.batch(t, (5, 1))
    np.testing.assert_array_equal(kt.tensor(t), [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]])
    with pytest.raises(kt.KtorchError, match="restore: batched along dimension 1, given dimension 0"):
        kt.restore(t, 0)
    assert kt.tensor(t).shape == (2, 5)  # the batch stays in place
    assert kt.restore(t, 1) == 10
    np.testing.assert_array_equal(kt.tensor(t), np.arange(20).reshape(2, 10))
    assert kt.restore(t, 0) == 2 and kt.restore(t, 1) == 10  # not batching: the size along dim
    with pytest.raises(kt.KtorchError, match="dimension 2 invalid"):
        kt.restore(t, 2)
    # vectors and dicts: every member's size along the dimension
    d = kt.dict({"x": np.arange(10.0), "y": np.arange(10)})
    kt.batch(d, 4)
    assert kt.restore(d, 0) == 10 and kt.tensor(d)["y"].shape == (10,)
    v = kt.vector(np.zeros((3, 8)), np.ones((2, 8)))
    kt.batch(v, (3, 1), 2)
    assert kt.tensor(v)[0].shape == (3, 2)
    assert kt.restore(v, 1) == 8


def test_restore_model_with_dimension():
    m = kt.model(kt.module("identity"), kt.loss("mse"), kt.opt("sgd"))
    kt.train(m, batchsize=3)
    kt.train(m, np.arange(10.0), np.arange(10.0) + 10)
    assert kt.batch(m)
    assert kt.datasize(m) == 3
    with pytest.raises(kt.KtorchError, match="restore: a model's data is batched along dimension 0"):
        kt.restore(m, 1)
    assert kt.datasize(m) == 3
    assert kt.restore(m, 0) == 10 and kt.datasize(m) == 10


# ---- help ----


def test_help_of_a_type_as_the_original_shows_it():
    assert kt.help("linear") == {"in": 784, "out": 10, "bias": True}
    assert kt.help("conv2d") == {"in": 16, "out": 32, "size": [3, 5], "stride": 1, "pad": 0, "dilate": 1,
                                 "groups": 1, "bias": True, "padmode": "zeros"}
    assert kt.help("randomflip") == {"p": 0.5, "dim": -1}
    assert kt.help("randomcrop") == {"size": 32, "pad": 4, "padmode": "reflect", "value": 0.0}
    assert kt.help("zscore") == {"mean": [0.51, 0.49, 0.47], "std": [0.25, 0.25, 0.21], "inplace": False}
    assert kt.help("recur") == {"detach": True} and kt.help("fork") == {}
    assert kt.help("sgd") == {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "decay": 0.0, "nesterov": False}
    assert kt.help("ce") == {"weight": None, "ignore": -100, "smoothing": 0.0, "reduce": "mean"}
    with pytest.raises(kt.KtorchError, match="help: no help for `nosuch`"):
        kt.help("nosuch")


NEED_CHILDREN = {
    "residual": [("linear", 2, 2)], "seqjoin": [kt.seq("sequential", "relu"), "cat"],
    "recur": [("gru", 2, 2)], "callback": None,
}


def test_help_entries_give_the_original_defaults():
    """Known entries against the original's documented defaults (the table and help(name) come
    from one source, so they are checked against values here, not against each other only)."""
    assert kt.help("linear") == {"in": 784, "out": 10, "bias": True}
    assert kt.help("ce") == {"weight": None, "ignore": -100, "smoothing": 0.0, "reduce": "mean"}
    assert kt.help("sgd") == {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "decay": 0.0,
                              "nesterov": False}
    rows = {r["loss"]: r["options"] for r in kt.help("loss", table=True)}
    assert rows["ce"]["ignore"] == -100 and rows["ce"]["reduce"] == "mean"


@pytest.mark.parametrize("topic", ["module", "loss", "optimizer"])
def test_every_type_has_a_help_entry(topic):
    names = kt.help(topic)
    table = kt.help(topic, table=True)
    key = "optimizer" if topic == "optimizer" else topic
    assert [row[key] for row in table] == names
    for row in table:
        assert isinstance(row["options"], dict)
        if not (topic == "loss" and row[key] in ("pairwise", "similar")):  # also modules: help gives those
            assert kt.help(row[key]) == row["options"]


def test_every_module_builds_from_its_help_entry():
    for name in kt.help("module"):
        opts = {k: v for k, v in kt.help(name).items() if v is not None}
        if name == "callback":
            opts["fn"] = lambda m, x: x
        kids = NEED_CHILDREN.get(name) or []
        spec = (name, opts)
        q = kt.module(kt.seq(spec, *kids) if kids else spec)
        assert kt.info(q)["type"] == name
        # the options the module reads back are among the help entry's
        assert set(kt.info(q)["options"]) <= set(kt.help(name))


def test_losses_and_optimizers_build_from_their_help_entries():
    for name in kt.help("loss"):
        opts = {k: v for k, v in kt.help(name).items() if v is not None}
        assert kt.info(kt.loss(name, **opts))["type"] == name
    q = kt.module(("linear", 2, 2))
    for name in kt.help("optimizer"):
        o = kt.opt(name, q, **kt.help(name))
        assert kt.info(o)["settings"][0] == kt.help(name)
