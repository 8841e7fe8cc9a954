//! Devices, dtypes and training flags: to, copyto, device, dtype, sync, cudadevices,
//! training, freeze, unfreeze, gradflag.

use ktorch_core::device::Place;
use ktorch_core::tensor::{device_here, device_name, kind_name, Class, TensorOptions};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::convert::src;
use crate::errors::{type_error, IntoPy, Res};
use crate::gate::{call, domains, Gate};
use crate::handles::{obj, Obj, Tensor};

/// Device, dtype and gradient options of `to`/`copyto`: option names, or an
/// example Tensor whose device and dtype are taken; a trailing bool is the
/// original's async flag.
fn target(
    py: Python<'_>,
    f: &str,
    args: &Bound<'_, PyTuple>,
    non_blocking: Option<bool>,
) -> PyResult<(TensorOptions, bool)> {
    let mut items: Vec<Bound<'_, PyAny>> = args.iter().collect();
    let mut nb = non_blocking.unwrap_or(false);
    if let Some(last) = items.last() {
        if last.is_instance_of::<PyBool>() {
            if non_blocking.is_some() {
                return Err(type_error(
                    f,
                    "async flag given twice (positional and non_blocking)",
                ));
            }
            nb = last.extract::<bool>()?;
            items.pop();
        }
    }
    if items.is_empty() {
        return Err(type_error(
            f,
            "expecting a device (cpu, cuda, cuda:1), a dtype (float, double ...) or an example Tensor",
        ));
    }
    if let [x] = items.as_slice() {
        if let Ok(h) = x.downcast::<Tensor>() {
            let s = h.get().get(f)?;
            let ds = s.domains();
            let (k, d) = call(py, f, ds, move |g| {
                let t = g.lock(&s)?;
                Ok((t.get().f_kind()?, t.get().device()))
            })?;
            return Ok((
                TensorOptions {
                    kind: Some(k),
                    device: Some(d),
                    grad: None,
                },
                nb,
            ));
        }
    }
    let mut names = Vec::with_capacity(items.len());
    for x in &items {
        let s = x.downcast::<PyString>().map_err(|_| {
            type_error(
                f,
                format!(
                    "expecting option names as strings or one example Tensor, given {}",
                    x.get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                ),
            )
        })?;
        names.push(s.to_str()?.to_string());
    }
    Ok((TensorOptions::parse(&names).py_for(f)?, nb))
}

fn handle_expected(f: &str, x: &Bound<'_, PyAny>) -> PyErr {
    type_error(
        f,
        format!(
            "expecting a Tensor, Vector, Dict, Module, Loss, Optimizer or Model, given {}",
            x.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        ),
    )
}

/// to(h, device) -> None
/// to(h, dtype) -> None
/// to(h, device, dtype, ...) -> None
/// to(h, example) -> None
/// to(h, ..., async) -> None
///
/// Moves or converts the object in place: a Tensor, Vector or Dict (each member, which
/// may also take `grad`/`nograd`), a Module (parameters, their gradients and buffers), a
/// Loss (its class weights), an Optimizer (parameters and state: momenta, moments, the
/// lbfgs history) or a Model (module, loss and optimizer together; its data stays where
/// it is and each batch goes to the module's device). Options are names (`"cuda"`,
/// `"cuda:1"`, `"cpu"`, `"double"`, `"half"`, ...) or one example Tensor whose device and
/// dtype are taken. A trailing `True` (or `non_blocking=True`) lets a copy from pinned
/// host memory to a GPU return before it is done. Modules and optimizers keep their
/// parameters' identity, so whatever shares them sees them moved. A call that fails
/// changes nothing.
#[pyfunction]
#[pyo3(signature = (h, *args, non_blocking=None))]
pub fn to(
    py: Python<'_>,
    h: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    non_blocking: Option<bool>,
) -> PyResult<()> {
    let f = "to";
    let Some(o) = obj(f, h)? else {
        return Err(handle_expected(f, h));
    };
    let (opts, nb) = target(py, f, args, non_blocking)?;
    let ds = o.domains();
    call(py, f, ds, move |g| {
        match &o {
            Obj::Tensors(s) => g.lock(s)?.to(&opts, nb)?,
            Obj::Module(m) => g.lock(m)?.to(&Place::from_options(&opts, nb)?)?,
            Obj::Loss(l) => g.lock(l)?.to(&Place::from_options(&opts, nb)?)?,
            Obj::Opt(x) => g.lock(x)?.to(&Place::from_options(&opts, nb)?)?,
            Obj::Model(m) => {
                let p = Place::from_options(&opts, nb)?;
                g.lock(m)?.to(&p)?
            }
        }
        Ok(())
    })
}

/// copyto(t, options...) -> Tensor
/// copyto(t, example) -> Tensor
/// copyto(t, ..., async) -> Tensor
///
/// A copy of a Tensor (a Vector or Dict: of each member) on another device or as another
/// dtype, leaving the source where it was; always new memory. Options as for `to`.
#[pyfunction]
#[pyo3(signature = (t, *args, non_blocking=None))]
pub fn copyto(
    py: Python<'_>,
    t: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    non_blocking: Option<bool>,
) -> PyResult<PyObject> {
    let f = "copyto";
    let Some(Obj::Tensors(s)) = obj(f, t)? else {
        return Err(type_error(
            f,
            format!(
                "expecting a Tensor, Vector or Dict, given {}",
                t.get_type().name()?
            ),
        ));
    };
    let (opts, nb) = target(py, f, args, non_blocking)?;
    let ds = s.domains();
    let made = call(py, f, ds, move |g| Ok(g.lock(&s)?.copied(&opts, nb)?))?;
    crate::convert::wrap_tensors(py, made)
}

/// Per-member values of a Tensor/Vector/Dict as a value, list or dict.
fn per_member<T: for<'py> IntoPyObject<'py> + Clone>(
    py: Python<'_>,
    class: Class,
    names: &[String],
    vals: Vec<T>,
) -> PyResult<PyObject> {
    Ok(match class {
        Class::Tensor => match vals.into_iter().next() {
            Some(v) => v.into_py_any(py)?,
            None => py.None(),
        },
        Class::Vector => PyList::new(py, vals)?.into_any().unbind(),
        Class::Dict => {
            let d = PyDict::new(py);
            for (k, v) in names.iter().zip(vals) {
                d.set_item(k, v)?;
            }
            d.into_any().unbind()
        }
    })
}

/// device() -> str
/// device(h) -> str (a list or dict of str for a Vector or Dict)
///
/// With no argument, `"cuda"` where a CUDA device is available, else `"cpu"`. With a
/// handle, where it lives: a tensor's device, each member's for a Vector or Dict, a
/// module's (or model's, optimizer's) parameters' device (`"cpu"` for one without any).
#[pyfunction]
#[pyo3(signature = (h=None))]
pub fn device(py: Python<'_>, h: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
    let f = "device";
    let Some(h) = h else {
        let d = if tch::Cuda::is_available() {
            "cuda"
        } else {
            "cpu"
        };
        return Ok(PyString::new(py, d).into_any().unbind());
    };
    let Some(o) = obj(f, h)? else {
        return Err(handle_expected(f, h));
    };
    let ds = o.domains();
    enum Found {
        Members(Class, Vec<String>, Vec<String>),
        One(Option<tch::Device>),
    }
    let found = call(py, f, ds, move |g| {
        Ok(match &o {
            Obj::Tensors(s) => {
                let t = g.lock(s)?;
                let names = t.devices().into_iter().map(device_name).collect();
                Found::Members(t.class(), t.names().to_vec(), names)
            }
            Obj::Module(m) => Found::One(g.lock(m)?.device()),
            Obj::Loss(l) => Found::One(g.lock(l)?.weights().first().map(tch::Tensor::device)),
            Obj::Opt(x) => Found::One(g.lock(x)?.device()),
            Obj::Model(m) => {
                let m = g.lock(m)?;
                let d = g.lock(m.module())?.device();
                Found::One(d)
            }
        })
    })?;
    match found {
        Found::Members(class, names, devs) => per_member(py, class, &names, devs),
        Found::One(d) => Ok(
            PyString::new(py, &device_name(d.unwrap_or(tch::Device::Cpu)))
                .into_any()
                .unbind(),
        ),
    }
}

/// dtype(h) -> str (a list or dict of str for a Vector or Dict)
///
/// The dtype of a tensor (of each member of a Vector or Dict), or of a module's
/// (model's, optimizer's) floating-point parameters (None for one without any).
#[pyfunction]
pub fn dtype(py: Python<'_>, h: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "dtype";
    let Some(o) = obj(f, h)? else {
        return Err(handle_expected(f, h));
    };
    let ds = o.domains();
    enum Found {
        Members(Class, Vec<String>, Vec<String>),
        One(Option<tch::Kind>),
    }
    let found = call(py, f, ds, move |g| {
        Ok(match &o {
            Obj::Tensors(s) => {
                let t = g.lock(s)?;
                let names = t
                    .items()
                    .iter()
                    .map(|x| x.f_kind().map(|k| kind_name(k).to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                Found::Members(t.class(), t.names().to_vec(), names)
            }
            Obj::Module(m) => Found::One(g.lock(m)?.float_kind()),
            Obj::Loss(l) => Found::One(g.lock(l)?.weights().first().and_then(|t| t.f_kind().ok())),
            Obj::Opt(x) => Found::One(
                g.lock(x)?
                    .params()
                    .iter()
                    .find(|t| t.is_floating_point())
                    .and_then(|t| t.f_kind().ok()),
            ),
            Obj::Model(m) => {
                let m = g.lock(m)?;
                let k = g.lock(m.module())?.float_kind();
                Found::One(k)
            }
        })
    })?;
    match found {
        Found::Members(class, names, kinds) => per_member(py, class, &names, kinds),
        Found::One(k) => Ok(match k {
            Some(k) => PyString::new(py, kind_name(k)).into_any().unbind(),
            None => py.None(),
        }),
    }
}

/// sync() -> None
/// sync(device) -> None
/// sync(h) -> None
///
/// Waits for every kernel queued on a CUDA device to finish: the default one, a named
/// one (`"cuda:1"`, or its index), or the one a handle's tensors or parameters are on.
/// Nothing to wait for on the CPU.
#[pyfunction]
#[pyo3(signature = (x=None))]
pub fn sync(py: Python<'_>, x: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let f = "sync";
    let dev = match x {
        None => tch::Cuda::is_available()
            .then(|| tch::Device::Cuda(ktorch_core::tensor::default_cuda())),
        Some(x) if x.is_instance_of::<PyString>() => {
            let name: String = x.extract()?;
            Some(device_here(&name).py_for(f)?.ok_or_else(|| {
                crate::errors::ktorch_error(
                    f,
                    format!("unrecognized device: {name}, expecting cpu, cuda or cuda:<index>"),
                )
            })?)
        }
        Some(x) if x.is_instance_of::<PyInt>() && !x.is_instance_of::<PyBool>() => {
            let i: i64 = x.extract()?;
            if i < 0 {
                return Err(crate::errors::ktorch_error(
                    f,
                    format!("device index {i} invalid, must be non-negative"),
                ));
            }
            Some(
                device_here(&format!("cuda:{i}"))
                    .py_for(f)?
                    .unwrap_or(tch::Device::Cpu),
            )
        }
        Some(x) => {
            let Some(o) = obj(f, x)? else {
                return Err(handle_expected(f, x));
            };
            let ds = o.domains();
            call(py, f, ds, move |g| {
                Ok(match &o {
                    Obj::Tensors(s) => g.lock(s)?.devices().into_iter().find(|d| d.is_cuda()),
                    Obj::Module(m) => g.lock(m)?.device(),
                    Obj::Loss(_) => None,
                    Obj::Opt(o) => g.lock(o)?.device(),
                    Obj::Model(m) => {
                        let m = g.lock(m)?;
                        let d = g.lock(m.module())?.device();
                        d
                    }
                })
            })?
        }
    };
    if let Some(tch::Device::Cuda(i)) = dev {
        py.allow_threads(|| tch::Cuda::synchronize(i as i64));
    }
    Ok(())
}

/// cudadevices() -> list of str
/// cudadevices(None) -> int
///
/// The CUDA devices this process can use: `["cuda", "cuda:0", "cuda:1", ...]`, empty
/// where there are none; given None (the original's null argument), their number (0
/// where there are none).
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn cudadevices(py: Python<'_>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<PyObject> {
    let f = "cudadevices";
    let n = tch::Cuda::device_count().max(0);
    match args.len() {
        0 => {}
        1 if args.get_item(0)?.is_none() => {
            return Ok(n.into_pyobject(py)?.into_any().unbind());
        }
        1 => {
            return Err(type_error(
                f,
                format!(
                    "expecting no argument (the device names) or None (their number), given {}",
                    args.get_item(0)?.get_type().name()?
                ),
            ))
        }
        k => {
            return Err(type_error(
                f,
                format!("expecting at most one argument, given {k}"),
            ))
        }
    }
    let names: Vec<String> = if n == 0 {
        Vec::new()
    } else {
        std::iter::once("cuda".to_string())
            .chain((0..n).map(|i| format!("cuda:{i}")))
            .collect()
    };
    Ok(names.into_pyobject(py)?.into_any().unbind())
}

/// training(m) -> bool
/// training(m, flag) -> None
///
/// A module's (or model's module's) training flag, or sets it for the whole tree.
/// `run` trains in training mode and `testrun`/`evaluate` evaluate in evaluation mode
/// whatever the flag, each restoring it afterwards; explicit steps (`forward`,
/// `backward`, `backstep`) use the flag as set.
#[pyfunction]
#[pyo3(signature = (m, flag=None))]
pub fn training(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    flag: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<bool>> {
    let f = "training";
    let s = crate::module::module_of(py, f, m)?;
    let flag = match flag {
        None => None,
        Some(x) if x.is_instance_of::<PyBool>() => Some(x.extract::<bool>()?),
        Some(x) => {
            return Err(type_error(
                f,
                format!("expecting a bool flag, given {}", x.get_type().name()?),
            ))
        }
    };
    let ds = s.domains();
    call(py, f, ds, move |g| {
        let mut q = g.lock(&s)?;
        Ok(match flag {
            None => Some(q.is_training()),
            Some(b) => {
                q.set_training(b);
                None
            }
        })
    })
}

/// Parameter names (one string or a list), for freeze/unfreeze.
fn names_of(f: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if let Ok(s) = x.downcast::<PyString>() {
        return Ok(vec![s.to_str()?.to_string()]);
    }
    if x.is_instance_of::<PyList>() || x.is_instance_of::<PyTuple>() {
        return x
            .try_iter()?
            .map(|n| {
                let n = n?;
                n.downcast::<PyString>()
                    .map(|s| s.to_string())
                    .map_err(|_| {
                        type_error(
                            f,
                            format!(
                                "expecting parameter names as strings, given {}",
                                n.get_type()
                            ),
                        )
                    })
            })
            .collect();
    }
    Err(type_error(
        f,
        format!(
            "expecting a parameter name, a list of names or a dict of names and values, given {}",
            x.get_type().name()?
        ),
    ))
}

fn freezing(
    py: Python<'_>,
    f: &'static str,
    m: &Bound<'_, PyAny>,
    names: Option<&Bound<'_, PyAny>>,
    values: Option<&Bound<'_, PyAny>>,
    frozen: bool,
) -> PyResult<()> {
    // a parameter dictionary: every member's flag
    if let Some(Obj::Tensors(s)) = obj(f, m)? {
        if names.is_some() || values.is_some() {
            return Err(type_error(
                f,
                "a Tensor, Vector or Dict takes no names or values",
            ));
        }
        let ds = s.domains();
        return call(py, f, ds, move |g| Ok(g.lock(&s)?.freeze(frozen)?));
    }
    let s = crate::module::module_of(py, f, m)?;
    let (names, values) = match (names, values) {
        (None, None) => (None, None),
        (Some(n), None) if n.is_instance_of::<PyDict>() => {
            let (ks, vs) = crate::convert::named_srcs(f, n.downcast::<PyDict>()?)?;
            (Some(ks), Some(vs))
        }
        (Some(n), None) if n.is_instance_of::<crate::handles::Dict>() => {
            let Some(Obj::Tensors(d)) = obj(f, n)? else {
                return Err(type_error(f, "expecting a Dict"));
            };
            let ds = d.domains();
            let (ks, ts) = call(py, f, ds, move |g| {
                let t = g.lock(&d)?;
                Ok((t.names().to_vec(), t.shallow()))
            })?;
            (
                Some(ks),
                Some(ts.into_iter().map(crate::convert::Src::Data).collect()),
            )
        }
        (Some(n), v) => {
            let ks = names_of(f, n)?;
            let vs = match v {
                None => None,
                Some(v) if n.is_instance_of::<PyString>() => Some(vec![src(f, v)?]),
                Some(v) if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() => Some(
                    v.try_iter()?
                        .map(|x| src(f, &x?))
                        .collect::<PyResult<Vec<_>>>()?,
                ),
                Some(v) => Some(vec![src(f, v)?]),
            };
            (Some(ks), vs)
        }
        (None, Some(_)) => return Err(type_error(f, "values given without names")),
    };
    let vds: Vec<_> = values.iter().flatten().flat_map(|v| v.domains()).collect();
    let ds = domains([s.domains(), vds]);
    call(py, f, ds, move |g: &Gate| -> Res<()> {
        let vs = match &values {
            None => None,
            Some(vs) => Some(vs.iter().map(|v| v.tensor(g)).collect::<Res<Vec<_>>>()?),
        };
        g.lock(&s)?
            .freeze(names.as_deref(), vs.as_deref(), frozen)?;
        Ok(())
    })
}

/// freeze(m) -> None
/// freeze(m, names) -> None
/// freeze(m, names, values) -> None
/// freeze(m, {name: value, ...}) -> None
///
/// Turns gradients off for every parameter of a module (or a model's module, or each
/// member of a parameter Dict), or for the named ones, first setting their values where
/// given (an array, list, scalar or Tensor each; a scalar fills). Frozen parameters get
/// no gradient, no optimizer update (weight decay included) and no share of clipping.
#[pyfunction]
#[pyo3(signature = (m, names=None, values=None))]
pub fn freeze(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    names: Option<&Bound<'_, PyAny>>,
    values: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    freezing(py, "freeze", m, names, values, true)
}

/// unfreeze(m) -> None
/// unfreeze(m, names) -> None
/// unfreeze(m, names, values) -> None
/// unfreeze(m, {name: value, ...}) -> None
///
/// Turns gradients back on, as `freeze` turns them off (the same forms).
#[pyfunction]
#[pyo3(signature = (m, names=None, values=None))]
pub fn unfreeze(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    names: Option<&Bound<'_, PyAny>>,
    values: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    freezing(py, "unfreeze", m, names, values, false)
}

/// gradflag(h) -> bool, list or dict
/// gradflag(t, flag) -> None
///
/// Whether a tensor takes gradients (each member of a Vector or Dict: a list or dict),
/// or each parameter of a module or model (a dict of name to bool). With `flag`, sets a
/// tensor's (every member's) flag.
#[pyfunction]
#[pyo3(signature = (h, flag=None))]
pub fn gradflag(
    py: Python<'_>,
    h: &Bound<'_, PyAny>,
    flag: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "gradflag";
    let flag = match flag {
        None => None,
        Some(x) if x.is_instance_of::<PyBool>() => Some(x.extract::<bool>()?),
        Some(x) => {
            return Err(type_error(
                f,
                format!("expecting a bool flag, given {}", x.get_type().name()?),
            ))
        }
    };
    match obj(f, h)? {
        Some(Obj::Tensors(s)) => {
            if let Some(b) = flag {
                let ds = s.domains();
                call(py, f, ds, move |g| {
                    let mut t = g.lock(&s)?;
                    let o = TensorOptions {
                        grad: Some(b),
                        ..TensorOptions::default()
                    };
                    t.to(&o, false)?;
                    Ok(())
                })?;
                return Ok(py.None());
            }
            let ds = s.domains();
            let (class, names, flags) = call(py, f, ds, move |g| {
                let t = g.lock(&s)?;
                let fl: Vec<bool> = t.items().iter().map(tch::Tensor::requires_grad).collect();
                Ok((t.class(), t.names().to_vec(), fl))
            })?;
            per_member(py, class, &names, flags)
        }
        Some(Obj::Module(_)) | Some(Obj::Model(_)) => {
            if flag.is_some() {
                return Err(type_error(
                    f,
                    "a module's flags are set with freeze/unfreeze",
                ));
            }
            let s = crate::module::module_of(py, f, h)?;
            let ds = s.domains();
            let flags = call(py, f, ds, move |g| Ok(g.lock(&s)?.gradflags()))?;
            let d = PyDict::new(py);
            for (k, v) in flags {
                d.set_item(k, v)?;
            }
            Ok(d.into_any().unbind())
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting a Tensor, Vector, Dict, Module or Model, given {}",
                h.get_type().name()?
            ),
        )),
    }
}
