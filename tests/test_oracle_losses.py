"""Oracle tests: every ktorch loss, each reduction, against torch.nn.functional."""

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


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# name, settings (before the reduction), x list, y list, torch function(reduction)
LOSSES = [
    ("ce", [], [LOGITS], [CLS], lambda r: F.cross_entropy(T(LOGITS), T(CLS), reduction=r)),
    ("ce-weight", [W], [LOGITS], [CLS], lambda r: F.cross_entropy(T(LOGITS), T(CLS), weight=T(W), reduction=r)),
    ("ce-ignore", [None, 1], [LOGITS], [CLS_IGN],
     lambda r: F.cross_entropy(T(LOGITS), T(CLS_IGN), ignore_index=1, reduction=r)),
    ("ce-smooth", [None, -100, 0.2], [LOGITS], [CLS],
     lambda r: F.cross_entropy(T(LOGITS), T(CLS), label_smoothing=0.2, reduction=r)),
    ("ce-all", [W, 3, 0.1], [LOGITS], [CLS],
     lambda r: F.cross_entropy(T(LOGITS), T(CLS), weight=T(W), ignore_index=3, label_smoothing=0.1, reduction=r)),
    ("nll", [], [LOGP], [CLS], lambda r: F.nll_loss(T(LOGP), T(CLS), reduction=r)),
    ("nll-weight", [W, 0], [LOGP], [CLS], lambda r: F.nll_loss(T(LOGP), T(CLS), weight=T(W), ignore_index=0, reduction=r)),
    ("bce", [], [PROB], [BIN], lambda r: F.binary_cross_entropy(T(PROB), T(BIN), reduction=r)),
    ("bce-weight", [], [PROB], [BIN, W], lambda r: F.binary_cross_entropy(T(PROB), T(BIN), weight=T(W), reduction=r)),
    ("bcelogits", [], [X], [BIN], lambda r: F.binary_cross_entropy_with_logits(T(X), T(BIN), reduction=r)),
    ("bcelogits-pos", [W], [X], [BIN],
     lambda r: F.binary_cross_entropy_with_logits(T(X), T(BIN), pos_weight=T(W), reduction=r)),
    ("bcelogits-wt", [W], [X], [BIN, W[::-1].copy()],
     lambda r: F.binary_cross_entropy_with_logits(T(X), T(BIN), weight=T(W[::-1]), pos_weight=T(W), reduction=r)),
    ("multisoft", [], [X], [BIN], lambda r: F.multilabel_soft_margin_loss(T(X), T(BIN), reduction=r)),
    ("multisoft-weight", [W], [X], [BIN], lambda r: F.multilabel_soft_margin_loss(T(X), T(BIN), weight=T(W), reduction=r)),
    ("mse", [], [X], [Y], lambda r: F.mse_loss(T(X), T(Y), reduction=r)),
    ("l1", [], [X], [Y], lambda r: F.l1_loss(T(X), T(Y), reduction=r)),
    ("kl", [], [LOGP], [Q], lambda r: F.kl_div(T(LOGP), T(Q), reduction=r)),
    ("kl-log", [True], [LOGP], [np.log(Q)], lambda r: F.kl_div(T(LOGP), T(np.log(Q)), reduction=r, log_target=True)),
    ("multilabel", [], [X], [ML], lambda r: F.multilabel_margin_loss(T(X), T(ML), reduction=r)),
    ("softmargin", [], [X], [PM], lambda r: F.soft_margin_loss(T(X), T(PM), reduction=r)),
    ("smoothl1", [], [X], [Y], lambda r: F.smooth_l1_loss(T(X), T(Y), reduction=r)),
    ("smoothl1-beta", [0.5], [X], [Y], lambda r: F.smooth_l1_loss(T(X), T(Y), beta=0.5, reduction=r)),
    ("huber", [], [X * 2], [Y], lambda r: F.huber_loss(T(X * 2), T(Y), reduction=r)),
    ("huber-delta", [0.3], [X], [Y], lambda r: F.huber_loss(T(X), T(Y), delta=0.3, reduction=r)),
    ("hinge", [], [X], [PM], lambda r: F.hinge_embedding_loss(T(X), T(PM), reduction=r)),
    ("hinge-margin", [0.5], [X], [PM], lambda r: F.hinge_embedding_loss(T(X), T(PM), margin=0.5, reduction=r)),
    ("cosineloss", [], [X1, X2], [T1], lambda r: F.cosine_embedding_loss(T(X1), T(X2), T(T1), reduction=r)),
    ("cosineloss-margin", [0.2], [X1], [X2, T1],
     lambda r: F.cosine_embedding_loss(T(X1), T(X2), T(T1), margin=0.2, reduction=r)),
    ("margin", [], [V1, V2], [T1], lambda r: F.margin_ranking_loss(T(V1), T(V2), T(T1), reduction=r)),
    ("margin-m", [0.3], [V1, V2], [T1], lambda r: F.margin_ranking_loss(T(V1), T(V2), T(T1), margin=0.3, reduction=r)),
    ("multimargin", [], [X], [CLS], lambda r: F.multi_margin_loss(T(X), T(CLS), reduction=r)),
    ("multimargin-all", [2, 0.5, W], [X], [CLS],
     lambda r: F.multi_margin_loss(T(X), T(CLS), p=2, margin=0.5, weight=T(W), reduction=r)),
    ("triplet", [], [X1, X2, X3], [], lambda r: F.triplet_margin_loss(T(X1), T(X2), T(X3), reduction=r)),
    ("triplet-split", [0.5, 1, 1e-6, True], [X1], [X2, X3],
     lambda r: F.triplet_margin_loss(T(X1), T(X2), T(X3), margin=0.5, p=1, swap=True, reduction=r)),
    ("poissonloss", [], [X], [POIS], lambda r: F.poisson_nll_loss(T(X), T(POIS), reduction=r)),
    ("poissonloss-full", [False, True], [PROB + 0.1], [POIS],
     lambda r: F.poisson_nll_loss(T(PROB + 0.1), T(POIS), log_input=False, full=True, reduction=r)),
    ("ctc", [], [CTC_LP], [CTC_TG, CTC_IL, CTC_TL],
     lambda r: F.ctc_loss(T(CTC_LP), T(CTC_TG), T(CTC_IL), T(CTC_TL), reduction=r)),
]


def kt_loss(name, settings, xs, ys, red, functional):
    base = name.split("-")[0]
    args = list(settings) + [red]
    if functional:
        fn = getattr(kt, base)
        h = fn(xs[0] if len(xs) == 1 else kt.vector(*xs), ys[0] if len(ys) == 1 else kt.vector(*ys), *args)
    else:
        lo = kt.loss(base, *args)
        x = xs[0] if len(xs) == 1 else kt.vector(*xs)
        if not ys:
            y = None
        y = ys[0] if len(ys) == 1 else (kt.vector(*ys) if ys else None)
        h = kt.loss(lo, x, y)
    return kt.tensor(h)


@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("functional", [False, True], ids=["loss", "fn"])
@pytest.mark.parametrize("name,settings,xs,ys,ref", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss(name, settings, xs, ys, ref, red, functional):
    if not ys:  # triplet with all 3 tensors as outputs: give the last as target
        xs, ys = xs[:-1], xs[-1:]
    got = kt_loss(name, settings, xs, ys, red, functional)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's warning about reduction="mean"
        exp = ref(red).numpy()
    assert np.shape(got) == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


def test_loss_default_reduction_is_mean():
    got = kt.tensor(kt.loss(kt.loss("mse"), X, Y))
    np.testing.assert_allclose(got, F.mse_loss(T(X), T(Y)).numpy(), rtol=RTOL)
    got = kt.tensor(kt.ce(LOGITS, CLS))
    np.testing.assert_allclose(got, F.cross_entropy(T(LOGITS), T(CLS)).numpy(), rtol=RTOL)


def test_loss_reduction_keyword():
    got = kt.tensor(kt.loss(kt.loss("l1", {"reduce": "sum"}), X, Y))
    np.testing.assert_allclose(got, F.l1_loss(T(X), T(Y), reduction="sum").numpy(), rtol=RTOL)


def test_kl_batchmean():
    got = kt.tensor(kt.kl(LOGP, Q, "batchmean"))
    np.testing.assert_allclose(got, F.kl_div(T(LOGP), T(Q), reduction="batchmean").numpy(), rtol=RTOL, atol=ATOL)


def test_ctc_zeroinf():
    # input length 2 cannot emit a target of length 4: infinite loss, zeroed
    il = np.array([2, 8], dtype=np.int64)
    got = kt.tensor(kt.ctc(CTC_LP, kt.vector(CTC_TG, il, CTC_TL), 0, True, "none"))
    exp = F.ctc_loss(T(CTC_LP), T(CTC_TG), T(il), T(CTC_TL), reduction="none", zero_infinity=True).numpy()
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)
    assert got[0] == 0


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("p,keep", [(2, False), (1, True), (3, False)])
def test_pairwise(functional, p, keep):
    exp = F.pairwise_distance(T(X1), T(X2), p=p, keepdim=keep).numpy()
    if functional:
        got = kt.tensor(kt.pairwise(X1, X2, p, 1e-6, keep))
    else:
        got = kt.tensor(kt.loss(kt.loss("pairwise", p, 1e-6, keep), X1, X2))
    assert got.shape == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dim", [1, 0])
def test_similar(functional, dim):
    exp = F.cosine_similarity(T(X1), T(X2), dim=dim).numpy()
    if functional:
        got = kt.tensor(kt.similar(X1, X2, dim))
    else:
        got = kt.tensor(kt.loss(kt.loss("similar", dim), X1, X2))
    assert got.shape == exp.shape
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL)


def test_loss_gradient_matches_torch():
    x = kt.tensor(LOGITS, "grad")
    y = kt.ce(x, CLS, W, -100, 0.1)
    kt.backward(y)
    xt = T(LOGITS.copy()).requires_grad_()
    F.cross_entropy(xt, T(CLS), weight=T(W), label_smoothing=0.1).backward()
    np.testing.assert_allclose(kt.grad(x), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
