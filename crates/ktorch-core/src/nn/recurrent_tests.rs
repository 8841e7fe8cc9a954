//! Tests of the recurrent layers against libtorch's ops and PyTorch's outputs.

use tch::{Kind, Tensor};

use super::*;
use crate::nn::testutil::*;
use crate::value::Value;

fn ints(xs: &[i64]) -> Vec<Value> {
    xs.iter().map(|x| Value::Int(*x)).collect()
}

/// Sets parameter k to `0.5 * sin(0.1 * arange(numel) + k)`, as the PyTorch oracle did.
fn det(m: &Module) {
    for (k, (name, p)) in m.named_parameters().into_iter().enumerate() {
        let v = (Tensor::arange(p.numel() as i64, (Kind::Float, tch::Device::Cpu)) * 0.1
            + k as f64)
            .sin()
            * 0.5;
        m.set_param(&name, &v.view(p.size().as_slice()))
            .expect("set");
    }
}

fn oracle_input() -> Tensor {
    (Tensor::arange(24, (Kind::Float, tch::Device::Cpu)) * 0.3)
        .cos()
        .view([2, 4, 3])
}

fn sum(t: &Tensor) -> f64 {
    t.sum(Kind::Float).double_value(&[])
}

fn bi2(mut a: Vec<Value>) -> Vec<Value> {
    a.push(kw(vec![("batchfirst", true.into()), ("bi", true.into())]));
    a
}

#[test]
fn parameter_names_and_init() {
    let m = make("rnn", bi2(ints(&[3, 5, 2])));
    let mut want = Vec::new();
    for (l, n) in [(0, 3i64), (1, 10)] {
        for sfx in ["", "_reverse"] {
            want.push((format!("weight_ih_l{l}{sfx}"), vec![5, n]));
            want.push((format!("weight_hh_l{l}{sfx}"), vec![5, 5]));
            want.push((format!("bias_ih_l{l}{sfx}"), vec![5]));
            want.push((format!("bias_hh_l{l}{sfx}"), vec![5]));
        }
    }
    assert_eq!(shapes(&m), want);
    for (_, p) in m.named_parameters() {
        assert_uniform(&p, 1.0 / 5f64.sqrt());
    }
    let m = make(
        "gru",
        vec![
            Value::Int(3),
            Value::Int(5),
            kw(vec![("bias", false.into())]),
        ],
    );
    assert_eq!(
        shapes(&m),
        named(&[("weight_ih_l0", &[15, 3]), ("weight_hh_l0", &[15, 5])])
    );
    let m = make("lstm", ints(&[3, 5, 2]));
    let names: Vec<String> = shapes(&m).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names.len(), 8);
    assert_eq!(shapes(&m)[4], ("weight_ih_l1".to_string(), vec![20, 5]));
}

#[test]
fn gru_matches_pytorch() {
    let m = make("gru", bi2(ints(&[3, 5, 2])));
    det(&m);
    let out = m.forward(&[oracle_input()]).expect("forward");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].size(), [2, 4, 10]);
    assert_eq!(out[1].size(), [4, 2, 5]);
    assert!((sum(&out[0]) - -12.826038).abs() < 1e-4);
    assert!((sum(&out[1]) - -2.0456185).abs() < 1e-4);
    let want = [-0.15279728, -0.06707942, 0.15754324, 0.25744444, 0.24663433];
    assert_close(&out[1].get(3).get(0), &floats(&want));
}

#[test]
fn lstm_matches_pytorch() {
    let m = make("lstm", bi2(ints(&[3, 5, 2])));
    det(&m);
    let out = m.forward(&[oracle_input()]).expect("forward");
    assert_eq!(out.len(), 3);
    assert!((sum(&out[0]) - -4.1063557).abs() < 1e-4);
    assert!((sum(&out[1]) - -0.8797434).abs() < 1e-4);
    assert!((sum(&out[2]) - -7.6533742).abs() < 1e-4);
    let want = [
        0.03730059,
        -0.20305447,
        -0.28839657,
        -0.18616709,
        0.11805824,
    ];
    assert_close(&out[2].get(1).get(1), &floats(&want));
}

#[test]
fn rnn_relu_matches_pytorch() {
    let mut a = ints(&[3, 5, 2]);
    a.push("relu".into());
    let m = make("rnn", bi2(a));
    det(&m);
    let out = m.forward(&[oracle_input()]).expect("forward");
    assert!((sum(&out[0]) - 1221.7709).abs() < 1e-2);
    assert!((sum(&out[1]) - 714.39929).abs() < 1e-2);
}

#[test]
fn rnn_matches_functional_and_cell() {
    let m = make("rnn", ints(&[3, 4]));
    let x = randn(&[6, 2, 3]);
    let h0 = randn(&[1, 2, 4]);
    let out = m
        .forward(&[x.shallow_clone(), h0.shallow_clone()])
        .expect("forward");
    let ps = m.parameters();
    let (y, h) = x.rnn_tanh(&h0, &ps, true, 1, 0.0, true, false, false);
    assert_close(&out[0], &y);
    assert_close(&out[1], &h);
    // one step by hand: tanh(x W_ih' + b_ih + h W_hh' + b_hh)
    let step =
        (x.get(0).linear(&ps[0], Some(&ps[2])) + h0.get(0).linear(&ps[1], Some(&ps[3]))).tanh();
    assert_close(&out[0].get(0), &step);
}

#[test]
fn lstm_states_and_unbatched_input() {
    let m = make("lstm", ints(&[3, 4]));
    let (x, h, c) = (randn(&[5, 3]), randn(&[1, 4]), randn(&[1, 4]));
    let out = m
        .forward(&[x.shallow_clone(), h.shallow_clone(), c.shallow_clone()])
        .expect("forward");
    assert_eq!(out[0].size(), [5, 4]);
    assert_eq!(out[1].size(), [1, 4]);
    let ps = m.parameters();
    let hx = [h.unsqueeze(1), c.unsqueeze(1)];
    let (y, _, cn) = x
        .unsqueeze(1)
        .lstm(&hx, &ps, true, 1, 0.0, true, false, false);
    assert_close(&out[0], &y.squeeze_dim(1));
    assert_close(&out[2], &cn.squeeze_dim(1));
    let e = m
        .forward(&[x.shallow_clone(), h])
        .expect_err("no cell state");
    assert!(
        e.to_string()
            .starts_with("lstm: expects both hidden and cell state"),
        "{e}"
    );
    let e = m
        .forward(&[randn(&[5, 2, 3]), randn(&[1, 3, 4]), randn(&[1, 2, 4])])
        .expect_err("bad hidden");
    assert_eq!(
        e.to_string(),
        "lstm: expected hidden state of size [1, 2, 4], given [1, 3, 4]"
    );
    let e = m.forward(&[randn(&[5, 2, 2])]).expect_err("bad input");
    assert!(
        e.to_string()
            .starts_with("lstm: expected input with 3 features"),
        "{e}"
    );
}

#[test]
fn dropout_between_layers_only_in_training() {
    let mut m = make(
        "gru",
        vec![
            Value::Int(3),
            Value::Int(4),
            Value::Int(2),
            kw(vec![("dropout", Value::Float(0.5))]),
        ],
    );
    let x = randn(&[5, 2, 3]);
    m.set_training(false);
    let a = fwd(&m, &[&x]);
    let b = fwd(&m, &[&x]);
    assert_close(&a, &b);
    let ps = m.parameters();
    let h0 = Tensor::zeros([2, 2, 4], (Kind::Float, tch::Device::Cpu));
    assert_close(&a, &x.gru(&h0, &ps, true, 2, 0.5, false, false, false).0);
}

#[test]
fn bad_settings() {
    assert_eq!(build_err("rnn", ints(&[3])), "rnn: hidden not defined");
    assert!(build_err(
        "rnn",
        vec![Value::Int(3), Value::Int(4), Value::Int(1), "gelu".into()]
    )
    .starts_with("rnn: fn: unrecognized value `gelu`"));
    assert_eq!(
        build_err("gru", ints(&[3, 4, 0])),
        "gru: layers must be positive, given 0"
    );
    let e = build_err(
        "lstm",
        vec![
            Value::Int(3),
            Value::Int(4),
            kw(vec![("dropout", Value::Float(1.5))]),
        ],
    );
    assert_eq!(e, "lstm: dropout must be in the range 0-1, given 1.5");
    assert!(build_err(
        "gru",
        vec![
            Value::Int(3),
            Value::Int(4),
            kw(vec![("fn", "relu".into())])
        ]
    )
    .starts_with("gru: unrecognized option: fn"));
    let m = make("gru", ints(&[3, 4]));
    assert_eq!(
        m.forward(&[randn(&[3])]).expect_err("1d").to_string(),
        "gru: expected 2D or 3D input, given 1D"
    );
}
