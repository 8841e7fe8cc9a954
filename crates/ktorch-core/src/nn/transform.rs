//! Image transforms: zscore (subtract means, divide by standard deviations),
//! randomcrop (pad, then crop at a random place) and randomflip (flip along a
//! dimension with a probability). As in the original, the random transforms act
//! in training and evaluation mode alike (a `transform` container picks which
//! transforms run in each mode); they draw from libtorch's generator, so
//! `seed(n)` repeats them.

use tch::{Device, Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::padding::{check_value, Pad, MODES};
use crate::nn::shape::dim_at;
use crate::nn::{broadcasts, spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["randomcrop", "randomflip", "zscore"];

#[derive(Debug, Clone)]
enum Transform {
    /// Output height and width, and the padding applied first.
    Crop { h: i64, w: i64, pad: Pad },
    /// Probability of a flip, and the dimension flipped (of each image).
    Flip { p: f64, dim: i64 },
    /// The means and standard deviations are the module's buffers.
    Zscore,
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "randomcrop" => {
            let a = Args::parse(kind, &["size", "pad", "padmode", "value"], pos, kw)?;
            if !a.has("size") {
                return Err(err(kind, "size not defined"));
            }
            let size = a.ints("size", 2, None)?;
            if size.iter().any(|n| *n <= 0) {
                return Err(err(
                    kind,
                    format!("size must be a positive height and width, given {size:?}"),
                ));
            }
            let pad = a.ints("pad", 4, Some(0))?;
            if let Some(n) = pad.iter().find(|n| **n < 0) {
                return Err(err(kind, format!("pad must be non-negative, given {n}")));
            }
            let mode = a.choice("padmode", "constant", MODES)?;
            let value = a.float("value", 0.0)?;
            check_value(kind, &mode, value)?;
            let pad = Pad { pad, mode, value };
            Ok(Module::new(
                kind,
                Transform::Crop {
                    h: size[0],
                    w: size[1],
                    pad,
                },
            ))
        }
        "randomflip" => {
            let a = Args::parse(kind, &["p", "dim"], pos, kw)?;
            let p = a.float_in("p", 0.5, 0.0, 1.0)?;
            let dim = a.int("dim", -1)?;
            Ok(Module::new(kind, Transform::Flip { p, dim }))
        }
        "zscore" => {
            let a = Args::parse(kind, &["mean", "std", "inplace"], pos, kw)?;
            let mut mean = stats(kind, "mean", a.get("mean"))?;
            let mut std = stats(kind, "std", a.get("std"))?;
            // one dtype for both (a module's floating buffers convert together)
            if mean.kind() != std.kind() {
                mean = mean.f_to_kind(Kind::Double)?;
                std = std.f_to_kind(Kind::Double)?;
            }
            a.bool("inplace", false)?;
            let bad = std.f_le(0.0)?.f_any()?.f_int64_value(&[])? != 0;
            if bad {
                return Err(err(
                    kind,
                    format!(
                        "std must be positive, given {:?}",
                        Vec::<f64>::try_from(std.f_to_kind(Kind::Double)?.f_reshape([-1])?)?
                    ),
                ));
            }
            let (m, s) = (shaped(&mean)?.size(), shaped(&std)?.size());
            let fits = broadcasts(&m, &s) || broadcasts(&s, &m);
            if !fits && m.len() == s.len() {
                return Err(err(
                    kind,
                    format!(
                        "{} mean(s) and {} standard deviation(s) given",
                        mean.numel(),
                        std.numel()
                    ),
                ));
            }
            Ok(Module::new(kind, Transform::Zscore)
                .with_buffer("mean", mean)
                .with_buffer("stddev", std))
        }
        _ => Err(unknown(kind)),
    }
}

/// Means or standard deviations: a number, a list or an array of floating-point
/// values (integers are converted to float).
fn stats(kind: &str, name: &str, v: Option<&Value>) -> Result<Tensor> {
    let what = if name == "mean" {
        "mean(s)"
    } else {
        "stddev(s)"
    };
    let t = match v {
        None => return Err(err(kind, format!("no {what} defined"))),
        Some(Value::Tensor(t)) => {
            if t.is_complex() || t.kind() == Kind::Bool {
                return Err(err(
                    kind,
                    format!(
                        "{name} expects real numbers, given a {} tensor",
                        crate::tensor::kind_name(t.kind())
                    ),
                ));
            }
            let t = t.f_detach_copy()?;
            if t.is_floating_point() {
                t
            } else {
                t.f_to_kind(Kind::Float)?
            }
        }
        Some(v @ (Value::Int(_) | Value::Float(_))) => {
            let f = v.as_float(name).map_err(|e| e.named(kind))?;
            Tensor::from_slice(&[f])
                .f_to_kind(Kind::Float)?
                .f_reshape([0i64; 0].as_slice())?
        }
        Some(v) => {
            let xs = v.as_floats(name).map_err(|e| e.named(kind))?;
            Tensor::from_slice(&xs).f_to_kind(Kind::Float)?
        }
    };
    if t.numel() == 0 {
        return Err(err(kind, format!("no {what} defined")));
    }
    if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(err(kind, format!("{name} must be finite")));
    }
    Ok(t)
}

/// Statistics as they apply to an input: a list of several values is one per
/// channel (`c x 1 x 1`, the 3rd dimension from the end), a single value a scalar.
fn shaped(t: &Tensor) -> Result<Tensor> {
    Ok(match (t.dim(), t.numel()) {
        (1, 1) => t.f_reshape([0i64; 0].as_slice())?,
        (1, _) => t.f_view([-1, 1, 1])?,
        _ => t.shallow_clone(),
    })
}

impl Transform {
    fn zscore(&self, kind: &str, m: &Module, x: &Tensor) -> Result<Tensor> {
        let (mean, std) = (shaped(m.buffer_at(0)?)?, shaped(m.buffer_at(1)?)?);
        for (name, t) in [("mean", &mean), ("std", &std)] {
            if !broadcasts(&t.size(), &x.size()) {
                return Err(err(
                    kind,
                    format!(
                        "{name} of size {:?} does not broadcast to the input of size {:?}",
                        t.size(),
                        x.size()
                    ),
                ));
            }
        }
        let conform = |t: Tensor| -> Result<Tensor> {
            let t = t.f_to_device(x.device())?;
            Ok(if x.is_floating_point() {
                t.f_to_kind(x.kind())?
            } else {
                t
            })
        };
        Ok(x.f_sub(&conform(mean)?)?.f_div(&conform(std)?)?)
    }

    fn crop(&self, kind: &str, x: &Tensor, h: i64, w: i64, pad: &Pad) -> Result<Tensor> {
        let d = x.dim();
        if !(2..=4).contains(&d) {
            return Err(err(
                kind,
                format!("expecting a 2-d, 3-d or 4-d input, given {d}-d"),
            ));
        }
        let n = if d == 4 { x.size()[0] } else { 1 };
        let p = if pad.pad.iter().all(|n| *n == 0) {
            x.shallow_clone()
        } else if d == 2 {
            pad.apply(kind, &x.f_unsqueeze(0)?)?.f_squeeze_dim(0)?
        } else {
            pad.apply(kind, x)?
        };
        let size = p.size();
        let (r, c) = (size[d - 2], size[d - 1]);
        if r == h && c == w {
            return Ok(p);
        }
        let (ry, rx) = (r - h + 1, c - w + 1);
        if ry < 1 || rx < 1 {
            return Err(err(
                kind,
                format!("size {h}x{w} exceeds the padded input's {r}x{c}"),
            ));
        }
        if n == 0 {
            return Ok(p.f_narrow(-2, 0, h)?.f_narrow(-1, 0, w)?);
        }
        let opts = (Kind::Int64, Device::Cpu);
        let ys = Vec::<i64>::try_from(&Tensor::f_randint(ry, [n].as_slice(), opts)?)?;
        let xs = Vec::<i64>::try_from(&Tensor::f_randint(rx, [n].as_slice(), opts)?)?;
        let cut = |t: &Tensor, y: i64, x: i64| -> Result<Tensor> {
            Ok(t.f_narrow(-2, y, h)?.f_narrow(-1, x, w)?)
        };
        if n == 1 {
            return cut(&p, ys[0], xs[0]);
        }
        let parts = (0..n as usize)
            .map(|i| cut(&p.f_get(i as i64)?, ys[i], xs[i]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::f_stack(&parts, 0)?)
    }

    fn flip(&self, kind: &str, x: &Tensor, p: f64, dim: i64) -> Result<Tensor> {
        let d = x.dim() as i64;
        if !(2..=4).contains(&d) {
            return Err(err(
                kind,
                format!("expecting a 2-d, 3-d or 4-d input, given {d}-d"),
            ));
        }
        // a 4-d input is a batch of images, each flipped or not on its own
        let batch = d == 4;
        let k = dim_at(kind, "dim", dim, if batch { 3 } else { d })? + i64::from(batch);
        let n = if batch { x.size()[0] } else { 1 };
        if n == 0 {
            return Ok(x.shallow_clone());
        }
        let draw = Tensor::f_rand([n].as_slice(), (Kind::Double, Device::Cpu))?.f_lt(p)?;
        let hits = draw.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        if hits == 0 {
            return Ok(x.shallow_clone());
        }
        let flipped = x.f_flip([k].as_slice())?;
        if !batch || hits == n {
            return Ok(flipped);
        }
        let mask = draw.f_view([n, 1, 1, 1])?.f_to_device(x.device())?;
        Ok(flipped.f_where_self(&mask, x)?)
    }
}

impl Layer for Transform {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 1, 1)?;
        let x = &xs[0];
        Ok(vec![match self {
            Transform::Crop { h, w, pad } => self.crop(kind, x, *h, *w, pad)?,
            Transform::Flip { p, dim } => self.flip(kind, x, *p, *dim)?,
            Transform::Zscore => self.zscore(kind, m, x)?,
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

    fn floats_v(xs: &[f64]) -> Value {
        Value::List(xs.iter().map(|x| Value::Float(*x)).collect())
    }

    #[test]
    fn zscore_per_channel_and_scalar() {
        let x = randn(&[2, 3, 4, 4]);
        let m = make(
            "zscore",
            vec![floats_v(&[0.5, 0.4, 0.3]), floats_v(&[0.2, 0.25, 0.3])],
        );
        let mean = floats(&[0.5, 0.4, 0.3]).view([3, 1, 1]);
        let std = floats(&[0.2, 0.25, 0.3]).view([3, 1, 1]);
        assert_close(&fwd(&m, &[&x]), &((&x - mean) / std));
        assert_eq!(
            buffer_shapes(&m),
            named(&[("mean", &[3]), ("stddev", &[3])])
        );
        let e = m.forward(&[randn(&[5, 2])]).expect_err("broadcast");
        assert_eq!(
            e.to_string(),
            "zscore: mean of size [3, 1, 1] does not broadcast to the input of size [5, 2]"
        );
        let y = randn(&[10]);
        let m = make("zscore", vec![Value::Float(1.0), Value::Int(2)]);
        assert_close(&fwd(&m, &[&y]), &((&y - 1.0) / 2.0));
        assert_eq!(build_err("zscore", vec![]), "zscore: no mean(s) defined");
        assert_eq!(
            build_err("zscore", vec![Value::Float(0.0)]),
            "zscore: no stddev(s) defined"
        );
        assert_eq!(
            build_err("zscore", vec![Value::Float(0.0), floats_v(&[1.0, 0.0])]),
            "zscore: std must be positive, given [1.0, 0.0]"
        );
        assert_eq!(
            build_err(
                "zscore",
                vec![floats_v(&[0.0, 1.0, 2.0]), floats_v(&[1.0, 2.0])]
            ),
            "zscore: 3 mean(s) and 2 standard deviation(s) given"
        );
    }

    #[test]
    fn randomcrop_windows() {
        let x = Tensor::ones([5, 5], (Kind::Float, tch::Device::Cpu));
        let m = make("randomcrop", vec![Value::Int(5), Value::Int(1)]);
        let padded = x.pad([1, 1, 1, 1], "constant", 0.0);
        let mut seen = [[false; 3]; 3];
        for _ in 0..60 {
            let y = fwd(&m, &[&x]);
            assert_eq!(y.size(), [5, 5]);
            // a window of the padded input, at one of its 3x3 offsets
            let at = (0..9)
                .find(|k| y.equal(&padded.narrow(0, k / 3, 5).narrow(1, k % 3, 5)))
                .expect("a window of the padded input");
            seen[at as usize / 3][at as usize % 3] = true;
        }
        assert!(seen.iter().flatten().all(|s| *s), "offsets {seen:?}");
        let b = randn(&[6, 3, 8, 8]);
        let m = make("randomcrop", vec![ints(&[4, 6])]);
        let y = fwd(&m, &[&b]);
        assert_eq!(y.size(), [6, 3, 4, 6]);
        let m = make(
            "randomcrop",
            vec![Value::Int(8), Value::Int(2), Value::from("reflect")],
        );
        assert_eq!(fwd(&m, &[&b]).size(), [6, 3, 8, 8]);
        let m = make("randomcrop", vec![Value::Int(9)]);
        assert_eq!(
            m.forward(&[b]).expect_err("too big").to_string(),
            "randomcrop: size 9x9 exceeds the padded input's 8x8"
        );
        assert_eq!(
            build_err("randomcrop", vec![]),
            "randomcrop: size not defined"
        );
        assert_eq!(
            build_err("randomcrop", vec![Value::Int(4), ints(&[1, 2])]),
            "randomcrop: pad expects 1 or 4 values, given 2"
        );
        assert_eq!(
            build_err(
                "randomcrop",
                vec![
                    Value::Int(4),
                    Value::Int(1),
                    Value::from("reflect"),
                    Value::Float(1.0)
                ]
            ),
            "randomcrop: value applies only to mode constant, given mode reflect with value 1"
        );
    }

    #[test]
    fn randomflip_all_or_none() {
        let x = Tensor::arange(16, (Kind::Float, tch::Device::Cpu)).view([4, 4]);
        let m = make("randomflip", vec![Value::Float(1.0)]);
        assert_close(&fwd(&m, &[&x]), &x.flip([1]));
        let m = make("randomflip", vec![Value::Float(1.0), Value::Int(-2)]);
        assert_close(&fwd(&m, &[&x]), &x.flip([0]));
        let m = make("randomflip", vec![Value::Float(0.0)]);
        assert_close(&fwd(&m, &[&x]), &x);
        let b = randn(&[64, 3, 4, 4]);
        let m = make("randomflip", vec![Value::Float(0.5), Value::Int(1)]);
        let y = fwd(&m, &[&b]);
        let (mut flipped, mut kept) = (0, 0);
        for i in 0..64 {
            let (yi, bi) = (y.get(i), b.get(i));
            if yi.equal(&bi) {
                kept += 1;
            } else {
                assert!(yi.equal(&bi.flip([1])));
                flipped += 1;
            }
        }
        assert!(flipped > 10 && kept > 10, "{flipped} flipped, {kept} kept");
        assert_eq!(
            build_err("randomflip", vec![Value::Float(1.5)]),
            "randomflip: p must be in the range 0-1, given 1.5"
        );
        let e = m.forward(&[randn(&[3])]).expect_err("dims");
        assert_eq!(
            e.to_string(),
            "randomflip: expecting a 2-d, 3-d or 4-d input, given 1-d"
        );
    }
}
