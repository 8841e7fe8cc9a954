//! Checkpointing from Rust: train, save the model, load it as a new one, give it the
//! same data and carry on; the loaded model's epochs equal the original's, bit for bit.
//! `cargo run --release -p ktorch-core --example checkpoint` (libtorch on LD_LIBRARY_PATH).

use ktorch_core::model::{shared, Metric};
use ktorch_core::nn::layers;
use ktorch_core::state::ModelState;
use ktorch_core::{Loss, Model, Module, Optimizer, Result, Value};
use tch::{Device, Kind, Tensor};

fn loss_of(m: &mut Model) -> Result<f64> {
    let r = m.run()?;
    Ok(r[0].1.as_ref().map_or(f64::NAN, |t| t.double_value(&[])))
}

fn main() -> Result<()> {
    tch::manual_seed(0);
    let x = Tensor::f_randn([600, 2], (Kind::Float, Device::Cpu))?;
    let y = x
        .f_sum_dim_intlist(1, false, Kind::Float)?
        .f_gt(0.0)?
        .f_to_kind(Kind::Int64)?;
    let q = Module::sequential([
        layers::linear(2, 16)?,
        layers::relu()?,
        layers::linear(16, 2)?,
    ])?;
    let o = Optimizer::new("adam", q.parameters(), &[Value::Float(0.01)], &[])?;
    let mut m = Model::new(shared(q), shared(Loss::new("ce", &[], &[])?), shared(o));
    // a seeded shuffle: each model draws its own permutations (an unseeded one draws from
    // libtorch's CPU generator, which the file holds too and load puts back)
    m.train_options()
        .batchsize(50)?
        .shuffle(true)?
        .shuffleseed(Some(7))?
        .metrics(&[Metric::Loss])?;
    m.train
        .set_data(vec![x.shallow_clone()], Some(vec![y.shallow_clone()]))?;
    for epoch in 1..=3 {
        println!("epoch {epoch}: loss {:.6}", loss_of(&mut m)?);
    }

    let path = std::env::temp_dir().join("ktorch-example.kt");
    m.save(&path)?;
    let mut resumed = Model::load(&path)?;
    // the data is not in the file: the same data given again keeps the saved row order
    resumed
        .train
        .set_data(vec![x.shallow_clone()], Some(vec![y.shallow_clone()]))?;
    for epoch in 4..=5 {
        let (a, b) = (loss_of(&mut m)?, loss_of(&mut resumed)?);
        println!("epoch {epoch}: loss {a:.6} (original), {b:.6} (loaded)");
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "the loaded model trains on as the original"
        );
    }
    std::fs::remove_file(&path).ok();

    // the same state as plain data: serde serialises it (JSON here), and it builds
    // an equal model (the data given again, as after a load)
    let json = serde_json::to_string(&ModelState::of(&m, false)?).expect("serialise");
    let s: ModelState = serde_json::from_str(&json).expect("deserialise");
    let mut copy = s.build()?;
    copy.train.set_data(vec![x], Some(vec![y]))?;
    let (a, b) = (loss_of(&mut m)?, loss_of(&mut copy)?);
    println!(
        "from a {} byte JSON state: loss {a:.6} (original), {b:.6} (copy)",
        json.len()
    );
    assert_eq!(a.to_bits(), b.to_bits());
    Ok(())
}
