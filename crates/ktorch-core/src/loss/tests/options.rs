//! Settings by position and keyword, defaults, conversions and error messages.

use super::*;

#[test]
fn every_loss_has_settings_and_defaults() {
    for name in LOSS_TYPES {
        let l = Loss::new(name, &[], &[]).expect(name);
        assert_eq!(l.kind(), *name);
        let names: Vec<String> = l
            .options(true)
            .expect("options")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, settings::names(name).expect("names"), "{name}");
        assert!(l.options(false).expect("options").is_empty(), "{name}");
    }
    assert_eq!(LOSS_TYPES.len(), 21);
}

#[test]
fn reduction_by_position_or_keyword() {
    let l = loss("ce", vec![s("sum")]);
    assert_eq!(l.reduce(), Some(Reduce::Sum));
    let l = loss("ce", vec![Value::Null, (-1).into(), 0.1.into(), s("none")]);
    assert_eq!(l.reduce(), Some(Reduce::None));
    let o = l.options(false).expect("options");
    assert_eq!(
        o,
        vec![
            ("ignore".into(), Value::Int(-1)),
            ("smoothing".into(), Value::Float(0.1)),
            ("reduce".into(), s("none"))
        ]
    );
    let l = loss_kw("ce", vec![], &[("reduction", s("sum"))]).expect("ce");
    assert_eq!(l.reduce(), Some(Reduce::Sum));
    let l = loss_kw(
        "ce",
        vec![],
        &[("reduce", s("none")), ("label_smoothing", 0.5.into())],
    )
    .expect("ce");
    assert_eq!(l.reduce(), Some(Reduce::None));
    assert_eq!(
        l.options(false).expect("options")[0],
        ("smoothing".to_string(), Value::Float(0.5))
    );
    let e = error(loss_kw("ce", vec![s("sum")], &[("reduce", s("none"))]));
    assert_eq!(e, "ce: option reduce given by position and by name");
    let e = error(Loss::new("mse", &[s("avg")], &[]));
    assert_eq!(
        e,
        "mse: reduce: unrecognized value `avg`, expecting one of: none, mean, sum"
    );
    assert_eq!(
        loss("kl", vec![true.into(), s("batchmean")]).reduce(),
        Some(Reduce::BatchMean)
    );
}

#[test]
fn setting_errors() {
    let e = error(loss_kw("ce", vec![], &[("foo", 1.into())]));
    assert_eq!(
        e,
        "ce: unrecognized option: foo, expecting one of: weight, ignore, smoothing, reduce"
    );
    let e = error(Loss::new("mse", &[1.into(), s("sum")], &[]));
    assert_eq!(
        e,
        "mse: expecting at most 0 positional setting(s) before the reduction, given 1"
    );
    let e = error(Loss::new("mse", &[1.into(), 2.into()], &[]));
    assert_eq!(e, "mse: expecting at most 1 positional setting(s), given 2");
    assert_eq!(
        error(Loss::new("mse", &[1.into()], &[])),
        "mse: reduce expects a symbol, given int"
    );
    assert_eq!(
        error(Loss::new("foo", &[], &[])).split(',').next(),
        Some("loss: unrecognized loss: foo")
    );
    let e = error(Loss::new("ce", &[Value::Null, Value::Null, 2.into()], &[]));
    assert_eq!(e, "ce: smoothing must be in the range 0-1, given 2");
    assert_eq!(
        error(Loss::new("huber", &[0.into()], &[])),
        "huber: delta must be positive, given 0"
    );
    assert_eq!(
        error(Loss::new("smoothl1", &[(-1).into()], &[])),
        "smoothl1: beta must be non-negative, given -1"
    );
    let w = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
    let e = error(Loss::new("nll", &[Value::Tensor(w)], &[]));
    assert_eq!(
        e,
        "nll: weight expects a 1-dim tensor of class weights, given 2-dim"
    );
    assert_eq!(
        error(Loss::new("ctc", &[(-1).into()], &[])),
        "ctc: blank must be non-negative, given -1"
    );
}

#[test]
fn forward_errors_name_the_loss() {
    tch::manual_seed(14);
    let x = randn(&[3, 4]);
    let y = Tensor::from_slice(&[0i64, 1, 2]);
    let l = loss("ce", vec![]);
    assert_eq!(
        error(run(&l, &[&x, &x], &[&y])),
        "ce: expects 1 output and 1 target, given 2 and 1"
    );
    let e = error(run(&l, &[&x], &[&Tensor::from_slice(&[0i64, 5, 2])]));
    assert_eq!(e, "ce: target 5 out of range, expecting 0 to 3 or -100");
    let e = error(run(&l, &[&x], &[&y.to_kind(Kind::Float)]));
    assert!(
        e.starts_with("ce: expects integer class targets (or class probabilities"),
        "{e}"
    );
    // an error raised by libtorch gets the name too
    let l = loss("ce", vec![vec![1.0, 2.0].into()]);
    assert!(error(run(&l, &[&x], &[&y])).starts_with("ce: "));
    let e = error(run(&loss("mse", vec![]), &[&x], &[&x.reshape([4, 3])]));
    assert_eq!(
        e,
        "mse: output size [3, 4] does not match target size [4, 3]"
    );
    let e = error(run(&loss("bce", vec![]), &[&x], &[&x.sigmoid()]));
    assert_eq!(
        e,
        "bce: all elements of the output should be between 0 and 1"
    );
    let e = error(run(&loss("bce", vec![]), &[&x.sigmoid()], &[&x]));
    assert_eq!(
        e,
        "bce: all elements of the target should be between 0 and 1"
    );
    let e = error(run(&loss("bcelogits", vec![]), &[&x], &[&x, &x, &x]));
    assert_eq!(
        e,
        "bcelogits: expects 1 output and 1-2 targets (target, batch weight), given 1 and 3"
    );
    assert_eq!(
        error(run(&loss("nll", vec![]), &[&x], &[])),
        "nll: expects 1 output and 1 target, given 1 and 0"
    );
    let e = error(run(&loss("mse", vec![]), &[&Tensor::new()], &[&x]));
    assert_eq!(e, "mse: undefined tensor given");
}

#[test]
fn weights_follow_the_output_dtype_and_device() {
    let mut l = loss("ce", vec![vec![1.0, 2.0, 0.5].into()]);
    l.to_device(tch::Device::Cpu).expect("to");
    let x = Tensor::randn([4, 3], (Kind::Float, tch::Device::Cpu));
    let y = Tensor::from_slice(&[0i16, 1, 2, 1]);
    let w = Tensor::from_slice(&[1.0f32, 2.0, 0.5]);
    let want = x.cross_entropy_loss(
        &y.to_kind(Kind::Int64),
        Some(&w),
        Reduction::Mean,
        -100,
        0.0,
    );
    close(&fwd(&l, &[&x], &[&y]), &want);
    let c = l.clone();
    assert_eq!(c.kind(), "ce");
    assert!(matches!(
        &c.options(true).expect("options")[0].1,
        Value::Tensor(_)
    ));
}
