//! Stages, the run loop and metrics through the core alone (no Python).

use ktorch_core::model::{Metric, Phase, Stage};
use ktorch_core::sync::{lock, shared};
use ktorch_core::{Loss, Model, Module, Optimizer, Result, Value};
use tch::{Device, Kind, Tensor};

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.to_kind(Kind::Int64).flatten(0, -1)).expect("ints")
}

fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).expect("floats")
}

fn rows(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

/// A stage with rows 0..n as its one input and 10*(0..n) as its target.
fn stage(n: i64, batchsize: i64) -> Stage {
    let mut s = Stage::new(Phase::Train);
    s.opts.batchsize = batchsize;
    s.set_data(vec![rows(n)], Some(vec![rows(n) * 10]))
        .expect("data");
    s
}

fn batches(s: &mut Stage) -> Vec<Vec<i64>> {
    let mut out = vec![];
    while s.batch().expect("batch") {
        let x = ints(&s.inputs().expect("inputs")[0]);
        let y = ints(&s.targets().expect("targets")[0]);
        assert_eq!(y, x.iter().map(|v| v * 10).collect::<Vec<_>>());
        out.push(x);
    }
    out
}

#[test]
fn stage_batches_then_restores() {
    let mut s = stage(10, 4);
    assert_eq!(s.batches(), 3);
    assert_eq!(s.init().expect("init"), 3);
    assert_eq!(
        batches(&mut s),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert_eq!(s.size(), 10);
    s.opts.droplast = true;
    assert_eq!(s.init().expect("init"), 2);
    assert_eq!(batches(&mut s).len(), 2);
}

#[test]
fn stage_tasks_partition_the_batches() {
    let mut seen = vec![];
    for task in 0..3 {
        let mut s = stage(10, 2);
        s.opts.task = task;
        s.opts.tasks = 3;
        let b = batches(&mut s);
        assert_eq!(b.len() as i64, s.batches());
        seen.extend(b.into_iter().flatten());
    }
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn stage_shuffle_keeps_rows_together_and_unshuffles() {
    let mut s = stage(50, 50);
    s.shuffle().expect("shuffle");
    let x = ints(&s.inputs().expect("x")[0]);
    let y = ints(&s.targets().expect("y")[0]);
    assert_ne!(x, (0..50).collect::<Vec<_>>());
    assert_eq!(y, x.iter().map(|v| v * 10).collect::<Vec<_>>());
    assert_eq!(ints(s.order().expect("order")), x);
    s.unshuffle().expect("unshuffle");
    assert_eq!(
        ints(&s.inputs().expect("x")[0]),
        (0..50).collect::<Vec<_>>()
    );
}

#[test]
fn stage_seeded_shuffles_repeat() {
    let draw = || {
        let mut s = stage(30, 30);
        s.opts.shuffleseed = Some(7);
        s.shuffle().expect("shuffle");
        s.shuffle().expect("shuffle");
        ints(&s.inputs().expect("x")[0])
    };
    assert_eq!(draw(), draw());
}

fn linear_model(lr: f64) -> Result<Model> {
    let spec = Value::Tuple(vec!["linear".into(), Value::Int(3), Value::Int(1)]);
    let q = Module::from_value(&spec)?;
    let o = Optimizer::new("sgd", q.parameters(), &[Value::Float(lr)], &[])?;
    let l = Loss::new("mse", &[], &[])?;
    Ok(Model::new(shared(q), shared(l), shared(o)))
}

#[test]
fn run_is_gradient_descent_on_each_batch() -> Result<()> {
    tch::manual_seed(1);
    let mut m = linear_model(0.1)?;
    let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([8, 1], (Kind::Float, Device::Cpu));
    m.train.opts.batchsize = 4;
    m.train.opts.metrics = vec![Metric::Loss, Metric::BatchLoss];
    m.train.set_data(vec![x.copy()], Some(vec![y.copy()]))?;
    // the same two steps by hand
    let (mut w, mut b) = {
        let q = lock(m.module())?;
        (q.param("weight")?.copy(), q.param("bias")?.copy())
    };
    let mut losses = vec![];
    for i in 0..2 {
        let (xb, yb) = (x.narrow(0, 4 * i, 4), y.narrow(0, 4 * i, 4));
        let wg = w.detach().set_requires_grad(true);
        let bg = b.detach().set_requires_grad(true);
        let loss = (xb.matmul(&wg.tr()) + &bg - yb).square().mean(Kind::Float);
        loss.backward();
        losses.push(loss.double_value(&[]));
        w = wg.detach() - wg.grad() * 0.1;
        b = bg.detach() - bg.grad() * 0.1;
    }
    let r = m.run()?;
    assert_eq!(r[0].0, Metric::Loss);
    let got = floats(r[1].1.as_ref().expect("batchloss"));
    for (a, e) in got.iter().zip(&losses) {
        assert!((a - e).abs() < 1e-6, "{got:?} vs {losses:?}");
    }
    let mean = floats(r[0].1.as_ref().expect("loss"))[0];
    assert!((mean - (losses[0] + losses[1]) / 2.0).abs() < 1e-6);
    let q = lock(m.module())?;
    let dw = (q.param("weight")? - &w).abs().max().double_value(&[]);
    let db = (q.param("bias")? - &b).abs().max().double_value(&[]);
    assert!(dw < 1e-6 && db < 1e-6);
    Ok(())
}

#[test]
fn testrun_metrics_come_back_in_the_original_order() -> Result<()> {
    tch::manual_seed(2);
    let mut m = linear_model(0.0)?;
    let x = Tensor::randn([20, 3], (Kind::Float, Device::Cpu));
    m.train.opts.batchsize = 6;
    m.train.opts.shuffle = true;
    m.train.opts.metrics = vec![Metric::Output];
    m.train
        .set_data(vec![x.copy()], Some(vec![x.narrow(1, 0, 1)]))?;
    let r = m.run()?;
    let out = r[0].1.as_ref().expect("output").copy();
    // lr 0: the module is unchanged, so the outputs are the module's on x in order
    let want = lock(m.module())?.forward(&[x])?.remove(0);
    let diff = (out - want).abs().max().double_value(&[]);
    assert!(diff < 1e-6);
    // accuracy and predict on a classifier's test stage
    m.test.opts.metrics = vec![Metric::Accuracy, Metric::Predict];
    let xt = Tensor::randn([9, 3], (Kind::Float, Device::Cpu));
    m.test.set_data(
        vec![xt],
        Some(vec![Tensor::zeros([9], (Kind::Int64, Device::Cpu))]),
    )?;
    let t = m.testrun()?;
    // one output column: every prediction is class 0, so accuracy is 100
    assert_eq!(floats(t[0].1.as_ref().expect("accuracy")), vec![100.0]);
    assert_eq!(ints(t[1].1.as_ref().expect("predict")), vec![0; 9]);
    Ok(())
}

#[test]
fn run_without_data_is_an_error_and_interrupts_restore() -> Result<()> {
    let mut m = linear_model(0.1)?;
    let e = m.run().expect_err("no data");
    assert!(matches!(e, ktorch_core::Error::Invalid(_)), "{e:?}");
    assert_eq!(e.to_string(), "no training data defined");
    assert_eq!(e.named("run").to_string(), "run: no training data defined");
    m.train.opts.batchsize = 2;
    m.train.set_data(
        vec![Tensor::ones([10, 3], (Kind::Float, Device::Cpu))],
        Some(vec![Tensor::ones([10, 1], (Kind::Float, Device::Cpu))]),
    )?;
    let mut n = 0;
    let e = m
        .pass_with(Phase::Train, &mut || {
            n += 1;
            n > 2
        })
        .expect_err("interrupted");
    assert!(matches!(e, ktorch_core::Error::Interrupted));
    assert_eq!(m.train.size(), 10);
    Ok(())
}

#[test]
fn a_watched_pass_reports_each_batch_and_can_stop() -> Result<()> {
    tch::manual_seed(2);
    let mut m = linear_model(0.05)?;
    m.train_options().batchsize(3)?;
    m.train.set_data(
        vec![Tensor::randn([10, 3], (Kind::Float, Device::Cpu))],
        Some(vec![Tensor::randn([10, 1], (Kind::Float, Device::Cpu))]),
    )?;
    let mut seen = vec![];
    let mut watch = |t: &ktorch_core::model::Tick| -> Result<()> {
        seen.push((t.batch, t.batches, t.loss()));
        Ok(())
    };
    let r = m.pass_watched(Phase::Train, &mut || false, Some(&mut watch))?;
    assert_eq!(
        seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![(1, 4), (2, 4), (3, 4), (4, 4)]
    );
    // the running loss after the last batch is the pass's loss
    let loss = floats(r[0].1.as_ref().expect("loss"))[0];
    let last = seen[3].2.expect("running loss");
    assert!((last - loss).abs() < 1e-6, "{last} vs {loss}");
    // a watcher's error ends the pass, data restored to full size
    let mut fail = |t: &ktorch_core::model::Tick| -> Result<()> {
        if t.batch == 2 {
            Err(ktorch_core::Error::Callback("enough".into()))
        } else {
            Ok(())
        }
    };
    let e = m
        .pass_watched(Phase::Train, &mut || false, Some(&mut fail))
        .expect_err("stopped");
    assert_eq!(e.to_string(), "enough");
    assert_eq!(m.train.size(), 10);
    Ok(())
}
