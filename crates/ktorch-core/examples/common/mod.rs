//! What the examples share: the spiral data and a layer spec.

use ktorch_core::{Result, Value};
use tch::{Device, Kind, Tensor};

/// A linear layer's spec: `("linear", i, o)`.
pub fn linear(i: i64, o: i64) -> Value {
    Value::Tuple(vec!["linear".into(), Value::Int(i), Value::Int(o)])
}

/// k noisy spirals of n points: radius r in [0, 1], angle 4r + 4c + noise.
pub fn spirals(n: i64, k: i64) -> Result<(Tensor, Tensor)> {
    let r = Tensor::f_linspace(0.0, 1.0, n, (Kind::Float, Device::Cpu))?;
    let mut xs = Vec::new();
    for c in 0..k {
        let a =
            (&r * 4.0 + 4.0 * c as f64) + Tensor::f_randn([n], (Kind::Float, Device::Cpu))? * 0.2;
        xs.push(Tensor::f_stack(&[&r * a.f_sin()?, &r * a.f_cos()?], 1)?);
    }
    let y = Tensor::f_arange(k, (Kind::Int64, Device::Cpu))?
        .f_repeat_interleave_self_int(n, 0, None)?;
    Ok((Tensor::f_cat(&xs, 0)?, y))
}
