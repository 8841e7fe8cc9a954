//! Optimizers: opt(name, parameters, *settings), parameter groups, lr.

use ktorch_core::sync::{Domain, Shared};
use ktorch_core::{Optimizer, Params};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::{settings, to_value};
use crate::errors::Res;
use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains, Gate};
use crate::handles::{obj, Obj, PyOptimizer};

/// The parameters an optimizer made from a handle takes, read inside a call:
/// a model's module's parameters (`opt(name, model)` optimizes the model's
/// module), else the holder's own ([`Params::parameters`]).
fn params(g: &Gate, o: &Obj) -> Res<Vec<tch::Tensor>> {
    Ok(match o {
        Obj::Module(m) => Params::parameters(&*g.lock(m)?)?,
        Obj::Model(m) => {
            let q = g.lock(m)?.module().clone();
            let ps = Params::parameters(&*g.lock(&q)?)?;
            ps
        }
        Obj::Tensors(t) => g.lock(t)?.parameters()?,
        Obj::Opt(o) => Params::parameters(&*g.lock(o)?)?,
        Obj::Loss(_) => unreachable!(),
    })
}

/// The handle `x` as a source of parameters; None if it is not a handle.
fn source(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Option<Obj>> {
    match obj(func, x)? {
        Some(Obj::Loss(_)) => Err(type_error(func, "a Loss has no parameters to optimize")),
        o => Ok(o),
    }
}

/// opt(name) -> Optimizer
/// opt(name, parameters, *settings, **options) -> Optimizer
/// opt(o, group, parameters, *settings) -> None
/// opt(state, parameters) -> Optimizer
///
/// Makes an optimizer, or adds or edits a parameter group of one, or builds the
/// optimizer a `state(o)` describes (settings, groups, each parameter's state) over
/// `parameters` (a Module or Model: matched by parameter name where the state names
/// them, else in order; every shape must match).
///
/// - name: `"sgd"`, `"adam"`, `"adamw"`, `"adagrad"`, `"rmsprop"`, `"lbfgs"`, `"lamb"`.
/// - parameters: a Module, Model, Tensor, Vector or Dict; left out, an empty optimizer.
/// - settings: by position in the optimizer's order (sgd: lr, momentum, dampening,
///   decay, nesterov) or by name; e.g. `opt("sgd", q, .2, .99)`, `opt("adam", q, lr=1e-3)`.
/// - group: equal to the number of groups adds a group (from the defaults), less edits
///   that group and appends the parameters, more is an error.
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn opt(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let f = "opt";
    let first = args
        .get_item(0)
        .map_err(|_| type_error(f, "expecting an optimizer name or an Optimizer"))?;
    if crate::objstate::is_opt_state(&first) {
        if args.len() > 2 || kw.is_some() {
            return Err(type_error(f, "expecting (state, parameters)"));
        }
        let src = match args.get_item(1) {
            Ok(x) => Some(source(f, &x)?.ok_or_else(|| {
                type_error(
                    f,
                    "parameters expects a Module, Model, Optimizer, Tensor, Vector or Dict",
                )
            })?),
            Err(_) => None,
        };
        let (o, own) = crate::objstate::opt_from(py, f, &first, src)?;
        return Ok(Py::new(py, PyOptimizer::new(Shared::with_domains(o, own)))?.into_any());
    }
    if let Ok(name) = first.downcast::<PyString>() {
        let (src, rest) = match args.get_item(1) {
            Ok(x) => match source(f, &x)? {
                Some(o) => (Some(o), args.iter().skip(2).collect::<Vec<_>>()),
                None => (None, args.iter().skip(1).collect()),
            },
            Err(_) => (None, vec![]),
        };
        let (pos, opts) = settings(f, &rest, kw)?;
        let name = name.to_str()?.to_string();
        // the optimizer shares its parameters' domains: it is locked with them
        let ds: Vec<Domain> = src.as_ref().map(Obj::domains).unwrap_or_default();
        let own = ds.clone();
        let o = call(py, f, ds, move |g| {
            let ps = match &src {
                Some(o) => params(g, o)?,
                None => vec![],
            };
            let mut o = Optimizer::new(&name, ps, &pos, &opts)?;
            if let Some(s @ (Obj::Module(_) | Obj::Model(_))) = &src {
                o.name_params(&crate::objstate::named_params(g, s)?);
            }
            Ok(o)
        })?;
        return Ok(Py::new(py, PyOptimizer::new(Shared::with_domains(o, own)))?.into_any());
    }
    let Some(Obj::Opt(o)) = obj(f, &first)? else {
        return Err(type_error(
            f,
            format!(
                "expecting an optimizer name or an Optimizer, given {}",
                first.get_type().name()?
            ),
        ));
    };
    if args.len() < 3 {
        return Err(type_error(
            f,
            "expecting (optimizer, group, parameters, *settings)",
        ));
    }
    let grp: i64 = args
        .get_item(1)?
        .extract()
        .map_err(|_| type_error(f, "group expects an integer"))?;
    let src = source(f, &args.get_item(2)?)?.ok_or_else(|| {
        type_error(
            f,
            "parameters expects a Module, Model, Tensor, Vector or Dict",
        )
    })?;
    let rest: Vec<_> = args.iter().skip(3).collect();
    let (pos, opts) = settings(f, &rest, kw)?;
    let added = src.domains();
    let ds = domains([o.domains(), added.clone()]);
    call(py, f, ds, move |g| {
        let ps = params(g, &src)?;
        let named = match &src {
            Obj::Module(_) | Obj::Model(_) => crate::objstate::named_params(g, &src)?,
            _ => Vec::new(),
        };
        let mut s = g.lock(&o)?;
        s.add(grp, ps, &pos, &opts)?;
        s.name_params(&named);
        drop(s);
        // from now on the optimizer is locked with its new parameters' owners too
        o.add_domains(&added);
        Ok(())
    })?;
    Ok(py.None())
}

/// lr(o) -> list of float
/// lr(m) -> list of float
/// lr(o, r) -> None
///
/// The learning rate of each parameter group of an optimizer (or a model's); with `r`
/// (one rate, or one per group), sets them.
#[pyfunction]
#[pyo3(signature = (x, r=None))]
pub fn lr(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    r: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<f64>>> {
    let f = "lr";
    let o = match obj(f, x)? {
        Some(o @ (Obj::Opt(_) | Obj::Model(_))) => o,
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting an Optimizer or Model, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    };
    let rates = match r {
        None => None,
        Some(r) => Some(to_value(f, r)?.as_floats("rate").py_for(f)?.to_vec()),
    };
    let ds = o.domains();
    call(py, f, ds, move |g| {
        let s = match &o {
            Obj::Opt(s) => s.clone(),
            Obj::Model(m) => g.lock(m)?.optimizer().clone(),
            _ => unreachable!(),
        };
        let mut s = g.lock(&s)?;
        match rates {
            None => Ok(Some(s.lr())),
            Some(v) => {
                s.set_lr(&v)?;
                Ok(None)
            }
        }
    })
}
