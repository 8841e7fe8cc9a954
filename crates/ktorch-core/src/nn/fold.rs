//! fold (torch.nn.Fold, col2im) and unfold (torch.nn.Unfold, im2col): sliding
//! blocks of a batch of 2-d planes to columns and back.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["fold", "unfold"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let fold = kind == "fold";
    let names: &[&'static str] = if fold {
        &["out", "size", "dilate", "pad", "stride"]
    } else {
        &["size", "dilate", "pad", "stride"]
    };
    let a = Args::parse(kind, names, pos, kw)?;
    let check = |name: &str, xs: Vec<i64>, lo: i64| -> Result<Vec<i64>> {
        match xs.iter().find(|x| **x < lo) {
            Some(x) => Err(err(
                kind,
                format!(
                    "{name} must be {}, given {x}",
                    if lo > 0 { "positive" } else { "non-negative" }
                ),
            )),
            None => Ok(xs),
        }
    };
    let out = if fold {
        Some(check("out", a.ints("out", 2, None)?, 1)?)
    } else {
        None
    };
    let layer = Fold {
        out,
        size: check("size", a.ints("size", 2, None)?, 1)?,
        dilate: check("dilate", a.ints("dilate", 2, Some(1))?, 1)?,
        pad: check("pad", a.ints("pad", 2, Some(0))?, 0)?,
        stride: check("stride", a.ints("stride", 2, Some(1))?, 1)?,
    };
    Ok(Module::new(kind, layer))
}

/// Output size (fold only), kernel size, dilation, padding and stride, 2 each.
#[derive(Debug, Clone)]
struct Fold {
    out: Option<Vec<i64>>,
    size: Vec<i64>,
    dilate: Vec<i64>,
    pad: Vec<i64>,
    stride: Vec<i64>,
}

impl Layer for Fold {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let n = x.dim();
        Ok(vec![match &self.out {
            Some(out) => {
                if n != 2 && n != 3 {
                    return Err(err(
                        m.kind(),
                        format!("expected 2D or 3D input, given {n}D"),
                    ));
                }
                x.f_col2im(
                    out.as_slice(),
                    self.size.as_slice(),
                    self.dilate.as_slice(),
                    self.pad.as_slice(),
                    self.stride.as_slice(),
                )?
            }
            None => {
                if n != 3 && n != 4 {
                    return Err(err(
                        m.kind(),
                        format!("expected 3D or 4D input, given {n}D"),
                    ));
                }
                x.f_im2col(
                    self.size.as_slice(),
                    self.dilate.as_slice(),
                    self.pad.as_slice(),
                    self.stride.as_slice(),
                )?
            }
        }])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use crate::nn::testutil::*;
    use crate::value::Value;

    #[test]
    fn unfold_then_fold() {
        let u = make("unfold", vec![Value::from(vec![2i64, 3])]);
        assert!(shapes(&u).is_empty());
        let x = randn(&[2, 3, 5, 6]);
        let cols = fwd(&u, &[&x]);
        // 3 channels x 2 x 3 kernel values, 4 x 4 block positions
        assert_eq!(cols.size(), [2, 18, 16]);
        assert_close(
            &cols.narrow(2, 0, 1).view([2, 3, 2, 3]),
            &x.narrow(2, 0, 2).narrow(3, 0, 3),
        );
        let f = make(
            "fold",
            vec![Value::from(vec![5i64, 6]), Value::from(vec![2i64, 3])],
        );
        // each value comes back once per block holding it: multiplied by that count
        let ones = x.ones_like();
        let count = fwd(&f, &[&fwd(&u, &[&ones])]);
        assert_close(&fwd(&f, &[&cols]), &(&x * &count));
        let f = make(
            "fold",
            vec![
                Value::Int(4),
                Value::Int(2),
                kw(vec![("stride", Value::Int(2))]),
            ],
        );
        let x = randn(&[1, 8, 4]);
        assert_eq!(fwd(&f, &[&x]).size(), [1, 2, 4, 4]);
    }

    #[test]
    fn fold_bad_settings() {
        assert_eq!(
            build_err("fold", vec![Value::Int(4)]),
            "fold: size not defined"
        );
        assert_eq!(build_err("unfold", vec![]), "unfold: size not defined");
        assert_eq!(
            build_err("unfold", vec![Value::Int(2), Value::Int(0)]),
            "unfold: dilate must be positive, given 0"
        );
        assert_eq!(
            build_err("unfold", vec![Value::Int(2), Value::Int(1), Value::Int(-1)]),
            "unfold: pad must be non-negative, given -1"
        );
        assert_eq!(
            build_err("fold", vec![Value::from(vec![1i64, 2, 3]), Value::Int(2)]),
            "fold: out expects 1 or 2 values, given 3"
        );
        let u = make("unfold", vec![Value::Int(2)]);
        let e = u.forward(&[randn(&[2, 3])]).expect_err("2d");
        assert_eq!(e.to_string(), "unfold: expected 3D or 4D input, given 2D");
    }
}
