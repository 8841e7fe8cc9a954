//! Tests of groups, settings, learning rates and errors shared by every optimizer.

use tch::Tensor;

use super::testutil::{backward, copies, params};
use super::{Optimizer, OPTIMIZER_TYPES};
use crate::value::Value;

fn kw(k: &str, v: impl Into<Value>) -> Vec<(String, Value)> {
    vec![(k.to_string(), v.into())]
}

fn setting(o: &Optimizer, g: usize, name: &str) -> Value {
    o.settings(g)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .expect("setting")
}

fn one() -> Vec<Tensor> {
    vec![Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true)]
}

#[test]
fn every_optimizer_builds_with_defaults() {
    for name in OPTIMIZER_TYPES {
        let o = Optimizer::new(name, params(), &[], &[]).expect("new");
        assert_eq!(o.kind(), *name);
        assert_eq!(o.groups(), 1);
        assert_eq!(o.params().len(), 2);
    }
    let lr: Vec<f64> = [
        "sgd", "adam", "adamw", "adagrad", "rmsprop", "lbfgs", "lamb",
    ]
    .iter()
    .map(|n| Optimizer::new(n, vec![], &[], &[]).expect("new").lr()[0])
    .collect();
    assert_eq!(lr, vec![0.01, 0.001, 0.001, 0.01, 0.01, 1.0, 0.001]);
}

#[test]
fn settings_by_position_and_name() {
    let o = Optimizer::new(
        "adam",
        vec![],
        &[0.1.into(), 0.8.into()],
        &kw("amsgrad", true),
    )
    .expect("new");
    let names: Vec<String> = o.settings(0).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["lr", "beta1", "beta2", "eps", "decay", "amsgrad"]);
    assert_eq!(setting(&o, 0, "beta1"), Value::Float(0.8));
    assert_eq!(setting(&o, 0, "beta2"), Value::Float(0.999));
    assert_eq!(setting(&o, 0, "amsgrad"), Value::Bool(true));
    let w = Optimizer::new("adamw", vec![], &[], &[]).expect("adamw");
    assert_eq!(setting(&w, 0, "decay"), Value::Float(0.01));
    let l = Optimizer::new("lbfgs", vec![], &[], &kw("iter", 8)).expect("lbfgs");
    assert_eq!(setting(&l, 0, "eval"), Value::Int(10));
    assert_eq!(setting(&l, 0, "search"), Value::Null);
    let l = Optimizer::new("lbfgs", vec![], &[], &kw("search", "strong_wolfe")).expect("lbfgs");
    assert_eq!(setting(&l, 0, "search"), Value::Str("strong_wolfe".into()));
}

#[test]
fn invalid_settings() {
    let e = |name: &str, pos: &[Value], k: &[(String, Value)]| {
        Optimizer::new(name, vec![], pos, k)
            .expect_err("invalid")
            .to_string()
    };
    assert!(e("sgd", &[(-1.0).into()], &[]).starts_with("sgd: lr must be non-negative"));
    assert!(e("sgd", &[], &kw("nesterov", true)).starts_with("sgd: nesterov momentum requires"));
    assert!(e(
        "sgd",
        &[0.1.into(), 0.9.into(), 0.1.into(), 0.0.into(), true.into()],
        &[]
    )
    .contains("nesterov"));
    assert!(e("adam", &[], &kw("beta1", 1.0)).starts_with("adam: beta1 must be in the range [0,1)"));
    assert!(e("adamw", &[], &kw("eps", -1e-8)).starts_with("adamw: eps must be non-negative"));
    assert!(e("rmsprop", &[], &kw("momentum", -0.5)).starts_with("rmsprop: momentum"));
    assert!(e("adam", &[], &kw("foo", 1)).starts_with("adam: unrecognized option: foo"));
    assert!(e("lbfgs", &[], &kw("search", "backtrack"))
        .starts_with("lbfgs: search: unrecognized value"));
    assert!(e("lbfgs", &[], &kw("iter", 0)).starts_with("lbfgs: iter must be positive"));
    assert!(e("lamb", &[], &kw("trustmin", 2.0)).starts_with("lamb: trustmin"));
    assert!(e("nadam", &[], &[]).starts_with("opt: unrecognized optimizer: nadam"));
    assert!(e("sgd", &vec![Value::Float(0.1); 6], &[]).starts_with("sgd: expecting at most 5"));
}

#[test]
fn groups_start_from_defaults() {
    let ps = params();
    let mut o = Optimizer::new("sgd", vec![], &[0.1.into()], &kw("momentum", 0.9)).expect("new");
    assert_eq!(o.groups(), 0);
    assert_eq!(o.lr(), vec![0.1]);
    o.add(0, vec![ps[0].shallow_clone()], &[], &[])
        .expect("add 0");
    o.add(1, vec![ps[1].shallow_clone()], &[0.5.into()], &[])
        .expect("add 1");
    assert_eq!(o.groups(), 2);
    assert_eq!(o.lr(), vec![0.1, 0.5]);
    assert_eq!(setting(&o, 1, "momentum"), Value::Float(0.9));
    // past the last group: the defaults
    assert_eq!(setting(&o, 2, "lr"), Value::Float(0.1));
    // editing a group keeps its other settings and appends parameters
    o.add(1, one(), &[], &kw("dampening", 0.2)).expect("edit 1");
    assert_eq!(o.lr(), vec![0.1, 0.5]);
    assert_eq!(setting(&o, 1, "dampening"), Value::Float(0.2));
    assert_eq!(o.group_params(1).len(), 2);
    assert_eq!(o.params().len(), 3);
    assert!(o.group_params(5).is_empty());
}

#[test]
fn group_errors_change_nothing() {
    let mut o = Optimizer::new("adam", params(), &[], &[]).expect("new");
    o.add(1, one(), &[], &[]).expect("add");
    o.add(2, one(), &[], &[]).expect("add");
    let e = o
        .add(4, one(), &[], &[])
        .expect_err("g > groups")
        .to_string();
    assert_eq!(
        e,
        "opt: group 4 invalid, cannot be greater than number of groups(3)"
    );
    assert!(o
        .add(-1, one(), &[], &[])
        .expect_err("negative")
        .to_string()
        .starts_with("opt: group -1 invalid"));
    let before = o.settings(0);
    let e = o
        .add(0, one(), &[0.5.into()], &kw("beta2", 2.0))
        .expect_err("bad beta2")
        .to_string();
    assert!(e.starts_with("adam: beta2"));
    assert_eq!(o.settings(0), before);
    assert_eq!(o.group_params(0).len(), 2);
    let dup = o.group_params(1);
    assert!(o
        .add(0, dup, &[], &[])
        .expect_err("duplicate")
        .to_string()
        .starts_with("opt: some parameters"));
    assert_eq!(o.params().len(), 4);
}

#[test]
fn set_lr() {
    let mut o = Optimizer::new("rmsprop", params(), &[], &[]).expect("new");
    o.add(1, one(), &[0.5.into()], &[]).expect("add");
    o.set_lr(&[0.2, 0.3]).expect("per group");
    assert_eq!(o.lr(), vec![0.2, 0.3]);
    o.set_lr(&[0.05]).expect("all");
    assert_eq!(o.lr(), vec![0.05, 0.05]);
    assert!(o
        .set_lr(&[0.1, 0.2, 0.3])
        .expect_err("count")
        .to_string()
        .starts_with("lr: expecting 1 or 2"));
    assert!(o
        .set_lr(&[-0.1])
        .expect_err("negative")
        .to_string()
        .starts_with("lr: learning rate"));
    assert_eq!(o.lr(), vec![0.05, 0.05]);
    let mut e = Optimizer::new("sgd", vec![], &[], &[]).expect("empty");
    e.set_lr(&[0.7]).expect("default");
    assert_eq!(e.lr(), vec![0.7]);
}

#[test]
fn groups_use_their_own_settings() {
    let ps = params();
    let refs = copies(&ps);
    let mut o =
        Optimizer::new("sgd", vec![ps[0].shallow_clone()], &[0.1.into()], &[]).expect("new");
    o.add(1, vec![ps[1].shallow_clone()], &[0.3.into()], &[])
        .expect("add");
    let _ = backward(&ps);
    let _ = backward(&refs);
    o.step().expect("step");
    tch::no_grad(|| {
        for (r, lr) in refs.iter().zip([0.1, 0.3]) {
            let _ = r.shallow_clone().f_sub_(&(r.grad() * lr)).expect("sub");
        }
    });
    super::testutil::assert_close(&ps, &refs, 1e-6);
}

#[test]
fn undefined_gradients_are_skipped() {
    for name in ["sgd", "adam", "adamw", "adagrad", "rmsprop", "lamb"] {
        let p = one();
        let before = p[0].detach().copy();
        let mut o = Optimizer::new(
            name,
            p.iter().map(Tensor::shallow_clone).collect(),
            &[],
            &kw("decay", 0.1),
        )
        .expect("new");
        o.step().expect("step");
        assert!(
            p[0].equal(&before),
            "{name} changed a parameter without gradient"
        );
    }
}

#[test]
fn closure_steps() {
    let ps = params();
    let mut o = Optimizer::new(
        "sgd",
        ps.iter().map(Tensor::shallow_clone).collect(),
        &[],
        &[],
    )
    .expect("new");
    let l0 = crate::optim::testutil::loss(&ps).double_value(&[]);
    let mut n = 0;
    let loss = o
        .step_with(&mut || {
            n += 1;
            Ok(backward(&ps))
        })
        .expect("step_with");
    assert_eq!(n, 1);
    assert!((loss.double_value(&[]) - l0).abs() < 1e-7);
    assert!(crate::optim::testutil::loss(&ps).double_value(&[]) < l0);
    let mut l = Optimizer::new(
        "lbfgs",
        ps.iter().map(Tensor::shallow_clone).collect(),
        &[],
        &[],
    )
    .expect("lbfgs");
    assert!(l
        .step()
        .expect_err("needs closure")
        .to_string()
        .contains("closure"));
    assert!(l
        .add(1, one(), &[], &[])
        .expect_err("one group")
        .to_string()
        .starts_with("lbfgs: only one"));
    let mut empty = Optimizer::new("lbfgs", vec![], &[], &[]).expect("empty");
    assert!(empty.step_with(&mut || Ok(backward(&ps))).is_err());
}
