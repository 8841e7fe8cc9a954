//! Functions as modules: cat, matmul and mul of two inputs, normalize, onehot,
//! interpolate and upsample, and the distances pairwise and similar.

use tch::{Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::shape::dim_at;
use crate::nn::{spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "cat",
    "matmul",
    "mul",
    "normalize",
    "onehot",
    "interpolate",
    "upsample",
    "pairwise",
    "similar",
];

/// Modes of `interpolate` (the original's names: `nearestexact` is PyTorch's
/// `nearest-exact`); `upsample` takes the first six but `nearestexact`.
const INTERPOLATE: &[&str] = &[
    "nearest",
    "linear",
    "bilinear",
    "bicubic",
    "trilinear",
    "area",
    "nearestexact",
];
const UPSAMPLE: &[&str] = &["nearest", "linear", "bilinear", "bicubic", "trilinear"];

#[derive(Debug, Clone)]
enum Func {
    Cat(i64),
    Matmul,
    Mul,
    Normalize { p: f64, dim: i64, eps: f64 },
    OneHot { classes: i64, kind: Kind },
    Interpolate(Interp),
    Pairwise { p: f64, eps: f64, keepdim: bool },
    Similar { dim: i64, eps: f64 },
}

/// Output size or scale (one value for every spatial dimension, or one for each),
/// mode, corner alignment and whether the scale is recomputed from the sizes.
#[derive(Debug, Clone)]
struct Interp {
    size: Option<Vec<i64>>,
    scale: Option<Vec<f64>>,
    mode: String,
    align: Option<bool>,
    rescale: Option<bool>,
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let f = match kind {
        "cat" => Func::Cat(Args::parse(kind, &["dim"], pos, kw)?.int("dim", 0)?),
        "matmul" | "mul" => {
            Args::parse(kind, &[], pos, kw)?;
            if kind == "mul" {
                Func::Mul
            } else {
                Func::Matmul
            }
        }
        "normalize" => {
            let a = Args::parse(kind, &["p", "dim", "eps"], pos, kw)?;
            Func::Normalize {
                p: a.float("p", 2.0)?,
                dim: a.int("dim", 1)?,
                eps: a.nonneg("eps", 1e-12)?,
            }
        }
        "onehot" => {
            let a = Args::parse(kind, &["classes", "dtype"], pos, kw)?;
            let classes = a.int("classes", -1)?;
            if classes < -1 {
                return Err(err(
                    kind,
                    format!(
                        "classes must be non-negative or -1 to take the count from the input, \
                         given {classes}"
                    ),
                ));
            }
            let kind_ = match a.str("dtype")? {
                None => Kind::Float,
                Some(s) => crate::tensor::kind_from_name(&s)
                    .filter(|k| !matches!(k, Kind::ComplexFloat | Kind::ComplexDouble))
                    .ok_or_else(|| {
                        err(
                            kind,
                            format!(
                                "dtype: unrecognized value `{s}`, expecting one of: float, \
                                 double, half, bfloat, long, int, short, char, byte, bool"
                            ),
                        )
                    })?,
            };
            Func::OneHot {
                classes,
                kind: kind_,
            }
        }
        "interpolate" | "upsample" => Func::Interpolate(interp(kind, pos, kw)?),
        "pairwise" => {
            let a = Args::parse(kind, &["p", "eps", "keepdim"], pos, kw)?;
            Func::Pairwise {
                p: a.nonneg("p", 2.0)?,
                eps: a.nonneg("eps", 1e-6)?,
                keepdim: a.bool("keepdim", false)?,
            }
        }
        "similar" => {
            let a = Args::parse(kind, &["dim", "eps"], pos, kw)?;
            Func::Similar {
                dim: a.int("dim", 1)?,
                eps: a.nonneg("eps", 1e-8)?,
            }
        }
        _ => return Err(unknown(kind)),
    };
    Ok(Module::new(kind, f))
}

/// The options of `interpolate` (size, scale, mode, align, rescale) and
/// `upsample` (the same but rescale).
fn interp(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Interp> {
    let up = kind == "upsample";
    let names: &[&str] = if up {
        &["size", "scale", "mode", "align"]
    } else {
        &["size", "scale", "mode", "align", "rescale"]
    };
    let a = Args::parse(kind, names, pos, kw)?;
    let size = a.int_list("size")?.filter(|s| !s.is_empty());
    let scale = match a.get("scale") {
        None => None,
        Some(v) => Some(v.as_floats("scale").map_err(|e| e.named(kind))?),
    }
    .filter(|s| !s.is_empty());
    match (&size, &scale) {
        (None, None) => return Err(err(kind, "no output size or scale factor given")),
        (Some(_), Some(_)) => return Err(err(kind, "both output size and scale factor given")),
        _ => {}
    }
    if let Some(s) = size.as_ref().filter(|s| s.iter().any(|n| *n <= 0)) {
        return Err(err(kind, format!("size must be positive, given {s:?}")));
    }
    if let Some(s) = scale
        .as_ref()
        .filter(|s| s.iter().any(|f| !(f.is_finite() && *f > 0.0)))
    {
        return Err(err(kind, format!("scale must be positive, given {s:?}")));
    }
    let mode = a.choice("mode", "nearest", if up { UPSAMPLE } else { INTERPOLATE })?;
    let align = if a.has("align") {
        Some(a.bool("align", false)?)
    } else {
        None
    };
    if align.is_some() && matches!(mode.as_str(), "nearest" | "area" | "nearestexact") {
        return Err(err(
            kind,
            format!(
                "align applies only to the interpolating modes linear, bilinear, bicubic and \
                 trilinear, given mode {mode}"
            ),
        ));
    }
    let rescale = if !up && a.has("rescale") {
        Some(a.bool("rescale", false)?)
    } else {
        None
    };
    if rescale == Some(true) && size.is_some() {
        return Err(err(
            kind,
            "rescale (recompute the scale factor) is not meaningful with an explicit size",
        ));
    }
    Ok(Interp {
        size,
        scale,
        mode,
        align,
        rescale,
    })
}

/// Values for every spatial dimension: one repeated, or one each.
fn each<T: Copy>(kind: &str, name: &str, v: &[T], d: usize) -> Result<Vec<T>> {
    match v.len() {
        1 => Ok(vec![v[0]; d]),
        n if n == d => Ok(v.to_vec()),
        n => Err(err(
            kind,
            format!("{name} has {n} values, the input {d} spatial dimension(s)"),
        )),
    }
}

impl Interp {
    /// torch.nn.functional.interpolate with these options.
    fn apply(&self, kind: &str, x: &Tensor) -> Result<Tensor> {
        let n = x.dim();
        let mode = self.mode.as_str();
        let want = match mode {
            "linear" => Some(3),
            "bilinear" | "bicubic" => Some(4),
            "trilinear" => Some(5),
            _ => None,
        };
        match want {
            Some(w) if n != w => {
                return Err(err(
                    kind,
                    format!("mode {mode} expects a {w}-d input, given {n}-d"),
                ))
            }
            None if !(3..=5).contains(&n) => {
                return Err(err(
                    kind,
                    format!("mode {mode} expects a 3-d, 4-d or 5-d input, given {n}-d"),
                ))
            }
            _ => {}
        }
        let d = n - 2;
        let input = &x.size()[2..];
        let (out, scales): (Vec<i64>, Vec<Option<f64>>) = match (&self.size, &self.scale) {
            (Some(s), _) => (each(kind, "size", s, d)?, vec![None; d]),
            (None, Some(f)) => {
                let f = each(kind, "scale", f, d)?;
                let out: Vec<i64> = input
                    .iter()
                    .zip(&f)
                    .map(|(i, f)| (*i as f64 * f).floor() as i64)
                    .collect();
                if let Some(o) = out.iter().find(|o| **o < 1) {
                    return Err(err(
                        kind,
                        format!(
                            "scale {f:?} makes an output size of {o} from input size {input:?}"
                        ),
                    ));
                }
                let recompute = self.rescale == Some(true) || mode == "area";
                let scales = f.iter().map(|f| (!recompute).then_some(*f)).collect();
                (out, scales)
            }
            (None, None) => {
                return Err(err("interpolate", "neither size nor scale defined"));
            }
        };
        let align = self.align.unwrap_or(false);
        let o = out.as_slice();
        Ok(match (mode, d) {
            ("nearest", 1) => x.f_upsample_nearest1d(o, scales[0])?,
            ("nearest", 2) => x.f_upsample_nearest2d(o, scales[0], scales[1])?,
            ("nearest", _) => x.f_upsample_nearest3d(o, scales[0], scales[1], scales[2])?,
            ("nearestexact", 1) => x.f_internal_upsample_nearest_exact1d(o, scales[0])?,
            ("nearestexact", 2) => {
                x.f_internal_upsample_nearest_exact2d(o, scales[0], scales[1])?
            }
            ("nearestexact", _) => {
                x.f_internal_upsample_nearest_exact3d(o, scales[0], scales[1], scales[2])?
            }
            ("area", 1) => x.f_adaptive_avg_pool1d(o)?,
            ("area", 2) => x.f_adaptive_avg_pool2d(o)?,
            ("area", _) => x.f_adaptive_avg_pool3d(o)?,
            ("linear", _) => x.f_upsample_linear1d(o, align, scales[0])?,
            ("bilinear", _) => x.f_upsample_bilinear2d(o, align, scales[0], scales[1])?,
            ("bicubic", _) => x.f_upsample_bicubic2d(o, align, scales[0], scales[1])?,
            _ => x.f_upsample_trilinear3d(o, align, scales[0], scales[1], scales[2])?,
        })
    }
}

impl Layer for Func {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        let two = matches!(
            self,
            Func::Cat(_) | Func::Matmul | Func::Mul | Func::Pairwise { .. } | Func::Similar { .. }
        );
        if two {
            want_inputs(kind, xs, 2, 2)?;
        } else {
            want_inputs(kind, xs, 1, 1)?;
        }
        let x = &xs[0];
        Ok(vec![match self {
            Func::Cat(dim) => {
                let (a, b) = (x.dim(), xs[1].dim());
                if a != b {
                    return Err(err(
                        kind,
                        format!("expecting inputs with the same number of dimensions, given {a}-d and {b}-d"),
                    ));
                }
                let d = dim_at(kind, "dim", *dim, a as i64)?;
                Tensor::f_cat(&[x, &xs[1]], d)?
            }
            Func::Matmul => x.f_matmul(&xs[1])?,
            Func::Mul => x.f_mul(&xs[1])?,
            Func::Normalize { p, dim, eps } => {
                let d = dim_at(kind, "dim", *dim, x.dim() as i64)?;
                let norm = x
                    .f_norm_scalaropt_dim(*p, [d].as_slice(), true)?
                    .f_clamp_min(*eps)?
                    .f_expand_as(x)?;
                x.f_div(&norm)?
            }
            Func::OneHot { classes, kind: k } => {
                if x.is_floating_point() || x.is_complex() || x.kind() == Kind::Bool {
                    return Err(err(
                        kind,
                        format!(
                            "expecting integer class indices, given {} input",
                            crate::tensor::kind_name(x.kind())
                        ),
                    ));
                }
                x.f_to_kind(Kind::Int64)?
                    .f_one_hot(*classes)?
                    .f_to_kind(*k)?
            }
            Func::Interpolate(i) => i.apply(kind, x)?,
            Func::Pairwise { p, eps, keepdim } => {
                Tensor::f_pairwise_distance(x, &xs[1], *p, *eps, *keepdim)?
            }
            Func::Similar { dim, eps } => Tensor::f_cosine_similarity(x, &xs[1], *dim, *eps)?,
        }])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use crate::nn::testutil::*;
    use crate::value::Value;

    fn ints(xs: &[i64]) -> Value {
        Value::from(xs.to_vec())
    }

    fn fwd2(m: &crate::nn::Module, a: &Tensor, b: &Tensor) -> Tensor {
        m.forward_first(&[a.shallow_clone(), b.shallow_clone()])
            .unwrap_or_else(|e| panic!("{}: {e}", m.kind()))
    }

    #[test]
    fn two_inputs() {
        let (a, b) = (randn(&[2, 3]), randn(&[1, 3]));
        let m = make("cat", vec![]);
        assert_close(&fwd2(&m, &a, &b), &Tensor::cat(&[&a, &b], 0));
        let e = m.forward(&[a.shallow_clone()]).expect_err("one input");
        assert_eq!(
            e.to_string(),
            "cat: forward expects 2 input tensor(s), given 1 tensor(s)"
        );
        let m = make("cat", vec![Value::Int(-1)]);
        let c = randn(&[2, 4]);
        assert_eq!(fwd2(&m, &a, &c).size(), [2, 7]);
        let e = m
            .forward(&[a.shallow_clone(), randn(&[3])])
            .expect_err("dims");
        assert!(e
            .to_string()
            .starts_with("cat: expecting inputs with the same"));
        let m = make("mul", vec![]);
        assert_close(&fwd2(&m, &a, &b), &(&a * &b));
        let m = make("matmul", vec![]);
        let w = randn(&[3, 5]);
        assert_close(&fwd2(&m, &a, &w), &a.matmul(&w));
        assert_eq!(
            build_err("matmul", vec![Value::Int(1)]),
            "matmul: expecting at most 0 positional setting(s), given 1"
        );
        let m = make("pairwise", vec![]);
        let y = fwd2(&m, &a, &b);
        assert_close(&y, &Tensor::pairwise_distance(&a, &b, 2.0, 1e-6, false));
        let m = make("similar", vec![Value::Int(1)]);
        let y = fwd2(&m, &a, &b);
        assert_close(&y, &Tensor::cosine_similarity(&a, &b, 1, 1e-8));
        assert_eq!(
            build_err("pairwise", vec![Value::Float(-1.0)]),
            "pairwise: p must be non-negative, given -1"
        );
    }

    #[test]
    fn normalize_and_onehot() {
        let x = randn(&[4, 3]);
        let m = make("normalize", vec![]);
        let want = &x / x.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
        assert_close(&fwd(&m, &[&x]), &want);
        let e = make("normalize", vec![Value::Float(2.0), Value::Int(2)])
            .forward(&[x])
            .expect_err("dim");
        assert_eq!(
            e.to_string(),
            "normalize: dim 2 out of range for a 2-d input (expecting -2 to 1)"
        );
        let i = Tensor::from_slice(&[4i64, 1, 2, 0]);
        let m = make("onehot", vec![Value::Int(5)]);
        let y = fwd(&m, &[&i]);
        assert_eq!(y.size(), [4, 5]);
        assert_eq!(y.kind(), Kind::Float);
        assert_eq!(y.double_value(&[0, 4]), 1.0);
        let m = make("onehot", vec![Value::Null, Value::from("long")]);
        let y = fwd(&m, &[&i]);
        assert_eq!((y.size(), y.kind()), (vec![4, 5], Kind::Int64));
        assert!(m.forward(&[randn(&[3])]).is_err());
        assert_eq!(
            build_err("onehot", vec![Value::Int(-2)]),
            "onehot: classes must be non-negative or -1 to take the count from the input, given -2"
        );
        assert!(
            build_err("onehot", vec![Value::Int(3), Value::from("cdouble")])
                .starts_with("onehot: dtype: unrecognized value `cdouble`")
        );
        // dtype by name is the onehot's own option, not the module's placement
        let m = make(
            "onehot",
            vec![Value::Int(3), kw(vec![("dtype", Value::from("bool"))])],
        );
        assert_eq!(fwd(&m, &[&i.remainder(3)]).kind(), Kind::Bool);
    }

    #[test]
    fn interpolate_and_upsample() {
        let x = randn(&[1, 2, 3, 4]);
        let m = make("upsample", vec![Value::Null, Value::Float(2.0)]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.upsample_nearest2d([6i64, 8].as_slice(), 2.0, 2.0),
        );
        let m = make(
            "interpolate",
            vec![
                ints(&[5, 7]),
                Value::Null,
                Value::from("bilinear"),
                Value::Bool(true),
            ],
        );
        assert_close(
            &fwd(&m, &[&x]),
            &x.upsample_bilinear2d([5i64, 7].as_slice(), true, None, None),
        );
        let m = make(
            "interpolate",
            vec![Value::Int(2), Value::Null, Value::from("area")],
        );
        assert_close(
            &fwd(&m, &[&x]),
            &x.adaptive_avg_pool2d([2i64, 2].as_slice()),
        );
        let e = m.forward(&[randn(&[3, 4])]).expect_err("dims");
        assert_eq!(
            e.to_string(),
            "interpolate: mode area expects a 3-d, 4-d or 5-d input, given 2-d"
        );
        let m = make(
            "upsample",
            vec![Value::Int(4), Value::Null, Value::from("linear")],
        );
        let e = m.forward(&[x]).expect_err("mode dims");
        assert_eq!(
            e.to_string(),
            "upsample: mode linear expects a 3-d input, given 4-d"
        );
        assert_eq!(
            build_err("upsample", vec![]),
            "upsample: no output size or scale factor given"
        );
        assert_eq!(
            build_err("interpolate", vec![Value::Int(2), Value::Float(2.0)]),
            "interpolate: both output size and scale factor given"
        );
        assert!(build_err(
            "upsample",
            vec![
                Value::Int(2),
                Value::Null,
                Value::from("nearest"),
                Value::Bool(false)
            ]
        )
        .starts_with("upsample: align applies only"));
        assert!(build_err(
            "upsample",
            vec![Value::Int(2), Value::Null, Value::from("area")]
        )
        .starts_with("upsample: mode: unrecognized value `area`"));
        assert!(build_err(
            "interpolate",
            vec![
                Value::Int(2),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Bool(true)
            ]
        )
        .starts_with("interpolate: rescale"));
        assert_eq!(
            build_err("upsample", vec![Value::Int(0)]),
            "upsample: size must be positive, given [0]"
        );
    }
}
