"""Attention and transformer modules against torch: attention (nn.MultiheadAttention),
selfattention (the original's own, against its calculation written in torch),
encoderlayer, decoderlayer, encoder, decoder, transformer (nn.Transformer*), nbeats (the
original's N-BEATS container).

Outputs and gradients (of the floating inputs and of every parameter) with the same weights
(loaded from the torch module's state_dict), in float32 and float64, in evaluation and in
training mode (dropout 0), with masks: key padding and attention masks, boolean and
floating, causal ones; state_dict both ways; the state round trip; bad options and inputs.
Then a transformer encoder classifier and a causal decoder trained with kt.run against a
torch loop over the same batches.

torch is run with gradients on, so its inference fast paths (nested tensors, fused layers)
are not taken: ktorch follows torch's reference path, step for step.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ktorch as kt

pytestmark = [
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
    pytest.mark.filterwarnings("ignore:Support for mismatched"),
]

TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-10, 1e-12)}
TORCH = {np.float32: torch.float32, np.float64: torch.float64}
DTYPES = [np.float32, np.float64]
EMPTY = np.zeros(0, np.float32)  # an empty tensor skips a mask
DIFFS = {}  # largest difference seen, by type and dtype (pytest -s prints them)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
    for k, v in sorted(DIFFS.items()):
        print(f"\n{k[0]:>13} {k[1]:>8}: outputs {v[0]:.2e}, gradients {v[1]:.2e}", end="")


def r(*shape, seed=0, dtype=np.float32):
    g = np.random.default_rng(seed + 7 * sum(shape))
    return g.standard_normal(shape).astype(dtype)


def causal(n, dtype=np.float32):
    return np.triu(np.full((n, n), -np.inf), 1).astype(dtype)


def padmask(b, n, pads=(0, 2, 1)):
    """Batch x sequence, true at the last `pads[i]` positions of row i."""
    m = np.zeros((b, n), bool)
    for i in range(b):
        k = pads[i % len(pads)]
        if k:
            m[i, -k:] = True
    return m


def note(kind, dtype, out, grad):
    k = (kind, np.dtype(dtype).name)
    o, g = DIFFS.get(k, (0.0, 0.0))
    DIFFS[k] = (max(o, out), max(g, grad))


def close(a, b, dtype):
    """Equal within the dtype's tolerance; returns the largest difference."""
    rtol, atol = TOL[dtype]
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    fin = np.isfinite(b)
    return float(np.max(np.abs(a[fin] - b[fin]), initial=0.0))


def randomize(tm, seed=1):
    """New values in every parameter of a torch module (biases too, zero at first)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in tm.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return tm


def spec_of(spec, dtype):
    """The spec with dtype double for float64."""
    if dtype is np.float32:
        return spec
    if isinstance(spec, str):
        return (spec, {"dtype": "double"})
    opts = dict(spec[-1]) if isinstance(spec[-1], dict) else {}
    head = spec[:-1] if isinstance(spec[-1], dict) else spec
    return (*head, {**opts, "dtype": "double"})


def inputs(xs, grad_in, dtype):
    """ktorch handles and torch tensors for the inputs: None skips a mask (an empty tensor
    for ktorch), a bool is a flag, an int k repeats input k (the same tensor), floating
    inputs listed in `grad_in` take gradients."""
    hs, ts = [], []
    for i, x in enumerate(xs):
        if x is None:
            hs.append(EMPTY)
            ts.append(None)
        elif isinstance(x, bool):
            hs.append(x)
            ts.append(x)
        elif isinstance(x, int):
            hs.append(hs[x])
            ts.append(ts[x])
        else:
            if x.dtype.kind == "f":
                x = x.astype(dtype)
            if i in grad_in:
                hs.append(kt.tensor(x, "grad"))
                ts.append(torch.from_numpy(x.copy()).requires_grad_())
            else:
                hs.append(x)
                ts.append(torch.from_numpy(x.copy()))
    return hs, ts


def compare(kind, q, call, params, xs, grad_in, dtype):
    """Forward and backward in ktorch (module q) and torch (call on the torch inputs, with
    parameters `params` by ktorch's names): outputs, input and parameter gradients."""
    hs, ts = inputs(xs, grad_in, dtype)
    y = kt.forward(q, *hs)
    yt = call(*ts)
    yt = [t for t in (yt if isinstance(yt, tuple) else (yt,)) if t is not None]
    got = kt.tensor(y)
    got = got if isinstance(got, list) else [got]
    assert [a.shape for a in got] == [tuple(b.shape) for b in yt]
    do = max(close(a, b.detach().numpy(), dtype) for a, b in zip(got, yt, strict=True))
    gs = [r(*a.shape, seed=99 + i, dtype=a.dtype) for i, a in enumerate(got)]
    kt.backward(y, gs[0] if len(gs) == 1 else kt.vector(*gs))
    torch.autograd.backward(yt, [torch.from_numpy(g) for g in gs])
    dg = 0.0
    for i in grad_in:
        dg = max(dg, close(kt.grad(hs[i]), ts[i].grad.numpy(), dtype))
    assert list(params) == kt.parmnames(q)
    for n, p in params.items():
        got = kt.grad(kt.parm(q, n))
        if p.grad is None:
            assert got is None or not np.any(got), n
        else:
            dg = max(dg, close(got, p.grad.numpy(), dtype))
    note(kind, dtype, do, dg)


def both(spec, tm, call, xs, grad_in=(0,), dtype=np.float32, train=False):
    """ktorch's module from `spec` with the torch module's weights, compared on `xs`."""
    q = kt.module(spec_of(spec, dtype))
    tm = randomize(tm.to(TORCH[dtype]))
    kt.load_state_dict(q, tm.state_dict())
    kt.training(q, train)
    tm.train(train)
    tm.zero_grad(set_to_none=True)
    compare(spec[0], q, lambda *ts: call(tm, *ts), dict(tm.named_parameters()), xs, grad_in, dtype)
    return q, tm


def mha_call(tm, q, k, v, pad=None, need=True, mask=None, avg=True):
    return tm(q, k, v, key_padding_mask=pad, need_weights=need, attn_mask=mask, average_attn_weights=avg)


# ------------------------------------------------------------------ attention

L, S, N, E = 5, 6, 3, 8
BOOL_MASK = np.triu(np.ones((L, S), bool), 2)
FLOAT_MASK = r(L, S, seed=4) * 0.5
MASK3 = r(N * 2, L, S, seed=5)

ATTENTION = [
    # id, spec, torch module, inputs (query, key, value, padmask, need weights, mask, average), grads
    ("self", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2), [r(L, N, E), 0, 0], (0,)),
    ("cross", ("attention", E, 4), lambda: nn.MultiheadAttention(E, 4), [r(L, N, E), r(S, N, E, seed=1), 1], (0, 1)),
    ("distinct", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), r(S, N, E, seed=2)], (0, 1, 2)),
    ("batchfirst-self", ("attention", E, 2, {"batchfirst": True}), lambda: nn.MultiheadAttention(E, 2, batch_first=True),
     [r(N, L, E), 0, 0], (0,)),
    ("batchfirst-masks", ("attention", E, 2, {"batchfirst": True}), lambda: nn.MultiheadAttention(E, 2, batch_first=True),
     [r(N, L, E), r(N, S, E, seed=1), 1, padmask(N, S), True, FLOAT_MASK], (0, 1)),
    ("kdim-vdim", ("attention", E, 2, {"kdim": 5, "vdim": 3}), lambda: nn.MultiheadAttention(E, 2, kdim=5, vdim=3),
     [r(L, N, E), r(S, N, 5, seed=1), r(S, N, 3, seed=2)], (0, 1, 2)),
    ("no-bias", ("attention", E, 2, 0.0, False), lambda: nn.MultiheadAttention(E, 2, bias=False), [r(L, N, E), 0, 0], (0,)),
    ("addbias-addzero", ("attention", E, 2, 0.0, True, True, True),
     lambda: nn.MultiheadAttention(E, 2, add_bias_kv=True, add_zero_attn=True),
     [r(L, N, E), r(S, N, E, seed=1), 1, padmask(N, S), True, BOOL_MASK], (0, 1)),
    ("bool-masks", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), 1, padmask(N, S), True, BOOL_MASK], (0, 1)),
    ("float-padmask", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), 1, np.where(padmask(N, S), -1e9, 0.0).astype(np.float32), True, FLOAT_MASK],
     (0, 1)),
    ("mask-3d", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), 1, None, True, MASK3], (0, 1)),
    ("no-weights", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), 1, padmask(N, S), False, FLOAT_MASK], (0, 1)),
    ("no-weights-self", ("attention", E, 2, {"batchfirst": True}), lambda: nn.MultiheadAttention(E, 2, batch_first=True),
     [r(N, L, E), 0, 0, None, False, causal(L)], (0,)),
    ("per-head-weights", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, N, E), r(S, N, E, seed=1), 1, None, True, None, False], (0, 1)),
    ("unbatched", ("attention", E, 2), lambda: nn.MultiheadAttention(E, 2),
     [r(L, E), r(S, E, seed=1), 1, padmask(1, S, (2,))[0], True, BOOL_MASK], (0, 1)),
]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,make,xs,grads", [c[1:] for c in ATTENTION], ids=[c[0] for c in ATTENTION])
def test_attention(spec, make, xs, grads, dtype, train):
    torch.manual_seed(0)
    both(spec, make(), mha_call, xs, grads, dtype, train)


def test_attention_dropout_draws_as_torch():
    """With dropout in training mode, the same seed gives torch's draws (need weights:
    dropout of the attention weights)."""
    q, tm = both(("attention", E, 2, 0.3), nn.MultiheadAttention(E, 2, dropout=0.3), mha_call, [r(L, N, E), 0, 0])
    kt.training(q, True)
    tm.train(True)
    x = r(L, N, E)
    kt.seed(5)
    a = kt.tensor(kt.forward(q, x, x, x))[0]
    torch.manual_seed(5)
    t = torch.from_numpy(x)
    b = tm(t, t, t)[0].detach().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, kt.evaluate(q, x, x, x)[0])


# ------------------------------------------------------------------ selfattention


def selfattention_ref(p, x, heads, norm, mask=None, pad=None):
    """The original's SelfAttentionImpl::forward, written with torch."""
    b, n, d = x.shape
    hd = d // heads
    h = F.layer_norm(x, (d,), p["norm.weight"], p["norm.bias"]) if norm else x
    c = F.linear(h, p["in.weight"], p.get("in.bias")).reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = c[0], c[1], c[2]
    a = torch.matmul(q, k.transpose(-2, -1)) * (1 / math.sqrt(hd))
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(mask, -math.inf)
        a = a + (mask[:n, :n] if mask.dim() == 2 else mask)
    if pad is not None:
        a = a + torch.zeros(pad.shape, dtype=x.dtype).masked_fill(pad, -math.inf).view(b, 1, 1, n)
    a = torch.matmul(torch.softmax(a, -1), v)
    return F.linear(a.transpose(1, 2).contiguous().view(b, n, d), p["out.weight"], p["out.bias"])


SELF = [
    # id, spec, heads, norm, inputs
    ("plain", ("selfattention", E, 2), 2, False, [r(N, L, E)]),
    ("norm", ("selfattention", E, 4, 0.0, True), 4, True, [r(N, L, E)]),
    ("causal", ("selfattention", E, 2, 0.0, True), 2, True, [r(N, L, E), causal(L)]),
    ("larger-mask", ("selfattention", E, 2), 2, False, [r(N, L, E), causal(L + 3)]),
    ("bool-mask-padmask", ("selfattention", E, 2), 2, False,
     [r(N, L, E), np.triu(np.ones((L, L), bool), 1), padmask(N, L)]),
    ("padmask-only", ("selfattention", E, 2, {"norm": True}), 2, True, [r(N, L, E), None, padmask(N, L)]),
    ("mask-per-sample", ("selfattention", E, 2), 2, False, [r(N, L, E), r(N, 1, L, L, seed=6)]),
]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec,heads,norm,xs", [c[1:] for c in SELF], ids=[c[0] for c in SELF])
def test_selfattention(spec, heads, norm, xs, dtype, train):
    q = kt.module(spec_of(spec, dtype))
    kt.training(q, train)
    # every weight random (the layer norm's away from 1 and 0)
    kt.load_state_dict(q, {n: torch.randn(v.shape, dtype=v.dtype) * 0.5 for n, v in kt.state_dict(q).items()})
    params = {n: v.clone().requires_grad_() for n, v in kt.state_dict(q).items()}
    compare("selfattention", q, lambda x, m=None, p=None: selfattention_ref(params, x, heads, norm, m, p),
            params, xs, (0,), dtype)
    assert kt.childnames(q) == (["norm"] if norm else []) + ["in", "drop", "out"]


def test_selfattention_options():
    q = kt.module(("selfattention", 16, 4, 0.2, True))
    s = kt.state(q)
    top = s[0] if isinstance(s, list) else s
    assert top["options"] == {"dim": 16, "heads": 4, "dropout": 0.2, "norm": True}
    assert "in.bias" not in kt.parmnames(q)  # no bias after the layer norm
    assert "in.bias" in kt.parmnames(kt.module(("selfattention", 16, 4)))


# ------------------------------------------------------------------ encoder and decoder layers


def enc_call(tm, src, mask=None, pad=None):
    return tm(src, src_mask=mask, src_key_padding_mask=pad)


def dec_call(tm, tgt, mem, tmask=None, mmask=None, tpad=None, mpad=None):
    return tm(tgt, mem, tgt_mask=tmask, memory_mask=mmask, tgt_key_padding_mask=tpad, memory_key_padding_mask=mpad)


def layer_opts(bf=False, nf=False, fn="relu", bias=True, eps=1e-5):
    k = {"dropout": 0.0, "batchfirst": bf, "normfirst": nf, "fn": fn, "bias": bias, "eps": eps}
    t = {"dropout": 0.0, "batch_first": bf, "norm_first": nf, "activation": fn, "bias": bias, "layer_norm_eps": eps}
    return k, t


ENCODER_LAYER = [
    ("plain", {}, [r(L, N, E)]),
    ("gelu-normfirst-batchfirst", {"fn": "gelu", "nf": True, "bf": True}, [r(N, L, E), causal(L), padmask(N, L)]),
    ("bool-masks", {"bf": True}, [r(N, L, E), np.triu(np.ones((L, L), bool), 1), padmask(N, L)]),
    ("no-bias-eps", {"bias": False, "eps": 1e-3}, [r(L, N, E), None, padmask(N, L)]),
    ("unbatched", {"nf": True}, [r(L, E), causal(L)]),
]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts,xs", [c[1:] for c in ENCODER_LAYER], ids=[c[0] for c in ENCODER_LAYER])
def test_encoderlayer(opts, xs, dtype, train):
    k, t = layer_opts(**opts)
    torch.manual_seed(0)
    both(("encoderlayer", E, 2, 16, k), nn.TransformerEncoderLayer(E, 2, 16, **t), enc_call, xs, (0,), dtype, train)


DECODER_LAYER = [
    ("plain", {}, [r(L, N, E), r(S, N, E, seed=1)]),
    ("causal-pads", {"bf": True}, [r(N, L, E), r(N, S, E, seed=1), causal(L), None, padmask(N, L), padmask(N, S)]),
    ("gelu-normfirst-masks", {"fn": "gelu", "nf": True},
     [r(L, N, E), r(S, N, E, seed=1), np.triu(np.ones((L, L), bool), 1), FLOAT_MASK, None, padmask(N, S)]),
    ("no-bias", {"bias": False, "bf": True}, [r(N, L, E), r(N, S, E, seed=1), causal(L)]),
]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts,xs", [c[1:] for c in DECODER_LAYER], ids=[c[0] for c in DECODER_LAYER])
def test_decoderlayer(opts, xs, dtype, train):
    k, t = layer_opts(**opts)
    torch.manual_seed(0)
    both(("decoderlayer", E, 2, 16, k), nn.TransformerDecoderLayer(E, 2, 16, **t), dec_call, xs, (0, 1), dtype, train)


# ------------------------------------------------------------------ encoder, decoder, transformer


def enc_stack_call(tm, src, mask=None, pad=None):
    return tm(src, mask=mask, src_key_padding_mask=pad)


STACK = [
    # id, layer options, final norm, kt stack options, inputs
    ("norm", {}, True, {}, [r(L, N, E)]),
    ("no-norm-causal", {"bf": True}, False, {}, [r(N, L, E), causal(L)]),
    ("causal-padmask", {"nf": True, "bf": True}, True, {}, [r(N, L, E), causal(L), padmask(N, L)]),
    ("float-mask", {"fn": "gelu"}, True, {}, [r(L, N, E), r(L, L, seed=3), padmask(N, L)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lopts,norm,sopts,xs", [c[1:] for c in STACK], ids=[c[0] for c in STACK])
def test_encoder(lopts, norm, sopts, xs, dtype):
    k, t = layer_opts(**lopts)
    torch.manual_seed(0)
    tm = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, 2, 16, **t), 2, nn.LayerNorm(E) if norm else None,
                               enable_nested_tensor=False)
    spec = ("encoder", ("encoderlayer", E, 2, 16, k), 2, E if norm else None, sopts)
    for train in (False, True):
        both(spec, tm, enc_stack_call, xs, (0,), dtype, train)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lopts,norm,sopts,xs", [c[1:] for c in STACK], ids=[c[0] for c in STACK])
def test_decoder(lopts, norm, sopts, xs, dtype):
    k, t = layer_opts(**lopts)
    torch.manual_seed(0)
    tm = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, 2, 16, **t), 2, nn.LayerNorm(E) if norm else None)
    spec = ("decoder", ("decoderlayer", E, 2, 16, k), 2, E if norm else None, sopts)
    mem = r(N, S, E, seed=8) if lopts.get("bf") else r(S, N, E, seed=8)
    tx = [xs[0], mem, *xs[1:2], None, *xs[2:3]]
    for train in (False, True):
        both(spec, tm, dec_call, tx, (0, 1), dtype, train)


def test_causal_option_is_the_causal_mask():
    """causal: true makes the causal mask when none is given, as torch given that mask."""
    k, t = layer_opts(bf=True)
    torch.manual_seed(0)
    tm = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, 2, 16, **t), 2, nn.LayerNorm(E))
    spec = ("decoder", ("decoderlayer", E, 2, 16, k), 2, E, {"causal": True})
    both(spec, tm, lambda tm, tgt, mem, *_: dec_call(tm, tgt, mem, torch.from_numpy(causal(L))),
         [r(N, L, E), r(N, S, E, seed=1)], (0, 1))
    torch.manual_seed(0)
    tm = nn.TransformerEncoderLayer(E, 2, 16, **t)
    both(("encoderlayer", E, 2, 16, {**k, "causal": True}), tm,
         lambda tm, src, _, pad: enc_call(tm, src, torch.from_numpy(causal(L)), pad), [r(N, L, E), None, padmask(N, L)])


def tr_call(tm, src, tgt, sm=None, tmask=None, mm=None, sp=None, tp=None, mp=None):
    return tm(src, tgt, src_mask=sm, tgt_mask=tmask, memory_mask=mm, src_key_padding_mask=sp,
              tgt_key_padding_mask=tp, memory_key_padding_mask=mp)


TRANSFORMER = [
    ("plain", {}, [r(S, N, E), r(L, N, E, seed=1)]),
    ("batchfirst-masks", {"bf": True},
     [r(N, S, E), r(N, L, E, seed=1), None, causal(L), None, padmask(N, S), padmask(N, L), padmask(N, S)]),
    ("normfirst-gelu-no-bias", {"nf": True, "fn": "gelu", "bias": False},
     [r(S, N, E), r(L, N, E, seed=1), causal(S), causal(L), r(L, S, seed=2)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts,xs", [c[1:] for c in TRANSFORMER], ids=[c[0] for c in TRANSFORMER])
def test_transformer(opts, xs, dtype):
    k, t = layer_opts(**opts)
    torch.manual_seed(0)
    tm = nn.Transformer(E, 2, 2, 1, 16, **t)
    spec = ("transformer", E, 2, 2, 1, 16, k)
    for train in (False, True):
        both(spec, tm, tr_call, xs, (0, 1), dtype, train)


def test_transformer_custom_parts_and_defaults():
    q = kt.module(("transformer", E, 2, 1, 1, 16, {"decoder": ("decoder", ("decoderlayer", E, 2, 32), 3)}))
    assert kt.childnames(q) == ["encoder", "decoder"]
    assert kt.childnames(kt.child(q, "decoder.layers")) == ["0", "1", "2"]
    assert "decoder.norm.weight" not in kt.parmnames(q) and "encoder.norm.weight" in kt.parmnames(q)
    assert kt.tensor(kt.parm(q, "decoder.layers.2.linear1.weight")).shape == (32, E)
    # torch's names for the default transformer, in its order
    tm = nn.Transformer(E, 2, 2, 1, 16)
    assert kt.parmnames(kt.module(("transformer", E, 2, 2, 1, 16))) == [n for n, _ in tm.named_parameters()]
    assert list(kt.state_dict(kt.module(("transformer", E, 2, 2, 1, 16)))) == list(tm.state_dict())


def test_stack_layers_start_equal():
    """As torch's deep copies: every layer of an encoder starts as the first."""
    q = kt.module(("encoder", (E, 2, 16), 3))
    for n in ["self_attn.in_proj_weight", "linear1.weight", "norm2.bias"]:
        a = kt.tensor(kt.parm(q, f"layers.0.{n}"))
        np.testing.assert_array_equal(a, kt.tensor(kt.parm(q, f"layers.2.{n}")))


# ------------------------------------------------------------------ nbeats


def fork(m, x):
    return kt.mul(kt.parm(m, "b"), x), kt.mul(kt.parm(m, "f"), x)


def block(b, f):
    return ("callback", fork, {"parms": {"b": b, "f": f}})


def test_nbeats_doc_example():
    """The original's example: blocks (x, x - 1), three times, from 1 2 3."""
    def minus(m, x):
        return x, kt.add(x, -1.0)

    blk = ("callback", minus)
    q = kt.module(kt.seq("nbeats", blk, blk, blk))
    np.testing.assert_array_equal(kt.evaluate(q, np.array([1.0, 2.0, 3.0])), [-2.0, -1.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nbeats(dtype):
    bs = [r(4, seed=i, dtype=dtype) for i in range(3)]
    fs = [r(4, seed=10 + i, dtype=dtype) for i in range(3)]
    head = "nbeats" if dtype is np.float32 else ("nbeats", {"dtype": "double"})
    q = kt.module(kt.seq(head, block(bs[0], fs[0]), kt.seq("sequential", ("linear", 4, 4), "tanh", block(bs[1], fs[1])),
                         block(bs[2], fs[2])))
    sd = kt.state_dict(q)
    p = {n: v.clone().requires_grad_() for n, v in sd.items()}

    def ref(x):
        y = None
        for i in range(3):
            if i == 1:
                h = torch.tanh(F.linear(x, p["1.0.weight"], p["1.0.bias"]))
                b, f = p["1.2.b"] * h, p["1.2.f"] * h
            else:
                b, f = p[f"{i}.b"] * x, p[f"{i}.f"] * x
            x = x - b
            y = f if y is None else y + f
        return y

    compare("nbeats", q, ref, p, [r(5, 4, dtype=dtype)], (0,), dtype)


# ------------------------------------------------------------------ state_dict, state


def test_state_dict_both_ways():
    """torch -> ktorch (load_state_dict) gives torch's outputs; ktorch -> torch likewise."""
    k, t = layer_opts(bf=True)
    cases = [
        (("attention", E, 2, {"kdim": 5, "vdim": 3, "addbias": True}),
         lambda: nn.MultiheadAttention(E, 2, kdim=5, vdim=3, add_bias_kv=True),
         [r(L, N, E), r(S, N, 5), r(S, N, 3)], lambda tm, *x: tm(*x)[0]),
        (("transformer", E, 2, 1, 2, 16, k), lambda: nn.Transformer(E, 2, 1, 2, 16, **t),
         [r(N, S, E), r(N, L, E)], lambda tm, *x: tm(*x)),
    ]
    for spec, make, xs, call in cases:
        tm = randomize(make()).eval()
        q = kt.module(spec)
        assert list(kt.state_dict(q)) == list(tm.state_dict())
        kt.load_state_dict(q, tm.state_dict())
        a = kt.evaluate(q, *xs)
        a = a[0] if isinstance(a, list) else a
        with torch.no_grad():
            want = call(tm, *[torch.from_numpy(x) for x in xs]).numpy()
        np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-6)
        q2 = kt.module(spec)
        tm2 = make().eval()
        tm2.load_state_dict(kt.state_dict(q))  # ktorch -> torch
        kt.load_state_dict(q2, kt.state_dict(q))
        with torch.no_grad():
            np.testing.assert_allclose(call(tm2, *[torch.from_numpy(x) for x in xs]).numpy(), want, rtol=1e-5, atol=1e-6)


ROUND = [
    (("attention", E, 2, 0.1, True, True, True, 5, 3, {"batchfirst": True}), [r(N, L, E), r(N, S, 5), r(N, S, 3)]),
    (("selfattention", E, 2, 0.1, True), [r(N, L, E), causal(L)]),
    (("encoderlayer", E, 2, 16, 0.1, "gelu", {"normfirst": True, "eps": 1e-4}), [r(L, N, E), causal(L)]),
    (("decoderlayer", E, 2, 16, {"batchfirst": True, "bias": False}), [r(N, L, E), r(N, S, E)]),
    (("encoder", ("encoderlayer", E, 2, 16), 2, E, {"causal": True}), [r(L, N, E)]),
    (("decoder", {"in": E, "heads": 2, "dim": 16}, 2, ("layernorm", E, 1e-4)), [r(L, N, E), r(S, N, E)]),
    (("transformer", E, 2, 1, 1, 16, {"batchfirst": True, "causal": True,
                                      "encoder": ("encoder", (E, 2, 8), 2)}), [r(N, S, E), r(N, L, E)]),
    (kt.seq("nbeats", ("rnn", 4, 4), kt.seq("sequential", ("linear", 4, 4), ("gru", 4, 4))), [r(3, 2, 4)]),
]


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


@pytest.mark.parametrize("spec,xs", ROUND, ids=[(s[0] if isinstance(s, tuple) else s[0]) for s, _ in ROUND])
def test_state_round_trip(spec, xs):
    q = kt.module(spec)
    kt.training(q, False)
    s = kt.state(q)
    q2 = kt.module(s)
    same_state(kt.state(q2), s)
    assert kt.parmnames(q2) == kt.parmnames(q)
    a, b = kt.evaluate(q, *xs), kt.evaluate(q2, *xs)
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True):
        np.testing.assert_array_equal(x, y)


def test_help_lists_the_types():
    names = kt.help("module")
    for t in ["attention", "selfattention", "encoder", "encoderlayer", "decoder", "decoderlayer", "transformer",
              "nbeats"]:
        assert t in names


# ------------------------------------------------------------------ bad options and inputs

K = kt.KtorchError
BAD = [
    ("attention-divisible", ("attention", 10, 3), "attention: dim of 10 is not divisible by 3 heads"),
    ("attention-no-heads", ("attention", 8), "attention: heads not defined"),
    ("attention-heads", ("attention", 8, 0), "attention: heads must be positive, given 0"),
    ("attention-dropout", ("attention", 8, 2, 1.5), "attention: dropout must be in the range 0-1, given 1.5"),
    ("attention-kdim", ("attention", 8, 2, {"kdim": 0}), "attention: kdim must be positive, given 0"),
    ("attention-bias-type", ("attention", 8, 2, {"bias": 1}), "attention: bias expects a boolean, given int"),
    ("attention-dim-type", ("attention", 8.5, 2), "attention: dim expects an integer, given float"),
    ("attention-count", ("attention", 8, 2, 0.0, True, False, False, 8, 8, False, 1),
     "attention: expecting at most 9 positional setting(s), given 10"),
    ("attention-unknown", ("attention", 8, 2, {"batch_first": True}), "attention: unrecognized option: batch_first"),
    ("selfattention-no-heads", ("selfattention", 8), "selfattention: heads not defined"),
    ("selfattention-divisible", ("selfattention", 6, 4), "selfattention: dim of 6 is not divisible by 4 heads"),
    ("selfattention-heads", ("selfattention", 4, 4), "selfattention: expecting fewer heads than dim"),
    ("selfattention-norm-type", ("selfattention", 8, 2, 0.1, 1), "selfattention: norm expects a boolean, given int"),
    ("encoderlayer-divisible", ("encoderlayer", 10, 3),
     "encoderlayer: in (the model's dimension) of 10 is not divisible by 3 heads"),
    ("encoderlayer-fn", ("encoderlayer", 8, 2, 16, 0.1, "tanh"),
     "encoderlayer: fn: unrecognized value `tanh`, expecting one of: relu, gelu"),
    ("encoderlayer-dim", ("encoderlayer", 8, 2, 0), "encoderlayer: dim must be positive, given 0"),
    ("encoderlayer-eps", ("encoderlayer", 8, 2, {"eps": -1.0}), "encoderlayer: eps must be non-negative"),
    ("encoderlayer-in", ("encoderlayer",), "encoderlayer: in not defined"),
    ("decoderlayer-dropout", ("decoderlayer", 8, 2, {"dropout": -0.1}), "decoderlayer: dropout must be in the range 0-1"),
    ("decoderlayer-count", ("decoderlayer", 8, 2, 16, 0.1, "relu", 1e-5, False, False, True, False, 1),
     "decoderlayer: expecting at most 10 positional setting(s), given 11"),
    ("encoder-layer-type", ("encoder", ("decoderlayer", 8, 2), 1),
     "encoder: unexpected module `decoderlayer`, expecting encoderlayer settings"),
    ("encoder-no-layer", ("encoder", {"layers": 2}), "encoder: encoderlayer not defined"),
    ("encoder-no-count", ("encoder", ("encoderlayer", 8, 2)), "encoder: layers not defined"),
    ("encoder-count", ("encoder", (8, 2), -1), "encoder: layers must be a non-negative count, given -1"),
    ("encoder-norm", ("encoder", (8, 2), 1, 6), "encoder: layernorm of shape [6] does not match the layers' dimension 8"),
    ("encoder-layer-value", ("encoder", 8, 1), "encoder: encoderlayer expects a tuple, list or dict of encoderlayer"),
    ("encoder-nested", ("encoder", ("encoderlayer", 10, 3), 1), "encoderlayer: in (the model's dimension) of 10"),
    ("decoder-layer-type", ("decoder", ("encoderlayer", 8, 2), 1),
     "decoder: unexpected module `encoderlayer`, expecting decoderlayer settings"),
    ("decoder-causal-type", ("decoder", (8, 2), 1, {"causal": "yes"}), "decoder: causal expects a boolean, given string"),
    ("transformer-divisible", ("transformer", 10, 3), "transformer: in (the model's dimension) of 10 is not divisible"),
    ("transformer-elayers", ("transformer", 8, 2, -1), "transformer: elayers must be a non-negative count, given -1"),
    ("transformer-fn", ("transformer", {"fn": "tanh"}), "transformer: fn: unrecognized value `tanh`"),
    ("transformer-encoder", ("transformer", 8, 2, {"encoder": ("linear", 2, 2)}),
     "transformer: encoder expects an encoder module, given linear"),
    ("transformer-decoder-value", ("transformer", 8, 2, {"decoder": 3}),
     "transformer: decoder expects a spec of an decoder module, given int"),
    ("nbeats-settings", ("nbeats", 1), "nbeats: expecting at most 0 positional setting(s), given 1"),
    ("attention-children", [("attention", 8, 2), ("linear", 8, 8)], "attention: builds its own child modules"),
]


@pytest.mark.parametrize("spec,msg", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_options(spec, msg):
    with pytest.raises(K) as e:
        kt.module(spec)
    assert msg in str(e.value)


X3 = r(N, L, E)
BAD_INPUT = [
    ("attention-inputs", ("attention", E, 2), [X3, X3], "attention: forward expects 3-7 input tensor(s), given 2"),
    ("attention-embed", ("attention", E, 2), [r(L, N, 4), X3, X3], "attention: expecting query with embedding dimension 8"),
    ("attention-kdim", ("attention", E, 2, {"kdim": 5}), [X3, X3, X3], "attention: expecting key with embedding dimension 5"),
    ("attention-dims", ("attention", E, 2), [r(2, L, N, E), X3, X3], "attention: expecting 2-dim (unbatched) or 3-dim"),
    ("attention-padmask", ("attention", E, 2), [X3, X3, X3, padmask(L, 2)], "attention: key padding mask of size [5, 2]"),
    ("attention-mask", ("attention", E, 2), [X3, X3, X3, None, True, causal(4)], "attention: attention mask of size [4, 4]"),
    ("attention-mask-int", ("attention", E, 2), [X3, X3, X3, None, True, np.zeros((N, N), np.int64)],
     "attention: only boolean and floating attention mask"),
    ("attention-flag", ("attention", E, 2), [X3, X3, X3, None, np.array([True, False])],
     "attention: need-weights input expects a single flag"),
    ("selfattention-dims", ("selfattention", E, 2), [r(L, E)], "selfattention: expecting input of batch x sequence x 8"),
    ("selfattention-mask", ("selfattention", E, 2), [X3, causal(3)], "selfattention: expecting a mask of size [5, 5]"),
    ("selfattention-padmask", ("selfattention", E, 2), [X3, None, padmask(2, L)],
     "selfattention: expecting a padding mask of size [3, 5]"),
    ("encoderlayer-inputs", ("encoderlayer", E, 2), [X3, X3, X3, X3], "encoderlayer: forward expects 1-3 input tensor(s)"),
    ("decoderlayer-inputs", ("decoderlayer", E, 2), [X3], "decoderlayer: forward expects 2-6 input tensor(s)"),
    ("encoder-causal-mask", ("encoder", (E, 2), 1, {"causal": True}), [X3, causal(N)],
     "encoder: causal is set: the attention mask is made, not given"),
    ("transformer-batch", ("transformer", E, 2, 1, 1, 16), [X3, r(L, N + 1, E)],
     "transformer: the batch sizes of source and target must be equal"),
    ("transformer-features", ("transformer", E, 2, 1, 1, 16), [X3, r(N, L, 4)],
     "transformer: the features of source and target must be the model's dimension 8"),
    ("nbeats-one-output", kt.seq("nbeats", ("linear", 4, 4)), [r(2, 4)],
     "nbeats: block 0 (linear) returned 1 output(s), expecting a backcast and a forecast"),
    ("nbeats-empty", "nbeats", [r(2, 4)], "nbeats: no blocks"),
]


@pytest.mark.parametrize("spec,xs,msg", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_inputs(spec, xs, msg):
    q = kt.module(spec)
    hs, _ = inputs(xs, (), np.float32)
    with pytest.raises(K) as e:
        kt.forward(q, *hs)
    assert msg in str(e.value)


# ------------------------------------------------------------------ training with kt.run

V, C, LEN, D, B, NB = 11, 3, 6, 16, 8, 32


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


def torch_losses(tm, batches, loss, opt, epochs):
    out = []
    for _ in range(epochs):
        for xs, y in batches:
            opt.zero_grad()
            lo = loss(tm(*xs), y)
            lo.backward()
            opt.step()
            out.append(lo.item())
    return out


def copy_weights(q, tm):
    tm.load_state_dict(kt.state_dict(q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_run_encoder_classifier(dtype):
    """embed + encoder (2 layers, d=16) + mean over the sequence + linear, trained with
    kt.run (adam, no shuffle, dropout 0): losses as torch's loop on the same batches."""
    g = np.random.default_rng(1)
    x = g.integers(0, V, (NB, LEN)).astype(np.int64)
    y = g.integers(0, C, NB).astype(np.int64)
    layer = ("encoderlayer", D, 4, 32, 0.0, {"batchfirst": True})
    spec = kt.seq("sequential", ("embed", V, D), ("encoder", layer, 2, D), ("transpose", 1, 2), ("adaptavg1d", 1),
                  "flatten", ("linear", D, C))
    q = kt.module(spec if dtype is np.float32 else kt.seq(("sequential", {"dtype": "double"}), *spec[1:]))
    tm = nn.Sequential(nn.Embedding(V, D),
                       nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 4, 32, 0.0, batch_first=True), 2,
                                             nn.LayerNorm(D), enable_nested_tensor=False),
                       Transpose(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(D, C)).to(TORCH[dtype])
    copy_weights(q, tm)
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    kt.train(m, {"batchsize": B, "shuffle": False, "metrics": "batchloss"})
    kt.train(m, x, y)
    got = [v for _ in range(3) for v in kt.run(m)]
    batches = [((torch.from_numpy(x[i:i + B]),), torch.from_numpy(y[i:i + B])) for i in range(0, NB, B)]
    want = torch_losses(tm, batches, F.cross_entropy, torch.optim.Adam(tm.parameters(), lr=0.01), 3)
    note("run-classifier", dtype, float(np.max(np.abs(np.subtract(got, want)))), 0.0)
    rtol = 1e-5 if dtype is np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert got[-1] < got[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_run_causal_decoder(dtype):
    """A decoder (2 layers, d=16) with the causal option, inputs (target, memory) as the
    model's data, trained with kt.run (sgd): losses as torch's loop with the causal mask."""
    g = np.random.default_rng(2)
    tgt = g.standard_normal((NB, LEN, D)).astype(dtype)
    mem = g.standard_normal((NB, LEN + 1, D)).astype(dtype)
    y = g.standard_normal((NB, LEN, D)).astype(dtype)
    spec = ("decoder", ("decoderlayer", D, 4, 32, 0.0, {"batchfirst": True}), 2, D, {"causal": True})
    q = kt.module(spec_of(spec, dtype))
    tm = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, 4, 32, 0.0, batch_first=True), 2,
                               nn.LayerNorm(D)).to(TORCH[dtype])
    copy_weights(q, tm)
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.05, 0.9))
    kt.train(m, {"batchsize": B, "shuffle": False, "metrics": "batchloss"})
    kt.train(m, (tgt, mem), y)
    got = [v for _ in range(3) for v in kt.run(m)]
    mask = nn.Transformer.generate_square_subsequent_mask(LEN, dtype=TORCH[dtype])
    batches = [((torch.from_numpy(tgt[i:i + B]), torch.from_numpy(mem[i:i + B])), torch.from_numpy(y[i:i + B]))
               for i in range(0, NB, B)]
    want = torch_losses(lambda t, mm: tm(t, mm, tgt_mask=mask), batches, F.mse_loss,
                        torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9), 3)
    note("run-decoder", dtype, float(np.max(np.abs(np.subtract(got, want)))), 0.0)
    rtol = 1e-5 if dtype is np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert got[-1] < got[0]
