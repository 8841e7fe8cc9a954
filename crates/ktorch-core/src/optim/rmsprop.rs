//! RMSprop: gradients scaled by a running average of their squares, optionally centered.

use tch::Tensor;

use super::fused::{self, Bucket};
use super::ops::{add_scaled, add_scaled_, grad_of, nonneg, ParamState};
use crate::args::Args;
use crate::error::Result;
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &["lr", "alpha", "eps", "decay", "momentum", "centered"];

/// rmsprop settings: lr=.01, alpha=.99, eps=1e-8, decay=0, momentum=0, centered=false.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rmsprop {
    pub(super) lr: f64,
    alpha: f64,
    eps: f64,
    decay: f64,
    momentum: f64,
    centered: bool,
}

impl Default for Rmsprop {
    fn default() -> Self {
        Rmsprop {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

impl Rmsprop {
    /// `self` overridden by the given settings, checked as torch.optim.RMSprop does.
    pub(super) fn parse(&self, a: &Args) -> Result<Rmsprop> {
        Ok(Rmsprop {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            alpha: nonneg("alpha", a.float("alpha", self.alpha)?)?,
            eps: nonneg("eps", a.float("eps", self.eps)?)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            momentum: nonneg("momentum", a.float("momentum", self.momentum)?)?,
            centered: a.bool("centered", self.centered)?,
        })
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("alpha", self.alpha.into()),
            ("eps", self.eps.into()),
            ("decay", self.decay.into()),
            ("momentum", self.momentum.into()),
            ("centered", self.centered.into()),
        ]
    }

    /// One step for every parameter with a gradient: torch.optim's `_multi_tensor_rmsprop`
    /// (`_foreach_*` ops, one shim call per device and dtype) for the parameters the fused
    /// kernels would take ([`fused::split`]), `_single_tensor_rmsprop` for the others.
    pub(super) fn step(&self, params: &[Tensor], state: &mut [ParamState]) -> Result<()> {
        fused::step_split(
            params,
            state,
            false,
            |b, s| self.foreach(b, s),
            |p, s| self.single(p, s),
        )
    }

    /// torch.optim.rmsprop `_multi_tensor_rmsprop` for one device and dtype.
    fn foreach(&self, b: &Bucket, state: &mut [ParamState]) -> Result<()> {
        let n = b.idx.len();
        let (mut sq, mut ga, mut bufs) = (Vec::with_capacity(n), Vec::new(), Vec::new());
        for (&i, p) in b.idx.iter().zip(&b.params) {
            let st = &mut state[i];
            sq.push(st.buffer("square_avg", p, 0.0)?);
            if self.centered {
                ga.push(st.buffer("grad_avg", p, 0.0)?);
            }
            if self.momentum > 0.0 {
                bufs.push(st.buffer("momentum_buffer", p, 0.0)?);
            }
            st.step += 1;
        }
        let s = ktorch_shim::RmspropSettings {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.decay,
            momentum: self.momentum,
            centered: self.centered,
        };
        Ok(ktorch_shim::foreach_rmsprop_(
            &b.params, &b.grads, &sq, &ga, &bufs, &s,
        )?)
    }

    /// torch.optim.rmsprop `_single_tensor_rmsprop` for one parameter.
    pub(super) fn single(&self, p: &Tensor, st: &mut ParamState) -> Result<()> {
        let Some(mut grad) = grad_of(p)? else {
            return Ok(());
        };
        let mut param = p.shallow_clone();
        let mut square_avg = st.buffer("square_avg", p, 0.0)?;
        st.step += 1;
        if self.decay != 0.0 {
            grad = add_scaled(&grad, p, self.decay)?;
        }
        let _ = square_avg.f_mul_scalar_(self.alpha)?;
        let _ = square_avg.f_addcmul_(&grad.f_mul_scalar(1.0 - self.alpha)?, &grad)?;
        let mut avg = if self.centered {
            let mut grad_avg = st.buffer("grad_avg", p, 0.0)?;
            let _ = grad_avg.f_lerp_(&grad, 1.0 - self.alpha)?;
            let mut a = square_avg.f_addcmul(&grad_avg.f_neg()?, &grad_avg)?;
            let _ = a.f_sqrt_()?;
            a
        } else {
            square_avg.f_sqrt()?
        };
        let _ = avg.f_add_scalar_(self.eps)?;
        if self.momentum > 0.0 {
            let mut buf = st.buffer("momentum_buffer", p, 0.0)?;
            let _ = buf.f_mul_scalar_(self.momentum)?;
            let _ = buf.f_addcdiv_(&grad, &avg)?;
            add_scaled_(&mut param, &buf, -self.lr)?;
        } else {
            let _ = param.f_addcdiv_(&grad.f_mul_scalar(-self.lr)?, &avg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, kws};
    use crate::value::Value;

    #[test]
    fn rmsprop_variants() {
        let (lr, a, eps, wd) = (0.01, 0.9, 1e-8, 0.02);
        for (m, centered) in [(0.0, false), (0.5, false), (0.0, true), (0.7, true)] {
            let pos: Vec<Value> = vec![lr.into(), a.into(), eps.into(), wd.into(), m.into()];
            let kw = kws(&[("centered", centered.into())]);
            check("rmsprop", &pos, &kw, 6, |_, p, g, st| {
                if st.is_empty() {
                    *st = vec![p.zeros_like(), p.zeros_like(), p.zeros_like()];
                }
                let g = g + wd * p;
                let sq = a * &st[0] + (1.0 - a) * &g * &g;
                let ga = a * &st[1] + (1.0 - a) * &g;
                let avg = if centered {
                    (&sq - &ga * &ga).sqrt()
                } else {
                    sq.sqrt()
                } + eps;
                let (buf, new) = if m > 0.0 {
                    let b = m * &st[2] + &g / &avg;
                    (b.copy(), p - lr * b)
                } else {
                    (st[2].copy(), p - lr * &g / &avg)
                };
                *st = vec![sq, ga, buf];
                new
            });
        }
    }
}
