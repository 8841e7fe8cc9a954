//! Adam and AdamW (decoupled weight decay), with optional amsgrad.

use tch::Tensor;

use super::fused::{self, Bucket};
use super::ops::{add_scaled, grad_of, nonneg, unit, ParamState};
use crate::args::Args;
use crate::error::Result;
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &["lr", "beta1", "beta2", "eps", "decay", "amsgrad"];

/// adam settings: lr=.001, beta1=.9, beta2=.999, eps=1e-8, decay=0 (adamw: .01), amsgrad=false.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Adam {
    pub(super) lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decay: f64,
    amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay: 0.0,
            amsgrad: false,
        }
    }
}

impl Adam {
    /// The adamw defaults: as adam with decay .01.
    pub(super) fn adamw() -> Self {
        Adam {
            decay: 0.01,
            ..Adam::default()
        }
    }

    /// `self` overridden by the given settings, checked as torch.optim.Adam does.
    pub(super) fn parse(&self, a: &Args) -> Result<Adam> {
        Ok(Adam {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            beta1: unit("beta1", a.float("beta1", self.beta1)?)?,
            beta2: unit("beta2", a.float("beta2", self.beta2)?)?,
            eps: nonneg("eps", a.float("eps", self.eps)?)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            amsgrad: a.bool("amsgrad", self.amsgrad)?,
        })
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("eps", self.eps.into()),
            ("decay", self.decay.into()),
            ("amsgrad", self.amsgrad.into()),
        ]
    }

    /// One step for every parameter with a gradient: libtorch's fused kernel
    /// (`_fused_adam_`, `_fused_adamw_` with `decoupled`) for those it takes
    /// ([`fused::split`]), `_single_tensor_adam` for the others.
    pub(super) fn step(
        &self,
        params: &[Tensor],
        state: &mut [ParamState],
        decoupled: bool,
    ) -> Result<()> {
        fused::step_split(
            params,
            state,
            false,
            |b, s| self.fused(b, s, decoupled),
            |p, s| self.single(p, s, decoupled),
        )
    }

    /// torch.optim.adam `_fused_adam` for one device and dtype: state as torch.optim
    /// makes it (zero buffers, float32 step tensors incremented before the call).
    fn fused(&self, b: &Bucket, state: &mut [ParamState], decoupled: bool) -> Result<()> {
        let n = b.idx.len();
        let (mut m, mut v, mut vmax) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(if self.amsgrad { n } else { 0 }),
        );
        for (&i, p) in b.idx.iter().zip(&b.params) {
            let st = &mut state[i];
            m.push(st.buffer("exp_avg", p, 0.0)?);
            v.push(st.buffer("exp_avg_sq", p, 0.0)?);
            if self.amsgrad {
                vmax.push(st.buffer("max_exp_avg_sq", p, 0.0)?);
            }
        }
        let steps = fused::next_steps(b, state)?;
        let s = ktorch_shim::AdamSettings {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.decay,
            eps: self.eps,
            amsgrad: self.amsgrad,
            maximize: false,
            decoupled,
        };
        let st = ktorch_shim::AdamState {
            exp_avgs: &m,
            exp_avg_sqs: &v,
            max_exp_avg_sqs: &vmax,
            steps: &steps,
        };
        Ok(ktorch_shim::fused_adam_(&b.params, &b.grads, st, &s)?)
    }

    /// torch.optim.adam `_single_tensor_adam` for one parameter (not capturable, not
    /// differentiable); `decoupled` is AdamW's weight decay.
    pub(super) fn single(&self, p: &Tensor, st: &mut ParamState, decoupled: bool) -> Result<()> {
        let Some(mut grad) = grad_of(p)? else {
            return Ok(());
        };
        let mut param = p.shallow_clone();
        let mut exp_avg = st.buffer("exp_avg", p, 0.0)?;
        let mut exp_avg_sq = st.buffer("exp_avg_sq", p, 0.0)?;
        st.step += 1;
        if self.decay != 0.0 {
            if decoupled {
                let _ = param.f_mul_scalar_(1.0 - self.lr * self.decay)?;
            } else {
                grad = add_scaled(&grad, p, self.decay)?;
            }
        }
        let _ = exp_avg.f_lerp_(&grad, 1.0 - self.beta1)?;
        let _ = exp_avg_sq.f_mul_scalar_(self.beta2)?;
        // addcmul_(grad, grad, value=1-beta2) with the value folded into the first factor
        let _ = exp_avg_sq.f_addcmul_(&grad.f_mul_scalar(1.0 - self.beta2)?, &grad)?;
        let step = st.step as f64;
        let bias_correction1 = 1.0 - self.beta1.powf(step);
        let bias_correction2 = 1.0 - self.beta2.powf(step);
        let step_size = self.lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.powf(0.5);
        let mut denom = if self.amsgrad {
            let max_sq = st.buffer("max_exp_avg_sq", p, 0.0)?;
            let _ = max_sq.f_maximum_out(&max_sq, &exp_avg_sq)?;
            max_sq.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?
        } else {
            exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?
        };
        let _ = denom.f_add_scalar_(self.eps)?;
        let _ = param.f_addcdiv_(&exp_avg.f_mul_scalar(-step_size)?, &denom)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use super::super::testutil::{check, kws};
    use crate::value::Value;

    /// The Adam update written out: m, v, (vmax), bias corrections.
    fn adam(
        t: i64,
        p: &Tensor,
        g: &Tensor,
        st: &mut Vec<Tensor>,
        wd: f64,
        decoupled: bool,
        ams: bool,
    ) -> Tensor {
        let (lr, b1, b2, eps): (f64, f64, f64, f64) = (0.01, 0.8, 0.95, 1e-6);
        if st.is_empty() {
            *st = vec![p.zeros_like(), p.zeros_like(), p.zeros_like()];
        }
        let p = if decoupled {
            p * (1.0 - lr * wd)
        } else {
            p.copy()
        };
        let g = if decoupled { g.copy() } else { g + wd * &p };
        let m = b1 * &st[0] + (1.0 - b1) * &g;
        let v = b2 * &st[1] + (1.0 - b2) * &g * &g;
        let vmax = if ams { st[2].maximum(&v) } else { v.copy() };
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        let new = &p - lr / c1 * &m / ((vmax.sqrt() / c2.sqrt()) + eps);
        *st = vec![m, v, vmax];
        new
    }

    fn settings(wd: f64, ams: bool) -> (Vec<Value>, Vec<(String, Value)>) {
        (
            vec![0.01.into(), 0.8.into(), 0.95.into(), 1e-6.into()],
            kws(&[("decay", wd.into()), ("amsgrad", ams.into())]),
        )
    }

    #[test]
    fn adam_plain_and_decay() {
        for wd in [0.0, 0.1] {
            let (pos, kw) = settings(wd, false);
            check("adam", &pos, &kw, 8, |t, p, g, st| {
                adam(t, p, g, st, wd, false, false)
            });
        }
    }

    #[test]
    fn adam_amsgrad() {
        let (pos, kw) = settings(0.05, true);
        check("adam", &pos, &kw, 8, |t, p, g, st| {
            adam(t, p, g, st, 0.05, false, true)
        });
    }

    #[test]
    fn adamw() {
        for ams in [false, true] {
            let (pos, kw) = settings(0.1, ams);
            check("adamw", &pos, &kw, 8, |t, p, g, st| {
                adam(t, p, g, st, 0.1, true, ams)
            });
        }
    }
}
