//! Data-parallel training from Rust alone: the spiral example over a gloo process group made
//! from torch's launch variables, one model trained by every process as one process would.
//!
//! ```text
//! torchrun --no-python --nproc_per_node 2 target/release/examples/ddp   # libtorch on LD_LIBRARY_PATH
//! ```
//!
//! Without `RANK` in the environment it trains in one process. Every process builds the same
//! model from the same seed and loads the same data; option `dist` splits each global batch of
//! 100 rows over the processes and sums the gradients before each step, so every process ends
//! with the same parameters (checked here against rank 0's).

mod common;
use common::{linear, spirals};

use std::time::Duration;

use ktorch_core::dist::{Group, ProcessGroup, ReduceOp};
use ktorch_core::model::{shared, Metric};
use ktorch_core::{Error, Loss, Model, Module, Optimizer, Result, Value};
use tch::Tensor;

fn main() -> Result<()> {
    // started by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set): a gloo group
    let group = match std::env::var_os("RANK") {
        Some(_) => {
            let pg = ProcessGroup::gloo_from_env(Duration::from_secs(60))?;
            Some(Group::new(pg))
        }
        None => None,
    };
    let (rank, size) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    tch::set_num_threads(1);
    tch::manual_seed(0); // the same model and data everywhere
    let spec = Value::List(vec![
        "sequential".into(),
        linear(2, 100),
        "relu".into(),
        linear(100, 3),
    ]);
    let q = shared(Module::from_value(&spec)?);
    let ps = ktorch_core::sync::lock(&q)?.parameters();
    let o = Optimizer::new("sgd", ps, &[Value::Float(0.2), Value::Float(0.9)], &[])?;
    let l = Loss::new("ce", &[], &[])?;
    let mut m = Model::new(q.clone(), shared(l), shared(o));
    let metrics = [Metric::Loss, Metric::Accuracy];
    m.train_options()
        .batchsize(100)?
        .shuffle(true)?
        .metrics(&metrics)?
        .dist(group.clone()); // the test stage uses the same group
    m.test_options().metrics(&metrics)?;
    let (x, y) = spirals(1000, 3)?;
    m.train.set_data(vec![x], Some(vec![y]))?;
    let (x, y) = spirals(300, 3)?;
    m.test.set_data(vec![x], Some(vec![y]))?;
    let value = |ms: &[(Metric, Option<Tensor>)], i: usize| {
        ms[i]
            .1
            .as_ref()
            .map_or(f64::NAN, |v| v.f_double_value(&[]).unwrap_or(f64::NAN))
    };
    for epoch in 1..=10 {
        let r = m.run()?; // the metrics of all the data, on every rank
        let t = m.testrun()?;
        if rank == 0 && (epoch % 5 == 0 || epoch == 1) {
            println!(
                "epoch {epoch:3}  loss {:.4}  accuracy {:5.1}%  test loss {:.4}  \
                 test accuracy {:5.1}%  ({size} process(es))",
                value(&r, 0),
                value(&r, 1),
                value(&t, 0),
                value(&t, 1)
            );
        }
    }
    if let Some(g) = &group {
        // every rank holds rank 0's parameters: the largest and smallest over the ranks agree
        for p in ktorch_core::sync::lock(&q)?.parameters() {
            let (hi, lo) = (p.f_detach_copy()?, p.f_neg()?);
            let pg = g.process_group();
            pg.allreduce_(&[&hi, &lo], ReduceOp::Max)?;
            if !hi.equal(&lo.f_neg()?) || !hi.equal(&p.f_detach()?) {
                return Err(Error::Invalid("the ranks' parameters differ".into()));
            }
        }
        if rank == 0 {
            println!("parameters equal on all {size} processes");
        }
    }
    Ok(())
}
