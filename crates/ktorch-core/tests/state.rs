//! States and checkpoint files through the core alone: every optimizer's model
//! saved, loaded and trained on bitwise as the original; states through serde;
//! damaged files refused.

use ktorch_core::model::Metric;
use ktorch_core::nn::layers;
use ktorch_core::state::{ModelState, ModuleState, OptState};
use ktorch_core::sync::{lock, shared};
use ktorch_core::{Loss, Model, Module, Optimizer, Result, Value};
use tch::{Device, Kind, Tensor};

/// The same data every time, without touching the process's generator.
fn data() -> (Tensor, Tensor) {
    let x = Tensor::arange(288, (Kind::Float, Device::Cpu))
        .f_mul_scalar(0.7)
        .expect("mul")
        .sin()
        .reshape([96, 3]);
    let y = x
        .sum_dim_intlist(1, false, Kind::Float)
        .gt(0.0)
        .to_kind(Kind::Int64);
    (x, y)
}

fn model(opt: &str, seed: Option<i64>) -> Result<Model> {
    tch::manual_seed(3);
    let q = Module::sequential([
        layers::linear(3, 8)?,
        layers::batchnorm1d(8)?,
        layers::relu()?,
        layers::linear(8, 2)?,
    ])?;
    let lr = if opt == "lbfgs" { 0.5 } else { 0.01 };
    let o = Optimizer::new(opt, q.parameters(), &[Value::Float(lr)], &[])?;
    let mut m = Model::new(shared(q), shared(Loss::new("ce", &[], &[])?), shared(o));
    m.train_options()
        .batchsize(32)?
        .shuffle(true)?
        .shuffleseed(seed)?
        .metrics(&[Metric::Loss, Metric::Accuracy])?;
    let (x, y) = data();
    m.train.set_data(vec![x], Some(vec![y]))?;
    Ok(m)
}

fn bits(m: &mut Model) -> Result<Vec<u64>> {
    let r = m.run()?;
    Ok(r.iter()
        .map(|(_, t)| t.as_ref().map_or(0, |t| t.double_value(&[]).to_bits()))
        .collect())
}

fn params_equal(a: &Model, b: &Model) -> Result<()> {
    let (qa, qb) = (lock(a.module())?, lock(b.module())?);
    for ((k, x), (_, y)) in qa.named_parameters().iter().zip(qb.named_parameters()) {
        assert!(x.equal(&y), "{k}");
    }
    for ((k, x), (_, y)) in qa.named_buffers().iter().zip(qb.named_buffers()) {
        assert!(x.equal(&y), "{k}");
    }
    Ok(())
}

/// The tests share the process's generator: one at a time.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ktorch-state-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[test]
fn every_optimizer_resumes_bitwise_from_a_file_and_from_json() -> Result<()> {
    let _one = one_at_a_time();
    for (opt, seed) in [
        ("sgd", Some(1)),
        ("adam", None),
        ("adamw", Some(2)),
        ("adagrad", Some(3)),
        ("rmsprop", None),
        ("lamb", Some(4)),
        ("lbfgs", Some(5)),
    ] {
        let mut m = model(opt, seed)?;
        for _ in 0..2 {
            m.run()?;
        }
        let path = dir().join(format!("{opt}.kt"));
        m.save(&path)?;
        let json = serde_json::to_string(&ModelState::of(&m, true)?).expect("serialise");
        // m trains on first: an unseeded shuffle draws from the process's generator,
        // which the load then puts back where it was at the save
        let want: Vec<Vec<u64>> = (0..2).map(|_| bits(&mut m)).collect::<Result<_>>()?;
        // building a module draws its initial weights from the process's generator:
        // the JSON state's model first, then the file's, whose load puts it back last
        let s: ModelState = serde_json::from_str(&json).expect("deserialise");
        let mut j = s.build()?; // the data came with the state
        let mut f = Model::load(&path)?;
        let (x, y) = data();
        f.train.set_data(vec![x], Some(vec![y]))?;
        for (epoch, w) in want.iter().enumerate() {
            assert_eq!(&bits(&mut f)?, w, "{opt} file, epoch {epoch}");
            if seed.is_some() {
                // the JSON state has no process generator: seeded shuffles only
                assert_eq!(&bits(&mut j)?, w, "{opt} json, epoch {epoch}");
            }
        }
        params_equal(&m, &f)?;
        if seed.is_some() {
            params_equal(&m, &j)?;
        }
    }
    Ok(())
}

#[test]
fn optimizer_state_rebuilds_over_a_rebuilt_module() -> Result<()> {
    let _one = one_at_a_time();
    let mut m = model("adam", Some(1))?;
    m.run()?;
    let q = ModuleState::of(&*lock(m.module())?)?.build()?;
    let s = OptState::of(&*lock(m.optimizer())?, &[])?;
    assert!(s.groups[0].parms.iter().all(|p| p.name.is_none()));
    // unnamed: by position, every shape checked
    let o = s.build(&q.named_parameters())?;
    assert_eq!(o.param_states()?[0][0].0, 3);
    let short = &q.named_parameters()[..2];
    let e = s.build(short).expect_err("too few").to_string();
    assert!(e.contains("has 6 parameter(s), given 2"), "{e}");
    Ok(())
}

#[test]
fn damaged_files_are_refused() -> Result<()> {
    let _one = one_at_a_time();
    let m = model("sgd", Some(1))?;
    let path = dir().join("good.kt");
    m.save(&path)?;
    let raw = std::fs::read(&path).expect("read");
    // the last byte is tensor data: flipping it changes no structure
    let mut flip = raw.clone();
    *flip.last_mut().expect("bytes") ^= 1;
    let bad = dir().join("flip.kt");
    std::fs::write(&bad, &flip).expect("write");
    let e = Model::load(&bad).expect_err("flipped").to_string();
    assert!(e.contains("does not match its checksum"), "{e}");
    std::fs::write(&bad, &raw[..raw.len() - 7]).expect("write");
    let e = Model::load(&bad).expect_err("truncated").to_string();
    assert!(
        e.contains("not a ktorch checkpoint, or a damaged one"),
        "{e}"
    );
    let e = Module::load(&path).expect_err("a model").to_string();
    assert!(e.contains("the file holds a model, not a module"), "{e}");
    Ok(())
}
