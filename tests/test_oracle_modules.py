"""Oracle tests: each ktorch module against the equivalent torch.nn module.

The ktorch module is built first; its parameters are copied into the torch module
by name (the names must equal torch's named_parameters()), then both run the same
input and the outputs must agree.

Each comparison runs on every device (the `device` fixture: the CPU, and CUDA where there
is one): the torch module and its inputs on that device, the ktorch module moved there with
`kt.to` after its weights are copied. `check` gives ktorch its inputs on the device (numpy
on the CPU, as before; a module without parameters runs where its inputs are); the tests
with their own loop give numpy, which goes to the module's device.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6


def r(*shape, seed=0, dtype=np.float32):
    g = np.random.default_rng(seed + sum(shape))
    return g.standard_normal(shape).astype(dtype)


def copy_parms(q, tm):
    names = kt.parmnames(q)
    tnames = [n for n, _ in tm.named_parameters()]
    assert names == tnames
    with torch.no_grad():
        for n, p in tm.named_parameters():
            v = kt.tensor(kt.parm(q, n))
            assert v.shape == tuple(p.shape), n
            p.copy_(torch.from_numpy(np.ascontiguousarray(v)))


def as_list(x):
    if isinstance(x, (list, tuple)):
        out = []
        for y in x:
            out.extend(as_list(y))
        return out
    return [x]


def on(x, device):
    """A numpy input for ktorch on `device`: the array itself on the CPU, else a ktorch tensor."""
    return x if device == "cpu" else kt.tensor(x, device)


def dev(xs, device):
    """torch tensors of numpy arrays, on `device`."""
    return [torch.from_numpy(x).to(device) for x in xs]


def host(t):
    """A torch tensor's values as a numpy array."""
    return t.detach().cpu().numpy()


def kt_out(q, xs, train):
    if train:
        h = kt.forward(q, *xs)
        v = kt.tensor(h)
        return v if isinstance(v, list) else [v]
    v = kt.evaluate(q, *xs)
    return v if isinstance(v, list) else [v]


def check(spec, tm, *xs, train=False, device="cpu"):
    q = kt.module(spec)
    copy_parms(q, tm)
    kt.to(q, device)
    tm.to(device)
    got = kt_out(q, [on(x, device) for x in xs], train)
    tm.train(train)
    with torch.no_grad():
        ref = tm(*dev(xs, device))
    ref = [host(t) for t in as_list(ref)]
    assert len(got) == len(ref)
    for g, e in zip(got, ref, strict=False):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
    return q


X4 = r(5, 4)
CASES = [
    ("linear", ("linear", 4, 3), lambda: nn.Linear(4, 3), (X4,)),
    ("linear-nobias", ("linear", 4, 3, {"bias": False}), lambda: nn.Linear(4, 3, bias=False), (X4,)),
    ("linear-pos-bias", ("linear", 4, 3, False), lambda: nn.Linear(4, 3, bias=False), (X4,)),
    ("bilinear", ("bilinear", 4, 3, 2), lambda: nn.Bilinear(4, 3, 2), (r(5, 4), r(5, 3))),
    ("conv1d", ("conv1d", 2, 3, 3), lambda: nn.Conv1d(2, 3, 3), (r(2, 2, 9),)),
    ("conv1d-stride-pad", ("conv1d", 2, 4, 3, 2, 1), lambda: nn.Conv1d(2, 4, 3, 2, 1), (r(2, 2, 9),)),
    ("conv2d", ("conv2d", 2, 3, 3), lambda: nn.Conv2d(2, 3, 3), (r(2, 2, 6, 7),)),
    ("conv2d-full", ("conv2d", 4, 6, (3, 2), 2, 1, 1, 2, False),
     lambda: nn.Conv2d(4, 6, (3, 2), 2, 1, 1, 2, bias=False), (r(2, 4, 7, 8),)),
    ("conv2d-same", ("conv2d", 2, 3, 3, {"pad": "same"}), lambda: nn.Conv2d(2, 3, 3, padding="same"), (r(1, 2, 5, 5),)),
    ("conv3d", ("conv3d", 2, 3, 2), lambda: nn.Conv3d(2, 3, 2), (r(1, 2, 4, 5, 3),)),
    ("convtranspose1d", ("convtranspose1d", 2, 3, 3, 2), lambda: nn.ConvTranspose1d(2, 3, 3, 2), (r(2, 2, 5),)),
    ("convtranspose2d", ("convtranspose2d", 2, 3, 3), lambda: nn.ConvTranspose2d(2, 3, 3), (r(2, 2, 4, 5),)),
    ("maxpool1d", ("maxpool1d", 3), lambda: nn.MaxPool1d(3), (r(2, 3, 10),)),
    ("maxpool1d-stride", ("maxpool1d", 3, 1, 1), lambda: nn.MaxPool1d(3, 1, 1), (r(2, 3, 10),)),
    ("maxpool2d", ("maxpool2d", 2), lambda: nn.MaxPool2d(2), (r(2, 3, 6, 7),)),
    ("maxpool2d-ceil", ("maxpool2d", 2, {"ceiling": True}), lambda: nn.MaxPool2d(2, ceil_mode=True), (r(2, 3, 5, 7),)),
    ("avgpool1d", ("avgpool1d", 2), lambda: nn.AvgPool1d(2), (r(2, 3, 9),)),
    ("avgpool2d", ("avgpool2d", 3, 2, 1), lambda: nn.AvgPool2d(3, 2, 1), (r(2, 3, 7, 6),)),
    ("adaptavg1d", ("adaptavg1d", 4), lambda: nn.AdaptiveAvgPool1d(4), (r(2, 3, 11),)),
    ("adaptavg2d", ("adaptavg2d", (2, 3)), lambda: nn.AdaptiveAvgPool2d((2, 3)), (r(2, 3, 7, 8),)),
    ("adaptmax2d", ("adaptmax2d", 3), lambda: nn.AdaptiveMaxPool2d(3), (r(2, 3, 7, 8),)),
    ("layernorm", ("layernorm", 6), lambda: nn.LayerNorm(6), (r(3, 4, 6),)),
    ("layernorm-2d", ("layernorm", (4, 6)), lambda: nn.LayerNorm((4, 6)), (r(3, 4, 6),)),
    ("groupnorm", ("groupnorm", 2, 6), lambda: nn.GroupNorm(2, 6), (r(3, 6, 5),)),
    ("drop-eval", ("drop", 0.5), lambda: nn.Dropout(0.5), (r(4, 6),)),
    ("drop2d-eval", ("drop2d", 0.3), lambda: nn.Dropout2d(0.3), (r(2, 3, 4, 4),)),
    ("flatten", "flatten", lambda: nn.Flatten(), (r(2, 3, 4, 5),)),
    ("flatten-2", ("flatten", 0, 1), lambda: nn.Flatten(0, 1), (r(2, 3, 4, 5),)),
    ("identity", "identity", lambda: nn.Identity(), (r(2, 3),)),
]


@pytest.mark.parametrize("spec,make,xs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_module_eval(spec, make, xs, device):
    torch.manual_seed(1)
    check(spec, make(), *xs, device=device)


def test_embed(device):
    x = np.array([[0, 3, 5], [9, 1, 3]], dtype=np.int64)
    check(("embed", 10, 4), nn.Embedding(10, 4), x, device=device)


def test_embed_padindex(device):
    x = np.array([[0, 3, 2], [2, 1, 3]], dtype=np.int64)
    q = check(("embed", 10, 4, 2), nn.Embedding(10, 4, padding_idx=2), x, device=device)
    w = kt.tensor(kt.parm(q, "weight"))
    np.testing.assert_array_equal(w[2], np.zeros(4, np.float32))


def test_reshape(device):
    x = r(2, 3, 4)
    q = kt.module(("reshape", (-1, 6)))
    np.testing.assert_array_equal(kt.evaluate(q, on(x, device)), x.reshape(-1, 6))


@pytest.mark.parametrize("name,kw", [("batchnorm1d", {}), ("batchnorm2d", {})])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm(name, kw, train, device):
    shape = (8, 5) if name == "batchnorm1d" else (4, 5, 3, 3)
    tm = nn.BatchNorm1d(5) if name == "batchnorm1d" else nn.BatchNorm2d(5)
    q = kt.module((name, 5))
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    kt.parm(q, "weight", tm.weight.detach().numpy())
    kt.parm(q, "bias", tm.bias.detach().numpy())
    kt.to(q, device)
    tm.to(device)
    x = r(*shape, seed=3)
    # two training passes so running stats differ from their initial values
    for i in range(2):
        xi = x + i
        kt.forward(q, xi)
        tm.train(True)
        with torch.no_grad():
            tm(*dev([xi], device))
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "running_mean")), host(tm.running_mean), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "running_var")), host(tm.running_var), rtol=RTOL, atol=ATOL)
    got = kt.tensor(kt.forward(q, x)) if train else kt.evaluate(q, x)
    tm.train(train)
    with torch.no_grad():
        ref = host(tm(*dev([x], device)))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


ACTS = [
    ("celu", ("celu", 0.7), lambda: nn.CELU(0.7)),
    ("elu", ("elu", 1.3), lambda: nn.ELU(1.3)),
    ("gelu", "gelu", lambda: nn.GELU()),
    ("gelu-tanh", ("gelu", {"approximate": "tanh"}), lambda: nn.GELU("tanh")),
    ("glu", "glu", lambda: nn.GLU()),
    ("hardshrink", ("hardshrink", 0.3), lambda: nn.Hardshrink(0.3)),
    ("hardtanh", ("hardtanh", -0.5, 0.7), lambda: nn.Hardtanh(-0.5, 0.7)),
    ("leakyrelu", ("leakyrelu", 0.2), lambda: nn.LeakyReLU(0.2)),
    ("logsigmoid", "logsigmoid", lambda: nn.LogSigmoid()),
    ("logsoftmax", ("logsoftmax", 1), lambda: nn.LogSoftmax(1)),
    ("mish", "mish", lambda: nn.Mish()),
    ("prelu", "prelu", lambda: nn.PReLU()),
    ("prelu-n", ("prelu", 6, 0.1), lambda: nn.PReLU(6, 0.1)),
    ("relu", "relu", lambda: nn.ReLU()),
    ("relu6", "relu6", lambda: nn.ReLU6()),
    ("rrelu-eval", ("rrelu", 0.1, 0.3), lambda: nn.RReLU(0.1, 0.3)),
    ("selu", "selu", lambda: nn.SELU()),
    ("sigmoid", "sigmoid", lambda: nn.Sigmoid()),
    ("silu", "silu", lambda: nn.SiLU()),
    ("softmax", ("softmax", 1), lambda: nn.Softmax(1)),
    ("softmax-last", ("softmax", -1), lambda: nn.Softmax(-1)),
    ("softmin", ("softmin", 1), lambda: nn.Softmin(1)),
    ("softplus", ("softplus", 2.0, 3.0), lambda: nn.Softplus(2.0, 3.0)),
    ("softshrink", ("softshrink", 0.4), lambda: nn.Softshrink(0.4)),
    ("softsign", "softsign", lambda: nn.Softsign()),
    ("tanh", "tanh", lambda: nn.Tanh()),
    ("tanhshrink", "tanhshrink", lambda: nn.Tanhshrink()),
    ("threshold", ("threshold", 0.1, 20.0), lambda: nn.Threshold(0.1, 20.0)),
]


@pytest.mark.parametrize("spec,make", [a[1:] for a in ACTS], ids=[a[0] for a in ACTS])
def test_activation(spec, make, device):
    x = r(4, 6, seed=7) * 3
    check(spec, make(), x, device=device)


def test_softmax2d(device):
    check("softmax2d", nn.Softmax2d(), r(2, 3, 4, 4), device=device)


def seq_parms(q, tm):
    copy_parms(q, tm)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers,bi,batchfirst", [(1, False, False), (2, True, False), (2, False, True)])
def test_recurrent(kind, layers, bi, batchfirst, device):
    torch.manual_seed(0)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
    tm = cls(4, 5, layers, batch_first=batchfirst, bidirectional=bi)
    spec = (kind, 4, 5, layers, {"batchfirst": batchfirst, "bi": bi})
    x = r(3, 6, 4, seed=11)
    check(spec, tm, x, device=device)


def test_rnn_relu_nobias(device):
    tm = nn.RNN(4, 5, 1, nonlinearity="relu", bias=False)
    check(("rnn", 4, 5, 1, "relu", False), tm, r(6, 2, 4), device=device)


def test_gru_with_hidden(device):
    tm = nn.GRU(4, 5, 2)
    check(("gru", 4, 5, 2), tm, r(6, 2, 4), r(2, 2, 5, seed=5), device=device)


def test_lstm_with_hidden_cell(device):
    tm = nn.LSTM(4, 5, 1)
    q = kt.module(("lstm", 4, 5, 1))
    copy_parms(q, tm)
    kt.to(q, device)
    tm.to(device)
    x, h, c = r(6, 2, 4), r(1, 2, 5, seed=2), r(1, 2, 5, seed=3)
    got = kt.evaluate(q, x, h, c)
    xt, ht, ct = dev([x, h, c], device)
    with torch.no_grad():
        y, (h1, c1) = tm(xt, (ht, ct))
    assert len(got) == 3
    for g, e in zip(got, [y, h1, c1], strict=False):
        np.testing.assert_allclose(g, host(e), rtol=RTOL, atol=ATOL)


def test_sequential_nested(device):
    spec = kt.seq("sequential", ("linear", 4, 8), "relu",
                  kt.seq("sequential", ("linear", 8, 6), "tanh", ("linear", 6, 3)), ("softmax", 1))
    tm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                       nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)), nn.Softmax(1))
    q = check(spec, tm, X4, device=device)
    assert kt.parmnames(q) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.2.weight", "2.2.bias"]


def test_sequential_named(device):
    spec = kt.seq("sequential", ("linear", "a", 4, 8), "relu", ("linear", "b", 8, 3))
    from collections import OrderedDict
    tm = nn.Sequential(OrderedDict([("a", nn.Linear(4, 8)), ("1", nn.ReLU()), ("b", nn.Linear(8, 3))]))
    q = check(spec, tm, X4, device=device)
    assert kt.parmnames(q) == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_sequential_conv_net(device):
    spec = kt.seq("sequential", ("conv2d", 1, 4, 3), ("batchnorm2d", 4), "relu", ("maxpool2d", 2),
                  "flatten", ("linear", 36, 5))
    tm = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(36, 5))
    check(spec, tm, r(3, 1, 8, 8), device=device)


class Res(nn.Module):
    def __init__(self, a, b=None):
        super().__init__()
        self.add_module("0", a)
        if b is not None:
            self.add_module("1", b)
        self.two = b is not None

    def forward(self, x):
        a = getattr(self, "0")(x)
        return a + (getattr(self, "1")(x) if self.two else x)


def test_residual_one_child(device):
    spec = kt.seq("residual", kt.seq("sequential", ("linear", 4, 4), "relu"))
    tm = Res(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    check(spec, tm, X4, device=device)


def test_residual_two_children(device):
    spec = kt.seq("residual", kt.seq("sequential", ("linear", 4, 6), "tanh"), ("linear", 4, 6))
    tm = Res(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), nn.Linear(4, 6))
    check(spec, tm, X4, device=device)


def test_forward_gradients_match(device):
    """Gradients after backward through forward() equal torch's."""
    spec = kt.seq("sequential", ("linear", 4, 8), "tanh", ("linear", 8, 3))
    tm = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    q = kt.module(spec)
    copy_parms(q, tm)
    kt.to(q, device)
    tm.to(device)
    y = kt.forward(q, X4)
    assert kt.device(y) == device
    s = kt.mean(y)
    kt.backward(s)
    tm(*dev([X4], device)).mean().backward()
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(kt.grad(kt.parm(q, n)), host(p.grad), rtol=RTOL, atol=ATOL)
