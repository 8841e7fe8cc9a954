//! LAMB: Adam-style updates scaled per parameter by a trust ratio ||w|| / ||update||.
//!
//! The rule follows timm's `timm/optim/lamb.py` single-tensor code (with the
//! trust ratio always applied, as the original ktorch does) and is, step `t`
//! counted per parameter, for each parameter `w` with a defined gradient `g`:
//!
//! 1. `globalnorm`: `n = ||(||g_1||, ||g_2||, ...)||`, the 2-norm of the gradients of
//!    every parameter of every group, computed once per step before any update;
//!    `g = g / max(n, 1)` (clipping the global norm to 1; `p.grad` is left as is).
//! 2. `m = m.lerp(g, 1 - beta1)`; `v = beta2 * v + (1 - beta2) * g * g`.
//! 3. with `unbiased`: `b1 = 1 - beta1^t`, `b2 = 1 - beta2^t`, else `b1 = b2 = 1`;
//!    `u = (m / b1) / (sqrt(v) / sqrt(b2) + eps)`.
//! 4. `decay != 0`: `u = u + decay * w`.
//! 5. `r = ||w|| / ||u||`, or 1 where either norm is 0; with `trustclip`,
//!    `r = clamp(r, trustmin, trustmax)`.
//! 6. `w = w - lr * (u * r)`.
//!
//! (timm, by default, skips step 5 when decay is 0 and clips the ratio to at most 1.)

use tch::Tensor;

use super::ops::{add_scaled_, grad_of, nonneg, unit, ParamState};
use super::{Group, Settings};
use crate::args::Args;
use crate::error::{err, Result};
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &[
    "lr",
    "beta1",
    "beta2",
    "eps",
    "decay",
    "unbiased",
    "globalnorm",
    "trustclip",
    "trustmin",
    "trustmax",
];

/// lamb settings: lr=.001, beta1=.9, beta2=.999, eps=1e-8, decay=0, unbiased=true,
/// globalnorm=true, trustclip=true, trustmin=0, trustmax=1.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lamb {
    pub(super) lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decay: f64,
    unbiased: bool,
    globalnorm: bool,
    trustclip: bool,
    trustmin: f64,
    trustmax: f64,
}

impl Default for Lamb {
    fn default() -> Self {
        Lamb {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay: 0.0,
            unbiased: true,
            globalnorm: true,
            trustclip: true,
            trustmin: 0.0,
            trustmax: 1.0,
        }
    }
}

impl Lamb {
    /// `self` overridden by the given settings.
    pub(super) fn parse(&self, a: &Args) -> Result<Lamb> {
        let f = a.kind();
        let s = Lamb {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            beta1: unit("beta1", a.float("beta1", self.beta1)?)?,
            beta2: unit("beta2", a.float("beta2", self.beta2)?)?,
            eps: nonneg("eps", a.float("eps", self.eps)?)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            unbiased: a.bool("unbiased", self.unbiased)?,
            globalnorm: a.bool("globalnorm", self.globalnorm)?,
            trustclip: a.bool("trustclip", self.trustclip)?,
            trustmin: nonneg("trustmin", a.float("trustmin", self.trustmin)?)?,
            trustmax: nonneg("trustmax", a.float("trustmax", self.trustmax)?)?,
        };
        if s.trustmin > s.trustmax {
            return Err(err(
                f,
                format!(
                    "trustmin {} greater than trustmax {}",
                    s.trustmin, s.trustmax
                ),
            ));
        }
        Ok(s)
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("eps", self.eps.into()),
            ("decay", self.decay.into()),
            ("unbiased", self.unbiased.into()),
            ("globalnorm", self.globalnorm.into()),
            ("trustclip", self.trustclip.into()),
            ("trustmin", self.trustmin.into()),
            ("trustmax", self.trustmax.into()),
        ]
    }

    /// One LAMB update of a group's parameters; `clip` is `max(n, 1)` of rule 1.
    pub(super) fn step(
        &self,
        params: &[Tensor],
        state: &mut [ParamState],
        clip: Option<&Tensor>,
    ) -> Result<()> {
        for (p, st) in params.iter().zip(state.iter_mut()) {
            let Some(mut grad) = grad_of(p)? else {
                continue;
            };
            if let (true, Some(c)) = (self.globalnorm, clip) {
                grad = grad.f_div(c)?;
            }
            let mut exp_avg = st.buffer("exp_avg", p, 0.0)?;
            let mut exp_avg_sq = st.buffer("exp_avg_sq", p, 0.0)?;
            st.step += 1;
            let step = st.step as f64;
            let (bias_correction1, bias_correction2) = if self.unbiased {
                (1.0 - self.beta1.powf(step), 1.0 - self.beta2.powf(step))
            } else {
                (1.0, 1.0)
            };
            let _ = exp_avg.f_lerp_(&grad, 1.0 - self.beta1)?;
            let _ = exp_avg_sq.f_mul_scalar_(self.beta2)?;
            let _ = exp_avg_sq.f_addcmul_(&grad.f_mul_scalar(1.0 - self.beta2)?, &grad)?;
            let mut denom = exp_avg_sq
                .f_sqrt()?
                .f_div_scalar(bias_correction2.powf(0.5))?;
            let _ = denom.f_add_scalar_(self.eps)?;
            let mut update = exp_avg.f_div_scalar(bias_correction1)?;
            let _ = update.f_div_(&denom)?;
            if self.decay != 0.0 {
                add_scaled_(&mut update, p, self.decay)?;
            }
            let _ = update.f_mul_(&self.trust_ratio(&p.f_norm()?, &update.f_norm()?)?)?;
            add_scaled_(&mut p.shallow_clone(), &update, -self.lr)?;
        }
        Ok(())
    }

    /// `||w|| / ||u||`, 1 where either norm is 0, clamped with `trustclip`.
    fn trust_ratio(&self, w_norm: &Tensor, u_norm: &Tensor) -> Result<Tensor> {
        let ratio = w_norm.f_div(u_norm)?;
        let both = w_norm.f_gt(0.0)?.f_logical_and(&u_norm.f_gt(0.0)?)?;
        let r = ratio.f_where_self(&both, &ratio.f_ones_like()?)?;
        Ok(if self.trustclip {
            r.f_clamp(self.trustmin, self.trustmax)?
        } else {
            r
        })
    }
}

/// Rule 1: `max(n, 1)` for the global gradient norm `n` over every group, or
/// `None` when no lamb group asks for it or no parameter has a gradient.
pub(super) fn global_clip(groups: &[Group]) -> Result<Option<Tensor>> {
    if !groups
        .iter()
        .any(|g| matches!(&g.settings, Settings::Lamb(s) if s.globalnorm))
    {
        return Ok(None);
    }
    let mut norms = Vec::new();
    for p in groups.iter().flat_map(|g| g.params.iter()) {
        if let Some(g) = grad_of(p)? {
            norms.push(g.f_norm()?);
        }
    }
    if norms.is_empty() {
        return Ok(None);
    }
    let mut clip = Tensor::f_stack(&norms, 0)?.f_norm()?;
    let _ = clip.f_clamp_min_(1.0)?;
    Ok(Some(clip))
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use super::super::testutil::{assert_close, backward, copies, kws, params};
    use super::super::Optimizer;
    use crate::value::Value;

    /// Steps lamb and the rule of the file docs written out, and compares.
    fn run(kw: &[(&str, Value)], lr: f64, decay: f64) {
        let get = |k: &str, d: bool| {
            kw.iter()
                .find(|(n, _)| *n == k)
                .map_or(d, |(_, v)| *v == Value::Bool(true))
        };
        let (unbiased, globalnorm, trustclip) = (
            get("unbiased", true),
            get("globalnorm", true),
            get("trustclip", true),
        );
        let (b1, b2, eps, tmin, tmax): (f64, f64, f64, f64, f64) = (0.9, 0.99, 1e-6, 0.1, 0.9);
        let ps = params();
        let refs = copies(&ps);
        let mut all = kws(kw);
        all.extend(kws(&[
            ("decay", decay.into()),
            ("trustmin", tmin.into()),
            ("trustmax", tmax.into()),
        ]));
        let pos: Vec<Value> = vec![lr.into(), b1.into(), b2.into(), eps.into()];
        let mut o = Optimizer::new(
            "lamb",
            ps.iter().map(Tensor::shallow_clone).collect(),
            &pos,
            &all,
        )
        .expect("new");
        let mut st: Vec<(Tensor, Tensor)> = refs
            .iter()
            .map(|p| (p.zeros_like(), p.zeros_like()))
            .collect();
        for t in 1..=6 {
            let _ = backward(&ps);
            o.step().expect("step");
            let _ = backward(&refs);
            tch::no_grad(|| {
                let n = refs
                    .iter()
                    .map(|p| p.grad().square().sum(None).double_value(&[]))
                    .sum::<f64>()
                    .sqrt();
                for (p, (m, v)) in refs.iter().zip(st.iter_mut()) {
                    let g = if globalnorm {
                        p.grad() / n.max(1.0)
                    } else {
                        p.grad()
                    };
                    *m = b1 * &*m + (1.0 - b1) * &g;
                    *v = b2 * &*v + (1.0 - b2) * &g * &g;
                    let (c1, c2) = if unbiased {
                        (1.0 - b1.powi(t), 1.0 - b2.powi(t))
                    } else {
                        (1.0, 1.0)
                    };
                    let u = (&*m / c1) / (v.sqrt() / c2.sqrt() + eps) + decay * p;
                    let (wn, un) = (p.norm().double_value(&[]), u.norm().double_value(&[]));
                    let mut r = if wn > 0.0 && un > 0.0 { wn / un } else { 1.0 };
                    if trustclip {
                        r = r.clamp(tmin, tmax);
                    }
                    p.shallow_clone().copy_(&(p - lr * r * u));
                }
            });
        }
        assert_close(&ps, &refs, 1e-5);
    }

    #[test]
    fn lamb_default_rule() {
        run(&[], 0.05, 0.0);
        run(&[], 0.05, 0.1);
    }

    #[test]
    fn lamb_flags() {
        run(&[("unbiased", false.into())], 0.05, 0.01);
        run(&[("globalnorm", false.into())], 0.05, 0.01);
        run(&[("trustclip", false.into())], 0.05, 0.01);
    }
}
