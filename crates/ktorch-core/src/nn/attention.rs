//! Attention: `attention` (torch.nn.MultiheadAttention, with PyTorch's parameter
//! names and its calculation step for step) and `selfattention` (the original's
//! knn::SelfAttention: one input for query, key and value, an optional layer norm
//! first). The masks follow PyTorch: a boolean mask is true where attention is not
//! allowed, a floating mask is added to the attention scores.

use tch::{Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{filled, spec::Given, uniform, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["attention", "selfattention"];

/// attention's settings, in the original's positional order, then by name only.
const MHA: &[&str] = &[
    "dim",
    "heads",
    "dropout",
    "bias",
    "addbias",
    "addzero",
    "kdim",
    "vdim",
    "batchfirst",
];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "attention" => attention(pos, kw),
        "selfattention" => selfattention(pos, kw),
        _ => Err(unknown(kind)),
    }
}

/// Xavier (Glorot) uniform values for a matrix of `out` rows and `in` columns.
fn xavier(size: &[i64]) -> Result<Tensor> {
    uniform(size, xavier_bound(size))
}

/// The bound of xavier uniform values for a tensor of `size` (2 or more dimensions).
pub(crate) fn xavier_bound(size: &[i64]) -> f64 {
    let (fan_out, fan_in) = fans(size);
    (6.0 / (fan_in + fan_out) as f64).sqrt()
}

/// Fan in and fan out as torch.nn.init counts them (2 or more dimensions).
fn fans(size: &[i64]) -> (i64, i64) {
    let field: i64 = size.iter().skip(2).product();
    (size[0] * field, size.get(1).copied().unwrap_or(1) * field)
}

/// A positive integer setting with a default.
pub(crate) fn positive(a: &Args, name: &str, default: i64) -> Result<i64> {
    match a.get(name) {
        None => Ok(default),
        Some(_) => a.req_pos(name),
    }
}

fn attention(pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let kind = "attention";
    let a = Args::parse(kind, MHA, pos, kw)?;
    let (dim, heads) = (a.req_pos("dim")?, a.req_pos("heads")?);
    if dim > i64::MAX / 3 {
        return Err(err(kind, format!("dim of {dim} is too large")));
    }
    if dim % heads != 0 {
        return Err(err(
            kind,
            format!("dim of {dim} is not divisible by {heads} heads"),
        ));
    }
    let cfg = Mha {
        dim,
        heads,
        dropout: a.float_in("dropout", 0.0, 0.0, 1.0)?,
        bias: a.bool("bias", true)?,
        addbias: a.bool("addbias", false)?,
        addzero: a.bool("addzero", false)?,
        kdim: positive(&a, "kdim", dim)?,
        vdim: positive(&a, "vdim", dim)?,
        batchfirst: a.bool("batchfirst", false)?,
    };
    let mut m = Module::new(kind, cfg.clone());
    // torch's order and initialisation: xavier uniform projections, zero biases,
    // xavier normal key and value biases
    if cfg.packed() {
        m = m.with_param("in_proj_weight", xavier(&[3 * dim, dim])?)?;
    } else {
        m = m.with_param("q_proj_weight", xavier(&[dim, dim])?)?;
        m = m.with_param("k_proj_weight", xavier(&[dim, cfg.kdim])?)?;
        m = m.with_param("v_proj_weight", xavier(&[dim, cfg.vdim])?)?;
    }
    if cfg.bias {
        m = m.with_param("in_proj_bias", filled(&[3 * dim], 0.0)?)?;
    }
    if cfg.addbias {
        let std = (2.0 / (2 * dim) as f64).sqrt();
        for k in ["bias_k", "bias_v"] {
            let t = crate::nn::normal(&[1, 1, dim])?;
            let _g = tch::no_grad_guard();
            m = m.with_param(k, t.f_mul_scalar(std)?)?;
        }
    }
    let out = Module::layer(
        "linear",
        &[Value::Int(dim), Value::Int(dim)],
        &[("bias".to_string(), Value::Bool(cfg.bias))],
    )?;
    if cfg.bias {
        let _g = tch::no_grad_guard();
        let _ = out.param_at(1)?.shallow_clone().f_zero_()?;
    }
    Ok(m.with_child("out_proj", out))
}

/// Multi-head attention's settings (torch.nn.MultiheadAttention's).
#[derive(Debug, Clone)]
pub(crate) struct Mha {
    dim: i64,
    heads: i64,
    dropout: f64,
    bias: bool,
    addbias: bool,
    addzero: bool,
    kdim: i64,
    vdim: i64,
    pub(crate) batchfirst: bool,
}

impl Mha {
    /// One projection matrix for query, key and value (`in_proj_weight`).
    fn packed(&self) -> bool {
        self.kdim == self.dim && self.vdim == self.dim
    }
}

/// Which of query, key and value are one tensor: torch projects them together then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Same {
    /// Query, key and value (self-attention).
    All,
    /// Key and value (encoder-decoder attention).
    KeyValue,
    /// None.
    Neither,
}

/// Whether two inputs are the same tensor (the same data, view and dtype).
fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
    a.defined()
        && b.defined()
        && a.data_ptr() == b.data_ptr()
        && a.size() == b.size()
        && a.stride() == b.stride()
        && a.kind() == b.kind()
        && a.device() == b.device()
}

/// Input `i`, where given: an empty tensor stands for none (a mask skipped to give
/// a later one).
pub(crate) fn present(xs: &[Tensor], i: usize) -> Option<&Tensor> {
    xs.get(i).filter(|t| t.defined() && t.numel() > 0)
}

/// A flag given as a one-element tensor (attention's need-weights input).
fn flag(kind: &str, what: &str, t: Option<&Tensor>, default: bool) -> Result<bool> {
    match t {
        None => Ok(default),
        Some(t) if t.numel() == 1 => Ok(t.f_double_value(&[])? != 0.0),
        Some(t) => Err(err(
            kind,
            format!(
                "{what} expects a single flag, given a tensor of size {:?}",
                t.size()
            ),
        )),
    }
}

/// A mask as attention adds it (torch's `_canonical_mask`): a boolean mask becomes
/// zeros with `-inf` where true, in dtype `target`; a floating mask is kept.
pub(crate) fn canonical(
    kind: &str,
    name: &str,
    mask: Option<&Tensor>,
    target: Kind,
) -> Result<Option<Tensor>> {
    let Some(m) = mask else { return Ok(None) };
    if m.kind() == Kind::Bool {
        let z = Tensor::f_zeros(m.size(), (target, m.device()))?;
        Ok(Some(z.f_masked_fill(m, f64::NEG_INFINITY)?))
    } else if m.is_floating_point() {
        Ok(Some(m.shallow_clone()))
    } else {
        Err(err(
            kind,
            format!(
                "only boolean and floating {name} is supported, given {:?}",
                m.kind()
            ),
        ))
    }
}

/// The causal mask for a sequence of length `n`: `-inf` above the diagonal.
pub(crate) fn causal_mask(n: i64, kind: Kind, device: tch::Device) -> Result<Tensor> {
    Ok(Tensor::f_full([n, n], f64::NEG_INFINITY, (kind, device))?.f_triu(1)?)
}

/// Whether `mask` is the causal mask of a sequence of length `n` (torch's
/// `_detect_is_causal_mask`, compared in the mask's own dtype).
pub(crate) fn is_causal(mask: Option<&Tensor>, n: i64) -> Result<bool> {
    let Some(m) = mask else { return Ok(false) };
    if m.size() != [n, n] || !(m.is_floating_point() || m.kind() == Kind::Bool) {
        return Ok(false);
    }
    let c = causal_mask(n, m.kind(), m.device())?;
    Ok(m.f_eq_tensor(&c)?.f_all()?.f_int64_value(&[])? != 0)
}

/// One parameter of `m` by name.
fn own(m: &Module, name: &str) -> Result<Tensor> {
    m.own_param(name)
        .map(Tensor::shallow_clone)
        .ok_or_else(|| err(m.kind(), format!("no parameter `{name}`")))
}

/// What a caller of [`attend`] asks for beyond query, key and value.
#[derive(Default)]
pub(crate) struct Ask<'a> {
    /// Key padding mask: `N x S` (`S` unbatched), true (or `-inf`) at padding.
    pub pad: Option<&'a Tensor>,
    /// Attention mask: `L x S` or `N*heads x L x S`.
    pub mask: Option<&'a Tensor>,
    /// Return the attention weights too (torch's slower path without the fused
    /// attention kernel).
    pub weights: bool,
    /// Average the weights over the heads.
    pub average: bool,
    /// The mask is causal (torch's `is_causal` hint).
    pub causal: bool,
}

/// torch.nn.MultiheadAttention's forward for the `attention` module `m`: the
/// output and, if asked, the attention weights.
pub(crate) fn attend(
    m: &Module,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    same: Same,
    ask: &Ask,
) -> Result<(Tensor, Option<Tensor>)> {
    let kind = m.kind();
    let cfg = m
        .layer_as::<Mha>()
        .ok_or_else(|| err(kind, "expecting a multi-head attention module"))?;
    let batched = query.dim() == 3;
    let target = query.kind();
    let pad = canonical(kind, "key padding mask", ask.pad, target)?;
    let mask = canonical(kind, "attention mask", ask.mask, target)?;
    let (q, k, v) = if cfg.batchfirst && batched {
        match same {
            Same::All => {
                let t = query.f_transpose(1, 0)?;
                (t.shallow_clone(), t.shallow_clone(), t)
            }
            Same::KeyValue => {
                let t = key.f_transpose(1, 0)?;
                (query.f_transpose(1, 0)?, t.shallow_clone(), t)
            }
            Same::Neither => (
                query.f_transpose(1, 0)?,
                key.f_transpose(1, 0)?,
                value.f_transpose(1, 0)?,
            ),
        }
    } else {
        (
            query.shallow_clone(),
            key.shallow_clone(),
            value.shallow_clone(),
        )
    };
    let (y, w) = mha_forward(m, cfg, &q, &k, &v, same, pad, mask, ask)?;
    let y = if cfg.batchfirst && batched {
        y.f_transpose(1, 0)?
    } else {
        y
    };
    Ok((y, w))
}

/// torch.nn.functional.multi_head_attention_forward, sequence first.
#[allow(clippy::too_many_arguments)]
fn mha_forward(
    m: &Module,
    cfg: &Mha,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    same: Same,
    pad: Option<Tensor>,
    mask: Option<Tensor>,
    ask: &Ask,
) -> Result<(Tensor, Option<Tensor>)> {
    let kind = m.kind();
    let batched = check_shapes(
        kind,
        query,
        key,
        value,
        pad.as_ref(),
        mask.as_ref(),
        cfg.heads,
    )?;
    // unbatched inputs are unsqueezed one by one: torch then projects them apart
    let same = if batched { same } else { Same::Neither };
    let (query, key, value, mut pad) = if batched {
        (
            query.shallow_clone(),
            key.shallow_clone(),
            value.shallow_clone(),
            pad,
        )
    } else {
        (
            query.f_unsqueeze(1)?,
            key.f_unsqueeze(1)?,
            value.f_unsqueeze(1)?,
            pad.map(|p| p.f_unsqueeze(0)).transpose()?,
        )
    };
    let (tgt_len, bsz, embed) = (query.size()[0], query.size()[1], query.size()[2]);
    let mut causal = ask.causal;
    if causal && mask.is_none() {
        return Err(err(kind, "a causal hint needs the attention mask"));
    }
    let mut mask = if causal && pad.is_none() && !ask.weights {
        None
    } else {
        if pad.is_some() {
            causal = false;
        }
        mask
    };
    if embed != cfg.dim {
        return Err(err(
            kind,
            format!(
                "expecting query with embedding dimension {}, given {embed}",
                cfg.dim
            ),
        ));
    }
    let (heads, hd) = (cfg.heads, cfg.dim / cfg.heads);
    for (what, t, want) in [("key", &key, cfg.kdim), ("value", &value, cfg.vdim)] {
        if t.size()[2] != want {
            return Err(err(
                kind,
                format!(
                    "expecting {what} with embedding dimension {want}, given {}",
                    t.size()[2]
                ),
            ));
        }
    }
    if key.size()[..2] != value.size()[..2] {
        return Err(err(
            kind,
            format!(
                "key's sequence and batch sizes {:?} do not match value's {:?}",
                &key.size()[..2],
                &value.size()[..2]
            ),
        ));
    }
    if key.size()[1] != bsz {
        return Err(err(
            kind,
            format!(
                "query's batch size {bsz} does not match key's {}",
                key.size()[1]
            ),
        ));
    }
    let b = m.own_param("in_proj_bias").map(Tensor::shallow_clone);
    let (q, mut k, mut v) = if cfg.packed() {
        let w = own(m, "in_proj_weight")?;
        let e = cfg.dim;
        match same {
            Same::All => {
                let p = query
                    .f_linear(&w, b.as_ref())?
                    .f_unflatten(-1, [3, e])?
                    .f_unsqueeze(0)?
                    .f_transpose(0, -2)?
                    .f_squeeze_dim(-2)?
                    .f_contiguous()?;
                (p.f_get(0)?, p.f_get(1)?, p.f_get(2)?)
            }
            Same::KeyValue => {
                let ws = w.f_split_with_sizes([e, 2 * e], 0)?;
                let bs = b
                    .as_ref()
                    .map(|b| b.f_split_with_sizes([e, 2 * e], 0))
                    .transpose()?;
                let q = query.f_linear(&ws[0], bs.as_ref().map(|b| &b[0]))?;
                let kv = key
                    .f_linear(&ws[1], bs.as_ref().map(|b| &b[1]))?
                    .f_unflatten(-1, [2, e])?
                    .f_unsqueeze(0)?
                    .f_transpose(0, -2)?
                    .f_squeeze_dim(-2)?
                    .f_contiguous()?;
                (q, kv.f_get(0)?, kv.f_get(1)?)
            }
            Same::Neither => {
                let ws = w.f_chunk(3, 0)?;
                let bs = b.as_ref().map(|b| b.f_chunk(3, 0)).transpose()?;
                let bi = |i: usize| bs.as_ref().map(|b| &b[i]);
                (
                    query.f_linear(&ws[0], bi(0))?,
                    key.f_linear(&ws[1], bi(1))?,
                    value.f_linear(&ws[2], bi(2))?,
                )
            }
        }
    } else {
        let bs = b.as_ref().map(|b| b.f_chunk(3, 0)).transpose()?;
        let bi = |i: usize| bs.as_ref().map(|b| &b[i]);
        (
            query.f_linear(&own(m, "q_proj_weight")?, bi(0))?,
            key.f_linear(&own(m, "k_proj_weight")?, bi(1))?,
            value.f_linear(&own(m, "v_proj_weight")?, bi(2))?,
        )
    };
    let mut src_len = key.size()[0];
    if let Some(a) = &mask {
        mask = Some(match a.dim() {
            2 => {
                if a.size() != [tgt_len, src_len] {
                    return Err(err(
                        kind,
                        format!(
                            "attention mask of size {:?}, expecting {:?}",
                            a.size(),
                            [tgt_len, src_len]
                        ),
                    ));
                }
                a.f_unsqueeze(0)?
            }
            3 => {
                if a.size() != [bsz * heads, tgt_len, src_len] {
                    return Err(err(
                        kind,
                        format!(
                            "3-dim attention mask of size {:?}, expecting {:?} (batch x heads, target, source)",
                            a.size(),
                            [bsz * heads, tgt_len, src_len]
                        ),
                    ));
                }
                a.shallow_clone()
            }
            n => {
                return Err(err(
                    kind,
                    format!("attention mask of {n} dimension(s) is not supported"),
                ))
            }
        });
    }
    let padded = |t: Option<Tensor>| -> Result<Option<Tensor>> {
        Ok(t.map(|t| t.f_constant_pad_nd([0, 1])).transpose()?)
    };
    if cfg.addbias {
        let (bk, bv) = (own(m, "bias_k")?, own(m, "bias_v")?);
        k = Tensor::f_cat(&[&k, &bk.f_repeat([1, bsz, 1])?], 0)?;
        v = Tensor::f_cat(&[&v, &bv.f_repeat([1, bsz, 1])?], 0)?;
        mask = padded(mask)?;
        pad = padded(pad)?;
    }
    let q = q.f_view([tgt_len, bsz * heads, hd])?.f_transpose(0, 1)?;
    k = k
        .f_view([k.size()[0], bsz * heads, hd])?
        .f_transpose(0, 1)?;
    v = v
        .f_view([v.size()[0], bsz * heads, hd])?
        .f_transpose(0, 1)?;
    if cfg.addzero {
        let z = Tensor::f_zeros([bsz * heads, 1, hd], (k.kind(), k.device()))?;
        k = Tensor::f_cat(&[&k, &z], 1)?;
        let z = Tensor::f_zeros([bsz * heads, 1, hd], (v.kind(), v.device()))?;
        v = Tensor::f_cat(&[&v, &z], 1)?;
        mask = padded(mask)?;
        pad = padded(pad)?;
    }
    src_len = k.size()[1];
    if let Some(p) = &pad {
        if p.size() != [bsz, src_len] {
            return Err(err(
                kind,
                format!(
                    "key padding mask of size {:?}, expecting {:?} (batch, source)",
                    p.size(),
                    [bsz, src_len]
                ),
            ));
        }
        let p = p
            .f_view([bsz, 1, 1, src_len])?
            .f_expand([-1, heads, -1, -1], false)?
            .f_reshape([bsz * heads, 1, src_len])?;
        mask = Some(match mask {
            None => p,
            Some(a) => a.f_add(&p)?,
        });
    }
    let p = if m.is_training() { cfg.dropout } else { 0.0 };
    let out = m
        .children()
        .iter()
        .find(|(k, _)| k == "out_proj")
        .map(|(_, c)| c)
        .ok_or_else(|| err(kind, "no out_proj child"))?;
    let (ow, ob) = (own(out, "weight")?, out.own_param("bias"));
    if ask.weights {
        let qs = q.f_mul_scalar((1.0 / hd as f64).sqrt())?;
        let kt = k.f_transpose(-2, -1)?;
        let w = match &mask {
            Some(a) => a.f_baddbmm(&qs, &kt, 1, 1)?,
            None => qs.f_bmm(&kt)?,
        };
        let mut w = w.f_softmax(-1, w.kind())?;
        if p > 0.0 {
            w = w.f_dropout(p, true)?;
        }
        let y = w
            .f_bmm(&v)?
            .f_transpose(0, 1)?
            .f_contiguous()?
            .f_view([tgt_len * bsz, cfg.dim])?
            .f_linear(&ow, ob)?;
        let y = y.f_view([tgt_len, bsz, y.size()[1]])?;
        let mut w = w.f_view([bsz, heads, tgt_len, src_len])?;
        if ask.average {
            w = w.f_mean_dim([1i64].as_slice(), false, w.kind())?;
        }
        if batched {
            Ok((y, Some(w)))
        } else {
            Ok((y.f_squeeze_dim(1)?, Some(w.f_squeeze_dim(0)?)))
        }
    } else {
        let mask = match mask {
            Some(a) if a.size()[0] == 1 && a.dim() == 3 => Some(a.f_unsqueeze(0)?),
            Some(a) => Some(a.f_view([bsz, heads, -1, src_len])?),
            None => None,
        };
        let q = q.f_view([bsz, heads, tgt_len, hd])?;
        let k = k.f_view([bsz, heads, src_len, hd])?;
        let v = v.f_view([bsz, heads, src_len, hd])?;
        let y = Tensor::f_scaled_dot_product_attention(&q, &k, &v, mask, p, causal, None, false)?
            .f_permute([2, 0, 1, 3])?
            .f_contiguous()?
            .f_view([bsz * tgt_len, cfg.dim])?
            .f_linear(&ow, ob)?;
        let y = y.f_view([tgt_len, bsz, y.size()[1]])?;
        Ok((if batched { y } else { y.f_squeeze_dim(1)? }, None))
    }
}

/// torch's `_mha_shape_check`: true for batched (3-dim) input.
fn check_shapes(
    kind: &str,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    pad: Option<&Tensor>,
    mask: Option<&Tensor>,
    heads: i64,
) -> Result<bool> {
    let (q, k, v) = (query.dim(), key.dim(), value.dim());
    let batched = match q {
        3 => true,
        2 => false,
        n => {
            return Err(err(
                kind,
                format!("expecting 2-dim (unbatched) or 3-dim (batched) query, given {n}-dim"),
            ))
        }
    };
    if k != q || v != q {
        return Err(err(
            kind,
            format!(
                "for a {q}-dim query, expecting {q}-dim key and value, given {k}-dim and {v}-dim"
            ),
        ));
    }
    if let Some(p) = pad {
        if p.dim() != q - 1 {
            return Err(err(
                kind,
                format!(
                    "for a {q}-dim query, expecting a {}-dim key padding mask, given {}-dim",
                    q - 1,
                    p.dim()
                ),
            ));
        }
    }
    if let Some(a) = mask {
        if a.dim() != 2 && a.dim() != 3 {
            return Err(err(
                kind,
                format!(
                    "expecting a 2-dim or 3-dim attention mask, given {}-dim",
                    a.dim()
                ),
            ));
        }
        let want = [heads, query.size()[0], key.size()[0]];
        if !batched && a.dim() == 3 && a.size() != want {
            return Err(err(
                kind,
                format!(
                    "expecting a 3-dim attention mask of size {want:?} (heads, target, source), given {:?}",
                    a.size()
                ),
            ));
        }
    }
    Ok(batched)
}

impl Layer for Mha {
    /// `forward(query, key, value)`, then optionally the key padding mask, the
    /// need-weights flag (default true), the attention mask and the
    /// average-weights flag (default true): the output, then the attention weights
    /// unless the flag is false. An empty tensor skips a mask.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 3, 7)?;
        let (q, k, v) = (&xs[0], &xs[1], &xs[2]);
        let same = if same_tensor(q, k) && same_tensor(k, v) {
            Same::All
        } else if same_tensor(k, v) {
            Same::KeyValue
        } else {
            Same::Neither
        };
        let ask = Ask {
            pad: present(xs, 3),
            weights: flag(kind, "need-weights input", present(xs, 4), true)?,
            mask: present(xs, 5),
            average: flag(kind, "average-weights input", present(xs, 6), true)?,
            causal: false,
        };
        let (y, w) = attend(m, q, k, v, same, &ask)?;
        Ok(std::iter::once(y).chain(w).collect())
    }
    layer_clone!();
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

fn selfattention(pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let kind = "selfattention";
    let a = Args::parse(kind, &["dim", "heads", "dropout", "norm"], pos, kw)?;
    let (dim, heads) = (a.req_pos("dim")?, a.req_pos("heads")?);
    if dim > i64::MAX / 3 {
        return Err(err(kind, format!("dim of {dim} is too large")));
    }
    if dim % heads != 0 {
        return Err(err(
            kind,
            format!("dim of {dim} is not divisible by {heads} heads"),
        ));
    }
    if heads >= dim {
        return Err(err(
            kind,
            format!("expecting fewer heads than dim, given {heads} heads for dim {dim}"),
        ));
    }
    let dropout = a.float_in("dropout", 0.0, 0.0, 1.0)?;
    let norm = a.bool("norm", false)?;
    let mut m = Module::new(kind, SelfAttention { heads, norm });
    if norm {
        m = m.with_child("norm", Module::layer("layernorm", &[Value::Int(dim)], &[])?);
    }
    // after a layer norm, the input projection has no bias
    let lin = |i: i64, o: i64, bias: bool| {
        Module::layer(
            "linear",
            &[Value::Int(i), Value::Int(o)],
            &[("bias".to_string(), Value::Bool(bias))],
        )
    };
    Ok(m.with_child("in", lin(dim, 3 * dim, !norm)?)
        .with_child(
            "drop",
            Module::layer("drop", &[Value::Float(dropout)], &[])?,
        )
        .with_child("out", lin(dim, dim, true)?))
}

/// The original's self-attention: children `norm` (a layernorm, with `norm` set),
/// `in` (query, key and value in one linear layer), `drop` (dropout of the
/// attention weights), `out` (the output projection).
#[derive(Debug, Clone)]
struct SelfAttention {
    heads: i64,
    norm: bool,
}

impl SelfAttention {
    fn child<'a>(m: &'a Module, name: &str) -> Result<&'a Module> {
        m.children()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, c)| c)
            .ok_or_else(|| err(m.kind(), format!("no child `{name}`")))
    }
}

impl Layer for SelfAttention {
    /// `forward(x)`, `forward(x, mask)`, `forward(x, mask, padmask)`: x is batch x
    /// sequence x dim; mask is sequence x sequence (a larger one is cut to size);
    /// padmask is batch x sequence, true at padding. An empty mask is none.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 1, 3)?;
        let x = &xs[0];
        let s = x.size();
        let dim = Self::child(m, "out")?.param_at(0)?.size()[0];
        if s.len() != 3 || s[2] != dim {
            return Err(err(
                kind,
                format!("expecting input of batch x sequence x {dim}, given size {s:?}"),
            ));
        }
        let (h, hd, n) = (self.heads, s[2] / self.heads, s[1]);
        let x = if self.norm {
            Self::child(m, "norm")?.forward_first(&xs[..1])?
        } else {
            x.shallow_clone()
        };
        let c = Self::child(m, "in")?
            .forward_first(&[x])?
            .f_reshape([s[0], s[1], 3, h, hd])?
            .f_permute([2, 0, 3, 1, 4])?;
        let (q, k, v) = (c.f_get(0)?, c.f_get(1)?, c.f_get(2)?);
        let mut a = q
            .f_matmul(&k.f_transpose(-2, -1)?)?
            .f_mul_scalar(1.0 / (hd as f64).sqrt())?;
        if let Some(mk) = canonical(kind, "mask", present(xs, 1), a.kind())? {
            // as the original: a larger square mask is cut to the sequence's length
            let sz = mk.size();
            let mk = if sz.last() != Some(&n) && sz.len() == 2 && sz[0] >= n && sz[1] >= n {
                mk.f_narrow(0, 0, n)?.f_narrow(1, 0, n)?
            } else {
                mk
            };
            if !crate::nn::broadcasts(&mk.size(), &a.size()) {
                return Err(err(
                    kind,
                    format!(
                        "expecting a mask of size {:?} (or a larger square one, or one that broadcasts to {:?}), given {:?}",
                        [n, n],
                        a.size(),
                        mk.size()
                    ),
                ));
            }
            a = a.f_add(&mk)?;
        }
        if let Some(p) = canonical(kind, "padding mask", present(xs, 2), a.kind())? {
            if p.size() != [s[0], n] {
                return Err(err(
                    kind,
                    format!(
                        "expecting a padding mask of size {:?} (batch x sequence), given {:?}",
                        [s[0], n],
                        p.size()
                    ),
                ));
            }
            a = a.f_add(&p.f_view([s[0], 1, 1, n])?)?;
        }
        let a = Self::child(m, "drop")?.forward_first(&[a.f_softmax(-1, a.kind())?])?;
        let y = a
            .f_matmul(&v)?
            .f_transpose(1, 2)?
            .f_contiguous()?
            .f_view(s.as_slice())?;
        Ok(vec![Self::child(m, "out")?.forward_first(&[y])?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    #[test]
    fn attention_parameters_as_torch_names_them() {
        let m = make("attention", vec![Value::Int(8), Value::Int(2)]);
        assert_eq!(
            shapes(&m),
            named(&[
                ("in_proj_weight", &[24, 8]),
                ("in_proj_bias", &[24]),
                ("out_proj.weight", &[8, 8]),
                ("out_proj.bias", &[8]),
            ])
        );
        let m = make(
            "attention",
            vec![
                Value::Int(8),
                Value::Int(2),
                kw(vec![
                    ("kdim", Value::Int(3)),
                    ("vdim", Value::Int(5)),
                    ("addbias", true.into()),
                    ("bias", false.into()),
                ]),
            ],
        );
        assert_eq!(
            shapes(&m),
            named(&[
                ("q_proj_weight", &[8, 8]),
                ("k_proj_weight", &[8, 3]),
                ("v_proj_weight", &[8, 5]),
                ("bias_k", &[1, 1, 8]),
                ("bias_v", &[1, 1, 8]),
                ("out_proj.weight", &[8, 8]),
            ])
        );
    }

    #[test]
    fn attention_forward_sizes() {
        let m = make("attention", vec![Value::Int(8), Value::Int(2)]);
        let (q, kv) = (randn(&[5, 3, 8]), randn(&[7, 3, 8]));
        let out = m
            .forward(&[q.shallow_clone(), kv.shallow_clone(), kv.shallow_clone()])
            .expect("forward");
        assert_eq!(out[0].size(), [5, 3, 8]);
        assert_eq!(out[1].size(), [3, 5, 7]);
        // weights off: one output, the same values
        let off = Tensor::from(false);
        let one = m
            .forward(&[
                q.shallow_clone(),
                kv.shallow_clone(),
                kv,
                Tensor::new(),
                off,
            ])
            .expect("forward");
        assert_eq!(one.len(), 1);
        assert_close(&one[0], &out[0]);
    }

    #[test]
    fn bad_settings() {
        assert_eq!(
            build_err("attention", vec![Value::Int(10), Value::Int(3)]),
            "attention: dim of 10 is not divisible by 3 heads"
        );
        assert_eq!(
            build_err("attention", vec![Value::Int(10)]),
            "attention: heads not defined"
        );
        assert_eq!(
            build_err("selfattention", vec![Value::Int(4), Value::Int(4)]),
            "selfattention: expecting fewer heads than dim, given 4 heads for dim 4"
        );
    }

    #[test]
    fn selfattention_children() {
        let m = make(
            "selfattention",
            vec![Value::Int(8), Value::Int(2), Value::Float(0.0), true.into()],
        );
        assert_eq!(
            shapes(&m),
            named(&[
                ("norm.weight", &[8]),
                ("norm.bias", &[8]),
                ("in.weight", &[24, 8]),
                ("out.weight", &[8, 8]),
                ("out.bias", &[8]),
            ])
        );
        let y = fwd(&m, &[&randn(&[2, 5, 8])]);
        assert_eq!(y.size(), [2, 5, 8]);
    }
}
