//! The rest of the original's model api: module tree read-outs (names, moduletypes,
//! parmtypes), kforward, str, batchnorm (weight averaging's statistics recompute),
//! cudadevice, and the bcelogit1/bcelogit2 functions of binary cross entropy.

use ktorch_core::model::swa;
use ktorch_core::printed;
use ktorch_core::tensor::Class;
use ktorch_core::Loss;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::convert::{settings, wrap_shared, wrap_vector_shared, Srcs};
use crate::data::tensors_arg;
use crate::errors::{ktorch_error, type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Obj};
use crate::parms::{child_path, on_module};

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// names(m) -> list of str
/// names(m, child) -> list of str
///
/// The dotted names of every module inside a module (or a model's module), depth first
/// as PyTorch's `named_modules` lists them, the module itself left out:
/// `["a", "a.fc", "a.act", "b", ...]`. With `child` (a dotted name, or a position among
/// the direct children), the modules inside that child, named from it. `childnames`
/// gives the direct children only.
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn names(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<String>> {
    let (names, _) = on_module(py, "names", m, child, |q| {
        Ok(q.named_modules()
            .into_iter()
            .skip(1)
            .map(|(k, _)| k)
            .collect())
    })?;
    Ok(names)
}

/// moduletypes(m) -> dict of str to str
/// moduletypes(m, types) -> dict of str to str
/// moduletypes(m, type) -> list of str
///
/// Each module of a module tree (or a model's) by dotted name, mapped to its type; the
/// module itself is named `""`. With a list of types, only modules of those types; with
/// one type (a string), the list of names of the modules of that type:
/// `moduletypes(q, "linear")` -> `["a", "b"]`.
#[pyfunction]
#[pyo3(signature = (m, types=None))]
pub fn moduletypes(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    types: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "moduletypes";
    let known = ktorch_core::nn::module_types();
    let check = |t: &Bound<'_, PyAny>| -> PyResult<String> {
        let s: String = t
            .downcast::<PyString>()
            .map_err(|_| {
                type_error(
                    f,
                    format!("types expects module type names, given {}", type_name(t)),
                )
            })?
            .to_str()?
            .to_string();
        if !known.contains(&s.as_str()) {
            return Err(ktorch_error(
                f,
                ktorch_core::error::unrecognized("module type", "module", &s, &known),
            ));
        }
        Ok(s)
    };
    // (wanted types, one type asked for)
    let (want, one): (Option<Vec<String>>, bool) = match types {
        None => (None, false),
        Some(t) if t.is_instance_of::<PyString>() => (Some(vec![check(t)?]), true),
        Some(t) if t.is_instance_of::<PyList>() || t.is_instance_of::<PyTuple>() => (
            Some(t.try_iter()?.map(|x| check(&x?)).collect::<PyResult<_>>()?),
            false,
        ),
        Some(t) => {
            return Err(type_error(
                f,
                format!(
                    "types expects a module type or a list of them, given {}",
                    type_name(t)
                ),
            ))
        }
    };
    let (pairs, _) = on_module(py, f, m, None, move |q| {
        Ok(q.named_modules()
            .into_iter()
            .map(|(k, c)| (k, c.kind().to_string()))
            .collect::<Vec<_>>())
    })?;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(_, t)| want.as_ref().is_none_or(|w| w.contains(t)))
        .collect();
    if one {
        let l: Vec<String> = pairs.into_iter().map(|(k, _)| k).collect();
        return Ok(l.into_pyobject(py)?.into_any().unbind());
    }
    let d = PyDict::new(py);
    for (k, t) in pairs {
        d.set_item(k, t)?;
    }
    Ok(d.into_any().unbind())
}

/// parmtypes(m) -> dict of str to str
///
/// Each parameter of a module (or a model's module) by its full name, mapped to the type
/// of the module that holds it: `{"a.weight": "conv2d", "a.bias": "conv2d",
/// "b.weight": "batchnorm2d", ...}`, e.g. to pick the parameters to initialise.
#[pyfunction]
pub fn parmtypes(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let (pairs, _) = on_module(py, "parmtypes", m, None, |q| {
        let mut out = Vec::new();
        for (path, c) in q.named_modules() {
            for (k, _) in c.own_params() {
                let name = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push((name, c.kind().to_string()));
            }
        }
        Ok(out)
    })?;
    let d = PyDict::new(py);
    for (k, t) in pairs {
        d.set_item(k, t)?;
    }
    Ok(d.into_any().unbind())
}

/// kforward(m, child, x, ...) -> Tensor or Vector
///
/// The forward calculation of one child of a module (a dotted name or a position), for
/// use inside a callback module's function `fn(m, *inputs)`: it runs in whatever mode
/// the outer call set, training or evaluation, with or without gradients, so a callback
/// that runs its children with `kforward` follows `forward`, `nforward`, `evaluate` or
/// `run` as a sequential module would. Several outputs come back as a Vector.
#[pyfunction]
#[pyo3(signature = (m, child, *x))]
pub fn kforward(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: &Bound<'_, PyAny>,
    x: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let f = "kforward";
    let path = child_path(f, Some(child))?.unwrap_or_default();
    let s = crate::module::module_of(py, f, m)?;
    let mut xs = Srcs::default();
    for a in x.iter() {
        xs.0.extend(tensors_arg(f, &a)?.0);
    }
    let ds = domains([s.domains(), xs.domains()]);
    let held = ds.clone();
    let mut out = call(py, f, ds, move |g| {
        let (x, owned) = xs.owned_tensors(g)?;
        let q = g.lock(&s)?;
        let c = q.child(&path)?;
        let x = c.conform(x, &owned, "inputs")?;
        let x = c.place(x, "the inputs are")?;
        Ok(c.forward(&x)?)
    })?;
    // the outputs' graph reaches the module's parameters: they are locked with it
    if out.len() == 1 {
        return Ok(wrap_shared(py, out.remove(0), held)?.into_any());
    }
    Ok(wrap_vector_shared(py, out, held)?.into_any())
}

/// str(h) -> str
///
/// The printed form of an object as libtorch's C++ writes it: a module tree
/// (`torch::nn::Sequential(\n  (0): torch::nn::Linear(in_features=784,
/// out_features=10, bias=true)\n  (1): torch::nn::ReLU()\n)`), a model's module, a loss
/// (`torch::nn::CrossEntropyLoss()`), a tensor with its values and type
/// (`[ CPUFloatType{2,3} ]`); a list of them for a Vector, a dict for a Dict. The
/// original's own module types print as `knn::Name(setting=value, ...)`. Print it with
/// `print(kt.str(h))`.
#[pyfunction(name = "str")]
pub fn str_(py: Python<'_>, h: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "str";
    let o = match obj(f, h)? {
        Some(Obj::Opt(_)) => {
            return Err(type_error(
                f,
                "an Optimizer has no printed form (libtorch prints modules and tensors)",
            ))
        }
        Some(o) => o,
        None => {
            return Err(type_error(
                f,
                format!("expecting a ktorch handle, given {}", type_name(h)),
            ))
        }
    };
    enum Out {
        One(String),
        Many(Class, Vec<String>, Vec<String>),
    }
    let ds = o.domains();
    let r = call(py, f, ds, move |g| {
        Ok(match &o {
            Obj::Tensors(s) => {
                let t = g.lock(s)?;
                let each = t
                    .items()
                    .iter()
                    .map(printed::tensor)
                    .collect::<ktorch_core::Result<Vec<_>>>()?;
                match t.class() {
                    Class::Tensor => Out::One(each.into_iter().next().unwrap_or_default()),
                    c => Out::Many(c, t.names().to_vec(), each),
                }
            }
            Obj::Module(m) => Out::One(printed::module(&*g.lock(m)?)),
            Obj::Loss(l) => Out::One(printed::loss(&*g.lock(l)?)?),
            Obj::Model(m) => {
                let q = g.lock(m)?.module().clone();
                let s = printed::module(&*g.lock(&q)?);
                Out::One(s)
            }
            Obj::Opt(_) => unreachable!(),
        })
    })?;
    Ok(match r {
        Out::One(s) => s.into_pyobject(py)?.into_any().unbind(),
        Out::Many(Class::Dict, names, each) => {
            let d = PyDict::new(py);
            for (k, s) in names.into_iter().zip(each) {
                d.set_item(k, s)?;
            }
            d.into_any().unbind()
        }
        Out::Many(_, _, each) => each.into_pyobject(py)?.into_any().unbind(),
    })
}

/// The momenta of `batchnorm(m, d)`: names to a float in [0, 1] or None.
fn momenta(f: &str, d: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Option<f64>)>> {
    let d = d.downcast::<PyDict>().map_err(|_| {
        type_error(
            f,
            format!(
                "expecting a dict of batchnorm names to momentum (as batchnorm(m) returns), given {}",
                type_name(d)
            ),
        )
    })?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .downcast::<PyString>()
            .map_err(|_| {
                type_error(
                    f,
                    format!("batchnorm names must be strings, given {}", type_name(&k)),
                )
            })?
            .to_str()?
            .to_string();
        let v = if v.is_none() {
            None
        } else if (v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyInt>())
            && !v.is_instance_of::<PyBool>()
        {
            Some(v.extract::<f64>()?)
        } else {
            return Err(type_error(
                f,
                format!(
                    "momentum of `{k}` expects a number or None, given {}",
                    type_name(&v)
                ),
            ));
        };
        out.push((k, v));
    }
    Ok(out)
}

/// batchnorm(m) -> dict of str to float or None
/// batchnorm(m, momenta) -> None
///
/// Recomputes the running statistics of the batchnorm layers of a model's module after
/// weight averaging (`copyparms`, `avgparms`), as `torch.optim.swa_utils.update_bn`: each
/// layer's running mean is reset to 0, its variance to 1, its count to 0 and its momentum
/// to None (a cumulative average); the module runs forward over the model's training
/// inputs, batch by batch (option `batchsize`), in training mode without gradients; then
/// each momentum and training flag is restored. Returns each batchnorm layer's name
/// mapped to its momentum.
///
/// Given a Module, or a model without training data, the layers are only reset (momentum
/// None), for the statistics to be recomputed by hand (e.g. `nforward` over batches);
/// `batchnorm(m, momenta)` then restores the momenta the first call returned.
#[pyfunction]
#[pyo3(signature = (m, momenta=None))]
pub fn batchnorm(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    momenta: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "batchnorm";
    let o = match obj(f, m)? {
        Some(o @ (Obj::Module(_) | Obj::Model(_))) => o,
        _ => {
            return Err(type_error(
                f,
                format!("expecting a Module or Model, given {}", type_name(m)),
            ))
        }
    };
    let given = momenta.map(|d| self::momenta(f, d)).transpose()?;
    let ds = o.domains();
    let r = call(py, f, ds, move |g| {
        let module = |g: &crate::gate::Gate| -> crate::errors::Res<_> {
            Ok(match &o {
                Obj::Module(q) => q.clone(),
                Obj::Model(md) => g.lock(md)?.module().clone(),
                _ => unreachable!(),
            })
        };
        if let Some(d) = &given {
            let q = module(g)?;
            swa::set_momenta(&mut *g.lock(&q)?, d)?;
            return Ok(None);
        }
        Ok(Some(match &o {
            Obj::Model(md) => {
                let md = g.lock(md)?;
                let q = md.module().clone();
                let data = md.train.has_data().then_some(&md.train);
                let r = swa::batchnorm(&mut *g.lock(&q)?, data)?;
                r
            }
            _ => {
                let q = module(g)?;
                let r = swa::batchnorm(&mut *g.lock(&q)?, None)?;
                r
            }
        }))
    })?;
    match r {
        None => Ok(py.None()),
        Some(pairs) => {
            let d = PyDict::new(py);
            for (k, v) in pairs {
                d.set_item(k, v)?;
            }
            Ok(d.into_any().unbind())
        }
    }
}

/// cudadevice() -> str or None
/// cudadevice(device) -> None
///
/// The CUDA device that the generic name `"cuda"` means (`"cuda:0"` unless changed), None
/// where there is no CUDA device; with a device name (`"cuda:1"`), makes `"cuda"` mean it
/// from now on (for new tensors, `to`, `sync`), and makes it torch's current device.
#[pyfunction]
#[pyo3(signature = (device=None))]
pub fn cudadevice(py: Python<'_>, device: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let f = "cudadevice";
    let Some(d) = device else {
        if tch::Cuda::device_count() <= 0 {
            return Ok(None);
        }
        return Ok(Some(format!(
            "cuda:{}",
            ktorch_core::tensor::default_cuda()
        )));
    };
    let name: String = d
        .downcast::<PyString>()
        .map_err(|_| {
            type_error(
                f,
                format!(
                    "expecting a device name, e.g. \"cuda:0\", given {}",
                    type_name(d)
                ),
            )
        })?
        .to_str()?
        .to_string();
    let bad = || {
        ktorch_error(
            f,
            format!("unrecognized CUDA device `{name}`, expecting cuda with valid device number, e.g. cuda:0"),
        )
    };
    let i: usize = name
        .strip_prefix("cuda:")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    ktorch_core::tensor::set_default_cuda(i).py_for(f)?;
    // torch's current device follows, so tensors torch makes on "cuda" agree
    py.import("torch")?
        .getattr("cuda")?
        .call_method1("set_device", (i,))?;
    Ok(None)
}

/// bcelogit1(x, y, *settings, **options) -> Tensor
///
/// Binary cross entropy with logits of outputs `x` and targets `y`, with the settings of
/// the `bcelogits` loss: class weights (PyTorch's `pos_weight`, one a class) and the
/// reduction: `bcelogit1(x, y, [.25, .5, 1, 2, 4], "none")`. The same as `bcelogits`.
#[pyfunction]
#[pyo3(signature = (x, y, *args, **kw))]
pub fn bcelogit1(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<crate::handles::Tensor>> {
    bce_with(py, "bcelogit1", x, &[y], args, kw)
}

/// bcelogit2(x, y, w, *settings, **options) -> Tensor
///
/// Binary cross entropy with logits with batch weights `w` (the size of `x` and `y`,
/// weighting each element's loss) given with the inputs, then the settings of the
/// `bcelogits` loss (class weights, reduction):
/// `bcelogit2(x, y, w, [.25, .5, 1, 2, 4], "none")`.
#[pyfunction]
#[pyo3(signature = (x, y, w, *args, **kw))]
pub fn bcelogit2(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    w: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<crate::handles::Tensor>> {
    bce_with(py, "bcelogit2", x, &[y, w], args, kw)
}

fn bce_with(
    py: Python<'_>,
    f: &str,
    x: &Bound<'_, PyAny>,
    ys: &[&Bound<'_, PyAny>],
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<crate::handles::Tensor>> {
    let rest: Vec<_> = args.iter().collect();
    let (pos, opts) = settings(f, &rest, kw)?;
    let l = Loss::new("bcelogits", &pos, &opts).py_for(f)?;
    let x = tensors_arg(f, x)?;
    let mut y = Srcs::default();
    for t in ys {
        y.0.extend(tensors_arg(f, t)?.0);
    }
    let ds = domains([x.domains(), y.domains()]);
    let held = ds.clone();
    let r = call(py, f, ds, move |g| {
        Ok(l.forward(&x.tensors(g)?, &y.tensors(g)?)?)
    })?;
    wrap_shared(py, r, held)
}
