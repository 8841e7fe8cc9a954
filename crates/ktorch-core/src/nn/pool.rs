//! Pooling: max, average, adaptive average and adaptive max, in 1-3 dimensions;
//! fractional max pooling in 2 and 3 dimensions, power-average pooling in 1 and 2.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Named, Result};
use crate::nn::container::layer_clone;
use crate::nn::{dims, spec::Given, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "maxpool1d",
    "maxpool2d",
    "maxpool3d",
    "avgpool1d",
    "avgpool2d",
    "avgpool3d",
    "adaptavg1d",
    "adaptavg2d",
    "adaptavg3d",
    "adaptmax1d",
    "adaptmax2d",
    "adaptmax3d",
    "fmaxpool2d",
    "fmaxpool3d",
    "lppool1d",
    "lppool2d",
];

#[derive(Debug, Clone)]
enum Pool {
    Max {
        size: Vec<i64>,
        stride: Vec<i64>,
        pad: Vec<i64>,
        dilate: Vec<i64>,
        ceiling: bool,
    },
    Avg {
        size: Vec<i64>,
        stride: Vec<i64>,
        pad: Vec<i64>,
        ceiling: bool,
        countpad: bool,
        divisor: Option<i64>,
    },
    /// Output sizes; `None` keeps the input's size in that dimension.
    AdaptAvg(Vec<Option<i64>>),
    AdaptMax(Vec<Option<i64>>),
    /// Fractional max pooling: kernel size and output size or ratio.
    Frac {
        size: Vec<i64>,
        out: FracOut,
    },
    /// Power-average pooling.
    Lp {
        p: f64,
        size: Vec<i64>,
        stride: Vec<i64>,
        ceiling: bool,
    },
}

/// A fractional max pool's output: a size, or a ratio of the input's size.
#[derive(Debug, Clone)]
enum FracOut {
    Size(Vec<i64>),
    Ratio(Vec<f64>),
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let d = dims(kind);
    let pool = if kind.starts_with("maxpool") {
        let a = Args::parse(
            kind,
            &["size", "stride", "pad", "dilate", "ceiling"],
            pos,
            kw,
        )?;
        let size = positive(kind, "size", a.ints("size", d, None)?)?;
        let stride = match a.get("stride") {
            None => size.clone(),
            Some(_) => positive(kind, "stride", a.ints("stride", d, None)?)?,
        };
        let dilate = positive(kind, "dilate", a.ints("dilate", d, Some(1))?)?;
        let pad = a.ints("pad", d, Some(0))?;
        for k in 0..d {
            if pad[k] < 0 || 2 * pad[k] > (size[k] - 1) * dilate[k] + 1 {
                return Err(err(kind, format!("pad must be non-negative and at most half of effective kernel size, given {pad:?}")));
            }
        }
        Pool::Max {
            size,
            stride,
            pad,
            dilate,
            ceiling: a.bool("ceiling", false)?,
        }
    } else if kind.starts_with("avgpool") {
        let names: &[&str] = if d == 1 {
            &["size", "stride", "pad", "ceiling", "countpad"]
        } else {
            &["size", "stride", "pad", "ceiling", "countpad", "divisor"]
        };
        let a = Args::parse(kind, names, pos, kw)?;
        let size = positive(kind, "size", a.ints("size", d, None)?)?;
        let stride = match a.get("stride") {
            None => size.clone(),
            Some(_) => positive(kind, "stride", a.ints("stride", d, None)?)?,
        };
        let pad = a.ints("pad", d, Some(0))?;
        for k in 0..d {
            if pad[k] < 0 || 2 * pad[k] > size[k] {
                return Err(err(
                    kind,
                    format!(
                        "pad must be non-negative and at most half of kernel size, given {pad:?}"
                    ),
                ));
            }
        }
        let divisor = if d == 1 {
            None
        } else {
            a.get("divisor")
                .map(|v| v.as_int("divisor").named(kind))
                .transpose()?
        };
        if let Some(0) = divisor {
            return Err(err(kind, "divisor must be non-zero"));
        }
        let (ceiling, countpad) = (a.bool("ceiling", false)?, a.bool("countpad", true)?);
        Pool::Avg {
            size,
            stride,
            pad,
            ceiling,
            countpad,
            divisor,
        }
    } else if kind.starts_with("fmaxpool") {
        fractional(kind, d, pos, kw)?
    } else if kind.starts_with("lppool") {
        let a = Args::parse(kind, &["p", "size", "stride", "ceiling"], pos, kw)?;
        let p = a
            .get("p")
            .ok_or_else(|| err(kind, "p not defined"))?
            .as_float("p")
            .named(kind)?;
        if !(p.is_finite() && p > 0.0) {
            return Err(err(kind, format!("p must be positive, given {p}")));
        }
        let size = positive(kind, "size", a.ints("size", d, None)?)?;
        let stride = match a.get("stride") {
            None => size.clone(),
            Some(_) => positive(kind, "stride", a.ints("stride", d, None)?)?,
        };
        Pool::Lp {
            p,
            size,
            stride,
            ceiling: a.bool("ceiling", false)?,
        }
    } else {
        let a = Args::parse(kind, &["size"], pos, kw)?;
        let size = adaptive_size(kind, d, a.get("size"))?;
        if kind.starts_with("adaptavg") {
            Pool::AdaptAvg(size)
        } else {
            Pool::AdaptMax(size)
        }
    };
    Ok(Module::new(kind, pool))
}

/// True for a setting given as an empty list (the original's way to say none).
fn empty(v: &Value) -> bool {
    matches!(v, Value::List(xs) | Value::Tuple(xs) if xs.is_empty())
}

/// `fmaxpool2d`/`fmaxpool3d`: kernel size, then output size or output ratio.
fn fractional(kind: &str, d: usize, pos: &[Value], kw: &[(String, Value)]) -> Result<Pool> {
    let a = Args::parse(kind, &["size", "outsize", "ratio"], pos, kw)?;
    let size = positive(kind, "size", a.ints("size", d, None)?)?;
    let outsize = match a.get("outsize") {
        Some(v) if !empty(v) => Some(positive(kind, "outsize", a.ints("outsize", d, None)?)?),
        _ => None,
    };
    let ratio = match a.get("ratio") {
        Some(v) if !empty(v) => {
            let r = v.as_floats("ratio").named(kind)?;
            let r = match r.len() {
                1 => vec![r[0]; d],
                k if k == d => r,
                k => {
                    return Err(err(
                        kind,
                        format!("ratio expects 1 or {d} values, given {k}"),
                    ))
                }
            };
            if let Some(x) = r.iter().find(|x| !(**x > 0.0 && **x < 1.0)) {
                return Err(err(
                    kind,
                    format!("ratio must be between 0 and 1 (exclusive), given {x}"),
                ));
            }
            Some(r)
        }
        _ => None,
    };
    let out = match (outsize, ratio) {
        (Some(_), Some(_)) => {
            return Err(err(
                kind,
                "cannot give both an output size (outsize) and an output ratio (ratio)",
            ))
        }
        (Some(s), None) => FracOut::Size(s),
        (None, Some(r)) => FracOut::Ratio(r),
        (None, None) => {
            return Err(err(
                kind,
                "no output size or ratio given: set outsize or ratio",
            ))
        }
    };
    Ok(Pool::Frac { size, out })
}

fn positive(kind: &str, name: &str, xs: Vec<i64>) -> Result<Vec<i64>> {
    match xs.iter().find(|x| **x <= 0) {
        Some(x) => Err(err(kind, format!("{name} must be positive, given {x}"))),
        None => Ok(xs),
    }
}

/// Output size: an integer or a list of `d` integers, where null keeps the input size.
fn adaptive_size(kind: &str, d: usize, v: Option<&Value>) -> Result<Vec<Option<i64>>> {
    let one = |v: &Value| -> Result<Option<i64>> {
        match v {
            Value::Null => Ok(None),
            v => {
                let n = v.as_int("size").named(kind)?;
                if n <= 0 {
                    return Err(err(kind, format!("size must be positive, given {n}")));
                }
                Ok(Some(n))
            }
        }
    };
    match v {
        None => Err(err(kind, "size not defined")),
        Some(Value::List(xs) | Value::Tuple(xs)) if xs.len() == d => xs.iter().map(one).collect(),
        Some(Value::List(xs) | Value::Tuple(xs)) if xs.len() != 1 => Err(err(
            kind,
            format!("size expects 1 or {d} values, given {}", xs.len()),
        )),
        Some(Value::List(xs) | Value::Tuple(xs)) => Ok(vec![one(&xs[0])?; d]),
        Some(v) => Ok(vec![one(v)?; d]),
    }
}

impl Layer for Pool {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        if let Pool::Frac { size, out } = self {
            return Ok(vec![frac_forward(m.kind(), size, out, xs)?]);
        }
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let d = dims(m.kind());
        let n = x.dim();
        if n != d + 1 && n != d + 2 {
            return Err(err(
                m.kind(),
                format!("expecting {}D or {}D input, given {n}D", d + 1, d + 2),
            ));
        }
        let y = match self {
            Pool::Max {
                size,
                stride,
                pad,
                dilate,
                ceiling,
            } => match d {
                1 => x.f_max_pool1d(size, stride, pad, dilate, *ceiling)?,
                2 => x.f_max_pool2d(size, stride, pad, dilate, *ceiling)?,
                _ => x.f_max_pool3d(size, stride, pad, dilate, *ceiling)?,
            },
            Pool::Avg {
                size,
                stride,
                pad,
                ceiling,
                countpad,
                divisor,
            } => match d {
                1 => x.f_avg_pool1d(size, stride, pad, *ceiling, *countpad)?,
                2 => x.f_avg_pool2d(size, stride, pad, *ceiling, *countpad, *divisor)?,
                _ => x.f_avg_pool3d(size, stride, pad, *ceiling, *countpad, *divisor)?,
            },
            Pool::AdaptAvg(s) => {
                let s = fill_size(s, x);
                match d {
                    1 => x.f_adaptive_avg_pool1d(s)?,
                    2 => x.f_adaptive_avg_pool2d(s)?,
                    _ => x.f_adaptive_avg_pool3d(s)?,
                }
            }
            Pool::AdaptMax(s) => {
                let s = fill_size(s, x);
                match d {
                    1 => x.f_adaptive_max_pool1d(s)?.0,
                    2 => x.f_adaptive_max_pool2d(s)?.0,
                    _ => x.f_adaptive_max_pool3d(s)?.0,
                }
            }
            Pool::Lp {
                p,
                size,
                stride,
                ceiling,
            } => {
                // as torch.nn.functional.lp_pool1d/2d, operation for operation
                let xp = x.f_pow_tensor_scalar(*p)?;
                let zero = vec![0i64; d];
                let avg = match d {
                    1 => xp.f_avg_pool1d(size, stride, &zero, *ceiling, true)?,
                    _ => xp.f_avg_pool2d(size, stride, &zero, *ceiling, true, None)?,
                };
                avg.f_sign()?
                    .f_mul(&avg.f_abs()?.f_relu()?)?
                    .f_mul_scalar(size.iter().product::<i64>())?
                    .f_pow_tensor_scalar(1.0 / *p)?
            }
            Pool::Frac { .. } => unreachable!("fractional max pooling returned above"),
        };
        Ok(vec![y])
    }
    layer_clone!();
}

/// Fractional max pooling of `xs[0]`, with the random samples `xs[1]` (size
/// batch x channels x dimensions, values in [0, 1)) or else samples drawn from
/// libtorch's generator as torch does (`torch.rand`, so `kt.seed` repeats them).
fn frac_forward(kind: &str, size: &[i64], out: &FracOut, xs: &[Tensor]) -> Result<Tensor> {
    want_inputs(kind, xs, 1, 2)?;
    let x = &xs[0];
    let d = size.len();
    let n = x.dim();
    if n != d + 1 && n != d + 2 {
        return Err(err(
            kind,
            format!("expecting {}D or {}D input, given {n}D", d + 1, d + 2),
        ));
    }
    if !x.is_floating_point() {
        return Err(err(
            kind,
            format!("expecting floating point input, given {:?}", x.kind()),
        ));
    }
    let sz = x.size();
    let spatial = &sz[n - d..];
    let outsize: Vec<i64> = match out {
        FracOut::Size(s) => s.clone(),
        FracOut::Ratio(r) => spatial
            .iter()
            .zip(r)
            .map(|(i, r)| (*i as f64 * r) as i64)
            .collect(),
    };
    for k in 0..d {
        if outsize[k] < 1 || outsize[k] > spatial[k] - size[k] + 1 {
            return Err(err(
                kind,
                format!(
                    "output size {outsize:?} with kernel size {size:?} does not fit input size {spatial:?}"
                ),
            ));
        }
    }
    let batch = if n == d + 1 { 1 } else { sz[0] };
    let want = [batch, sz[n - d - 1], d as i64];
    let samples = match xs.get(1) {
        Some(s) => {
            if s.size() != want {
                return Err(err(
                    kind,
                    format!(
                        "random samples must have size {want:?} (batch, channels, {d}), given {:?}",
                        s.size()
                    ),
                ));
            }
            // libtorch's kernel trusts them: values outside [0, 1) would index past the input
            let inside = s.f_ge(0.0)?.f_logical_and(&s.f_lt(1.0)?)?.f_all()?;
            if inside.f_int64_value(&[])? == 0 {
                return Err(err(kind, "random samples must be in [0, 1)"));
            }
            s.f_to_device_(x.device(), x.kind(), false, false)?
        }
        None => Tensor::f_rand(want, (x.kind(), x.device()))?,
    };
    Ok(match d {
        2 => {
            x.f_fractional_max_pool2d(size, outsize.as_slice(), &samples)?
                .0
        }
        _ => {
            x.f_fractional_max_pool3d(size, outsize.as_slice(), &samples)?
                .0
        }
    })
}

/// Adaptive output size with null dimensions taken from the input's trailing sizes.
fn fill_size(s: &[Option<i64>], x: &Tensor) -> Vec<i64> {
    let sz = x.size();
    let off = sz.len() - s.len();
    s.iter()
        .enumerate()
        .map(|(k, v)| v.unwrap_or(sz[off + k]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    #[test]
    fn maxpool_matches_functional() {
        let m = make(
            "maxpool2d",
            vec![
                Value::Int(3),
                Value::Int(2),
                Value::Int(1),
                Value::Int(1),
                Value::Bool(true),
            ],
        );
        assert!(shapes(&m).is_empty());
        let x = randn(&[2, 3, 9, 8]);
        let want = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], true);
        assert_close(&fwd(&m, &[&x]), &want);
        assert_eq!(want.size(), [2, 3, 5, 5]);
        let m = make("maxpool1d", vec![Value::Int(2)]);
        let x = randn(&[2, 3, 9]);
        assert_close(&fwd(&m, &[&x]), &x.max_pool1d([2], [2], [0], [1], false));
        assert_eq!(fwd(&m, &[&x]).size(), [2, 3, 4]);
    }

    #[test]
    fn avgpool_matches_functional() {
        let a = vec![
            Value::Int(3),
            Value::Int(2),
            Value::Int(1),
            kw(vec![("countpad", false.into()), ("divisor", Value::Int(4))]),
        ];
        let m = make("avgpool2d", a);
        let x = randn(&[2, 3, 7, 7]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.avg_pool2d([3, 3], [2, 2], [1, 1], false, false, Some(4)),
        );
        let m = make("avgpool1d", vec![Value::Int(2)]);
        let x = randn(&[1, 2, 7]);
        assert_close(&fwd(&m, &[&x]), &x.avg_pool1d([2], [2], [0], false, true));
        let e = build_err(
            "avgpool1d",
            vec![Value::Int(2), kw(vec![("divisor", Value::Int(1))])],
        );
        assert!(
            e.starts_with("avgpool1d: unrecognized option: divisor"),
            "{e}"
        );
    }

    #[test]
    fn adaptive_pools() {
        let x = randn(&[2, 3, 9, 7]);
        let m = make("adaptavg2d", vec![Value::from(vec![2i64, 3])]);
        assert_close(&fwd(&m, &[&x]), &x.adaptive_avg_pool2d([2, 3]));
        let m = make("adaptmax2d", vec![Value::Int(4)]);
        let out = m.forward(&[x.shallow_clone()]).expect("forward");
        assert_eq!(out.len(), 1);
        assert_close(&out[0], &x.adaptive_max_pool2d([4, 4]).0);
        let m = make(
            "adaptavg2d",
            vec![Value::List(vec![Value::Null, Value::Int(2)])],
        );
        assert_eq!(fwd(&m, &[&x]).size(), [2, 3, 9, 2]);
        let m = make("adaptavg1d", vec![Value::Int(1)]);
        let x = randn(&[2, 5, 6]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.mean_dim([2i64].as_slice(), true, tch::Kind::Float),
        );
    }

    #[test]
    fn fractional_max_pools() {
        let x = randn(&[2, 3, 9, 8]);
        let m = make(
            "fmaxpool2d",
            vec![
                Value::Int(2),
                kw(vec![("outsize", Value::from(vec![4i64, 5]))]),
            ],
        );
        assert!(shapes(&m).is_empty());
        let s = Tensor::rand([2, 3, 2], (tch::Kind::Float, tch::Device::Cpu));
        let y = fwd(&m, &[&x, &s]);
        assert_close(&y, &x.fractional_max_pool2d([2, 2], [4, 5], &s).0);
        // a ratio of the input's size, truncated: 9 * 0.5, 8 * 0.5
        let m = make(
            "fmaxpool2d",
            vec![Value::Int(2), Value::List(vec![]), Value::Float(0.5)],
        );
        assert_eq!(fwd(&m, &[&x]).size(), [2, 3, 4, 4]);
        let m = make("fmaxpool3d", vec![Value::Int(2), Value::Int(3)]);
        let x = randn(&[3, 6, 5, 7]);
        let s = Tensor::rand([1, 3, 3], (tch::Kind::Float, tch::Device::Cpu));
        assert_close(
            &fwd(&m, &[&x, &s]),
            &x.fractional_max_pool3d([2, 2, 2], [3, 3, 3], &s).0,
        );
        let e = m
            .forward(&[x.shallow_clone(), s.view([3, 1, 3])])
            .expect_err("samples");
        assert!(
            e.to_string()
                .starts_with("fmaxpool3d: random samples must have size [1, 3, 3]"),
            "{e}"
        );
        assert_eq!(
            build_err("fmaxpool2d", vec![Value::Int(2)]),
            "fmaxpool2d: no output size or ratio given: set outsize or ratio"
        );
        assert_eq!(
            build_err(
                "fmaxpool2d",
                vec![Value::Int(2), Value::Int(3), Value::Float(0.5)]
            ),
            "fmaxpool2d: cannot give both an output size (outsize) and an output ratio (ratio)"
        );
        assert_eq!(
            build_err(
                "fmaxpool3d",
                vec![
                    Value::Int(2),
                    kw(vec![("ratio", Value::from(vec![0.5, 1.0, 0.5]))])
                ]
            ),
            "fmaxpool3d: ratio must be between 0 and 1 (exclusive), given 1"
        );
    }

    #[test]
    fn power_average_pools() {
        let x = randn(&[2, 3, 8, 9]).abs();
        let m = make("lppool2d", vec![Value::Int(2), Value::from(vec![2i64, 3])]);
        // p = 2: the 2-norm of each window
        let want = x
            .square()
            .avg_pool2d([2, 3], [2, 3], [0, 0], false, true, None)
            .multiply_scalar(6)
            .sqrt();
        assert_close(&fwd(&m, &[&x]), &want);
        let m = make(
            "lppool1d",
            vec![
                Value::Float(1.0),
                Value::Int(3),
                Value::Int(2),
                Value::Bool(true),
            ],
        );
        let x = randn(&[2, 4, 10]).abs();
        // p = 1: the sum of each window
        let want = x.avg_pool1d([3], [2], [0], true, true) * 3;
        assert_close(&fwd(&m, &[&x]), &want);
        assert_eq!(build_err("lppool1d", vec![]), "lppool1d: p not defined");
        assert_eq!(
            build_err("lppool2d", vec![Value::Int(0), Value::Int(2)]),
            "lppool2d: p must be positive, given 0"
        );
        assert_eq!(
            build_err("lppool2d", vec![Value::Int(2)]),
            "lppool2d: size not defined"
        );
    }

    #[test]
    fn pool_bad_settings() {
        assert_eq!(
            build_err("maxpool2d", vec![]),
            "maxpool2d: size not defined"
        );
        assert_eq!(
            build_err("maxpool2d", vec![Value::Int(0)]),
            "maxpool2d: size must be positive, given 0"
        );
        let e = build_err(
            "maxpool2d",
            vec![Value::Int(2), Value::Int(2), Value::Int(2)],
        );
        assert!(
            e.starts_with("maxpool2d: pad must be non-negative and at most half"),
            "{e}"
        );
        assert_eq!(
            build_err("adaptavg2d", vec![Value::Int(-1)]),
            "adaptavg2d: size must be positive, given -1"
        );
        let e = build_err("adaptmax2d", vec![Value::from(vec![1i64, 2, 3])]);
        assert_eq!(e, "adaptmax2d: size expects 1 or 2 values, given 3");
        let m = make("maxpool2d", vec![Value::Int(2)]);
        let e = m.forward(&[randn(&[3])]).expect_err("1d input");
        assert_eq!(
            e.to_string(),
            "maxpool2d: expecting 3D or 4D input, given 1D"
        );
        assert!(m.forward(&[randn(&[1, 1, 1, 1])]).is_err());
    }
}
