//! Initialisers: zeros, ones, fill, eye, dirac, orthogonal, xnormal, xuniform, knormal,
//! kuniform, snormal, normal, uniform, cauchy, exponential, geometric, lognormal, random,
//! and gain.
//!
//! Each resets tensors in place (a Tensor, Vector or Dict handle, selected members of one,
//! or named parameters and buffers of a Module or Model) under the object's lock, or
//! returns a reset copy of array data. The second argument selects tensors where the
//! original api reads it so (indices as ints, names as strings); the rest are options by
//! position or by name.

use ktorch_core::init::{FanMode, Init, Kaiming, Nonlinearity, Number};
use ktorch_core::sync::Shared;
use ktorch_core::tensor::{Class, Tensors};
use ktorch_core::Module;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString, PyTuple};
use tch::Tensor as TchTensor;

use crate::convert::{is_numpy, is_torch, to_numpy, to_tch, to_torch};
use crate::errors::{ktorch_error, type_error, IntoPy};
use crate::gate::call;
use crate::handles::{is_handle, Dict, PyModel, PyModule, Tensor, Vector};
use crate::module::module_of;

/// How a function reads the argument after the tensors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// No options: any argument selects (zeros, ones, eye, dirac).
    Plain,
    /// An optional gain (float): an int or list of ints selects (orthogonal, xnormal, xuniform).
    Gain,
    /// Nonlinearity, fan mode and slope in any order: an int or list of ints selects.
    Kaiming,
    /// Up to `n` numeric options: a list, a name, or more than `n` arguments select.
    Prob(usize),
    /// Sparsity then std: anything but a float first selects.
    Sparse,
    /// A value last: with two arguments the first selects.
    Fill,
}

/// What the first argument is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A Tensor or Vector handle: selected by index.
    Indexed,
    /// A Dict handle: selected by name.
    Named,
    /// A Module or Model: parameters and buffers by name, parameters by index.
    Module,
    /// Array data: a copy is reset and returned.
    Data,
}

/// Selected members.
enum Sel {
    Index(Vec<i64>),
    Names(Vec<String>),
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// The dtype kind of a numpy scalar (or 0-dim array), None for anything else.
fn numpy_kind(x: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if !is_numpy(x)? || x.getattr("ndim")?.extract::<i64>()? != 0 {
        return Ok(None);
    }
    Ok(Some(x.getattr("dtype")?.getattr("kind")?.extract()?))
}

/// A Python or numpy integer (not a bool).
fn is_int(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    if x.is_instance_of::<PyBool>() {
        return Ok(false);
    }
    if x.is_instance_of::<PyInt>() {
        return Ok(true);
    }
    Ok(matches!(numpy_kind(x)?.as_deref(), Some("i" | "u")))
}

/// A Python or numpy float.
fn is_float(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    if x.is_instance_of::<PyFloat>() {
        return Ok(true);
    }
    Ok(matches!(numpy_kind(x)?.as_deref(), Some("f")))
}

/// The members of a list or tuple, None for anything else.
fn members<'py>(x: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = x.downcast::<PyList>() {
        Some(l.iter().collect())
    } else if let Ok(t) = x.downcast::<PyTuple>() {
        Some(t.iter().collect())
    } else {
        None
    }
}

/// An int or a list/tuple of ints as indices.
fn indices(x: &Bound<'_, PyAny>) -> PyResult<Option<Vec<i64>>> {
    if is_int(x)? {
        return Ok(Some(vec![x.extract()?]));
    }
    let Some(xs) = members(x) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(xs.len());
    for v in &xs {
        if !is_int(v)? {
            return Ok(None);
        }
        out.push(v.extract()?);
    }
    Ok(Some(out))
}

/// A string or a list/tuple of strings as names.
fn names(x: &Bound<'_, PyAny>) -> Option<Vec<String>> {
    if let Ok(s) = x.downcast::<PyString>() {
        return Some(vec![s.to_string()]);
    }
    members(x)?
        .iter()
        .map(|v| v.downcast::<PyString>().ok().map(|s| s.to_string()))
        .collect()
}

/// The selection an argument gives: indices or names.
fn selection(f: &str, kind: Kind, x: &Bound<'_, PyAny>) -> PyResult<Sel> {
    if members(x).is_some_and(|m| m.is_empty()) {
        // an empty list selects nothing, whichever way the object is selected
        return Ok(match kind {
            Kind::Named => Sel::Names(Vec::new()),
            _ => Sel::Index(Vec::new()),
        });
    }
    if let Some(i) = indices(x)? {
        return Ok(Sel::Index(i));
    }
    if let Some(n) = names(x) {
        return Ok(Sel::Names(n));
    }
    let want = match kind {
        Kind::Named => "a name or list of names",
        Kind::Module => "parameter or buffer names, or parameter indices",
        _ => "an index or list of indices",
    };
    Err(type_error(
        f,
        format!("expecting {want} to select tensors, given {}", type_name(x)),
    ))
}

/// A number option.
fn number(f: &str, what: &str, x: &Bound<'_, PyAny>) -> PyResult<f64> {
    if is_int(x)? || is_float(x)? {
        return x.extract();
    }
    Err(type_error(
        f,
        format!("expecting a number for {what}, given {}", type_name(x)),
    ))
}

/// An integer option.
fn integer(f: &str, what: &str, x: &Bound<'_, PyAny>) -> PyResult<i64> {
    if is_int(x)? {
        return x.extract();
    }
    Err(type_error(
        f,
        format!("expecting an integer for {what}, given {}", type_name(x)),
    ))
}

/// A string option.
fn string(f: &str, what: &str, x: &Bound<'_, PyAny>) -> PyResult<String> {
    x.downcast::<PyString>()
        .map(|s| s.to_string())
        .map_err(|_| {
            type_error(
                f,
                format!("expecting a name for {what}, given {}", type_name(x)),
            )
        })
}

/// Options by position (in the order of `order`) and by name (`kw`, in `names`' order),
/// one value or None for each of `names`.
fn merge<'py>(
    f: &str,
    names: &[&str],
    order: &[&str],
    rest: &[Bound<'py, PyAny>],
    kw: &[Option<&Bound<'py, PyAny>>],
) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    if rest.len() > order.len() {
        return Err(type_error(
            f,
            format!(
                "expecting at most {} option(s) ({}), given {}",
                names.len(),
                names.join(", "),
                rest.len()
            ),
        ));
    }
    let mut out: Vec<Option<Bound<'py, PyAny>>> = kw.iter().map(|v| v.cloned()).collect();
    for (v, n) in rest.iter().zip(order) {
        let Some(i) = names.iter().position(|m| m == n) else {
            continue;
        };
        if out[i].is_some() {
            return Err(type_error(
                f,
                format!("option `{n}` given twice, by position and by name"),
            ));
        }
        out[i] = Some(v.clone());
    }
    Ok(out)
}

/// A number option with a default.
fn num_or(f: &str, what: &str, x: &Option<Bound<'_, PyAny>>, default: f64) -> PyResult<f64> {
    x.as_ref().map_or(Ok(default), |v| number(f, what, v))
}

/// A required number option.
fn num_req(f: &str, what: &str, x: &Option<Bound<'_, PyAny>>) -> PyResult<f64> {
    match x {
        Some(v) => number(f, what, v),
        None => Err(type_error(f, format!("missing option `{what}`"))),
    }
}

/// What the first argument is; TypeError for a Loss or Optimizer.
fn kind_of(f: &str, x: &Bound<'_, PyAny>) -> PyResult<Kind> {
    Ok(
        if x.is_instance_of::<Tensor>() || x.is_instance_of::<Vector>() {
            Kind::Indexed
        } else if x.is_instance_of::<Dict>() {
            Kind::Named
        } else if x.is_instance_of::<PyModule>() || x.is_instance_of::<PyModel>() {
            Kind::Module
        } else if is_handle(x) {
            return Err(type_error(
                f,
                format!(
                    "expecting a Tensor, Vector, Dict, Module, Model or array data, given {}",
                    type_name(x)
                ),
            ));
        } else {
            Kind::Data
        },
    )
}

/// True for a name the Kaiming initialisers read as an option.
fn kaiming_name(x: &Bound<'_, PyAny>) -> bool {
    x.downcast::<PyString>().is_ok_and(|s| {
        let s = s.to_string();
        Nonlinearity::from_name(&s).is_some() || FanMode::from_name(&s).is_some()
    })
}

/// Splits the arguments after the tensors into a selection and options.
fn split<'a, 'py>(
    f: &str,
    fam: Family,
    kind: Kind,
    args: &'a [Bound<'py, PyAny>],
    value_kw: bool,
) -> PyResult<(Option<Sel>, &'a [Bound<'py, PyAny>])> {
    let Some(a) = args.first() else {
        if kind == Kind::Module {
            return Err(ktorch_error(
                f,
                "a Module or Model needs parameter or buffer names (or parameter indices) \
                 to select the tensors to reset",
            ));
        }
        return Ok((None, args));
    };
    let selects = match (kind, fam) {
        (Kind::Module, _) => true,
        (_, Family::Fill) => args.len() == 2 || value_kw,
        (Kind::Data, _) => false,
        (_, Family::Plain) => true,
        (Kind::Named, Family::Gain) => !(is_int(a)? || is_float(a)?),
        (_, Family::Gain) | (_, Family::Kaiming) if kind == Kind::Indexed => indices(a)?.is_some(),
        (_, Family::Kaiming) => {
            names(a).is_some() && !(a.is_instance_of::<PyString>() && kaiming_name(a))
        }
        (_, Family::Prob(n)) => {
            members(a).is_some() || a.is_instance_of::<PyString>() || args.len() > n
        }
        (_, Family::Sparse) => !is_float(a)?,
        _ => false,
    };
    if selects {
        Ok((Some(selection(f, kind, a)?), &args[1..]))
    } else {
        Ok((None, args))
    }
}

/// The first argument resolved: its object, or a tensor made from array data.
enum Target {
    Tensors(Shared<Tensors>),
    Module(Shared<Module>),
    Data(TchTensor, bool),
}

fn target(py: Python<'_>, f: &str, kind: Kind, x: &Bound<'_, PyAny>) -> PyResult<Target> {
    Ok(match kind {
        Kind::Indexed | Kind::Named => {
            if let Ok(h) = x.downcast::<Tensor>() {
                Target::Tensors(h.get().get(f)?)
            } else if let Ok(h) = x.downcast::<Vector>() {
                Target::Tensors(h.get().get(f)?)
            } else {
                Target::Tensors(x.downcast::<Dict>()?.get().get(f)?)
            }
        }
        Kind::Module => Target::Module(module_of(py, f, x)?),
        Kind::Data => Target::Data(to_tch(f, x)?, is_torch(x)?),
    })
}

/// Rows of a tensor by index (views sharing its memory).
fn rows(t: &TchTensor, is: &[i64]) -> ktorch_core::Result<Vec<TchTensor>> {
    if t.dim() == 0 {
        return Err(ktorch_core::error::invalid(
            "a 0-dim tensor has no rows to select",
        ));
    }
    let n = t.size()[0];
    is.iter()
        .map(|&i| {
            if i < 0 || i >= n {
                Err(ktorch_core::error::invalid(format!(
                    "index {i} invalid for a tensor of {n} row(s)"
                )))
            } else {
                Ok(t.f_select(0, i)?)
            }
        })
        .collect()
}

/// The tensors of a Tensor, Vector or Dict to reset (full size while batching).
fn pick_tensors(o: &Tensors, sel: &Option<Sel>) -> ktorch_core::Result<Vec<TchTensor>> {
    use ktorch_core::error::invalid;
    let full = o.full();
    match (o.class(), sel) {
        (_, None) => Ok(full.iter().map(TchTensor::shallow_clone).collect()),
        (Class::Tensor, Some(Sel::Index(is))) => rows(&full[0], is),
        (Class::Vector, Some(Sel::Index(is))) => is
            .iter()
            .map(|&i| Ok(full[o.check_index(i)?].shallow_clone()))
            .collect(),
        (Class::Dict, Some(Sel::Names(ns))) => ns
            .iter()
            .map(|n| Ok(full[o.index_of(n)?].shallow_clone()))
            .collect(),
        (Class::Dict, Some(Sel::Index(_))) => Err(invalid(
            "a Dict's tensors are selected by name, given index",
        )),
        (c, Some(Sel::Names(_))) => Err(invalid(format!(
            "a {} are selected by index, given name(s)",
            match c {
                Class::Tensor => "Tensor's rows",
                _ => "Vector's tensors",
            }
        ))),
    }
}

/// The parameters and buffers of a module to reset: by name, or parameters by index.
fn pick_module(q: &Module, sel: &Option<Sel>) -> ktorch_core::Result<Vec<TchTensor>> {
    match sel {
        None => Ok(Vec::new()),
        Some(Sel::Names(ns)) => ns.iter().map(|n| q.param(n)).collect(),
        Some(Sel::Index(is)) => {
            let ps = q.named_parameters();
            is.iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| ps.get(i))
                        .map(|(_, t)| t.shallow_clone())
                        .ok_or_else(|| {
                            ktorch_core::error::invalid(format!(
                                "parameter index {i} invalid for a module of {} parameter(s)",
                                ps.len()
                            ))
                        })
                })
                .collect()
        }
    }
}

/// Parses the arguments, then resets the tensors under their object's lock (None), or a
/// copy of array data (returned as numpy, or torch.Tensor for a torch.Tensor).
fn go<'py>(
    py: Python<'py>,
    f: &'static str,
    fam: Family,
    x: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    value_kw: bool,
    build: impl FnOnce(&[Bound<'py, PyAny>]) -> PyResult<Init>,
) -> PyResult<PyObject> {
    let kind = kind_of(f, x)?;
    let args: Vec<Bound<'py, PyAny>> = args.iter().collect();
    let (sel, rest) = split(f, fam, kind, &args, value_kw)?;
    let init = build(rest)?;
    init.check_options().py()?;
    match target(py, f, kind, x)? {
        Target::Tensors(s) => {
            let ds = s.domains();
            call(py, f, ds, move |g| {
                let o = g.lock(&s)?;
                let ts = pick_tensors(&o, &sel)?;
                Ok(init.apply_all(&ts)?)
            })?;
            Ok(py.None())
        }
        Target::Module(m) => {
            let ds = m.domains();
            call(py, f, ds, move |g| {
                let q = g.lock(&m)?;
                let ts = pick_module(&q, &sel)?;
                Ok(init.apply_all(&ts)?)
            })?;
            Ok(py.None())
        }
        Target::Data(t, torch) => {
            let out = call(py, f, vec![], move |_| {
                let c = t.f_detach_copy()?;
                let ts = match &sel {
                    None => vec![c.shallow_clone()],
                    Some(Sel::Index(is)) => rows(&c, is)?,
                    Some(Sel::Names(_)) => {
                        return Err(ktorch_core::error::invalid(
                            "array data is selected by index, given name(s)",
                        )
                        .into())
                    }
                };
                init.apply_all(&ts)?;
                Ok(c)
            })?;
            if torch {
                Ok(to_torch(py, &out)?.unbind())
            } else {
                to_numpy(py, &out)
            }
        }
    }
}

/// No options: the arguments after the tensors select.
fn plain(f: &str, rest: &[Bound<'_, PyAny>], init: Init) -> PyResult<Init> {
    if rest.is_empty() {
        Ok(init)
    } else {
        Err(type_error(
            f,
            format!("takes no options, given {} more argument(s)", rest.len()),
        ))
    }
}

/// The gain option of orthogonal, xnormal, xuniform.
fn gain_of(f: &str, rest: &[Bound<'_, PyAny>], gain: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
    let v = merge(f, &["gain"], &["gain"], rest, &[gain])?;
    num_or(f, "gain", &v[0], 1.0)
}

/// Kaiming options: names of a nonlinearity or fan mode and a number (slope) in any
/// order, or by name.
fn kaiming_of(
    f: &str,
    rest: &[Bound<'_, PyAny>],
    nonlinearity: Option<&Bound<'_, PyAny>>,
    mode: Option<&Bound<'_, PyAny>>,
    slope: Option<&Bound<'_, PyAny>>,
    a: Option<&Bound<'_, PyAny>>,
) -> PyResult<Kaiming> {
    let (mut nl, mut fm, mut sl) = (None, None, None);
    let twice = |what: &str| type_error(f, format!("{what} given twice"));
    let unknown_nl = |s: &str| {
        ktorch_error(
            f,
            format!(
                "unrecognized nonlinearity `{s}`, expecting one of: {}",
                ktorch_core::init::nonlinearity_names()
            ),
        )
    };
    let unknown_mode = |s: &str| {
        ktorch_error(
            f,
            format!("unrecognized fan mode `{s}`, expecting fanin or fanout"),
        )
    };
    for v in rest {
        if let Ok(s) = v.downcast::<PyString>() {
            let s = s.to_string();
            if let Some(n) = Nonlinearity::from_name(&s) {
                if nl.replace(n).is_some() {
                    return Err(twice("nonlinearity"));
                }
            } else if let Some(m) = FanMode::from_name(&s) {
                if fm.replace(m).is_some() {
                    return Err(twice("fan mode"));
                }
            } else {
                return Err(ktorch_error(
                    f,
                    format!(
                        "unrecognized option `{s}`, expecting a nonlinearity ({}) or a fan mode \
                         (fanin, fanout)",
                        ktorch_core::init::nonlinearity_names()
                    ),
                ));
            }
        } else if is_int(v)? || is_float(v)? {
            if sl.replace(v.extract::<f64>()?).is_some() {
                return Err(twice("slope"));
            }
        } else {
            return Err(type_error(
                f,
                format!(
                    "expecting a nonlinearity or fan mode name or a slope, given {}",
                    type_name(v)
                ),
            ));
        }
    }
    if let Some(v) = nonlinearity {
        let s = string(f, "nonlinearity", v)?;
        let n = Nonlinearity::from_name(&s).ok_or_else(|| unknown_nl(&s))?;
        if nl.replace(n).is_some() {
            return Err(twice("nonlinearity"));
        }
    }
    if let Some(v) = mode {
        let s = string(f, "mode", v)?;
        let m = FanMode::from_name(&s).ok_or_else(|| unknown_mode(&s))?;
        if fm.replace(m).is_some() {
            return Err(twice("fan mode"));
        }
    }
    for v in [slope, a].into_iter().flatten() {
        if sl.replace(number(f, "slope", v)?).is_some() {
            return Err(twice("slope"));
        }
    }
    let d = Kaiming::default();
    Ok(Kaiming {
        slope: sl.unwrap_or(d.slope),
        mode: fm.unwrap_or(d.mode),
        nonlinearity: nl.unwrap_or(d.nonlinearity),
    })
}

/// zeros(x) -> None
/// zeros(x, select) -> None
/// zeros(array) -> numpy array
///
/// Resets tensors to zeros in place, with gradients off (`torch.nn.init.zeros_`).
///
/// - `x`: a Tensor, Vector or Dict handle (every tensor), or a Module or Model, which
///   needs `select`: parameter or buffer names (`"0.bias"`, `["a.weight", "b.bias"]`) or
///   parameter indices (in `parmnames` order).
/// - `select`: an index or list of indices into a Tensor's first dimension or a Vector;
///   a name or list of names of a Dict's tensors.
/// - array data (numpy, list, scalar, torch.Tensor): a reset copy is returned.
///
/// Raises KtorchError naming the index or name at fault; nothing changes.
#[pyfunction]
#[pyo3(signature = (x, *args))]
pub fn zeros(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let f = "zeros";
    go(py, f, Family::Plain, x, args, false, |r| {
        plain(f, r, Init::Zeros)
    })
}

/// ones(x) -> None
/// ones(x, select) -> None
/// ones(array) -> numpy array
///
/// Resets tensors to ones in place (`torch.nn.init.ones_`); `x` and `select` as for
/// `zeros`.
#[pyfunction]
#[pyo3(signature = (x, *args))]
pub fn ones(py: Python<'_>, x: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "ones";
    go(py, f, Family::Plain, x, args, false, |r| {
        plain(f, r, Init::Ones)
    })
}

/// fill(x, value) -> None
/// fill(x, select, value) -> None
/// fill(array, value) -> numpy array
/// fill(array, select, value) -> numpy array
///
/// Fills tensors with a single value in place (`torch.nn.init.constant_`): an int,
/// float or bool, last (or `value=`); `x` and `select` as for `zeros`. With two
/// arguments after `x`, the first selects.
#[pyfunction]
#[pyo3(signature = (x, *args, value=None))]
pub fn fill(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "fill";
    go(py, f, Family::Fill, x, args, value.is_some(), |r| {
        let v = merge(f, &["value"], &["value"], r, &[value])?;
        let v = v[0]
            .as_ref()
            .ok_or_else(|| type_error(f, "missing the fill value"))?;
        let n = if v.is_instance_of::<PyBool>() || numpy_kind(v)?.as_deref() == Some("b") {
            Number::Int(i64::from(v.extract::<bool>()?))
        } else if is_int(v)? {
            Number::Int(v.extract()?)
        } else if is_float(v)? {
            Number::Float(v.extract()?)
        } else {
            return Err(type_error(
                f,
                format!(
                    "expecting a number for the fill value, given {}",
                    type_name(v)
                ),
            ));
        };
        Ok(Init::Fill(n))
    })
}

/// eye(x) -> None
/// eye(x, select) -> None
/// eye(array) -> numpy array
///
/// Sets 2-dimensional tensors to the identity matrix in place (`torch.nn.init.eye_`);
/// `x` and `select` as for `zeros`. Raises KtorchError for a tensor of other than 2
/// dimensions.
#[pyfunction]
#[pyo3(signature = (x, *args))]
pub fn eye(py: Python<'_>, x: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "eye";
    go(py, f, Family::Plain, x, args, false, |r| {
        plain(f, r, Init::Eye)
    })
}

/// dirac(x) -> None
/// dirac(x, select) -> None
/// dirac(array) -> numpy array
///
/// Fills 3, 4 or 5-dimensional convolution weights with the Dirac delta in place
/// (`torch.nn.init.dirac_`): the input channels are kept as far as the output channels
/// allow. `groups=` (default 1) keeps each group's identity. `x` and `select` as for
/// `zeros`.
#[pyfunction]
#[pyo3(signature = (x, *args, groups=None))]
pub fn dirac(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    groups: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "dirac";
    go(py, f, Family::Plain, x, args, false, |r| {
        let groups = groups.map_or(Ok(1), |g| integer(f, "groups", g))?;
        plain(f, r, Init::Dirac { groups })
    })
}

/// orthogonal(x) -> None
/// orthogonal(x, gain) -> None
/// orthogonal(x, select) -> None
/// orthogonal(x, select, gain) -> None
/// orthogonal(array, gain=1.0) -> numpy array
///
/// Fills tensors of 2 or more dimensions with a (semi) orthogonal matrix times `gain`
/// (default 1) in place, as `torch.nn.init.orthogonal_` (trailing dimensions
/// flattened). `x` and `select` as for `zeros`: an int or list of ints after a Tensor
/// or Vector selects, a float is the gain.
#[pyfunction]
#[pyo3(signature = (x, *args, gain=None))]
pub fn orthogonal(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    gain: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "orthogonal";
    go(py, f, Family::Gain, x, args, false, |r| {
        Ok(Init::Orthogonal {
            gain: gain_of(f, r, gain)?,
        })
    })
}

/// xnormal(x) -> None
/// xnormal(x, gain) -> None
/// xnormal(x, select) -> None
/// xnormal(x, select, gain) -> None
/// xnormal(array, gain=1.0) -> numpy array
///
/// Xavier (Glorot) normal initialisation in place, as `torch.nn.init.xavier_normal_`:
/// values from N(0, std²), std = gain·√(2 / (fan_in + fan_out)), gain default 1.
/// Tensors need 2 or more dimensions. `x` and `select` as for `orthogonal`.
#[pyfunction]
#[pyo3(signature = (x, *args, gain=None))]
pub fn xnormal(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    gain: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "xnormal";
    go(py, f, Family::Gain, x, args, false, |r| {
        Ok(Init::XavierNormal {
            gain: gain_of(f, r, gain)?,
        })
    })
}

/// xuniform(x) -> None
/// xuniform(x, gain) -> None
/// xuniform(x, select) -> None
/// xuniform(x, select, gain) -> None
/// xuniform(array, gain=1.0) -> numpy array
///
/// Xavier (Glorot) uniform initialisation in place, as `torch.nn.init.xavier_uniform_`:
/// values from U(-a, a), a = gain·√(6 / (fan_in + fan_out)), gain default 1. Tensors
/// need 2 or more dimensions. `x` and `select` as for `orthogonal`.
#[pyfunction]
#[pyo3(signature = (x, *args, gain=None))]
pub fn xuniform(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    gain: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "xuniform";
    go(py, f, Family::Gain, x, args, false, |r| {
        Ok(Init::XavierUniform {
            gain: gain_of(f, r, gain)?,
        })
    })
}

/// knormal(x, *options) -> None
/// knormal(x, select, *options) -> None
/// knormal(array, *options) -> numpy array
///
/// Kaiming (He) normal initialisation in place, as `torch.nn.init.kaiming_normal_`:
/// values from N(0, std²), std = gain / √fan.
///
/// - options, in any order: a nonlinearity (`"leakyrelu"` by default, `"relu"`,
///   `"tanh"`, `"sigmoid"`, `"linear"`, `"conv2d"`, `"selu"`...; `"leaky_relu"` as
///   torch spells it), a fan mode (`"fanin"` by default, or `"fanout"`; `"in"`, `"out"`,
///   `"fan_in"`, `"fan_out"`), a number: the negative slope of a leaky ReLU (default 0).
///   By name: `nonlinearity=`, `mode=`, `slope=` (or torch's `a=`).
/// - `x` and `select` as for `zeros`: an int or list of ints after a Tensor or Vector
///   selects; after a Dict, a nonlinearity or fan mode name is read as the option, and
///   a one-element list `["relu"]` as a name.
///
/// Tensors need 2 or more dimensions (one with no elements is left as it is).
#[pyfunction]
#[pyo3(signature = (x, *args, nonlinearity=None, mode=None, slope=None, a=None))]
#[allow(clippy::too_many_arguments)]
pub fn knormal(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    nonlinearity: Option<&Bound<'_, PyAny>>,
    mode: Option<&Bound<'_, PyAny>>,
    slope: Option<&Bound<'_, PyAny>>,
    a: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "knormal";
    go(py, f, Family::Kaiming, x, args, false, |r| {
        Ok(Init::KaimingNormal(kaiming_of(
            f,
            r,
            nonlinearity,
            mode,
            slope,
            a,
        )?))
    })
}

/// kuniform(x, *options) -> None
/// kuniform(x, select, *options) -> None
/// kuniform(array, *options) -> numpy array
///
/// Kaiming (He) uniform initialisation in place, as `torch.nn.init.kaiming_uniform_`:
/// values from U(-bound, bound), bound = gain·√(3 / fan). Options (nonlinearity, fan
/// mode, slope), `x` and `select` as for `knormal`.
#[pyfunction]
#[pyo3(signature = (x, *args, nonlinearity=None, mode=None, slope=None, a=None))]
#[allow(clippy::too_many_arguments)]
pub fn kuniform(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    nonlinearity: Option<&Bound<'_, PyAny>>,
    mode: Option<&Bound<'_, PyAny>>,
    slope: Option<&Bound<'_, PyAny>>,
    a: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "kuniform";
    go(py, f, Family::Kaiming, x, args, false, |r| {
        Ok(Init::KaimingUniform(kaiming_of(
            f,
            r,
            nonlinearity,
            mode,
            slope,
            a,
        )?))
    })
}

/// snormal(x, sparsity, std=0.01) -> None
/// snormal(x, select, sparsity, std=0.01) -> None
/// snormal(array, sparsity, std=0.01) -> numpy array
///
/// Sparse initialisation of 2-dimensional tensors in place, as `torch.nn.init.sparse_`:
/// values from N(0, std²), then the fraction `sparsity` (0 to 1) of each column set to
/// zero. `sparsity` is a float (an int or list after a Tensor or Vector selects); `x`
/// and `select` as for `zeros`.
#[pyfunction]
#[pyo3(signature = (x, *args, sparsity=None, std=None))]
pub fn snormal(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    sparsity: Option<&Bound<'_, PyAny>>,
    std: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "snormal";
    let n = ["sparsity", "std"];
    go(py, f, Family::Sparse, x, args, false, |r| {
        let v = merge(f, &n, &n, r, &[sparsity, std])?;
        Ok(Init::Sparse {
            sparsity: num_req(f, "sparsity", &v[0])?,
            std: num_or(f, "std", &v[1], 0.01)?,
        })
    })
}

/// The probability distributions: a function over two numeric options with defaults.
macro_rules! dist {
    ($(#[$doc:meta])* $name:ident, $a:ident = $da:expr, $b:ident = $db:expr, $make:expr) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = (x, *args, $a=None, $b=None))]
        pub fn $name(
            py: Python<'_>,
            x: &Bound<'_, PyAny>,
            args: &Bound<'_, PyTuple>,
            $a: Option<&Bound<'_, PyAny>>,
            $b: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<PyObject> {
            let f = stringify!($name);
            let n = [stringify!($a), stringify!($b)];
            go(py, f, Family::Prob(2), x, args, false, |r| {
                let v = merge(f, &n, &n, r, &[$a, $b])?;
                let make: fn(f64, f64) -> Init = $make;
                Ok(make(
                    num_or(f, n[0], &v[0], $da)?,
                    num_or(f, n[1], &v[1], $db)?,
                ))
            })
        }
    };
}

dist!(
    /// normal(x, mean=0.0, std=1.0) -> None
    /// normal(x, select, mean=0.0, std=1.0) -> None
    /// normal(array, mean=0.0, std=1.0) -> numpy array
    ///
    /// Fills tensors in place with values from the normal distribution N(mean, std²)
    /// (`torch.nn.init.normal_`).
    ///
    /// - `x`: a Tensor, Vector or Dict handle, or a Module or Model with `select`; array
    ///   data returns a reset copy.
    /// - `select`: a list of indices into a Tensor's first dimension or a Vector, a name
    ///   or list of names of a Dict's tensors or a module's parameters and buffers. A
    ///   single int is read as the first option unless all the options follow it
    ///   (`normal(v, 2, 0.0, 1.0)`): give `[2]` to select.
    normal,
    mean = 0.0,
    std = 1.0,
    |mean, std| Init::Normal { mean, std }
);

dist!(
    /// uniform(x, low=0.0, high=1.0) -> None
    /// uniform(x, select, low=0.0, high=1.0) -> None
    /// uniform(array, low=0.0, high=1.0) -> numpy array
    ///
    /// Fills tensors in place with values from the uniform distribution over [low, high)
    /// (`torch.nn.init.uniform_`). `x` and `select` as for `normal`.
    uniform,
    low = 0.0,
    high = 1.0,
    |low, high| Init::Uniform { low, high }
);

dist!(
    /// cauchy(x, median=0.0, sigma=1.0) -> None
    /// cauchy(x, select, median=0.0, sigma=1.0) -> None
    /// cauchy(array, median=0.0, sigma=1.0) -> numpy array
    ///
    /// Fills tensors in place with values from the Cauchy (Lorentz) distribution with the
    /// given median and half width `sigma` (`Tensor.cauchy_`). `x` and `select` as for
    /// `normal`.
    cauchy,
    median = 0.0,
    sigma = 1.0,
    |median, sigma| Init::Cauchy { median, sigma }
);

dist!(
    /// lognormal(x, mean=1.0, std=2.0) -> None
    /// lognormal(x, select, mean=1.0, std=2.0) -> None
    /// lognormal(array, mean=1.0, std=2.0) -> numpy array
    ///
    /// Fills tensors in place with values from the log-normal distribution: their log is
    /// N(mean, std²) (`Tensor.log_normal_`). `x` and `select` as for `normal`.
    lognormal,
    mean = 1.0,
    std = 2.0,
    |mean, std| Init::LogNormal { mean, std }
);

/// exponential(x, rate=1.0) -> None
/// exponential(x, select, rate=1.0) -> None
/// exponential(array, rate=1.0) -> numpy array
///
/// Fills tensors in place with values from the exponential distribution of the given
/// rate (`Tensor.exponential_`). `x` and `select` as for `normal`; a single int is
/// read as the rate unless the rate follows it.
#[pyfunction]
#[pyo3(signature = (x, *args, rate=None))]
pub fn exponential(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    rate: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "exponential";
    go(py, f, Family::Prob(1), x, args, false, |r| {
        let v = merge(f, &["rate"], &["rate"], r, &[rate])?;
        Ok(Init::Exponential {
            rate: num_or(f, "rate", &v[0], 1.0)?,
        })
    })
}

/// geometric(x, p) -> None
/// geometric(x, select, p) -> None
/// geometric(array, p) -> numpy array
///
/// Fills tensors in place with values from the geometric distribution: the number of
/// Bernoulli trials with success probability `p` (0 < p < 1) up to the first success
/// (`Tensor.geometric_`). `x` and `select` as for `normal`.
#[pyfunction]
#[pyo3(signature = (x, *args, p=None))]
pub fn geometric(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    p: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "geometric";
    go(py, f, Family::Prob(1), x, args, false, |r| {
        let v = merge(f, &["p"], &["p"], r, &[p])?;
        Ok(Init::Geometric {
            p: num_req(f, "p", &v[0])?,
        })
    })
}

/// random(x) -> None
/// random(x, high) -> None
/// random(x, low, high) -> None
/// random(x, select, low, high) -> None
/// random(array, ...) -> numpy array
///
/// Fills tensors in place with integers from the discrete uniform distribution over
/// [low, high) (`Tensor.random_`): with no limits, over the values the dtype holds
/// exactly; with one, from 0 up to `high`. Limits are ints (`low=`, `high=` by name).
/// `x` and `select` as for `normal`: `random(v, 2, 5)` draws from [2, 5) for every
/// tensor of `v`, `random(v, [2], 5)` and `random(v, 2, 0, 5)` for `v`'s tensor 2 only.
#[pyfunction]
#[pyo3(signature = (x, *args, low=None, high=None))]
pub fn random(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    low: Option<&Bound<'_, PyAny>>,
    high: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "random";
    go(py, f, Family::Prob(2), x, args, false, |r| {
        let order: &[&str] = if r.len() == 1 {
            &["high"]
        } else {
            &["low", "high"]
        };
        let v = merge(f, &["low", "high"], order, r, &[low, high])?;
        let lim = |i: usize, what: &str| -> PyResult<Option<i64>> {
            v[i].as_ref().map(|x| integer(f, what, x)).transpose()
        };
        Ok(Init::Random {
            low: lim(0, "low")?,
            high: lim(1, "high")?,
        })
    })
}

/// gain(nonlinearity) -> float
/// gain(nonlinearity, param) -> float
///
/// The recommended gain for a nonlinearity, the factor that scales the standard
/// deviation (`torch.nn.init.calculate_gain`): 1 for `linear`, `conv1d`... `conv3d`,
/// `convtranspose1d`... `convtranspose3d` and `sigmoid`; 5/3 for `tanh`; √2 for `relu`;
/// √(2 / (1 + param²)) for `leakyrelu` (param is the negative slope, default 0.01); 3/4
/// for `selu`. torch's spellings (`leaky_relu`, `conv_transpose2d`) are read too.
#[pyfunction]
#[pyo3(signature = (nonlinearity, param=None))]
pub fn gain(nonlinearity: &Bound<'_, PyAny>, param: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
    let f = "gain";
    let s = string(f, "nonlinearity", nonlinearity)?;
    let p = param.map(|p| number(f, "param", p)).transpose()?;
    ktorch_core::init::gain(&s, p).py()
}
