//! Handle life and read-outs of any object: free, addref, use, objclass, size, info, help, seed, objects.

use ktorch_core::tensor::{kind_name, Class};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::data::value_to_py;
use crate::errors::{ktorch_error, type_error, Res};
use crate::gate::{call, Gate};
use crate::handles::{obj, Dict, Obj, PyLoss, PyModel, PyModule, PyOptimizer, Tensor, Vector};

macro_rules! each_handle {
    ($x:expr, $h:ident => $body:expr, $other:expr) => {
        if let Ok($h) = $x.downcast::<Tensor>() {
            $body
        } else if let Ok($h) = $x.downcast::<Vector>() {
            $body
        } else if let Ok($h) = $x.downcast::<Dict>() {
            $body
        } else if let Ok($h) = $x.downcast::<PyModule>() {
            $body
        } else if let Ok($h) = $x.downcast::<PyLoss>() {
            $body
        } else if let Ok($h) = $x.downcast::<PyOptimizer>() {
            $body
        } else if let Ok($h) = $x.downcast::<PyModel>() {
            $body
        } else {
            $other
        }
    };
}

/// free(h) -> None
/// free(h1, h2, ...) -> None
///
/// Releases each handle's object now instead of when Python drops the handle. Any later
/// use of a freed handle raises KtorchError; objects shared with other holders (a module
/// inside a model) live on while a holder does.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn free(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let f = "free";
    if args.is_empty() {
        return Err(type_error(f, "expecting one or more handles"));
    }
    for a in args.iter() {
        each_handle!(a, h => { h.get().get(f)?; }, return Err(type_error(f, format!("expecting a ktorch handle, given {}", a.get_type().name()?))));
    }
    for a in args.iter() {
        each_handle!(a, h => { h.get().free(); }, {});
    }
    Ok(())
}

/// addref(h) -> handle
///
/// A second handle to the same object (freeing one leaves the other working).
#[pyfunction]
pub fn addref(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "addref";
    each_handle!(x, h => {
        let n = Py::new(py, h.get().another(py, f)?)?;
        Ok(n.into_any())
    }, Err(type_error(f, format!("expecting a ktorch handle, given {}", x.get_type().name()?))))
}

/// use(h, new) -> None
///
/// Moves `new`'s object into handle `h`: `h`'s old object is released and `new` is
/// freed (the q idiom `use[h]...`). Both must be of the same class.
#[pyfunction(name = "use")]
pub fn use_(h: &Bound<'_, PyAny>, new: &Bound<'_, PyAny>) -> PyResult<()> {
    let f = "use";
    macro_rules! mv {
        ($t:ty) => {
            if let Ok(a) = h.downcast::<$t>() {
                let b = new.downcast::<$t>().map_err(|_| {
                    type_error(
                        f,
                        format!(
                            "expecting a second {} to move, given {}",
                            stringify!($t),
                            new.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ),
                    )
                })?;
                if a.is(b) {
                    return Ok(());
                }
                a.get().get(f)?;
                let (x, keep) = b.get().take(f)?;
                a.get().replace(x, keep);
                return Ok(());
            }
        };
    }
    mv!(Tensor);
    mv!(Vector);
    mv!(Dict);
    mv!(PyModule);
    mv!(PyLoss);
    mv!(PyOptimizer);
    mv!(PyModel);
    Err(type_error(
        f,
        format!("expecting a ktorch handle, given {}", h.get_type().name()?),
    ))
}

/// Runs `f` with the GIL inside a call that holds `o`'s lock (building
/// Python values from the object's state).
fn with_obj(
    py: Python<'_>,
    func: &str,
    o: Obj,
    f: impl FnOnce(&Gate, Python<'_>, &Obj) -> Res<PyObject> + Send,
) -> PyResult<PyObject> {
    let ds = o.domains();
    call(py, func, ds, move |g| Python::with_gil(|py| f(g, py, &o)))
}

/// objclass(h) -> str
///
/// The handle's class: `"tensor"`, `"vector"`, `"dictionary"`, `"module"`, `"loss"`,
/// `"optimizer"` or `"model"` (q's `class`, a reserved word in Python).
#[pyfunction]
pub fn objclass(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    let f = "objclass";
    Ok(match obj(f, x)? {
        Some(Obj::Tensors(s)) => {
            let ds = s.domains();
            call(py, f, ds, move |g| Ok(g.lock(&s)?.class().name()))?
        }
        Some(Obj::Module(_)) => "module",
        Some(Obj::Loss(_)) => "loss",
        Some(Obj::Opt(_)) => "optimizer",
        Some(Obj::Model(_)) => "model",
        None => {
            return Err(type_error(
                f,
                format!("expecting a ktorch handle, given {}", x.get_type().name()?),
            ))
        }
    })
}

/// size(h) -> list or dict
///
/// A tensor's shape (of the current batch while batching); for a Vector one shape per
/// member, for a Dict a dict of shapes; for a Module a dict of its parameter shapes.
#[pyfunction]
pub fn size(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "size";
    let o = match obj(f, x)? {
        Some(o @ (Obj::Tensors(_) | Obj::Module(_))) => o,
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting a Tensor, Vector, Dict or Module, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    };
    with_obj(py, f, o, |g, py, o| match o {
        Obj::Tensors(s) => {
            let t = g.lock(s)?;
            Ok(match t.class() {
                Class::Tensor => t.get().size().into_pyobject(py)?.into_any().unbind(),
                Class::Vector => t
                    .items()
                    .iter()
                    .map(|t| t.size())
                    .collect::<Vec<_>>()
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
                Class::Dict => {
                    let d = PyDict::new(py);
                    for (k, t) in t.names().iter().zip(t.items()) {
                        d.set_item(k, t.size())?;
                    }
                    d.into_any().unbind()
                }
            })
        }
        Obj::Module(m) => {
            let d = PyDict::new(py);
            for (k, t) in g.lock(m)?.named_parameters() {
                d.set_item(k, t.size())?;
            }
            Ok(d.into_any().unbind())
        }
        _ => unreachable!(),
    })
}

/// `extra`: the handles on the same object besides the one asked about (`addref`),
/// counted as references, as the original counts its api-pointers.
fn tensor_info<'py>(py: Python<'py>, t: &tch::Tensor, extra: i64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("device", ktorch_core::tensor::device_name(t.device()))?;
    // never `Tensor::kind` (it panics on dtypes tch cannot name)
    let dtype = match t.f_kind() {
        Ok(k) => kind_name(k).to_string(),
        Err(_) => ktorch_core::tensor::kinds::dtype_name(t),
    };
    d.set_item("dtype", dtype)?;
    d.set_item("layout", if t.is_sparse() { "sparse" } else { "strided" })?;
    d.set_item(
        "gradient",
        if t.requires_grad() { "grad" } else { "nograd" },
    )?;
    let pt = crate::convert::to_torch(py, t)?;
    d.set_item("pin", pt.call_method0("is_pinned")?)?;
    d.set_item(
        "memory",
        if t.is_contiguous() {
            "contiguous"
        } else {
            "strided"
        },
    )?;
    let gf = pt.getattr("grad_fn")?;
    let gf = if gf.is_none() {
        String::new()
    } else {
        gf.get_type().name()?.to_string()
    };
    d.set_item("leaf", pt.getattr("is_leaf")?)?;
    d.set_item("gradfn", gf)?;
    d.set_item("dim", t.dim())?;
    d.set_item("size", t.size())?;
    let strides = if ktorch_core::tensor::kinds::is_strided(t) {
        t.stride()
    } else {
        Vec::new()
    };
    d.set_item("stride", strides)?;
    d.set_item("numel", t.numel())?;
    d.set_item("itemsize", pt.call_method0("element_size")?)?;
    d.set_item("contiguous", t.is_contiguous())?;
    d.set_item("offset", pt.call_method0("storage_offset")?)?;
    // references to the tensor besides the temporary made for this call
    let uses: i64 = pt.call_method0("_use_count")?.extract()?;
    d.set_item("ref", uses - 1 + extra)?;
    Ok(d)
}

/// Settings by name as a Python dict.
fn named_py(py: Python<'_>, kv: &[(String, ktorch_core::Value)]) -> PyResult<Py<PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in kv {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d.unbind())
}

/// info(h) -> dict
///
/// A dict describing the object. Tensors: device, dtype, layout, gradient, pin,
/// memory, leaf, gradfn, dim, size, stride, numel, itemsize, contiguous, offset, ref.
/// Modules: type, name, training, parms, buffers, settings and options (as the spec gave
/// them). Losses: type, options (every setting by name). Optimizers: type, groups, lr,
/// settings (a dict a group) and defaults (what a new group starts from). Models:
/// module, loss, optimizer, train and test rows, lossscale (the loss scale of float16
/// autocast training, None before it).
#[pyfunction]
pub fn info(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "info";
    let Some(o) = obj(f, x)? else {
        return Err(type_error(
            f,
            format!("expecting a ktorch handle, given {}", x.get_type().name()?),
        ));
    };
    with_obj(py, f, o, |g, py, o| {
        let d = PyDict::new(py);
        match o {
            Obj::Tensors(s) => {
                // holders: the handles on the object, and this call's own reference
                let extra = s.holders().saturating_sub(2) as i64;
                let t = g.lock(s)?;
                return Ok(match t.class() {
                    Class::Tensor => tensor_info(py, t.get(), extra)?.into_any().unbind(),
                    _ => {
                        let l = PyList::empty(py);
                        for x in t.items() {
                            l.append(tensor_info(py, x, extra)?)?;
                        }
                        l.into_any().unbind()
                    }
                });
            }
            Obj::Module(m) => {
                let m = g.lock(m)?;
                d.set_item("type", m.kind())?;
                d.set_item("name", m.name())?;
                d.set_item("training", m.is_training())?;
                d.set_item("parms", m.parmnames())?;
                d.set_item(
                    "buffers",
                    m.named_buffers()
                        .into_iter()
                        .map(|(k, _)| k)
                        .collect::<Vec<_>>(),
                )?;
                // the settings it was built with: by position, and options by name
                match m.made() {
                    Some((args, kw)) => {
                        let a = args
                            .iter()
                            .map(|v| value_to_py(py, v))
                            .collect::<PyResult<Vec<_>>>()?;
                        d.set_item("settings", PyList::new(py, a)?)?;
                        d.set_item("options", named_py(py, kw)?)?;
                    }
                    None => {
                        d.set_item("settings", py.None())?;
                        d.set_item("options", py.None())?;
                    }
                }
            }
            Obj::Loss(l) => {
                let l = g.lock(l)?;
                d.set_item("type", l.kind())?;
                d.set_item("options", named_py(py, &l.options(true)?)?)?;
            }
            Obj::Opt(o) => {
                let o = g.lock(o)?;
                d.set_item("type", o.kind())?;
                d.set_item("groups", o.groups())?;
                d.set_item("lr", o.lr())?;
                let gs = PyList::empty(py);
                for i in 0..o.groups() {
                    gs.append(named_py(py, &o.settings(i))?)?;
                }
                d.set_item("settings", gs)?;
                d.set_item("defaults", named_py(py, &o.settings(o.groups()))?)?;
            }
            Obj::Model(m) => {
                let m = g.lock(m)?;
                d.set_item("module", g.lock(m.module())?.kind())?;
                d.set_item("loss", g.lock(m.loss_fn())?.kind())?;
                d.set_item("optimizer", g.lock(m.optimizer())?.kind())?;
                d.set_item("train", m.train.rows())?;
                d.set_item("test", m.test.rows())?;
                d.set_item("lossscale", m.loss_scale()?)?;
            }
        }
        Ok(d.into_any().unbind())
    })
}

/// seed(n) -> None
///
/// Seeds libtorch's random generators (weights, `randn`, dropout, shuffling).
#[pyfunction]
pub fn seed(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let n: i64 = n
        .extract()
        .map_err(|_| type_error("seed", "expecting an integer seed"))?;
    tch::manual_seed(n);
    Ok(())
}

/// Options by name.
type Opts = Vec<(String, ktorch_core::Value)>;

/// The options of a module type with example values where it needs them, defaults
/// otherwise.
fn module_help(name: &str) -> ktorch_core::Result<Opts> {
    ktorch_core::nn::module_help(name)
}

/// Every setting of a loss with its default.
fn loss_help(name: &str) -> ktorch_core::Result<Opts> {
    ktorch_core::Loss::new(name, &[], &[])?.options(true)
}

/// Every setting of an optimizer with its default.
fn opt_help(name: &str) -> ktorch_core::Result<Opts> {
    Ok(ktorch_core::optim::Optimizer::new(name, Vec::new(), &[], &[])?.settings(0))
}

/// The options of a module, loss or optimizer type by name: modules first (`pairwise`
/// and `similar` are modules and losses), None for an unknown name.
fn type_help(name: &str) -> PyResult<Option<Opts>> {
    let got = if ktorch_core::nn::module_types().contains(&name) {
        module_help(name)
    } else if ktorch_core::loss::LOSS_TYPES.contains(&name) {
        loss_help(name)
    } else if ktorch_core::optim::OPTIMIZER_TYPES.contains(&name) {
        opt_help(name)
    } else {
        return Ok(None);
    };
    got.map(Some)
        .map_err(|e| ktorch_error("help", e.to_string()))
}

/// A table of the types of one kind: a dict per type, its name under `key` and its
/// options under `options`.
fn type_table(
    py: Python<'_>,
    key: &str,
    names: &[&str],
    help: fn(&str) -> ktorch_core::Result<Opts>,
) -> PyResult<PyObject> {
    let l = PyList::empty(py);
    for n in names {
        let row = PyDict::new(py);
        row.set_item(key, n)?;
        let opts = help(n).map_err(|e| ktorch_error("help", e.to_string()))?;
        row.set_item("options", named_py(py, &opts)?)?;
        l.append(row)?;
    }
    Ok(l.into_any().unbind())
}

/// The reference of the ktorch function `name` (its docstring), None if there is none.
fn function_doc(py: Python<'_>, name: &str) -> PyResult<Option<PyObject>> {
    let m = py.import("ktorch")?;
    let Ok(fun) = m.getattr(name) else {
        return Ok(None);
    };
    if !fun.is_callable() || name.starts_with('_') {
        return Ok(None);
    }
    let doc = fun.getattr("__doc__")?;
    Ok((!doc.is_none()).then(|| doc.unbind()))
}

/// help() -> list of topics
/// help(topic) -> list or dict
/// help(topic, table=True) -> list of dicts
/// help(name) -> dict or str
///
/// Tables from the api: `help("module")`, `help("loss")` and `help("optimizer")` list
/// the type names (with `table=True`, a dict per type: its name under `module`, `loss`
/// or `optimizer` and its `options`); `help("backward")` the backward modes (free,
/// retain, create, createfree) as dicts; `help("device")` each device this process has
/// (`cpu`, then `cuda`, `cuda:0`, ... where there are CUDA devices) mapped to its random
/// seed (`seed(n)` sets them all). `help(name)` of a module, loss or optimizer type gives
/// its options in order with their defaults, and example values for the options a
/// module type requires, as the original shows them: `help("linear")` ->
/// `{"in": 784, "out": 10, "bias": True}`; None marks a default that follows other
/// options (a pooling stride that follows the size). `help(name)` of a ktorch function
/// (`help("run")`) gives its reference, as Python's `help(kt.run)` shows it.
#[pyfunction]
#[pyo3(signature = (name=None, table=false))]
pub fn help(py: Python<'_>, name: Option<&Bound<'_, PyAny>>, table: bool) -> PyResult<PyObject> {
    let f = "help";
    let topic: Option<String> = match name {
        None => None,
        Some(n) => Some(
            n.extract()
                .map_err(|_| type_error(f, "expecting a topic name"))?,
        ),
    };
    let modules = ktorch_core::nn::module_types();
    let (losses, opts) = (
        ktorch_core::loss::LOSS_TYPES,
        ktorch_core::optim::OPTIMIZER_TYPES,
    );
    match topic.as_deref() {
        Some("backward") => {
            let l = PyList::empty(py);
            for (m, r, c, d) in ktorch_core::autograd::MODES {
                let row = PyDict::new(py);
                row.set_item("mode", m)?;
                row.set_item("retain", r)?;
                row.set_item("create", c)?;
                row.set_item("description", d)?;
                l.append(row)?;
            }
            Ok(l.into_any().unbind())
        }
        Some("module") if table => type_table(py, "module", &modules, module_help),
        Some("loss") if table => type_table(py, "loss", losses, loss_help),
        Some("optimizer" | "opt") if table => type_table(py, "optimizer", opts, opt_help),
        Some("module") => Ok(modules.into_pyobject(py)?.into_any().unbind()),
        Some("loss") => Ok(losses.to_vec().into_pyobject(py)?.into_any().unbind()),
        Some("optimizer" | "opt") => Ok(opts.to_vec().into_pyobject(py)?.into_any().unbind()),
        Some("device") => {
            let torch = py.import("torch")?;
            let d = PyDict::new(py);
            d.set_item("cpu", torch.call_method0("initial_seed")?)?;
            let n = tch::Cuda::device_count();
            if n > 0 {
                let gens = torch.getattr("cuda")?.getattr("default_generators")?;
                let seed = |i: i64| -> PyResult<Bound<'_, PyAny>> {
                    gens.get_item(i)?.call_method0("initial_seed")
                };
                d.set_item("cuda", seed(ktorch_core::tensor::default_cuda() as i64)?)?;
                for i in 0..n {
                    d.set_item(format!("cuda:{i}"), seed(i)?)?;
                }
            }
            Ok(d.into_any().unbind())
        }
        None => Ok(vec!["backward", "module", "loss", "optimizer", "device"]
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Some(s) => match type_help(s)? {
            Some(o) => Ok(named_py(py, &o)?.into_any()),
            None => match function_doc(py, s)? {
                Some(doc) => Ok(doc),
                None => Err(ktorch_error(
                    f,
                    format!(
                        "no help for `{s}`: topics are backward, module, loss, optimizer, \
                         device, or the name of a module, loss or optimizer type or of a \
                         ktorch function"
                    ),
                )),
            },
        },
    }
}

/// objects() -> int
///
/// The number of live handles (holding an object, not yet freed or garbage collected),
/// for leak checks.
#[pyfunction]
pub fn objects() -> i64 {
    crate::handles::live()
}
