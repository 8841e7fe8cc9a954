//! Shared pieces of the optimizers: per-parameter state, PyTorch's `alpha` forms, checks.

use tch::Tensor;

use crate::error::{invalid, Result};

/// Per-parameter state: a step count and named buffers (as PyTorch names them).
#[derive(Debug, Default)]
pub(super) struct ParamState {
    pub(super) step: i64,
    buffers: Vec<(&'static str, Tensor)>,
    /// 0-dim tensors of settings (`-lr`), kept so that a step allocates none.
    scalars: Vec<(&'static str, f64, Tensor)>,
    /// The step count as a 0-dim float32 tensor for the fused kernels, and the count it holds.
    step_t: Option<(Tensor, i64)>,
}

impl ParamState {
    /// A state taken from elsewhere (a loaded state_dict): a step count and buffers.
    pub(super) fn restored(step: i64, buffers: Vec<(&'static str, Tensor)>) -> ParamState {
        ParamState {
            step,
            buffers,
            scalars: Vec::new(),
            step_t: None,
        }
    }

    /// The buffer `name`, created on first use as a tensor like `p` filled with `fill`.
    /// The handle shares storage with the stored buffer, so in-place updates stick.
    pub(super) fn buffer(&mut self, name: &'static str, p: &Tensor, fill: f64) -> Result<Tensor> {
        if let Some((_, t)) = self.buffers.iter().find(|(k, _)| *k == name) {
            return Ok(t.shallow_clone());
        }
        let t = if fill == 0.0 {
            p.f_zeros_like()?
        } else {
            p.f_full_like(fill)?
        };
        self.buffers.push((name, t.shallow_clone()));
        Ok(t)
    }

    /// Whether buffer `name` exists.
    pub(super) fn has(&self, name: &str) -> bool {
        self.buffers.iter().any(|(k, _)| *k == name)
    }

    /// The buffer `name` if it exists, borrowed (no new handle).
    pub(super) fn get_ref(&self, name: &str) -> Option<&Tensor> {
        self.buffers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, t)| t)
    }

    /// The buffer `name` if it exists.
    pub(super) fn get(&self, name: &str) -> Option<Tensor> {
        self.buffers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, t)| t.shallow_clone())
    }

    /// A 0-dim tensor holding `x` like `p` (dtype, device), made once and kept
    /// while `x` stays the same.
    pub(super) fn scalar(&mut self, name: &'static str, x: f64, p: &Tensor) -> Result<Tensor> {
        let fits = |t: &Tensor| t.kind() == p.kind() && t.device() == p.device();
        match self.scalars.iter_mut().find(|(k, _, _)| *k == name) {
            Some((_, v, t)) if v.to_bits() == x.to_bits() && fits(t) => Ok(t.shallow_clone()),
            Some(slot) => {
                *slot = (name, x, scalar_like(x, p)?);
                Ok(slot.2.shallow_clone())
            }
            None => {
                let t = scalar_like(x, p)?;
                self.scalars.push((name, x, t.shallow_clone()));
                Ok(t)
            }
        }
    }

    /// The step count as a 0-dim float32 tensor on `p`'s device (as torch.optim keeps it
    /// for its fused kernels), made once and made again only if the count moved without it.
    pub(super) fn step_tensor(&mut self, p: &Tensor) -> Result<Tensor> {
        match &self.step_t {
            Some((t, at)) if *at == self.step && t.device() == p.device() => Ok(t.shallow_clone()),
            _ => {
                let t = Tensor::f_full(
                    [0i64; 0].as_slice(),
                    self.step as f64,
                    (tch::Kind::Float, p.device()),
                )?;
                self.step_t = Some((t.shallow_clone(), self.step));
                Ok(t)
            }
        }
    }

    /// Counts a step whose step tensor was incremented too.
    pub(super) fn stepped(&mut self) {
        self.step += 1;
        if let Some((_, at)) = &mut self.step_t {
            *at += 1;
        }
    }

    /// The step count and the state buffers by name.
    pub(super) fn named(&self) -> (i64, &[(&'static str, Tensor)]) {
        (self.step, &self.buffers)
    }

    /// The state buffers (momenta, moments...), to move or convert with the parameters.
    pub(super) fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.buffers.iter().map(|(_, t)| t)
    }

    /// Stores (or replaces) buffer `name`.
    pub(super) fn set(&mut self, name: &'static str, t: Tensor) {
        match self.buffers.iter_mut().find(|(k, _)| *k == name) {
            Some(b) => b.1 = t,
            None => self.buffers.push((name, t)),
        }
    }
}

/// A 0-dim tensor holding `x` with the dtype and device of `like`.
pub(super) fn scalar_like(x: f64, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_full(
        [0i64; 0].as_slice(),
        x,
        (like.kind(), like.device()),
    )?)
}

/// `p.add_(x, alpha=alpha)`: tch drops `alpha`, and `addcmul_` with a 0-dim
/// `alpha` runs the same fused kernel, so the result is bit for bit PyTorch's.
pub(super) fn add_scaled_(p: &mut Tensor, x: &Tensor, alpha: f64) -> Result<()> {
    if alpha == 1.0 {
        let _ = p.f_add_(x)?;
    } else {
        let _ = p.f_addcmul_(x, &scalar_like(alpha, p)?)?;
    }
    Ok(())
}

/// `p.add_(x, alpha=alpha)` with the 0-dim `alpha` kept in `st` under `name`.
pub(super) fn add_scaled_kept_(
    p: &mut Tensor,
    x: &Tensor,
    alpha: f64,
    st: &mut ParamState,
    name: &'static str,
) -> Result<()> {
    if alpha == 1.0 {
        let _ = p.f_add_(x)?;
    } else {
        let _ = p.f_addcmul_(x, &st.scalar(name, alpha, p)?)?;
    }
    Ok(())
}

/// `p.add(x, alpha=alpha)`, out of place.
pub(super) fn add_scaled(p: &Tensor, x: &Tensor, alpha: f64) -> Result<Tensor> {
    Ok(if alpha == 1.0 {
        p.f_add(x)?
    } else {
        p.f_addcmul(x, &scalar_like(alpha, p)?)?
    })
}

/// Checks a setting that must be `>= 0` (NaN fails too).
pub(super) fn nonneg(name: &str, x: f64) -> Result<f64> {
    if x >= 0.0 {
        Ok(x)
    } else {
        Err(invalid(format!("{name} must be non-negative, given {x}")))
    }
}

/// Checks a setting that must lie in `[0, 1)`, like PyTorch's betas.
pub(super) fn unit(name: &str, x: f64) -> Result<f64> {
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(invalid(format!(
            "{name} must be in the range [0,1), given {x}"
        )))
    }
}

/// A detached copy of `t` (`t.detach().clone()`).
pub(super) fn copy_of(t: &Tensor) -> Result<Tensor> {
    let mut c = t.f_empty_like()?;
    c.f_copy_(t)?;
    Ok(c)
}

/// The gradient of `p`, or `None` where it is undefined (the parameter is skipped).
pub(super) fn grad_of(p: &Tensor) -> Result<Option<Tensor>> {
    let g = p.f_grad()?;
    Ok(if g.defined() { Some(g) } else { None })
}
