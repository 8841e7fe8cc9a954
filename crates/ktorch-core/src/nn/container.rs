//! Containers: sequential, identity, residual and callback modules here; the
//! original's other containers (seqnest, seqjoin, seqdict, seqlist, fork, recur,
//! transform, moduledict, modulelist, parmdict) in [`super::seq`].

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, invalid, Named, Result};
use crate::nn::{seq, spec::Given, want_inputs, CallbackFn, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "sequential",
    "identity",
    "residual",
    "callback",
    "seqnest",
    "seqjoin",
    "seqdict",
    "seqlist",
    "fork",
    "recur",
    "transform",
    "moduledict",
    "modulelist",
    "parmdict",
];

pub(crate) fn build(g: &Given, kids: Vec<(String, Module)>) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let mut m = match kind {
        "sequential" => {
            Args::parse(kind, &[], pos, kw)?;
            seq::need_forward(kind, &kids)?;
            Module::new(kind, Sequential)
        }
        "identity" => {
            Args::parse(kind, &[], pos, kw)?;
            Module::new(kind, Identity)
        }
        "residual" => {
            Args::parse(kind, &[], pos, kw)?;
            seq::need_forward(kind, &kids)?;
            if kids.is_empty() || kids.len() > 2 {
                return Err(err(
                    kind,
                    format!("expects 1 or 2 child modules, given {}", kids.len()),
                ));
            }
            Module::new(kind, Residual)
        }
        "callback" => return callback(pos, kw, kids),
        _ => return seq::build(kind, pos, kw, kids),
    };
    for (k, c) in kids {
        m = m.with_child(&k, c);
    }
    Ok(m)
}

macro_rules! layer_clone {
    () => {
        fn clone_box(&self) -> Box<dyn Layer> {
            Box::new(self.clone())
        }
    };
}
pub(crate) use layer_clone;

/// Runs children in order, passing each child's first output to the next.
#[derive(Debug, Clone)]
struct Sequential;

impl Layer for Sequential {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut cur: Vec<Tensor> = xs.iter().map(Tensor::shallow_clone).collect();
        for (_, c) in m.children() {
            let out = c.forward(&cur)?;
            cur = out.into_iter().take(1).collect();
        }
        Ok(cur)
    }
    layer_clone!();
}

/// Returns its inputs.
#[derive(Debug, Clone)]
struct Identity;

impl Layer for Identity {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, usize::MAX)?;
        Ok(xs.iter().map(Tensor::shallow_clone).collect())
    }
    layer_clone!();
}

/// `child1(x) + x`, or `child1(x) + child2(x)` with two children.
#[derive(Debug, Clone)]
struct Residual;

impl Layer for Residual {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let kids = m.children();
        let a = kids[0].1.forward_first(xs)?;
        let b = match kids.get(1) {
            Some((_, c)) => c.forward_first(xs)?,
            None => xs[0].shallow_clone(),
        };
        Ok(vec![a.f_add(&b)?])
    }
    layer_clone!();
}

/// A forward function supplied by the caller, with parameters and buffers
/// declared in the spec's `parms` and `buffers` dicts.
#[derive(Clone)]
struct Callback(CallbackFn);

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callback")
    }
}

impl Layer for Callback {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.0.call(m, xs)
    }
    layer_clone!();
    fn callback(&self) -> Option<&CallbackFn> {
        Some(&self.0)
    }
}

fn callback(pos: &[Value], kw: &[(String, Value)], kids: Vec<(String, Module)>) -> Result<Module> {
    let a = Args::parse("callback", &["fn", "parms", "buffers"], pos, kw)?;
    let f = match a.get("fn") {
        Some(Value::Callable(f)) => match f.downcast_ref::<CallbackFn>() {
            Some(f) => f.clone(),
            None => return Err(err("callback", "fn expects a forward function")),
        },
        Some(v) => {
            return Err(err(
                "callback",
                format!("fn expects a callable, given {}", v.type_name()),
            ))
        }
        None => return Err(err("callback", "fn not defined")),
    };
    let mut m = Module::new("callback", Callback(f));
    for (which, key) in [(true, "parms"), (false, "buffers")] {
        match a.get(key) {
            None => {}
            Some(Value::Dict(d)) => {
                for (k, v) in d {
                    let t = value_tensor(k, v).named("callback")?;
                    m = if which {
                        m.with_param(k, t)?
                    } else {
                        m.with_buffer(k, t)
                    };
                }
            }
            Some(v) => {
                return Err(err(
                    "callback",
                    format!(
                        "{key} expects a dict of names to values, given {}",
                        v.type_name()
                    ),
                ))
            }
        }
    }
    for (k, c) in kids {
        m = m.with_child(&k, c);
    }
    Ok(m)
}

/// A tensor from a number, a list of numbers or a tensor (a copy, detached).
fn value_tensor(name: &str, v: &Value) -> Result<Tensor> {
    match v {
        Value::Tensor(t) => Ok(t.f_detach_copy()?),
        Value::Int(i) => Ok(Tensor::from(*i as f64)),
        Value::Float(f) => Ok(Tensor::from(*f)),
        Value::List(_) | Value::Tuple(_) => Ok(Tensor::from_slice(&v.as_floats(name)?)),
        v => Err(invalid(format!(
            "{name} expects numbers or a tensor, given {}",
            v.type_name()
        ))),
    }
}
