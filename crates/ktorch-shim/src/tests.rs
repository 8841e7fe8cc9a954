use tch::{Kind, Tensor};

use super::*;

/// No tensors.
const NONE: &[Tensor] = &[];

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v)
}

fn sgd(lr: f64) -> SgdSettings {
    SgdSettings {
        weight_decay: 0.0,
        momentum: 0.0,
        lr,
        dampening: 0.0,
        nesterov: false,
        maximize: false,
    }
}

#[test]
fn foreach_add_adds_to_each() {
    let ts = [t(&[1.0, 2.0]), t(&[3.0])];
    foreach_add_scalar_(&ts, 1.5).expect("foreach add");
    assert_eq!(Vec::<f32>::try_from(&ts[0]).expect("vec"), vec![2.5, 3.5]);
    assert_eq!(Vec::<f32>::try_from(&ts[1]).expect("vec"), vec![4.5]);
    foreach_add_scalar_(NONE, 1.0).expect("empty list");
}

#[test]
fn fused_sgd_plain_step() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0, -2.0])];
    let g = [t(&[0.5, 0.25])];
    fused_sgd_(&p, &g, NONE, &sgd(0.1), false).expect("sgd");
    assert_eq!(
        Vec::<f32>::try_from(&p[0]).expect("vec"),
        vec![0.95, -2.025]
    );
}

#[test]
fn fused_sgd_momentum_first_step_fills_buffer() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0])];
    let g = [t(&[2.0])];
    let b = [Tensor::empty([1], (Kind::Float, tch::Device::Cpu))];
    let s = SgdSettings {
        momentum: 0.9,
        ..sgd(0.5)
    };
    fused_sgd_(&p, &g, &b, &s, true).expect("sgd");
    assert_eq!(Vec::<f32>::try_from(&b[0]).expect("vec"), vec![2.0]);
    assert_eq!(Vec::<f32>::try_from(&p[0]).expect("vec"), vec![0.0]);
    fused_sgd_(&p, &g, &b, &s, false).expect("sgd");
    // buf = .9*2 + 2 = 3.8, p = 0 - .5*3.8
    assert!((Vec::<f32>::try_from(&b[0]).expect("vec")[0] - 3.8).abs() < 1e-6);
    assert!((Vec::<f32>::try_from(&p[0]).expect("vec")[0] + 1.9).abs() < 1e-6);
}

#[test]
fn mismatched_lengths_are_errors_not_aborts() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0]), t(&[2.0])];
    let g = [t(&[1.0])];
    let e = fused_sgd_(&p, &g, NONE, &sgd(0.1), false).expect_err("lengths differ");
    assert!(!e.0.is_empty());
    let steps = [Tensor::zeros([], (Kind::Float, tch::Device::Cpu))];
    let e = fused_adagrad_(
        &p,
        &p,
        &p,
        &steps,
        &AdagradSettings {
            lr: 0.1,
            lr_decay: 0.0,
            weight_decay: 0.0,
            eps: 1e-10,
            maximize: false,
        },
    )
    .expect_err("steps shorter than params");
    assert!(!e.to_string().is_empty());
    // the parameters are untouched and the library still works
    assert_eq!(Vec::<f32>::try_from(&p[0]).expect("vec"), vec![1.0]);
    foreach_add_scalar_(&p, 1.0).expect("still usable");
}

#[test]
fn shape_mismatch_is_an_error() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0, 2.0])];
    let g = [t(&[1.0, 2.0, 3.0])];
    let z = |x: &Tensor| x.zeros_like();
    let steps = [Tensor::ones([], (Kind::Float, tch::Device::Cpu))];
    let st = AdamState {
        exp_avgs: &[z(&p[0])],
        exp_avg_sqs: &[z(&p[0])],
        max_exp_avg_sqs: &[],
        steps: &steps,
    };
    let s = AdamSettings {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        weight_decay: 0.0,
        eps: 1e-8,
        amsgrad: false,
        maximize: false,
        decoupled: false,
    };
    assert!(fused_adam_(&p, &g, st, &s).is_err());
}

#[test]
fn fused_adam_first_step() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0, -1.0])];
    let g = [t(&[0.5, -0.5])];
    let steps = [Tensor::ones([], (Kind::Float, tch::Device::Cpu))];
    let (m, v) = ([p[0].zeros_like()], [p[0].zeros_like()]);
    let st = AdamState {
        exp_avgs: &m,
        exp_avg_sqs: &v,
        max_exp_avg_sqs: &[],
        steps: &steps,
    };
    let s = AdamSettings {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        weight_decay: 0.0,
        eps: 1e-8,
        amsgrad: false,
        maximize: false,
        decoupled: true,
    };
    fused_adam_(&p, &g, st, &s).expect("adamw");
    // the first Adam step moves each parameter by lr against the sign of its gradient
    let got = Vec::<f32>::try_from(&p[0]).expect("vec");
    assert!(
        (got[0] - 0.9).abs() < 1e-6 && (got[1] + 0.9).abs() < 1e-6,
        "{got:?}"
    );
}

#[test]
fn empty_lists_do_nothing() {
    fused_sgd_(NONE, NONE, NONE, &sgd(0.1), false).expect("no parameters");
    let s = AdagradSettings {
        lr: 0.1,
        lr_decay: 0.0,
        weight_decay: 0.0,
        eps: 1e-10,
        maximize: false,
    };
    fused_adagrad_(NONE, NONE, NONE, NONE, &s).expect("no parameters");
}

#[test]
fn non_contiguous_and_undersized_are_errors() {
    let _g = tch::no_grad_guard();
    let p = [Tensor::zeros([3, 2], (Kind::Float, tch::Device::Cpu)).tr()];
    let g = [Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))];
    let e = fused_sgd_(&p, &g, NONE, &sgd(0.1), false).expect_err("transposed parameter");
    assert!(e.0.contains("contiguous"), "{e}");
    // a momentum buffer smaller than its parameter would be read past its end
    let p = [t(&[1.0, 2.0, 3.0])];
    let s = SgdSettings {
        momentum: 0.9,
        ..sgd(0.1)
    };
    let e = fused_sgd_(&p, &p, &[t(&[0.0])], &s, false).expect_err("short buffer");
    assert!(e.0.contains("sizes"), "{e}");
    assert!(
        !e.0.contains("frame #"),
        "message without the C++ backtrace: {e}"
    );
}

#[test]
fn foreach_rmsprop_step_and_errors() {
    let _g = tch::no_grad_guard();
    let p = [t(&[1.0, -1.0])];
    let g = [t(&[0.5, -0.5])];
    let sq = [p[0].zeros_like()];
    let s = RmspropSettings {
        lr: 0.1,
        alpha: 0.75,
        eps: 0.0,
        weight_decay: 0.0,
        momentum: 0.0,
        centered: false,
    };
    foreach_rmsprop_(&p, &g, &sq, NONE, NONE, &s).expect("rmsprop");
    // square_avg = .25 * .25 = .0625, p -= .1 * .5 / .25
    assert_eq!(
        Vec::<f32>::try_from(&sq[0]).expect("vec"),
        vec![0.0625, 0.0625]
    );
    assert_eq!(Vec::<f32>::try_from(&p[0]).expect("vec"), vec![0.8, -0.8]);
    let centered = RmspropSettings {
        centered: true,
        ..s
    };
    let e = foreach_rmsprop_(&p, &g, &sq, NONE, NONE, &centered).expect_err("no grad_avgs");
    assert!(e.0.contains("grad_avgs"), "{e}");
}

#[test]
fn release_grads_sets_them_to_none() {
    let p = t(&[1.0, 2.0]).set_requires_grad(true);
    (&p * 3.0).sum(tch::Kind::Float).backward();
    assert!(p.grad().defined());
    release_grads(std::slice::from_ref(&p)).expect("release");
    assert!(!p.grad().defined());
    // releasing again, or a tensor that never had a gradient, is fine
    release_grads(&[p.shallow_clone(), t(&[0.0])]).expect("again");
    let e = release_grads(&[Tensor::new()]).expect_err("undefined");
    assert!(e.0.contains("undefined"), "{e}");
}

#[test]
fn foreach_norm_total_and_errors() {
    let n = foreach_norm_total(&[t(&[3.0]), t(&[0.0, 4.0]), t(&[])]).expect("norm");
    assert_eq!(n.size(), Vec::<i64>::new());
    assert_eq!(n.double_value(&[]), 5.0);
    let e = foreach_norm_total(&[]).expect_err("no tensors");
    assert!(e.0.contains("none"), "{e}");
    let e = foreach_norm_total(&[Tensor::new()]).expect_err("undefined");
    assert!(e.0.contains("undefined"), "{e}");
}

#[test]
fn foreach_lamb_step_and_errors() {
    let _g = tch::no_grad_guard();
    let p = [t(&[3.0, 4.0]), t(&[0.0])];
    let g = [t(&[1.0, -1.0]), t(&[2.0])];
    let (m, v) = (
        [p[0].zeros_like(), p[1].zeros_like()],
        [p[0].zeros_like(), p[1].zeros_like()],
    );
    let st = LambState {
        exp_avgs: &m,
        exp_avg_sqs: &v,
        bias_correction1: &[],
        bias_correction2_sqrt: &[],
    };
    let s = LambSettings {
        lr: 0.1,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
        trustclip: true,
        trustmin: 0.0,
        trustmax: 1.0,
    };
    let clip = Tensor::from(2.0f32);
    foreach_lamb_(&p, &g, st, Some(&clip), &s).expect("lamb");
    // m = g / 2, v = m * m, u = m / sqrt(v) = sign(g); ratio ||w|| / ||u|| clipped to 1,
    // and 1 for the zero parameter
    assert_eq!(Vec::<f32>::try_from(&m[0]).expect("vec"), vec![0.5, -0.5]);
    let got = Vec::<f32>::try_from(&p[0]).expect("vec");
    assert!(
        (got[0] - 2.9).abs() < 1e-6 && (got[1] - 4.1).abs() < 1e-6,
        "{got:?}"
    );
    assert!((Vec::<f32>::try_from(&p[1]).expect("vec")[0] + 0.1).abs() < 1e-6);
    let short = LambState {
        bias_correction1: &[0.1],
        bias_correction2_sqrt: &[0.1],
        ..st
    };
    let e = foreach_lamb_(&p, &g, short, None, &s).expect_err("one bias correction");
    assert!(e.0.contains("bias corrections"), "{e}");
    let e = foreach_lamb_(&p, &g, st, Some(&p[0]), &s).expect_err("clip of two elements");
    assert!(e.0.contains("clip"), "{e}");
    let e = foreach_lamb_(&p, &g[..1], st, None, &s).expect_err("one gradient");
    assert!(e.0.contains("grads"), "{e}");
    foreach_lamb_(
        NONE,
        NONE,
        LambState {
            exp_avgs: &[],
            exp_avg_sqs: &[],
            ..st
        },
        None,
        &s,
    )
    .expect("no parameters");
}

#[test]
fn fused_plan_reads_every_gradient_and_sorts_the_parameters() {
    let with_grad = |p: Tensor| {
        let p = p.set_requires_grad(true);
        p.sum(p.kind()).backward();
        p
    };
    let f = with_grad(t(&[1.0, 2.0]));
    let none = t(&[3.0]).set_requires_grad(true);
    let d = with_grad(Tensor::from_slice(&[1.0f64, 2.0]));
    // a transposed (non-contiguous) parameter goes to the per-parameter update
    let nc = Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))
        .tr()
        .set_requires_grad(true);
    nc.sum(Kind::Float).backward();
    let f2 = with_grad(t(&[5.0]));
    let ps = [f, none, d, nc, f2];
    let (grads, slots) = fused_plan(&ps, false).expect("plan");
    assert_eq!(
        slots,
        vec![
            Slot::Fused(0),
            Slot::NoGrad,
            Slot::Fused(1),
            Slot::Single,
            Slot::Fused(0)
        ]
    );
    assert!(grads[1].is_none());
    for (g, p) in grads.iter().zip(&ps) {
        if let Some(g) = g {
            assert_eq!(g.size(), p.size());
            assert_eq!(g.double_value(&vec![0i64; p.dim()]), 1.0);
        }
    }
    let (g, s) = fused_plan(NONE, false).expect("nothing");
    assert!(g.is_empty() && s.is_empty());
}
