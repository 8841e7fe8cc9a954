//! A pass stopped between batches is finished by the next pass of its stage:
//! bitwise as a pass that never stopped (parameters, optimizer state, metrics),
//! unless something in between makes the saved place wrong; the stopped pass in
//! parts, put back on another model.

use ktorch_core::model::{Metric, Metrics, Phase, Tick};
use ktorch_core::nn::layers;
use ktorch_core::state::ModelState;
use ktorch_core::sync::shared;
use ktorch_core::{Error, Loss, Model, Module, Optimizer, Result, Value};
use tch::{Device, Kind, Tensor};

/// The tests share the process's generator: one at a time.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 96 rows of 3 features, 2 classes, without touching the process's generator.
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

const METRICS: &[Metric] = &[
    Metric::Loss,
    Metric::BatchLoss,
    Metric::Accuracy,
    Metric::Predict,
    Metric::Output,
    Metric::GradNorm,
];

/// A classifier (with dropout: the process's generator is drawn from every batch)
/// trained by `opt` (`"sgd"`: with momentum) in batches of 10 (the last one short),
/// shuffled each pass with `seed` (None: from the process's generator). The
/// same weights every time.
fn model(opt: &str, seed: Option<i64>, dropout: bool) -> Result<Model> {
    tch::manual_seed(3);
    let mut layers = vec![layers::linear(3, 8)?, layers::relu()?];
    if dropout {
        layers.push(layers::dropout(0.25)?);
    }
    layers.push(layers::linear(8, 2)?);
    let q = Module::sequential(layers)?;
    let kw = match opt {
        "sgd" => vec![("momentum".to_string(), Value::Float(0.9))],
        _ => vec![],
    };
    let o = Optimizer::new(opt, q.parameters(), &[Value::Float(0.05)], &kw)?;
    let mut m = Model::new(shared(q), shared(Loss::new("ce", &[], &[])?), shared(o));
    m.train_options()
        .batchsize(10)?
        .shuffle(true)?
        .shuffleseed(seed)?
        .metrics(METRICS)?;
    m.test_options().batchsize(7)?.metrics(&[
        Metric::Loss,
        Metric::BatchLoss,
        Metric::Accuracy,
        Metric::Predict,
        Metric::Output,
    ])?;
    let (x, y) = data();
    m.train
        .set_data(vec![x.shallow_clone()], Some(vec![y.shallow_clone()]))?;
    m.test.set_data(vec![x.sin()], Some(vec![y]))?;
    Ok(m)
}

/// A stop check true from its `k+1`-th call on: the pass stops after `k` batches.
fn after(k: i64) -> impl FnMut() -> bool {
    let mut n = 0;
    move || {
        n += 1;
        n > k
    }
}

/// The bits of every value of `t`, with its kind and shape.
fn bits(t: &Tensor) -> (Kind, Vec<i64>, Vec<u64>) {
    let flat = t.flatten(0, -1);
    let v = if t.is_floating_point() {
        Vec::<f64>::try_from(&flat.to_kind(Kind::Double))
            .expect("floats")
            .into_iter()
            .map(f64::to_bits)
            .collect()
    } else {
        Vec::<i64>::try_from(&flat.to_kind(Kind::Int64))
            .expect("ints")
            .into_iter()
            .map(|i| i as u64)
            .collect()
    };
    (t.kind(), t.size(), v)
}

fn same_metrics(a: &Metrics, b: &Metrics, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for ((ma, ta), (mb, tb)) in a.iter().zip(b) {
        assert_eq!(ma, mb, "{what}");
        match (ta, tb) {
            (None, None) => {}
            (Some(x), Some(y)) => assert_eq!(bits(x), bits(y), "{what}: {}", ma.name()),
            _ => panic!("{what}: {} present in one only", ma.name()),
        }
    }
}

/// Parameters, buffers, optimizer state, options and stage positions, as JSON:
/// equal strings, equal bits.
fn state(m: &Model) -> String {
    serde_json::to_string(&ModelState::of(m, false).expect("state")).expect("json")
}

const CASES: &[(&str, Option<i64>)] = &[
    ("sgd", Some(5)),
    ("sgd", None),
    ("adam", Some(6)),
    ("adam", None),
];

#[test]
fn a_stopped_run_resumed_is_bitwise_an_uninterrupted_run() -> Result<()> {
    let _one = one_at_a_time();
    for &(opt, seed) in CASES {
        for k in [0, 1, 4, 9] {
            let what = format!("{opt}, seed {seed:?}, stopped after {k}");
            let mut a = model(opt, seed, true)?;
            let mut b = model(opt, seed, true)?;
            tch::manual_seed(11);
            let want = [a.run()?, a.run()?];
            tch::manual_seed(11);
            let e = b
                .pass_with(Phase::Train, &mut after(k))
                .expect_err("stopped");
            assert!(matches!(e, Error::Interrupted), "{what}: {e:?}");
            // full size after the stop; the stopped pass kept
            assert_eq!(b.train.size(), 96, "{what}");
            let p = b.train.paused().expect("paused");
            assert_eq!((p.done(), p.next()), (k, k), "{what}");
            assert_eq!(b.train.epochs(), 0, "{what}");
            let got = [b.run()?, b.run()?];
            assert!(b.train.paused().is_none(), "{what}");
            same_metrics(&want[0], &got[0], &what);
            same_metrics(&want[1], &got[1], &what);
            assert_eq!(state(&a), state(&b), "{what}");
            assert_eq!((a.train.epochs(), b.train.epochs()), (2, 2), "{what}");
        }
    }
    Ok(())
}

#[test]
fn a_run_stopped_twice_and_in_two_epochs_resumes_bitwise() -> Result<()> {
    let _one = one_at_a_time();
    for &(opt, seed) in CASES {
        let what = format!("{opt}, seed {seed:?}");
        let mut a = model(opt, seed, true)?;
        let mut b = model(opt, seed, true)?;
        tch::manual_seed(12);
        let want = [a.run()?, a.run()?];
        tch::manual_seed(12);
        assert!(b.pass_with(Phase::Train, &mut after(2)).is_err());
        assert!(b.pass_with(Phase::Train, &mut after(5)).is_err());
        assert_eq!(b.train.paused().expect("paused").done(), 7, "{what}");
        let first = b.run()?;
        assert!(b.pass_with(Phase::Train, &mut after(3)).is_err());
        let second = b.run()?;
        same_metrics(&want[0], &first, &what);
        same_metrics(&want[1], &second, &what);
        assert_eq!(state(&a), state(&b), "{what}");
        assert_eq!(b.train.epochs(), 2, "{what}");
    }
    Ok(())
}

#[test]
fn a_stopped_testrun_resumes() -> Result<()> {
    let _one = one_at_a_time();
    let mut a = model("adam", Some(1), true)?;
    let want = a.testrun()?;
    assert_eq!(a.test.epochs(), 1);
    for k in [0, 3, 13] {
        let mut b = model("adam", Some(1), true)?;
        let e = b
            .pass_with(Phase::Test, &mut after(k))
            .expect_err("stopped");
        assert!(matches!(e, Error::Interrupted));
        assert_eq!(b.test.size(), 96);
        assert!(b.train.paused().is_none());
        assert_eq!(b.test.paused().expect("paused").done(), k);
        assert_eq!(b.test.epochs(), 0);
        // the batches not done run, and the metrics are the whole pass's
        let mut n = 0;
        let got = b.pass_with(Phase::Test, &mut || {
            n += 1;
            false
        })?;
        assert_eq!(n, 14 - k);
        same_metrics(&want, &got, &format!("testrun stopped after {k}"));
        assert_eq!(b.test.epochs(), 1);
    }
    // a pass of the other stage leaves a stopped one alone
    let mut b = model("adam", Some(1), true)?;
    assert!(b.pass_with(Phase::Test, &mut after(5)).is_err());
    b.run()?;
    assert_eq!(b.test.paused().expect("paused").done(), 5);
    assert!(b.train.paused().is_none());
    b.testrun()?;
    assert!(b.test.paused().is_none());
    Ok(())
}

/// Calls to the stop check of the next training pass, one per batch it runs.
fn batches_run(m: &mut Model) -> Result<i64> {
    let mut n = 0;
    m.pass_with(Phase::Train, &mut || {
        n += 1;
        false
    })?;
    Ok(n)
}

#[test]
fn what_changes_the_data_or_options_starts_afresh() -> Result<()> {
    let _one = one_at_a_time();
    type Change = fn(&mut Model) -> Result<()>;
    let changes: [(&str, Change); 9] = [
        ("nothing", |_| Ok(())),
        ("set_data", |m| {
            let (x, y) = data();
            m.train.set_data(vec![x], Some(vec![y])).map(|_| ())
        }),
        ("batch", |m| m.train.batch().map(|_| ())),
        ("init", |m| m.train.init().map(|_| ())),
        ("shuffle", |m| m.train.shuffle()),
        ("unshuffle", |m| m.train.unshuffle()),
        ("restore", |m| {
            m.train.restore();
            Ok(())
        }),
        ("options", |m| {
            m.train_options().metrics(&[Metric::Loss]).map(|_| ())
        }),
        ("options changed and back", |m| {
            m.train_options().clipvalue(1.0)?;
            m.train.opts.clipvalue = None;
            Ok(())
        }),
    ];
    for (name, change) in changes {
        let mut m = model("sgd", Some(2), false)?;
        assert!(m.pass_with(Phase::Train, &mut after(4)).is_err());
        change(&mut m)?;
        let kept = name.starts_with("nothing") || name.ends_with("and back");
        assert_eq!(m.train.paused().is_some(), kept, "{name}");
        assert_eq!(batches_run(&mut m)?, if kept { 6 } else { 10 }, "{name}");
        assert_eq!(m.train.epochs(), 1, "{name}");
    }
    // an explicit batch after a stop starts from the first batch of the stopped order
    let mut m = model("sgd", Some(2), false)?;
    assert!(m.pass_with(Phase::Train, &mut after(4)).is_err());
    let order = m.train.order().expect("shuffled").shallow_clone();
    assert!(m.train.batch()?);
    let (x, _) = data();
    let first = x.index_select(0, &order.narrow(0, 0, 10));
    assert!(m.train.inputs().expect("inputs")[0].equal(&first));
    Ok(())
}

#[test]
fn another_error_in_a_resumed_pass_keeps_nothing() -> Result<()> {
    let _one = one_at_a_time();
    let mut m = model("adam", None, false)?;
    assert!(m.pass_with(Phase::Train, &mut after(3)).is_err());
    let mut seen = vec![];
    let mut fail = |t: &Tick| -> Result<()> {
        seen.push((t.batch, t.batches));
        if t.batch == 6 {
            Err(Error::Callback("enough".into()))
        } else {
            Ok(())
        }
    };
    let e = m
        .pass_watched(Phase::Train, &mut || false, Some(&mut fail))
        .expect_err("watcher");
    assert_eq!(e.to_string(), "enough");
    // the resumed pass counted on from the batches done before the stop
    assert_eq!(seen, vec![(4, 10), (5, 10), (6, 10)]);
    assert!(m.train.paused().is_none());
    assert_eq!(m.train.size(), 96);
    assert_eq!(m.train.epochs(), 0);
    assert_eq!(batches_run(&mut m)?, 10);
    assert_eq!(m.train.epochs(), 1);
    // no data: an error before the pass, the stopped pass kept
    let mut m = model("adam", None, false)?;
    assert!(m.pass_with(Phase::Test, &mut after(3)).is_err());
    m.train = ktorch_core::model::Stage::new(Phase::Train);
    assert!(m.run().is_err());
    assert!(m.test.paused().is_some());
    Ok(())
}

#[test]
fn epochs_count_passes_completed() -> Result<()> {
    let _one = one_at_a_time();
    let mut m = model("sgd", Some(3), false)?;
    assert_eq!(m.train.epochs(), 0);
    m.run()?;
    m.run()?;
    assert_eq!(m.train.epochs(), 2);
    assert!(m.pass_with(Phase::Train, &mut after(2)).is_err());
    assert!(m.pass_with(Phase::Train, &mut after(2)).is_err());
    assert_eq!(m.train.epochs(), 2);
    m.run()?;
    assert_eq!(m.train.epochs(), 3);
    m.train.set_epochs(10);
    m.run()?;
    assert_eq!((m.train.epochs(), m.test.epochs()), (11, 0));
    Ok(())
}

#[test]
fn a_stopped_pass_in_parts_resumes_on_another_model() -> Result<()> {
    let _one = one_at_a_time();
    for (opt, seed) in [("sgd", Some(4)), ("adam", Some(8)), ("adam", None)] {
        let what = format!("{opt}, seed {seed:?}");
        let mut a = model(opt, seed, false)?;
        let mut b = model(opt, seed, false)?;
        tch::manual_seed(13);
        let want = a.run()?;
        tch::manual_seed(13);
        assert!(b.pass_with(Phase::Train, &mut after(6)).is_err());
        let parts = b.train.paused_parts().expect("parts");
        assert_eq!(parts.next, 6);
        // taken off and put back on the same model (data defined: checked now)
        b.train.set_paused_parts(None)?;
        assert!(b.train.paused().is_none());
        b.train.set_paused_parts(Some(parts))?;
        // a model built from b's state (without data, through JSON), data defined after:
        // the row order and the stopped pass wait for it
        let json = serde_json::to_string(&ModelState::of(&b, false)?).expect("json");
        let s: ModelState = serde_json::from_str(&json).expect("state");
        let mut c = s.build()?;
        assert!(!c.train.has_data());
        let p = c.train.paused().expect("paused before data");
        assert_eq!((p.next(), p.done()), (6, 6));
        let (x, y) = data();
        c.train.set_data(vec![x], Some(vec![y]))?;
        assert!(c.train.paused().is_some());
        same_metrics(&want, &b.run()?, &format!("{what}: put back"));
        same_metrics(&want, &c.run()?, &format!("{what}: another model"));
        assert_eq!(state(&a), state(&b), "{what}");
        assert_eq!(state(&a), state(&c), "{what}");
    }
    Ok(())
}

#[test]
fn a_stopped_pass_put_back_wrong_is_refused() -> Result<()> {
    let _one = one_at_a_time();
    let mut b = model("sgd", Some(4), false)?;
    assert!(b.pass_with(Phase::Train, &mut after(3)).is_err());
    let parts = || b.train.paused_parts().expect("parts");
    let invalid = |r: Result<()>, want: &str| {
        let e = r.expect_err(want);
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} (want {want})");
    };
    let mut m = model("sgd", Some(4), false)?;
    let mut p = parts();
    p.next = 10;
    invalid(m.train.set_paused_parts(Some(p)), "resumes at batch 10");
    let mut p = parts();
    p.next = 2;
    invalid(m.train.set_paused_parts(Some(p)), "metrics of 3 batches");
    let mut p = parts();
    p.tensors.push((
        "other".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    invalid(m.train.set_paused_parts(Some(p)), "unknown tensor");
    let mut p = parts();
    p.tensors.retain(|(k, _)| k != "predict.1");
    invalid(m.train.set_paused_parts(Some(p)), "without gaps");
    let mut p = parts();
    p.counts.retain(|(k, _)| k != "rows");
    invalid(m.train.set_paused_parts(Some(p)), "rows");
    m.train_options().batchsize(50)?;
    invalid(
        m.train.set_paused_parts(Some(parts())),
        "resumes at batch 3",
    );
    m.train_options().batchsize(10)?.metrics(&[Metric::Loss])?;
    invalid(
        m.train.set_paused_parts(Some(parts())),
        "does not fit the metrics",
    );
    assert!(m.train.paused().is_none());
    // data of other rows than the stopped pass ran over
    m.train_options().metrics(METRICS)?;
    let (x, y) = data();
    m.train
        .set_data(vec![x.narrow(0, 0, 90)], Some(vec![y.narrow(0, 0, 90)]))?;
    invalid(m.train.set_paused_parts(Some(parts())), "ran over 96 rows");
    // without data: waits for data of its rows, dropped by other data
    let bare = |b: &Model| -> Result<Model> {
        let q = Module::sequential([layers::linear(3, 2)?])?;
        let o = Optimizer::new("sgd", q.parameters(), &[Value::Float(0.1)], &[])?;
        let mut m = Model::new(shared(q), shared(Loss::new("ce", &[], &[])?), shared(o));
        m.train.opts = b.train.opts.clone();
        Ok(m)
    };
    let mut m = bare(&b)?;
    m.train.set_paused_parts(Some(parts()))?;
    assert!(m.train.paused().is_some());
    m.train
        .set_data(vec![x.narrow(0, 0, 90)], Some(vec![y.narrow(0, 0, 90)]))?;
    assert!(m.train.paused().is_none());
    let mut m = bare(&b)?;
    m.train.set_paused_parts(Some(parts()))?;
    m.train.set_data(vec![x], Some(vec![y]))?;
    assert!(m.train.paused().is_some());
    // a stopped pass put back before options that then change: a fresh pass
    m.train_options().clipvalue(1.0)?;
    assert_eq!(batches_run(&mut m)?, 10);
    Ok(())
}

/// A recurrent model over a sequence in consecutive chunks: option hidden carries
/// the state from batch to batch.
fn recurrent(opt: &str) -> Result<Model> {
    tch::manual_seed(4);
    let q = layers::lstm(3, 4)?;
    let o = Optimizer::new(opt, q.parameters(), &[Value::Float(0.01)], &[])?;
    let mut m = Model::new(shared(q), shared(Loss::new("mse", &[], &[])?), shared(o));
    m.train_options().batchsize(5)?.hidden(true)?.metrics(&[
        Metric::Loss,
        Metric::BatchLoss,
        Metric::Output,
        Metric::Hidden,
        Metric::HiddenCell,
    ])?;
    let x = Tensor::arange(120, (Kind::Float, Device::Cpu))
        .f_mul_scalar(0.3)?
        .sin()
        .reshape([20, 2, 3]);
    let y = x.narrow(2, 0, 1).cos().repeat([1, 1, 4]);
    m.train.set_data(vec![x], Some(vec![y]))?;
    Ok(m)
}

#[test]
fn a_recurrent_pass_resumes_with_its_hidden_state() -> Result<()> {
    let _one = one_at_a_time();
    for opt in ["sgd", "adam"] {
        for k in [1, 2, 3] {
            let mut a = recurrent(opt)?;
            let mut b = recurrent(opt)?;
            let want = [a.run()?, a.run()?];
            assert!(b.pass_with(Phase::Train, &mut after(k)).is_err());
            let carry = b.train.paused_parts().expect("parts").tensors;
            assert!(carry.iter().any(|(n, _)| n == "carry.0"), "{carry:?}");
            let got = [b.run()?, b.run()?];
            let what = format!("{opt}, stopped after {k}");
            same_metrics(&want[0], &got[0], &what);
            same_metrics(&want[1], &got[1], &what);
            assert_eq!(state(&a), state(&b), "{what}");
        }
    }
    Ok(())
}
