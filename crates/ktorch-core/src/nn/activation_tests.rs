//! Tests of the activation functions against libtorch's ops and PyTorch's outputs.

use tch::{Kind, Tensor};

use super::*;
use crate::nn::testutil::*;
use crate::value::Value;

fn act(kind: &str, args: Vec<Value>) -> Module {
    make(kind, args)
}

#[test]
fn defaults_match_native_ops() {
    let x = randn(&[4, 6]);
    let cases: Vec<(&str, Tensor)> = vec![
        ("celu", x.celu()),
        ("elu", x.elu()),
        ("gelu", x.gelu("none")),
        ("glu", x.glu(-1)),
        ("hardshrink", x.hardshrink()),
        ("hardtanh", x.hardtanh()),
        ("leakyrelu", x.leaky_relu()),
        ("logsigmoid", x.log_sigmoid()),
        ("mish", x.mish()),
        ("relu", x.relu()),
        ("relu6", x.relu6()),
        ("selu", x.selu()),
        ("sigmoid", x.sigmoid()),
        ("silu", x.silu()),
        ("softplus", x.softplus()),
        ("softshrink", x.softshrink()),
        ("tanh", x.tanh()),
    ];
    for (kind, want) in cases {
        let m = act(kind, vec![]);
        assert!(shapes(&m).is_empty(), "{kind}");
        assert_close(&fwd(&m, &[&x]), &want);
    }
    assert_close(
        &fwd(&act("softmax", vec![Value::Int(1)]), &[&x]),
        &x.softmax(1, Kind::Float),
    );
    assert_close(
        &fwd(&act("logsoftmax", vec![Value::Int(0)]), &[&x]),
        &x.log_softmax(0, Kind::Float),
    );
    assert_close(
        &fwd(&act("softmin", vec![Value::Int(1)]), &[&x]),
        &(-&x).softmax(1, Kind::Float),
    );
    assert_close(&fwd(&act("glu", vec![Value::Int(0)]), &[&x]), &x.glu(0));
    assert_close(
        &fwd(
            &act("threshold", vec![Value::Float(0.1), Value::Int(20)]),
            &[&x],
        ),
        &x.threshold(0.1, 20.0),
    );
    let mut m = act("rrelu", vec![]);
    m.set_training(false);
    assert_close(
        &fwd(&m, &[&x]),
        &(x.clamp_min(0.0) + x.clamp_max(0.0) * ((1.0 / 8.0 + 1.0 / 3.0) / 2.0)),
    );
    let x4 = randn(&[2, 3, 4, 4]);
    assert_close(
        &fwd(&act("softmax2d", vec![]), &[&x4]),
        &x4.softmax(-3, Kind::Float),
    );
}

/// Outputs of PyTorch 2.11 for `torch.linspace(-3, 3, 13)`.
#[test]
fn settings_match_pytorch() {
    let x = Tensor::linspace(-3.0, 3.0, 13, (Kind::Float, tch::Device::Cpu));
    let f = Value::Float;
    let cases: Vec<(&str, Vec<Value>, &[f64])> = vec![
        (
            "elu",
            vec![f(0.5)],
            &[
                -0.475106, -0.458957, -0.432332, -0.388435, -0.31606, -0.196735, 0.0, 0.5, 1.0,
                1.5, 2.0, 2.5, 3.0,
            ],
        ),
        (
            "celu",
            vec![f(2.0)],
            &[
                -1.55374, -1.42699, -1.264241, -1.055267, -0.786939, -0.442398, 0.0, 0.5, 1.0, 1.5,
                2.0, 2.5, 3.0,
            ],
        ),
        (
            "hardtanh",
            vec![f(-2.0), f(1.5)],
            &[
                -2.0, -2.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 1.5, 1.5, 1.5,
            ],
        ),
        (
            "leakyrelu",
            vec![f(0.2)],
            &[
                -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0,
            ],
        ),
        (
            "softplus",
            vec![f(2.0), f(3.0)],
            &[
                0.001238, 0.003358, 0.009075, 0.024294, 0.063464, 0.156631, 0.346574, 0.656631,
                1.063464, 1.524294, 2.0, 2.5, 3.0,
            ],
        ),
        (
            "softshrink",
            vec![f(1.0)],
            &[
                -2.0, -1.5, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0,
            ],
        ),
        (
            "hardshrink",
            vec![f(1.0)],
            &[
                -3.0, -2.5, -2.0, -1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 2.0, 2.5, 3.0,
            ],
        ),
        (
            "threshold",
            vec![f(1.0), f(9.0)],
            &[
                9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 1.5, 2.0, 2.5, 3.0,
            ],
        ),
        (
            "softsign",
            vec![],
            &[
                -0.75, -0.714286, -0.666667, -0.6, -0.5, -0.333333, 0.0, 0.333333, 0.5, 0.6,
                0.666667, 0.714286, 0.75,
            ],
        ),
        (
            "tanhshrink",
            vec![],
            &[
                -2.004945, -1.513386, -1.035972, -0.594852, -0.238406, -0.037883, 0.0, 0.037883,
                0.238406, 0.594852, 1.035972, 1.513386, 2.004945,
            ],
        ),
        (
            "gelu",
            vec![kw(vec![("approximate", "tanh".into())])],
            &[
                -0.003637, -0.015084, -0.045402, -0.100428, -0.158808, -0.154286, 0.0, 0.345714,
                0.841192, 1.399572, 1.954598, 2.484916, 2.996363,
            ],
        ),
    ];
    for (kind, args, want) in cases {
        let y = fwd(&act(kind, args), &[&x]);
        let d = (y - floats(want)).abs().max().double_value(&[]);
        assert!(d < 2e-6, "{kind}: max difference {d}");
    }
    let mut m = act("rrelu", vec![f(0.1), f(0.3)]);
    m.set_training(false);
    let want = [
        -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0,
    ];
    assert_close(&fwd(&m, &[&x]), &floats(&want));
}

#[test]
fn rrelu_training_slopes_are_random_within_bounds() {
    let m = act("rrelu", vec![Value::Float(0.1), Value::Float(0.3)]);
    let x = -Tensor::ones([1000], (Kind::Float, tch::Device::Cpu));
    let slope = -fwd(&m, &[&x]);
    assert!(slope.min().double_value(&[]) >= 0.1 && slope.max().double_value(&[]) <= 0.3);
    assert!(slope.std(true).double_value(&[]) > 0.01);
    let slope = -fwd(&act("rrelu", vec![]), &[&x]);
    assert!(
        slope.min().double_value(&[]) >= 0.125 && slope.max().double_value(&[]) <= 1.0 / 3.0 + 1e-6
    );
}

#[test]
fn parametrised_gradients_are_finite() {
    let x = (randn(&[50]) * 100).set_requires_grad(true);
    let y = fwd(
        &act("softplus", vec![Value::Float(2.0), Value::Float(3.0)]),
        &[&x],
    );
    y.sum(Kind::Float).backward();
    assert_eq!(x.grad().isfinite().all().int64_value(&[]), 1);
}

#[test]
fn prelu_weight() {
    let m = act("prelu", vec![Value::Int(3), Value::Float(0.1)]);
    assert_eq!(shapes(&m), named(&[("weight", &[3])]));
    assert_close(m.param_at(0).expect("weight"), &floats(&[0.1, 0.1, 0.1]));
    let x = randn(&[2, 3, 4]);
    assert_close(&fwd(&m, &[&x]), &x.prelu(m.param_at(0).expect("weight")));
    let m = act("prelu", vec![]);
    assert_close(m.param_at(0).expect("weight"), &floats(&[0.25]));
}

#[test]
fn bad_settings() {
    assert_eq!(build_err("softmax", vec![]), "softmax: dim not defined");
    assert_eq!(
        build_err("logsoftmax", vec![Value::Float(1.5)]),
        "logsoftmax: dim expects an integer, given float"
    );
    assert_eq!(
        build_err("threshold", vec![Value::Float(1.0)]),
        "threshold: value not defined"
    );
    assert_eq!(
        build_err("hardtanh", vec![Value::Int(1), Value::Int(0)]),
        "hardtanh: max must be greater than min, given min 1, max 0"
    );
    assert_eq!(
        build_err("softshrink", vec![Value::Int(-1)]),
        "softshrink: lambda must be non-negative, given -1"
    );
    assert!(
        build_err("gelu", vec![kw(vec![("approximate", "fast".into())])])
            .starts_with("gelu: approximate: unrecognized value `fast`")
    );
    assert_eq!(
        build_err("relu", vec![Value::Int(1)]),
        "relu: inplace expects a boolean, given int"
    );
    assert_eq!(
        build_err("sigmoid", vec![Value::Int(1)]),
        "sigmoid: expecting at most 0 positional setting(s), given 1"
    );
    assert_eq!(
        build_err("prelu", vec![Value::Int(0)]),
        "prelu: in must be positive, given 0"
    );
    assert_eq!(
        build_err("celu", vec![Value::Int(0)]),
        "celu: alpha must be non-zero"
    );
    assert!(
        build_err("rrelu", vec![Value::Float(0.5), Value::Float(0.2)])
            .starts_with("rrelu: lower bound must be")
    );
    assert!(build_err("reluu", vec![])
        .starts_with("module: unrecognized module type: reluu (did you mean relu or relu6?)"));
    let e = act("softmax2d", vec![])
        .forward(&[randn(&[2, 3])])
        .expect_err("2d");
    assert_eq!(
        e.to_string(),
        "softmax2d: expected 3D or 4D input, given 2D"
    );
    assert!(act("glu", vec![]).forward(&[randn(&[2, 3])]).is_err());
    let e = act("relu", vec![]).forward(&[]).expect_err("no input");
    assert!(e.to_string().starts_with("relu: "), "{e}");
    // inplace is accepted and ignored
    let x = randn(&[5]);
    let m = act("relu", vec![kw(vec![("inplace", true.into())])]);
    assert_close(&fwd(&m, &[&x]), &x.relu());
}
