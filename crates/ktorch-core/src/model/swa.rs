//! Weight averaging's last step (`batchnorm`): after averaged parameters are
//! copied back into a module, the running statistics of its batchnorm layers
//! no longer fit them. [`batchnorm`] resets them and, given the model's
//! training data, recomputes them as a simple (cumulative) average over the
//! batches, as `torch.optim.swa_utils.update_bn` does.

use tch::Tensor;

use crate::error::{invalid, Result};
use crate::model::Stage;
use crate::nn::Module;
use crate::value::Value;

/// The momentum batchnorm layers are built with when none is given.
const DEFAULT_MOMENTUM: f64 = 0.1;

/// True for a batchnorm layer keeping running statistics (`batchnorm1d`,
/// `batchnorm2d`, `batchnorm3d` with `track` on).
pub fn is_batchnorm(m: &Module) -> bool {
    matches!(m.kind(), "batchnorm1d" | "batchnorm2d" | "batchnorm3d") && m.own_buffers().len() == 3
}

/// A batchnorm layer's momentum: None where the running statistics are a
/// cumulative average.
pub fn momentum(m: &Module) -> Result<Option<f64>> {
    let Some((args, kw)) = m.made() else {
        return Ok(Some(DEFAULT_MOMENTUM));
    };
    let given = kw
        .iter()
        .rev()
        .find(|(k, _)| k == "momentum")
        .map(|(_, v)| v)
        .or_else(|| args.get(2));
    Ok(match given {
        None => Some(DEFAULT_MOMENTUM),
        Some(v) if v.is_null() => None,
        Some(v) => Some(v.as_float("momentum")?),
    })
}

/// The batchnorm layers of a module with their dotted names (`""` for the module itself).
pub fn batchnorm_names(q: &Module) -> Vec<String> {
    q.named_modules()
        .into_iter()
        .filter(|(_, m)| is_batchnorm(m))
        .map(|(k, _)| k)
        .collect()
}

fn layer_mut<'a>(q: &'a mut Module, name: &str) -> Result<&'a mut Module> {
    if name.is_empty() {
        Ok(q)
    } else {
        q.child_mut(name)
    }
}

fn set_momentum(m: &mut Module, v: Option<f64>) -> Result<()> {
    m.set_options(&[("momentum".to_string(), v.map_or(Value::Null, Value::Float))])
}

/// Sets the momentum of each named batchnorm layer (None: cumulative average),
/// as `batchnorm(m, d)` restores what `batchnorm(m)` returned. Every name and
/// value is checked before any layer changes.
pub fn set_momenta(q: &mut Module, momenta: &[(String, Option<f64>)]) -> Result<()> {
    let known = batchnorm_names(q);
    for (k, v) in momenta {
        if !known.contains(k) {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(invalid(if known.is_empty() {
                format!("no batchnorm layer `{k}`: the module has none")
            } else {
                crate::error::unrecognized("batchnorm layer", "layer", k, &names)
            }));
        }
        if let Some(x) = v {
            if !(0.0..=1.0).contains(x) {
                return Err(invalid(format!(
                    "momentum of `{k}` must be in the range 0-1, given {x}"
                )));
            }
        }
    }
    for (k, v) in momenta {
        set_momentum(layer_mut(q, k)?, *v)?;
    }
    Ok(())
}

/// Each batchnorm layer's running statistics, copied (to put back after a failure).
fn stats(q: &Module, names: &[String]) -> Result<Vec<Vec<Tensor>>> {
    let _g = tch::no_grad_guard();
    names
        .iter()
        .map(|k| {
            let m = if k.is_empty() { q } else { q.child(k)? };
            m.own_buffers()
                .iter()
                .map(|(_, t)| Ok(t.f_detach_copy()?))
                .collect()
        })
        .collect()
}

/// Resets a layer's running statistics: mean 0, variance 1, no batches tracked.
fn reset(m: &Module) -> Result<()> {
    let _g = tch::no_grad_guard();
    for (k, t) in m.own_buffers() {
        let mut t = t.shallow_clone();
        let _ = match k.as_str() {
            "running_var" => t.f_fill_(1.0)?,
            _ => t.f_zero_()?,
        };
    }
    Ok(())
}

/// The recompute: resets the batchnorm layers of `q` (running mean 0, variance 1,
/// count 0) and sets their momentum to None (a cumulative average); then, given a
/// stage with data, runs the module forward over its inputs batch by batch (the
/// stage's batch size, every row once, in the stage's order) in training mode
/// without gradients and restores each layer's momentum and the training flags.
/// Without data the layers are left reset, momentum None, to be recomputed by
/// hand and restored with [`set_momenta`]. Returns each batchnorm layer's name
/// with its momentum before the call. A failed recompute puts everything back.
pub fn batchnorm(q: &mut Module, data: Option<&Stage>) -> Result<Vec<(String, Option<f64>)>> {
    let names = batchnorm_names(q);
    let mut before = Vec::with_capacity(names.len());
    for k in &names {
        let m = if k.is_empty() { &*q } else { q.child(k)? };
        before.push((k.clone(), momentum(m)?));
    }
    let inputs = data.and_then(|s| s.inputs_full().map(|x| (x, s.opts.batchsize)));
    let saved = stats(q, &names)?;
    let flags: Vec<(String, bool)> = q
        .named_modules()
        .into_iter()
        .map(|(k, m)| (k, m.is_training()))
        .collect();
    let r = recompute(q, &names, inputs);
    let back = if inputs_given(&r) {
        // done or failed after the data was seen: momenta and flags go back
        restore_flags(q, &flags).and(set_momenta(q, &before))
    } else {
        Ok(())
    };
    match r.and(back) {
        Ok(_) => Ok(before),
        Err(e) => {
            // put the statistics, momenta and flags back as they were
            let _ = restore_flags(q, &flags);
            let _ = set_momenta(q, &before);
            let _g = tch::no_grad_guard();
            for (k, ts) in names.iter().zip(&saved) {
                if let Ok(m) = layer_mut(q, k) {
                    for ((_, t), s) in m.own_buffers().iter().zip(ts) {
                        let _ = t.shallow_clone().f_copy_(s);
                    }
                }
            }
            Err(e)
        }
    }
}

/// True where the recompute ran over data (or failed trying), false where it only reset.
fn inputs_given(r: &Result<bool>) -> bool {
    !matches!(r, Ok(false))
}

fn restore_flags(q: &mut Module, flags: &[(String, bool)]) -> Result<()> {
    for (k, on) in flags {
        layer_mut(q, k)?.set_training_here(*on);
    }
    Ok(())
}

/// Resets the layers and, given inputs, runs the forward passes; true when it ran over data.
fn recompute(q: &mut Module, names: &[String], inputs: Option<(Vec<Tensor>, i64)>) -> Result<bool> {
    for k in names {
        let m = layer_mut(q, k)?;
        set_momentum(m, None)?;
        reset(m)?;
    }
    let Some((xs, batchsize)) = inputs else {
        return Ok(false);
    };
    if names.is_empty() {
        return Ok(true);
    }
    let rows = xs
        .first()
        .and_then(|t| t.size().first().copied())
        .unwrap_or(0);
    let w = if batchsize <= 0 || batchsize > rows {
        rows
    } else {
        batchsize
    };
    q.set_training(true);
    let _g = tch::no_grad_guard();
    let mut start = 0;
    while start < rows {
        let n = w.min(rows - start);
        let batch = xs
            .iter()
            .map(|t| Ok(t.f_narrow(0, start, n)?))
            .collect::<Result<Vec<_>>>()?;
        let batch = q.place(batch, "the inputs are")?;
        q.forward(&batch)?;
        start += n;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn buffer(q: &Module, i: usize) -> Vec<f64> {
        let t = q.buffer_at(i).expect("buffer").to_kind(tch::Kind::Double);
        Vec::<f64>::try_from(t.reshape([-1])).expect("values")
    }

    #[test]
    fn recompute_is_a_cumulative_average() -> Result<()> {
        let mut q = Module::layer("batchnorm1d", &[Value::Int(2)], &[])?;
        // three batches of two rows: batch means (1, 10), (3, 30), (5, 50)
        let x = Tensor::from_slice(&[
            0.0f32, 5.0, 2.0, 15.0, 2.0, 25.0, 4.0, 35.0, 4.0, 45.0, 6.0, 55.0,
        ])
        .reshape([6, 2]);
        let mut s = Stage::new(Phase::Train);
        s.opts.batchsize = 2;
        s.set_data(vec![x], None)?;
        q.set_training(false);
        assert_eq!(
            batchnorm(&mut q, Some(&s))?,
            vec![(String::new(), Some(0.1))]
        );
        let mean = buffer(&q, 0);
        assert!(
            (mean[0] - 3.0).abs() < 1e-6 && (mean[1] - 30.0).abs() < 1e-5,
            "{mean:?}"
        );
        assert_eq!(buffer(&q, 2), vec![3.0]);
        // momentum and training flag as they were
        assert_eq!(momentum(&q)?, Some(0.1));
        assert!(!q.is_training());
        Ok(())
    }

    #[test]
    fn reset_then_restore_momentum() -> Result<()> {
        let spec = Value::List(vec![
            "sequential".into(),
            Value::Tuple(vec!["linear".into(), "a".into(), 2.into(), 2.into()]),
            Value::Tuple(vec![
                "batchnorm1d".into(),
                "b".into(),
                2.into(),
                1e-5.into(),
                0.3.into(),
            ]),
        ]);
        let mut q = Module::from_value(&spec)?;
        let r = batchnorm(&mut q, None)?;
        assert_eq!(r, vec![("b".to_string(), Some(0.3))]);
        assert_eq!(momentum(q.child("b")?)?, None);
        assert_eq!(buffer(q.child("b")?, 1), vec![1.0, 1.0]);
        let e = set_momenta(&mut q, &[("b".into(), Some(0.5)), ("a".into(), Some(0.1))])
            .expect_err("a is not a batchnorm");
        assert!(
            e.to_string().contains("unrecognized batchnorm layer: a"),
            "{e}"
        );
        assert_eq!(momentum(q.child("b")?)?, None, "nothing changed");
        set_momenta(&mut q, &r)?;
        assert_eq!(momentum(q.child("b")?)?, Some(0.3));
        Ok(())
    }
}
