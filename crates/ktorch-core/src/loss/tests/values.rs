//! Each loss against the libtorch function (or PyTorch's values) with the same settings.

use super::*;

#[test]
fn ce_with_weight_ignore_smoothing() {
    tch::manual_seed(1);
    let x = randn(&[6, 4]);
    let y = Tensor::from_slice(&[0i32, 3, 1, 2, 3, 0]);
    let w = dbl(&[1.0, 0.5, 2.0, 0.25], &[4]);
    for (r, red) in REDS {
        let l = loss(
            "ce",
            vec![Value::Tensor(w.shallow_clone()), 3.into(), 0.1.into(), s(r)],
        );
        let want = x.cross_entropy_loss(&y.to_kind(Kind::Int64), Some(&w), red, 3, 0.1);
        close(&fwd(&l, &[&x], &[&y]), &want);
    }
    // spatial classes on dim 1, weights given as a list
    let x = randn(&[2, 3, 5]);
    let y = Tensor::from_slice(&[0i64, 1, 2, 1, 0, 2, 2, 1, 0, -100]).reshape([2, 5]);
    let l = loss_kw(
        "ce",
        vec![],
        &[
            ("weight", vec![1.0, 2.0, 3.0].into()),
            ("reduction", s("sum")),
        ],
    )
    .expect("ce");
    let w = dbl(&[1.0, 2.0, 3.0], &[3]);
    close(
        &fwd(&l, &[&x], &[&y]),
        &x.cross_entropy_loss(&y, Some(&w), Reduction::Sum, -100, 0.0),
    );
}

#[test]
fn ce_with_class_probabilities() {
    tch::manual_seed(2);
    let x = randn(&[5, 3]);
    let p = randn(&[5, 3]).softmax(1, Kind::Float);
    for (r, red) in REDS {
        let l = loss("ce", vec![Value::Null, Value::Null, 0.2.into(), s(r)]);
        let want = x.cross_entropy_loss(&p.to_kind(Kind::Double), None::<Tensor>, red, -100, 0.2);
        close(&fwd(&l, &[&x], &[&p]), &want);
    }
}

#[test]
fn nll_with_weight_and_ignore() {
    tch::manual_seed(3);
    let x = randn(&[6, 4]).log_softmax(1, Kind::Double);
    let y = Tensor::from_slice(&[0u8, 3, 1, 2, 3, 0]);
    let w = dbl(&[1.0, 0.5, 2.0, 0.25], &[4]);
    for (r, red) in REDS {
        let l = loss(
            "nll",
            vec![Value::Tensor(w.shallow_clone()), 0.into(), s(r)],
        );
        let want = x
            .f_nll_loss(&y.to_kind(Kind::Int64), Some(&w), red, 0)
            .expect("nll");
        close(&fwd(&l, &[&x], &[&y]), &want);
    }
}

#[test]
fn bce_with_setting_and_batch_weights() {
    tch::manual_seed(4);
    let x = randn(&[4, 3]).sigmoid();
    let y = randn(&[4, 3]).gt(0.0); // bool targets become the output's dtype
    let yd = y.to_kind(Kind::Double);
    let w = dbl(&[1.0, 0.5, 2.0], &[3]);
    let b = randn(&[4, 3]).abs();
    for (r, red) in REDS {
        let l = loss("bce", vec![s(r)]);
        close(
            &fwd(&l, &[&x], &[&y]),
            &x.binary_cross_entropy(&yd, None::<Tensor>, red),
        );
        close(
            &fwd(&l, &[&x], &[&y, &b]),
            &x.binary_cross_entropy(&yd, Some(&b), red),
        );
        let l = loss("bce", vec![Value::Tensor(w.shallow_clone()), s(r)]);
        let ww = w.expand_as(&x);
        close(
            &fwd(&l, &[&x], &[&y]),
            &x.binary_cross_entropy(&yd, Some(&ww), red),
        );
        close(
            &fwd(&l, &[&x], &[&y, &b]),
            &x.binary_cross_entropy(&yd, Some(&(&ww * &b)), red),
        );
    }
    // values from PyTorch 2.11: F.binary_cross_entropy(a, b, weight, reduction="none")
    let a = dbl(&[0.1, 0.9, 0.5], &[3]);
    let t = dbl(&[0.0, 1.0, 0.25], &[3]);
    let wt = dbl(&[1.0, 1.1, 0.5], &[3]);
    let l = loss("bce", vec![s("none")]);
    let want = dbl(
        &[
            0.10536051565782631,
            0.11589656722360892,
            0.34657359027997264,
        ],
        &[3],
    );
    close(&fwd(&l, &[&a], &[&t, &wt]), &want);
}

#[test]
fn bcelogits_with_pos_weight_and_batch_weight() {
    tch::manual_seed(5);
    let x = randn(&[4, 5]);
    let y = randn(&[4, 5]).gt(0.0).to_kind(Kind::Int64);
    let yd = y.to_kind(Kind::Double);
    let pw = dbl(&[1.0, 0.1, 1.5, 2.0, 0.25], &[5]);
    let b = randn(&[4, 5]);
    for (r, red) in REDS {
        let l = loss("bcelogits", vec![Value::Tensor(pw.shallow_clone()), s(r)]);
        let want = x.binary_cross_entropy_with_logits(&yd, None, Some(&pw), red);
        close(&fwd(&l, &[&x], &[&y]), &want);
        let want = x.binary_cross_entropy_with_logits(&yd, Some(&b), Some(&pw), red);
        close(&fwd(&l, &[&x], &[&y, &b]), &want);
    }
    // the pos weight by its other names; values from PyTorch 2.11
    let l = loss_kw(
        "bcelogits",
        vec![s("none")],
        &[("posweight", Value::Tensor(pw.shallow_clone()))],
    )
    .expect("bcelogits");
    let x = Tensor::full([3, 5], 1.5, (Kind::Double, tch::Device::Cpu));
    let y = x.ones_like();
    let row = dbl(
        &[
            0.2014132779827524,
            0.02014132779827524,
            0.3021199169741286,
            0.4028265559655048,
            0.0503533194956881,
        ],
        &[5],
    );
    close(&fwd(&l, &[&x], &[&y]), &row.expand([3, 5], false));
    let e = error(loss_kw(
        "bcelogits",
        vec![],
        &[("weight", 1.0.into()), ("pos_weight", 1.0.into())],
    ));
    assert_eq!(e, "bcelogits: option weight given more than once");
}

#[test]
fn multisoft_matches_its_definition() {
    tch::manual_seed(6);
    let x = randn(&[4, 3]);
    let y = randn(&[4, 3]).gt(0.0).to_kind(Kind::Double);
    let w = dbl(&[1.0, 0.5, 2.0], &[3]);
    for (r, red) in REDS {
        let l = loss("multisoft", vec![Value::Tensor(w.shallow_clone()), s(r)]);
        // the same loss written with libtorch's binary cross entropy with logits
        let each = x.binary_cross_entropy_with_logits(&y, Some(&w), None, Reduction::None);
        let each = each.mean_dim(-1, false, Kind::Double);
        let want = match red {
            Reduction::Mean => each.mean(Kind::Double),
            Reduction::Sum => each.sum(Kind::Double),
            _ => each,
        };
        close(&fwd(&l, &[&x], &[&y]), &want);
    }
    // values from PyTorch 2.11: F.multilabel_soft_margin_loss(x, y, weight=w)
    let x = dbl(
        &[0.1, 0.2, 0.4, 0.8, 0.5, -0.3, 0.9, 0.0, 1.5, 0.2, -0.7, 0.3],
        &[3, 4],
    );
    let y = Tensor::from_slice(&[1i64, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0]).reshape([3, 4]);
    let l = loss(
        "multisoft",
        vec![vec![1.0, 0.5, 2.0, 0.25].into(), s("none")],
    );
    let want = dbl(
        &[0.5905679415128041, 0.526712287754633, 0.730110905390399],
        &[3],
    );
    close(&fwd(&l, &[&x], &[&y]), &want);
    let l = loss("multisoft", vec![vec![1.0, 0.5, 2.0, 0.25].into()]);
    close(&fwd(&l, &[&x], &[&y]), &Tensor::from(0.6157970448859453f64));
}

#[test]
fn regression_losses() {
    tch::manual_seed(7);
    let x = randn(&[5, 3]);
    let y = randn(&[5, 3]).to_kind(Kind::Float); // converted to the output's dtype
    let yd = y.to_kind(Kind::Double);
    let sign = yd.sign();
    for (r, red) in REDS {
        close(
            &fwd(&loss("mse", vec![s(r)]), &[&x], &[&y]),
            &x.mse_loss(&yd, red),
        );
        close(
            &fwd(&loss("l1", vec![s(r)]), &[&x], &[&y]),
            &x.l1_loss(&yd, red),
        );
        close(
            &fwd(&loss("softmargin", vec![s(r)]), &[&x], &[&sign]),
            &x.soft_margin_loss(&sign, red),
        );
        let l = loss("smoothl1", vec![0.5.into(), s(r)]);
        close(&fwd(&l, &[&x], &[&y]), &x.smooth_l1_loss(&yd, red, 0.5));
        let l = loss("huber", vec![0.7.into(), s(r)]);
        close(&fwd(&l, &[&x], &[&y]), &x.huber_loss(&yd, red, 0.7));
        for (log, full) in [(true, false), (false, true)] {
            let xp = if log { x.shallow_clone() } else { x.exp() };
            let yp = yd.abs().round();
            let l = loss(
                "poissonloss",
                vec![log.into(), full.into(), 1e-6.into(), s(r)],
            );
            close(
                &fwd(&l, &[&xp], &[&yp]),
                &xp.poisson_nll_loss(&yp, log, full, 1e-6, red),
            );
        }
    }
    // the example of the original: mse(1 2 3; 0 2 4)
    let l = loss("mse", vec![]);
    let v = fwd(
        &l,
        &[&dbl(&[1.0, 2.0, 3.0], &[3])],
        &[&dbl(&[0.0, 2.0, 4.0], &[3])],
    );
    close(&v, &Tensor::from(0.6666666666666666f64));
}

#[test]
fn kl_with_log_target_and_batchmean() {
    tch::manual_seed(8);
    let x = randn(&[4, 5]).log_softmax(1, Kind::Double);
    let p = randn(&[4, 5]).softmax(1, Kind::Double);
    let lp = p.log();
    for (r, red) in REDS {
        close(
            &fwd(&loss("kl", vec![s(r)]), &[&x], &[&p]),
            &x.kl_div(&p, red, false),
        );
        let l = loss_kw("kl", vec![s(r)], &[("log", true.into())]).expect("kl");
        close(&fwd(&l, &[&x], &[&lp]), &x.kl_div(&lp, red, true));
    }
    let l = loss("kl", vec![s("batchmean")]);
    close(
        &fwd(&l, &[&x], &[&p]),
        &(x.kl_div(&p, Reduction::Sum, false) / 4.0),
    );
    // value from PyTorch 2.11: F.kl_div(x.log_softmax(1), x.softmax(0), reduction="batchmean")
    let x = dbl(
        &[0.1, 0.2, 0.4, 0.8, 0.5, -0.3, 0.9, 0.0, 1.5, 0.2, -0.7, 0.3],
        &[3, 4],
    );
    let v = fwd(
        &l,
        &[&x.log_softmax(1, Kind::Double)],
        &[&x.softmax(0, Kind::Double)],
    );
    close(&v, &Tensor::from(0.43974680185231235f64));
    assert!(error(Loss::new("mse", &[s("batchmean")], &[]))
        .starts_with("mse: reduce: unrecognized value `batchmean`"));
}

#[test]
fn multilabel_margin() {
    tch::manual_seed(9);
    let x = randn(&[3, 4]);
    let y = Tensor::from_slice(&[3i32, 0, -1, 1, 1, 2, -1, 0, 0, 1, 2, 3]).reshape([3, 4]);
    for (r, red) in REDS {
        let want = x.multilabel_margin_loss(&y.to_kind(Kind::Int64), red);
        close(&fwd(&loss("multilabel", vec![s(r)]), &[&x], &[&y]), &want);
    }
    let bad = Tensor::from_slice(&[3i64, 0, -1, 1, 1, 9, -1, 0, 0, 1, 2, 3]).reshape([3, 4]);
    let e = error(run(&loss("multilabel", vec![]), &[&x], &[&bad]));
    assert_eq!(e, "multilabel: target 9 out of range, expecting -1 to 3");
}

#[test]
fn embedding_and_ranking_losses() {
    tch::manual_seed(10);
    let a = randn(&[5, 3]);
    let b = randn(&[5, 3]);
    let t = Tensor::from_slice(&[1i64, -1, 1, -1, -1]);
    let td = t.to_kind(Kind::Double);
    let x1 = randn(&[5]);
    let x2 = randn(&[5]);
    for (r, red) in REDS {
        let l = loss("hinge", vec![0.5.into(), s(r)]);
        let want = a.hinge_embedding_loss(&a.sign(), 0.5, red);
        close(&fwd(&l, &[&a], &[&a.sign()]), &want);
        let l = loss("cosineloss", vec![0.2.into(), s(r)]);
        let want = Tensor::cosine_embedding_loss(&a, &b, &td, 0.2, red);
        close(&fwd(&l, &[&a, &b], &[&t]), &want);
        close(&fwd(&l, &[&a], &[&b, &t]), &want);
        let l = loss("margin", vec![0.3.into(), s(r)]);
        let want = Tensor::margin_ranking_loss(&x1, &x2, &td, 0.3, red);
        close(&fwd(&l, &[&x1, &x2], &[&t]), &want);
        close(&fwd(&l, &[&x1, &x2, &t], &[]), &want);
    }
    let e = error(run(&loss("margin", vec![]), &[&x1], &[&t]));
    assert_eq!(
        e,
        "margin: expects 3 tensors (input1, input2, target) as outputs then targets, given 1 and 1"
    );
    let e = error(run(&loss("margin", vec![]), &[], &[&x1, &x2, &t]));
    assert!(e.starts_with("margin: expects 3 tensors"));
}

#[test]
fn multimargin_matches_pytorch() {
    // values from PyTorch 2.11: F.multi_margin_loss(x, y, p, margin=0.9, weight=w)
    let x = dbl(
        &[0.1, 0.2, 0.4, 0.8, 0.5, -0.3, 0.9, 0.0, 1.5, 0.2, -0.7, 0.3],
        &[3, 4],
    );
    let y = Tensor::from_slice(&[3i32, 0, 2]);
    let w: Value = vec![1.0, 0.5, 2.0, 0.25].into();
    let want: [(i64, [f64; 3], f64, f64); 2] = [
        (
            1,
            [0.0625, 0.45000000000000007, 3.4000000000000004],
            1.304166666666667,
            3.9125000000000005,
        ),
        (2, [0.02375, 0.4650000000000001, 8.23], 2.90625, 8.71875),
    ];
    for (p, none, mean, sum) in want {
        let l = |r| loss("multimargin", vec![p.into(), 0.9.into(), w.clone(), s(r)]);
        close(&fwd(&l("none"), &[&x], &[&y]), &dbl(&none, &[3]));
        close(&fwd(&l("mean"), &[&x], &[&y]), &Tensor::from(mean));
        close(&fwd(&l("sum"), &[&x], &[&y]), &Tensor::from(sum));
    }
    // a single sample: the result has the target's shape
    let l = loss("multimargin", vec![s("none")]);
    let x1 = x.get(1);
    close(
        &fwd(&l, &[&x1], &[&Tensor::from_slice(&[0i64])]),
        &dbl(&[0.5249999999999999], &[1]),
    );
    close(
        &fwd(&l, &[&x1], &[&Tensor::from(0i64)]),
        &Tensor::from(0.5249999999999999f64),
    );
    // gradients flow to the output
    let xg = x.set_requires_grad(true);
    fwd(&loss("multimargin", vec![]), &[&xg], &[&y]).backward();
    assert!(xg.grad().defined());
    let e = error(run(&l, &[&x], &[&Tensor::from_slice(&[0i64, 4, 1])]));
    assert_eq!(e, "multimargin: target 4 out of range, expecting 0 to 3");
    assert_eq!(
        error(Loss::new("multimargin", &[3.into()], &[])),
        "multimargin: p must be 1 or 2, given 3"
    );
}

#[test]
fn triplet_margin() {
    tch::manual_seed(11);
    let (a, p, n) = (randn(&[4, 6]), randn(&[4, 6]), randn(&[4, 6]));
    for (r, red) in REDS {
        for swap in [false, true] {
            let l = loss(
                "triplet",
                vec![0.5.into(), 1.0.into(), 1e-5.into(), swap.into(), s(r)],
            );
            let want = Tensor::triplet_margin_loss(&a, &p, &n, 0.5, 1.0, 1e-5, swap, red);
            close(&fwd(&l, &[&a, &p, &n], &[]), &want);
            close(&fwd(&l, &[&a], &[&p, &n]), &want);
        }
    }
}

#[test]
fn ctc_with_padded_and_concatenated_targets() {
    tch::manual_seed(12);
    let lp = randn(&[8, 2, 5]).log_softmax(2, Kind::Double);
    let il = Tensor::from_slice(&[8i32, 6]);
    let tl = Tensor::from_slice(&[3i32, 2]);
    // padding beyond each target length is not read, so it may be anything
    let padded = Tensor::from_slice(&[1i32, 2, 3, 4, 1, -7]).reshape([2, 3]);
    let cat = Tensor::from_slice(&[1i64, 2, 3, 4, 1]);
    let (il64, tl64) = (il.to_kind(Kind::Int64), tl.to_kind(Kind::Int64));
    for (r, red) in REDS {
        for zeroinf in [false, true] {
            let l = loss("ctc", vec![0.into(), zeroinf.into(), s(r)]);
            let want = Tensor::ctc_loss_tensor(&lp, &cat, &il64, &tl64, 0, red, zeroinf);
            close(&fwd(&l, &[&lp], &[&cat, &il, &tl]), &want);
            let want = Tensor::ctc_loss_tensor(
                &lp,
                &padded.to_kind(Kind::Int64),
                &il64,
                &tl64,
                0,
                red,
                zeroinf,
            );
            close(&fwd(&l, &[&lp], &[&padded, &il, &tl]), &want);
        }
    }
    let l = loss("ctc", vec![]);
    let bad = Tensor::from_slice(&[1i64, 2, 9, 4, 1]);
    assert_eq!(
        error(run(&l, &[&lp], &[&bad, &il, &tl])),
        "ctc: target 9 out of range, expecting 0 to 4"
    );
    let e = error(run(&l, &[&lp], &[&cat, &il]));
    assert!(
        e.starts_with("ctc: expects 4 tensors (log_probs, targets, input_lengths, target_lengths)")
    );
    let e = error(run(&loss("ctc", vec![5.into()]), &[&lp], &[&cat, &il, &tl]));
    assert_eq!(e, "ctc: blank 5 out of range for 5 classes");
    let e = error(run(
        &l,
        &[&lp],
        &[&cat, &il, &Tensor::from_slice(&[3i64, 2, 1])],
    ));
    assert!(e.starts_with("ctc: expects 2 target length(s)"), "{e}");
}

#[test]
fn distances() {
    tch::manual_seed(13);
    let (a, b) = (randn(&[4, 6]), randn(&[4, 6]));
    let l = loss("pairwise", vec![1.5.into(), 1e-4.into(), true.into()]);
    close(
        &fwd(&l, &[&a], &[&b]),
        &Tensor::pairwise_distance(&a, &b, 1.5, 1e-4, true),
    );
    close(
        &fwd(&l, &[&a, &b], &[]),
        &Tensor::pairwise_distance(&a, &b, 1.5, 1e-4, true),
    );
    let l = loss("similar", vec![0.into()]);
    close(
        &fwd(&l, &[&a], &[&b]),
        &Tensor::cosine_similarity(&a, &b, 0, 1e-8),
    );
    assert!(l.reduce().is_none());
    // distances have no reduction: a symbol is a wrong setting
    let e = error(Loss::new("similar", &[s("sum")], &[]));
    assert_eq!(e, "similar: dim expects an integer, given string");
}
