"""The rest of the original's model api: module tree read-outs (names, childnames,
moduletypes, parmtypes), a model's parts (module, loss, opt of a model) and their
replacement, kforward, gradflag, str, batchnorm (swa.rst's recompute, against
torch.optim.swa_utils.update_bn), the devices (cudadevice, cudadevices, sync, help("device")),
and the forms refused before: opt's parameter selections and empty selection, loss with batch
weights, parm filled by a scalar, info's reference count.

Each test follows the worked examples of the original's pages (model.rst, opt.rst, loss.rst,
info.rst, modules.rst, kmodules.rst, swa.rst, devices.rst) and checks the values they print,
translated as python-api.md says; torch is the oracle where it computes the same thing."""

import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CUDA
from torch.optim.swa_utils import update_bn

import ktorch as kt

K, T = kt.KtorchError, TypeError


def values(h):
    return np.asarray(kt.tensor(h))


# ---------------------------------------------------------------------------------------------
# module trees: names, childnames, moduletypes, parmtypes (modules.rst, opt.rst)

def test_names_and_childnames():
    # opt.rst: names q -> `a`relu1`b`relu2
    q = kt.module(kt.seq("sequential", ("linear", "a", 128, 64), ("relu", "relu1"),
                         ("linear", "b", 64, 10), ("relu", "relu2")))
    assert kt.names(q) == ["a", "relu1", "b", "relu2"]
    # modules.rst, naming modules: nested blocks, names depth first
    q1 = kt.seq(("sequential", "block1"), ("linear", "linear1", 10, 5), ("relu", "relu1"))
    q2 = kt.seq(("sequential", "block2"), ("linear", "linear2", 5, 2), ("relu", "relu2"))
    q = kt.module(kt.seq(("sequential", "seq"), q1, q2))
    assert kt.names(q) == ["block1", "block1.linear1", "block1.relu1",
                           "block2", "block2.linear2", "block2.relu2"]
    assert kt.parmnames(q) == ["block1.linear1.weight", "block1.linear1.bias",
                               "block2.linear2.weight", "block2.linear2.bias"]
    # ... and without names: each child named by its position
    m = kt.module(kt.seq("sequential", kt.seq("sequential", ("linear", 10, 5), "relu"),
                         kt.seq("sequential", ("linear", 5, 2), "relu")))
    assert kt.names(m) == ["0", "0.0", "0.1", "1", "1.0", "1.1"]
    assert kt.parmnames(m) == ["0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias"]
    # names(m; child) and childnames(m; child), by name or position
    assert kt.names(q, "block2") == ["linear2", "relu2"]
    assert kt.names(q, 0) == ["linear1", "relu1"]
    assert kt.childnames(q) == ["block1", "block2"]
    assert kt.childnames(q, "block1") == ["linear1", "relu1"]
    # a model's module
    md = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    assert kt.names(md) == kt.names(q)
    # modules.rst: names m -> `fc`bnorm`relu
    m = kt.module(kt.seq("sequential", ("linear", "fc", 256, 64, False), ("batchnorm2d", "bnorm", 64),
                         ("relu", "relu")))
    assert kt.parmnames(m) == ["fc.weight", "bnorm.weight", "bnorm.bias"]
    assert kt.names(m) == ["fc", "bnorm", "relu"]
    assert kt.buffernames(m, "bnorm") == kt.buffernames(m, 1) == [
        "running_mean", "running_var", "num_batches_tracked"]


def test_moduletypes():
    # modules.rst, moduletypes
    m = kt.module(kt.seq("sequential", ("linear", "linear1", 128, 64), ("relu", "f1"),
                         ("linear", "linear2", 64, 10), ("relu", "f2")))
    assert kt.moduletypes(m) == {"": "sequential", "linear1": "linear", "f1": "relu",
                                 "linear2": "linear", "f2": "relu"}
    assert kt.moduletypes(m, "sequential") == [""]  # the root's key is "" whatever its name
    assert kt.moduletypes(m, "linear") == ["linear1", "linear2"]
    assert kt.moduletypes(m, ["linear", "relu"]) == {"linear1": "linear", "f1": "relu",
                                                     "linear2": "linear", "f2": "relu"}
    assert kt.moduletypes(m, "conv2d") == []


def test_parmtypes_pick_parameters_to_initialise():
    # modules.rst, parmtypes
    q = kt.module(kt.seq("sequential", ("conv2d", "a", 3, 64, 3), ("batchnorm2d", "b", 64), ("relu", "c")))
    assert kt.parmtypes(q) == {"a.weight": "conv2d", "a.bias": "conv2d",
                               "b.weight": "batchnorm2d", "b.bias": "batchnorm2d"}
    w = [k for k, t in kt.parmtypes(q).items() if t == "conv2d" and k.endswith(".weight")]
    assert w == ["a.weight"]
    kt.seed(7)
    kt.xnormal(q, w, kt.gain("relu"))
    torch.manual_seed(7)
    want = torch.nn.init.xavier_normal_(torch.empty(64, 3, 3, 3), torch.nn.init.calculate_gain("relu"))
    assert np.allclose(values(kt.parm(q, "a.weight")), want.numpy())


# ---------------------------------------------------------------------------------------------
# a model's parts and their replacement (model.rst)

def test_model_parts_are_shared_handles():
    q = kt.module(kt.seq("sequential", ("linear", 64, 10), "relu"))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    q2, l2, o2 = kt.module(m), kt.loss(m), kt.opt(m)
    assert [kt.objclass(h) for h in (q2, l2, o2)] == ["module", "loss", "optimizer"]
    # the same objects as the model's: a change through one shows in the other
    kt.parm(q2, "0.bias", 0.5)
    assert np.all(values(kt.parm(m, "0.bias")) == 0.5)
    kt.lr(o2, 0.25)
    assert kt.lr(m) == [0.25]
    assert kt.loss(l2) == {"module": "mse", "options": {"reduce": "mean"}}
    kt.free(m)  # the parts live on with their handles
    assert kt.lr(o2) == [0.25] and kt.objclass(q2) == "module"


def test_model_redefined():
    # model.rst, redefining a model
    m = kt.model(kt.module("relu"), kt.loss("ce"), kt.opt("sgd"))
    assert kt.loss(kt.loss(m)) == {"module": "ce",
                                   "options": {"weight": None, "ignore": -100, "smoothing": 0.0, "reduce": "mean"}}
    assert kt.model(m, kt.loss("mse")) is None
    assert kt.loss(kt.loss(m)) == {"module": "mse", "options": {"reduce": "mean"}}
    assert kt.info(m)["loss"] == "mse"


def test_model_new_module_and_optimizer_train_keeping_data_and_options():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    q = kt.module(("linear", 3, 1))
    m = kt.model(q, kt.loss("l1"), kt.opt("sgd", q, 0.05))
    kt.train(m, batchsize=8)
    kt.train(m, x, y)
    old = values(kt.parm(q, "weight")).copy()
    q2 = kt.module(("linear", 3, 1))
    o2 = kt.opt("sgd", q2, 0.1)
    kt.model(m, o2, kt.loss("mse"), q2)  # any order
    assert kt.info(m)["loss"] == "mse" and kt.lr(m) == [0.1]
    assert kt.train(m, "batchsize") == 8 and kt.datasize(m) == 40
    before = values(kt.parm(q2, "weight")).copy()
    losses = [float(kt.run(m)) for _ in range(30)]
    assert losses[-1] < losses[0] / 4
    assert np.array_equal(values(kt.parm(q, "weight")), old)  # the old module is left alone
    assert not np.array_equal(values(kt.parm(q2, "weight")), before)
    # the model's parts are the new ones, shared
    kt.parm(kt.module(m), "bias", 3.0)
    assert values(kt.parm(q2, "bias"))[0] == 3.0


# ---------------------------------------------------------------------------------------------
# kforward in a callback module (kmodules.rst)

def test_kforward_follows_the_outer_mode():
    def f(m, x):
        y = kt.kforward(m, "a", x)
        y = kt.kforward(m, "b", y)
        return kt.kforward(m, "c", y)

    def g(m, x):  # the other form of the page's callback: by position
        for i in range(3):
            x = kt.kforward(m, i, x)
        return x

    m = kt.module(kt.seq(("callback", "cb", f), ("linear", "a", 5, 2), ("sigmoid", "b"), ("drop", "c", 0.5)))
    m1 = kt.module(kt.seq(("callback", "cb", g), ("linear", "a", 5, 2), ("sigmoid", "b"), ("drop", "c", 0.5)))
    q = kt.module(kt.seq(("sequential", "q"), ("linear", "a", 5, 2), ("sigmoid", "b"), ("drop", "c")))
    for n in kt.parmnames(m):
        kt.parm(q, n, kt.parm(m, n))
        kt.parm(m1, n, kt.parm(m, n))
    x = kt.tensor("randn", [3, 5])
    kt.seed(123)
    y = kt.forward(m, x)
    kt.seed(123)
    y1 = kt.forward(m1, x)
    kt.seed(123)
    yq = kt.forward(q, x)
    assert np.array_equal(values(y), values(y1)) and np.array_equal(values(y), values(yq))
    assert kt.info(y)["gradfn"] != ""  # forward: with gradients
    k = kt.evaluate(m, x)  # evaluation mode: no dropout
    assert not np.array_equal(values(y), k)
    assert np.allclose(k, kt.evaluate(q, x))
    assert kt.info(kt.nforward(m, x))["gradfn"] == ""  # nforward: no gradients
    # outside a callback: the child's forward in the module's own mode
    z = kt.kforward(q, "b", np.zeros((2, 2), np.float32))
    assert np.allclose(values(z), 0.5)


# ---------------------------------------------------------------------------------------------
# gradflag (info.rst, opt.rst)

def test_gradflag_tensors():
    d = kt.dict({"a": kt.tensor([1.0, 2.0, 3.0], "grad"), "b": np.array([4.0, 5.0, 6.0])})
    assert kt.gradflag(d) == {"a": True, "b": False}
    v = kt.vector(np.array([1, 2, 3], np.float32), np.array([1, 1.2, 9], np.float32))
    assert kt.gradflag(v) == [False, False]
    kt.gradflag(v, True)
    assert kt.gradflag(v) == [True, True]
    t = kt.tensor([0.0, 3.0], "grad")
    assert kt.gradflag(t) is True
    kt.gradflag(t, False)
    assert kt.gradflag(t) is False
    q = kt.module(("linear", 2, 1))
    kt.freeze(q, "bias")
    assert kt.gradflag(q) == {"weight": True, "bias": False}


# ---------------------------------------------------------------------------------------------
# str (modules.rst, info.rst, kmodules.rst); the strings are libtorch 2.11's own

def test_str_modules_tensors_losses():
    m = kt.module(kt.seq("sequential", ("linear", 784, 10), "relu"))
    assert kt.str(m) == ("torch::nn::Sequential(\n"
                         "  (0): torch::nn::Linear(in_features=784, out_features=10, bias=true)\n"
                         "  (1): torch::nn::ReLU()\n"
                         ")")
    q = kt.module(["sequential", ("linear", 50, 10), "relu", "drop"])
    assert kt.str(q).splitlines() == [
        "torch::nn::Sequential(",
        "  (0): torch::nn::Linear(in_features=50, out_features=10, bias=true)",
        "  (1): torch::nn::ReLU()",
        "  (2): torch::nn::Dropout(p=0.5, inplace=false)",
        ")"]
    md = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    assert kt.str(md) == kt.str(q)
    for spec, want in [
        (("conv2d", 16, 32, 3), "torch::nn::Conv2d(16, 32, kernel_size=[3, 3], stride=[1, 1])"),
        (("batchnorm1d", 800, 1e-7, 0.1),
         "torch::nn::BatchNorm1d(800, eps=1e-07, momentum=0.1, affine=true, track_running_stats=true)"),
        (("lstm", 64, 512, 2, True, True),
         "torch::nn::LSTM(input_size=64, hidden_size=512, num_layers=2, bias=true, batch_first=true, "
         "dropout=0, bidirectional=false)"),
        ("rrelu", "torch::nn::RReLU(lower=0.125, upper=0.333333)"),
        (("leakyrelu", 0.2, True), "torch::nn::LeakyReLU(negative_slope=0.2, inplace=true)"),
        (("embed", 10, 4), "torch::nn::Embedding(num_embeddings=10, embedding_dim=4)"),
        (("layernorm", [32, 10]), "torch::nn::LayerNorm([32, 10], eps=1e-05, elementwise_affine=true)"),
        (("reshape", [-1, 4]), "knn::Reshape(size=[-1, 4])"),
    ]:
        assert kt.str(kt.module(spec)) == want
    # kmodules.rst: a callback's children print under it
    cb = kt.module(kt.seq(("callback", "cb", lambda m, x: x), ("linear", "a", 5, 2), ("sigmoid", "b"),
                          ("drop", "c", 0.5)))
    assert kt.str(cb).splitlines()[1:] == [
        "  (a): torch::nn::Linear(in_features=5, out_features=2, bias=true)",
        "  (b): torch::nn::Sigmoid()",
        "  (c): torch::nn::Dropout(p=0.5, inplace=false)",
        ")"]
    # info.rst: a tensor's values and type
    t = kt.tensor(np.array([[0.1526, 0.5672, 0.0854], [1.4224, 1.6250, -1.2955]], np.float32))
    assert kt.str(t) == (" 0.1526  0.5672  0.0854\n"
                         " 1.4224  1.6250 -1.2955\n"
                         "[ CPUFloatType{2,3} ]")
    v = kt.vector(np.arange(3), np.ones(2, np.float32))
    assert kt.str(v) == [" 0\n 1\n 2\n[ CPULongType{3} ]", " 1\n 1\n[ CPUFloatType{2} ]"]
    assert kt.str(kt.dict({"a": 1.5})) == {"a": "1.5\n[ CPUDoubleType{} ]"}
    assert kt.str(kt.loss("ce")) == "torch::nn::CrossEntropyLoss()"
    assert kt.str(kt.loss("triplet")) == "torch::nn::TripletMarginLoss(margin=1, p=2, eps=1e-06, swap=false)"


# ---------------------------------------------------------------------------------------------
# batchnorm (swa.rst), with torch.optim.swa_utils.update_bn as the oracle

def bn_model(rows=230, batchsize=50):
    torch.manual_seed(0)
    x = (torch.randn(rows, 6) * 3 + 1).numpy()
    y = torch.randint(0, 3, (rows,)).numpy()
    q = kt.module(kt.seq("sequential", ("linear", "a", 6, 8), ("batchnorm1d", "b", 8, 1e-5, 0.3),
                         ("relu", "c"), ("linear", "d", 8, 3)))
    m = kt.model(kt.addref(q), kt.loss("ce"), kt.opt("sgd", q, 0.05, 0.9))
    kt.train(m, batchsize=batchsize, shuffle=True)
    kt.train(m, x, y)
    return q, m, x


def torch_copy(q):
    net = torch.nn.Sequential(OrderedDict(
        a=torch.nn.Linear(6, 8), b=torch.nn.BatchNorm1d(8, momentum=0.3), c=torch.nn.ReLU(),
        d=torch.nn.Linear(8, 3)))
    net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in kt.state_dict(q).items()})
    return net


def test_batchnorm_recomputes_as_update_bn():
    q, m, x = bn_model()
    for _ in range(3):
        kt.run(m)
    b1 = kt.dict(kt.buffers(q, "b"))
    assert b1["num_batches_tracked"] == 15
    kt.unshuffle(m)
    net = torch_copy(q)
    kt.training(q, False)
    r = kt.batchnorm(m)
    assert r == {"b": 0.3}  # names of the batchnorm layers with their momentum
    update_bn(torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=50), net)
    b2 = kt.dict(kt.buffers(q, "b"))
    assert b2["num_batches_tracked"] == net.b.num_batches_tracked.item() == 5
    assert np.allclose(b2["running_mean"], net.b.running_mean.numpy(), atol=1e-6)
    assert np.allclose(b2["running_var"], net.b.running_var.numpy(), atol=1e-6)
    assert not np.allclose(b1["running_mean"], b2["running_mean"])
    # momentum and the training flag are as they were
    assert "momentum=0.3" in kt.str(q) and kt.training(q) is False


def test_batchnorm_by_hand_then_restore():
    q, m, x = bn_model()
    kt.run(m)
    kt.unshuffle(m)  # the rows in the order given, as the batches by hand below take them
    kt.batchnorm(m)
    b2 = kt.dict(kt.buffers(q, "b"))
    # a module: reset only, momentum None (cumulative), for the statistics by hand
    r = kt.batchnorm(q)
    assert r == {"b": 0.3}
    assert "momentum=None" in kt.str(kt.child(q, "b"))
    b = kt.dict(kt.buffers(q, "b"))
    assert np.all(b["running_mean"] == 0) and np.all(b["running_var"] == 1) and b["num_batches_tracked"] == 0
    xs = kt.tensor(x)
    while kt.batch(xs, 50):  # as the page: while[batch(x;100); free nforward(q;x)]
        kt.nforward(q, xs)
    b3 = kt.dict(kt.buffers(q, "b"))
    assert b3["num_batches_tracked"] == b2["num_batches_tracked"]
    assert np.allclose(b3["running_mean"], b2["running_mean"]) and np.allclose(b3["running_var"], b2["running_var"])
    assert kt.batchnorm(q, r) is None  # restore the momentum
    assert "momentum=0.3" in kt.str(q)
    # a model without data: as a module
    m2 = kt.model(kt.module(kt.seq("sequential", ("batchnorm2d", "x", 4), ("batchnorm1d", "y", 4, 1e-5, None))),
                  kt.loss("mse"), kt.opt("sgd"))
    assert kt.batchnorm(m2) == {"x": 0.1, "y": None}
    kt.batchnorm(m2, {"x": 0.1})
    assert "momentum=0.1" in kt.str(m2) and "momentum=None" in kt.str(m2)


def test_batchnorm_failure_changes_nothing():
    q, m, x = bn_model(rows=101, batchsize=50)  # the last batch has one row: batchnorm refuses it
    kt.train(m, shuffle=False, droplast=True)  # training leaves it out, the recompute not
    kt.run(m)
    before = {k: v.copy() for k, v in kt.dict(kt.buffers(q, "b")).items()}
    kt.training(q, False)
    with pytest.raises(K, match="batchnorm1d: expected more than 1 value per channel when training"):
        kt.batchnorm(m)
    after = kt.dict(kt.buffers(q, "b"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert "momentum=0.3" in kt.str(q) and kt.training(q) is False


# ---------------------------------------------------------------------------------------------
# devices (devices.rst): CPU-only machines count 0 and raise nothing

def test_devices_as_the_original_reports_them():
    n = torch.cuda.device_count()
    assert kt.cudadevices(None) == n
    assert kt.cudadevices() == ([] if n == 0 else ["cuda"] + [f"cuda:{i}" for i in range(n)])
    assert kt.cudadevice() == (None if n == 0 else "cuda:0")
    kt.sync()
    kt.sync(kt.tensor([1.0]))
    kt.seed(123)
    want = {"cpu": 123}
    if n:
        want.update({"cuda": 123, **{f"cuda:{i}": 123 for i in range(n)}})
    assert kt.help("device") == want
    assert "device" in kt.help()


@pytest.mark.cuda
def test_cudadevice_sets_the_default():
    assert kt.cudadevice("cuda:0") is None
    assert kt.cudadevice() == "cuda:0"
    assert kt.device(kt.tensor([1.0], "cuda")) == "cuda"
    last = torch.cuda.device_count() - 1
    kt.cudadevice(f"cuda:{last}")
    try:
        t = kt.tensor([1.0], "cuda")
        assert torch.as_tensor(kt.tensor(t)).tolist() == [1.0]
        assert kt.device(t) == "cuda" and torch.cuda.current_device() == last
        kt.sync()
    finally:
        kt.cudadevice("cuda:0")


# ---------------------------------------------------------------------------------------------
# opt: parameter selections, the empty selection, group 0 forms (opt.rst)

def test_opt_selections():
    v = kt.vector(np.array([1, 2, 3], np.float32), np.array([1, 1.2, 9], np.float32), np.array([77, 78], np.float32))
    kt.gradflag(v, True)
    rows = lambda o: [(p["name"], p["size"]) for p in kt.opt(o)["parms"]]  # noqa: E731
    assert rows(kt.opt("sgd", (v, 1))) == [("1", [3])]
    assert rows(kt.opt("sgd", (v, [2, 0]))) == [("2", [2]), ("0", [3])]
    d = kt.dict({"a": np.array([1, 2, 3], np.float32), "b": np.array([4, 5], np.float32)})
    kt.gradflag(d, True)
    assert rows(kt.opt("sgd", (d, "b"))) == [("b", [2])]
    assert rows(kt.opt("sgd", (d, ["b", "a"]))) == [("b", [2]), ("a", [3])]
    q = kt.module(kt.seq("sequential", ("linear", "a", 128, 64), ("relu", "relu1"), ("linear", "b", 64, 10),
                         ("relu", "relu2")))
    assert rows(kt.opt("sgd", (q, 0))) == [("a.weight", [64, 128]), ("a.bias", [64])]
    assert rows(kt.opt("sgd", (q, ["b", "a"]))) == [("b.weight", [10, 64]), ("b.bias", [10]),
                                                    ("a.weight", [64, 128]), ("a.bias", [64])]
    assert rows(kt.opt("sgd", [q, "b", "a"])) == rows(kt.opt("sgd", (q, ["b", "a"])))
    # a step moves the selected parameters only
    o = kt.opt("sgd", (q, "b"), 1.0)
    x = np.ones((2, 128), np.float32)
    kt.backward(kt.mean(kt.forward(q, x)))
    a0, b0 = values(kt.parm(q, "a.weight")).copy(), values(kt.parm(q, "b.weight")).copy()
    kt.step(o)
    assert np.array_equal(values(kt.parm(q, "a.weight")), a0)
    assert np.allclose(values(kt.parm(q, "b.weight")), b0 - values(kt.grad(kt.parm(q, "b.weight"))))


def test_opt_empty_selection_and_groups():
    # opt.rst, parameter groups: initialised with no parameters, the settings given
    o = kt.opt("sgd", [], 0.1)
    kt.opt(o, 1, [], 0.01)
    kt.opt(o, 2, [], 0.001)
    assert kt.lr(o) == [0.1, 0.01, 0.001]
    with pytest.raises(K, match=r"opt: group 4 invalid, cannot be greater than number of groups\(3\)"):
        kt.opt(o, 4, [], 0.0001)
    o = kt.opt("sgd", [], 0.1, 0.9)
    m0, m1 = kt.module(("linear", 128, 64)), kt.module(("linear", 64, 10))
    kt.opt(o, 0, m0)
    kt.opt(o, 1, m1, 0.05, 0.95)
    d = kt.opt(o)
    assert [(g["lr"], g["momentum"]) for g in d["options"]] == [(0.1, 0.9), (0.05, 0.95)]
    assert [(p["parmgroup"], p["size"]) for p in d["parms"]] == [(0, [64, 128]), (0, [64]), (1, [10, 64]), (1, [10])]
    # storage: an optimizer with no parameters, then a module's
    o = kt.opt("adamw", [])
    assert kt.opt(o)["parms"] == [] and kt.lr(o) == [0.001]
    kt.opt(o, kt.module(("linear", 64, 10)))
    assert len(kt.opt(o)["parms"]) == 2
    # learning rate: reset group 0's settings, no parameters given
    o = kt.opt("sgd", kt.module(("linear", 128, 64)), 0.1, 0.8)
    kt.opt(o, [], 0.002, 0.9)
    assert kt.opt(o)["options"] == [{"lr": 0.002, "momentum": 0.9, "dampening": 0.0, "decay": 0.0,
                                     "nesterov": False}]
    # copying options to a new optimizer, then the same modules: the same definition
    o = kt.opt("adamw")
    kt.opt(o, 0, m0, 0.01, decay=0.01)
    kt.opt(o, 1, m1, 0.02, decay=0.04)
    d = kt.opt(o)
    n = kt.opt(d["optimizer"])
    for i, row in enumerate(d["options"]):
        kt.opt(n, i, [], row)
    assert kt.opt(n)["options"] == d["options"] and kt.opt(n)["parms"] == []
    n2 = kt.opt(d["optimizer"])
    for i, row in enumerate(d["options"]):
        kt.opt(n2, i, [], row)
    kt.opt(n2, 0, m0)
    kt.opt(n2, 1, m1)
    assert kt.opt(n2) == d


# ---------------------------------------------------------------------------------------------
# loss: definitions, batch weights, more tensors (loss.rst)

def test_loss_definition():
    lf = kt.loss("ce", None, -100, 0.1, "none")
    assert kt.loss(lf) == {"module": "ce", "options": {"weight": None, "ignore": -100, "smoothing": 0.1,
                                                      "reduce": "none"}}
    assert kt.loss(lf, False) == {"module": "ce", "options": {"smoothing": 0.1, "reduce": "none"}}


def test_bce_batch_weights():
    a, b = np.array([0.1, 0.9, 0.5], np.float32), np.array([0, 1, 0.5], np.float32)
    w = np.array([1, 1.1, 0.5], np.float32)
    lf = kt.loss("bce", "none")
    assert np.allclose(values(kt.loss(lf, a, b)), [0.1053605, 0.1053605, 0.6931472])
    r = values(kt.loss(lf, a, b, w))
    assert np.allclose(r, [0.1053605, 0.1158966, 0.3465736])
    assert np.allclose(values(kt.bce(a, b, w, "none")), r)
    ta, tb, tw = map(torch.as_tensor, (a, b, w))
    assert np.allclose(r, (F.binary_cross_entropy(ta, tb, reduction="none") * tw).numpy())
    lm = kt.loss("bce")
    assert np.isclose(float(values(kt.loss(lm, a, b, w))),
                      (F.binary_cross_entropy(ta, tb, reduction="none") * tw).mean().item())


def test_bcelogits_class_and_batch_weights():
    x, y = np.full((3, 5), 1.5, np.float32), np.ones((3, 5), np.float32)
    lf = kt.loss("bcelogits", [1.0] * 5, "none")
    assert np.allclose(values(kt.loss(lf, x, y)), 0.2014133)
    cw = [1, 0.1, 1.5, 2, 0.25]
    lf = kt.loss("bcelogits", cw, "none")
    assert np.allclose(values(kt.loss(lf, x, y)), [0.2014133, 0.02014133, 0.30212, 0.4028267, 0.05035333])
    w = kt.tensor("randn", [3, 5])
    r = values(kt.loss(lf, x, y, w))
    want = F.binary_cross_entropy_with_logits(torch.as_tensor(x), torch.as_tensor(y), weight=torch.as_tensor(values(w)),
                                              pos_weight=torch.tensor(cw, dtype=torch.float32), reduction="none")
    assert np.allclose(r, want.numpy())
    # bcelogit1: class weights; bcelogit2: batch weights with the inputs, then class weights
    r1 = values(kt.bcelogit1(x, y, "none"))
    assert np.allclose(np.round(r1, 4), 0.2014)
    r1 = values(kt.bcelogit1(x, y, [0.25, 0.5, 1, 2, 4], "none"))
    assert np.allclose(r1, [0.05035, 0.1007, 0.2014, 0.4028, 0.8057], rtol=2e-4)
    w = np.repeat(np.array([[0.1], [1], [2]], np.float32), 5, 1)
    r2 = values(kt.bcelogit2(x, y, w, [0.25, 0.5, 1, 2, 4], "none"))
    assert np.allclose(r2, [[0.005035, 0.01007, 0.02014, 0.04028, 0.08057],
                            [0.05035, 0.1007, 0.2014, 0.4028, 0.8057],
                            [0.1007, 0.2014, 0.4028, 0.8057, 1.611]], rtol=5e-4)


def test_loss_with_three_tensors():
    x1, x2 = np.array([0.3, -1.0, 2.0], np.float32), np.array([0.1, 0.5, 2.5], np.float32)
    y = np.array([1, -1, 1], np.float32)
    lf = kt.loss("margin", 0.2)
    want = F.margin_ranking_loss(*map(torch.as_tensor, (x1, x2, y)), margin=0.2)
    assert np.isclose(float(values(kt.loss(lf, x1, x2, y))), want.item())


# ---------------------------------------------------------------------------------------------
# parm filled by a scalar (modules.rst), info's reference count (info.rst)

def test_parm_scalar_fills():
    m = kt.module(("batchnorm2d", 64))
    b = kt.parm(m, "bias")
    assert np.all(values(b) == 0)
    kt.parm(m, "bias", 0.0001)
    assert np.allclose(values(b), np.full(64, 0.0001, np.float32))
    kt.parm(m, "weight", np.array(2.0))
    assert np.all(values(kt.parm(m, "weight")) == 2)


def test_info_ref_counts_handles():
    a = kt.tensor([1, 2, 3])
    assert kt.info(a)["ref"] == 1
    b = kt.addref(a)
    assert kt.info(a)["ref"] == 2 and kt.info(b)["ref"] == 2
    kt.free(b)
    assert kt.info(a)["ref"] == 1
    v = kt.vector(np.zeros(2), np.ones(3))
    w = kt.addref(v)
    assert [r["ref"] for r in kt.info(v)] == [2, 2]
    del w


# ---------------------------------------------------------------------------------------------
# bad input: refused before anything changes

def bad_cases():
    q = kt.module(kt.seq("sequential", ("linear", "a", 4, 3), ("batchnorm1d", "b", 3), ("relu", "c")))
    t = kt.tensor([1.0, 2.0], "grad")
    o = kt.opt("sgd", q)
    m = kt.model(kt.addref(q), kt.loss("mse"), kt.opt("sgd", q))
    x = np.zeros((2, 4), np.float32)
    return q, t, o, m, x, [
        ("names-type", lambda: kt.names(kt.loss("ce")), T, "names: expecting a Module or Model, given Loss"),
        ("names-child", lambda: kt.names(q, "zz"), K, "names: unrecognized child name: zz"),
        ("names-child-type", lambda: kt.names(q, 1.5), T, "names: expecting a child name or index, given float"),
        ("moduletypes-unknown", lambda: kt.moduletypes(q, "lineer"), K,
         "moduletypes: unrecognized module type: lineer (did you mean linear?)"),
        ("moduletypes-type", lambda: kt.moduletypes(q, 3), T, "moduletypes: types expects a module type"),
        ("moduletypes-list", lambda: kt.moduletypes(q, ["linear", 3]), T, "moduletypes: types expects module type names"),
        ("parmtypes-type", lambda: kt.parmtypes(t), T, "parmtypes: expecting a Module or Model, given Tensor"),
        ("kforward-type", lambda: kt.kforward(o, "a", x), T, "kforward: expecting a Module or Model, given Optimizer"),
        ("kforward-child", lambda: kt.kforward(q, "zz", x), K, "kforward: unrecognized child name: zz"),
        ("kforward-index", lambda: kt.kforward(q, -1, x), K, "kforward: child index -1 invalid"),
        ("kforward-input", lambda: kt.kforward(q, "a", np.zeros((2, 5), np.float32)), K, "kforward:"),
        ("str-opt", lambda: kt.str(o), T, "str: an Optimizer has no printed form"),
        ("str-type", lambda: kt.str(3), T, "str: expecting a ktorch handle, given int"),
        ("batchnorm-type", lambda: kt.batchnorm(o), T, "batchnorm: expecting a Module or Model, given Optimizer"),
        ("batchnorm-dict-type", lambda: kt.batchnorm(q, [0.1]), T, "batchnorm: expecting a dict of batchnorm names"),
        ("batchnorm-name", lambda: kt.batchnorm(q, {"b": 0.2, "zz": 0.1}), K,
         "batchnorm: unrecognized batchnorm layer: zz"),
        ("batchnorm-not-bn", lambda: kt.batchnorm(q, {"a": 0.1}), K, "batchnorm: unrecognized batchnorm layer: a"),
        ("batchnorm-range", lambda: kt.batchnorm(q, {"b": 2.0}), K, "batchnorm: momentum of `b` must be in the range 0-1"),
        ("batchnorm-value", lambda: kt.batchnorm(q, {"b": "x"}), T, "batchnorm: momentum of `b` expects a number or None"),
        ("batchnorm-key", lambda: kt.batchnorm(q, {1: 0.1}), T, "batchnorm: batchnorm names must be strings"),
        ("cudadevice-generic", lambda: kt.cudadevice("cuda"), K,
         "cudadevice: unrecognized CUDA device `cuda`, expecting cuda with valid device number, e.g. cuda:0"),
        ("cudadevice-missing", lambda: kt.cudadevice("cuda:99"), K, "cudadevice: device cuda:99 not available"),
        ("cudadevice-type", lambda: kt.cudadevice(0), T, "cudadevice: expecting a device name"),
        ("cudadevices-type", lambda: kt.cudadevices("x"), T, "cudadevices: expecting no argument"),
        ("help-topic", lambda: kt.help("devices"), K, "help: no help for `devices`"),
        ("opt-select-child", lambda: kt.opt(o, 1, (q, "zz")), K, "opt: unrecognized child name: zz"),
        ("opt-select-index", lambda: kt.opt(o, 1, (q, 7)), K, "opt: child index 7 invalid for a module of 3 child(ren)"),
        ("opt-select-tensor", lambda: kt.opt(o, 1, (t, 0)), K, "opt: a tensor has no members to select"),
        ("opt-select-type", lambda: kt.opt(o, 1, (q, 1.5)), T, "opt: a selection of parameters expects indices or names"),
        ("opt-select-negative", lambda: kt.opt(o, 1, (q, -1)), K, "opt: selection index -1 invalid"),
        ("opt-select-empty", lambda: kt.opt(o, 1, (q, [])), K, "opt: empty selection"),
        ("opt-select-opt", lambda: kt.opt("sgd", (o, 0)), T, "opt: an Optimizer's parameters are taken whole"),
        ("opt-select-dup", lambda: kt.opt(o, 1, (q, "a")), K, "opt: some parameters appear more than once"),
        ("opt-model-args", lambda: kt.opt(m, 0.1), T, "opt: expecting an optimizer name or an Optimizer, given Model"),
        ("loss-weights-mse", lambda: kt.loss(kt.loss("mse"), x, x, x), K,
         "mse: expects 1 output and 1 target, given 1 and 2"),
        ("loss-weights-shape", lambda: kt.loss(kt.loss("bce"), np.full(3, 0.5, np.float32),
                                               np.ones(3, np.float32), np.ones(2, np.float32)), K, "loss: bce:"),
        ("loss-flag", lambda: kt.loss(kt.loss("ce"), "x"), T, "loss: expecting (loss or model, output, target)"),
        ("loss-kw", lambda: kt.loss(kt.loss("mse"), x, x, reduce="sum"), T, "loss: a loss is computed from tensors alone"),
        ("bcelogit2-shape", lambda: kt.bcelogit2(np.zeros((3, 5), np.float32), np.ones((3, 5), np.float32),
                                                 np.ones((2, 5), np.float32)), K, "bcelogit2:"),
        ("bcelogit1-setting", lambda: kt.bcelogit1(x, x, nosuch=1), K, "bcelogits: unrecognized option: nosuch"),
        ("parm-size", lambda: kt.parm(q, "a.bias", [1.0, 2.0]), K, "parm: parameter `a.bias` has size [3], given [2]"),
        ("model-none", lambda: kt.model(m), T, "model: expecting a Module, Loss and/or Optimizer to replace"),
        ("model-part-type", lambda: kt.model(m, kt.loss("ce"), 5), T,
         "model: a model's parts are a Module, a Loss and an Optimizer, given int"),
        ("model-two-losses", lambda: kt.model(m, kt.loss("ce"), kt.loss("mse")), T, "model: given more than one Loss"),
        ("model-extra", lambda: kt.model(q, kt.loss("ce"), o, o), T, "model: expecting (module, loss, optimizer)"),
    ]


@pytest.mark.parametrize("i", range(len(bad_cases()[-1])), ids=[c[0] for c in bad_cases()[-1]])
def test_bad_input(i):
    q, t, o, m, x, cases = bad_cases()
    name, call, exc, want = cases[i]
    state = (kt.str(q), kt.opt(o), kt.loss(kt.loss(m)), kt.lr(m), values(kt.parm(q, "a.bias")).copy(),
             kt.cudadevice())
    with pytest.raises(exc) as e:
        call()
    assert want in str(e.value), str(e.value)
    after = (kt.str(q), kt.opt(o), kt.loss(kt.loss(m)), kt.lr(m), values(kt.parm(q, "a.bias")), kt.cudadevice())
    assert after[:4] == state[:4] and np.array_equal(after[4], state[4]) and after[5] == state[5]


def test_freed_handles_refused():
    q = kt.module(("batchnorm1d", 3))
    kt.free(q)
    for f in (kt.names, kt.moduletypes, kt.parmtypes, kt.str, kt.batchnorm):
        with pytest.raises(K, match="Module has been freed"):
            f(q)
    with pytest.raises(K, match="kforward: Module has been freed"):
        kt.kforward(q, 0, np.zeros((2, 3), np.float32))


# ---------------------------------------------------------------------------------------------
# threads: read-outs and batchnorm beside a training run on the same model

def test_threads_share_a_model_safely():
    q, m, x = bn_model(rows=400, batchsize=20)
    errors, done = [], threading.Event()

    def train():
        try:
            for _ in range(15):
                kt.run(m)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    def read():
        try:
            n = 0
            while not done.is_set() or n < 5:
                assert kt.names(m) == ["a", "b", "c", "d"]
                assert kt.moduletypes(q, "batchnorm1d") == ["b"]
                assert "BatchNorm1d(8" in kt.str(m)
                assert set(kt.parmtypes(q)) == set(kt.parmnames(q))
                kt.opt(kt.opt(m))
                n += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def recompute():
        try:
            for _ in range(5):
                r = kt.batchnorm(m)
                assert r == {"b": 0.3}
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=f) for f in (train, read, read, recompute)]
    for th in ts:
        th.start()
    for th in ts:
        th.join(60)
    assert not any(th.is_alive() for th in ts)
    assert not errors, errors
    # whatever the interleaving, the layer is whole: its momentum back, its statistics finite
    assert "momentum=0.3" in kt.str(q)
    b = kt.dict(kt.buffers(q, "b"))
    assert np.all(np.isfinite(b["running_mean"])) and np.all(b["running_var"] > 0)


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_batchnorm_on_cuda():
    q, m, x = bn_model()
    kt.to(m, "cuda")
    kt.run(m)
    net = torch_copy(q).cuda()
    kt.unshuffle(m)
    kt.batchnorm(m)
    update_bn(torch.utils.data.DataLoader(torch.as_tensor(x).cuda(), batch_size=50), net)
    b = kt.dict(kt.buffers(q, "b"))
    assert np.allclose(np.asarray(b["running_mean"]), net.b.running_mean.cpu().numpy(), atol=1e-5)
