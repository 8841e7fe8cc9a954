//! Dropout: drop, drop2d, drop3d (channel-wise), adrop and fadrop (alpha dropout),
//! droppath (whole samples: stochastic depth).

use tch::Tensor;

use crate::args::Args;
use crate::error::Result;
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["drop", "drop2d", "drop3d", "adrop", "fadrop", "droppath"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    if kind == "droppath" {
        // the original's default probability is 0: no sample dropped
        let a = Args::parse(kind, &["p"], pos, kw)?;
        let p = a.float_in("p", 0.0, 0.0, 1.0)?;
        return Ok(Module::new(kind, DropPath { p }));
    }
    let a = Args::parse(kind, &["p", "inplace"], pos, kw)?;
    let p = a.float_in("p", 0.5, 0.0, 1.0)?;
    a.bool("inplace", false)?;
    Ok(Module::new(kind, Drop { p }))
}

/// Zeroes elements (or whole channels) with probability `p` in training mode.
#[derive(Debug, Clone)]
struct Drop {
    p: f64,
}

impl Layer for Drop {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let (x, train) = (&xs[0], m.is_training());
        Ok(vec![match m.kind() {
            "drop" => x.f_dropout(self.p, train)?,
            "drop2d" | "drop3d" => x.f_feature_dropout(self.p, train)?,
            "adrop" => x.f_alpha_dropout(self.p, train)?,
            _ => x.f_feature_alpha_dropout(self.p, train)?,
        }])
    }
    layer_clone!();
}

/// Zeroes whole samples (along the first dimension) with probability `p` in
/// training mode, scaling the others by `1/(1-p)`; the identity in evaluation mode.
#[derive(Debug, Clone)]
struct DropPath {
    p: f64,
}

impl Layer for DropPath {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        if self.p == 0.0 || !m.is_training() {
            return Ok(vec![x.shallow_clone()]);
        }
        if self.p == 1.0 {
            return Ok(vec![x.f_mul_scalar(0.0)?]);
        }
        // as the original draws it: floor(keep + uniform) is 1 with probability keep
        let keep = 1.0 - self.p;
        let mut size = vec![1i64; x.dim()];
        if let Some(n) = x.size().first() {
            size[0] = *n;
        }
        let mask = Tensor::f_rand(&size, (x.kind(), x.device()))?
            .f_add_scalar(keep)?
            .f_floor()?;
        Ok(vec![x.f_div_scalar(keep)?.f_mul(&mask)?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;
    use crate::nn::testutil::*;
    use crate::value::Value;

    #[test]
    fn drop_active_only_in_training() {
        let mut m = make("drop", vec![]);
        let x = Tensor::ones([1000], (Kind::Float, tch::Device::Cpu));
        let y = fwd(&m, &[&x]);
        let zeros = y.eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert!((300..700).contains(&zeros), "zeros {zeros}");
        let kept = y.ne(0.0);
        assert_close(&y.masked_select(&kept), &(x.masked_select(&kept) * 2));
        m.set_training(false);
        assert_close(&fwd(&m, &[&x]), &x);
    }

    #[test]
    fn drop2d_zeroes_whole_channels() {
        let m = make("drop2d", vec![Value::Float(0.5)]);
        let x = Tensor::ones([4, 50, 3, 3], (Kind::Float, tch::Device::Cpu));
        let y = fwd(&m, &[&x]);
        let per_channel = y.sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float);
        let ok = per_channel
            .eq(0.0)
            .logical_or(&per_channel.eq(18.0))
            .all()
            .int64_value(&[]);
        assert_eq!(ok, 1);
        let m = make("drop", vec![Value::Float(0.0)]);
        assert_close(&fwd(&m, &[&x]), &x);
        let m = make("drop", vec![Value::Float(1.0)]);
        assert_eq!(fwd(&m, &[&x]).abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn droppath_drops_whole_samples() {
        let mut m = make("droppath", vec![Value::Float(0.5)]);
        let x = Tensor::ones([400, 3, 2], (Kind::Float, tch::Device::Cpu));
        let y = fwd(&m, &[&x]);
        let per = y.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
        // each sample is all zeros or all 2s (scaled by 1/(1-p))
        let ok = per.eq(0.0).logical_or(&per.eq(12.0)).all().int64_value(&[]);
        assert_eq!(ok, 1);
        let zeros = per.eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert!((120..280).contains(&zeros), "zeros {zeros}");
        m.set_training(false);
        assert!(fwd(&m, &[&x]).equal(&x));
        let m = make("droppath", vec![]);
        assert!(fwd(&m, &[&x]).equal(&x));
        let m = make("droppath", vec![Value::Float(1.0)]);
        assert_eq!(fwd(&m, &[&x]).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(
            build_err("droppath", vec![Value::Float(1.5)]),
            "droppath: p must be in the range 0-1, given 1.5"
        );
        assert_eq!(
            build_err("droppath", vec![Value::Float(0.1), Value::Bool(true)]),
            "droppath: expecting at most 1 positional setting(s), given 2"
        );
    }

    #[test]
    fn drop_bad_settings() {
        assert_eq!(
            build_err("drop", vec![Value::Int(2)]),
            "drop: p must be in the range 0-1, given 2"
        );
        assert_eq!(
            build_err("drop2d", vec![Value::Float(-0.1)]),
            "drop2d: p must be in the range 0-1, given -0.1"
        );
        assert_eq!(
            build_err("drop", vec![Value::Bool(true)]),
            "drop: p expects a number, given bool"
        );
    }
}
