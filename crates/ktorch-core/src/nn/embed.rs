//! Embeddings beyond `embed`: embedbag (torch.nn.EmbeddingBag), embedpos (a learned
//! position embedding) and embedseq (token embedding plus position embedding), as the
//! original defines them.

use tch::{Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Named, Result};
use crate::nn::container::layer_clone;
use crate::nn::{filled, normal, spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["embedbag", "embedpos", "embedseq"];

/// embedbag's settings, in the original's positional order, then those it takes by
/// name only.
const BAG: &[&str] = &[
    "rows",
    "cols",
    "maxnorm",
    "p",
    "scale",
    "mode",
    "sparse",
    "padindex",
    "lastoffset",
    "weight",
    "freeze",
];

/// How the rows of a bag are combined, as libtorch numbers the modes.
const MODES: &[&str] = &["sum", "mean", "max"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "embedbag" => embedbag(pos, kw),
        "embedpos" => {
            let a = Args::parse(kind, &["rows", "cols"], pos, kw)?;
            let (rows, cols) = (a.req_pos("rows")?, a.req_pos("cols")?);
            Module::new(kind, EmbedPos { rows }).with_param("pos", filled(&[1, rows, cols], 0.0)?)
        }
        "embedseq" => {
            let a = Args::parse(kind, &["rows", "cols", "length"], pos, kw)?;
            let (rows, cols, length) =
                (a.req_pos("rows")?, a.req_pos("cols")?, a.req_pos("length")?);
            let tok = Module::layer("embed", &[Value::Int(rows), Value::Int(cols)], &[])?;
            let at = Module::layer("embedpos", &[Value::Int(length), Value::Int(cols)], &[])?;
            Ok(Module::new(kind, EmbedSeq)
                .with_child("tok", tok)
                .with_child("pos", at))
        }
        _ => Err(unknown(kind)),
    }
}

fn embedbag(pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let kind = "embedbag";
    // as the original: a symbol last among 2-5 positional settings is the mode
    let (mut pos, mut kw) = (pos.to_vec(), kw.to_vec());
    if (2..6).contains(&pos.len()) && matches!(pos.last(), Some(Value::Str(_))) {
        if kw.iter().any(|(k, _)| k == "mode") {
            return Err(err(kind, "option mode given by position and by name"));
        }
        let mode = pos.pop().expect("a last setting");
        kw.push(("mode".to_string(), mode));
    }
    let a = Args::parse(kind, BAG, &pos, &kw)?;
    // the first setting is the number of rows or a weight matrix; after a weight
    // matrix, the second is the freeze flag rather than the number of columns
    let mut weight = None;
    let rows = match a.get("rows") {
        None => None,
        Some(Value::Tensor(t)) if t.dim() != 0 => {
            weight = Some(t.shallow_clone());
            None
        }
        Some(v) => Some(v.as_int("rows").named(kind)?),
    };
    let mut freeze = None;
    let cols = match a.get("cols") {
        Some(Value::Bool(b)) if weight.is_some() => {
            freeze = Some(*b);
            None
        }
        None => None,
        Some(v) => Some(v.as_int("cols").named(kind)?),
    };
    if let Some(v) = a.get("freeze") {
        if freeze.is_some() {
            return Err(err(kind, "option freeze given by position and by name"));
        }
        freeze = Some(v.as_bool("freeze").named(kind)?);
    }
    match a.get("weight") {
        None => {}
        Some(_) if weight.is_some() => {
            return Err(err(
                kind,
                "weight given twice: as the first setting and by name",
            ))
        }
        Some(Value::Tensor(t)) => weight = Some(t.shallow_clone()),
        Some(v) => {
            return Err(err(
                kind,
                format!("weight expects a matrix, given {}", v.type_name()),
            ))
        }
    }
    let w = match weight {
        Some(w) => {
            if w.dim() != 2 {
                return Err(err(
                    kind,
                    format!("weight must be a 2-dim matrix, given {}-dim", w.dim()),
                ));
            }
            if !w.is_floating_point() {
                return Err(err(
                    kind,
                    format!("weight must be floating point, given {:?}", w.kind()),
                ));
            }
            let size = w.size();
            for (name, given, have) in [("rows", rows, size[0]), ("cols", cols, size[1])] {
                if given.is_some_and(|n| n != have) {
                    return Err(err(
                        kind,
                        format!(
                            "{name} = {} but the weight has size {size:?}",
                            given.unwrap_or(have)
                        ),
                    ));
                }
            }
            let _g = tch::no_grad_guard();
            Some(w.f_detach_copy()?)
        }
        None => None,
    };
    let (rows, cols) = match &w {
        Some(w) => (w.size()[0], w.size()[1]),
        None => (a.req_pos("rows")?, a.req_pos("cols")?),
    };
    let maxnorm = match a.get("maxnorm") {
        None => None,
        Some(v) => {
            let f = v.as_float("maxnorm").named(kind)?;
            if f.is_nan() || f <= 0.0 {
                return Err(err(kind, format!("maxnorm must be positive, given {f}")));
            }
            Some(f)
        }
    };
    let p = a.float("p", 2.0)?;
    let scale = a.bool("scale", false)?;
    let mode = a.choice("mode", "mean", MODES)?;
    let sparse = a.bool("sparse", false)?;
    let pad = match a.get("padindex") {
        None => None,
        Some(v) => {
            let i = v.as_int("padindex").named(kind)?;
            if i >= rows || i < -rows {
                return Err(err(
                    kind,
                    format!(
                        "padindex must be within the number of rows, -{rows} to {}, given {i}",
                        rows - 1
                    ),
                ));
            }
            Some(if i < 0 { i + rows } else { i })
        }
    };
    let lastoffset = a.bool("lastoffset", false)?;
    if mode == "max" && scale {
        return Err(err(
            kind,
            "max mode does not support scaling the gradient by frequency (scale)",
        ));
    }
    if mode == "max" && sparse {
        return Err(err(
            kind,
            "max mode does not support sparse gradients (sparse)",
        ));
    }
    let w = match w {
        Some(w) => w,
        None => {
            // torch's initialisation: normal(0, 1), the padding row zero
            let w = normal(&[rows, cols])?;
            if let Some(p) = pad {
                let _g = tch::no_grad_guard();
                let _ = w.f_get(p)?.f_zero_()?;
            }
            w
        }
    };
    let layer = EmbedBag {
        maxnorm,
        p,
        scale,
        mode: MODES.iter().position(|m| *m == mode).unwrap_or(1) as i64,
        sparse,
        pad,
        lastoffset,
    };
    let m = Module::new(kind, layer).with_param("weight", w)?;
    if freeze == Some(true) {
        m.freeze(None, None, true)?;
    }
    Ok(m)
}

/// Sums, averages or takes the maximum of the rows looked up for each bag.
#[derive(Debug, Clone)]
struct EmbedBag {
    maxnorm: Option<f64>,
    p: f64,
    scale: bool,
    mode: i64,
    sparse: bool,
    pad: Option<i64>,
    lastoffset: bool,
}

impl Layer for EmbedBag {
    /// `forward(input)`, `forward(input, offsets)`, `forward(input, offsets,
    /// per_sample_weights)`: a 2D input is a batch of bags of equal length (its
    /// offsets empty); a 1D input needs offsets, where each bag starts.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 1, 3)?;
        let x = &xs[0];
        if !matches!(x.kind(), Kind::Int64 | Kind::Int) {
            return Err(err(
                kind,
                format!("expecting long or int indices, given {:?} tensor", x.kind()),
            ));
        }
        let psw = xs.get(2);
        if let Some(w) = psw {
            if w.size() != x.size() {
                return Err(err(
                    kind,
                    format!(
                        "per-sample weights must have the input's size {:?}, given {:?}",
                        x.size(),
                        w.size()
                    ),
                ));
            }
            if self.mode != 0 {
                return Err(err(
                    kind,
                    format!(
                        "per-sample weights are only supported for mode sum, not {}",
                        MODES[self.mode as usize]
                    ),
                ));
            }
        }
        let (input, offsets, psw) = match x.dim() {
            2 => {
                if let Some(o) = xs.get(1).filter(|o| o.numel() > 0) {
                    return Err(err(
                        kind,
                        format!(
                            "2D input is a batch of bags of equal length: offsets must be empty, given size {:?}",
                            o.size()
                        ),
                    ));
                }
                let n = x.size()[1];
                let offsets =
                    Tensor::f_arange_start_step(0, x.numel() as i64, n, (x.kind(), x.device()))?;
                (
                    x.f_reshape([-1])?,
                    offsets,
                    psw.map(|w| w.f_reshape([-1])).transpose()?,
                )
            }
            1 => {
                let o = xs.get(1).ok_or_else(|| {
                    err(
                        kind,
                        "1D input needs offsets, where each bag starts: forward(input, offsets)",
                    )
                })?;
                if o.dim() != 1 || o.is_floating_point() {
                    return Err(err(
                        kind,
                        format!(
                            "offsets must be a 1D tensor of integers, given {}D {:?}",
                            o.dim(),
                            o.kind()
                        ),
                    ));
                }
                (
                    x.shallow_clone(),
                    o.f_to_kind(x.kind())?,
                    psw.map(Tensor::shallow_clone),
                )
            }
            n => return Err(err(kind, format!("expecting 1D or 2D input, given {n}D"))),
        };
        let w = m.param_at(0)?;
        if let Some(n) = self.maxnorm {
            // as torch: the rows looked up are rescaled in place to the maximum norm
            let _g = tch::no_grad_guard();
            let _ = w
                .shallow_clone()
                .f_embedding_renorm_(&input.f_contiguous()?, n, self.p)?;
        }
        Ok(vec![
            Tensor::f_embedding_bag_padding_idx(
                w,
                &input,
                &offsets,
                self.scale,
                self.mode,
                self.sparse,
                psw.as_ref(),
                self.lastoffset,
                self.pad,
            )?
            .0,
        ])
    }
    layer_clone!();
}

/// A learned position embedding, `1 x rows x cols`: the first `n` rows for an
/// input whose last dimension (the sequence) has size `n`.
#[derive(Debug, Clone)]
struct EmbedPos {
    rows: i64,
}

impl Layer for EmbedPos {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let n = match xs[0].size().last() {
            Some(n) => *n,
            None => {
                return Err(err(
                    m.kind(),
                    "expecting input with at least 1 dimension, given a scalar",
                ))
            }
        };
        if n > self.rows {
            return Err(err(
                m.kind(),
                format!(
                    "input sequence of length {n} (its last dimension) is longer than the {} rows of the position embedding",
                    self.rows
                ),
            ));
        }
        Ok(vec![m.param_at(0)?.f_narrow(1, 0, n)?])
    }
    layer_clone!();
}

/// Token embedding (child `tok`, an `embed`) plus position embedding (child
/// `pos`, an `embedpos`).
#[derive(Debug, Clone)]
struct EmbedSeq;

impl Layer for EmbedSeq {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let kids = m.children();
        let tok = kids[0].1.forward_first(xs)?;
        let at = kids[1].1.forward_first(xs)?;
        Ok(vec![tok.f_add(&at)?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    fn long(xs: &[i64]) -> Tensor {
        Tensor::from_slice(xs)
    }

    #[test]
    fn embedbag_modes_and_offsets() {
        let m = make(
            "embedbag",
            vec![Value::Int(10), Value::Int(3), Value::from("sum")],
        );
        assert_eq!(shapes(&m), named(&[("weight", &[10, 3])]));
        let w = m.param_at(0).expect("declared").detach();
        let x = long(&[1, 2, 4, 5, 4, 3, 2, 9]);
        let off = long(&[0, 4]);
        let y = fwd(&m, &[&x, &off]);
        let want = Tensor::stack(
            &[
                w.index_select(0, &long(&[1, 2, 4, 5]))
                    .sum_dim_intlist(0, false, Kind::Float),
                w.index_select(0, &long(&[4, 3, 2, 9]))
                    .sum_dim_intlist(0, false, Kind::Float),
            ],
            0,
        );
        assert_close(&y, &want);
        // a 2D input: bags of equal length, the same sums
        assert_close(&fwd(&m, &[&x.view([2, 4])]), &want);
        // per-sample weights scale each row
        let pw = floats(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        let want = Tensor::stack(&[w.get(1), w.get(9) * 2.0], 0);
        assert_close(&fwd(&m, &[&x, &off, &pw]), &want);
        let m = make(
            "embedbag",
            vec![
                Value::Int(10),
                Value::Int(3),
                kw(vec![("mode", "max".into()), ("padindex", Value::Int(2))]),
            ],
        );
        let w = m.param_at(0).expect("declared").detach();
        assert_eq!(w.get(2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let y = fwd(&m, &[&long(&[1, 3]).view([1, 2])]);
        assert_close(
            &y,
            &w.index_select(0, &long(&[1, 3]))
                .amax([0i64].as_slice(), true),
        );
        let e = m
            .forward(&[x.shallow_clone(), off.shallow_clone(), pw.shallow_clone()])
            .expect_err("max with weights");
        assert_eq!(
            e.to_string(),
            "embedbag: per-sample weights are only supported for mode sum, not max"
        );
        let e = m.forward(&[x.shallow_clone()]).expect_err("no offsets");
        assert!(
            e.to_string()
                .starts_with("embedbag: 1D input needs offsets"),
            "{e}"
        );
    }

    #[test]
    fn embedbag_weight_and_settings() {
        let w = randn(&[4, 2]);
        let m = make(
            "embedbag",
            vec![Value::Tensor(w.shallow_clone()), Value::Bool(true)],
        );
        let p = m.param_at(0).expect("declared");
        assert!(p.equal(&w) && !p.requires_grad());
        assert_eq!(
            m.options().expect("options")[1],
            ("cols".to_string(), Value::Bool(true))
        );
        assert_eq!(
            build_err(
                "embedbag",
                vec![
                    Value::Int(5),
                    Value::Int(2),
                    kw(vec![("weight", Value::Tensor(w.shallow_clone()))])
                ]
            ),
            "embedbag: rows = 5 but the weight has size [4, 2]"
        );
        let m = make(
            "embedbag",
            vec![kw(vec![("weight", Value::Tensor(w.shallow_clone()))])],
        );
        assert!(m.param_at(0).expect("declared").requires_grad());
        assert_eq!(
            build_err("embedbag", vec![Value::Int(4)]),
            "embedbag: cols not defined"
        );
        assert_eq!(
            build_err(
                "embedbag",
                vec![
                    Value::Int(4),
                    Value::Int(2),
                    kw(vec![("mode", "min".into())])
                ]
            ),
            "embedbag: mode: unrecognized value `min`, expecting one of: sum, mean, max"
        );
        assert_eq!(
            build_err(
                "embedbag",
                vec![
                    Value::Int(4),
                    Value::Int(2),
                    Value::from("max"),
                    kw(vec![("scale", true.into())])
                ]
            ),
            "embedbag: max mode does not support scaling the gradient by frequency (scale)"
        );
        assert_eq!(
            build_err(
                "embedbag",
                vec![
                    Value::Int(4),
                    Value::Int(2),
                    kw(vec![("padindex", Value::Int(4))])
                ]
            ),
            "embedbag: padindex must be within the number of rows, -4 to 3, given 4"
        );
    }

    #[test]
    fn embedpos_and_embedseq() {
        let m = make("embedpos", vec![Value::Int(8), Value::Int(3)]);
        assert_eq!(shapes(&m), named(&[("pos", &[1, 8, 3])]));
        let x = long(&[1, 2, 3, 4, 5, 6]).view([2, 3]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [1, 3, 3]);
        assert_eq!(y.abs().sum(Kind::Float).double_value(&[]), 0.0);
        let e = m
            .forward(&[Tensor::zeros([1, 9], (Kind::Int64, tch::Device::Cpu))])
            .expect_err("long");
        assert!(
            e.to_string()
                .starts_with("embedpos: input sequence of length 9"),
            "{e}"
        );
        let q = make(
            "embedseq",
            vec![Value::Int(10), Value::Int(3), Value::Int(4)],
        );
        assert_eq!(
            shapes(&q),
            named(&[("tok.weight", &[10, 3]), ("pos.pos", &[1, 4, 3])])
        );
        let _g = tch::no_grad_guard();
        let _ = q.param("pos.pos").expect("pos").uniform_(-1.0, 1.0);
        let tok = q.param("tok.weight").expect("tok");
        let want = Tensor::embedding(&tok, &x, -1, false, false)
            + q.param("pos.pos").expect("pos").narrow(1, 0, 3);
        assert_close(&fwd(&q, &[&x]), &want);
        assert_eq!(
            build_err("embedseq", vec![Value::Int(10), Value::Int(3)]),
            "embedseq: length not defined"
        );
    }

    #[test]
    fn embedseq_adopts_matching_children_only() {
        let tok = make("embed", vec![Value::Int(10), Value::Int(3)]);
        let at = make("embedpos", vec![Value::Int(4), Value::Int(3)]);
        let kids = vec![
            (Some("tok".to_string()), tok.clone()),
            (Some("pos".to_string()), at.clone()),
        ];
        let q = crate::nn::spec_build(
            "embedseq",
            &[Value::Int(10), Value::Int(3), Value::Int(4)],
            &[],
            kids,
        )
        .expect("adopted");
        assert!(q
            .param("tok.weight")
            .expect("tok")
            .equal(tok.param_at(0).expect("declared")));
        let kids = vec![
            (Some("tok".to_string()), tok),
            (Some("pos".to_string()), at),
        ];
        let e = crate::nn::spec_build(
            "embedseq",
            &[Value::Int(10), Value::Int(3), Value::Int(5)],
            &[],
            kids,
        )
        .expect_err("length differs");
        assert!(
            e.to_string()
                .starts_with("embedseq: builds its own child modules, tok (embed), pos (embedpos)"),
            "{e}"
        );
    }
}
