//! Shape changes: flatten, reshape, expand, permute, squeeze, unsqueeze,
//! transpose, select and indexselect.

use tch::{Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "flatten",
    "reshape",
    "expand",
    "permute",
    "squeeze",
    "unsqueeze",
    "transpose",
    "select",
    "indexselect",
];

/// Dimension `d` of an input with `n` dimensions, counted from the end where
/// negative: an error naming the module and its option when out of range.
pub(crate) fn dim_at(kind: &str, opt: &str, d: i64, n: i64) -> Result<i64> {
    if n == 0 || d < -n || d >= n {
        let range = if n == 0 {
            "none".to_string()
        } else {
            format!("{} to {}", -n, n - 1)
        };
        return Err(err(
            kind,
            format!("{opt} {d} out of range for a {n}-d input (expecting {range})"),
        ));
    }
    Ok(if d < 0 { d + n } else { d })
}

/// A list of sizes or dimensions (`size`), required.
fn sizes(a: &Args, name: &str) -> Result<Vec<i64>> {
    let kind = a.kind().to_string();
    let s = a
        .int_list(name)?
        .ok_or_else(|| err(&kind, format!("{name} not defined")))?;
    if s.is_empty() {
        return Err(err(&kind, format!("{name} is empty")));
    }
    Ok(s)
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let layer = match kind {
        "flatten" => {
            let a = Args::parse(kind, &["start", "end"], pos, kw)?;
            Shape::Flatten(a.int("start", 1)?, a.int("end", -1)?)
        }
        "reshape" => {
            let a = Args::parse(kind, &["size"], pos, kw)?;
            let size = a
                .int_list("size")?
                .ok_or_else(|| err(kind, "size not defined"))?;
            if size.iter().filter(|n| **n == -1).count() > 1 || size.iter().any(|n| *n < -1) {
                return Err(err(
                    kind,
                    format!("size must be non-negative, with at most one -1, given {size:?}"),
                ));
            }
            Shape::Reshape(size)
        }
        "expand" => {
            let a = Args::parse(kind, &["size"], pos, kw)?;
            let size = sizes(&a, "size")?;
            if size.iter().any(|n| *n < -1) {
                return Err(err(
                    kind,
                    format!(
                        "size must be non-negative or -1 (keep the input's size), given {size:?}"
                    ),
                ));
            }
            Shape::Expand(size)
        }
        "permute" => {
            let a = Args::parse(kind, &["size"], pos, kw)?;
            let dims = sizes(&a, "size")?;
            let n = dims.len() as i64;
            let mut seen = vec![false; dims.len()];
            for &d in &dims {
                if d < -n || d >= n || std::mem::replace(&mut seen[d.rem_euclid(n) as usize], true)
                {
                    return Err(err(
                        kind,
                        format!("size must be a permutation of the {n} dimensions, given {dims:?}"),
                    ));
                }
            }
            Shape::Permute(dims)
        }
        "squeeze" | "unsqueeze" => {
            // a single flag by position is the inplace flag (dim left out)
            let moved;
            let pos = if let [b @ Value::Bool(_)] = pos {
                moved = [Value::Null, b.clone()];
                &moved[..]
            } else {
                pos
            };
            let a = Args::parse(kind, &["dim", "inplace"], pos, kw)?;
            a.bool("inplace", false)?;
            let dim = match a.get("dim") {
                Some(_) => Some(a.req_int("dim")?),
                None if kind == "unsqueeze" => return Err(err(kind, "no dimension given")),
                None => None,
            };
            if kind == "squeeze" {
                Shape::Squeeze(dim)
            } else {
                Shape::Unsqueeze(dim.unwrap_or_default())
            }
        }
        "transpose" => {
            let a = Args::parse(kind, &["dim0", "dim1"], pos, kw)?;
            Shape::Transpose(a.int("dim0", -2)?, a.int("dim1", -1)?)
        }
        "select" => {
            let a = Args::parse(kind, &["dim", "ind"], pos, kw)?;
            if !a.has("dim") {
                return Err(err(kind, "no dimension defined"));
            }
            if !a.has("ind") {
                return Err(err(kind, "no index defined"));
            }
            Shape::Select(a.req_int("dim")?, a.req_int("ind")?)
        }
        "indexselect" => return indexselect(kind, pos, kw),
        _ => return Err(unknown(kind)),
    };
    Ok(Module::new(kind, layer))
}

/// `indexselect`: dimension and indices, the indices kept as buffer `ind`
/// (a long scalar or list, as the original registers them).
fn indexselect(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let a = Args::parse(kind, &["dim", "ind"], pos, kw)?;
    if !a.has("dim") {
        return Err(err(kind, "no dimension defined"));
    }
    let dim = a.req_int("dim")?;
    let v = a.get("ind").ok_or_else(|| err(kind, "no index defined"))?;
    let ind = match v {
        Value::Tensor(t) if t.dim() > 1 => {
            return Err(err(
                kind,
                format!(
                    "ind: expecting a scalar index or a 1-dim list, given {}-d tensor",
                    t.dim()
                ),
            ))
        }
        Value::Tensor(t) if t.is_floating_point() || t.kind() == Kind::Bool => {
            return Err(err(
                kind,
                "ind expects integer indices, given a non-integer tensor",
            ))
        }
        Value::Int(i) => Tensor::from(*i),
        Value::Tensor(t) if t.dim() == 0 => Tensor::from(t.f_int64_value(&[])?),
        v => {
            let xs = v.as_ints("ind").map_err(|e| e.named(kind))?;
            Tensor::from_slice(&xs)
        }
    };
    let vals = Vec::<i64>::try_from(&ind.f_reshape([-1])?)?;
    if let Some(i) = vals.iter().find(|i| **i < 0) {
        return Err(err(
            kind,
            format!("ind must hold non-negative indices, given {i}"),
        ));
    }
    Ok(Module::new(kind, Shape::IndexSelect(dim)).with_buffer("ind", ind))
}

#[derive(Debug, Clone)]
enum Shape {
    Flatten(i64, i64),
    Reshape(Vec<i64>),
    Expand(Vec<i64>),
    Permute(Vec<i64>),
    Squeeze(Option<i64>),
    Unsqueeze(i64),
    Transpose(i64, i64),
    Select(i64, i64),
    /// The dimension; the indices are the module's buffer.
    IndexSelect(i64),
}

impl Layer for Shape {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 1, 1)?;
        let x = &xs[0];
        let n = x.dim() as i64;
        Ok(vec![match self {
            Shape::Flatten(s, e) => x.f_flatten(*s, *e)?,
            Shape::Reshape(size) => x.f_reshape(size.as_slice())?,
            Shape::Expand(size) => {
                if (size.len() as i64) < n {
                    return Err(err(
                        kind,
                        format!(
                            "size {size:?} has fewer dimensions than the {n}-d input of size {:?}",
                            x.size()
                        ),
                    ));
                }
                x.f_expand(size.as_slice(), false)?
            }
            Shape::Permute(dims) => {
                if dims.len() as i64 != n {
                    return Err(err(
                        kind,
                        format!(
                            "size {dims:?} has {} dimension(s), the input {n}",
                            dims.len()
                        ),
                    ));
                }
                x.f_permute(dims.as_slice())?
            }
            Shape::Squeeze(None) => x.f_squeeze()?,
            Shape::Squeeze(Some(d)) => x.f_squeeze_dim(dim_at(kind, "dim", *d, n.max(1))?)?,
            Shape::Unsqueeze(d) => x.f_unsqueeze(dim_at(kind, "dim", *d, n + 1)?)?,
            Shape::Transpose(a, b) => {
                let (a, b) = (
                    dim_at(kind, "dim0", *a, n.max(1))?,
                    dim_at(kind, "dim1", *b, n.max(1))?,
                );
                x.f_transpose(a, b)?
            }
            Shape::Select(d, i) => {
                let d = dim_at(kind, "dim", *d, n)?;
                let size = x.size()[d as usize];
                if *i < -size || *i >= size {
                    return Err(err(
                        kind,
                        format!("ind {i} out of range for size {size} of dimension {d}"),
                    ));
                }
                x.f_select(d, *i)?
            }
            Shape::IndexSelect(d) => {
                let d = dim_at(kind, "dim", *d, n.max(1))?;
                let ind = m.buffer_at(0)?;
                let size = if n == 0 { 1 } else { x.size()[d as usize] };
                if ind.numel() > 0 {
                    let top = ind.f_max()?.f_int64_value(&[])?;
                    let low = ind.f_min()?.f_int64_value(&[])?;
                    if top >= size || low < 0 {
                        let bad = if low < 0 { low } else { top };
                        return Err(err(
                            kind,
                            format!("ind {bad} out of range for size {size} of dimension {d}"),
                        ));
                    }
                }
                let ind = ind.f_to_device(x.device())?;
                x.f_index_select(d, &ind)?
            }
        }])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use crate::nn::testutil::*;
    use crate::value::Value;

    fn ints(xs: &[i64]) -> Value {
        Value::from(xs.to_vec())
    }

    #[test]
    fn flatten_and_reshape() {
        let x = randn(&[2, 3, 4, 5]);
        assert_eq!(fwd(&make("flatten", vec![]), &[&x]).size(), [2, 60]);
        let m = make("flatten", vec![Value::Int(0), Value::Int(1)]);
        assert_close(&fwd(&m, &[&x]), &x.flatten(0, 1));
        let m = make("reshape", vec![Value::from(vec![-1i64, 10])]);
        assert_close(&fwd(&m, &[&x]), &x.reshape([-1, 10]));
        assert!(m.forward(&[randn(&[7])]).is_err());
        assert!(make("flatten", vec![Value::Int(5)]).forward(&[x]).is_err());
        assert_eq!(build_err("reshape", vec![]), "reshape: size not defined");
        let e = build_err("reshape", vec![Value::from(vec![-1i64, -1])]);
        assert_eq!(
            e,
            "reshape: size must be non-negative, with at most one -1, given [-1, -1]"
        );
    }

    #[test]
    fn expand_and_permute() {
        let x = randn(&[4, 1]);
        let m = make("expand", vec![ints(&[-1, 3])]);
        assert_close(&fwd(&m, &[&x]), &x.expand([4, 3], false));
        let m = make("expand", vec![ints(&[2, 4, 5])]);
        assert_eq!(fwd(&m, &[&x]).size(), [2, 4, 5]);
        let e = m.forward(&[randn(&[1, 1, 1, 1])]).expect_err("dims");
        assert!(
            e.to_string()
                .starts_with("expand: size [2, 4, 5] has fewer"),
            "{e}"
        );
        assert_eq!(build_err("expand", vec![]), "expand: size not defined");
        assert!(build_err("expand", vec![ints(&[-2, 3])]).starts_with("expand: size must be"));
        let x = randn(&[2, 3, 4, 5]);
        let m = make("permute", vec![ints(&[0, 2, 3, 1])]);
        assert_close(&fwd(&m, &[&x]), &x.permute([0, 2, 3, 1]));
        let m = make("permute", vec![ints(&[-1, 0])]);
        let y = randn(&[3, 2]);
        assert_close(&fwd(&m, &[&y]), &y.permute([1, 0]));
        assert!(m.forward(&[x]).is_err());
        let e = build_err("permute", vec![ints(&[0, 0, 1])]);
        assert_eq!(
            e,
            "permute: size must be a permutation of the 3 dimensions, given [0, 0, 1]"
        );
        assert!(build_err("permute", vec![ints(&[0, -2])]).contains("permutation"));
    }

    #[test]
    fn squeeze_unsqueeze_transpose() {
        let x = randn(&[1, 3, 1]);
        assert_eq!(fwd(&make("squeeze", vec![]), &[&x]).size(), [3]);
        assert_eq!(
            fwd(&make("squeeze", vec![Value::Int(0)]), &[&x]).size(),
            [3, 1]
        );
        assert_eq!(
            fwd(&make("squeeze", vec![Value::Bool(true)]), &[&x]).size(),
            [3]
        );
        assert_eq!(
            fwd(
                &make("squeeze", vec![Value::Int(-1), Value::Bool(false)]),
                &[&x]
            )
            .size(),
            [1, 3]
        );
        let e = make("squeeze", vec![Value::Int(3)])
            .forward(&[x.shallow_clone()])
            .expect_err("range");
        assert_eq!(
            e.to_string(),
            "squeeze: dim 3 out of range for a 3-d input (expecting -3 to 2)"
        );
        let y = randn(&[3]);
        assert_eq!(
            fwd(&make("unsqueeze", vec![Value::Int(1)]), &[&y]).size(),
            [3, 1]
        );
        assert_eq!(
            fwd(&make("unsqueeze", vec![Value::Int(-1)]), &[&y]).size(),
            [3, 1]
        );
        assert_eq!(
            build_err("unsqueeze", vec![]),
            "unsqueeze: no dimension given"
        );
        assert_eq!(
            build_err("unsqueeze", vec![Value::Bool(true)]),
            "unsqueeze: no dimension given"
        );
        assert_eq!(
            build_err("squeeze", vec![Value::Float(0.5)]),
            "squeeze: dim expects an integer, given float"
        );
        let x = randn(&[2, 3, 4]);
        assert_close(
            &fwd(&make("transpose", vec![]), &[&x]),
            &x.transpose(-2, -1),
        );
        let m = make("transpose", vec![Value::Int(0), Value::Int(2)]);
        assert_eq!(fwd(&m, &[&x]).size(), [4, 3, 2]);
        assert!(m.forward(&[randn(&[2, 2])]).is_err());
    }

    #[test]
    fn select_and_indexselect() {
        let x = randn(&[3, 4]);
        let m = make("select", vec![Value::Int(1), Value::Int(-1)]);
        assert_close(&fwd(&m, &[&x]), &x.select(1, 3));
        assert_eq!(build_err("select", vec![]), "select: no dimension defined");
        assert_eq!(
            build_err("select", vec![Value::Int(1)]),
            "select: no index defined"
        );
        let e = make("select", vec![Value::Int(0), Value::Int(3)])
            .forward(&[x.shallow_clone()])
            .expect_err("index");
        assert_eq!(
            e.to_string(),
            "select: ind 3 out of range for size 3 of dimension 0"
        );
        let m = make("indexselect", vec![Value::Int(0), ints(&[0, 2])]);
        let i = Tensor::from_slice(&[0i64, 2]);
        assert_close(&fwd(&m, &[&x]), &x.index_select(0, &i));
        assert_eq!(buffer_shapes(&m), named(&[("ind", &[2])]));
        let m = make("indexselect", vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(buffer_shapes(&m), named(&[("ind", &[])]));
        assert_eq!(fwd(&m, &[&x]).size(), [3, 1]);
        assert_eq!(
            build_err("indexselect", vec![Value::Int(1)]),
            "indexselect: no index defined"
        );
        assert_eq!(
            build_err("indexselect", vec![Value::Int(1), ints(&[0, -1])]),
            "indexselect: ind must hold non-negative indices, given -1"
        );
        let e = make("indexselect", vec![Value::Int(1), ints(&[4])])
            .forward(&[x])
            .expect_err("range");
        assert_eq!(
            e.to_string(),
            "indexselect: ind 4 out of range for size 4 of dimension 1"
        );
    }
}
