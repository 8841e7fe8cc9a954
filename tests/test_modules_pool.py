"""Pooling, normalization, dropout and embedding types added to the catalogue, against torch.

fmaxpool2d/3d, lppool1d/2d, fold, unfold, instancenorm1d/2d/3d, localnorm, crossmap2d,
droppath, embedbag, embedpos, embedseq: outputs and gradients (of the inputs and of the
parameters) against the torch.nn counterpart given the same weights and inputs, in float32
and float64; training and evaluation mode where they differ; state_dict both ways; bad
options; and the state round trip (kt.state -> kt.module).

Random draws (fractional max pooling's samples, droppath's mask) come from libtorch's
generator, which ktorch and torch share: kt.seed(n) then a ktorch draw equals
torch.manual_seed(n) then torch's draw.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn

import ktorch as kt

TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-10, 1e-12)}
TORCH = {np.float32: torch.float32, np.float64: torch.float64}
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def r(*shape, seed=0, dtype=np.float32):
    g = np.random.default_rng(seed + 7 * sum(shape))
    return g.standard_normal(shape).astype(dtype)


def close(a, b, dtype=np.float32, scale=1.0):
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol * scale, atol=atol * scale)


def spec_of(spec, dtype):
    """The spec with dtype double added for float64 (to build parameters in that dtype)."""
    if dtype is np.float32:
        return spec
    if isinstance(spec, str):
        return (spec, {"dtype": "double"})
    opts = dict(spec[-1]) if isinstance(spec[-1], dict) else {}
    head = spec[:-1] if isinstance(spec[-1], dict) else spec
    return (*head, {**opts, "dtype": "double"})


def both(spec, tm, xs, dtype=np.float32, train=False, load=True, seed=None, scale=1.0):
    """Forward and backward in ktorch and torch with the same weights and inputs; compares
    outputs, the gradients of the floating inputs and of the parameters. `spec` is a spec or
    a module already built. Returns the ktorch module and the torch module."""
    q = spec if isinstance(spec, kt.Module) else kt.module(spec_of(spec, dtype))
    tm = tm.to(TORCH[dtype])
    if load and tm.state_dict():
        kt.load_state_dict(q, tm.state_dict())
    kt.training(q, train)
    tm.train(train)
    kt.nograd(q)
    tm.zero_grad(set_to_none=True)
    hs = [kt.tensor(x, "grad") if x.dtype.kind == "f" else x for x in xs]
    ts = [torch.from_numpy(x.copy()).requires_grad_(x.dtype.kind == "f") for x in xs]
    if seed is not None:
        kt.seed(seed)
    y = kt.forward(q, *hs)
    if seed is not None:
        torch.manual_seed(seed)
    yt = tm(*ts)
    got = kt.tensor(y)
    assert got.shape == tuple(yt.shape)
    close(got, yt.detach().numpy(), dtype, scale)
    g = r(*got.shape, seed=99, dtype=got.dtype) if got.ndim else np.array(1.5, got.dtype)
    kt.backward(y, g)
    yt.backward(torch.from_numpy(g))
    for h, t in zip(hs, ts, strict=True):
        if not isinstance(h, np.ndarray):
            close(kt.grad(h), t.grad.numpy(), dtype, scale)
    for n, p in tm.named_parameters():
        if p.grad is None:
            assert kt.grad(kt.parm(q, n)) is None, n
        else:
            gp = p.grad.to_dense() if p.grad.is_sparse else p.grad
            close(kt.grad(kt.parm(q, n)), gp.numpy(), dtype, scale)
    return q, tm


def same_state(a, b):
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same_state(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same_state(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


# ------------------------------------------------------------------ fractional max pooling


FMAX = [
    ("fmaxpool2d", ("fmaxpool2d", 2, {"outsize": [4, 5]}), lambda: nn.FractionalMaxPool2d(2, output_size=(4, 5)), (2, 3, 9, 8)),
    ("fmaxpool2d-ratio", ("fmaxpool2d", [2, 3], [], 0.5), lambda: nn.FractionalMaxPool2d((2, 3), output_ratio=0.5), (2, 3, 9, 8)),
    ("fmaxpool2d-ratios-3d", ("fmaxpool2d", 3, {"ratio": [0.6, 0.4]}), lambda: nn.FractionalMaxPool2d(3, output_ratio=(0.6, 0.4)), (3, 10, 11)),
    ("fmaxpool3d", ("fmaxpool3d", 2, 3), lambda: nn.FractionalMaxPool3d(2, output_size=3), (2, 2, 6, 5, 7)),
    ("fmaxpool3d-ratio-4d", ("fmaxpool3d", [2, 1, 2], {"ratio": 0.7}), lambda: nn.FractionalMaxPool3d((2, 1, 2), output_ratio=0.7), (3, 6, 5, 7)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,make,shape", [c[1:] for c in FMAX], ids=[c[0] for c in FMAX])
def test_fmaxpool_seeded_draws_match_torch(spec, make, shape, dtype):
    """The same seed, the same random samples: outputs and gradients equal torch's, in
    training and evaluation mode alike (fractional pooling draws in both)."""
    for train, seed in [(True, 11), (False, 12)]:
        both(spec, make(), [r(*shape, dtype=dtype)], dtype, train=train, seed=seed)


@pytest.mark.parametrize("kind,d", [("fmaxpool2d", 2), ("fmaxpool3d", 3)])
def test_fmaxpool_explicit_samples(kind, d):
    """forward(x, samples) uses the given samples, as torch's _random_samples."""
    shape = (2, 3, 8, 9) if d == 2 else (2, 3, 6, 7, 8)
    x = r(*shape)
    s = np.random.default_rng(5).random((2, 3, d)).astype(np.float32)
    cls = nn.FractionalMaxPool2d if d == 2 else nn.FractionalMaxPool3d
    tm = cls(2, output_size=4, _random_samples=torch.from_numpy(s))
    q = kt.module((kind, 2, 4))
    xh = kt.tensor(x, "grad")
    y = kt.forward(q, xh, s)
    xt = torch.from_numpy(x).requires_grad_()
    yt = tm(xt)
    close(kt.tensor(y), yt.detach().numpy())
    g = r(*yt.shape, seed=3)
    kt.backward(y, g)
    yt.backward(torch.from_numpy(g))
    close(kt.grad(xh), xt.grad.numpy())
    # samples decide the regions: other samples, another result; the same, the same
    other = kt.evaluate(q, x, 1 - s)
    assert not np.array_equal(other, kt.evaluate(q, x, s))
    to = cls(2, output_size=4, _random_samples=torch.from_numpy(1 - s))
    close(other, to(torch.from_numpy(x)).numpy())
    # without samples: reproducible under kt.seed, and a max of each region
    kt.seed(4)
    a = kt.evaluate(q, x)
    kt.seed(4)
    np.testing.assert_array_equal(a, kt.evaluate(q, x))
    assert set(np.unique(a)) <= set(np.unique(x))


# ------------------------------------------------------------------ power-average pooling


LP = [
    ("lppool1d", ("lppool1d", 2, 3), lambda: nn.LPPool1d(2, 3), (2, 3, 10)),
    ("lppool1d-stride-ceil", ("lppool1d", 1.5, 3, 2, True), lambda: nn.LPPool1d(1.5, 3, 2, ceil_mode=True), (2, 3, 10)),
    ("lppool1d-2d-input", ("lppool1d", 3, 2, {"stride": 1}), lambda: nn.LPPool1d(3, 2, stride=1), (4, 9)),
    ("lppool2d", ("lppool2d", 2, [2, 3]), lambda: nn.LPPool2d(2, (2, 3)), (2, 3, 8, 9)),
    ("lppool2d-stride-ceil", ("lppool2d", 1.2, 2, [1, 2], {"ceiling": True}), lambda: nn.LPPool2d(1.2, 2, (1, 2), ceil_mode=True), (2, 2, 7, 7)),
    ("lppool2d-3d-input", ("lppool2d", 4, 3, 2), lambda: nn.LPPool2d(4, 3, 2), (3, 9, 8)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,make,shape", [c[1:] for c in LP], ids=[c[0] for c in LP])
def test_lppool(spec, make, shape, dtype):
    # positive inputs: a fractional power of a negative number is nan in both
    x = np.abs(r(*shape, dtype=dtype)) + 0.1
    both(spec, make(), [x], dtype, scale=10)


# ------------------------------------------------------------------ fold, unfold


FOLD = [
    ("unfold", ("unfold", [2, 3]), lambda: nn.Unfold((2, 3)), (2, 3, 5, 6)),
    ("unfold-all", ("unfold", 2, 2, 1, [1, 2]), lambda: nn.Unfold(2, 2, 1, (1, 2)), (2, 2, 7, 6)),
    ("unfold-named-3d", ("unfold", 3, {"stride": 2, "pad": 1}), lambda: nn.Unfold(3, padding=1, stride=2), (3, 6, 5)),
    ("fold", ("fold", [5, 6], [2, 3]), lambda: nn.Fold((5, 6), (2, 3)), (2, 18, 16)),
    ("fold-all", ("fold", 6, 2, 1, 1, 2), lambda: nn.Fold(6, 2, 1, 1, 2), (1, 12, 16)),
    ("fold-dilate-2d", ("fold", [7, 5], 2, {"dilate": [2, 1]}), lambda: nn.Fold((7, 5), 2, dilation=(2, 1)), (8, 20)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,make,shape", [c[1:] for c in FOLD], ids=[c[0] for c in FOLD])
def test_fold_unfold(spec, make, shape, dtype):
    both(spec, make(), [r(*shape, dtype=dtype)], dtype)


# ------------------------------------------------------------------ instance normalization


INST = [
    ("plain", (), {}),
    ("affine", ({"affine": True},), {"affine": True}),
    ("track", ({"track": True},), {"track_running_stats": True}),
    ("all", (1e-3, 0.3, True, True), {"eps": 1e-3, "momentum": 0.3, "affine": True, "track_running_stats": True}),
]
INSHAPE = {1: [(4, 3, 7), (3, 7)], 2: [(2, 3, 4, 5), (3, 4, 5)], 3: [(2, 3, 3, 2, 4), (3, 3, 2, 4)]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("args,kw", [c[1:] for c in INST], ids=[c[0] for c in INST])
def test_instancenorm(d, args, kw, dtype):
    kind = f"instancenorm{d}d"
    cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[d]
    tm = cls(3, **kw).to(TORCH[dtype])
    if tm.affine:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            tm.bias.uniform_(-1, 1)
    q = kt.module(spec_of((kind, 3, *args), dtype))
    kt.load_state_dict(q, tm.state_dict())
    for i, shape in enumerate(INSHAPE[d]):
        # training: batch statistics (running statistics updated when tracking); unbatched too
        both(q, tm, [r(*shape, seed=i, dtype=dtype) * 2 + 1], dtype, train=True, load=False)
    for n, b in tm.named_buffers():
        close(kt.tensor(kt.parm(q, n)), b.numpy(), dtype)
    # evaluation: running statistics when tracking, batch statistics otherwise
    both(q, tm, [r(*INSHAPE[d][0], seed=5, dtype=dtype)], dtype, train=False, load=False)
    assert kt.buffernames(q) == [n for n, _ in tm.named_buffers()]


@pytest.mark.parametrize("d", [1, 2, 3])
def test_instancenorm_running_stats_and_state_dict(d):
    kind = f"instancenorm{d}d"
    cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[d]
    tm = cls(3, momentum=0.2, affine=True, track_running_stats=True)
    q = kt.module((kind, 3, {"momentum": 0.2, "affine": True, "track": True}))
    assert list(kt.state_dict(q)) == list(tm.state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    # torch -> ktorch
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    kt.load_state_dict(q, tm.state_dict())
    for i, shape in enumerate(INSHAPE[d]):
        x = r(*shape, seed=i) * 3 + 2
        kt.forward(q, x)
        tm.train()
        tm(torch.from_numpy(x))
    for n, b in tm.named_buffers():
        close(kt.tensor(kt.parm(q, n)), b.numpy())
    # ktorch -> torch: running statistics carried back
    t2 = cls(3, momentum=0.2, affine=True, track_running_stats=True).eval()
    t2.load_state_dict(kt.state_dict(q))
    x = r(*INSHAPE[d][0], seed=9)
    close(kt.evaluate(q, x), t2(torch.from_numpy(x)).detach().numpy())
    # no tracking, no buffers; no affine, no parameters
    q = kt.module((kind, 3))
    assert list(kt.state_dict(q)) == list(cls(3).state_dict()) == []


# ------------------------------------------------------------------ local response norm


LRN = [
    ("localnorm", ("localnorm", 3), lambda: nn.LocalResponseNorm(3), (2, 6, 5)),
    ("localnorm-all-4d", ("localnorm", 4, 0.01, 0.6, 2.0), lambda: nn.LocalResponseNorm(4, 0.01, 0.6, 2.0), (2, 5, 3, 4)),
    ("localnorm-named-5d", ("localnorm", 2, {"alpha": 0.1, "k": 0.5}), lambda: nn.LocalResponseNorm(2, alpha=0.1, k=0.5), (2, 4, 2, 3, 2)),
    ("crossmap2d", ("crossmap2d", 3), lambda: nn.CrossMapLRN2d(3), (2, 6, 3, 4)),
    ("crossmap2d-even", ("crossmap2d", 4, 0.05, 0.8, 2), lambda: nn.CrossMapLRN2d(4, 0.05, 0.8, 2), (2, 7, 3, 3)),
    ("crossmap2d-5", ("crossmap2d", 5, {"alpha": 0.2, "beta": 0.5}), lambda: nn.CrossMapLRN2d(5, 0.2, 0.5), (1, 9, 2, 3)),
    ("crossmap2d-wide", ("crossmap2d", 7, {"alpha": 0.5}), lambda: nn.CrossMapLRN2d(7, 0.5), (2, 3, 2, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,make,shape", [c[1:] for c in LRN], ids=[c[0] for c in LRN])
def test_localnorm_crossmap(spec, make, shape, dtype):
    """crossmap2d follows torch's CrossMapLRN2d, whose hand-written window and backward differ
    from localnorm's: values and gradients both."""
    both(spec, make(), [r(*shape, dtype=dtype) * 2], dtype, scale=10)


# ------------------------------------------------------------------ droppath


def drop_path_reference(x, p, seed):
    """The original's drop path in torch: floor(keep + uniform) a sample, inputs scaled by 1/keep."""
    keep = 1 - p
    torch.manual_seed(seed)
    mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype)).floor()
    return x.div(keep) * mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,shape", [(0.3, (40, 3, 2)), (0.6, (50, 4)), (0.5, (30,))])
def test_droppath(p, shape, dtype):
    x = r(*shape, dtype=dtype)
    q = kt.module(("droppath", p))
    # training: the reference's draw under the same seed, values and gradients
    xh = kt.tensor(x, "grad")
    kt.seed(21)
    y = kt.forward(q, xh)
    xt = torch.from_numpy(x).requires_grad_()
    yt = drop_path_reference(xt, p, 21)
    close(kt.tensor(y), yt.detach().numpy(), dtype)
    g = r(*shape, seed=8, dtype=dtype)
    kt.backward(y, g)
    yt.backward(torch.from_numpy(g))
    close(kt.grad(xh), xt.grad.numpy(), dtype)
    got = kt.tensor(y).reshape(shape[0], -1)
    # whole samples: each one zero, or the input scaled by 1/(1-p)
    dropped = np.all(got == 0, axis=1)
    assert 0 < dropped.sum() < shape[0]
    close(got[~dropped], x.reshape(shape[0], -1)[~dropped] / (1 - p), dtype)
    # evaluation mode: the identity
    np.testing.assert_array_equal(kt.evaluate(q, x), x)
    # p = 0 (the default): the identity in training too
    np.testing.assert_array_equal(kt.tensor(kt.forward(kt.module("droppath"), x)), x)


# ------------------------------------------------------------------ embedding bags


I1 = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 7], dtype=np.int64)
O1 = np.array([0, 4, 7], dtype=np.int64)
I2 = np.array([[1, 2, 4], [4, 3, 9], [0, 0, 7], [6, 6, 6]], dtype=np.int64)
BAGS = [
    ("mean", ("embedbag", 10, 3), {}, [I1, O1]),
    ("sum-pos-mode", ("embedbag", 10, 3, "sum"), {"mode": "sum"}, [I1, O1]),
    ("max", ("embedbag", 10, 3, {"mode": "max"}), {"mode": "max"}, [I1, O1]),
    ("2d-sum", ("embedbag", 10, 3, None, 2.0, False, "sum"), {"mode": "sum"}, [I2]),
    ("2d-max-pad", ("embedbag", 10, 3, {"mode": "max", "padindex": 4}), {"mode": "max", "padding_idx": 4}, [I2]),
    ("mean-pad-neg", ("embedbag", 10, 3, {"padindex": -1}), {"padding_idx": 9}, [I1, O1]),
    ("scale", ("embedbag", 10, 3, {"scale": True}), {"scale_grad_by_freq": True}, [I1, O1]),
    ("lastoffset", ("embedbag", 10, 3, {"mode": "sum", "lastoffset": True}),
     {"mode": "sum", "include_last_offset": True}, [I1, np.array([0, 4, 7, 10], np.int64)]),
    ("maxnorm", ("embedbag", 10, 3, 0.9, 1.5), {"max_norm": 0.9, "norm_type": 1.5}, [I1, O1]),
    ("int32", ("embedbag", 10, 3, "sum"), {"mode": "sum"}, [I1.astype(np.int32), O1.astype(np.int32)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,kw,xs", [c[1:] for c in BAGS], ids=[c[0] for c in BAGS])
def test_embedbag(spec, kw, xs, dtype):
    tm = nn.EmbeddingBag(10, 3, **kw)
    q, tm = both(spec, tm, xs, dtype)
    # maxnorm renormalises the rows looked up in place: the weights stay equal
    close(kt.tensor(kt.parm(q, "weight")), tm.weight.detach().numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedbag_per_sample_weights(dtype):
    w = np.random.default_rng(3).random(I1.shape).astype(dtype)
    both(("embedbag", 10, 3, "sum"), nn.EmbeddingBag(10, 3, mode="sum"), [I1, O1, w], dtype)
    # 2D input: empty offsets stand for none
    w2 = np.random.default_rng(4).random(I2.shape).astype(dtype)
    q = kt.module(spec_of(("embedbag", 10, 3, "sum"), dtype))
    tm = nn.EmbeddingBag(10, 3, mode="sum").to(TORCH[dtype])
    kt.load_state_dict(q, tm.state_dict())
    got = kt.evaluate(q, I2, np.array([], np.int64), w2)
    ref = tm(torch.from_numpy(I2), None, torch.from_numpy(w2)).detach().numpy()
    close(got, ref, dtype)


def test_embedbag_weight_option_and_state_dict():
    tm = nn.EmbeddingBag(6, 4, mode="sum", padding_idx=2)
    # given weights (the original's first setting, then the freeze flag)
    w = tm.weight.detach().numpy().copy()
    q = kt.module(("embedbag", w, True, {"mode": "sum", "padindex": 2}))
    np.testing.assert_array_equal(kt.tensor(kt.parm(q, "weight")), w)
    assert kt.gradflag(q) == {"weight": False}
    q2 = kt.module(kt.state(q))
    same_state(kt.state(q2), kt.state(q))
    q = kt.module(("embedbag", {"weight": w, "mode": "sum", "padindex": 2}))
    assert kt.gradflag(q) == {"weight": True}
    x = np.array([[0, 2, 5], [1, 1, 3]], np.int64)
    close(kt.evaluate(q, x), tm(torch.from_numpy(x)).detach().numpy())
    # state_dict both ways
    q = kt.module(("embedbag", 6, 4, "sum", {"padindex": 2}))
    assert list(kt.state_dict(q)) == list(tm.state_dict()) == ["weight"]
    kt.load_state_dict(q, tm.state_dict())
    t2 = nn.EmbeddingBag(6, 4, mode="sum", padding_idx=2)
    t2.load_state_dict(kt.state_dict(q))
    close(t2(torch.from_numpy(x)).detach().numpy(), kt.evaluate(q, x))


# ------------------------------------------------------------------ position embeddings


class EmbedPos(nn.Module):
    """The original's EmbedPosition in torch: a learned 1 x rows x cols parameter."""

    def __init__(self, rows, cols):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, rows, cols))

    def forward(self, x):
        return self.pos[:, : x.size(-1)]


class EmbedSeq(nn.Module):
    """The original's EmbedSequence in torch: token embedding plus position embedding."""

    def __init__(self, rows, cols, length):
        super().__init__()
        self.tok = nn.Embedding(rows, cols)
        self.pos = EmbedPos(length, cols)

    def forward(self, x):
        return self.tok(x) + self.pos(x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedpos(dtype):
    q = kt.module(("embedpos", 8, 4))
    assert kt.parmnames(q) == ["pos"]
    p = kt.tensor(kt.parm(q, "pos"))
    assert p.shape == (1, 8, 4) and not p.any()
    x = np.array([[4, 0, 2, 1, 2], [3, 2, 5, 4, 7]], np.int64)
    both(("embedpos", 8, 4), EmbedPos(8, 4), [x], dtype)
    # only the sequence length matters: values and batch size do not
    q = kt.module(("embedpos", {"rows": 8, "cols": 4}))
    kt.parm(q, "pos", np.arange(32, dtype=np.float32).reshape(1, 8, 4))
    np.testing.assert_array_equal(kt.evaluate(q, np.zeros((100, 7), np.int64)), kt.evaluate(q, x[:1, :1].repeat(7, 1)))
    assert kt.evaluate(q, x).shape == (1, 5, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedseq(dtype):
    tm = EmbedSeq(10, 4, 6)
    x = np.array([[9, 2, 7, 0, 1, 9], [8, 8, 1, 7, 2, 4], [2, 7, 8, 5, 6, 4]], np.int64)
    q, _ = both(("embedseq", 10, 4, 6), tm, [x], dtype)
    assert kt.parmnames(q) == ["tok.weight", "pos.pos"] == [n for n, _ in tm.named_parameters()]
    assert kt.childnames(q) == ["tok", "pos"]
    # shorter sequences take the first rows of the position embedding
    both(("embedseq", 10, 4, 6), tm, [x[:, :4]], dtype)
    # ktorch -> torch
    t2 = EmbedSeq(10, 4, 6)
    t2.load_state_dict(kt.state_dict(q))
    close(t2(torch.from_numpy(x)).detach().numpy(), kt.evaluate(q, x))


# ------------------------------------------------------------------ state round trip


ROUND = [
    ("fmaxpool2d", 2, {"outsize": 4}),
    ("fmaxpool3d", [2, 1, 2], [], [0.5, 0.6, 0.7]),
    ("lppool1d", 2, 3, 2, True),
    ("lppool2d", {"p": 1.5, "size": [2, 3]}),
    ("fold", [4, 5], 2, {"stride": 1}),
    ("unfold", 2, 1, 1, 2),
    ("instancenorm1d", 3, {"affine": True, "track": True}),
    ("instancenorm2d", 3, 1e-3),
    ("instancenorm3d", 3, {"track": True, "momentum": 0.5}),
    ("localnorm", 3, 1e-3, 0.5, 2.0),
    ("crossmap2d", 3, {"k": 2}),
    ("droppath", 0.2),
    ("embedbag", 10, 3, "max", {"padindex": 1}),
    ("embedpos", 5, 3),
    ("embedseq", 10, 3, 5),
]
ROUND_X = {
    "fmaxpool2d": r(2, 3, 8, 8), "fmaxpool3d": r(1, 2, 6, 6, 6), "lppool1d": np.abs(r(2, 3, 9)),
    "lppool2d": np.abs(r(2, 3, 6, 7)), "fold": r(2, 8, 12), "unfold": r(2, 2, 5, 6),
    "instancenorm1d": r(2, 3, 5), "instancenorm2d": r(2, 3, 4, 4), "instancenorm3d": r(2, 3, 2, 3, 2),
    "localnorm": r(2, 5, 4), "crossmap2d": r(2, 5, 3, 3), "droppath": r(6, 3),
    "embedbag": I2, "embedpos": I2, "embedseq": I2,
}


@pytest.mark.parametrize("spec", ROUND, ids=[s[0] for s in ROUND])
def test_state_round_trip(spec):
    kind = spec[0]
    q = kt.module(spec)
    x = ROUND_X[kind]
    kt.forward(q, x)  # training: running statistics move where tracked
    kt.training(q, False)
    s = kt.state(q)
    q2 = kt.module(s)
    same_state(kt.state(q2), s)
    kt.seed(3)
    a = kt.evaluate(q, x)
    kt.seed(3)
    np.testing.assert_array_equal(kt.evaluate(q2, x), a)
    assert kind in kt.help("module")


# ------------------------------------------------------------------ bad options


K = kt.KtorchError
BAD = [
    ("fmaxpool2d-no-size", ("fmaxpool2d",), "fmaxpool2d: size not defined"),
    ("fmaxpool2d-no-out", ("fmaxpool2d", 2), "fmaxpool2d: no output size or ratio given"),
    ("fmaxpool2d-both", ("fmaxpool2d", 2, 4, 0.5), "fmaxpool2d: cannot give both an output size (outsize) and an output ratio (ratio)"),
    ("fmaxpool2d-ratio-range", ("fmaxpool2d", 2, {"ratio": 1.5}), "fmaxpool2d: ratio must be between 0 and 1"),
    ("fmaxpool3d-outsize-count", ("fmaxpool3d", 2, [3, 3]), "fmaxpool3d: outsize expects 1 or 3 values, given 2"),
    ("fmaxpool3d-size-type", ("fmaxpool3d", [2, "x", 2], 3), "fmaxpool3d: size expects an integer, given string"),
    ("fmaxpool2d-twice", ("fmaxpool2d", 2, {"size": 2, "outsize": 3}), "fmaxpool2d: option size given by position and by name"),
    ("fmaxpool2d-extra", ("fmaxpool2d", 2, 3, None, 1), "fmaxpool2d: expecting at most 3 positional setting(s), given 4"),
    ("lppool1d-no-p", ("lppool1d",), "lppool1d: p not defined"),
    ("lppool2d-p-range", ("lppool2d", -1, 2), "lppool2d: p must be positive, given -1"),
    ("lppool2d-no-size", ("lppool2d", 2), "lppool2d: size not defined"),
    ("lppool1d-size-count", ("lppool1d", 2, [2, 2]), "lppool1d: size expects 1 or 1 values, given 2"),
    ("lppool1d-ceiling-type", ("lppool1d", 2, 3, {"ceiling": 1}), "lppool1d: ceiling expects a boolean, given int"),
    ("lppool2d-stride", ("lppool2d", 2, 2, 0), "lppool2d: stride must be positive, given 0"),
    ("fold-no-size", ("fold", 4), "fold: size not defined"),
    ("fold-no-out", ("fold",), "fold: out not defined"),
    ("fold-out-count", ("fold", [4, 4, 4], 2), "fold: out expects 1 or 2 values, given 3"),
    ("unfold-dilate", ("unfold", 2, 0), "unfold: dilate must be positive, given 0"),
    ("unfold-pad", ("unfold", 2, {"pad": -1}), "unfold: pad must be non-negative, given -1"),
    ("unfold-unknown", ("unfold", 2, {"padding": 1}), "unfold: unrecognized option: padding"),
    ("instancenorm1d-no-in", ("instancenorm1d",), "instancenorm1d: in not defined"),
    ("instancenorm2d-in", ("instancenorm2d", 0), "instancenorm2d: in must be positive, given 0"),
    ("instancenorm2d-momentum", ("instancenorm2d", 3, {"momentum": 2}), "instancenorm2d: momentum must be in the range 0-1, given 2"),
    ("instancenorm3d-eps", ("instancenorm3d", 3, -1e-5), "instancenorm3d: eps must be non-negative"),
    ("instancenorm1d-track-type", ("instancenorm1d", 3, {"track": "yes"}), "instancenorm1d: track expects a boolean, given string"),
    ("localnorm-no-size", ("localnorm",), "localnorm: size not defined"),
    ("localnorm-size", ("localnorm", 0), "localnorm: size must be positive, given 0"),
    ("localnorm-alpha-type", ("localnorm", 2, {"alpha": "x"}), "localnorm: alpha expects a number, given string"),
    ("crossmap2d-k-float", ("crossmap2d", 3, {"k": 1.5}), "crossmap2d: k expects an integer, given float"),
    ("crossmap2d-extra", ("crossmap2d", 3, 1e-4, 0.75, 1, 2), "crossmap2d: expecting at most 4 positional setting(s), given 5"),
    ("droppath-range", ("droppath", 1.5), "droppath: p must be in the range 0-1, given 1.5"),
    ("droppath-type", ("droppath", True), "droppath: p expects a number, given bool"),
    ("droppath-unknown", ("droppath", {"inplace": True}), "droppath: unrecognized option: inplace"),
    ("embedbag-no-cols", ("embedbag", 10), "embedbag: cols not defined"),
    ("embedbag-mode", ("embedbag", 10, 3, {"mode": "min"}), "embedbag: mode: unrecognized value `min`"),
    ("embedbag-max-scale", ("embedbag", 10, 3, "max", {"scale": True}), "embedbag: max mode does not support scaling"),
    ("embedbag-max-sparse", ("embedbag", 10, 3, {"mode": "max", "sparse": True}), "embedbag: max mode does not support sparse"),
    ("embedbag-padindex", ("embedbag", 10, 3, {"padindex": 10}), "embedbag: padindex must be within the number of rows"),
    ("embedbag-maxnorm", ("embedbag", 10, 3, -1.0), "embedbag: maxnorm must be positive"),
    ("embedbag-weight-dims", ("embedbag", {"weight": np.zeros(4, np.float32)}), "embedbag: weight must be a 2-dim matrix"),
    ("embedbag-weight-rows", ("embedbag", 5, {"weight": np.zeros((4, 2), np.float32)}), "embedbag: rows = 5 but the weight has size [4, 2]"),
    ("embedbag-mode-twice", ("embedbag", 10, 3, "sum", {"mode": "max"}), "embedbag: option mode given by position and by name"),
    ("embedpos-no-cols", ("embedpos", 8), "embedpos: cols not defined"),
    ("embedpos-rows", ("embedpos", 0, 3), "embedpos: rows must be positive, given 0"),
    ("embedseq-no-length", ("embedseq", 10, 3), "embedseq: length not defined"),
    ("embedseq-extra", ("embedseq", 10, 3, 4, 5), "embedseq: expecting at most 3 positional setting(s), given 4"),
    ("embedseq-children", [("embedseq", 10, 3, 4), ("linear", 2, 3)], "embedseq: builds its own child modules"),
]


@pytest.mark.parametrize("spec,msg", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_options(spec, msg):
    with pytest.raises(K) as e:
        kt.module(spec)
    assert msg in str(e.value)


BAD_INPUT = [
    ("fmaxpool2d-dims", ("fmaxpool2d", 2, 3), [r(2, 8)], "fmaxpool2d: expecting 3D or 4D input, given 2D"),
    ("fmaxpool2d-too-large", ("fmaxpool2d", 3, 5), [r(1, 2, 6, 6)], "fmaxpool2d: output size [5, 5] with kernel size [3, 3] does not fit input size [6, 6]"),
    ("fmaxpool2d-samples", ("fmaxpool2d", 2, 3), [r(2, 3, 8, 8), r(2, 3, 3)], "fmaxpool2d: random samples must have size [2, 3, 2]"),
    ("fmaxpool3d-integer", ("fmaxpool3d", 2, 3), [np.zeros((1, 2, 6, 6, 6), np.int64)], "fmaxpool3d: expecting floating point input"),
    ("lppool2d-dims", ("lppool2d", 2, 2), [r(8, 8)], "lppool2d: expecting 3D or 4D input, given 2D"),
    ("fold-dims", ("fold", 4, 2), [r(2, 2, 8, 9)], "fold: expected 2D or 3D input, given 4D"),
    ("unfold-dims", ("unfold", 2), [r(8, 8)], "unfold: expected 3D or 4D input, given 2D"),
    ("instancenorm1d-dims", ("instancenorm1d", 3), [r(2, 3, 4, 5)], "instancenorm1d: expected 2D or 3D input, given 4D"),
    ("instancenorm2d-channels", ("instancenorm2d", 3, {"affine": True}), [r(2, 4, 3, 3)], "instancenorm2d: expected 3 channels in dimension 1"),
    ("instancenorm1d-spatial", ("instancenorm1d", 3), [r(2, 3, 1)], "instancenorm1d: expected more than 1 spatial element"),
    ("localnorm-dims", ("localnorm", 2), [r(3, 4)], "localnorm: expected 3D or higher input, given 2D"),
    ("crossmap2d-dims", ("crossmap2d", 2), [r(2, 3, 4)], "crossmap2d: expected 4D input, given 3D"),
    ("embedbag-no-offsets", ("embedbag", 10, 3), [I1], "embedbag: 1D input needs offsets"),
    ("embedbag-2d-offsets", ("embedbag", 10, 3), [I2, O1], "embedbag: 2D input is a batch of bags of equal length"),
    ("embedbag-float", ("embedbag", 10, 3), [r(2, 3)], "embedbag: expecting long or int indices"),
    ("embedbag-weights-size", ("embedbag", 10, 3, "sum"), [I1, O1, r(3)], "embedbag: per-sample weights must have the input's size"),
    ("embedbag-weights-mode", ("embedbag", 10, 3), [I1, O1, r(10)], "embedbag: per-sample weights are only supported for mode sum, not mean"),
    ("embedbag-3d", ("embedbag", 10, 3), [I2[None]], "embedbag: expecting 1D or 2D input, given 3D"),
    ("embedpos-long", ("embedpos", 4, 3), [I1], "embedpos: input sequence of length 10"),
    ("embedseq-long", ("embedseq", 10, 3, 2), [I2], "embedpos: input sequence of length 3"),
    ("droppath-inputs", ("droppath", 0.5), [r(3), r(3)], "droppath: forward expects 1 input tensor(s), given 2 tensor(s)"),
]


@pytest.mark.parametrize("spec,xs,msg", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_inputs(spec, xs, msg):
    q = kt.module(spec)
    with pytest.raises(K) as e:
        kt.forward(q, *xs)
    assert msg in str(e.value)
