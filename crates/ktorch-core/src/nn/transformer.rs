//! Transformers as torch.nn builds them: `encoderlayer`, `decoderlayer` (attention,
//! feed-forward, layer norms and dropouts as children with PyTorch's names),
//! `encoder`, `decoder` (a stack of copies of one layer under `layers`, an optional
//! final `norm`) and `transformer` (an `encoder` and a `decoder`). Each forward
//! follows torch.nn's step for step, masks included.

use tch::Tensor;

use crate::args::{split_options, Args};
use crate::error::{err, Result};
use crate::nn::attention::{
    attend, causal_mask, is_causal, positive, present, xavier_bound, Ask, Mha, Same,
};
use crate::nn::container::layer_clone;
use crate::nn::{spec, unknown, want_inputs, Layer, Module, Spec};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "encoderlayer",
    "decoderlayer",
    "encoder",
    "decoder",
    "transformer",
];

/// Settings of encoder and decoder layers: the original's five by position, then
/// torch's others and `causal` by name.
const LAYER: &[&str] = &[
    "in",
    "heads",
    "dim",
    "dropout",
    "fn",
    "eps",
    "batchfirst",
    "normfirst",
    "bias",
    "causal",
];

/// Settings of the transformer: the original's nine by position, then by name.
const TRANSFORMER: &[&str] = &[
    "in",
    "heads",
    "elayers",
    "dlayers",
    "dim",
    "dropout",
    "fn",
    "encoder",
    "decoder",
    "eps",
    "batchfirst",
    "normfirst",
    "bias",
    "causal",
];

pub(crate) fn build(g: &spec::Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "encoderlayer" | "decoderlayer" => coder_layer(kind, pos, kw),
        "encoder" | "decoder" => stack(kind, pos, kw),
        "transformer" => transformer(pos, kw),
        _ => Err(unknown(kind)),
    }
}

fn setting(k: &str, v: Value) -> (String, Value) {
    (k.to_string(), v)
}

/// The child of `m` called `name`.
fn kid<'a>(m: &'a Module, name: &str) -> Result<&'a Module> {
    m.children()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, c)| c)
        .ok_or_else(|| err(m.kind(), format!("no child module `{name}`")))
}

/// One forward output of child `name`.
fn run(m: &Module, name: &str, x: Tensor) -> Result<Tensor> {
    kid(m, name)?.forward_first(&[x])
}

fn coder_layer(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let a = Args::parse(kind, LAYER, pos, kw)?;
    let (d, heads) = (a.req_pos("in")?, a.req_pos("heads")?);
    if d % heads != 0 {
        return Err(err(
            kind,
            format!("in (the model's dimension) of {d} is not divisible by {heads} heads"),
        ));
    }
    let ff = positive(&a, "dim", 2048)?;
    let dropout = a.float_in("dropout", 0.1, 0.0, 1.0)?;
    let gelu = a.choice("fn", "relu", &["relu", "gelu"])? == "gelu";
    let eps = a.nonneg("eps", 1e-5)?;
    let batchfirst = a.bool("batchfirst", false)?;
    let normfirst = a.bool("normfirst", false)?;
    let bias = a.bool("bias", true)?;
    let causal = a.bool("causal", false)?;
    let decoder = kind == "decoderlayer";
    let attention = || {
        Module::layer(
            "attention",
            &[Value::Int(d), Value::Int(heads)],
            &[
                setting("dropout", Value::Float(dropout)),
                setting("bias", Value::Bool(bias)),
                setting("batchfirst", Value::Bool(batchfirst)),
            ],
        )
    };
    let linear = |i: i64, o: i64| {
        Module::layer(
            "linear",
            &[Value::Int(i), Value::Int(o)],
            &[setting("bias", Value::Bool(bias))],
        )
    };
    let norm = || {
        Module::layer(
            "layernorm",
            &[Value::Int(d)],
            &[
                setting("eps", Value::Float(eps)),
                setting("bias", Value::Bool(bias)),
            ],
        )
    };
    let drop = || Module::layer("drop", &[Value::Float(dropout)], &[]);
    let layer = Coder {
        gelu,
        normfirst,
        causal,
        decoder,
    };
    let mut m = Module::new(kind, layer).with_child("self_attn", attention()?);
    if decoder {
        m = m.with_child("multihead_attn", attention()?);
    }
    m = m
        .with_child("linear1", linear(d, ff)?)
        .with_child("dropout", drop()?)
        .with_child("linear2", linear(ff, d)?)
        .with_child("norm1", norm()?)
        .with_child("norm2", norm()?);
    if decoder {
        m = m.with_child("norm3", norm()?);
    }
    m = m
        .with_child("dropout1", drop()?)
        .with_child("dropout2", drop()?);
    if decoder {
        m = m.with_child("dropout3", drop()?);
    }
    Ok(m)
}

/// An encoder or decoder layer's own settings (the rest live in its children).
#[derive(Debug, Clone)]
struct Coder {
    gelu: bool,
    normfirst: bool,
    causal: bool,
    decoder: bool,
}

/// The masks a layer is given, canonical or not (each attention makes them so).
#[derive(Default, Clone, Copy)]
struct Masks<'a> {
    mask: Option<&'a Tensor>,
    pad: Option<&'a Tensor>,
    causal: bool,
}

impl Coder {
    fn of(m: &Module) -> Result<&Coder> {
        m.layer_as::<Coder>()
            .ok_or_else(|| err(m.kind(), "expecting an encoder or decoder layer"))
    }

    /// `linear2(dropout(activation(linear1(x))))`, then the last dropout.
    fn feed_forward(&self, m: &Module, x: Tensor) -> Result<Tensor> {
        let h = run(m, "linear1", x)?;
        let h = if self.gelu {
            h.f_gelu("none")?
        } else {
            h.f_relu()?
        };
        let y = run(m, "linear2", run(m, "dropout", h)?)?;
        run(m, if self.decoder { "dropout3" } else { "dropout2" }, y)
    }

    /// Attention of `x` to itself (child `self_attn`), then `dropout1`.
    fn self_block(&self, m: &Module, x: &Tensor, k: Masks) -> Result<Tensor> {
        let ask = Ask {
            pad: k.pad,
            mask: k.mask,
            weights: false,
            average: true,
            causal: k.causal,
        };
        let (y, _) = attend(kid(m, "self_attn")?, x, x, x, Same::All, &ask)?;
        run(m, "dropout1", y)
    }

    /// Attention of `x` to the encoder's output (child `multihead_attn`), then `dropout2`.
    fn memory_block(&self, m: &Module, x: &Tensor, mem: &Tensor, k: Masks) -> Result<Tensor> {
        let ask = Ask {
            pad: k.pad,
            mask: k.mask,
            weights: false,
            average: true,
            causal: false,
        };
        let (y, _) = attend(kid(m, "multihead_attn")?, x, mem, mem, Same::KeyValue, &ask)?;
        run(m, "dropout2", y)
    }
}

/// torch.nn.TransformerEncoderLayer's forward.
fn encode(m: &Module, src: &Tensor, k: Masks) -> Result<Tensor> {
    let c = Coder::of(m)?;
    let x = src.shallow_clone();
    if c.normfirst {
        let x = x.f_add(&c.self_block(m, &run(m, "norm1", x.shallow_clone())?, k)?)?;
        let f = c.feed_forward(m, run(m, "norm2", x.shallow_clone())?)?;
        Ok(x.f_add(&f)?)
    } else {
        let x = run(m, "norm1", x.f_add(&c.self_block(m, &x, k)?)?)?;
        let f = c.feed_forward(m, x.shallow_clone())?;
        run(m, "norm2", x.f_add(&f)?)
    }
}

/// torch.nn.TransformerDecoderLayer's forward: `k` for the target's self-attention,
/// `mk` for the attention to the memory.
fn decode(m: &Module, tgt: &Tensor, mem: &Tensor, k: Masks, mk: Masks) -> Result<Tensor> {
    let c = Coder::of(m)?;
    let x = tgt.shallow_clone();
    if c.normfirst {
        let x = x.f_add(&c.self_block(m, &run(m, "norm1", x.shallow_clone())?, k)?)?;
        let x = x.f_add(&c.memory_block(m, &run(m, "norm2", x.shallow_clone())?, mem, mk)?)?;
        let f = c.feed_forward(m, run(m, "norm3", x.shallow_clone())?)?;
        Ok(x.f_add(&f)?)
    } else {
        let x = run(m, "norm1", x.f_add(&c.self_block(m, &x, k)?)?)?;
        let x = run(m, "norm2", x.f_add(&c.memory_block(m, &x, mem, mk)?)?)?;
        let f = c.feed_forward(m, x.shallow_clone())?;
        run(m, "norm3", x.f_add(&f)?)
    }
}

/// The most layers an encoder or decoder stack takes (each a copy of the first).
const MAX_LAYERS: i64 = 10_000;

/// The mask given, or with `causal` set and none given, the causal mask for the
/// sequence of `x` (of length `n`).
fn made_mask(
    kind: &str,
    causal: bool,
    given: Option<&Tensor>,
    x: &Tensor,
    n: i64,
) -> Result<Option<Tensor>> {
    match (causal, given) {
        (false, g) => Ok(g.map(Tensor::shallow_clone)),
        (true, None) => Ok(Some(causal_mask(n, x.kind(), x.device())?)),
        (true, Some(_)) => Err(err(
            kind,
            "causal is set: the attention mask is made, not given",
        )),
    }
}

/// The sequence length of `x` (torch's `_get_seq_len`).
fn seq_len(x: &Tensor, batchfirst: bool) -> i64 {
    let s = x.size();
    match s.len() {
        3 if batchfirst => s[1],
        _ => s.first().copied().unwrap_or(0),
    }
}

/// Whether the self-attention of `layer` takes batch-first input.
fn batchfirst_of(layer: &Module) -> Result<bool> {
    Ok(kid(layer, "self_attn")?
        .layer_as::<Mha>()
        .is_some_and(|a| a.batchfirst))
}

impl Layer for Coder {
    /// Encoder layer: `forward(src)`, `forward(src, mask)`, `forward(src, mask,
    /// padmask)`. Decoder layer: `forward(tgt, memory)`, then optionally the
    /// target's mask, the memory's mask, the target's and the memory's padding
    /// masks. An empty tensor skips a mask.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        let bf = batchfirst_of(m)?;
        if self.decoder {
            want_inputs(kind, xs, 2, 6)?;
            let n = seq_len(&xs[0], bf);
            let mask = made_mask(kind, self.causal, present(xs, 2), &xs[0], n)?;
            let k = Masks {
                mask: mask.as_ref(),
                pad: present(xs, 4),
                causal: false,
            };
            let mk = Masks {
                mask: present(xs, 3),
                pad: present(xs, 5),
                causal: false,
            };
            Ok(vec![decode(m, &xs[0], &xs[1], k, mk)?])
        } else {
            want_inputs(kind, xs, 1, 3)?;
            let n = seq_len(&xs[0], bf);
            let mask = made_mask(kind, self.causal, present(xs, 1), &xs[0], n)?;
            let k = Masks {
                mask: mask.as_ref(),
                pad: present(xs, 2),
                causal: false,
            };
            Ok(vec![encode(m, &xs[0], k)?])
        }
    }
    layer_clone!();
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Settings by position and by name.
type Given = (Vec<Value>, Vec<(String, Value)>);

/// A layer's or layer norm's settings given to an encoder or decoder: a tuple or
/// list of settings (the type's name first, optionally), a dict of them by name,
/// or for the layer norm a single size.
fn sub_spec(kind: &str, which: &str, v: &Value) -> Result<Given> {
    match v {
        Value::Dict(kv) => Ok((Vec::new(), kv.clone())),
        Value::Tuple(xs) | Value::List(xs) => {
            let mut xs = xs.clone();
            if let Some(Value::Str(s)) = xs.first() {
                if s != which {
                    return Err(err(
                        kind,
                        format!("unexpected module `{s}`, expecting {which} settings"),
                    ));
                }
                xs.remove(0);
            }
            Ok(split_options(xs))
        }
        Value::Int(_) if which == "layernorm" => Ok((vec![v.clone()], Vec::new())),
        x => Err(err(
            kind,
            format!(
                "{which} expects a tuple, list or dict of {which} settings, given {}",
                x.type_name()
            ),
        )),
    }
}

/// The model dimension of an encoder or decoder layer.
fn model_dim(layer: &Module) -> Result<i64> {
    Ok(kid(layer, "linear1")?.param_at(0)?.size()[1])
}

fn stack(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let decoder = kind == "decoder";
    let which = if decoder {
        "decoderlayer"
    } else {
        "encoderlayer"
    };
    let a = Args::parse(kind, &[which, "layers", "layernorm", "causal"], pos, kw)?;
    let (lp, lk) = match a.get(which) {
        Some(v) => sub_spec(kind, which, v)?,
        None => return Err(err(kind, format!("{which} not defined"))),
    };
    let n = a.req_int("layers")?;
    if n < 0 {
        return Err(err(
            kind,
            format!("layers must be a non-negative count, given {n}"),
        ));
    }
    if n > MAX_LAYERS {
        return Err(err(
            kind,
            format!("layers must be at most {MAX_LAYERS}, given {n}"),
        ));
    }
    let causal = a.bool("causal", false)?;
    let proto = Module::layer(which, &lp, &lk)?;
    let d = model_dim(&proto)?;
    let norm = match a.get("layernorm") {
        None => None,
        Some(v) => {
            let (np, nk) = sub_spec(kind, "layernorm", v)?;
            let norm = Module::layer("layernorm", &np, &nk)?;
            let shape = norm
                .options()
                .and_then(|o| o.into_iter().find(|(k, _)| k == "shape"))
                .map(|(_, v)| v.as_ints("shape"))
                .transpose()?;
            if shape.as_deref() != Some([d].as_slice()) {
                return Err(err(
                    kind,
                    format!(
                        "layernorm of shape {:?} does not match the layers' dimension {d}",
                        shape.unwrap_or_default()
                    ),
                ));
            }
            Some(norm)
        }
    };
    // as torch: every layer a copy of the first, the same initial values
    let mut layers = Vec::new();
    for i in 0..n {
        layers.push(if i == 0 {
            proto.clone()
        } else {
            proto.deep_clone()?
        });
    }
    let mut m = Module::new(kind, Stack { causal, decoder })
        .with_child("layers", Module::container("sequential", layers)?);
    if let Some(norm) = norm {
        m = m.with_child("norm", norm);
    }
    Ok(m)
}

/// An encoder's or decoder's own settings: its layers are in child `layers`, the
/// final layer norm, if any, in child `norm`.
#[derive(Debug, Clone)]
struct Stack {
    causal: bool,
    decoder: bool,
}

impl Stack {
    fn of(m: &Module) -> Result<&Stack> {
        m.layer_as::<Stack>()
            .ok_or_else(|| err(m.kind(), "expecting an encoder or decoder"))
    }

    /// The layers, whether they take batch-first input and whether a causal mask
    /// is made when none is given (set on the stack or its first layer).
    fn layers(m: &Module) -> Result<Layers<'_>> {
        let s = Self::of(m)?;
        let layers = kid(m, "layers")?.children();
        let (batchfirst, causal) = match layers.first() {
            Some((_, l)) => (batchfirst_of(l)?, Coder::of(l)?.causal),
            None => (false, false),
        };
        Ok(Layers {
            layers,
            batchfirst,
            causal: s.causal || causal,
        })
    }

    fn norm(m: &Module, x: Tensor) -> Result<Tensor> {
        match m.children().iter().find(|(k, _)| k == "norm") {
            Some((_, n)) => n.forward_first(&[x]),
            None => Ok(x),
        }
    }
}

/// A stack's layers and what they take.
struct Layers<'a> {
    layers: &'a [(String, Module)],
    batchfirst: bool,
    causal: bool,
}

/// A stack's forward (torch.nn.TransformerEncoder's or TransformerDecoder's, without the
/// inference fast path): `x`'s mask (made where the stack is causal and none is given), each
/// layer's `step` in turn, then the final norm.
fn stack_forward(
    m: &Module,
    x: &Tensor,
    mask: Option<&Tensor>,
    pad: Option<&Tensor>,
    step: impl Fn(&Module, &Tensor, Masks) -> Result<Tensor>,
) -> Result<Tensor> {
    let Layers {
        layers,
        batchfirst,
        causal,
    } = Stack::layers(m)?;
    let n = seq_len(x, batchfirst);
    let made = made_mask(m.kind(), causal, mask, x, n)?;
    // a mask the stack made is causal; a given one is checked (torch's
    // _detect_is_causal_mask: a comparison read back from the device)
    let is = match mask {
        None => causal && made.is_some(),
        Some(_) => is_causal(made.as_ref(), n)?,
    };
    let k = Masks {
        mask: made.as_ref(),
        pad,
        causal: is,
    };
    let mut y = x.shallow_clone();
    for (_, l) in layers {
        y = step(l, &y, k)?;
    }
    Stack::norm(m, y)
}

/// torch.nn.TransformerEncoder's forward.
fn encode_stack(
    m: &Module,
    src: &Tensor,
    mask: Option<&Tensor>,
    pad: Option<&Tensor>,
) -> Result<Tensor> {
    stack_forward(m, src, mask, pad, encode)
}

/// torch.nn.TransformerDecoder's forward: masks of the target, then the memory's.
fn decode_stack(
    m: &Module,
    tgt: &Tensor,
    mem: &Tensor,
    mask: Option<&Tensor>,
    mk: Masks,
    pad: Option<&Tensor>,
) -> Result<Tensor> {
    stack_forward(m, tgt, mask, pad, |l, x, k| decode(l, x, mem, k, mk))
}

impl Layer for Stack {
    /// Encoder: `forward(src)`, `forward(src, mask)`, `forward(src, mask,
    /// padmask)`. Decoder: `forward(tgt, memory)`, then optionally the target's
    /// mask, the memory's mask, the target's and the memory's padding masks. An
    /// empty tensor skips a mask.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        if self.decoder {
            want_inputs(kind, xs, 2, 6)?;
            let mk = Masks {
                mask: present(xs, 3),
                pad: present(xs, 5),
                causal: false,
            };
            Ok(vec![decode_stack(
                m,
                &xs[0],
                &xs[1],
                present(xs, 2),
                mk,
                present(xs, 4),
            )?])
        } else {
            want_inputs(kind, xs, 1, 3)?;
            Ok(vec![encode_stack(
                m,
                &xs[0],
                present(xs, 1),
                present(xs, 2),
            )?])
        }
    }
    layer_clone!();
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A custom encoder or decoder given to the transformer: a spec of that type.
fn custom(which: &str, v: &Value) -> Result<Module> {
    let kind = "transformer";
    let m = match v {
        Value::Str(_) | Value::Tuple(_) | Value::List(_) => Spec::parse(v)?.build()?,
        x => {
            return Err(err(
                kind,
                format!(
                    "{which} expects a spec of an {which} module, given {}",
                    x.type_name()
                ),
            ))
        }
    };
    if m.kind() != which {
        return Err(err(
            kind,
            format!("{which} expects an {which} module, given {}", m.kind()),
        ));
    }
    Ok(m)
}

fn transformer(pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let kind = "transformer";
    let a = Args::parse(kind, TRANSFORMER, pos, kw)?;
    let d = positive(&a, "in", 512)?;
    let heads = positive(&a, "heads", 8)?;
    let count = |name: &str| -> Result<i64> {
        let n = a.int(name, 6)?;
        if n < 0 {
            return Err(err(
                kind,
                format!("{name} must be a non-negative count, given {n}"),
            ));
        }
        Ok(n)
    };
    let (ne, nd) = (count("elayers")?, count("dlayers")?);
    let ff = positive(&a, "dim", 2048)?;
    let dropout = a.float_in("dropout", 0.1, 0.0, 1.0)?;
    let f = a.choice("fn", "relu", &["relu", "gelu"])?;
    let eps = a.nonneg("eps", 1e-5)?;
    let bf = a.bool("batchfirst", false)?;
    let nf = a.bool("normfirst", false)?;
    let bias = a.bool("bias", true)?;
    let causal = a.bool("causal", false)?;
    let (ce, cd) = (a.get("encoder"), a.get("decoder"));
    if (ce.is_none() || cd.is_none()) && d % heads != 0 {
        return Err(err(
            kind,
            format!("in (the model's dimension) of {d} is not divisible by {heads} heads"),
        ));
    }
    let layer = Value::Dict(vec![
        setting("in", Value::Int(d)),
        setting("heads", Value::Int(heads)),
        setting("dim", Value::Int(ff)),
        setting("dropout", Value::Float(dropout)),
        setting("fn", Value::Str(f)),
        setting("eps", Value::Float(eps)),
        setting("batchfirst", Value::Bool(bf)),
        setting("normfirst", Value::Bool(nf)),
        setting("bias", Value::Bool(bias)),
    ]);
    let norm = Value::Dict(vec![
        setting("shape", Value::Int(d)),
        setting("eps", Value::Float(eps)),
        setting("bias", Value::Bool(bias)),
    ]);
    let part = |which: &str, given: Option<&Value>, n: i64| match given {
        Some(v) => custom(which, v),
        None => Module::layer(which, &[layer.clone(), Value::Int(n), norm.clone()], &[]),
    };
    let enc = part("encoder", ce, ne)?;
    let dec = part("decoder", cd, nd)?;
    // as torch: every matrix xavier uniform
    {
        let _g = tch::no_grad_guard();
        for p in enc.parameters().into_iter().chain(dec.parameters()) {
            if p.dim() > 1 {
                let b = xavier_bound(&p.size());
                let _ = p.shallow_clone().f_uniform_(-b, b)?;
            }
        }
    }
    Ok(Module::new(
        kind,
        Transformer {
            d,
            batchfirst: bf,
            causal,
        },
    )
    .with_child("encoder", enc)
    .with_child("decoder", dec))
}

/// The transformer's own settings: its encoder and decoder are its children.
#[derive(Debug, Clone)]
struct Transformer {
    d: i64,
    batchfirst: bool,
    causal: bool,
}

impl Layer for Transformer {
    /// `forward(src, tgt)`, then optionally the masks of the source, the target and
    /// the memory, and the padding masks of the source, the target and the memory
    /// (torch's order). An empty tensor skips a mask.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 2, 8)?;
        let (src, tgt) = (&xs[0], &xs[1]);
        let b = if self.batchfirst { 0 } else { 1 };
        if src.dim() == 3 && (tgt.dim() != 3 || src.size()[b] != tgt.size()[b]) {
            return Err(err(
                kind,
                format!(
                    "the batch sizes of source and target must be equal, given sizes {:?} and {:?}",
                    src.size(),
                    tgt.size()
                ),
            ));
        }
        if src.size().last() != Some(&self.d) || tgt.size().last() != Some(&self.d) {
            return Err(err(
                kind,
                format!(
                    "the features of source and target must be the model's dimension {}, given sizes {:?} and {:?}",
                    self.d,
                    src.size(),
                    tgt.size()
                ),
            ));
        }
        let (enc, dec) = (kid(m, "encoder")?, kid(m, "decoder")?);
        let mem = encode_stack(enc, src, present(xs, 2), present(xs, 5))?;
        // the target's causal mask, unless the decoder makes it itself
        let d = Stack::layers(dec)?;
        let n = seq_len(tgt, d.batchfirst);
        let tmask = made_mask(kind, self.causal && !d.causal, present(xs, 3), tgt, n)?;
        let mk = Masks {
            mask: present(xs, 4),
            pad: present(xs, 7),
            causal: false,
        };
        Ok(vec![decode_stack(
            dec,
            tgt,
            &mem,
            tmask.as_ref(),
            mk,
            present(xs, 6),
        )?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    fn ints(xs: &[i64]) -> Vec<Value> {
        xs.iter().map(|x| Value::Int(*x)).collect()
    }

    #[test]
    fn layer_children_as_torch_names_them() {
        let m = make("encoderlayer", ints(&[8, 2, 16]));
        let names: Vec<String> = m.children().iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            names,
            [
                "self_attn",
                "linear1",
                "dropout",
                "linear2",
                "norm1",
                "norm2",
                "dropout1",
                "dropout2"
            ]
        );
        assert_eq!(m.parmnames()[0], "self_attn.in_proj_weight");
        let m = make("decoderlayer", ints(&[8, 2, 16]));
        assert!(m
            .parmnames()
            .contains(&"multihead_attn.out_proj.bias".to_string()));
        assert!(m.parmnames().contains(&"norm3.weight".to_string()));
    }

    #[test]
    fn stack_copies_the_layer() {
        let layer = spec("encoderlayer", ints(&[8, 2, 16]));
        let m = make("encoder", vec![layer, Value::Int(3), Value::Int(8)]);
        let a = m.param("layers.0.linear1.weight").expect("first");
        let b = m.param("layers.2.linear1.weight").expect("last");
        assert!(a.equal(&b));
        assert_eq!(m.param("norm.weight").expect("norm").size(), [8]);
        let y = fwd(&m, &[&randn(&[5, 2, 8])]);
        assert_eq!(y.size(), [5, 2, 8]);
    }

    #[test]
    fn transformer_forward_sizes() {
        let m = make("transformer", ints(&[8, 2, 1, 1, 16]));
        let y = fwd(&m, &[&randn(&[5, 3, 8]), &randn(&[4, 3, 8])]);
        assert_eq!(y.size(), [4, 3, 8]);
    }

    #[test]
    fn bad_settings() {
        assert_eq!(
            build_err("encoderlayer", ints(&[10, 3])),
            "encoderlayer: in (the model's dimension) of 10 is not divisible by 3 heads"
        );
        assert_eq!(
            build_err("encoder", vec![kw(vec![("layers", Value::Int(2))])]),
            "encoder: encoderlayer not defined"
        );
        assert_eq!(
            build_err(
                "decoder",
                vec![spec("encoderlayer", ints(&[8, 2])), Value::Int(1)]
            ),
            "decoder: unexpected module `encoderlayer`, expecting decoderlayer settings"
        );
        assert_eq!(
            build_err(
                "encoder",
                vec![Value::List(ints(&[8, 2])), Value::Int(1), Value::Int(6)]
            ),
            "encoder: layernorm of shape [6] does not match the layers' dimension 8"
        );
    }
}
