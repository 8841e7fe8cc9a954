//! Optimizers: opt(name, parameters, *settings), parameter groups, lr.

use ktorch_core::sync::{Domain, Shared};
use ktorch_core::tensor::{Class, Key};
use ktorch_core::{Optimizer, Params};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::convert::{settings, to_value};
use crate::errors::Res;
use crate::errors::{ktorch_error, type_error, IntoPy};
use crate::gate::{call, domains, Gate};
use crate::handles::{obj, Obj, PyOptimizer};

/// Where an optimizer's parameters come from.
enum Source {
    /// None (an empty list or tuple: `opt("sgd", [], .1)`, `opt(o, 1, [], .01)`).
    Empty,
    /// A handle's parameters, or those of its members or children selected by
    /// index or name: `(v, 1)`, `(d, ["b", "a"])`, `(q, 0)`, `(q, ["b", "a"])`.
    Of(Obj, Option<Vec<Key>>),
}

impl Source {
    fn domains(&self) -> Vec<Domain> {
        match self {
            Source::Empty => Vec::new(),
            Source::Of(o, _) => o.domains(),
        }
    }
}

/// A selection's keys: indices and names, one or a list of them.
fn keys(func: &str, xs: &[Bound<'_, PyAny>]) -> PyResult<Vec<Key>> {
    let mut out = Vec::new();
    for x in xs {
        if let Ok(l) = x.downcast::<PyList>() {
            out.extend(keys(func, &l.iter().collect::<Vec<_>>())?);
        } else if let Ok(s) = x.downcast::<PyString>() {
            out.push(Key::Name(s.to_str()?.to_string()));
        } else if x.is_instance_of::<PyInt>() && !x.is_instance_of::<PyBool>() {
            let i: i64 = x.extract().map_err(|_| {
                ktorch_error(func, "selection index out of range for a 64-bit integer")
            })?;
            if i < 0 {
                return Err(ktorch_error(
                    func,
                    format!("selection index {i} invalid, must be non-negative"),
                ));
            }
            out.push(Key::Index(i));
        } else {
            return Err(type_error(
                func,
                format!(
                    "a selection of parameters expects indices or names, given {}",
                    x.get_type().name()?
                ),
            ));
        }
    }
    Ok(out)
}

/// `x` as a source of parameters: a handle, a handle with a selection, or an empty
/// list; None for anything else (a setting).
fn source(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Option<Source>> {
    let handle = |h: &Bound<'_, PyAny>| -> PyResult<Option<Obj>> {
        match obj(func, h)? {
            Some(Obj::Loss(_)) => Err(type_error(func, "a Loss has no parameters to optimize")),
            o => Ok(o),
        }
    };
    if let Some(o) = handle(x)? {
        return Ok(Some(Source::Of(o, None)));
    }
    let items: Vec<Bound<'_, PyAny>> = if let Ok(t) = x.downcast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = x.downcast::<PyList>() {
        l.iter().collect()
    } else {
        return Ok(None);
    };
    let Some(first) = items.first() else {
        return Ok(Some(Source::Empty));
    };
    let Some(o) = handle(first)? else {
        return Ok(None);
    };
    let sel = keys(func, &items[1..])?;
    if sel.is_empty() {
        return Err(ktorch_error(
            func,
            "empty selection: give indices or names after the handle, or the handle alone",
        ));
    }
    if matches!(o, Obj::Opt(_)) {
        return Err(type_error(
            func,
            "an Optimizer's parameters are taken whole, not selected",
        ));
    }
    Ok(Some(Source::Of(o, Some(sel))))
}

/// The parameters a source gives, read inside a call, and their names where known:
/// a model's module's parameters (`opt(name, model)` optimizes the model's module), else
/// the holder's own ([`Params::parameters`]); a selection's members or children.
/// Parameters, and those of them with a name.
type Picked = (Vec<tch::Tensor>, Vec<(String, tch::Tensor)>);

fn params(g: &Gate, s: &Source) -> Res<Picked> {
    let (o, sel) = match s {
        Source::Empty => return Ok((Vec::new(), Vec::new())),
        Source::Of(o, sel) => (o, sel),
    };
    let module = |o: &Obj| -> Res<Option<Shared<ktorch_core::Module>>> {
        Ok(match o {
            Obj::Module(m) => Some(m.clone()),
            Obj::Model(m) => Some(g.lock(m)?.module().clone()),
            _ => None,
        })
    };
    let Some(keys) = sel else {
        let ps = match o {
            Obj::Module(m) => Params::parameters(&*g.lock(m)?)?,
            Obj::Model(_) => {
                let q = module(o)?.expect("a model's module");
                let ps = Params::parameters(&*g.lock(&q)?)?;
                ps
            }
            Obj::Tensors(t) => g.lock(t)?.parameters()?,
            Obj::Opt(o) => Params::parameters(&*g.lock(o)?)?,
            Obj::Loss(_) => unreachable!(),
        };
        let named = match o {
            Obj::Module(_) | Obj::Model(_) => crate::objstate::named_params(g, o)?,
            _ => Vec::new(),
        };
        return Ok((ps, named));
    };
    let mut named = Vec::new();
    if let Some(q) = module(o)? {
        let q = g.lock(&q)?;
        for k in keys {
            let path = match k {
                Key::Name(n) => n.clone(),
                Key::Index(i) => {
                    let i = *i as usize;
                    match q.children().get(i) {
                        Some((name, _)) => name.clone(),
                        None => {
                            return Err(ktorch_core::error::invalid(format!(
                                "child index {i} invalid for a module of {} child(ren)",
                                q.children().len()
                            ))
                            .into())
                        }
                    }
                }
            };
            for (n, t) in q.child(&path)?.named_parameters() {
                named.push((format!("{path}.{n}"), t));
            }
        }
    } else if let Obj::Tensors(t) = o {
        let t = g.lock(t)?;
        if t.class() == Class::Tensor {
            return Err(ktorch_core::error::invalid(
                "a tensor has no members to select: give the Tensor alone",
            )
            .into());
        }
        for k in keys {
            let i = match k {
                Key::Name(n) => t.index_of(n)?,
                Key::Index(i) => t.check_index(*i)?,
            };
            let name = t.names().get(i).cloned().unwrap_or_else(|| i.to_string());
            named.push((name, t.full()[i].shallow_clone()));
        }
    }
    let ps = named.iter().map(|(_, t)| t.shallow_clone()).collect();
    Ok((ps, named))
}

/// The definition of an optimizer (`opt(o)`): its type, each group's settings and each
/// parameter's group, name and size.
fn definition(py: Python<'_>, f: &str, o: Shared<Optimizer>) -> PyResult<PyObject> {
    type Row = (usize, Option<String>, Vec<i64>);
    type Groups = Vec<Vec<(String, ktorch_core::Value)>>;
    let ds = o.domains();
    let (kind, groups, rows): (String, Groups, Vec<Row>) = call(py, f, ds, move |g| {
        let o = g.lock(&o)?;
        let mut rows = Vec::new();
        for grp in 0..o.groups() {
            for (p, n) in o.group_params(grp).iter().zip(o.param_names(grp)) {
                rows.push((grp, n, p.size()));
            }
        }
        let groups = (0..o.groups()).map(|i| o.settings(i)).collect();
        Ok((o.kind().to_string(), groups, rows))
    })?;
    let d = PyDict::new(py);
    d.set_item("optimizer", kind)?;
    let opts = PyList::empty(py);
    for s in groups {
        let gd = PyDict::new(py);
        for (k, v) in s {
            gd.set_item(k, crate::data::value_to_py(py, &v)?)?;
        }
        opts.append(gd)?;
    }
    d.set_item("options", opts)?;
    let parms = PyList::empty(py);
    for (grp, n, size) in rows {
        let r = PyDict::new(py);
        r.set_item("parmgroup", grp)?;
        r.set_item("name", n)?;
        r.set_item("size", size)?;
        parms.append(r)?;
    }
    d.set_item("parms", parms)?;
    Ok(d.into_any().unbind())
}

/// opt(name) -> Optimizer
/// opt(name, parameters, *settings, **options) -> Optimizer
/// opt(o) -> dict
/// opt(m) -> Optimizer
/// opt(o, group, parameters, *settings) -> None
/// opt(o, parameters, *settings) -> None
/// opt(state, parameters) -> Optimizer
///
/// Makes an optimizer, or adds or edits a parameter group of one, or builds the
/// optimizer a `state(o)` describes (settings, groups, each parameter's state) over
/// `parameters` (a Module or Model: matched by parameter name where the state names
/// them, else in order; every shape must match). `opt(o)` gives an optimizer's
/// definition (type, `options`: each group's settings, `parms`: each parameter's group,
/// name and size); `opt(m)` a model's optimizer, shared with the model.
///
/// - name: `"sgd"`, `"adam"`, `"adamw"`, `"adagrad"`, `"rmsprop"`, `"lbfgs"`, `"lamb"`.
/// - parameters: a Module, Model, Tensor, Vector or Dict; left out, an empty optimizer.
///   A selection takes part of one: `(v, 1)`, `(v, [2, 0])` members of a Vector,
///   `(d, "b")`, `(d, ["b", "a"])` members of a Dict, `(q, 0)`, `(q, ["b", "a"])` children
///   of a module (by position or dotted name, their parameters named from the module).
///   An empty list is no parameters: `opt("sgd", [], .1)` makes an optimizer with an
///   empty group 0 (its settings given), `opt(o, 1, [], .01)` adds an empty group 1.
/// - settings: by position in the optimizer's order (sgd: lr, momentum, dampening,
///   decay, nesterov) or by name; e.g. `opt("sgd", q, .2, .99)`, `opt("adam", q, lr=1e-3)`.
/// - group: equal to the number of groups adds a group (from the defaults), less edits
///   that group and appends the parameters, more is an error; left out, group 0
///   (`opt(o, m)` adds parameters to it, `opt(o, [], .002, .9)` sets its settings).
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
            Ok(x) => match source(f, &x)? {
                Some(Source::Of(o, None)) => Some(o),
                _ => {
                    return Err(type_error(
                        f,
                        "parameters expects a Module, Model, Optimizer, Tensor, Vector or Dict",
                    ))
                }
            },
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
        let ds: Vec<Domain> = src.as_ref().map(Source::domains).unwrap_or_default();
        let own = ds.clone();
        let o = call(py, f, ds, move |g| {
            let (ps, named) = match &src {
                Some(s) => params(g, s)?,
                None => (vec![], vec![]),
            };
            let empty = ps.is_empty();
            let mut o = Optimizer::new(&name, ps, &pos, &opts)?;
            if empty && src.is_some() {
                // an empty selection still makes group 0, with the settings given
                o.add(0, Vec::new(), &[], &[])?;
            }
            o.name_params(&named);
            Ok(o)
        })?;
        return Ok(Py::new(py, PyOptimizer::new(Shared::with_domains(o, own)))?.into_any());
    }
    let o = match obj(f, &first)? {
        Some(Obj::Opt(o)) => o,
        Some(Obj::Model(m)) if args.len() == 1 && kw.is_none() => {
            let ds = m.domains();
            let o = call(py, f, ds, move |g| Ok(g.lock(&m)?.optimizer().clone()))?;
            return Ok(Py::new(py, PyOptimizer::new(o))?.into_any());
        }
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting an optimizer name or an Optimizer, given {} (or a Model alone, for its optimizer)",
                    first.get_type().name()?
                ),
            ))
        }
    };
    if args.len() == 1 && kw.is_none() {
        return definition(py, f, o);
    }
    let second = args.get_item(1).map_err(|_| {
        type_error(
            f,
            "expecting (optimizer, group, parameters, *settings) or (optimizer, parameters, *settings)",
        )
    })?;
    let grouped = second.is_instance_of::<PyInt>() && !second.is_instance_of::<PyBool>();
    let (grp, at): (i64, usize) = if grouped {
        let g = second
            .extract()
            .map_err(|_| type_error(f, "group expects an integer"))?;
        (g, 2)
    } else if source(f, &second)?.is_some() {
        (0, 1)
    } else {
        return Err(type_error(
            f,
            format!(
                "group expects an integer (or parameters, for group 0), given {}",
                second.get_type().name()?
            ),
        ));
    };
    if args.len() <= at {
        return Err(type_error(
            f,
            "expecting (optimizer, group, parameters, *settings): give [] for no parameters",
        ));
    }
    let src = source(f, &args.get_item(at)?)?
    .ok_or_else(|| {
        type_error(
            f,
            "parameters expects a Module, Model, Tensor, Vector or Dict, a selection of one, or [] for none",
        )
    })?;
    let rest: Vec<_> = args.iter().skip(at + 1).collect();
    let (pos, opts) = settings(f, &rest, kw)?;
    let added = src.domains();
    let ds = domains([o.domains(), added.clone()]);
    call(py, f, ds, move |g| {
        let (ps, named) = params(g, &src)?;
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
