//! Optimizers: opt(name, parameters, *settings), parameter groups, lr.

use ktorch_core::model::shared;
use ktorch_core::Optimizer;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::{settings, to_value};
use crate::errors::{plock, terr, IntoPy};
use crate::handles::{obj, Obj, PyOptimizer};

/// The parameters held by a handle: a module's or model's parameters, or a tensor collection's members.
fn params_of(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Option<Vec<tch::Tensor>>> {
    Ok(match obj(func, x)? {
        Some(Obj::Module(m)) => Some(plock(func, &m)?.parameters()),
        Some(Obj::Model(m)) => {
            let m = plock(func, &m)?;
            let ps = plock(func, m.module())?.parameters();
            Some(ps)
        }
        Some(Obj::Tensors(t)) => Some(
            plock(func, &t)?
                .full()
                .iter()
                .map(tch::Tensor::shallow_clone)
                .collect(),
        ),
        Some(Obj::Opt(o)) => Some(plock(func, &o)?.params()),
        Some(Obj::Loss(_)) => return Err(terr(func, "a Loss has no parameters to optimize")),
        None => None,
    })
}

/// opt(name[, parameters], *settings, **options) -> Optimizer;
/// opt(o, group, parameters, *settings) adds or edits a parameter group.
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
        .map_err(|_| terr(f, "expecting an optimizer name or an Optimizer"))?;
    if let Ok(name) = first.downcast::<PyString>() {
        let (params, rest) = match args.get_item(1) {
            Ok(x) => match params_of(f, &x)? {
                Some(p) => (p, args.iter().skip(2).collect::<Vec<_>>()),
                None => (vec![], args.iter().skip(1).collect()),
            },
            Err(_) => (vec![], vec![]),
        };
        let (pos, opts) = settings(f, &rest, kw)?;
        let o = Optimizer::new(name.to_str()?, params, &pos, &opts).py()?;
        return Ok(Py::new(py, PyOptimizer::new(shared(o)))?.into_any());
    }
    let Some(Obj::Opt(o)) = obj(f, &first)? else {
        return Err(terr(
            f,
            format!(
                "expecting an optimizer name or an Optimizer, given {}",
                first.get_type().name()?
            ),
        ));
    };
    if args.len() < 3 {
        return Err(terr(
            f,
            "expecting (optimizer, group, parameters, *settings)",
        ));
    }
    let g: i64 = args
        .get_item(1)?
        .extract()
        .map_err(|_| terr(f, "group expects an integer"))?;
    let p = params_of(f, &args.get_item(2)?)?.ok_or_else(|| {
        terr(
            f,
            "parameters expects a Module, Model, Tensor, Vector or Dict",
        )
    })?;
    let rest: Vec<_> = args.iter().skip(3).collect();
    let (pos, opts) = settings(f, &rest, kw)?;
    plock(f, &o)?.add(g, p, &pos, &opts).py()?;
    Ok(py.None())
}

/// lr(o or model) -> list of learning rates, one per group; lr(o, r) sets them.
#[pyfunction]
#[pyo3(signature = (x, r=None))]
pub fn lr(x: &Bound<'_, PyAny>, r: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<f64>>> {
    let f = "lr";
    let o = match obj(f, x)? {
        Some(Obj::Opt(o)) => o,
        Some(Obj::Model(m)) => plock(f, &m)?.optimizer().clone(),
        _ => {
            return Err(terr(
                f,
                format!(
                    "expecting an Optimizer or Model, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    };
    match r {
        None => Ok(Some(plock(f, &o)?.lr())),
        Some(r) => {
            let v = to_value(f, r)?.as_floats(f, "rate").py()?;
            plock(f, &o)?.set_lr(&v).py()?;
            Ok(None)
        }
    }
}
