//! Activation functions, with PyTorch's settings in PyTorch's positional order.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Named, Result};
use crate::nn::container::layer_clone;
use crate::nn::{filled, spec::Given, unknown, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &[
    "celu",
    "elu",
    "gelu",
    "glu",
    "hardshrink",
    "hardtanh",
    "leakyrelu",
    "logsigmoid",
    "logsoftmax",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softmax2d",
    "softmin",
    "softplus",
    "softshrink",
    "softsign",
    "tanh",
    "tanhshrink",
    "threshold",
];

#[derive(Debug, Clone)]
enum Act {
    Celu(f64),
    Elu(f64),
    Gelu(String),
    Glu(i64),
    Hardshrink(f64),
    Hardtanh(f64, f64),
    LeakyRelu(f64),
    LogSigmoid,
    LogSoftmax(i64),
    Mish,
    Prelu,
    Relu,
    Relu6,
    Rrelu(f64, f64),
    Selu,
    Sigmoid,
    Silu,
    Softmax(i64),
    Softmax2d,
    Softmin(i64),
    Softplus(f64, f64),
    Softshrink(f64),
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold(f64, f64),
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let parse = |names: &[&'static str]| Args::parse(kind, names, pos, kw);
    let act = match kind {
        "celu" | "elu" => {
            let a = parse(&["alpha", "inplace"])?;
            a.bool("inplace", false)?;
            let alpha = a.float("alpha", 1.0)?;
            if kind == "celu" {
                if alpha == 0.0 {
                    return Err(err(kind, "alpha must be non-zero"));
                }
                Act::Celu(alpha)
            } else {
                Act::Elu(alpha)
            }
        }
        "gelu" => {
            Act::Gelu(parse(&["approximate"])?.choice("approximate", "none", &["none", "tanh"])?)
        }
        "glu" => Act::Glu(parse(&["dim"])?.int("dim", -1)?),
        "hardshrink" => Act::Hardshrink(parse(&["lambda"])?.float("lambda", 0.5)?),
        "softshrink" => Act::Softshrink(parse(&["lambda"])?.nonneg("lambda", 0.5)?),
        "hardtanh" => {
            let a = parse(&["min", "max", "inplace"])?;
            a.bool("inplace", false)?;
            let (lo, hi) = (a.float("min", -1.0)?, a.float("max", 1.0)?);
            if hi.is_nan() || lo.is_nan() || hi <= lo {
                return Err(err(
                    kind,
                    format!("max must be greater than min, given min {lo}, max {hi}"),
                ));
            }
            Act::Hardtanh(lo, hi)
        }
        "leakyrelu" => {
            let a = parse(&["slope", "inplace"])?;
            a.bool("inplace", false)?;
            Act::LeakyRelu(a.float("slope", 0.01)?)
        }
        "logsoftmax" => Act::LogSoftmax(parse(&["dim"])?.req_int("dim")?),
        "softmax" => Act::Softmax(parse(&["dim"])?.req_int("dim")?),
        "softmin" => Act::Softmin(parse(&["dim"])?.req_int("dim")?),
        "prelu" => {
            let a = parse(&["in", "init"])?;
            let (n, init) = (a.int("in", 1)?, a.float("init", 0.25)?);
            if n <= 0 {
                return Err(err(kind, format!("in must be positive, given {n}")));
            }
            return Module::new(kind, Act::Prelu).with_param("weight", filled(&[n], init)?);
        }
        "rrelu" => {
            let a = parse(&["lower", "upper", "inplace"])?;
            a.bool("inplace", false)?;
            let (lo, up) = (a.float("lower", 1.0 / 8.0)?, a.float("upper", 1.0 / 3.0)?);
            if lo.is_nan() || up.is_nan() || lo > up {
                return Err(err(
                    kind,
                    format!(
                        "lower bound must be less than or equal to upper bound, given {lo}, {up}"
                    ),
                ));
            }
            Act::Rrelu(lo, up)
        }
        "softplus" => {
            let a = parse(&["beta", "threshold"])?;
            let beta = a.float("beta", 1.0)?;
            if beta == 0.0 {
                return Err(err(kind, "beta must be non-zero"));
            }
            Act::Softplus(beta, a.float("threshold", 20.0)?)
        }
        "threshold" => {
            let a = parse(&["threshold", "value", "inplace"])?;
            a.bool("inplace", false)?;
            let t = a
                .get("threshold")
                .ok_or_else(|| err(kind, "threshold not defined"))?
                .as_float("threshold")
                .named(kind)?;
            let v = a
                .get("value")
                .ok_or_else(|| err(kind, "value not defined"))?
                .as_float("value")
                .named(kind)?;
            Act::Threshold(t, v)
        }
        "mish" | "relu" | "relu6" | "selu" | "silu" => {
            parse(&["inplace"])?.bool("inplace", false)?;
            match kind {
                "mish" => Act::Mish,
                "relu" => Act::Relu,
                "relu6" => Act::Relu6,
                "selu" => Act::Selu,
                _ => Act::Silu,
            }
        }
        "logsigmoid" | "sigmoid" | "softmax2d" | "softsign" | "tanh" | "tanhshrink" => {
            parse(&[])?;
            match kind {
                "logsigmoid" => Act::LogSigmoid,
                "sigmoid" => Act::Sigmoid,
                "softmax2d" => Act::Softmax2d,
                "softsign" => Act::Softsign,
                "tanh" => Act::Tanh,
                _ => Act::Tanhshrink,
            }
        }
        _ => return Err(unknown(kind)),
    };
    Ok(Module::new(kind, act))
}

/// `x` where `x > 0`, else `neg`.
fn positive_or(x: &Tensor, neg: &Tensor) -> Result<Tensor> {
    Ok(x.f_where_self(&x.f_gt(0.0)?, neg)?)
}

// libtorch's native ops are used at PyTorch's default settings; tch's bindings drop
// the scalar settings, so other settings are written out with PyTorch's formulas.
// rrelu is always written out: tch's `rrelu(training)` binds the flag to `lower`.
impl Layer for Act {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let y = match self {
            Act::Celu(a) if *a == 1.0 => x.f_celu()?,
            Act::Celu(a) => positive_or(x, &x.f_div_scalar(*a)?.f_expm1()?.f_mul_scalar(*a)?)?,
            Act::Elu(a) if *a == 1.0 => x.f_elu()?,
            Act::Elu(a) => positive_or(x, &x.f_expm1()?.f_mul_scalar(*a)?)?,
            Act::Gelu(s) => x.f_gelu(s)?,
            Act::Glu(d) => x.f_glu(*d)?,
            Act::Hardshrink(l) if *l == 0.5 => x.f_hardshrink()?,
            Act::Hardshrink(l) => x.f_where_self(&x.f_abs()?.f_gt(*l)?, &x.f_zeros_like()?)?,
            Act::Hardtanh(lo, hi) if *lo == -1.0 && *hi == 1.0 => x.f_hardtanh()?,
            Act::Hardtanh(lo, hi) => x.f_clamp(*lo, *hi)?,
            Act::LeakyRelu(s) if *s == 0.01 => x.f_leaky_relu()?,
            Act::LeakyRelu(s) => positive_or(x, &x.f_mul_scalar(*s)?)?,
            Act::LogSigmoid => x.f_log_sigmoid()?,
            Act::LogSoftmax(d) => x.f_log_softmax(*d, None)?,
            Act::Mish => x.f_mish()?,
            Act::Prelu => x.f_prelu(m.param_at(0)?)?,
            Act::Relu => x.f_relu()?,
            Act::Relu6 => x.f_relu6()?,
            Act::Rrelu(lo, up) if m.is_training() => {
                let mut noise = x.f_empty_like()?;
                let _ = noise.f_uniform_(*lo, *up)?;
                positive_or(x, &x.f_mul(&noise)?)?
            }
            Act::Rrelu(lo, up) => positive_or(x, &x.f_mul_scalar((lo + up) / 2.0)?)?,
            Act::Selu => x.f_selu()?,
            Act::Sigmoid => x.f_sigmoid()?,
            Act::Silu => x.f_silu()?,
            Act::Softmax(d) => x.f_softmax(*d, None)?,
            Act::Softmax2d => {
                if x.dim() != 3 && x.dim() != 4 {
                    return Err(err(
                        m.kind(),
                        format!("expected 3D or 4D input, given {}D", x.dim()),
                    ));
                }
                x.f_softmax(-3, None)?
            }
            Act::Softmin(d) => x.f_neg()?.f_softmax(*d, None)?,
            Act::Softplus(b, t) if *b == 1.0 && *t == 20.0 => x.f_softplus()?,
            Act::Softplus(b, t) => {
                // the exp of the clamped input keeps the unused branch's gradient finite
                let z = x.f_mul_scalar(*b)?;
                let soft = z.f_clamp_max(*t)?.f_exp()?.f_log1p()?.f_div_scalar(*b)?;
                x.f_where_self(&z.f_gt(*t)?, &soft)?
            }
            Act::Softshrink(l) if *l == 0.5 => x.f_softshrink()?,
            Act::Softshrink(l) => x.f_sub(&x.f_clamp(-l, *l)?)?,
            Act::Softsign => x.f_div(&x.f_abs()?.f_add_scalar(1.0)?)?,
            Act::Tanh => x.f_tanh()?,
            Act::Tanhshrink => x.f_sub(&x.f_tanh()?)?,
            Act::Threshold(t, v) => x.f_threshold(*t, *v)?,
        };
        Ok(vec![y])
    }
    layer_clone!();
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
