//! Training the spec's spiral example from Rust: module, loss, optimizer, model, run/testrun.

mod common;
use common::{linear, spirals};

use ktorch_core::model::{shared, Metric};
use ktorch_core::{Loss, Model, Module, Optimizer, Result, Value};
use tch::Tensor;

fn main() -> Result<()> {
    tch::manual_seed(0);
    let spec = Value::List(vec![
        "sequential".into(),
        linear(2, 100),
        "relu".into(),
        linear(100, 3),
    ]);
    let q = Module::from_value(&spec)?;
    let o = Optimizer::new(
        "sgd",
        q.parameters(),
        &[Value::Float(0.2), Value::Float(0.9)],
        &[],
    )?;
    let l = Loss::new("ce", &[], &[])?;
    let mut m = Model::new(shared(q), shared(l), shared(o));
    let metrics = [Metric::Loss, Metric::Accuracy];
    m.train_options()
        .batchsize(100)?
        .shuffle(true)?
        .metrics(&metrics)?;
    m.test_options().metrics(&metrics)?;
    let (x, y) = spirals(1000, 3)?;
    m.train.set_data(vec![x], Some(vec![y]))?;
    let (x, y) = spirals(300, 3)?;
    m.test.set_data(vec![x], Some(vec![y]))?;
    for epoch in 1..=20 {
        let r = m.run()?;
        let t = m.testrun()?;
        let get = |ms: &[(Metric, Option<Tensor>)], i: usize| {
            ms[i]
                .1
                .as_ref()
                .map_or(f64::NAN, |v| v.f_double_value(&[]).unwrap_or(f64::NAN))
        };
        if epoch % 5 == 0 {
            println!(
                "epoch {epoch:2}  loss {:.4}  accuracy {:5.1}%  test accuracy {:5.1}%",
                get(&r, 0),
                get(&r, 1),
                get(&t, 1)
            );
        }
    }
    Ok(())
}
