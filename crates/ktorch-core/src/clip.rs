//! Gradient clipping by value and by norm, as torch.nn.utils.clip_grad_value_ / clip_grad_norm_.

use tch::Tensor;

use crate::error::{invalid, Result};

/// Clamps every defined gradient to `[-value, value]`.
pub fn clip_value(ts: &[Tensor], value: f64) -> Result<()> {
    if value.is_nan() || value < 0.0 {
        return Err(invalid(format!(
            "clip value must be non-negative, given {value}"
        )));
    }
    let _g = tch::no_grad_guard();
    for t in ts {
        let mut g = t.f_grad()?;
        if g.defined() {
            let _ = g.f_clamp_(-value, value)?;
        }
    }
    Ok(())
}

/// The total norm of the defined gradients (a 0-dim tensor; None with no gradients).
pub fn grad_norm(ts: &[Tensor], p: f64) -> Result<Option<Tensor>> {
    let _g = tch::no_grad_guard();
    let grads: Vec<Tensor> = ts
        .iter()
        .map(|t| t.f_grad())
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .filter(Tensor::defined)
        .collect();
    if grads.is_empty() {
        return Ok(None);
    }
    let norms = grads
        .iter()
        .map(|g| g.f_flatten(0, -1)?.f_norm_scalaropt_dim(p, [0i64], false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let stacked = Tensor::f_stack(&norms, 0)?;
    Ok(Some(stacked.f_norm_scalaropt_dim(p, [0i64], false)?))
}

/// Scales the gradients so that their total `p`-norm is at most `maxnorm`;
/// returns the norm before clipping (0 with no gradients).
pub fn clip_norm(ts: &[Tensor], maxnorm: f64, p: f64) -> Result<Tensor> {
    check_norm(maxnorm, p)?;
    let total = match grad_norm(ts, p)? {
        Some(t) => t,
        None => return Ok(Tensor::from(0.0f32)),
    };
    let _g = tch::no_grad_guard();
    let coef = total
        .f_add_scalar(1e-6)?
        .f_reciprocal()?
        .f_mul_scalar(maxnorm)?
        .f_clamp_max(1.0)?;
    for t in ts {
        let mut g = t.f_grad()?;
        if g.defined() {
            let c = coef.f_to_device(g.device())?.f_to_kind(g.kind())?;
            let _ = g.f_mul_(&c)?;
        }
    }
    Ok(total)
}

/// Validates a maximum norm and norm type.
pub fn check_norm(maxnorm: f64, p: f64) -> Result<()> {
    if maxnorm.is_nan() || maxnorm < 0.0 {
        return Err(invalid(format!(
            "maximum norm must be non-negative, given {maxnorm}"
        )));
    }
    if p.is_nan() || p <= 0.0 {
        return Err(invalid(format!("norm type must be positive, given {p}")));
    }
    Ok(())
}

/// Tensors with distinct storage (so a parameter held twice counts once).
pub fn distinct(ts: Vec<Tensor>) -> Vec<Tensor> {
    distinct_by(ts, |t| t)
}

/// [`distinct`] over items that hold a tensor (`tensor` gives it): the first item of each
/// tensor, in order.
pub fn distinct_by<T>(items: Vec<T>, tensor: impl Fn(&T) -> &Tensor) -> Vec<T> {
    let mut seen: Vec<(usize, Vec<i64>)> = Vec::new();
    let mut out = Vec::new();
    for x in items {
        let t = tensor(&x);
        let key = (t.data_ptr() as usize, t.size());
        if !seen.contains(&key) {
            seen.push(key);
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn clip_value_clamps() {
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let z = (&x * &x).mean(Kind::Float);
        z.backward();
        clip_value(&[x.shallow_clone()], 1.2).expect("clip");
        let g = Vec::<f32>::try_from(x.grad()).expect("grad");
        assert!((g[0] - 0.6666667).abs() < 1e-6 && g[1] == 1.2 && g[2] == 1.2);
    }

    #[test]
    fn clip_norm_returns_previous() {
        let x = Tensor::from_slice(&[3.0f32, 4.0]).set_requires_grad(true);
        (&x * &x)
            .sum(Kind::Float)
            .f_div_scalar(2.0)
            .expect("div")
            .backward();
        let n = clip_norm(&[x.shallow_clone()], 1.0, 2.0).expect("clip");
        assert!((n.double_value(&[]) - 5.0).abs() < 1e-6);
        let n2 = grad_norm(&[x.shallow_clone()], 2.0)
            .expect("norm")
            .expect("some");
        assert!((n2.double_value(&[]) - 1.0).abs() < 1e-5);
    }
}
