//! Padding: the generic `pad` (torch.nn.functional.pad as a module), constant
//! padding in 1-3 dimensions (pad1d..pad3d), reflection, replication and zero padding.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{dims, spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "pad",
    "pad1d",
    "pad2d",
    "pad3d",
    "reflect1d",
    "reflect2d",
    "replicate1d",
    "replicate2d",
    "replicate3d",
    "zeropad2d",
];

/// Padding modes, as torch.nn.functional.pad names them.
pub(crate) const MODES: &[&str] = &["constant", "reflect", "replicate", "circular"];

/// Sizes (left, right, top, bottom, front, back: pairs from the last dimension
/// back), a mode and the fill value of mode `constant`.
#[derive(Debug, Clone)]
pub(crate) struct Pad {
    pub pad: Vec<i64>,
    pub mode: String,
    pub value: f64,
}

/// Checks a fill value against the mode: only `constant` padding takes one.
pub(crate) fn check_value(kind: &str, mode: &str, value: f64) -> Result<()> {
    if mode != "constant" && value != 0.0 {
        return Err(err(
            kind,
            format!("value applies only to mode constant, given mode {mode} with value {value}"),
        ));
    }
    Ok(())
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    if !TYPES.contains(&kind) {
        return Err(unknown(kind));
    }
    let d = dims(kind);
    let p = match kind {
        "pad" => {
            // (pad; value): a number in 2nd place is the value, as the original takes it
            let moved;
            let pos = match pos {
                [p, v @ (Value::Int(_) | Value::Float(_))] => {
                    moved = [p.clone(), Value::Null, v.clone()];
                    &moved[..]
                }
                _ => pos,
            };
            let a = Args::parse(kind, &["pad", "mode", "value"], pos, kw)?;
            let pad = a
                .int_list("pad")?
                .ok_or_else(|| err(kind, "pad not defined"))?;
            if pad.is_empty() || pad.len() % 2 == 1 {
                return Err(err(
                    kind,
                    format!(
                        "{} pad size(s) given, expecting pairs for left,right or \
                         left,right,top,bottom.. etc",
                        pad.len()
                    ),
                ));
            }
            let mode = a.choice("mode", "constant", MODES)?;
            let value = a.float("value", 0.0)?;
            check_value(kind, &mode, value)?;
            if mode != "constant" {
                if let Some(n) = pad.iter().find(|n| **n < 0) {
                    return Err(err(
                        kind,
                        format!("pad sizes must be non-negative with mode {mode}, given {n}"),
                    ));
                }
            }
            Pad { pad, mode, value }
        }
        _ => {
            let constant = kind.starts_with("pad");
            let names: &[&str] = if constant {
                &["pad", "value"]
            } else {
                &["pad"]
            };
            let a = Args::parse(kind, names, pos, kw)?;
            if !a.has("pad") {
                return Err(err(kind, "no padding sizes given"));
            }
            let pad = a.ints("pad", 2 * d, None)?;
            let mode = if kind.starts_with("reflect") {
                "reflect"
            } else if kind.starts_with("replicate") {
                "replicate"
            } else {
                "constant"
            };
            if mode != "constant" {
                if let Some(n) = pad.iter().find(|n| **n < 0) {
                    return Err(err(
                        kind,
                        format!("pad sizes must be non-negative, given {n}"),
                    ));
                }
            }
            let value = if constant {
                a.float("value", 0.0)?
            } else {
                0.0
            };
            Pad {
                pad,
                mode: mode.to_string(),
                value,
            }
        }
    };
    Ok(Module::new(kind, p))
}

impl Pad {
    /// Pads `x`, checking its dimensions first (`kind` names the module in errors).
    pub(crate) fn apply(&self, kind: &str, x: &Tensor) -> Result<Tensor> {
        let n = x.dim();
        let k = self.pad.len() / 2;
        if self.mode == "constant" {
            if n < k {
                return Err(err(
                    kind,
                    format!(
                        "pad of {} size(s) pads {k} dimension(s), given a {n}-d input",
                        self.pad.len()
                    ),
                ));
            }
        } else if n != k + 1 && n != k + 2 {
            return Err(err(
                kind,
                format!(
                    "mode {} with {} pad size(s) expects a {}-d or {}-d input, given {n}-d",
                    self.mode,
                    self.pad.len(),
                    k + 1,
                    k + 2
                ),
            ));
        }
        let value = (self.mode == "constant").then_some(self.value);
        Ok(x.f_pad(self.pad.as_slice(), &self.mode, value)?)
    }
}

impl Layer for Pad {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        Ok(vec![self.apply(m.kind(), &xs[0])?])
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

    #[test]
    fn generic_pad() {
        let x = Tensor::ones([3, 4], (Kind::Float, tch::Device::Cpu));
        let m = make("pad", vec![ints(&[1, 1, 2, 2])]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [7, 6]);
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 12.0);
        let m = make("pad", vec![ints(&[1, 2]), Value::Float(3.5)]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [3, 7]);
        assert_eq!(y.double_value(&[0, 0]), 3.5);
        assert_eq!(m.options().expect("options")[1].0, "value");
        let x = Tensor::arange(12, (Kind::Float, tch::Device::Cpu)).reshape([1, 1, 3, 4]);
        let m = make("pad", vec![ints(&[1, 1, 2, 2]), Value::from("replicate")]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [1, 1, 7, 6]);
        assert_eq!(y.double_value(&[0, 0, 0, 0]), 0.0);
        assert_eq!(y.double_value(&[0, 0, 6, 5]), 11.0);
        let e = m.forward(&[Tensor::ones([4], (Kind::Float, tch::Device::Cpu))]);
        assert_eq!(
            e.expect_err("dims").to_string(),
            "pad: mode replicate with 4 pad size(s) expects a 3-d or 4-d input, given 1-d"
        );
        assert_eq!(
            build_err("pad", vec![ints(&[1, 2, 3])]),
            "pad: 3 pad size(s) given, expecting pairs for left,right or left,right,top,bottom.. etc"
        );
        assert_eq!(build_err("pad", vec![]), "pad: pad not defined");
        assert_eq!(
            build_err("pad", vec![ints(&[1, 1]), Value::from("mirror")]),
            "pad: mode: unrecognized value `mirror`, expecting one of: constant, reflect, replicate, circular"
        );
        assert_eq!(
            build_err(
                "pad",
                vec![ints(&[1, 1]), Value::from("reflect"), Value::Float(1.0)]
            ),
            "pad: value applies only to mode constant, given mode reflect with value 1"
        );
    }

    #[test]
    fn fixed_dimension_pads() {
        let x = randn(&[2, 3, 4, 5]);
        let m = make("pad2d", vec![Value::Int(1), Value::Float(2.0)]);
        let y = fwd(&m, &[&x]);
        assert_eq!(y.size(), [2, 3, 6, 7]);
        assert_eq!(y.double_value(&[0, 0, 0, 0]), 2.0);
        let m = make("reflect2d", vec![ints(&[1, 1, 2, 0])]);
        assert_close(&fwd(&m, &[&x]), &x.pad([1, 1, 2, 0], "reflect", None));
        let m = make("replicate3d", vec![Value::Int(1)]);
        assert_eq!(fwd(&m, &[&x]).size(), [2, 5, 6, 7]);
        let m = make("zeropad2d", vec![ints(&[1, 0, 0, 1])]);
        assert_eq!(fwd(&m, &[&x]).size(), [2, 3, 5, 6]);
        assert_eq!(build_err("pad1d", vec![]), "pad1d: no padding sizes given");
        assert_eq!(
            build_err("pad2d", vec![ints(&[1, 2, 3])]),
            "pad2d: pad expects 1 or 4 values, given 3"
        );
        assert_eq!(
            build_err("reflect1d", vec![Value::Int(1), Value::Int(2)]),
            "reflect1d: expecting at most 1 positional setting(s), given 2"
        );
        assert_eq!(
            build_err("replicate1d", vec![ints(&[-1, 1])]),
            "replicate1d: pad sizes must be non-negative, given -1"
        );
        let e = make("reflect1d", vec![Value::Int(1)]).forward(&[x]);
        assert_eq!(
            e.expect_err("dims").to_string(),
            "reflect1d: mode reflect with 2 pad size(s) expects a 2-d or 3-d input, given 4-d"
        );
    }
}
