//! Losses: loss(name, *settings) and loss(l or model, yhat, y).

use ktorch_core::sync::shared;
use ktorch_core::Loss;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

use crate::convert::{settings, wrap_shared, Srcs};
use crate::data::tensors_arg;
use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Obj, PyLoss};

/// loss(name, *settings, **options) -> Loss
/// loss(state) -> Loss
/// loss(l) -> dict
/// loss(l, all) -> dict
/// loss(m) -> Loss
/// loss(l, x, y) -> Tensor
/// loss(l, x, y, w) -> Tensor
/// loss(m, x, y) -> Tensor
///
/// Makes a loss (or the loss a `state(l)` describes), or gives a loss's definition
/// (`module`: its type, `options`: its settings, all of them, or with `all` False only
/// those that differ from the defaults), or a model's loss (shared with the model), or
/// computes a loss (a Loss handle's or a model's) of output(s) `x` and target(s) `y`.
///
/// - name: `help("loss")` lists them; e.g. `"ce"`, `"mse"`, `"bce"`.
/// - settings: by position in the loss's order (ce: weight, ignore, smoothing,
///   reduce) or by name; a trailing `"none"`, `"mean"` or `"sum"` is the reduction.
///   PyTorch keywords are accepted (`reduction`, `ignore_index`, `label_smoothing`).
/// - more tensors after `y` go with the targets: the batch weights of `bce` and
///   `bcelogits` (`loss(l, x, y, w)`: each element's loss times its weight, beside the
///   class weights of the definition), the third tensor of `cosineloss`, `margin` and
///   `triplet` (`loss(l, x1, x2, y)`), the lengths of `ctc`.
/// - `kt.ce(x, y)`, `kt.mse(x, y)`, ...: the functional form of each loss.
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn loss(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let f = "loss";
    let first = args.get_item(0).map_err(|_| {
        type_error(
            f,
            "expecting a loss name, or a Loss or Model with output and target",
        )
    })?;
    if args.len() == 1 && kw.is_none() && crate::objstate::is_loss_state(&first) {
        let l = crate::objstate::loss_from(py, f, &first)?;
        return Ok(Py::new(py, PyLoss::new(shared(l)))?.into_any());
    }
    if let Ok(name) = first.downcast::<PyString>() {
        let rest: Vec<_> = args.iter().skip(1).collect();
        let (pos, opts) = settings(f, &rest, kw)?;
        let l = Loss::new(name.to_str()?, &pos, &opts).py()?;
        return Ok(Py::new(py, PyLoss::new(shared(l)))?.into_any());
    }
    let o = match obj(f, &first)? {
        Some(o @ (Obj::Loss(_) | Obj::Model(_))) => o,
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting a loss name, Loss or Model, given {}",
                    first.get_type().name()?
                ),
            ))
        }
    };
    if args.len() <= 2 && kw.is_none() {
        return match o {
            Obj::Model(m) if args.len() == 1 => {
                let ds = m.domains();
                let l = call(py, f, ds, move |g| Ok(g.lock(&m)?.loss_fn().clone()))?;
                Ok(Py::new(py, PyLoss::new(l))?.into_any())
            }
            Obj::Loss(l) => {
                let all = match args.get_item(1) {
                    Err(_) => true,
                    Ok(b) if b.is_instance_of::<PyBool>() => b.extract()?,
                    Ok(b) => {
                        return Err(type_error(
                            f,
                            format!(
                                "expecting (loss or model, output, target), given 2 argument(s), or (loss, all) with a bool flag, given {}",
                                b.get_type().name()?
                            ),
                        ))
                    }
                };
                definition(py, f, l, all)
            }
            _ => Err(type_error(
                f,
                format!(
                    "expecting (loss or model, output, target), given {} argument(s)",
                    args.len()
                ),
            )),
        };
    }
    if kw.is_some() {
        return Err(type_error(
            f,
            "a loss is computed from tensors alone: settings go with its definition",
        ));
    }
    let x = tensors_arg(f, &args.get_item(1)?)?;
    let mut y = Srcs::default();
    for a in args.iter().skip(2) {
        y.0.extend(tensors_arg(f, &a)?.0);
    }
    let ds = domains([o.domains(), x.domains(), y.domains()]);
    let held = ds.clone();
    let r = call(py, f, ds, move |g| {
        let (x, y) = (x.tensors(g)?, y.tensors(g)?);
        Ok(match &o {
            Obj::Loss(l) => g.lock(l)?.forward(&x, &y)?,
            Obj::Model(m) => g.lock(m)?.loss(&x, &y)?,
            _ => unreachable!(),
        })
    })?;
    // the result's graph reaches the parameters of every input: it is locked with them
    Ok(wrap_shared(py, r, held)?.into_any())
}

/// A loss's definition: `module` (its type) and `options` (all, or those not at their defaults).
fn definition(
    py: Python<'_>,
    f: &str,
    l: ktorch_core::Shared<Loss>,
    all: bool,
) -> PyResult<PyObject> {
    let ds = l.domains();
    let (kind, opts) = call(py, f, ds, move |g| {
        let l = g.lock(&l)?;
        Ok((l.kind().to_string(), l.options(all)?))
    })?;
    let d = PyDict::new(py);
    d.set_item("module", kind)?;
    let o = PyDict::new(py);
    for (k, v) in opts {
        o.set_item(k, crate::data::value_to_py(py, &v)?)?;
    }
    d.set_item("options", o)?;
    Ok(d.into_any().unbind())
}

/// _lossfn(name, x, y, *settings, **options) -> Tensor
///
/// The functional form of a loss, behind `kt.ce(x, y)`, `kt.mse(x, y)`, ...
#[pyfunction]
#[pyo3(signature = (name, x, y, *args, **kw))]
pub fn _lossfn(
    py: Python<'_>,
    name: &str,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<crate::handles::Tensor>> {
    let rest: Vec<_> = args.iter().collect();
    let (pos, opts) = settings(name, &rest, kw)?;
    let l = Loss::new(name, &pos, &opts).py()?;
    let x = tensors_arg(name, x)?;
    let y = tensors_arg(name, y)?;
    let ds = domains([x.domains(), y.domains()]);
    let held = ds.clone();
    let r = call(py, name, ds, move |g| {
        Ok(l.forward(&x.tensors(g)?, &y.tensors(g)?)?)
    })?;
    wrap_shared(py, r, held)
}

/// _loss_types() -> list of str
///
/// The names of every loss (as `help("loss")`).
#[pyfunction]
pub fn _loss_types() -> Vec<&'static str> {
    ktorch_core::loss::LOSS_TYPES.to_vec()
}
