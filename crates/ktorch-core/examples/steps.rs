//! A training loop written by hand with the explicit steps: batches of the
//! model's data, gradients reset, forward, loss, backward, clipping, an
//! optimizer step; then an evaluation in eval mode.
//!
//! `cargo run --release -p ktorch-core --example steps` (libtorch on `LD_LIBRARY_PATH`).

use ktorch_core::autograd::{backward, Mode};
use ktorch_core::clip::clip_norm;
use ktorch_core::model::Fwd;
use ktorch_core::sync::shared;
use ktorch_core::{Loss, Model, Module, Optimizer, Params, Result, Value};
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    tch::manual_seed(0);
    // a regression: y = 3 x0 - 2 x1 + 1 + noise
    let x = Tensor::f_randn([1000, 2], (Kind::Float, Device::Cpu))?;
    let w = Tensor::from_slice(&[3.0f32, -2.0]).view([2, 1]);
    let y = x.f_matmul(&w)? + 1.0 + Tensor::f_randn([1000, 1], (Kind::Float, Device::Cpu))? * 0.1;

    let spec = Value::Tuple(vec!["linear".into(), Value::Int(2), Value::Int(1)]);
    let q = Module::from_value(&spec)?;
    let o = Optimizer::new("adam", q.parameters(), &[Value::Float(0.05)], &[])?;
    let l = Loss::new("mse", &[], &[])?;
    let mut m = Model::new(shared(q), shared(l), shared(o));
    m.train_options().batchsize(100)?.shuffle(true)?;
    m.train
        .set_data(vec![x.shallow_clone()], Some(vec![y.shallow_clone()]))?;

    for epoch in 1..=20 {
        let batches = m.train.init()?; // restores, shuffles
        let mut total = 0.0;
        while m.train.batch()? {
            m.zerograd(true)?;
            let out = m.forward(None, Fwd::Grad)?;
            let target = m.train.targets().unwrap_or_default();
            let loss = m.loss(&out, &target)?;
            backward(&[loss.shallow_clone()], None, Mode::Free)?;
            let norm = clip_norm(&m.parameters()?, 10.0, 2.0)?;
            m.step()?;
            total += loss.f_double_value(&[])?;
            if !norm.f_double_value(&[])?.is_finite() {
                eprintln!("non-finite gradient norm in epoch {epoch}");
            }
        }
        if epoch % 5 == 0 {
            println!("epoch {epoch:2}  mean loss {:.5}", total / batches as f64);
        }
    }
    let fit = m.forward(Some(&[x]), Fwd::Eval)?.remove(0);
    let mse = (fit - y)
        .f_square()?
        .f_mean(Kind::Float)?
        .f_double_value(&[])?;
    println!("final mse {mse:.5} (noise variance 0.01)");
    Ok(())
}
