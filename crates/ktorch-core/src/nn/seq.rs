//! The original's containers besides sequential, residual and callback:
//!
//! - `seqnest`: a sequential that can sit inside another container; forward
//!   takes 1-3 tensors (all given to its first child) and returns one tensor.
//! - `seqjoin`: one or two sequential blocks (`qx`, `qy`) and a join module:
//!   `join(qx(x), qy(y))`, `y` defaulting to `x`; an empty or missing block
//!   passes its input through.
//! - `seqdict` / `seqlist`: sequential blocks by name / by position, taking up to
//!   8 tensors: the first runs through every block in turn, the others go to a
//!   block's first module as far as it takes them (`x = F(a); x = G(x, b, c)`).
//! - `fork`: two branches (`a`/`qa`, `b`/`qb`) on one input: `(f(x), g(x))`, a
//!   missing branch returning `x`.
//! - `recur`: an `lstm`, `gru` or `rnn` with optional sequential blocks `in`
//!   (before) and `out` (after); inputs and outputs are vectors: `(x[, h[, c]])`
//!   -> `(y, h[, c])`, the states detached unless option `detach` is false.
//! - `transform`: sequential blocks `train` and `eval`: the one of the module's
//!   mode runs (training or evaluation), none passes the input through.
//! - `moduledict` / `modulelist`: modules by name / by position (PyTorch's
//!   ModuleDict and ModuleList), without a forward calculation of their own.
//! - `parmdict`: parameters by name (PyTorch's ParameterDict), given as a dict
//!   of tensors, arrays or numbers, without a forward calculation.
//!
//! A child without a name takes the name the original gives it (`qx`, `a`,
//! `train`...); one with a name keeps it (except in `recur`, whose children are
//! always `in`, the recurrent module's type, and `out`, and `modulelist` and
//! `seqlist`, whose children are named by position).

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{want_inputs, Layer, Module};
use crate::value::Value;

/// Types with no forward calculation: they hold modules or parameters only.
pub(crate) const NO_FORWARD: &[&str] = &["moduledict", "modulelist", "parmdict"];

/// True for a sequential block: a `sequential` or a `seqnest`.
pub(crate) fn is_seq(m: &Module) -> bool {
    matches!(m.kind(), "sequential" | "seqnest")
}

/// The most tensors `m`'s forward takes (as the first module of a block in a
/// `seqdict` or `seqlist`): a block takes what its first module takes.
pub(crate) fn max_inputs(m: &Module) -> usize {
    match m.kind() {
        "sequential" => m.children().first().map_or(1, |(_, c)| max_inputs(c)),
        "seqnest" => m
            .children()
            .first()
            .map_or(1, |(_, c)| max_inputs(c).min(3)),
        "seqdict" | "seqlist" => 8,
        "callback" => usize::MAX,
        "lstm" | "recur" | "embedbag" | "selfattention" => 3,
        "rnn" | "gru" | "seqjoin" | "bilinear" | "cat" | "mul" | "matmul" | "pairwise"
        | "similar" | "fmaxpool2d" | "fmaxpool3d" => 2,
        _ => 1,
    }
}

/// Refuses a child without a forward calculation in a container that runs its children.
pub(crate) fn need_forward(kind: &str, kids: &[(String, Module)]) -> Result<()> {
    match kids.iter().find(|(_, c)| NO_FORWARD.contains(&c.kind())) {
        Some((k, c)) => Err(err(
            kind,
            format!(
                "cannot hold {} module `{k}`: it has no forward calculation",
                c.kind()
            ),
        )),
        None => Ok(()),
    }
}

/// Gives each unnamed child (no name of its own, keyed by its position) the
/// name `name` picks for it, then checks that names are used once.
fn rename(
    kind: &str,
    kids: Vec<(String, Module)>,
    name: impl Fn(usize, &Module) -> String,
) -> Result<Vec<(String, Module)>> {
    let mut out: Vec<(String, Module)> = Vec::with_capacity(kids.len());
    for (i, (k, c)) in kids.into_iter().enumerate() {
        let k = if c.name().is_none() && k == i.to_string() {
            name(i, &c)
        } else {
            k
        };
        if out.iter().any(|(o, _)| *o == k) {
            return Err(err(kind, format!("child name `{k}` used twice")));
        }
        out.push((k, c));
    }
    Ok(out)
}

/// A label for a child in messages: its type and key.
fn label(k: &str, c: &Module) -> String {
    format!("{} module `{k}`", c.kind())
}

/// Builds one of this file's containers with its children.
pub(crate) fn build(
    kind: &str,
    pos: &[Value],
    kw: &[(String, Value)],
    kids: Vec<(String, Module)>,
) -> Result<Module> {
    if kind == "parmdict" {
        return parmdict(pos, kw, kids);
    }
    let detach = if kind == "recur" {
        Args::parse(kind, &["detach"], pos, kw)?.bool("detach", true)?
    } else {
        Args::parse(kind, &[], pos, kw)?;
        true
    };
    let (mut m, kids) = match kind {
        "seqnest" => {
            need_forward(kind, &kids)?;
            (Module::new(kind, SeqNest), kids)
        }
        "seqjoin" => (Module::new(kind, SeqJoin), seqjoin(kids)?),
        "seqdict" | "seqlist" => {
            if let Some((k, c)) = kids.iter().find(|(_, c)| !is_seq(c)) {
                return Err(err(
                    kind,
                    format!("expecting sequential modules, given {}", label(k, c)),
                ));
            }
            let kids = if kind == "seqlist" {
                positions(kids)
            } else {
                kids
            };
            (Module::new(kind, SeqChain), kids)
        }
        "fork" => {
            need_forward(kind, &kids)?;
            if kids.len() > 2 {
                return Err(err(
                    kind,
                    format!(
                        "cannot add {}: both left and right forks already defined",
                        label(&kids[2].0, &kids[2].1)
                    ),
                ));
            }
            let kids = rename(kind, kids, |i, c| {
                let side = if i == 0 { "a" } else { "b" };
                if is_seq(c) {
                    format!("q{side}")
                } else {
                    side.to_string()
                }
            })?;
            (Module::new(kind, Fork), kids)
        }
        "recur" => {
            let (kids, r) = recur(kids, detach)?;
            (Module::new(kind, r), kids)
        }
        "transform" => {
            if let Some((k, c)) = kids.iter().find(|(_, c)| !is_seq(c)) {
                return Err(err(
                    kind,
                    format!("cannot add {}: expecting sequential modules", label(k, c)),
                ));
            }
            if kids.len() > 2 {
                return Err(err(
                    kind,
                    "both training and evaluation transforms already defined: expecting at most 2 sequential modules",
                ));
            }
            let kids = rename(kind, kids, |i, _| {
                if i == 0 { "train" } else { "eval" }.to_string()
            })?;
            (Module::new(kind, Transform), kids)
        }
        "moduledict" => (Module::new(kind, NoForward), kids),
        "modulelist" => (Module::new(kind, NoForward), positions(kids)),
        _ => return Err(crate::nn::unknown(kind)),
    };
    for (k, c) in kids {
        m = m.with_child(&k, c);
    }
    Ok(m)
}

/// Children keyed by position, whatever their names (a list).
fn positions(kids: Vec<(String, Module)>) -> Vec<(String, Module)> {
    kids.into_iter()
        .enumerate()
        .map(|(i, (_, c))| (i.to_string(), c))
        .collect()
}

/// Checks a `seqjoin`'s children, one or two sequential blocks then a join
/// module, and names those without a name `qx`, `qy` and `join`.
fn seqjoin(kids: Vec<(String, Module)>) -> Result<Vec<(String, Module)>> {
    let kind = "seqjoin";
    need_forward(kind, &kids)?;
    let mut seqs = 0;
    let mut join = false;
    for (k, c) in &kids {
        if join {
            return Err(err(
                kind,
                format!(
                    "cannot add {}: the join module is already defined, it comes last",
                    label(k, c)
                ),
            ));
        }
        if is_seq(c) {
            if seqs == 2 {
                return Err(err(
                    kind,
                    format!(
                        "cannot add {}: both sequential modules already defined",
                        label(k, c)
                    ),
                ));
            }
            seqs += 1;
        } else if seqs == 0 {
            return Err(err(
                kind,
                format!(
                    "cannot add {}: at least one sequential module must be defined before the join module",
                    label(k, c)
                ),
            ));
        } else {
            join = true;
        }
    }
    if !join {
        return Err(err(
            kind,
            "join module not defined: expecting one or two sequential modules, then a module joining their outputs",
        ));
    }
    rename(kind, kids, |i, c| {
        if !is_seq(c) {
            "join"
        } else if i == 0 {
            "qx"
        } else {
            "qy"
        }
        .to_string()
    })
}

/// Checks a `recur`'s children: an optional sequential block for the input, an
/// `lstm`, `gru` or `rnn`, an optional sequential block for the output.
fn recur(kids: Vec<(String, Module)>, detach: bool) -> Result<(Vec<(String, Module)>, Recur)> {
    let kind = "recur";
    let mut r = Recur {
        detach,
        input: None,
        cell: None,
        output: None,
    };
    let mut out = Vec::with_capacity(kids.len());
    for (i, (k, c)) in kids.into_iter().enumerate() {
        let key = if is_seq(&c) {
            if r.cell.is_none() {
                if r.input.is_some() {
                    return Err(err(
                        kind,
                        format!(
                            "cannot add {}: a sequential module for output processing needs a recurrent module (lstm, gru, rnn) before it",
                            label(&k, &c)
                        ),
                    ));
                }
                r.input = Some(i);
                "in".to_string()
            } else {
                if r.output.is_some() {
                    return Err(err(
                        kind,
                        format!(
                            "cannot add {}: sequential module for output processing already added",
                            label(&k, &c)
                        ),
                    ));
                }
                r.output = Some(i);
                "out".to_string()
            }
        } else if matches!(c.kind(), "lstm" | "gru" | "rnn") {
            if let Some(j) = r.cell {
                let had: &(String, Module) = &out[j];
                return Err(err(
                    kind,
                    format!(
                        "cannot add {} module, {} module already defined",
                        c.kind(),
                        had.1.kind()
                    ),
                ));
            }
            r.cell = Some(i);
            c.kind().to_string()
        } else {
            return Err(err(
                kind,
                format!(
                    "unable to add {}, expecting sequential modules for input/output processing or a recurrent module (lstm, gru, rnn)",
                    label(&k, &c)
                ),
            ));
        };
        out.push((key, c));
    }
    if r.cell.is_none() {
        return Err(err(kind, "no recurrent lstm, gru or rnn module defined"));
    }
    Ok((out, r))
}

/// Builds a `parmdict`: a parameter for each setting by name (a tensor, an array,
/// a number or a list of numbers; numbers become float32, tensors keep their
/// floating dtype, the `dtype` option converts them all).
fn parmdict(pos: &[Value], kw: &[(String, Value)], kids: Vec<(String, Module)>) -> Result<Module> {
    let kind = "parmdict";
    if !pos.is_empty() {
        return Err(err(
            kind,
            format!(
                "expecting parameters by name in a dict, given {} setting(s) by position",
                pos.len()
            ),
        ));
    }
    if let Some((k, c)) = kids.first() {
        return Err(err(
            kind,
            format!("cannot hold child modules, given {}", label(k, c)),
        ));
    }
    crate::args::record_named(Vec::new());
    let mut m = Module::new(kind, NoForward);
    for (k, v) in kw {
        if k.is_empty() || k.contains('.') {
            return Err(err(
                kind,
                format!("parameter name `{k}` must be non-empty, without dots"),
            ));
        }
        let t = match v {
            Value::Tensor(t) => {
                if !t.is_floating_point() && !t.is_complex() {
                    return Err(err(
                        kind,
                        format!(
                            "parameter {k} must be a floating-point tensor to take gradients, given {}",
                            crate::tensor::kinds::dtype_name(t)
                        ),
                    ));
                }
                t.f_detach_copy()?
            }
            Value::Int(_) | Value::Float(_) => {
                Tensor::from(v.as_float(k).map_err(|e| e.named(kind))?)
                    .f_to_kind(tch::Kind::Float)?
            }
            Value::List(_) | Value::Tuple(_) => {
                Tensor::from_slice(&v.as_floats(k).map_err(|e| e.named(kind))?)
                    .f_to_kind(tch::Kind::Float)?
            }
            v => {
                return Err(err(
                    kind,
                    format!(
                        "parameter {k} expects a tensor, an array or numbers, given {}",
                        v.type_name()
                    ),
                ))
            }
        };
        m = m.with_param(k, t)?;
    }
    Ok(m)
}

/// Runs `m` on `xs` when it has children, else passes `xs[0]` through.
fn block(m: Option<&Module>, xs: &[Tensor]) -> Result<Tensor> {
    match m {
        Some(c) if !c.children().is_empty() => c.forward_first(xs),
        _ => Ok(xs[0].shallow_clone()),
    }
}

/// A sequential inside a container: 1-3 inputs, one output.
#[derive(Debug, Clone)]
struct SeqNest;

impl Layer for SeqNest {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 3)?;
        let mut cur: Vec<Tensor> = xs.iter().map(Tensor::shallow_clone).collect();
        for (_, c) in m.children() {
            cur = vec![c.forward_first(&cur)?];
        }
        cur.truncate(1);
        Ok(cur)
    }
    layer_clone!();
}

/// `join(qx(x), qy(y))`.
#[derive(Debug, Clone)]
struct SeqJoin;

impl Layer for SeqJoin {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 2)?;
        let kids = m.children();
        let (join, seqs) = kids.split_last().expect("seqjoin has a join module");
        let x = &xs[0];
        let y = xs.get(1).unwrap_or(x);
        let a = block(seqs.first().map(|(_, c)| c), std::slice::from_ref(x))?;
        let b = block(seqs.get(1).map(|(_, c)| c), std::slice::from_ref(y))?;
        Ok(vec![join.1.forward_first(&[a, b])?])
    }
    layer_clone!();
}

/// Sequential blocks in turn (`seqdict`, `seqlist`), up to 8 inputs.
#[derive(Debug, Clone)]
struct SeqChain;

impl Layer for SeqChain {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 8)?;
        let mut x = xs[0].shallow_clone();
        for (_, q) in m.children() {
            let Some((_, first)) = q.children().first() else {
                continue;
            };
            let n = xs.len().min(max_inputs(first));
            let mut ins = Vec::with_capacity(n);
            ins.push(x);
            ins.extend(xs[1..n].iter().map(Tensor::shallow_clone));
            x = q.forward_first(&ins)?;
        }
        Ok(vec![x])
    }
    layer_clone!();
}

/// `(f(x), g(x))`, a missing branch giving `x`.
#[derive(Debug, Clone)]
struct Fork;

impl Layer for Fork {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let kids = m.children();
        let side = |i: usize| match kids.get(i) {
            Some((_, c)) => c.forward_first(xs),
            None => Ok(xs[0].shallow_clone()),
        };
        Ok(vec![side(0)?, side(1)?])
    }
    layer_clone!();
}

/// A recurrent module between optional input and output blocks (child positions).
#[derive(Debug, Clone)]
struct Recur {
    detach: bool,
    input: Option<usize>,
    cell: Option<usize>,
    output: Option<usize>,
}

impl Layer for Recur {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 3)?;
        let kids = m.children();
        let child = |i: Option<usize>| i.map(|i| &kids[i].1);
        let mut ins = Vec::with_capacity(xs.len());
        ins.push(block(child(self.input), &xs[..1])?);
        ins.extend(xs[1..].iter().map(Tensor::shallow_clone));
        let cell = child(self.cell).expect("recur has a recurrent module");
        let mut out = cell.forward(&ins)?;
        if out.is_empty() {
            return Err(err(m.kind(), "the recurrent module returned no output"));
        }
        if self.detach {
            for t in out.iter_mut().skip(1) {
                *t = t.f_detach()?;
            }
        }
        out[0] = block(child(self.output), &out[..1])?;
        Ok(out)
    }
    layer_clone!();
}

/// The `train` block in training mode, the `eval` block in evaluation mode.
#[derive(Debug, Clone)]
struct Transform;

impl Layer for Transform {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let i = if m.is_training() { 0 } else { 1 };
        Ok(vec![block(m.children().get(i).map(|(_, c)| c), xs)?])
    }
    layer_clone!();
}

/// A container of modules or parameters, without a forward calculation.
#[derive(Debug, Clone)]
struct NoForward;

impl Layer for NoForward {
    fn forward(&self, m: &Module, _xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let what = if m.kind() == "parmdict" {
            "parameters"
        } else {
            "modules"
        };
        Err(err(
            m.kind(),
            format!("no forward calculation defined: it holds {what}, to be used one by one"),
        ))
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use crate::nn::{layers, Module};
    use crate::state::ModuleState;
    use crate::value::Value;

    fn leaf(kind: &str) -> Module {
        Module::layer(kind, &[], &[]).expect(kind)
    }

    fn seq(kids: Vec<Module>) -> Module {
        Module::sequential(kids).expect("sequential")
    }

    fn keys(m: &Module) -> Vec<&str> {
        m.children().iter().map(|(k, _)| k.as_str()).collect()
    }

    fn x() -> Tensor {
        Tensor::from_slice(&[-3.0f32, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    }

    #[test]
    fn fork_names_and_outputs() {
        let f =
            Module::container("fork", [leaf("sigmoid"), seq(vec![leaf("relu")])]).expect("fork");
        assert_eq!(keys(&f), ["a", "qb"]);
        let out = f.forward(&[x()]).expect("forward");
        assert_eq!(out.len(), 2);
        assert!(out[0].allclose(&x().sigmoid(), 1e-6, 1e-6, false));
        assert!(out[1].equal(&x().relu()));
    }

    #[test]
    fn seqjoin_joins_blocks() {
        let q = Module::container("seqjoin", [seq(vec![leaf("relu")]), leaf("matmul")])
            .expect("seqjoin");
        assert_eq!(keys(&q), ["qx", "join"]);
        let y = q.forward_first(&[x()]).expect("forward");
        assert_eq!(y.double_value(&[]), 14.0);
    }

    #[test]
    fn seqdict_passes_extra_inputs() {
        let a = seq(vec![leaf("sigmoid")]).named("a");
        let b = seq(vec![leaf("cat")]).named("b");
        let q = Module::container("seqdict", [a, b]).expect("seqdict");
        let y = Tensor::from_slice(&[99.0f32, 100.0]);
        let out = q.forward_first(&[x(), y]).expect("forward");
        assert_eq!(out.size(), [9]);
        assert_eq!(out.double_value(&[8]), 100.0);
    }

    #[test]
    fn recur_uniform_vectors_and_state() {
        let lstm = Module::layer("lstm", &[Value::Int(3), Value::Int(4)], &[]).expect("lstm");
        let out = seq(vec![layers::linear(4, 2).expect("linear")]);
        let q = Module::container("recur", [lstm, out]).expect("recur");
        assert_eq!(keys(&q), ["lstm", "out"]);
        let x = Tensor::randn([5, 2, 3], (Kind::Float, Device::Cpu));
        let v = q.forward(&[x.shallow_clone()]).expect("forward");
        let sizes: Vec<Vec<i64>> = v.iter().map(Tensor::size).collect();
        assert_eq!(sizes, [vec![5, 2, 2], vec![1, 2, 4], vec![1, 2, 4]]);
        assert!(v[0].requires_grad() && !v[1].requires_grad() && !v[2].requires_grad());
        let v2 = q
            .forward(&[x, v[1].shallow_clone(), v[2].shallow_clone()])
            .expect("again");
        assert_eq!(v2.len(), 3);
    }

    #[test]
    fn transform_follows_the_mode() {
        let flip = Module::layer("randomflip", &[Value::Float(1.0)], &[]).expect("flip");
        let mut t = Module::container("transform", [seq(vec![flip])]).expect("transform");
        assert_eq!(keys(&t), ["train"]);
        let x = x().reshape([1, 7]);
        let y = t.forward_first(&[x.shallow_clone()]).expect("train");
        assert!(y.equal(&x.flip([1])));
        t.set_training(false);
        assert!(t
            .forward_first(&[x.shallow_clone()])
            .expect("eval")
            .equal(&x));
    }

    #[test]
    fn dicts_lists_and_parameters() {
        let d =
            Module::container("moduledict", [leaf("relu").named("r"), leaf("tanh")]).expect("dict");
        assert_eq!(keys(&d), ["r", "1"]);
        assert!(d.forward(&[x()]).is_err());
        let l =
            Module::container("modulelist", [leaf("relu").named("r"), leaf("tanh")]).expect("list");
        assert_eq!(keys(&l), ["0", "1"]);
        let w = Value::Tensor(Tensor::ones([2, 3], (Kind::Double, Device::Cpu)));
        let p = Module::layer(
            "parmdict",
            &[],
            &[("w".into(), w), ("b".into(), Value::Float(0.5))],
        )
        .expect("parmdict");
        assert_eq!(p.parmnames(), ["w", "b"]);
        assert_eq!(p.param("w").expect("w").kind(), Kind::Double);
        assert_eq!(p.param("b").expect("b").kind(), Kind::Float);
        // its state keeps the parameters once and builds it again
        let s = ModuleState::of(&p).expect("state");
        assert!(s.options.is_empty());
        let q = s.build().expect("build");
        assert_eq!(q.parmnames(), ["w", "b"]);
        assert!(q.param("w").expect("w").equal(&p.param("w").expect("w")));
        let e = Module::sequential([p]).expect_err("no forward");
        assert!(
            e.to_string().contains("cannot hold parmdict module `0`"),
            "{e}"
        );
    }

    #[test]
    fn state_rebuilds_containers_with_their_children() {
        let f = Module::container(
            "fork",
            [
                layers::linear(3, 2).expect("linear"),
                seq(vec![leaf("relu")]),
            ],
        )
        .expect("fork");
        let s = ModuleState::of(&f).expect("state");
        let g = s.build().expect("build");
        assert_eq!(keys(&g), ["a", "qb"]);
        let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let (a, b) = (
            f.forward(&[x.shallow_clone()]).expect("f"),
            g.forward(&[x]).expect("g"),
        );
        assert!(a[0].equal(&b[0]) && a[1].equal(&b[1]));
    }
}
