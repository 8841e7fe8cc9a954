//! Local response normalization across channels: localnorm (torch.nn.LocalResponseNorm)
//! and crossmap2d (torch.nn.CrossMapLRN2d).

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["localnorm", "crossmap2d"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let a = Args::parse(kind, &["size", "alpha", "beta", "k"], pos, kw)?;
    let size = a.req_pos("size")?;
    let (alpha, beta) = (a.float("alpha", 1e-4)?, a.float("beta", 0.75)?);
    let layer = if kind == "localnorm" {
        Lrn {
            size,
            alpha,
            beta,
            k: a.float("k", 1.0)?,
            crossmap: false,
        }
    } else {
        // the original takes crossmap2d's k as an integer, as libtorch's options hold it
        Lrn {
            size,
            alpha,
            beta,
            k: a.int("k", 1)? as f64,
            crossmap: true,
        }
    };
    Ok(Module::new(kind, layer))
}

/// Divides each value by `(k + alpha/size * sum of squares over nearby channels)^beta`.
#[derive(Debug, Clone)]
struct Lrn {
    size: i64,
    alpha: f64,
    beta: f64,
    k: f64,
    crossmap: bool,
}

impl Layer for Lrn {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        Ok(vec![if self.crossmap {
            if x.dim() != 4 {
                return Err(err(
                    m.kind(),
                    format!("expected 4D input, given {}D", x.dim()),
                ));
            }
            self.crossmap(x)?
        } else {
            if x.dim() < 3 {
                return Err(err(
                    m.kind(),
                    format!("expected 3D or higher input, given {}D", x.dim()),
                ));
            }
            self.local(x)?
        }])
    }
    layer_clone!();
}

impl Lrn {
    /// As torch.nn.functional.local_response_norm, operation for operation: an
    /// average of squares over a window of channels, zero-padded.
    fn local(&self, x: &Tensor) -> Result<Tensor> {
        if x.numel() == 0 {
            return Ok(x.shallow_clone());
        }
        let size = self.size;
        let (lo, hi) = (size / 2, (size - 1) / 2);
        let div = x.f_mul(x)?;
        let div = if x.dim() == 3 {
            div.f_unsqueeze(1)?
                .f_constant_pad_nd([0, 0, lo, hi])?
                .f_avg_pool2d([size, 1], [1, 1], [0, 0], false, true, None)?
                .f_squeeze_dim(1)?
        } else {
            let s = x.size();
            div.f_view([s[0], 1, s[1], s[2], -1])?
                .f_constant_pad_nd([0, 0, 0, 0, lo, hi])?
                .f_avg_pool3d([size, 1, 1], [1, 1, 1], [0, 0, 0], false, true, None)?
                .f_squeeze_dim(1)?
                .f_view(s.as_slice())?
        };
        let div = div
            .f_mul_scalar(self.alpha)?
            .f_add_scalar(self.k)?
            .f_pow_tensor_scalar(self.beta)?;
        Ok(x.f_div(&div)?)
    }

    /// As torch.nn.CrossMapLRN2d, whose forward and backward are written out by
    /// hand (the legacy Lua torch port): the window of channels summed for channel
    /// `c` and the one its gradient sums over are torch's, not a symmetric window.
    /// The value is computed as torch's forward computes it; the gradient is torch's
    /// backward, carried by a surrogate whose derivative it is and whose value is
    /// subtracted out.
    fn crossmap(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.size()[1];
        let size = self.size;
        let (y, scale) = {
            let _g = tch::no_grad_guard();
            let sq = x.f_pow_tensor_scalar(2)?;
            let pre = (size - 1) / 2 + 1;
            let scale = x.f_zeros_like()?;
            let first = scale.f_select(1, 0)?;
            for i in 0..pre.min(c) {
                let _ = first.shallow_clone().f_add_(&sq.f_select(1, i)?)?;
            }
            for i in 1..c {
                let mut cur = scale.f_select(1, i)?;
                cur.f_copy_(&scale.f_select(1, i - 1)?)?;
                if i < c - pre + 1 {
                    let _ = cur.f_add_(&sq.f_select(1, i + pre - 1)?)?;
                }
                if i > pre {
                    let _ = cur.f_sub_(&sq.f_select(1, i - pre)?)?;
                }
            }
            let scale = scale
                .f_mul_scalar(self.alpha / size as f64)?
                .f_add_scalar(self.k)?;
            let y = scale.f_pow_tensor_scalar(-self.beta)?.f_mul(x)?;
            (y, scale)
        };
        if !x.requires_grad() {
            return Ok(y);
        }
        // torch's backward: grad * scale^-beta - 2 alpha beta / size * x * W(grad * y / scale),
        // W summing channels c - inv .. c + size - 1 - inv; inv as torch's Python computes it
        let inv = (size as f64 - (size - 1) as f64 / 2.0) as i64;
        let a = scale.f_pow_tensor_scalar(-self.beta)?;
        let r = y.f_div(&scale)?;
        // the adjoint of W on x^2: channel i sums channels i + inv - size + 1 .. i + inv
        let off = inv - size + 1;
        let (plo, phi) = ((-off).max(0), inv.max(0));
        let padded = x.f_mul(x)?.f_constant_pad_nd([0, 0, 0, 0, plo, phi])?;
        let mut wt = padded.f_narrow(1, off + plo, c)?;
        for s in off + 1..=inv {
            wt = wt.f_add(&padded.f_narrow(1, s + plo, c)?)?;
        }
        let cr = self.alpha * self.beta / size as f64;
        let surrogate = x.f_mul(&a)?.f_sub(&r.f_mul(&wt)?.f_mul_scalar(cr)?)?;
        Ok(y.f_add(&surrogate.f_sub(&surrogate.f_detach()?)?)?)
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use crate::nn::testutil::*;
    use crate::value::Value;

    #[test]
    fn localnorm_matches_definition() {
        let m = make("localnorm", vec![Value::Int(3), Value::Float(0.1)]);
        assert!(shapes(&m).is_empty());
        let x = randn(&[2, 5, 4]);
        // channel c: mean of squares over channels c-1..c+1, zero-padded
        let sq = (&x * &x).pad([0, 0, 1, 1], "constant", Some(0.0));
        let sum = sq.narrow(1, 0, 5) + sq.narrow(1, 1, 5) + sq.narrow(1, 2, 5);
        let want = &x / (sum / 3.0 * 0.1 + 1.0).pow_tensor_scalar(0.75);
        assert_close(&fwd(&m, &[&x]), &want);
        let x4 = randn(&[2, 5, 3, 2]);
        let y = fwd(&m, &[&x4]);
        let y3 = fwd(&m, &[&x4.view([2, 5, 6])]);
        assert_close(&y.view([2, 5, 6]), &y3);
        let e = m.forward(&[randn(&[2, 5])]).expect_err("2d");
        assert_eq!(
            e.to_string(),
            "localnorm: expected 3D or higher input, given 2D"
        );
    }

    #[test]
    fn crossmap_value_and_gradient() {
        let m = make(
            "crossmap2d",
            vec![Value::Int(3), kw(vec![("k", Value::Int(2))])],
        );
        let x = randn(&[2, 6, 3, 3]).set_requires_grad(true);
        let y = fwd(&m, &[&x]);
        // torch's window for channel 4 of 6 (size 3): channels 0, 3, 4, 5 (0 is never subtracted)
        let sq = x.detach().square();
        let sum = sq.select(1, 0) + sq.select(1, 3) + sq.select(1, 4) + sq.select(1, 5);
        let scale4 = sum * (1e-4 / 3.0) + 2.0;
        let want4 = x.detach().select(1, 4) * scale4.pow_tensor_scalar(-0.75);
        assert_close(&y.detach().select(1, 4), &want4);
        // the gradient flows, finite
        y.sum(Kind::Float).backward();
        let g = x.grad();
        assert_eq!(g.size(), x.size());
        assert_eq!(g.isfinite().all().int64_value(&[]), 1);
        let e = build_err(
            "crossmap2d",
            vec![Value::Int(3), kw(vec![("k", Value::Float(1.5))])],
        );
        assert_eq!(e, "crossmap2d: k expects an integer, given float");
        assert_eq!(
            build_err("localnorm", vec![]),
            "localnorm: size not defined"
        );
        let e = m.forward(&[randn(&[2, 6, 3])]).expect_err("3d");
        assert_eq!(e.to_string(), "crossmap2d: expected 4D input, given 3D");
    }
}
