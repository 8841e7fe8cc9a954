"""Oracle tests: every ktorch loss, each reduction, against torch.nn.functional.

Each comparison runs on every device (the `device` fixture: the CPU, and CUDA where there is
one): torch's inputs on that device; ktorch's given as numpy on the CPU (as before) and as
ktorch tensors on the device otherwise, a loss object moved there with `kt.to`, the settings'
weights left as numpy (a loss moves them to its output's device)."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ["none", "mean", "sum"]


def rng(seed):
    return np.random.default_rng(seed)


def f32(a):
    return np.asarray(a, dtype=np.float32)


g = rng(0)
N, C = 6, 4
LOGITS = f32(g.standard_normal((N, C)))
CLS = np.array([0, 3, 1, 2, 3, 1], dtype=np.int64)
CLS_IGN = np.array([0, 3, 1, 2, 3, 1], dtype=np.int64)
CLS_IGN[2] = 1  # ignored below via ignore=1
W = f32([0.5, 1.0, 2.0, 1.5])
PROB = f32(1 / (1 + np.exp(-g.standard_normal((N, C)))))
BIN = f32(g.integers(0, 2, (N, C)))
PM = f32(np.where(g.integers(0, 2, (N, C)) > 0, 1.0, -1.0))
X = f32(g.standard_normal((N, C)))
Y = f32(g.standard_normal((N, C)))
LOGP = f32(np.log(np.exp(X) / np.exp(X).sum(1, keepdims=True)))
Q = f32(np.exp(Y) / np.exp(Y).sum(1, keepdims=True))
ML = np.array([[3, 0, -1, 1], [0, 1, 2, 3], [1, -1, 0, 0], [2, 1, -1, 0], [0, -1, 1, 1], [3, 2, 1, -1]], dtype=np.int64)
X1 = f32(g.standard_normal((N, 5)))
X2 = f32(g.standard_normal((N, 5)))
X3 = f32(g.standard_normal((N, 5)))
T1 = f32(np.where(g.integers(0, 2, N) > 0, 1.0, -1.0))
V1 = f32(g.standard_normal(N))
V2 = f32(g.standard_normal(N))
POIS = f32(g.poisson(2.0, (N, C)))

# ctc: T=10 time steps, batch 2, 5 classes
CTC_LP = f32(np.log(np.exp(s := g.standard_normal((10, 2, 5))) / np.exp(s).sum(2, keepdims=True)))
CTC_TG = np.array([[1, 2, 2, 3], [4, 1, 3, 0]], dtype=np.int64)
CTC_IL = np.array([10, 8], dtype=np.int64)
CTC_TL = np.array([4, 3], dtype=np.int64)


def T(a, d="cpu"):
    return torch.from_numpy(np.ascontiguousarray(a)).to(d)


def on(a, device):
    """A numpy input for ktorch on `device`: the array itself on the CPU, else a ktorch tensor
    there."""
    return a if device == "cpu" else kt.tensor(np.ascontiguousarray(a), device)


# name, settings (before the reduction), x list, y list, torch function(reduction)
LOSSES = [
    ("ce", [], [LOGITS], [CLS], lambda r, d: F.cross_entropy(T(LOGITS, d), T(CLS, d), reduction=r)),
    ("ce-weight", [W], [LOGITS], [CLS], lambda r, d: F.cross_entropy(T(LOGITS, d), T(CLS, d), weight=T(W, d), reduction=r)),
    ("ce-ignore", [None, 1], [LOGITS], [CLS_IGN],
     lambda r, d: F.cross_entropy(T(LOGITS, d), T(CLS_IGN, d), ignore_index=1, reduction=r)),
    ("ce-smooth", [None, -100, 0.2], [LOGITS], [CLS],
     lambda r, d: F.cross_entropy(T(LOGITS, d), T(CLS, d), label_smoothing=0.2, reduction=r)),
    ("ce-all", [W, 3, 0.1], [LOGITS], [CLS],
     lambda r, d: F.cross_entropy(T(LOGITS, d), T(CLS, d), weight=T(W, d), ignore_index=3, label_smoothing=0.1, reduction=r)),
    ("nll", [], [LOGP], [CLS], lambda r, d: F.nll_loss(T(LOGP, d), T(CLS, d), reduction=r)),
    ("nll-weight", [W, 0], [LOGP], [CLS], lambda r, d: F.nll_loss(T(LOGP, d), T(CLS, d), weight=T(W, d), ignore_index=0, reduction=r)),
    ("bce", [], [PROB], [BIN], lambda r, d: F.binary_cross_entropy(T(PROB, d), T(BIN, d), reduction=r)),
    ("bce-weight", [], [PROB], [BIN, W], lambda r, d: F.binary_cross_entropy(T(PROB, d), T(BIN, d), weight=T(W, d), reduction=r)),
    ("bcelogits", [], [X], [BIN], lambda r, d: F.binary_cross_entropy_with_logits(T(X, d), T(BIN, d), reduction=r)),
    ("bcelogits-pos", [W], [X], [BIN],
     lambda r, d: F.binary_cross_entropy_with_logits(T(X, d), T(BIN, d), pos_weight=T(W, d), reduction=r)),
    ("bcelogits-wt", [W], [X], [BIN, W[::-1].copy()],
     lambda r, d: F.binary_cross_entropy_with_logits(T(X, d), T(BIN, d), weight=T(W[::-1], d), pos_weight=T(W, d), reduction=r)),
    ("multisoft", [], [X], [BIN], lambda r, d: F.multilabel_soft_margin_loss(T(X, d), T(BIN, d), reduction=r)),
    ("multisoft-weight", [W], [X], [BIN], lambda r, d: F.multilabel_soft_margin_loss(T(X, d), T(BIN, d), weight=T(W, d), reduction=r)),
    ("mse", [], [X], [Y], lambda r, d: F.mse_loss(T(X, d), T(Y, d), reduction=r)),
    ("l1", [], [X], [Y], lambda r, d: F.l1_loss(T(X, d), T(Y, d), reduction=r)),
    ("kl", [], [LOGP], [Q], lambda r, d: F.kl_div(T(LOGP, d), T(Q, d), reduction=r)),
    ("kl-log", [True], [LOGP], [np.log(Q)], lambda r, d: F.kl_div(T(LOGP, d), T(np.log(Q), d), reduction=r, log_target=True)),
    ("multilabel", [], [X], [ML], lambda r, d: F.multilabel_margin_loss(T(X, d), T(ML, d), reduction=r)),
    ("softmargin", [], [X], [PM], lambda r, d: F.soft_margin_loss(T(X, d), T(PM, d), reduction=r)),
    ("smoothl1", [], [X], [Y], lambda r, d: F.smooth_l1_loss(T(X, d), T(Y, d), reduction=r)),
    ("smoothl1-beta", [0.5], [X], [Y], lambda r, d: F.smooth_l1_loss(T(X, d), T(Y, d), beta=0.5, reduction=r)),
    ("huber", [], [X * 2], [Y], lambda r, d: F.huber_loss(T(X * 2, d), T(Y, d), reduction=r)),
    ("huber-delta", [0.3], [X], [Y], lambda r, d: F.huber_loss(T(X, d), T(Y, d), delta=0.3, reduction=r)),
    ("hinge", [], [X], [PM], lambda r, d: F.hinge_embedding_loss(T(X, d), T(PM, d), reduction=r)),
    ("hinge-margin", [0.5], [X], [PM], lambda r, d: F.hinge_embedding_loss(T(X, d), T(PM, d), margin=0.5, reduction=r)),
    ("cosineloss", [], [X1, X2], [T1], lambda r, d: F.cosine_embedding_loss(T(X1, d), T(X2, d), T(T1, d), reduction=r)),
    ("cosineloss-margin", [0.2], [X1], [X2, T1],
     lambda r, d: F.cosine_embedding_loss(T(X1, d), T(X2, d), T(T1, d), margin=0.2, reduction=r)),
    ("margin", [], [V1, V2], [T1], lambda r, d: F.margin_ranking_loss(T(V1, d), T(V2, d), T(T1, d), reduction=r)),
    ("margin-m", [0.3], [V1, V2], [T1], lambda r, d: F.margin_ranking_loss(T(V1, d), T(V2, d), T(T1, d), margin=0.3, reduction=r)),
    ("multimargin", [], [X], [CLS], lambda r, d: F.multi_margin_loss(T(X, d), T(CLS, d), reduction=r)),
    ("multimargin-all", [2, 0.5, W], [X], [CLS],
     lambda r, d: F.multi_margin_loss(T(X, d), T(CLS, d), p=2, margin=0.5, weight=T(W, d), reduction=r)),
    ("triplet", [], [X1, X2, X3], [], lambda r, d: F.triplet_margin_loss(T(X1, d), T(X2, d), T(X3, d), reduction=r)),
    ("triplet-split", [0.5, 1, 1e-6, True], [X1], [X2, X3],
     lambda r, d: F.triplet_margin_loss(T(X1, d), T(X2, d), T(X3, d), margin=0.5, p=1, swap=True, reduction=r)),
    ("poissonloss", [], [X], [POIS], lambda r, d: F.poisson_nll_loss(T(X, d), T(POIS, d), reduction=r)),
    ("poissonloss-full", [False, True], [PROB + 0.1], [POIS],
     lambda r, d: F.poisson_nll_loss(T(PROB + 0.1, d), T(POIS, d), log_input=False, full=True, reduction=r)),
    ("ctc", [], [CTC_LP], [CTC_TG, CTC_IL, CTC_TL],
     lambda r, d: F.ctc_loss(T(CTC_LP, d), T(CTC_TG, d), T(CTC_IL, d), T(CTC_TL, d), reduction=r)),
]


def kt_loss(name, settings, xs, ys, red, functional, device="cpu"):
    base = name.split("-")[0]
    args = list(settings) + [red]
    xs, ys = [on(x, device) for x in xs], [on(y, device) for y in ys]
    if functional:
        fn = getattr(kt, base)
        h = fn(xs[0] if len(xs) == 1 else kt.vector(*xs), ys[0] if len(ys) == 1 else kt.vector(*ys), *args)
    else:
        lo = kt.loss(base, *args)
        kt.to(lo, device)
        x = xs[0] if len(xs) == 1 else kt.vector(*xs)
        if not ys:
            y = None
        y = ys[0] if len(ys) == 1 else (kt.vector(*ys) if ys else None)
        h = kt.loss(lo, x, y)
    assert kt.device(h) == device
    return kt.tensor(h)


@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("functional", [False, True], ids=["loss", "fn"])
@pytest.mark.parametrize("name,settings,xs,ys,ref", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss(name, settings, xs, ys, ref, red, functional, device):
    if not ys:  # triplet with all 3 tensors as outputs: give the last as target
        xs, ys = xs[:-1], xs[-1:]
    got = kt_loss(name, settings, xs, ys, red, functional, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's warning about reduction="mean"
        exp = ref(red, device).cpu().numpy()
    assert np.shape(got) == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


def test_loss_default_reduction_is_mean(device):
    lo = kt.loss("mse")
    kt.to(lo, device)
    got = kt.tensor(kt.loss(lo, on(X, device), on(Y, device)))
    np.testing.assert_allclose(got, F.mse_loss(T(X, device), T(Y, device)).cpu().numpy(), rtol=RTOL)
    got = kt.tensor(kt.ce(on(LOGITS, device), on(CLS, device)))
    np.testing.assert_allclose(got, F.cross_entropy(T(LOGITS, device), T(CLS, device)).cpu().numpy(), rtol=RTOL)


def test_loss_reduction_keyword(device):
    lo = kt.loss("l1", {"reduce": "sum"})
    kt.to(lo, device)
    got = kt.tensor(kt.loss(lo, on(X, device), on(Y, device)))
    np.testing.assert_allclose(got, F.l1_loss(T(X, device), T(Y, device), reduction="sum").cpu().numpy(), rtol=RTOL)


def test_kl_batchmean(device):
    got = kt.tensor(kt.kl(on(LOGP, device), on(Q, device), "batchmean"))
    exp = F.kl_div(T(LOGP, device), T(Q, device), reduction="batchmean").cpu().numpy()
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


def test_ctc_zeroinf(device):
    # input length 2 cannot emit a target of length 4: infinite loss, zeroed
    il = np.array([2, 8], dtype=np.int64)
    ys = kt.vector(*[on(a, device) for a in (CTC_TG, il, CTC_TL)])
    got = kt.tensor(kt.ctc(on(CTC_LP, device), ys, 0, True, "none"))
    exp = F.ctc_loss(T(CTC_LP, device), T(CTC_TG, device), T(il, device), T(CTC_TL, device), reduction="none",
                     zero_infinity=True).cpu().numpy()
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)
    assert got[0] == 0


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("p,keep", [(2, False), (1, True), (3, False)])
def test_pairwise(functional, p, keep, device):
    exp = F.pairwise_distance(T(X1, device), T(X2, device), p=p, keepdim=keep).cpu().numpy()
    x1, x2 = on(X1, device), on(X2, device)
    if functional:
        got = kt.tensor(kt.pairwise(x1, x2, p, 1e-6, keep))
    else:
        lo = kt.loss("pairwise", p, 1e-6, keep)
        kt.to(lo, device)
        got = kt.tensor(kt.loss(lo, x1, x2))
    assert got.shape == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dim", [1, 0])
def test_similar(functional, dim, device):
    exp = F.cosine_similarity(T(X1, device), T(X2, device), dim=dim).cpu().numpy()
    x1, x2 = on(X1, device), on(X2, device)
    if functional:
        got = kt.tensor(kt.similar(x1, x2, dim))
    else:
        lo = kt.loss("similar", dim)
        kt.to(lo, device)
        got = kt.tensor(kt.loss(lo, x1, x2))
    assert got.shape == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


def test_loss_gradient_matches_torch(device):
    x = kt.tensor(LOGITS, "grad") if device == "cpu" else kt.tensor(LOGITS, device, "grad")
    y = kt.ce(x, on(CLS, device), W, -100, 0.1)
    kt.backward(y)
    xt = T(LOGITS.copy(), device).requires_grad_()
    F.cross_entropy(xt, T(CLS, device), weight=T(W, device), label_smoothing=0.1).backward()
    np.testing.assert_allclose(kt.grad(x), xt.grad.cpu().numpy(), rtol=RTOL, atol=ATOL)
