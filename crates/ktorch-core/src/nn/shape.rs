//! Shape changes: flatten, reshape.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, unknown, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["flatten", "reshape"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "flatten" => {
            let a = Args::parse(kind, &["start", "end"], pos, kw)?;
            Ok(Module::new(
                kind,
                Shape::Flatten(a.int("start", 1)?, a.int("end", -1)?),
            ))
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
            Ok(Module::new(kind, Shape::Reshape(size)))
        }
        _ => Err(unknown(kind)),
    }
}

#[derive(Debug, Clone)]
enum Shape {
    Flatten(i64, i64),
    Reshape(Vec<i64>),
}

impl Layer for Shape {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        Ok(vec![match self {
            Shape::Flatten(s, e) => x.f_flatten(*s, *e)?,
            Shape::Reshape(size) => x.f_reshape(size.as_slice())?,
        }])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use crate::nn::testutil::*;
    use crate::value::Value;

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
}
