//! Convolutions: conv1d/2d/3d and convtranspose1d/2d/3d.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{dims, spec::Given, uniform, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "conv1d",
    "conv2d",
    "conv3d",
    "convtranspose1d",
    "convtranspose2d",
    "convtranspose3d",
];

const CONV: &[&str] = &[
    "in", "out", "size", "stride", "pad", "dilate", "groups", "bias", "padmode",
];
const TRANSPOSE: &[&str] = &[
    "in", "out", "size", "stride", "pad", "outpad", "groups", "bias", "dilate", "padmode",
];
const PADMODES: &[&str] = &["zeros", "reflect", "replicate", "circular"];

/// Padding: explicit sizes, or PyTorch's "same" / "valid".
#[derive(Debug, Clone, PartialEq)]
enum Pad {
    Ints(Vec<i64>),
    Same,
    Valid,
}

#[derive(Debug, Clone)]
struct Conv {
    d: usize,
    size: Vec<i64>,
    stride: Vec<i64>,
    pad: Pad,
    dilate: Vec<i64>,
    groups: i64,
    bias: bool,
    padmode: String,
    transposed: bool,
    outpad: Vec<i64>,
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let (d, transposed) = (dims(kind), kind.starts_with("convtranspose"));
    let a = Args::parse(kind, if transposed { TRANSPOSE } else { CONV }, pos, kw)?;
    let (i, o) = (a.req_pos("in")?, a.req_pos("out")?);
    let size = a.ints("size", d, None)?;
    let stride = a.ints("stride", d, Some(1))?;
    let dilate = a.ints("dilate", d, Some(1))?;
    let groups = a.int("groups", 1)?;
    let bias = a.bool("bias", true)?;
    for (name, xs) in [("size", &size), ("stride", &stride), ("dilate", &dilate)] {
        if let Some(x) = xs.iter().find(|x| **x <= 0) {
            return Err(err(kind, format!("{name} must be positive, given {x}")));
        }
    }
    if groups <= 0 {
        return Err(err(
            kind,
            format!("groups must be positive, given {groups}"),
        ));
    }
    if i % groups != 0 || o % groups != 0 {
        return Err(err(
            kind,
            format!("in and out channels ({i}, {o}) must be divisible by groups ({groups})"),
        ));
    }
    let pad = match a.get("pad") {
        Some(Value::Str(s)) if !transposed && s == "same" => {
            if stride.iter().any(|s| *s != 1) {
                return Err(err(
                    kind,
                    "pad \"same\" is not supported for strided convolutions",
                ));
            }
            Pad::Same
        }
        Some(Value::Str(s)) if !transposed && s == "valid" => Pad::Valid,
        Some(Value::Str(s)) => {
            let expect = if transposed {
                "integer(s)"
            } else {
                "integer(s), \"same\" or \"valid\""
            };
            return Err(err(
                kind,
                format!("pad: unrecognized value `{s}`, expecting {expect}"),
            ));
        }
        _ => Pad::Ints(nonneg(kind, "pad", a.ints("pad", d, Some(0))?)?),
    };
    let padmode = a.choice(
        "padmode",
        "zeros",
        if transposed { &PADMODES[..1] } else { PADMODES },
    )?;
    let outpad = if transposed {
        nonneg(kind, "outpad", a.ints("outpad", d, Some(0))?)?
    } else {
        vec![0; d]
    };
    for k in 0..d {
        if outpad[k] >= stride[k].max(dilate[k]) {
            return Err(err(
                kind,
                format!("outpad must be smaller than either stride or dilate, given {outpad:?}"),
            ));
        }
    }
    // weight: [out, in/groups, *size] (transposed: [in, out/groups, *size]); fan-in is dim 1 times the kernel
    let mut wsize = if transposed {
        vec![i, o / groups]
    } else {
        vec![o, i / groups]
    };
    wsize.extend_from_slice(&size);
    let bound = 1.0 / ((wsize[1] * size.iter().product::<i64>()) as f64).sqrt();
    let conv = Conv {
        d,
        size,
        stride,
        pad,
        dilate,
        groups,
        bias,
        padmode,
        transposed,
        outpad,
    };
    let mut m = Module::new(kind, conv).with_param("weight", uniform(&wsize, bound)?)?;
    if bias {
        m = m.with_param("bias", uniform(&[o], bound)?)?;
    }
    Ok(m)
}

fn nonneg(kind: &str, name: &str, xs: Vec<i64>) -> Result<Vec<i64>> {
    match xs.iter().find(|x| **x < 0) {
        Some(x) => Err(err(kind, format!("{name} must be non-negative, given {x}"))),
        None => Ok(xs),
    }
}

impl Conv {
    /// Padding for `F.pad` with a non-zero mode: last dimension first, (left, right) pairs.
    fn explicit_pad(&self) -> Vec<i64> {
        let mut v = Vec::with_capacity(2 * self.d);
        for k in (0..self.d).rev() {
            let (l, r) = match &self.pad {
                Pad::Ints(p) => (p[k], p[k]),
                Pad::Valid => (0, 0),
                Pad::Same => {
                    let total = self.dilate[k] * (self.size[k] - 1);
                    (total / 2, total - total / 2)
                }
            };
            v.push(l);
            v.push(r);
        }
        v
    }
}

impl Layer for Conv {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let n = x.dim();
        if n != self.d + 1 && n != self.d + 2 {
            return Err(err(
                m.kind(),
                format!(
                    "expecting {}D or {}D input, given {n}D",
                    self.d + 1,
                    self.d + 2
                ),
            ));
        }
        let (w, b) = (
            m.param_at(0)?,
            if self.bias {
                Some(m.param_at(1)?)
            } else {
                None
            },
        );
        let (s, dl, g) = (self.stride.as_slice(), self.dilate.as_slice(), self.groups);
        let y = if self.transposed {
            let p = match &self.pad {
                Pad::Ints(p) => p.as_slice(),
                _ => return Err(err(m.kind(), "pad must be integer(s)")),
            };
            let op = self.outpad.as_slice();
            match self.d {
                1 => x.f_conv_transpose1d(w, b, s, p, op, g, dl)?,
                2 => x.f_conv_transpose2d(w, b, s, p, op, g, dl)?,
                _ => x.f_conv_transpose3d(w, b, s, p, op, g, dl)?,
            }
        } else if self.padmode != "zeros" {
            let x = x.f_pad(self.explicit_pad(), &self.padmode, None)?;
            let p = vec![0i64; self.d];
            conv_ints(self.d, &x, w, b, s, &p, dl, g)?
        } else {
            match &self.pad {
                Pad::Ints(p) => conv_ints(self.d, x, w, b, s, p, dl, g)?,
                pad => {
                    let mode = if *pad == Pad::Same { "same" } else { "valid" };
                    match self.d {
                        1 => x.f_conv1d_padding(w, b, s, mode, dl, g)?,
                        2 => x.f_conv2d_padding(w, b, s, mode, dl, g)?,
                        _ => x.f_conv3d_padding(w, b, s, mode, dl, g)?,
                    }
                }
            }
        };
        Ok(vec![y])
    }
    layer_clone!();
}

#[allow(clippy::too_many_arguments)]
fn conv_ints(
    d: usize,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    s: &[i64],
    p: &[i64],
    dl: &[i64],
    g: i64,
) -> Result<Tensor> {
    Ok(match d {
        1 => x.f_conv1d(w, b, s, p, dl, g)?,
        2 => x.f_conv2d(w, b, s, p, dl, g)?,
        _ => x.f_conv3d(w, b, s, p, dl, g)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    fn ints(xs: &[i64]) -> Vec<Value> {
        xs.iter().map(|x| Value::Int(*x)).collect()
    }

    #[test]
    fn conv2d_params_and_forward() {
        let m = make("conv2d", ints(&[1, 16, 3]));
        assert_eq!(
            shapes(&m),
            named(&[("weight", &[16, 1, 3, 3]), ("bias", &[16])])
        );
        assert_uniform(m.param_at(0).expect("declared"), 1.0 / 3.0);
        let x = randn(&[2, 1, 8, 8]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [2, 16, 6, 6]);
        assert_close(
            &y,
            &x.conv2d(
                m.param_at(0).expect("declared"),
                Some(m.param_at(1).expect("declared")),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            ),
        );
    }

    #[test]
    fn conv1d_groups_stride_pad_dilate() {
        let m = make("conv1d", ints(&[2, 6, 3, 2, 1, 2, 2]));
        assert_eq!(shapes(&m), named(&[("weight", &[6, 1, 3]), ("bias", &[6])]));
        let x = randn(&[3, 2, 11]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.conv1d(
                m.param_at(0).expect("declared"),
                Some(m.param_at(1).expect("declared")),
                [2],
                [1],
                [2],
                2,
            ),
        );
        // unbatched input
        let x = randn(&[2, 11]);
        assert_eq!(fwd(&m, &[&x]).size(), [6, 5]);
    }

    #[test]
    fn conv3d_kernel_list_no_bias() {
        let mut a = ints(&[2, 4]);
        a.push(Value::from(vec![1i64, 2, 3]));
        a.push(kw(vec![("bias", false.into())]));
        let m = make("conv3d", a);
        assert_eq!(shapes(&m), named(&[("weight", &[4, 2, 1, 2, 3])]));
        let x = randn(&[1, 2, 4, 5, 6]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.conv3d::<Tensor>(
                m.param_at(0).expect("declared"),
                None,
                [1; 3],
                [0; 3],
                [1; 3],
                1,
            ),
        );
    }

    #[test]
    fn same_and_valid_padding() {
        let mut a = ints(&[1, 2, 4]);
        a.push(kw(vec![("pad", "same".into()), ("dilate", Value::Int(2))]));
        let m = make("conv2d", a);
        let x = randn(&[1, 1, 9, 7]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [1, 2, 9, 7]);
        assert_close(
            &y,
            &x.conv2d_padding(
                m.param_at(0).expect("declared"),
                Some(m.param_at(1).expect("declared")),
                [1, 1],
                "same",
                [2, 2],
                1,
            ),
        );
        let m = make(
            "conv1d",
            vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(3),
                Value::Int(1),
                "valid".into(),
            ],
        );
        assert_eq!(fwd(&m, &[&randn(&[1, 1, 10])]).size(), [1, 1, 8]);
        let e = build_err(
            "conv2d",
            vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(3),
                Value::Int(2),
                "same".into(),
            ],
        );
        assert_eq!(
            e,
            "conv2d: pad \"same\" is not supported for strided convolutions"
        );
    }

    #[test]
    fn padmode_reflect_pads_then_convolves() {
        let mut a = ints(&[1, 3, 3, 1, 1]);
        a.push(kw(vec![("padmode", "reflect".into())]));
        let m = make("conv2d", a);
        let x = randn(&[2, 1, 5, 5]);
        let xp = x.pad([1, 1, 1, 1], "reflect", None);
        assert_close(
            &fwd(&m, &[&x]),
            &xp.conv2d(
                m.param_at(0).expect("declared"),
                Some(m.param_at(1).expect("declared")),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            ),
        );
    }

    #[test]
    fn convtranspose_params_and_forward() {
        let m = make("convtranspose1d", ints(&[4, 6, 3, 2, 1, 1, 2]));
        assert_eq!(shapes(&m), named(&[("weight", &[4, 3, 3]), ("bias", &[6])]));
        assert_uniform(m.param_at(0).expect("declared"), 1.0 / 9f64.sqrt());
        let x = randn(&[2, 4, 5]);
        let want = x.conv_transpose1d(
            m.param_at(0).expect("declared"),
            Some(m.param_at(1).expect("declared")),
            [2],
            [1],
            [1],
            2,
            [1],
        );
        assert_close(&fwd(&m, &[&x]), &want);
        assert_eq!(want.size(), [2, 6, 10]);
        let m = make(
            "convtranspose2d",
            vec![Value::Int(3), Value::Int(5), Value::from(vec![2i64, 3])],
        );
        assert_eq!(
            shapes(&m),
            named(&[("weight", &[3, 5, 2, 3]), ("bias", &[5])])
        );
        let x = randn(&[1, 3, 4, 4]);
        let want = x.conv_transpose2d(
            m.param_at(0).expect("declared"),
            Some(m.param_at(1).expect("declared")),
            [1, 1],
            [0, 0],
            [0, 0],
            1,
            [1, 1],
        );
        assert_close(&fwd(&m, &[&x]), &want);
    }

    #[test]
    fn conv_bad_settings() {
        assert_eq!(
            build_err("conv2d", ints(&[1, 16])),
            "conv2d: size not defined"
        );
        assert_eq!(
            build_err("conv2d", ints(&[3, 16, 3, 1, 0, 1, 2])),
            "conv2d: in and out channels (3, 16) must be divisible by groups (2)"
        );
        assert_eq!(
            build_err("conv2d", ints(&[1, 16, 0])),
            "conv2d: size must be positive, given 0"
        );
        assert_eq!(
            build_err("conv1d", ints(&[1, 16, 3, 1, -1])),
            "conv1d: pad must be non-negative, given -1"
        );
        let e = build_err(
            "conv2d",
            vec![Value::Int(1), Value::Int(2), Value::from(vec![1i64, 2, 3])],
        );
        assert_eq!(e, "conv2d: size expects 1 or 2 values, given 3");
        let mut a = ints(&[1, 16, 3]);
        a.push(kw(vec![("padmode", "wrap".into())]));
        assert!(build_err("conv2d", a).starts_with("conv2d: padmode: unrecognized value `wrap`"));
        let e = build_err("convtranspose2d", ints(&[1, 1, 3, 1, 0, 1]));
        assert!(
            e.starts_with("convtranspose2d: outpad must be smaller than either stride or dilate"),
            "{e}"
        );
        let m = make("conv2d", ints(&[1, 16, 3]));
        let e = m.forward(&[randn(&[4, 4])]).expect_err("2d input");
        assert_eq!(e.to_string(), "conv2d: expecting 3D or 4D input, given 2D");
        assert!(m.forward(&[randn(&[1, 2, 5, 5])]).is_err());
    }
}
