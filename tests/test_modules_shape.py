"""Padding, shape, function and transform modules against torch.

Every type: outputs (training-mode forward and evaluate) and input gradients against the
torch counterpart in float32 and float64, several option combinations each; bad options and
inputs raise kt.KtorchError naming the module type; each type's state builds an equal module.
randomcrop and randomflip draw their own offsets and flips: their outputs are checked as
windows of the padded input and as images flipped or not.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ktorch as kt

pytestmark = pytest.mark.usefixtures("one_thread")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def r(*shape, seed=0):
    g = np.random.default_rng(seed + 7 * len(shape) + sum(shape))
    return g.standard_normal(shape)


def ix(*xs):
    return np.array(xs, dtype=np.int64)


# (id, spec, torch function of the inputs, inputs as float64 arrays)
CASES = [
    # padding
    ("pad", ("pad", [1, 1, 2, 2]), lambda x: F.pad(x, [1, 1, 2, 2]), (r(3, 4),)),
    ("pad-value-by-position", ("pad", [1, 2], 3.5), lambda x: F.pad(x, [1, 2], value=3.5), (r(2, 3, 4),)),
    ("pad-crop", ("pad", [-1, 1, 0, -1]), lambda x: F.pad(x, [-1, 1, 0, -1]), (r(3, 4),)),
    ("pad-named", ("pad", {"pad": [0, 1, 1, 0, 1, 1], "value": -1.0}),
     lambda x: F.pad(x, [0, 1, 1, 0, 1, 1], value=-1.0), (r(2, 3, 4),)),
    ("pad-replicate", ("pad", [1, 1, 2, 2], "replicate"),
     lambda x: F.pad(x, [1, 1, 2, 2], mode="replicate"), (r(1, 2, 3, 4),)),
    ("pad-reflect", ("pad", [2, 1], "reflect"), lambda x: F.pad(x, [2, 1], mode="reflect"), (r(2, 3, 5),)),
    ("pad-circular", ("pad", [1, 2, 1, 0], {"mode": "circular"}),
     lambda x: F.pad(x, [1, 2, 1, 0], mode="circular"), (r(1, 2, 4, 5),)),
    ("pad1d", ("pad1d", [1, 2]), nn.ConstantPad1d((1, 2), 0.0), (r(2, 3, 5),)),
    ("pad1d-one-value", ("pad1d", 2, 1.5), nn.ConstantPad1d(2, 1.5), (r(3, 5),)),
    ("pad2d", ("pad2d", [1, 1, 2, 0], 0.5), nn.ConstantPad2d((1, 1, 2, 0), 0.5), (r(2, 3, 4, 5),)),
    ("pad3d", ("pad3d", [3, 3, 6, 6, 0, 1], 3.5), nn.ConstantPad3d((3, 3, 6, 6, 0, 1), 3.5), (r(1, 2, 3, 4, 5),)),
    ("reflect1d", ("reflect1d", [1, 2]), nn.ReflectionPad1d((1, 2)), (r(2, 3, 5),)),
    ("reflect1d-unbatched", ("reflect1d", 3), nn.ReflectionPad1d(3), (r(3, 5),)),
    ("reflect2d", ("reflect2d", [1, 1, 2, 0]), nn.ReflectionPad2d((1, 1, 2, 0)), (r(2, 3, 4, 5),)),
    ("reflect2d-one-value", ("reflect2d", {"pad": 2}), nn.ReflectionPad2d(2), (r(3, 4, 5),)),
    ("replicate1d", ("replicate1d", [2, 0]), nn.ReplicationPad1d((2, 0)), (r(2, 3, 4),)),
    ("replicate2d", ("replicate2d", [1, 1, 2, 0]), nn.ReplicationPad2d((1, 1, 2, 0)), (r(2, 3, 4, 5),)),
    ("replicate3d", ("replicate3d", [3, 3, 6, 6, 1, 1]), nn.ReplicationPad3d((3, 3, 6, 6, 1, 1)),
     (r(1, 2, 3, 4, 5),)),
    ("replicate3d-one-value", ("replicate3d", 1), nn.ReplicationPad3d(1), (r(2, 3, 4, 5),)),
    ("zeropad2d", ("zeropad2d", [1, 1, 2, 0]), nn.ZeroPad2d((1, 1, 2, 0)), (r(2, 3, 4, 5),)),
    ("zeropad2d-one-value", ("zeropad2d", 2), nn.ZeroPad2d(2), (r(4, 5),)),
    # shape
    ("cat", "cat", lambda a, b: torch.cat([a, b]), (r(2, 3), r(1, 3))),
    ("cat-dim", ("cat", 1), lambda a, b: torch.cat([a, b], 1), (r(2, 3), r(2, 4))),
    ("cat-last", ("cat", {"dim": -1}), lambda a, b: torch.cat([a, b], -1), (r(2, 3, 4), r(2, 3, 2))),
    ("expand", ("expand", [-1, 3]), lambda x: x.expand(-1, 3), (r(4, 1),)),
    ("expand-new-dim", ("expand", [2, 4, 3]), lambda x: x.expand(2, 4, 3), (r(4, 1),)),
    ("indexselect", ("indexselect", 0, [0, 2]), lambda x: torch.index_select(x, 0, torch.tensor([0, 2])),
     (r(3, 4),)),
    ("indexselect-scalar", ("indexselect", 1, 2), lambda x: torch.index_select(x, 1, torch.tensor(2)), (r(3, 4),)),
    ("indexselect-array", ("indexselect", {"dim": -1, "ind": ix(3, 0, 0)}),
     lambda x: torch.index_select(x, -1, torch.tensor([3, 0, 0])), (r(2, 3, 4),)),
    ("permute", ("permute", [0, 2, 3, 1]), lambda x: x.permute(0, 2, 3, 1), (r(2, 3, 4, 5),)),
    ("permute-negative", ("permute", [-1, 0, 1]), lambda x: x.permute(-1, 0, 1), (r(2, 3, 4),)),
    ("select", ("select", 1, -1), lambda x: x.select(1, -1), (r(3, 4),)),
    ("select-named", ("select", {"dim": 0, "ind": 1}), lambda x: x.select(0, 1), (r(3, 4, 2),)),
    ("squeeze", "squeeze", lambda x: x.squeeze(), (r(1, 3, 1),)),
    ("squeeze-dim", ("squeeze", 0), lambda x: x.squeeze(0), (r(1, 3, 1),)),
    ("squeeze-dim-inplace", ("squeeze", -1, True), lambda x: x.squeeze(-1), (r(2, 3, 1),)),
    ("squeeze-inplace", ("squeeze", True), lambda x: x.squeeze(), (r(2, 1, 3),)),
    ("unsqueeze", ("unsqueeze", 0), lambda x: x.unsqueeze(0), (r(3),)),
    ("unsqueeze-last", ("unsqueeze", -1), lambda x: x.unsqueeze(-1), (r(2, 3),)),
    ("unsqueeze-named", ("unsqueeze", {"dim": 1, "inplace": True}), lambda x: x.unsqueeze(1), (r(2, 3),)),
    ("transpose", "transpose", lambda x: x.transpose(-2, -1), (r(2, 3),)),
    ("transpose-dims", ("transpose", 0, 2), lambda x: x.transpose(0, 2), (r(1, 2, 3),)),
    # arithmetic and functions
    ("matmul", "matmul", torch.matmul, (r(2, 3), r(3, 4))),
    ("matmul-batched", "matmul", torch.matmul, (r(3, 2, 3), r(3, 4))),
    ("matmul-vector", "matmul", torch.matmul, (r(3), r(3, 2))),
    ("mul", "mul", torch.mul, (r(4, 3), r(1, 3))),
    ("mul-outer", "mul", torch.mul, (r(4, 1), r(1, 4))),
    ("normalize", "normalize", F.normalize, (r(4, 3),)),
    ("normalize-p1-dim0", ("normalize", 1.0, 0), lambda x: F.normalize(x, 1.0, 0), (r(4, 3),)),
    ("normalize-named", ("normalize", {"p": 3.0, "dim": -1, "eps": 1e-3}),
     lambda x: F.normalize(x, 3.0, -1, 1e-3), (r(2, 3, 4),)),
    ("interpolate-nearest", ("interpolate", 4), lambda x: F.interpolate(x, 4), (r(1, 2, 3),)),
    ("interpolate-linear-scale", ("interpolate", None, 2.5, "linear"),
     lambda x: F.interpolate(x, scale_factor=2.5, mode="linear"), (r(2, 3, 4),)),
    ("interpolate-bilinear-align", ("interpolate", [5, 7], None, "bilinear", True),
     lambda x: F.interpolate(x, (5, 7), mode="bilinear", align_corners=True), (r(1, 2, 3, 4),)),
    ("interpolate-bicubic", ("interpolate", {"scale": [1.5, 2.0], "mode": "bicubic"}),
     lambda x: F.interpolate(x, scale_factor=(1.5, 2.0), mode="bicubic"), (r(1, 2, 3, 4),)),
    ("interpolate-trilinear", ("interpolate", None, 2.0, "trilinear", False),
     lambda x: F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False), (r(1, 1, 2, 3, 2),)),
    ("interpolate-area", ("interpolate", 3, None, "area"), lambda x: F.interpolate(x, 3, mode="area"),
     (r(1, 2, 7, 5),)),
    ("interpolate-area-scale", ("interpolate", None, 0.5, "area"),
     lambda x: F.interpolate(x, scale_factor=0.5, mode="area"), (r(1, 2, 8, 6),)),
    ("interpolate-nearestexact", ("interpolate", None, 1.7, "nearestexact"),
     lambda x: F.interpolate(x, scale_factor=1.7, mode="nearest-exact"), (r(1, 2, 5, 4),)),
    ("interpolate-rescale", ("interpolate", None, 1.7, "bilinear", None, True),
     lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (r(1, 2, 5, 4),)),
    ("upsample", ("upsample", None, 2.0), nn.Upsample(scale_factor=2.0), (r(1, 2, 3, 4),)),
    ("upsample-bilinear", ("upsample", [4, 6], None, "bilinear", True),
     nn.Upsample(size=(4, 6), mode="bilinear", align_corners=True), (r(1, 2, 3, 4),)),
    ("upsample-linear", ("upsample", 5, None, "linear"), nn.Upsample(5, mode="linear"), (r(2, 3, 4),)),
    ("upsample-trilinear", ("upsample", {"scale": 1.5, "mode": "trilinear"}),
     nn.Upsample(scale_factor=1.5, mode="trilinear"), (r(1, 1, 2, 3, 4),)),
    ("upsample-bicubic", ("upsample", None, [2.0, 3.0], "bicubic", False),
     nn.Upsample(scale_factor=(2.0, 3.0), mode="bicubic", align_corners=False), (r(1, 2, 3, 3),)),
    ("pairwise", "pairwise", nn.PairwiseDistance(), (r(4, 5), r(4, 5, seed=1))),
    ("pairwise-options", ("pairwise", 1.0, 1e-3, True), nn.PairwiseDistance(1.0, 1e-3, True),
     (r(4, 5), r(4, 5, seed=1))),
    ("pairwise-broadcast", ("pairwise", {"p": 3.0}), nn.PairwiseDistance(3.0), (r(4, 5), r(1, 5, seed=1))),
    ("similar", "similar", nn.CosineSimilarity(), (r(4, 5), r(4, 5, seed=1))),
    ("similar-options", ("similar", -1, 1e-6), nn.CosineSimilarity(-1, 1e-6), (r(2, 3, 4), r(2, 3, 4, seed=1))),
    ("similar-dim0", ("similar", {"dim": 0}), nn.CosineSimilarity(0), (r(4, 5), r(4, 5, seed=1))),
]


def zscore_ref(mean, std):
    """torchvision's Normalize, with the statistics kept as float32 as ktorch keeps lists."""

    def f(x):
        m = torch.tensor(mean, dtype=torch.float32).to(x.dtype)
        s = torch.tensor(std, dtype=torch.float32).to(x.dtype)
        if m.dim() == 1 and m.numel() > 1:
            m, s = m[:, None, None], s[:, None, None]
        return (x - m) / s

    return f


CASES += [
    ("zscore-channels", ("zscore", [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]),
     zscore_ref([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]), (r(2, 3, 4, 4),)),
    ("zscore-image", ("zscore", [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], True),
     zscore_ref([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]), (r(3, 2, 5),)),
    ("zscore-scalar", ("zscore", 0.5, 2), zscore_ref(0.5, 2.0), (r(10),)),
    ("zscore-named", ("zscore", {"mean": [0.1], "std": [0.5], "inplace": False}),
     zscore_ref([0.1], [0.5]), (r(4, 3),)),
]


def torch_out(fn, xs, dtype, grad):
    ts = [torch.tensor(x.astype(dtype), requires_grad=grad) for x in xs]
    return ts, fn(*ts)


def weights(shape, dtype):
    return np.random.default_rng(99).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("spec,fn,xs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_oracle(spec, fn, xs, dtype):
    xs = [x.astype(dtype) for x in xs]
    q = kt.module(spec)
    # evaluation mode: values only
    got = kt.evaluate(q, *xs)
    ts, ref = torch_out(fn, xs, dtype, True)
    assert got.shape == tuple(ref.shape) and got.dtype == dtype
    np.testing.assert_allclose(got, ref.detach().numpy(), **TOL[dtype])
    # training mode: the same values and the same input gradients
    kx = [kt.tensor(x, "grad") for x in xs]
    y = kt.forward(q, *kx)
    np.testing.assert_allclose(kt.tensor(y), ref.detach().numpy(), **TOL[dtype])
    g = weights(tuple(ref.shape), dtype)
    kt.backward(y, g)
    ref.backward(torch.from_numpy(g))
    for k, t in zip(kx, ts, strict=True):
        np.testing.assert_allclose(kt.grad(k), t.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize(
    "spec,ref",
    [
        (("onehot", 5), lambda x: F.one_hot(x, 5).float()),
        ("onehot", lambda x: F.one_hot(x).float()),
        (("onehot", 4, "long"), lambda x: F.one_hot(x, 4)),
        (("onehot", 6, {"dtype": "double"}), lambda x: F.one_hot(x, 6).double()),
        (("onehot", {"classes": 5, "dtype": "bool"}), lambda x: F.one_hot(x, 5).bool()),
    ],
    ids=["classes", "inferred", "long", "double-named", "bool"],
)
@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_onehot(spec, ref, shape):
    x = np.random.default_rng(5).integers(0, 4, shape)
    q = kt.module(spec)
    want = ref(torch.from_numpy(x)).numpy()
    got = kt.evaluate(q, x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kt.tensor(kt.forward(q, x.astype(np.int32))), want)


def test_onehot_doc_example():
    q = kt.module(("onehot", 5))
    np.testing.assert_array_equal(
        kt.evaluate(q, ix(4, 1, 2, 0)),
        [[0, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]],
    )


def test_doc_examples():
    """The original's examples: pad, cat, expand, select, indexselect, squeeze, transpose."""
    y = kt.evaluate(kt.module(("pad", [1, 1, 2, 2])), np.ones((3, 4)))
    assert y.shape == (7, 6) and y.sum() == 12 and y[2:5, 1:5].all()
    x = np.arange(1.0, 13.0).reshape(1, 1, 3, 4)
    y = kt.evaluate(kt.module(("pad", [1, 1, 2, 2], "replicate")), x)[0, 0]
    np.testing.assert_array_equal(y[0], [1, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(y[-1], [9, 9, 10, 11, 12, 12])
    q = kt.module("cat")
    np.testing.assert_array_equal(kt.evaluate(q, np.arange(6.0).reshape(2, 3), np.array([[6.0, 7, 8]])),
                                  np.arange(9.0).reshape(3, 3))
    assert kt.state(q)["options"] == {}
    np.testing.assert_array_equal(kt.evaluate(kt.module(("expand", [-1, 3])), np.arange(4.0).reshape(4, 1)),
                                  np.repeat(np.arange(4.0)[:, None], 3, 1))
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(kt.evaluate(kt.module(("select", 1, -1)), x), [3, 7, 11])
    np.testing.assert_array_equal(kt.evaluate(kt.module(("indexselect", 0, [0, 2])), x), x[[0, 2]])
    assert kt.evaluate(kt.module(("squeeze", 0)), np.ones((1, 3, 1))).shape == (3, 1)
    assert kt.evaluate(kt.module(("transpose", 0, 2)), np.zeros((1, 2, 3))).shape == (3, 2, 1)
    assert kt.state(kt.module("transpose"))["options"] == {}


# ---- random transforms ----


def windows(p, h, w):
    """Every h x w window of the last two dimensions of p."""
    r, c = p.shape[-2:]
    return [(y, x, p[..., y:y + h, x:x + w]) for y in range(r - h + 1) for x in range(c - w + 1)]


def which_window(out, p, h, w):
    for y, x, win in windows(p, h, w):
        if np.array_equal(out, win):
            return y, x
    raise AssertionError("output is no window of the padded input")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(
    "spec,pad,mode,value,size,shape",
    [
        (("randomcrop", 5, 1), [1, 1, 1, 1], "constant", 0.0, (5, 5), (5, 5)),
        (("randomcrop", [3, 4]), [0, 0, 0, 0], "constant", 0.0, (3, 4), (2, 6, 7)),
        (("randomcrop", 6, [1, 2, 0, 1], "reflect"), [1, 2, 0, 1], "reflect", 0.0, (6, 6), (3, 5, 6)),
        (("randomcrop", {"size": 4, "pad": 2, "padmode": "constant", "value": 1.5}), [2, 2, 2, 2], "constant", 1.5,
         (4, 4), (2, 3)),
        (("randomcrop", 4, 1, "replicate"), [1, 1, 1, 1], "replicate", 0.0, (4, 4), (1, 4, 4)),
    ],
    ids=["doc", "no-pad", "reflect", "value", "replicate"],
)
def test_randomcrop_windows(spec, pad, mode, value, size, shape, dtype):
    x = r(*shape).astype(dtype)
    tx = torch.from_numpy(x)
    p = F.pad(tx[None] if x.ndim == 2 else tx, pad, mode=mode, value=value if mode == "constant" else None)
    p = (p[0] if x.ndim == 2 else p).numpy()
    q = kt.module(spec)
    seen = set()
    for train in (True, False):
        for _ in range(25):
            out = kt.tensor(kt.forward(q, x)) if train else kt.evaluate(q, x)
            assert out.shape == x.shape[:-2] + size and out.dtype == dtype
            seen.add(which_window(out, p, *size))
    # the offsets vary (the original crops in both modes: a transform container picks by mode)
    assert len(seen) == len(windows(p, *size)) or len(seen) > 3


def test_randomcrop_batch_and_gradient():
    x = r(8, 2, 6, 6)
    q = kt.module(("randomcrop", 4, 1))
    k = kt.tensor(x, "grad")
    y = kt.forward(q, k)
    out = kt.tensor(y)
    assert out.shape == (8, 2, 4, 4)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    at = [which_window(out[i], p[i], 4, 4) for i in range(8)]
    assert len(set(at)) > 1  # each image has its own offset
    kt.backward(y, np.ones(out.shape))
    g = kt.grad(k)
    want = np.zeros_like(p)
    for i, (yy, xx) in enumerate(at):
        want[i, :, yy:yy + 4, xx:xx + 4] += 1
    np.testing.assert_array_equal(g, want[:, :, 1:-1, 1:-1])


def test_randomcrop_seeded():
    x = r(16, 1, 8, 8)
    q = kt.module(("randomcrop", 5, 2, "reflect"))
    kt.seed(7)
    a = kt.evaluate(q, x)
    kt.seed(7)
    b = kt.evaluate(q, x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, kt.evaluate(q, x))


def test_randomcrop_full_size_passes_through():
    x = r(3, 5, 5)
    np.testing.assert_array_equal(kt.evaluate(kt.module(("randomcrop", 5)), x), x)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("dim,axis", [(-1, -1), (-2, -2), (1, -2)])
def test_randomflip_batch(dim, axis, dtype):
    """Each image of a batch is flipped or not; dim counts in each image (c x h x w)."""
    x = r(64, 3, 4, 5).astype(dtype)
    q = kt.module(("randomflip", 0.5, dim))
    k = kt.tensor(x, "grad")
    y = kt.forward(q, k)
    out = kt.tensor(y)
    flipped = np.array([not np.array_equal(out[i], x[i]) for i in range(64)])
    for i in range(64):
        np.testing.assert_array_equal(out[i], np.flip(x[i], axis) if flipped[i] else x[i])
    assert 10 < flipped.sum() < 54
    g = weights(out.shape, dtype)
    kt.backward(y, g)
    want = np.where(flipped[:, None, None, None], np.flip(g, axis), g)
    np.testing.assert_array_equal(kt.grad(k), want)
    ev = kt.evaluate(q, x)  # evaluation mode flips too, as in the original
    assert 10 < sum(not np.array_equal(ev[i], x[i]) for i in range(64)) < 54


@pytest.mark.parametrize("shape", [(4, 4), (3, 4, 4)])
def test_randomflip_single_image(shape):
    x = np.arange(float(np.prod(shape))).reshape(shape)
    np.testing.assert_array_equal(kt.evaluate(kt.module(("randomflip", 1.0)), x), np.flip(x, -1))
    np.testing.assert_array_equal(kt.evaluate(kt.module(("randomflip", 1.0, -2)), x), np.flip(x, -2))
    np.testing.assert_array_equal(kt.evaluate(kt.module(("randomflip", {"p": 0.0})), x), x)
    q = kt.module("randomflip")
    outs = [kt.evaluate(q, x) for _ in range(40)]
    n = sum(not np.array_equal(o, x) for o in outs)
    assert all(np.array_equal(o, x) or np.array_equal(o, np.flip(x, -1)) for o in outs)
    assert 5 < n < 35


def test_randomflip_seeded():
    x = r(32, 3, 2, 2)
    q = kt.module(("randomflip", 0.5))
    kt.seed(11)
    a = kt.evaluate(q, x)
    kt.seed(11)
    np.testing.assert_array_equal(a, kt.evaluate(q, x))


# ---- state round trip ----

ONE_EACH = {
    "pad": ("pad", [1, 2], 3.5), "pad1d": ("pad1d", 2, 1.0), "pad2d": ("pad2d", [1, 1, 2, 0]),
    "pad3d": ("pad3d", [1, 1, 0, 1, 1, 0], -1.0), "reflect1d": ("reflect1d", 1), "reflect2d": ("reflect2d", [1, 1, 2, 0]),
    "replicate1d": ("replicate1d", [2, 1]), "replicate2d": ("replicate2d", 1), "replicate3d": ("replicate3d", 1),
    "zeropad2d": ("zeropad2d", [1, 0, 0, 1]),
    "cat": ("cat", 1), "expand": ("expand", [2, -1, -1, -1, 4]), "indexselect": ("indexselect", 2, ix(0, 2)),
    "interpolate": ("interpolate", None, 1.5, "bilinear", True, True), "matmul": "matmul", "mul": "mul",
    "normalize": ("normalize", 1.0, -1), "onehot": ("onehot", 4, "double"), "permute": ("permute", [3, 2, 1, 0]),
    "select": ("select", 1, 1), "squeeze": ("squeeze", 0, True), "unsqueeze": ("unsqueeze", 2),
    "transpose": ("transpose", 1, 3), "upsample": ("upsample", [3, 5], None, "bicubic"),
    "pairwise": ("pairwise", 1.5, 1e-4, True), "similar": ("similar", 0, 1e-5),
    "randomcrop": ("randomcrop", [2, 3], 1, "reflect"), "randomflip": ("randomflip", 0.3, -2),
    "zscore": ("zscore", [0.1, 0.2], np.array([0.5, 2.0])),
}
NEW = list(ONE_EACH)


def inputs_for(name):
    x = r(1, 2, 3, 4)
    if name == "onehot":
        return (ix(0, 3, 2),)
    if name in ("cat", "mul", "pairwise", "similar"):
        return (x, r(1, 2, 3, 4, seed=1))
    if name == "matmul":
        return (x, r(4, 2))
    if name in ("pad1d", "reflect1d", "replicate1d"):
        return (r(2, 3, 4),)
    if name in ("pad3d", "replicate3d"):
        return (r(1, 2, 2, 3, 4),)
    if name == "expand":
        return (r(3, 1, 1, 1),)
    return (x,)


def same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype
    return type(a) is type(b) and a == b


def test_help_lists_new_types():
    names = kt.help("module")
    assert set(NEW) <= set(names) and len(NEW) == 29 and len(names) == len(set(names))


@pytest.mark.parametrize("name", NEW)
def test_state_round_trip(name):
    q = kt.module(ONE_EACH[name])
    s = kt.state(q)
    assert s["module"] == name
    q2 = kt.module(s)
    assert same(kt.state(q2), s)
    xs = inputs_for(name)
    kt.seed(3)
    a = kt.evaluate(q, *xs)
    kt.seed(3)
    b = kt.evaluate(q2, *xs)
    np.testing.assert_array_equal(a, b)
    # the options by name build the same module again
    q3 = kt.module((name, s["options"]))
    assert same(kt.state(q3), s)


def test_state_holds_named_options():
    s = kt.state(kt.module(("pad", [1, 2], 3.5)))
    assert s["options"] == {"pad": [1, 2], "value": 3.5}
    s = kt.state(kt.module(("zscore", [0.5, 0.4], [0.2, 0.3])))
    assert list(s["buffers"]) == ["mean", "stddev"]
    np.testing.assert_allclose(s["buffers"]["stddev"], [0.2, 0.3], rtol=1e-6)
    s = kt.state(kt.module(("zscore", [0.5, 0.4], np.array([0.2, 0.3]))))
    assert s["buffers"]["mean"].dtype == s["buffers"]["stddev"].dtype == np.float64
    s = kt.state(kt.module(("indexselect", 0, [2, 0])))
    np.testing.assert_array_equal(s["buffers"]["ind"], [2, 0])
    s = kt.state(kt.module(("onehot", 3, {"dtype": "long"})))
    assert s["options"] == {"classes": 3, "dtype": "long"}


def test_in_sequential():
    spec = kt.seq("sequential", ("reflect2d", 1), ("upsample", None, 2.0), ("permute", [0, 2, 3, 1]),
                  ("normalize", 2.0, -1), ("select", 1, 0))
    x = r(2, 3, 4, 4).astype(np.float32)
    tx = torch.from_numpy(x)
    want = F.normalize(F.interpolate(F.pad(tx, [1] * 4, mode="reflect"), scale_factor=2.0).permute(0, 2, 3, 1),
                       2.0, -1).select(1, 0)
    np.testing.assert_allclose(kt.evaluate(kt.module(spec), x), want.numpy(), rtol=1e-5, atol=1e-6)


def test_dtype_option_converts_zscore_buffers():
    q = kt.module(("zscore", [0.5, 0.25], [0.5, 2.0], {"dtype": "double"}))
    s = kt.state(q)
    assert s["buffers"]["mean"].dtype == np.float64
    q = kt.module(("indexselect", 0, [1], {"dtype": "double"}))
    assert kt.state(q)["buffers"]["ind"].dtype == np.int64


# ---- errors ----

BAD_SPECS = [
    (("pad",), "pad: pad not defined"),
    (("pad", [1, 2, 3]), "pad: 3 pad size(s) given, expecting pairs"),
    (("pad", [1, 1], "mirror"), "pad: mode: unrecognized value `mirror`"),
    (("pad", [1, 1], "reflect", 2.0), "pad: value applies only to mode constant"),
    (("pad", [1, -1], "reflect"), "pad: pad sizes must be non-negative with mode reflect"),
    (("pad", [1, 1], {"size": 2}), "pad: unrecognized option: size"),
    (("pad", "a", [1.5, 1]), "pad: pad expects an integer, given float"),
    (("pad1d",), "pad1d: no padding sizes given"),
    (("pad2d", [1, 2, 3]), "pad2d: pad expects 1 or 4 values, given 3"),
    (("pad3d", [1, 1], 0.0), "pad3d: pad expects 1 or 6 values, given 2"),
    (("pad2d", 1, "x"), "pad2d: value expects a number, given string"),
    (("reflect1d", 1, 2), "reflect1d: expecting at most 1 positional setting(s), given 2"),
    (("reflect2d", [1, -1, 0, 0]), "reflect2d: pad sizes must be non-negative"),
    (("replicate3d", {"value": 1.0}), "replicate3d: unrecognized option: value"),
    (("zeropad2d",), "zeropad2d: no padding sizes given"),
    (("cat", 1.5), "cat: dim expects an integer, given float"),
    (("cat", 0, 1), "cat: expecting at most 1 positional setting(s), given 2"),
    (("expand",), "expand: size not defined"),
    (("expand", [-2, 3]), "expand: size must be non-negative or -1"),
    (("indexselect", 0), "indexselect: no index defined"),
    (("indexselect", None, [1]), "indexselect: no dimension defined"),
    (("indexselect", 0, [0.5]), "indexselect: ind expects an integer, given float"),
    (("indexselect", 0, [0, -1]), "indexselect: ind must hold non-negative indices"),
    (("indexselect", 0, np.zeros((2, 2), np.int64)), "indexselect: ind: expecting a scalar index or a 1-dim list"),
    (("interpolate",), "interpolate: no output size or scale factor given"),
    (("interpolate", 2, 2.0), "interpolate: both output size and scale factor given"),
    (("interpolate", 2, None, "cubic"), "interpolate: mode: unrecognized value `cubic`"),
    (("interpolate", 2, None, "nearest", True), "interpolate: align applies only to the interpolating modes"),
    (("interpolate", 2, None, "linear", None, True), "interpolate: rescale (recompute the scale factor) is not"),
    (("interpolate", None, -1.0), "interpolate: scale must be positive"),
    (("interpolate", [0, 2]), "interpolate: size must be positive"),
    (("upsample", 2, None, "area"), "upsample: mode: unrecognized value `area`"),
    (("upsample", 2, None, "nearest", False, True), "upsample: expecting at most 4 positional setting(s), given 5"),
    (("upsample", {"rescale": True, "size": 2}), "upsample: unrecognized option: rescale"),
    (("matmul", 1), "matmul: expecting at most 0 positional setting(s), given 1"),
    (("mul", {"dim": 1}), "mul: unrecognized option: dim"),
    (("normalize", 2.0, 1, -1.0), "normalize: eps must be non-negative, given -1"),
    (("normalize", 2.0, "x"), "normalize: dim expects an integer, given string"),
    (("onehot", -2), "onehot: classes must be non-negative or -1"),
    (("onehot", 3, "complex"), "onehot: dtype: unrecognized value `complex`"),
    (("permute",), "permute: size not defined"),
    (("permute", [0, 0, 1]), "permute: size must be a permutation of the 3 dimensions"),
    (("select", 1), "select: no index defined"),
    (("select",), "select: no dimension defined"),
    (("select", 1, 2.5), "select: ind expects an integer, given float"),
    (("squeeze", 0, 1), "squeeze: inplace expects a boolean, given int"),
    (("squeeze", 0, True, 1), "squeeze: expecting at most 2 positional setting(s), given 3"),
    (("unsqueeze",), "unsqueeze: no dimension given"),
    (("unsqueeze", True), "unsqueeze: no dimension given"),
    (("transpose", 0, 1, 2), "transpose: expecting at most 2 positional setting(s), given 3"),
    (("transpose", {"dim": 1}), "transpose: unrecognized option: dim"),
    (("pairwise", -1.0), "pairwise: p must be non-negative"),
    (("pairwise", 2.0, 1e-6, 1), "pairwise: keepdim expects a boolean, given int"),
    (("similar", 1, -1e-8), "similar: eps must be non-negative"),
    (("similar", 0.5), "similar: dim expects an integer, given float"),
    (("randomcrop",), "randomcrop: size not defined"),
    (("randomcrop", [0, 4]), "randomcrop: size must be a positive height and width"),
    (("randomcrop", [1, 2, 3]), "randomcrop: size expects 1 or 2 values, given 3"),
    (("randomcrop", 4, [1, 2]), "randomcrop: pad expects 1 or 4 values, given 2"),
    (("randomcrop", 4, -1), "randomcrop: pad must be non-negative"),
    (("randomcrop", 4, 1, "zeros"), "randomcrop: padmode: unrecognized value `zeros`"),
    (("randomcrop", 4, 1, "reflect", 1.0), "randomcrop: value applies only to mode constant"),
    (("randomflip", 1.5), "randomflip: p must be in the range 0-1, given 1.5"),
    (("randomflip", 0.5, 1.5), "randomflip: dim expects an integer, given float"),
    (("zscore",), "zscore: no mean(s) defined"),
    (("zscore", 0.5), "zscore: no stddev(s) defined"),
    (("zscore", [], [1.0]), "zscore: no mean(s) defined"),
    (("zscore", 0.5, [1.0, 0.0]), "zscore: std must be positive"),
    (("zscore", [0.1, 0.2, 0.3], [1.0, 2.0]), "zscore: 3 mean(s) and 2 standard deviation(s) given"),
    (("zscore", [0.5], "x"), "zscore: std expects a number, given string"),
    (("zscore", 0.5, 1.0, 1), "zscore: inplace expects a boolean, given int"),
    (("zscore", float("nan"), 1.0), "zscore: mean must be finite"),
]


def _err_id(case):
    spec, msg = case
    return msg.split(":")[0] + "-" + "-".join(msg.split(":")[1].split()[:3])


@pytest.mark.parametrize("spec,msg", BAD_SPECS, ids=[_err_id(c) for c in BAD_SPECS])
def test_bad_options(spec, msg):
    n = kt.objects()
    with pytest.raises(kt.KtorchError) as e:
        kt.module(spec)
    assert str(e.value).startswith(msg), str(e.value)
    assert kt.objects() == n  # no module made


def test_pad_name_first_is_a_name():
    # a symbol in 1st place is the module's name, as in every spec
    q = kt.module(("pad", "p", [1, 1]))
    assert kt.state(q)["name"] == "p"


BAD_INPUTS = [
    (("pad", [1, 1, 1, 1, 1, 1]), (r(2, 3),), "pad: pad of 6 size(s) pads 3 dimension(s), given a 2-d input"),
    (("pad", [1, 1], "reflect"), (r(2, 3, 4, 5),), "pad: mode reflect with 2 pad size(s) expects a 2-d or 3-d input"),
    (("reflect2d", 1), (r(4, 5),), "reflect2d: mode reflect with 4 pad size(s) expects a 3-d or 4-d input, given 2-d"),
    (("replicate3d", 1), (r(2, 3),), "replicate3d: mode replicate with 6 pad size(s) expects a 4-d or 5-d input"),
    (("pad2d", 1), (r(3),), "pad2d: pad of 4 size(s) pads 2 dimension(s), given a 1-d input"),
    ("cat", (r(2, 3), r(3)), "cat: expecting inputs with the same number of dimensions, given 2-d and 1-d"),
    (("cat", 2), (r(2, 3), r(2, 3)), "cat: dim 2 out of range for a 2-d input (expecting -2 to 1)"),
    ("cat", (r(2, 3),), "cat: forward expects 2 input tensor(s), given 1 tensor(s)"),
    ("mul", (r(2, 3), r(2, 3), r(2, 3)), "mul: forward expects 2 input tensor(s), given 3 tensor(s)"),
    ("similar", (r(2, 3),), "similar: forward expects 2 input tensor(s), given 1 tensor(s)"),
    ("normalize", (r(3), r(3)), "normalize: forward expects 1 input tensor(s), given 2 tensor(s)"),
    (("expand", [3]), (r(2, 1),), "expand: size [3] has fewer dimensions than the 2-d input"),
    (("permute", [1, 0]), (r(2, 3, 4),), "permute: size [1, 0] has 2 dimension(s), the input 3"),
    (("select", 2, 0), (r(2, 3),), "select: dim 2 out of range for a 2-d input"),
    (("select", 0, -3), (r(2, 3),), "select: ind -3 out of range for size 2 of dimension 0"),
    (("indexselect", 1, [3]), (r(2, 3),), "indexselect: ind 3 out of range for size 3 of dimension 1"),
    (("squeeze", 2), (r(2, 3),), "squeeze: dim 2 out of range for a 2-d input"),
    (("unsqueeze", 3), (r(2, 3),), "unsqueeze: dim 3 out of range for a 3-d input"),
    (("transpose", 0, 5), (r(2, 3),), "transpose: dim1 5 out of range for a 2-d input"),
    (("normalize", 2.0, 3), (r(2, 3),), "normalize: dim 3 out of range for a 2-d input"),
    (("interpolate", 4, None, "bilinear"), (r(1, 2, 3),), "interpolate: mode bilinear expects a 4-d input, given 3-d"),
    (("interpolate", 4), (r(2, 3),), "interpolate: mode nearest expects a 3-d, 4-d or 5-d input, given 2-d"),
    (("upsample", [2, 3, 4]), (r(1, 2, 3, 4),), "upsample: size has 3 values, the input 2 spatial dimension(s)"),
    (("upsample", None, 0.1), (r(1, 2, 3, 4),), "upsample: scale [0.1, 0.1] makes an output size of 0"),
    ("onehot", (r(3),), "onehot: expecting integer class indices, given double input"),
    (("randomcrop", 4), (r(3),), "randomcrop: expecting a 2-d, 3-d or 4-d input, given 1-d"),
    (("randomcrop", 7, 1), (r(3, 4, 4),), "randomcrop: size 7x7 exceeds the padded input's 6x6"),
    (("randomflip", 0.5, 3), (r(2, 3, 4, 5),), "randomflip: dim 3 out of range for a 3-d input"),
    (("randomflip", 0.5), (r(2, 2, 2, 2, 2),), "randomflip: expecting a 2-d, 3-d or 4-d input, given 5-d"),
    (("zscore", [0.5, 0.4, 0.3], [1, 1, 1]), (r(4, 4),),
     "zscore: mean of size [3, 1, 1] does not broadcast to the input of size [4, 4]"),
]


@pytest.mark.parametrize("spec,xs,msg", BAD_INPUTS, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in
                                                         enumerate(BAD_INPUTS)])
def test_bad_inputs(spec, xs, msg):
    q = kt.module(spec)
    with pytest.raises(kt.KtorchError) as e:
        kt.evaluate(q, *xs)
    assert msg in str(e.value), str(e.value)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NEW)
def test_on_cuda(name):
    """On the GPU, each type gives the CPU's values (random offsets and flips come from the
    CPU generator, so a seed repeats them on either device)."""
    q = kt.module(ONE_EACH[name])
    xs = inputs_for(name)
    kt.seed(5)
    want = kt.evaluate(q, *xs)
    kt.to(q, "cuda")
    kx = [kt.tensor(x, "cuda") for x in xs]
    kt.seed(5)
    y = kt.forward(q, *kx)
    assert kt.device(y) == "cuda"
    np.testing.assert_allclose(kt.tensor(y), want, rtol=1e-5, atol=1e-6)
