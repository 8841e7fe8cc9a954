//! Linear layers and embeddings: linear, bilinear, embed.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Named, Result};
use crate::nn::container::layer_clone;
use crate::nn::{normal, spec::Given, uniform, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["linear", "bilinear", "embed"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "linear" => {
            let a = Args::parse(kind, &["in", "out", "bias"], pos, kw)?;
            let (i, o, bias) = (a.req_pos("in")?, a.req_pos("out")?, a.bool("bias", true)?);
            // PyTorch's default: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(in), bias likewise.
            let bound = 1.0 / (i as f64).sqrt();
            let mut m = Module::new(kind, Linear { bias })
                .with_param("weight", uniform(&[o, i], bound)?)?;
            if bias {
                m = m.with_param("bias", uniform(&[o], bound)?)?;
            }
            Ok(m)
        }
        "bilinear" => {
            let a = Args::parse(kind, &["in1", "in2", "out", "bias"], pos, kw)?;
            let (i1, i2, o) = (a.req_pos("in1")?, a.req_pos("in2")?, a.req_pos("out")?);
            let bias = a.bool("bias", true)?;
            let bound = 1.0 / (i1 as f64).sqrt();
            let mut m = Module::new(kind, Bilinear { bias })
                .with_param("weight", uniform(&[o, i1, i2], bound)?)?;
            if bias {
                m = m.with_param("bias", uniform(&[o], bound)?)?;
            }
            Ok(m)
        }
        "embed" => embed(pos, kw),
        _ => Err(unknown(kind)),
    }
}

fn embed(pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let a = Args::parse(
        "embed",
        &[
            "rows", "cols", "padindex", "maxnorm", "normtype", "scale", "sparse",
        ],
        pos,
        kw,
    )?;
    let (rows, cols) = (a.req_pos("rows")?, a.req_pos("cols")?);
    let pad = match a.get("padindex") {
        None => None,
        Some(v) => {
            let p = v.as_int("padindex").named("embed")?;
            if p >= rows || p < -rows {
                return Err(err(
                    "embed",
                    format!(
                        "padindex must be within the number of rows, -{rows} to {}, given {p}",
                        rows - 1
                    ),
                ));
            }
            Some(if p < 0 { p + rows } else { p })
        }
    };
    let maxnorm = match a.get("maxnorm") {
        None => None,
        Some(v) => {
            let f = v.as_float("maxnorm").named("embed")?;
            if f.is_nan() || f <= 0.0 {
                return Err(err("embed", format!("maxnorm must be positive, given {f}")));
            }
            Some(f)
        }
    };
    let normtype = a.float("normtype", 2.0)?;
    let (scale, sparse) = (a.bool("scale", false)?, a.bool("sparse", false)?);
    let w = normal(&[rows, cols])?;
    if let Some(p) = pad {
        let _g = tch::no_grad_guard();
        let _ = w.f_get(p)?.f_zero_()?;
    }
    Module::new(
        "embed",
        Embed {
            pad,
            maxnorm,
            normtype,
            scale,
            sparse,
        },
    )
    .with_param("weight", w)
}

/// `x @ weight.T + bias`.
#[derive(Debug, Clone)]
struct Linear {
    bias: bool,
}

impl Layer for Linear {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let b = if self.bias {
            Some(m.param_at(1)?)
        } else {
            None
        };
        Ok(vec![xs[0].f_linear(m.param_at(0)?, b)?])
    }
    layer_clone!();
}

/// `x1 @ weight @ x2 + bias` for two inputs.
#[derive(Debug, Clone)]
struct Bilinear {
    bias: bool,
}

impl Layer for Bilinear {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 2, 2)?;
        let b = if self.bias {
            Some(m.param_at(1)?)
        } else {
            None
        };
        Ok(vec![Tensor::f_bilinear(&xs[0], &xs[1], m.param_at(0)?, b)?])
    }
    layer_clone!();
}

/// Looks up rows of the weight by integer index.
#[derive(Debug, Clone)]
struct Embed {
    pad: Option<i64>,
    maxnorm: Option<f64>,
    normtype: f64,
    scale: bool,
    sparse: bool,
}

impl Layer for Embed {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        if x.is_floating_point() {
            return Err(err(
                "embed",
                format!("expecting integer indices, given {:?} tensor", x.kind()),
            ));
        }
        if let Some(n) = self.maxnorm {
            // As PyTorch: rows looked up are rescaled in place to the maximum norm.
            let _g = tch::no_grad_guard();
            let mut w = m.param_at(0)?.shallow_clone();
            let _ = w.f_embedding_renorm_(&x.f_contiguous()?, n, self.normtype)?;
        }
        let pad = self.pad.unwrap_or(-1);
        Ok(vec![Tensor::f_embedding(
            m.param_at(0)?,
            x,
            pad,
            self.scale,
            self.sparse,
        )?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;
    use crate::nn::testutil::*;

    #[test]
    fn linear_matches_functional() {
        let m = make("linear", vec![Value::Int(4), Value::Int(3)]);
        assert_eq!(shapes(&m), named(&[("weight", &[3, 4]), ("bias", &[3])]));
        assert_uniform(m.param_at(0).expect("declared"), 0.5);
        let x = randn(&[2, 4]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.linear(
                m.param_at(0).expect("declared"),
                Some(m.param_at(1).expect("declared")),
            ),
        );
        let m = make(
            "linear",
            vec![
                Value::Int(4),
                Value::Int(3),
                kw(vec![("bias", false.into())]),
            ],
        );
        assert_eq!(shapes(&m), named(&[("weight", &[3, 4])]));
    }

    #[test]
    fn bilinear_matches_functional() {
        let m = make(
            "bilinear",
            vec![Value::Int(3), Value::Int(4), Value::Int(5)],
        );
        assert_eq!(shapes(&m), named(&[("weight", &[5, 3, 4]), ("bias", &[5])]));
        assert_uniform(m.param_at(0).expect("declared"), 1.0 / 3f64.sqrt());
        let (x, y) = (randn(&[2, 3]), randn(&[2, 4]));
        let want = Tensor::bilinear(
            &x,
            &y,
            m.param_at(0).expect("declared"),
            Some(m.param_at(1).expect("declared")),
        );
        assert_close(&fwd(&m, &[&x, &y]), &want);
        assert_eq!(want.size(), [2, 5]);
        let e = m.forward(&[x]).expect_err("one input");
        assert!(
            e.to_string().starts_with("bilinear: forward expects 2"),
            "{e}"
        );
    }

    #[test]
    fn embed_pads_and_looks_up() {
        let m = make("embed", vec![Value::Int(10), Value::Int(4), Value::Int(-1)]);
        assert_eq!(shapes(&m), named(&[("weight", &[10, 4])]));
        assert_eq!(
            m.param_at(0)
                .expect("declared")
                .get(9)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        let x = Tensor::from_slice(&[1i64, 9, 3, 3]).view([2, 2]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [2, 2, 4]);
        assert_close(
            &y,
            &Tensor::embedding(m.param_at(0).expect("declared"), &x, 9, false, false),
        );
        let e = build_err("embed", vec![Value::Int(10), Value::Int(4), Value::Int(10)]);
        assert!(e.starts_with("embed: padindex must be within"), "{e}");
        let e = build_err("embed", vec![Value::Int(10)]);
        assert_eq!(e, "embed: cols not defined");
        let e = m.forward(&[randn(&[2])]).expect_err("float indices");
        assert!(
            e.to_string()
                .starts_with("embed: expecting integer indices"),
            "{e}"
        );
    }

    #[test]
    fn embed_maxnorm_renormalises_rows() {
        let m = make(
            "embed",
            vec![
                Value::Int(5),
                Value::Int(3),
                kw(vec![("maxnorm", Value::Float(0.5))]),
            ],
        );
        let x = Tensor::from_slice(&[0i64, 2]);
        let y = fwd(&m, &[&x]);
        let norms = y.norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
        assert!(norms.max().double_value(&[]) <= 0.5 + 1e-5);
    }

    #[test]
    fn linear_bad_settings() {
        assert_eq!(
            build_err("linear", vec![Value::Int(4)]),
            "linear: out not defined"
        );
        assert_eq!(
            build_err("linear", vec![Value::Int(4), Value::Int(-3)]),
            "linear: out must be positive, given -3"
        );
        let e = build_err("linear", vec![Value::Int(4), Value::Float(2.5)]);
        assert_eq!(e, "linear: out expects an integer, given float");
    }
}
