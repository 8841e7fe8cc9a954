//! Pooling: max, average, adaptive average and adaptive max, in 1-3 dimensions.

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
        };
        Ok(vec![y])
    }
    layer_clone!();
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
