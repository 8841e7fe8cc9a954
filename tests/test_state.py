"""State as plain data (kt.state) and the objects built from it: module(state), loss(state),
opt(state, q) and model(state).

The original's examples (module, optimizer and model state), a round trip for every module
type and every loss, settings that must survive (tuples, bias, dtype, frozen parameters,
evaluation mode), each optimizer's per-parameter state trained on bitwise after the round
trip, models that resume bitwise (shuffling included, with and without their data), bad
states that raise KtorchError naming the problem and change nothing, and a state read
while another thread trains the model.
"""

import copy
import threading

import numpy as np
import pytest
import torch

import ktorch as kt

torch.set_num_threads(1)


def r(*shape, seed=0):
    g = np.random.default_rng(seed + sum(shape))
    return g.standard_normal(shape).astype(np.float32)


def same(a, b, path="state"):
    """Equal states: the same keys in the same order, the same types, arrays with equal
    dtypes, shapes and values."""
    if isinstance(a, (np.ndarray, np.generic)):
        assert isinstance(b, type(a)), (path, type(a), type(b))
        assert a.dtype == b.dtype and a.shape == b.shape, (path, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (path, list(a), list(b))
        for k in a:
            same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def outputs(h):
    """A forward result as a list of numpy arrays (a Vector's members, or the Tensor)."""
    return kt.vector(h) if isinstance(h, kt.Vector) else [kt.tensor(h)]


def same_outputs(h1, h2):
    o1, o2 = outputs(h1), outputs(h2)
    assert len(o1) == len(o2)
    for a, b in zip(o1, o2, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def values(q):
    return {k: v.copy() for k, v in kt.dict(kt.parms(q)).items()}


def net():
    return kt.module(
        kt.seq("sequential", ("linear", "a", 4, 6), ("batchnorm1d", "b", 6), "relu", ("linear", "c", 6, 3))
    )


def data(n=40, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, 4)).astype(np.float32), g.integers(0, 3, n)


X, Y = data()


# ---------------------------------------------------------------------------------------------
# 1. the original's examples


def test_doc_linear_state_and_clone():
    a = kt.module(("linear", "example", 2, 1))
    s = kt.state(a)
    assert list(s) == ["depth", "module", "name", "options", "parms", "buffers", "training", "frozen"]
    assert s["depth"] == 0 and s["module"] == "linear" and s["name"] == "example"
    assert s["options"] == {"in": 2, "out": 1}
    assert list(s["parms"]) == ["weight", "bias"]
    assert s["parms"]["weight"].shape == (1, 2) and s["parms"]["bias"].shape == (1,)
    assert s["parms"]["weight"].dtype == np.float32
    assert s["buffers"] == {} and s["training"] is True and s["frozen"] == []
    b = kt.module(s)
    same(kt.state(b), s)  # identical state
    assert b is not a  # a different module, with its own memory
    w = kt.tensor(kt.parm(a, "weight")).copy()
    kt.parm(b, "weight", [[9.0, 9.0]])
    np.testing.assert_array_equal(kt.tensor(kt.parm(a, "weight")), w)
    np.testing.assert_array_equal(kt.state(b)["parms"]["weight"], [[9.0, 9.0]])


def test_doc_state_arrays_are_copies():
    a = kt.module(("linear", 2, 1))
    s = kt.state(a)
    w = s["parms"]["weight"].copy()
    s["parms"]["weight"][:] = 5  # writing to the state does not reach the module
    np.testing.assert_array_equal(kt.tensor(kt.parm(a, "weight")), w)
    b = kt.module(s)
    s["parms"]["weight"][:] = 7  # nor does it reach the module built from it
    np.testing.assert_array_equal(kt.tensor(kt.parm(b, "weight")), [[5.0, 5.0]])


def test_doc_sequential_rows():
    q = kt.module(kt.seq("sequential", ("linear", 64, 10), "relu"))
    s = kt.state(q)
    assert isinstance(s, list) and len(s) == 3
    assert [x["depth"] for x in s] == [0, 1, 1]
    assert [x["module"] for x in s] == ["sequential", "linear", "relu"]
    assert [x["name"] for x in s] == [None, "0", "1"]
    assert [x["options"] for x in s] == [{}, {"in": 64, "out": 10}, {}]
    assert [list(x["parms"]) for x in s] == [[], ["weight", "bias"], []]
    assert s[1]["parms"]["weight"].shape == (10, 64)
    q2 = kt.module(s)
    q3 = kt.module(copy.deepcopy(s))
    for x in (q2, q3):
        same(kt.state(x), s)
    assert len({id(x) for x in (q, q2, q3)}) == 3


def test_doc_optimizer_buffers_before_and_after_a_step():
    q = kt.module(kt.seq("sequential", ("linear", "a", 128, 64), "relu", ("linear", "b", 64, 10), "relu"))
    o = kt.opt("adamw", q, 0.0002)
    s = kt.state(o)
    assert list(s) == ["optimizer", "options", "defaults", "parms", "history"]
    assert s["optimizer"] == "adamw" and s["history"] == {}
    assert len(s["options"]) == 1 and s["options"][0]["lr"] == 0.0002 and s["defaults"]["lr"] == 0.0002
    assert [p["name"] for p in s["parms"]] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert [p["size"] for p in s["parms"]] == [[64, 128], [64], [10, 64], [10]]
    assert [p["parmgroup"] for p in s["parms"]] == [0, 0, 0, 0]
    assert all(p["buffers"] == {} and p["step"] == 0 for p in s["parms"])
    # one step: each parameter gets its buffers
    y = kt.forward(q, np.ones((20, 128), np.float32))
    kt.backward(kt.ce(y, np.random.default_rng(0).integers(0, 10, 20)))
    kt.step(o)
    s = kt.state(o)
    for p in s["parms"]:
        assert p["step"] == 1
        assert list(p["buffers"]) == ["exp_avg", "exp_avg_sq"]
        for v in p["buffers"].values():
            assert isinstance(v, np.ndarray) and list(v.shape) == p["size"] and v.dtype == np.float32
    # restore: a module from the module's state, the optimizer from its state over it
    q2 = kt.module(kt.state(q))
    o2 = kt.opt(s, q2)
    same(kt.state(o2), s)
    same(kt.state(q2), kt.state(q))


def test_doc_model_state():
    q = kt.module(kt.seq("sequential", ("linear", 64, 10), "relu"))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    s = kt.state(m)
    assert list(s) == ["module", "loss", "optimizer", "train", "test", "position"]
    same(s["module"], kt.state(q))
    q2 = kt.module(s["module"])
    same(kt.state(q2), kt.state(q))
    assert s["loss"] == {"loss": "ce", "options": kt.state(kt.loss("ce"))["options"]}
    assert s["optimizer"]["optimizer"] == "sgd"
    assert s["train"] == kt.train(m) and s["test"] == kt.test(m)
    assert list(s["position"]) == ["train", "test"]
    for stage in s["position"].values():
        assert list(stage) == ["epochs", "generator", "order", "paused"]
    assert "data" not in s
    assert kt.state(m, data=True)["data"] == {"train": None, "test": None}


# ---------------------------------------------------------------------------------------------
# 2. every module type

X4 = r(5, 4)
MODULES = {
    "sequential": (kt.seq("sequential", ("linear", 4, 3), "relu"), (X4,)),
    "identity": ("identity", (X4,)),
    "residual": (kt.seq("residual", kt.seq("sequential", ("linear", 4, 6), "tanh"), ("linear", 4, 6)), (X4,)),
    "seqnest": (kt.seq("seqnest", ("linear", 4, 3), "relu"), (X4,)),
    "seqjoin": (kt.seq("seqjoin", kt.seq("sequential", ("linear", 4, 3)), kt.seq("sequential", ("linear", 4, 2)),
                       ("cat", 1)), (X4,)),
    "seqdict": (kt.seq("seqdict", kt.seq(("sequential", "a"), ("linear", 4, 3)),
                       kt.seq(("sequential", "b"), ("batchnorm1d", 3))), (X4,)),
    "seqlist": (kt.seq("seqlist", kt.seq("sequential", ("linear", 4, 3)), kt.seq("sequential", "relu")), (X4,)),
    "fork": (kt.seq("fork", ("linear", 4, 3), kt.seq("sequential", ("linear", 4, 2))), (X4,)),
    "recur": (kt.seq("recur", ("gru", 4, 3), kt.seq("sequential", ("linear", 3, 2))), (r(2, 5, 4),)),
    "transform": (kt.seq("transform", kt.seq("sequential", ("zscore", 0.5, 2.0)), kt.seq("sequential", "relu")),
                  (X4,)),
    # no forward calculation of their own
    "moduledict": (kt.seq("moduledict", ("linear", "a", 4, 3), ("batchnorm1d", "b", 3)), None),
    "modulelist": (kt.seq("modulelist", ("linear", 4, 3), "relu"), None),
    "parmdict": (("parmdict", {"w": r(2, 3), "b": [0.5, 1.0]}), None),
    "linear": (("linear", 4, 3), (X4,)),
    "bilinear": (("bilinear", 4, 3, 2), (r(5, 4), r(5, 3))),
    "embed": (("embed", 10, 4), (np.array([[1, 2, 0], [9, 3, 3]], dtype=np.int64),)),
    "conv1d": (("conv1d", 2, 3, 3), (r(2, 2, 9),)),
    "conv2d": (("conv2d", 2, 3, 3), (r(2, 2, 6, 7),)),
    "conv3d": (("conv3d", 2, 3, 2), (r(1, 2, 4, 5, 3),)),
    "convtranspose1d": (("convtranspose1d", 2, 3, 3, 2), (r(2, 2, 5),)),
    "convtranspose2d": (("convtranspose2d", 2, 3, 3), (r(2, 2, 4, 5),)),
    "convtranspose3d": (("convtranspose3d", 2, 3, 2), (r(1, 2, 3, 4, 3),)),
    "maxpool1d": (("maxpool1d", 3), (r(2, 3, 10),)),
    "maxpool2d": (("maxpool2d", 2), (r(2, 3, 6, 7),)),
    "maxpool3d": (("maxpool3d", 2), (r(1, 2, 4, 4, 4),)),
    "avgpool1d": (("avgpool1d", 2), (r(2, 3, 9),)),
    "avgpool2d": (("avgpool2d", 3, 2, 1), (r(2, 3, 7, 6),)),
    "avgpool3d": (("avgpool3d", 2), (r(1, 2, 4, 4, 4),)),
    "adaptavg1d": (("adaptavg1d", 4), (r(2, 3, 11),)),
    "adaptavg2d": (("adaptavg2d", (2, 3)), (r(2, 3, 7, 8),)),
    "adaptavg3d": (("adaptavg3d", 2), (r(1, 2, 5, 4, 6),)),
    "adaptmax1d": (("adaptmax1d", 3), (r(2, 3, 11),)),
    "adaptmax2d": (("adaptmax2d", 3), (r(2, 3, 7, 8),)),
    "adaptmax3d": (("adaptmax3d", 2), (r(1, 2, 5, 4, 6),)),
    "batchnorm1d": (("batchnorm1d", 5), (r(6, 5),)),
    "batchnorm2d": (("batchnorm2d", 5), (r(2, 5, 3, 4),)),
    "batchnorm3d": (("batchnorm3d", 3), (r(2, 3, 2, 3, 2),)),
    "layernorm": (("layernorm", (4, 6)), (r(3, 4, 6),)),
    "groupnorm": (("groupnorm", 2, 6), (r(3, 6, 5),)),
    "drop": (("drop", 0.5), (r(4, 6),)),
    "drop2d": (("drop2d", 0.3), (r(2, 3, 4, 4),)),
    "drop3d": (("drop3d", 0.3), (r(2, 3, 2, 4, 4),)),
    "adrop": (("adrop", 0.3), (r(4, 6),)),
    "fadrop": (("fadrop", 0.3), (r(4, 6),)),
    "celu": (("celu", 0.7), (X4,)),
    "elu": (("elu", 1.3), (X4,)),
    "gelu": (("gelu", {"approximate": "tanh"}), (X4,)),
    "glu": ("glu", (X4,)),
    "hardshrink": (("hardshrink", 0.3), (X4,)),
    "hardtanh": (("hardtanh", -0.5, 0.7), (X4,)),
    "leakyrelu": (("leakyrelu", 0.2), (X4,)),
    "logsigmoid": ("logsigmoid", (X4,)),
    "logsoftmax": (("logsoftmax", 1), (X4,)),
    "mish": ("mish", (X4,)),
    "prelu": (("prelu", 4, 0.1), (X4,)),
    "relu": ("relu", (X4,)),
    "relu6": ("relu6", (X4,)),
    "rrelu": (("rrelu", 0.1, 0.3), (X4,)),
    "selu": ("selu", (X4,)),
    "sigmoid": ("sigmoid", (X4,)),
    "silu": ("silu", (X4,)),
    "softmax": (("softmax", 1), (X4,)),
    "softmax2d": ("softmax2d", (r(2, 3, 4, 4),)),
    "softmin": (("softmin", 1), (X4,)),
    "softplus": (("softplus", 2.0, 3.0), (X4,)),
    "softshrink": (("softshrink", 0.4), (X4,)),
    "softsign": ("softsign", (X4,)),
    "tanh": ("tanh", (X4,)),
    "tanhshrink": ("tanhshrink", (X4,)),
    "threshold": (("threshold", 0.1, 20.0), (X4,)),
    "rnn": (("rnn", 4, 5, 2, {"bi": True}), (r(3, 2, 4),)),
    "gru": (("gru", 4, 5, 2), (r(3, 2, 4),)),
    "lstm": (("lstm", 4, 5, 2, {"bi": True}), (r(3, 2, 4),)),
    "flatten": (("flatten", 0, 1), (r(2, 3, 4, 5),)),
    "reshape": (("reshape", (-1, 6)), (r(2, 3, 4),)),
    # fractional max pooling given its random samples: the same regions both times
    "fmaxpool2d": (("fmaxpool2d", 2, {"ratio": 0.5}), (r(2, 3, 8, 9), np.full((2, 3, 2), 0.3, np.float32))),
    "fmaxpool3d": (("fmaxpool3d", [2, 1, 2], 3), (r(1, 2, 6, 5, 7), np.full((1, 2, 3), 0.6, np.float32))),
    "lppool1d": (("lppool1d", 2, 3, 2, True), (r(2, 3, 10),)),
    "lppool2d": (("lppool2d", 1.5, (2, 3)), (np.abs(r(2, 3, 6, 7)),)),
    "fold": (("fold", (4, 5), 2, {"stride": 1}), (r(2, 8, 12),)),
    "unfold": (("unfold", 2, 1, 1, 2), (r(2, 2, 5, 6),)),
    "instancenorm1d": (("instancenorm1d", 3, {"affine": True, "track": True}), (r(2, 3, 5),)),
    "instancenorm2d": (("instancenorm2d", 3, 1e-3), (r(2, 3, 4, 4),)),
    "instancenorm3d": (("instancenorm3d", 3, {"track": True, "momentum": 0.5}), (r(2, 3, 2, 3, 2),)),
    "localnorm": (("localnorm", 3, 1e-3, 0.5, 2.0), (r(2, 5, 4),)),
    "crossmap2d": (("crossmap2d", 3, {"k": 2}), (r(2, 5, 3, 3),)),
    "droppath": (("droppath", 0.2), (r(6, 3),)),
    "embedbag": (("embedbag", 10, 3, "max", {"padindex": 1}), (np.array([[1, 2, 4], [4, 3, 9]], np.int64),)),
    "embedpos": (("embedpos", 5, 3), (np.array([[1, 2, 4], [4, 3, 9]], np.int64),)),
    "embedseq": (("embedseq", 10, 3, 5), (np.array([[1, 2, 4], [4, 3, 9]], np.int64),)),
    # padding, shape and arithmetic, functions, transforms
    "pad": (("pad", [1, 1, 2, 2], "reflect"), (r(2, 3, 5),)),
    "pad1d": (("pad1d", [1, 2], 0.5), (r(2, 3, 5),)),
    "pad2d": (("pad2d", [1, 1, 2, 0], 0.5), (r(2, 3, 4, 5),)),
    "pad3d": (("pad3d", [1, 1, 2, 2, 0, 1], 3.5), (r(1, 2, 3, 4, 5),)),
    "reflect1d": (("reflect1d", [1, 2]), (r(2, 3, 5),)),
    "reflect2d": (("reflect2d", [1, 1, 2, 0]), (r(2, 3, 4, 5),)),
    "replicate1d": (("replicate1d", [2, 0]), (r(2, 3, 4),)),
    "replicate2d": (("replicate2d", [1, 1, 2, 0]), (r(2, 3, 4, 5),)),
    "replicate3d": (("replicate3d", 1), (r(2, 3, 4, 5),)),
    "zeropad2d": (("zeropad2d", [1, 1, 2, 0]), (r(2, 3, 4, 5),)),
    "cat": (("cat", 1), (r(2, 3), r(2, 4))),
    "expand": (("expand", [2, 4, 3]), (r(4, 1),)),
    "indexselect": (("indexselect", 0, [0, 2]), (r(3, 4),)),
    "matmul": ("matmul", (r(2, 3), r(3, 4))),
    "mul": ("mul", (r(4, 3), r(1, 3))),
    "normalize": (("normalize", 1.0, 0), (r(4, 3),)),
    "onehot": (("onehot", 5, {"dtype": "double"}), (np.array([0, 3, 4, 1], np.int64),)),
    "permute": (("permute", [0, 2, 1]), (r(2, 3, 4),)),
    "select": (("select", 1, -1), (r(3, 4),)),
    "squeeze": (("squeeze", 0), (r(1, 3, 1),)),
    "unsqueeze": (("unsqueeze", -1), (r(2, 3),)),
    "transpose": (("transpose", 0, 2), (r(1, 2, 3),)),
    "interpolate": (("interpolate", [5, 7], None, "bilinear", True), (r(1, 2, 3, 4),)),
    "upsample": (("upsample", None, 2.0), (r(1, 2, 3, 4),)),
    "pairwise": (("pairwise", 1.0, 1e-3, True), (r(4, 5), r(4, 5))),
    "similar": (("similar", -1, 1e-6), (r(2, 3, 4), r(2, 3, 4))),
    "zscore": (("zscore", [0.5, 0.25, 0.0], [1.0, 2.0, 0.5]), (r(2, 3, 4, 4),)),
    # random transforms, deterministic here: a crop of the whole image, no flip
    "randomcrop": (("randomcrop", [4, 5]), (r(2, 3, 4, 5),)),
    "randomflip": (("randomflip", 0.0), (r(2, 3, 4, 5),)),
    # attention and transformers (evaluation mode: dropout off), nbeats
    "attention": (("attention", 4, 2, {"kdim": 3}), (r(5, 2, 4), r(6, 2, 3), r(6, 2, 4))),
    "selfattention": (("selfattention", 4, 2, 0.1, True), (r(2, 5, 4),)),
    "encoderlayer": (("encoderlayer", 4, 2, 8), (r(5, 2, 4),)),
    "decoderlayer": (("decoderlayer", 4, 2, 8, {"batchfirst": True}), (r(2, 5, 4), r(2, 3, 4))),
    "encoder": (("encoder", ("encoderlayer", 4, 2, 8), 2, 4), (r(5, 2, 4),)),
    "decoder": (("decoder", (4, 2, 8), 1, None, {"causal": True}), (r(5, 2, 4), r(3, 2, 4))),
    "transformer": (("transformer", 4, 2, 1, 1, 8), (r(3, 2, 4), r(5, 2, 4))),
    "nbeats": (kt.seq("nbeats", ("rnn", 4, 4), ("gru", 4, 4)), (r(3, 2, 4),)),
}


def test_the_table_covers_every_module_type():
    names = kt.help("module")
    assert len(names) == 128
    assert set(names) - set(MODULES) == {"callback"}
    assert set(MODULES) <= set(names)


def test_a_callback_module_has_no_state():
    q = kt.module(("callback", "cb", lambda m, x: x))
    with pytest.raises(kt.KtorchError, match="state: a callback module has no state"):
        kt.state(q)


@pytest.mark.parametrize("name", list(MODULES))
def test_every_module_round_trips(name):
    spec, xs = MODULES[name]
    q = kt.module(spec)
    kt.training(q, False)  # dropout-like modules deterministic
    s = kt.state(q)
    top = s[0] if isinstance(s, list) else s
    assert top["module"] == name and top["depth"] == 0 and top["training"] is False
    q2 = kt.module(s)
    same(kt.state(q2), s)
    assert kt.parmnames(q2) == kt.parmnames(q) and kt.buffernames(q2) == kt.buffernames(q)
    if xs is not None:
        same_outputs(kt.forward(q2, *xs), kt.forward(q, *xs))


@pytest.mark.parametrize("name", ["batchnorm1d", "batchnorm2d", "batchnorm3d"])
def test_batchnorm_running_statistics_come_back(name):
    spec, (x,) = MODULES[name]
    q = kt.module(spec)
    kt.forward(q, x)
    kt.forward(q, x * 2 + 1)  # training mode: the running statistics move
    s = kt.state(q)
    assert s["buffers"]["num_batches_tracked"] == 2
    assert not np.allclose(s["buffers"]["running_mean"], 0)
    assert not np.allclose(s["buffers"]["running_var"], 1)
    q2 = kt.module(s)
    same(kt.state(q2), s)
    np.testing.assert_array_equal(kt.tensor(kt.evaluate(q2, x)), kt.tensor(kt.evaluate(q, x)))
    # on training: both move the same way
    same_outputs(kt.forward(q2, x), kt.forward(q, x))
    same(kt.state(q2), kt.state(q))


def test_a_nested_tree_keeps_its_depths_and_names():
    q = kt.module(
        kt.seq(
            "sequential",
            kt.seq("residual", ("linear", "l", 4, 4), "identity"),
            ("batchnorm1d", "bn", 4),
            kt.seq(("sequential", "s"), ("linear", 4, 2), "relu"),
        )
    )
    s = kt.state(q)
    assert [(x["depth"], x["module"], x["name"]) for x in s] == [
        (0, "sequential", None),
        (1, "residual", "0"),
        (2, "linear", "l"),
        (2, "identity", "1"),
        (1, "batchnorm1d", "bn"),
        (1, "sequential", "s"),
        (2, "linear", "0"),
        (2, "relu", "1"),
    ]
    q2 = kt.module(s)
    same(kt.state(q2), s)
    assert kt.parmnames(q2) == kt.parmnames(q) == [
        "0.l.weight", "0.l.bias", "bn.weight", "bn.bias", "s.0.weight", "s.0.bias"]
    kt.training(q, False)
    kt.training(q2, False)
    same_outputs(kt.forward(q2, X4), kt.forward(q, X4))


# ---------------------------------------------------------------------------------------------
# 3. settings that survive the round trip


def test_tuple_list_and_bias_options_survive():
    q = kt.module(("conv2d", 2, 3, (3, 2), {"stride": (2, 1), "bias": False}))
    s = kt.state(q)
    assert s["options"] == {"in": 2, "out": 3, "size": (3, 2), "stride": (2, 1), "bias": False}
    assert list(s["parms"]) == ["weight"] and s["parms"]["weight"].shape == (3, 2, 3, 2)
    q2 = kt.module(s)
    same(kt.state(q2), s)
    x = r(2, 2, 7, 6)
    same_outputs(kt.forward(q2, x), kt.forward(q, x))
    # positional options given as lists stay lists
    s = kt.state(kt.module(("conv2d", 2, 3, [3, 2], [2, 1])))
    assert s["options"] == {"in": 2, "out": 3, "size": [3, 2], "stride": [2, 1]}
    same(kt.state(kt.module(s)), s)
    s = kt.state(kt.module(("linear", 2, 3, False)))
    assert s["options"] == {"in": 2, "out": 3, "bias": False} and list(s["parms"]) == ["weight"]
    same(kt.state(kt.module(s)), s)


def test_a_double_module_by_option():
    q = kt.module(("linear", 2, 3, {"dtype": "double"}))
    s = kt.state(q)
    assert s["options"] == {"in": 2, "out": 3, "dtype": "double"}
    assert all(v.dtype == np.float64 for v in s["parms"].values())
    q2 = kt.module(s)
    assert kt.dtype(q2) == "double"
    same(kt.state(q2), s)
    x = r(4, 2).astype(np.float64)
    same_outputs(kt.forward(q2, x), kt.forward(q, x))


def test_a_module_moved_to_double():
    q = net()
    kt.forward(q, X)
    kt.to(q, "double")
    s = kt.state(q)
    assert all(v.dtype == np.float64 for x in s for v in x["parms"].values())
    assert s[2]["buffers"]["running_mean"].dtype == np.float64
    q2 = kt.module(s)
    assert kt.dtype(q2) == "double"
    same(kt.state(q2), s)
    x = X.astype(np.float64)
    np.testing.assert_array_equal(kt.tensor(kt.evaluate(q2, x)), kt.tensor(kt.evaluate(q, x)))


def test_frozen_parameters_and_evaluation_mode_survive():
    q = net()
    kt.freeze(q, ["a.weight", "c.bias"])
    kt.training(q, False)
    s = kt.state(q)
    assert [x["frozen"] for x in s] == [[], ["weight"], [], [], ["bias"]]
    assert all(x["training"] is False for x in s)
    q2 = kt.module(s)
    same(kt.state(q2), s)
    assert kt.gradflag(q2) == kt.gradflag(q) == {
        "a.weight": False, "a.bias": True, "b.weight": True, "b.bias": True, "c.weight": True, "c.bias": False}
    assert kt.training(q2) is False
    assert kt.info(q2)["training"] is False
    np.testing.assert_array_equal(kt.tensor(kt.forward(q2, X)), kt.tensor(kt.forward(q, X)))


def test_a_child_in_a_mode_of_its_own():
    q = net()
    kt.forward(q, X)
    s = kt.state(q)
    s[2]["training"] = False  # only the batchnorm evaluates
    q2 = kt.module(s)
    same(kt.state(q2), s)
    assert kt.training(q2) is True
    y = kt.tensor(kt.forward(q2, X))
    same(kt.state(q2)[2]["buffers"], s[2]["buffers"])  # running statistics used, not moved
    kt.training(q, False)
    np.testing.assert_allclose(y, kt.tensor(kt.forward(q, X)), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 4. losses


@pytest.mark.parametrize("name", kt.help("loss"))
def test_every_loss_round_trips(name):
    lf = kt.loss(name)
    s = kt.state(lf)
    assert list(s) == ["loss", "options"] and s["loss"] == name
    same(kt.state(kt.loss(s)), s)


def test_loss_with_class_weights_and_sum():
    lf = kt.loss("ce", {"weight": [1.0, 2.0], "reduce": "sum"})
    s = kt.state(lf)
    assert s["loss"] == "ce"
    assert s["options"]["reduce"] == "sum" and s["options"]["ignore"] == -100
    np.testing.assert_array_equal(s["options"]["weight"], np.array([1.0, 2.0], np.float32))
    l2 = kt.loss(s)
    same(kt.state(l2), s)
    x = np.array([[0.3, 1.2], [2.0, -1.0], [0.1, 0.1]], np.float32)
    y = np.array([1, 0, 1])
    np.testing.assert_array_equal(kt.tensor(kt.loss(l2, x, y)), kt.tensor(kt.loss(lf, x, y)))
    # PyTorch keywords give the same state
    same(kt.state(kt.loss("ce", weight=[1.0, 2.0], reduction="sum")), s)


def test_loss_settings_by_position_and_double_weights():
    s = kt.state(kt.loss("smoothl1", 0.5, "sum"))
    assert s == {"loss": "smoothl1", "options": {"beta": 0.5, "reduce": "sum"}}
    same(kt.state(kt.loss(s)), s)
    lf = kt.loss("multimargin", {"weight": [1.0, 2.0, 3.0], "p": 2})
    kt.to(lf, "double")
    s = kt.state(lf)
    assert s["options"]["p"] == 2 and s["options"]["weight"].dtype == np.float64
    same(kt.state(kt.loss(s)), s)


# ---------------------------------------------------------------------------------------------
# 5. optimizers

OPTIMIZERS = [
    pytest.param("sgd", (0.05, 0.9), {}, ["momentum_buffer"], id="sgd-momentum"),
    pytest.param("adam", (0.01,), {}, ["exp_avg", "exp_avg_sq"], id="adam"),
    pytest.param("adam", (0.01,), {"amsgrad": True}, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                 id="adam-amsgrad"),
    pytest.param("adamw", (0.01,), {}, ["exp_avg", "exp_avg_sq"], id="adamw"),
    pytest.param("adagrad", (0.05,), {}, ["sum"], id="adagrad"),
    pytest.param("rmsprop", (0.01,), {"centered": True, "momentum": 0.5},
                 ["square_avg", "grad_avg", "momentum_buffer"], id="rmsprop-centered-momentum"),
    pytest.param("lamb", (0.01,), {}, ["exp_avg", "exp_avg_sq"], id="lamb"),
    pytest.param("lbfgs", (0.5, 4), {}, [], id="lbfgs"),
]


def trained(name, args, kw, epochs=2):
    kt.seed(1)
    q = net()
    lf = kt.loss("ce", {"weight": [1.0, 2.0, 0.5]})
    o = kt.opt(name, q, *args, **kw)
    m = kt.model(q, lf, o)
    kt.train(m, X, Y)
    kt.train(m, batchsize=16)
    for _ in range(epochs):
        kt.run(m)
    return q, lf, o, m


@pytest.mark.parametrize("name,args,kw,buffers", OPTIMIZERS)
def test_optimizer_state_trains_on_bitwise(name, args, kw, buffers):
    q, lf, o, m = trained(name, args, kw)
    s = kt.state(o)
    assert s["optimizer"] == name
    assert [p["name"] for p in s["parms"]] == kt.parmnames(q)
    for p in s["parms"]:
        assert list(p["buffers"]) == buffers
        for v in p["buffers"].values():
            assert list(v.shape) == p["size"]
    q2 = kt.module(kt.state(q))
    o2 = kt.opt(s, q2)
    same(kt.state(o2), s)
    m2 = kt.model(q2, kt.loss(kt.state(lf)), o2)
    kt.train(m2, X, Y)
    kt.train(m2, batchsize=16)
    assert kt.run(m2) == kt.run(m)
    same(kt.state(q2), kt.state(q))
    same(kt.state(o2), kt.state(o))


def test_lbfgs_keeps_a_history():
    q = kt.module(("linear", 3, 1))
    o = kt.opt("lbfgs", q, 0.5, 2)
    h = kt.state(o)["history"]
    assert h["n_iter"] == 0 and h["old_dirs"] == [] and h["d"] is None
    m = kt.model(q, kt.loss("mse"), o)
    x = np.ones((4, 3), np.float32)
    y = np.arange(4, dtype=np.float32).reshape(4, 1)
    kt.run(m, x, y)
    kt.run(m)
    h = kt.state(o)["history"]
    assert h and {"d", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad"} <= set(h)
    assert h["d"].shape == (4,) and h["prev_flat_grad"].shape == (4,)  # the 4 parameters, flat
    assert len(h["old_dirs"]) == len(h["old_stps"]) == len(h["ro"]) > 0


def test_lbfgs_history_round_trips():
    q = kt.module(("linear", 3, 1))
    o = kt.opt("lbfgs", q, 0.5, 2)
    m = kt.model(q, kt.loss("mse"), o)
    kt.run(m, np.ones((4, 3), np.float32), np.arange(4, dtype=np.float32).reshape(4, 1))
    kt.run(m)
    s = kt.state(o)
    o2 = kt.opt(s, kt.module(kt.state(q)))
    same(kt.state(o2), s)


def test_optimizer_over_a_dict_rebuilds_by_position():
    q = kt.module(kt.seq("sequential", ("linear", "a", 4, 6), "relu", ("linear", "c", 6, 3)))
    o = kt.opt("sgd", kt.parms(q), 0.1, 0.9)
    m = kt.model(q, kt.loss("ce"), o)
    kt.run(m, X, Y)
    kt.run(m)
    s = kt.state(o)
    assert [p["name"] for p in s["parms"]] == [None] * 4  # a Dict's members are not named in the module
    q2 = kt.module(kt.state(q))
    o2 = kt.opt(s, q2)  # in order
    s2 = kt.state(o2)
    assert [p["name"] for p in s2["parms"]] == kt.parmnames(q2)
    for p in s["parms"]:
        p["name"] = None
    for p in s2["parms"]:
        p["name"] = None
    same(s2, s)
    m2 = kt.model(q2, kt.loss("ce"), o2)
    kt.train(m2, X, Y)
    assert kt.run(m2) == kt.run(m)
    same(kt.state(q2), kt.state(q))


def test_optimizer_over_a_vector_rebuilds_by_position():
    v = kt.vector(np.ones((2, 3), np.float32), np.zeros(2, np.float32))
    o = kt.opt("adam", v, 0.1)
    s = kt.state(o)
    assert [(p["name"], p["size"]) for p in s["parms"]] == [(None, [2, 3]), (None, [2])]
    q = kt.module(("linear", 3, 2))
    o2 = kt.opt(s, q)
    assert [(p["name"], p["size"]) for p in kt.state(o2)["parms"]] == [("weight", [2, 3]), ("bias", [2])]
    assert kt.state(o2)["options"] == s["options"]
    with pytest.raises(kt.KtorchError, match=r"opt: parameter weight has shape \[2, 3\] in the optimizer's "
                                             r"state, \[3, 3\] given"):
        kt.opt(s, kt.module(("linear", 3, 3)))
    with pytest.raises(kt.KtorchError, match=r"opt: the optimizer's state has 2 parameter\(s\), given 1"):
        kt.opt(s, kt.module(("linear", 3, 2, False)))


def test_optimizer_with_groups_rebuilds_over_a_model():
    q = kt.module(kt.seq("sequential", ("linear", "a", 4, 6), "relu", ("linear", "c", 6, 3)))
    o = kt.opt("sgd", kt.parms(q, "a"), 0.1)
    kt.opt(o, 1, kt.parms(q, "c"), 0.5, 0.9)
    m = kt.model(q, kt.loss("ce"), o)
    kt.run(m, X, Y)
    kt.run(m)
    s = kt.state(o)
    assert len(s["options"]) == 2 and s["options"][1]["lr"] == 0.5 and s["options"][1]["momentum"] == 0.9
    assert [p["parmgroup"] for p in s["parms"]] == [0, 0, 1, 1]
    # sgd keeps a momentum buffer only where the group has momentum
    assert [list(p["buffers"]) for p in s["parms"]] == [[], [], ["momentum_buffer"], ["momentum_buffer"]]
    m2 = kt.model(kt.module(kt.state(q)), kt.loss("ce"), kt.opt("sgd"))
    o2 = kt.opt(s, m2)  # a model gives its module's parameters, here in order
    s2 = kt.state(o2)
    assert [p["parmgroup"] for p in s2["parms"]] == [0, 0, 1, 1]
    assert s2["options"] == s["options"] and s2["defaults"] == s["defaults"]
    for a, b in zip(s["parms"], s2["parms"], strict=True):
        assert a["size"] == b["size"] and a["step"] == b["step"]
        same(a["buffers"], b["buffers"])
    m3 = kt.model(kt.module(m2), kt.loss("ce"), o2)
    kt.train(m3, X, Y)
    assert kt.run(m3) == kt.run(m)
    same(kt.state(kt.module(m3)), kt.state(q))


# ---------------------------------------------------------------------------------------------
# 6. models


def model(shuffle=None, epochs=2, name="adam"):
    kt.seed(0)
    q = net()
    o = kt.opt(name, q, 0.01)
    m = kt.model(q, kt.loss("ce", {"weight": [1.0, 2.0, 0.5]}), o)
    kt.train(m, X, Y)
    kt.train(m, batchsize=16, metrics=["loss", "accuracy"], clipnorm=5.0)
    if shuffle is not None:
        kt.train(m, shuffle=True, shuffleseed=shuffle)
    kt.test(m, X[:10], Y[:10])
    kt.test(m, batchsize=4)
    for _ in range(epochs):
        kt.run(m)
    return m


def same_model(m, m2):
    s, s2 = kt.state(m), kt.state(m2)
    for k in ("module", "loss", "optimizer", "train", "test"):
        same(s2[k], s[k], k)


def test_model_with_seeded_shuffle_trains_on_bitwise():
    m = model(shuffle=7)
    s = kt.state(m)
    assert s["position"]["train"]["generator"] is not None
    assert sorted(s["position"]["train"]["order"]) == list(range(len(X)))
    m2 = kt.model(s)
    assert kt.train(m2) == kt.train(m) and kt.test(m2) == kt.test(m)
    kt.train(m2, X, Y)
    same(kt.state(m2), s)  # the row order in force shows once the data is there
    for _ in range(2):
        a, b = kt.run(m), kt.run(m2)
        assert a == b
    same_model(m, m2)


@pytest.mark.parametrize("name,args,kw,buffers", OPTIMIZERS)
def test_model_state_for_every_optimizer(name, args, kw, buffers):
    q, lf, o, m = trained(name, args, kw)
    s = kt.state(m)
    m2 = kt.model(s)
    kt.train(m2, X, Y)
    same(kt.state(m2), s)
    assert kt.run(m2) == kt.run(m)
    same_model(m, m2)


def test_model_with_unseeded_shuffle_trains_on_bitwise_after_the_same_seed():
    m = model(shuffle=None)
    kt.train(m, shuffle=True)
    kt.run(m)
    s = kt.state(m)
    assert s["position"]["train"]["generator"] is None and s["position"]["train"]["order"] is not None
    m2 = kt.model(s)
    kt.train(m2, X, Y)
    kt.seed(9)
    a = [kt.run(m) for _ in range(2)]
    kt.seed(9)
    b = [kt.run(m2) for _ in range(2)]
    assert a == b
    same_model(m, m2)


def test_model_with_its_data():
    m = model(shuffle=3)
    sd = kt.state(m, data=True)
    assert list(sd) == ["module", "loss", "optimizer", "train", "test", "position", "data"]
    (xs, ys), (tx, ty) = sd["data"]["train"], sd["data"]["test"]
    assert len(xs) == len(ys) == len(tx) == len(ty) == 1
    np.testing.assert_array_equal(xs[0], X)  # in the order given, not the shuffled order
    np.testing.assert_array_equal(ys[0], Y)
    np.testing.assert_array_equal(tx[0], X[:10])
    np.testing.assert_array_equal(ty[0], Y[:10])
    m2 = kt.model(sd)
    assert kt.datasize(m2) == len(X)
    assert kt.info(m2)["train"] == kt.info(m)["train"]
    same_model(m, m2)
    assert kt.run(m2) == kt.run(m)  # no data given: the state's
    np.testing.assert_array_equal(np.asarray(kt.testrun(m2)), np.asarray(kt.testrun(m)))
    same_model(m, m2)
    # without data=True, no data
    m3 = kt.model(kt.state(m))
    assert kt.info(m3)["train"] == 0
    with pytest.raises(kt.KtorchError, match="run: no training data defined"):
        kt.run(m3)


def test_model_options_and_position_come_back():
    m = model(shuffle=5, epochs=1)
    kt.train(m, droplast=True, clipvalue=2.0, nonfinite="skip")
    kt.test(m, metrics=["loss", "accuracy"])
    s = kt.state(m)
    m2 = kt.model(s)
    assert kt.train(m2) == kt.train(m)
    assert kt.test(m2) == kt.test(m)
    assert kt.train(m2, "shuffleseed") == 5 and kt.train(m2, "clipvalue") == 2.0
    assert kt.train(m2, "droplast") is True and kt.train(m2, "nonfinite") == "skip"
    assert kt.train(m2, "metrics") == ["loss", "accuracy"] and kt.test(m2, "batchsize") == 4
    kt.train(m2, X, Y)
    same(kt.state(m2)["position"], s["position"])
    assert list(s["position"]["train"]) == ["epochs", "generator", "order", "paused"]
    assert s["position"]["train"]["paused"] is None


def test_model_state_of_the_rebuilt_model_before_data():
    m = model(shuffle=7, epochs=1)
    s = kt.state(m)
    assert s["position"]["train"]["order"] is not None
    m2 = kt.model(s)
    same(kt.state(m2), s)


def test_model_state_built_twice_gives_independent_models():
    m = model(shuffle=2, epochs=1)
    s = kt.state(m, data=True)
    m2, m3 = kt.model(s), kt.model(s)
    kt.run(m2)
    same_model(m, m3)  # m2's training reaches neither
    assert kt.run(m3) == kt.run(m)
    same_model(m2, m3)


# ---------------------------------------------------------------------------------------------
# 7. bad states and arguments


def module_state():
    q = net()
    kt.forward(q, X)
    return q, kt.state(q)


def _set(path, value):
    def change(s):
        *head, last = path
        d = s
        for k in head:
            d = d[k]
        d[last] = value
    return change


def _del(path):
    def change(s):
        *head, last = path
        d = s
        for k in head:
            d = d[k]
        del d[last]
    return change


BAD_MODULE_STATES = [
    ("shape", _set((1, "parms", "weight"), np.zeros((2, 2), np.float32)),
     r"module: parameter a\.weight has shape \[2, 2\] in the state, \[6, 4\] in the module it describes"),
    ("missing-parm", _del((1, "parms", "bias")), r"module: the state has no parameter a\.bias"),
    ("no-parms", _del((4, "parms")), r"module: the state has no parameter c\.weight"),
    ("extra-parm", _set((4, "parms", "extra"), np.zeros(2, np.float32)),
     r"module: the state has parameter c\.extra, which the module it describes does not"),
    ("extra-buffer", _set((1, "buffers", "x"), np.zeros(2, np.float32)),
     r"module: the state has buffer a\.x, which the module it describes does not"),
    ("buffer-shape", _set((2, "buffers", "running_mean"), np.zeros(5, np.float32)),
     r"module: buffer b\.running_mean has shape \[5\] in the state, \[6\] in the module it describes"),
    ("depth-jump", _set((1, "depth"), 2), r"module: module state row 1: depth 2 does not follow the rows before it"),
    ("depth-root", _set((0, "depth"), 1), r"module: module state row 0: depth 1 does not follow the rows before it"),
    ("type", _set((1, "module"), "linea"), r"module: unrecognized module type: linea \(did you mean linear\?\)"),
    ("option", _set((1, "options", "bogus"), 1), r"linear: unrecognized option: bogus, expecting one of: in, out, bias"),
    ("frozen", _set((1, "frozen"), ["nope"]), r"module: unrecognized parameter name: a\.nope, expecting one of"),
    ("training", _set((1, "training"), "yes"), r"module: module state row 1 training expects True or False"),
    ("array", _set((1, "parms", "weight"), "abc"), r"module: module state row 1 parms `weight`: .*dtype <U3"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BAD_MODULE_STATES], ids=[b[0] for b in BAD_MODULE_STATES])
def test_bad_module_states(change, message):
    q, s = module_state()
    change(s)
    before = copy.deepcopy(s)
    original = kt.state(q)
    with pytest.raises(kt.KtorchError, match=message):
        kt.module(s)
    same(s, before)  # the state given is left as it was
    same(kt.state(q), original)  # and the module it came from


def test_bad_module_state_shapes():
    with pytest.raises(kt.KtorchError, match="module: empty module list"):
        kt.module([])
    with pytest.raises(kt.KtorchError, match="module: expecting a module type"):
        kt.module({})
    s = kt.state(kt.module(("linear", 2, 1)))
    with pytest.raises(kt.KtorchError, match=r"module: module state row 0: depth 1 does not follow"):
        kt.module({**s, "depth": 1})
    with pytest.raises(kt.KtorchError, match=r"module: parameter weight has shape \[1, 3\] in the state, \[1, 2\]"):
        kt.module({**s, "parms": {"weight": np.zeros((1, 3), np.float32), "bias": np.zeros(1, np.float32)}})
    with pytest.raises(kt.KtorchError, match="relu: unrecognized option: in"):
        kt.module({**s, "module": "relu"})


def test_bad_state_arguments():
    with pytest.raises(TypeError, match="state: a Tensor, Vector or Dict's state is its values"):
        kt.state(kt.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="state: a Tensor, Vector or Dict's state is its values"):
        kt.state(kt.vector(np.ones(2)))
    with pytest.raises(TypeError, match="state: expecting a Module, Loss, Optimizer or Model, given int"):
        kt.state(3)
    with pytest.raises(kt.KtorchError, match="state: data: only a model holds data"):
        kt.state(kt.module(("linear", 2, 1)), data=True)


@pytest.mark.parametrize("kind", ["module", "loss", "optimizer", "model"])
def test_state_of_a_freed_handle(kind):
    q = kt.module(("linear", 2, 2))
    h = {"module": lambda: q, "loss": lambda: kt.loss("mse"), "optimizer": lambda: kt.opt("sgd", q),
         "model": lambda: kt.model(q, kt.loss("mse"), kt.opt("sgd", q))}[kind]()
    kt.free(h)
    with pytest.raises(kt.KtorchError, match=f"state: {kind.capitalize()} has been freed"):
        kt.state(h)


def test_bad_loss_states():
    with pytest.raises(kt.KtorchError, match=r"loss: unrecognized loss: cee \(did you mean ce\?\)"):
        kt.loss({"loss": "cee", "options": {}})
    with pytest.raises(kt.KtorchError, match="ce: unrecognized option: bogus, expecting one of: weight, ignore"):
        kt.loss({"loss": "ce", "options": {"bogus": 1}})


def optimizer_state():
    q, lf, o, m = trained("adam", (0.01,), {}, epochs=1)
    return q, o, kt.state(o)


BAD_OPT_STATES = [
    ("buffer-name", lambda s: s["parms"][0]["buffers"].__setitem__("bogus", s["parms"][0]["buffers"].pop("exp_avg")),
     r"opt: parameter a\.weight: adam keeps no state `bogus`, expecting exp_avg, exp_avg_sq, max_exp_avg_sq"),
    ("buffer-shape", lambda s: s["parms"][0]["buffers"].__setitem__("exp_avg", np.zeros((2, 2), np.float32)),
     r"opt: parameter a\.weight: state `exp_avg` has shape \[2, 2\], the parameter \[6, 4\]"),
    ("size", lambda s: s["parms"][0].__setitem__("size", [7, 4]),
     r"opt: parameter a\.weight has shape \[7, 4\] in the optimizer's state, \[6, 4\] given"),
    ("type", lambda s: s.__setitem__("optimizer", "adamx"), r"opt: unrecognized optimizer: adamx \(did you mean adam"),
    ("option", lambda s: s["options"][0].__setitem__("bogus", 1), r"adam: unrecognized option: bogus"),
    ("group", lambda s: s["parms"][0].__setitem__("parmgroup", 3),
     r"opt: optimizer state parms row 0: parmgroup 3, the state has 1 group\(s\)"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BAD_OPT_STATES], ids=[b[0] for b in BAD_OPT_STATES])
def test_bad_optimizer_states(change, message):
    q, o, s = optimizer_state()
    change(s)
    before = copy.deepcopy(s)
    q2 = kt.module(kt.state(q))
    v, flags = values(q2), kt.gradflag(q2)
    with pytest.raises(kt.KtorchError, match=message):
        kt.opt(s, q2)
    same(s, before)
    same(values(q2), v)  # the module given is left as it was
    assert kt.gradflag(q2) == flags


def test_bad_optimizer_parameters():
    q, o, s = optimizer_state()
    with pytest.raises(kt.KtorchError, match=r"opt: the optimizer's state has 6 parameter\(s\) \(`a\.weight` among "
                                             r"them\), given 2"):
        kt.opt(s, kt.module(("linear", 4, 6)))
    with pytest.raises(kt.KtorchError, match=r"opt: the optimizer's state has 6 parameter\(s\).*given 0"):
        kt.opt(s)
    with pytest.raises(TypeError, match="opt: parameters expects a Module, Model"):
        kt.opt(s, 3)
    with pytest.raises(TypeError, match="opt: expecting an optimizer name or an Optimizer, given dict"):
        kt.opt({"optimizer": "adam"}, q)


def test_bad_model_states():
    m = model(epochs=1)
    s = kt.state(m, data=True)
    before = copy.deepcopy(s)
    cases = [
        (lambda t: t["module"][1]["parms"].__setitem__("weight", np.zeros((1, 1), np.float32)),
         r"model: parameter a\.weight has shape \[1, 1\] in the state, \[6, 4\] in the module it describes"),
        (lambda t: t["optimizer"]["parms"][0].__setitem__("size", [3, 3]),
         r"model: parameter a\.weight has shape \[3, 3\] in the optimizer's state, \[6, 4\] given"),
        (lambda t: t["train"].__setitem__("bogus", 1), r"model: unrecognized option: bogus, expecting one of: batchsize"),
        (lambda t: t["train"].__setitem__("batchsize", -1), r"model: batchsize must be non-negative, given -1"),
        (lambda t: t["loss"].__setitem__("loss", "xx"), r"loss: unrecognized loss: xx"),
        (lambda t: t["optimizer"].__setitem__("optimizer", "adamx"), r"opt: unrecognized optimizer: adamx"),
        (lambda t: t["data"]["train"].__setitem__(1, [Y[:5]]), r"model: tensor size mismatch, 40 vs 5"),
    ]
    for change, message in cases:
        t = copy.deepcopy(s)
        change(t)
        with pytest.raises(kt.KtorchError, match=message):
            kt.model(t)
    t = copy.deepcopy(s)
    del t["loss"]
    with pytest.raises(TypeError, match=r"model: expecting \(module, loss, optimizer\) or a model's state"):
        kt.model(t)
    with pytest.raises(TypeError, match=r"model: expecting \(module, loss, optimizer\) or a model's state"):
        kt.model({})
    same(kt.state(m, data=True), before)  # the model is left as it was


# ---------------------------------------------------------------------------------------------
# 8. threads


def test_state_while_another_thread_trains():
    x, y = data(800, seed=1)
    kt.seed(0)
    q = net()
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    kt.train(m, x, y)
    kt.train(m, batchsize=8, shuffle=True)
    shapes = {k: v.shape for k, v in kt.dict(kt.parms(q)).items()}
    reads, bad, errors = [], [], []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                s = kt.state(m)
                for row in s["module"][1:]:
                    for k, v in row["parms"].items():
                        if v.shape != shapes[f"{row['name']}.{k}"]:
                            bad.append((row["name"], k, v.shape))
                n = int(s["module"][2]["buffers"]["num_batches_tracked"])
                steps = {p["step"] for p in s["optimizer"]["parms"]}
                if steps != {n}:  # forward and step of a batch are seen together
                    bad.append((n, steps))
                for p in s["optimizer"]["parms"]:
                    for v in p["buffers"].values():
                        if list(v.shape) != p["size"]:
                            bad.append((p["name"], v.shape))
                reads.append(n)
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(5):
            kt.run(m)
    finally:
        done.set()
        t.join()
    assert errors == [] and bad == []
    assert len(reads) > 0
    assert kt.state(m)["module"][2]["buffers"]["num_batches_tracked"] == 5 * 100
