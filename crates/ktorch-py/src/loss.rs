//! Losses: loss(name, *settings) and loss(l or model, yhat, y).

use ktorch_core::sync::shared;
use ktorch_core::Loss;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::{settings, wrap_shared};
use crate::data::tensors_arg;
use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Obj, PyLoss};

/// loss(name, *settings, **options) -> Loss
/// loss(state) -> Loss
/// loss(l, x, y) -> Tensor
/// loss(m, x, y) -> Tensor
///
/// Makes a loss (or the loss a `state(l)` describes), or computes a loss (a Loss
/// handle's or a model's) of output(s) `x` and target(s) `y`.
///
/// - name: `help("loss")` lists them; e.g. `"ce"`, `"mse"`, `"bce"`.
/// - settings: by position in the loss's order (ce: weight, ignore, smoothing,
///   reduce) or by name; a trailing `"none"`, `"mean"` or `"sum"` is the reduction.
///   PyTorch keywords are accepted (`reduction`, `ignore_index`, `label_smoothing`).
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
    if args.len() != 3 {
        return Err(type_error(
            f,
            format!(
                "expecting (loss or model, output, target), given {} argument(s)",
                args.len()
            ),
        ));
    }
    let x = tensors_arg(f, &args.get_item(1)?)?;
    let y = tensors_arg(f, &args.get_item(2)?)?;
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
