//! Adagrad: per-element learning rates from the running sum of squared gradients.

use tch::Tensor;

use super::fused::{self, Bucket};
use super::ops::{add_scaled, grad_of, nonneg, ParamState};
use crate::args::Args;
use crate::error::Result;
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &["lr", "lrdecay", "decay", "init", "eps"];

/// adagrad settings: lr=.01, lrdecay=0, decay=0, init=0 (initial sum), eps=1e-10.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Adagrad {
    pub(super) lr: f64,
    lrdecay: f64,
    decay: f64,
    init: f64,
    eps: f64,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            lr: 0.01,
            lrdecay: 0.0,
            decay: 0.0,
            init: 0.0,
            eps: 1e-10,
        }
    }
}

impl Adagrad {
    /// `self` overridden by the given settings, checked as torch.optim.Adagrad does.
    pub(super) fn parse(&self, a: &Args) -> Result<Adagrad> {
        Ok(Adagrad {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            lrdecay: nonneg("lrdecay", a.float("lrdecay", self.lrdecay)?)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            init: nonneg("init", a.float("init", self.init)?)?,
            eps: nonneg("eps", a.float("eps", self.eps)?)?,
        })
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("lrdecay", self.lrdecay.into()),
            ("decay", self.decay.into()),
            ("init", self.init.into()),
            ("eps", self.eps.into()),
        ]
    }

    /// One step for every parameter with a gradient: libtorch's fused kernel (CPU only,
    /// as in torch.optim) for those it takes ([`fused::split`]), `_single_tensor_adagrad`
    /// for the others.
    pub(super) fn step(&self, params: &[Tensor], state: &mut [ParamState]) -> Result<()> {
        fused::step_split(
            params,
            state,
            true,
            |b, s| self.fused(b, s),
            |p, s| self.single(p, s),
        )
    }

    /// torch.optim.adagrad `_fused_adagrad` for one dtype on the CPU.
    fn fused(&self, b: &Bucket, state: &mut [ParamState]) -> Result<()> {
        let mut sums = Vec::with_capacity(b.idx.len());
        for (&i, p) in b.idx.iter().zip(&b.params) {
            sums.push(state[i].buffer("sum", p, self.init)?);
        }
        let steps = fused::next_steps(b, state)?;
        let s = ktorch_shim::AdagradSettings {
            lr: self.lr,
            lr_decay: self.lrdecay,
            weight_decay: self.decay,
            eps: self.eps,
            maximize: false,
        };
        Ok(ktorch_shim::fused_adagrad_(
            &b.params, &b.grads, &sums, &steps, &s,
        )?)
    }

    /// torch.optim.adagrad `_single_tensor_adagrad` for one parameter with a dense
    /// gradient. The sum starts at `init` when a parameter is first updated.
    pub(super) fn single(&self, p: &Tensor, st: &mut ParamState) -> Result<()> {
        let Some(mut grad) = grad_of(p)? else {
            return Ok(());
        };
        let mut sum = st.buffer("sum", p, self.init)?;
        st.step += 1;
        let step = st.step as f64;
        if self.decay != 0.0 {
            grad = add_scaled(&grad, p, self.decay)?;
        }
        let clr = self.lr / (1.0 + (step - 1.0) * self.lrdecay);
        let _ = sum.f_addcmul_(&grad, &grad)?;
        let mut std = sum.f_sqrt()?;
        let _ = std.f_add_scalar_(self.eps)?;
        let _ = p
            .shallow_clone()
            .f_addcdiv_(&grad.f_mul_scalar(-clr)?, &std)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;
    use crate::value::Value;

    #[test]
    fn adagrad() {
        let (lr, lrd, wd, init, eps) = (0.1, 0.05, 0.01, 0.2, 1e-10);
        let pos: Vec<Value> = vec![lr.into(), lrd.into(), wd.into(), init.into(), eps.into()];
        check("adagrad", &pos, &[], 6, |t, p, g, st| {
            if st.is_empty() {
                *st = vec![p.full_like(init)];
            }
            let g = g + wd * p;
            let sum = &st[0] + &g * &g;
            let clr = lr / (1.0 + (t - 1) as f64 * lrd);
            let new = p - clr * &g / (sum.sqrt() + eps);
            *st = vec![sum];
            new
        });
    }
}
