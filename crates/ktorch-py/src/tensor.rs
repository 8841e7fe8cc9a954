//! Tensors, vectors and dictionaries: creation, values, info, gradients, tensor functions.

use ktorch_core::sync::Shared;
use ktorch_core::tensor::{create, kind_name, Class, TensorOptions, Tensors};
use ktorch_core::Value;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use tch::Kind;

use crate::convert::{
    is_data, owned_tensor, src, tensors_to_py, to_numpy, to_value, wrap, Src, Srcs,
};
use crate::errors::{kerr, terr, IntoPy, Res};
use crate::gate::{call, domains, Gate};
use crate::handles::{obj, Dict, Obj, PyLoss, PyModel, PyModule, PyOptimizer, Tensor, Vector};

fn strings(func: &str, xs: &[Bound<'_, PyAny>]) -> PyResult<Vec<String>> {
    xs.iter()
        .map(|x| {
            x.downcast::<PyString>()
                .map(|s| s.to_string())
                .map_err(|_| {
                    terr(
                        func,
                        format!(
                            "expecting option names as strings, given {}",
                            x.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ),
                    )
                })
        })
        .collect()
}

/// tensor(data, *options) / tensor(mode, *args, *options) / tensor(handle) -> values.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn tensor(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "tensor";
    if args.is_empty() {
        return Ok(wrap(
            py,
            tch::Tensor::f_zeros([0], (Kind::Float, tch::Device::Cpu)).py()?,
        )?
        .into_any());
    }
    let first = args.get_item(0)?;
    if first.is_instance_of::<Tensor>()
        || first.is_instance_of::<Vector>()
        || first.is_instance_of::<Dict>()
    {
        if args.len() > 1 {
            return Err(terr(
                f,
                "expecting a single Tensor, Vector or Dict to return values",
            ));
        }
        let Some(Obj::Tensors(s)) = obj(f, &first)? else {
            unreachable!()
        };
        return values(py, f, &s);
    }
    let rest: Vec<Bound<'_, PyAny>> = args.iter().skip(1).collect();
    if let Ok(mode) = first.downcast::<PyString>() {
        let mode = mode.to_str()?;
        let split = rest
            .iter()
            .position(|x| x.is_instance_of::<PyString>())
            .unwrap_or(rest.len());
        let vals: Vec<Value> = rest[..split]
            .iter()
            .map(|x| to_value(f, x))
            .collect::<PyResult<_>>()?;
        let o = TensorOptions::parse(f, &strings(f, &rest[split..])?).py()?;
        let t = call(py, f, vec![], move |_| Ok(create(f, mode, &vals, &o)?))?;
        return Ok(wrap(py, t)?.into_any());
    }
    if !is_data(&first)? {
        return Err(terr(
            f,
            format!(
                "expecting array data, a creation mode or a handle, given {}",
                first.get_type().name()?
            ),
        ));
    }
    let o = TensorOptions::parse(f, &strings(f, &rest)?).py()?;
    let t = owned_tensor(f, &first)?;
    // a torch.Tensor given as data is copied, so the new handle owns its values
    let t = if crate::convert::is_torch(&first)? {
        t.f_detach_copy().py()?
    } else {
        t
    };
    let t = o.apply(f, t).py()?;
    Ok(wrap(py, t)?.into_any())
}

/// The values of a tensor, vector or dictionary handle: copies taken under
/// its lock, handed to Python as arrays.
fn values(py: Python<'_>, f: &str, s: &Shared<Tensors>) -> PyResult<PyObject> {
    let s = s.clone();
    let ds = s.domains();
    let copy = call(py, f, ds, move |g| {
        let t = g.lock(&s)?;
        let items = t
            .items()
            .iter()
            .map(tch::Tensor::f_detach_copy)
            .collect::<Result<Vec<_>, _>>()?;
        let names = t.names().to_vec();
        Ok(match t.class() {
            Class::Tensor => Tensors::tensor(items.into_iter().next().unwrap_or_default()),
            Class::Vector => Tensors::vector(items),
            Class::Dict => Tensors::dict(f, names.into_iter().zip(items).collect())?,
        })
    })?;
    tensors_to_py(py, &copy)
}

/// vector(x, y, ...) -> Vector; vector(v) -> list of arrays.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn vector(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "vector";
    if args.len() == 1 {
        let a = args.get_item(0)?;
        if a.is_instance_of::<Vector>() {
            let Some(Obj::Tensors(s)) = obj(f, &a)? else {
                unreachable!()
            };
            return values(py, f, &s);
        }
        if let Ok(l) = a.downcast::<PyList>() {
            if l.iter().all(|x| x.is_instance_of::<Tensor>()) && !l.is_empty() {
                let srcs = l.iter().map(|x| src(f, &x)).collect::<PyResult<Vec<_>>>()?;
                return Ok(Py::new(
                    py,
                    Vector::new(gather(py, f, srcs, |ts| Ok(Tensors::vector(ts)))?),
                )?
                .into_any());
            }
        }
    }
    let srcs = args
        .iter()
        .map(|x| src(f, &x))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Py::new(
        py,
        Vector::new(gather(py, f, srcs, |ts| Ok(Tensors::vector(ts)))?),
    )?
    .into_any())
}

/// A new vector or dictionary of the tensors of `srcs`: handles' tensors are
/// shared (read under their locks), and the new object is locked with them.
fn gather(
    py: Python<'_>,
    f: &str,
    srcs: Vec<Src>,
    make: impl FnOnce(Vec<tch::Tensor>) -> ktorch_core::Result<Tensors> + Send,
) -> PyResult<Shared<Tensors>> {
    let srcs = Srcs(srcs);
    let ds = srcs.domains();
    let own = ds.clone();
    let t = call(py, f, ds, move |g| Ok(make(srcs.tensors(g)?)?))?;
    Ok(Shared::with_domains(t, domains([own])))
}

/// dict({"a": x, ...}) -> Dict; dict(d) -> dict of arrays.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn dict(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "dict";
    if args.len() != 1 {
        return Err(terr(
            f,
            format!(
                "expecting one argument, a dict or a Dict, given {}",
                args.len()
            ),
        ));
    }
    let a = args.get_item(0)?;
    if a.is_instance_of::<Dict>() {
        let Some(Obj::Tensors(s)) = obj(f, &a)? else {
            unreachable!()
        };
        return values(py, f, &s);
    }
    let d = a.downcast::<PyDict>().map_err(|_| {
        terr(
            f,
            format!(
                "expecting a dict of names to data, given {}",
                a.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        )
    })?;
    let mut keys = Vec::with_capacity(d.len());
    let mut srcs = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .extract()
            .map_err(|_| terr(f, "dictionary keys must be strings"))?;
        keys.push(k);
        srcs.push(src(f, &v)?);
    }
    let t = gather(py, f, srcs, move |ts| {
        Tensors::dict(f, keys.into_iter().zip(ts).collect())
    })?;
    Ok(Py::new(py, Dict::new(t))?.into_any())
}

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

/// free(h, ...): releases each handle's object; later use raises KtorchError.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn free(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let f = "free";
    if args.is_empty() {
        return Err(terr(f, "expecting one or more handles"));
    }
    for a in args.iter() {
        each_handle!(a, h => { h.get().get(f)?; }, return Err(terr(f, format!("expecting a ktorch handle, given {}", a.get_type().name()?))));
    }
    for a in args.iter() {
        each_handle!(a, h => { h.get().free(); }, {});
    }
    Ok(())
}

/// addref(h): a second handle to the same object.
#[pyfunction]
pub fn addref(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "addref";
    each_handle!(x, h => {
        let n = Py::new(py, h.get().another(py, f)?)?;
        Ok(n.into_any())
    }, Err(terr(f, format!("expecting a ktorch handle, given {}", x.get_type().name()?))))
}

/// use(h, new): moves new's object into h (h's old object is released, new is freed).
#[pyfunction(name = "use")]
pub fn use_(h: &Bound<'_, PyAny>, new: &Bound<'_, PyAny>) -> PyResult<()> {
    let f = "use";
    macro_rules! mv {
        ($t:ty) => {
            if let Ok(a) = h.downcast::<$t>() {
                let b = new.downcast::<$t>().map_err(|_| {
                    terr(
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
    Err(terr(
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

/// objclass(h): tensor, vector, dictionary, module, loss, optimizer or model.
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
            return Err(terr(
                f,
                format!("expecting a ktorch handle, given {}", x.get_type().name()?),
            ))
        }
    })
}

/// size(h): a tensor's shape; for a vector or dict one shape per member; for a module its parameter shapes.
#[pyfunction]
pub fn size(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "size";
    let o = match obj(f, x)? {
        Some(o @ (Obj::Tensors(_) | Obj::Module(_))) => o,
        _ => {
            return Err(terr(
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

fn tensor_info<'py>(py: Python<'py>, t: &tch::Tensor) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("device", ktorch_core::tensor::device_name(t.device()))?;
    d.set_item("dtype", kind_name(t.kind()))?;
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
    d.set_item("stride", t.stride())?;
    d.set_item("numel", t.numel())?;
    d.set_item("itemsize", t.kind().elt_size_in_bytes())?;
    d.set_item("contiguous", t.is_contiguous())?;
    d.set_item("offset", pt.call_method0("storage_offset")?)?;
    // references to the tensor besides the temporary made for this call
    let uses: i64 = pt.call_method0("_use_count")?.extract()?;
    d.set_item("ref", uses - 1)?;
    Ok(d)
}

/// info(h): a dict describing the object.
#[pyfunction]
pub fn info(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "info";
    let Some(o) = obj(f, x)? else {
        return Err(terr(
            f,
            format!("expecting a ktorch handle, given {}", x.get_type().name()?),
        ));
    };
    with_obj(py, f, o, |g, py, o| {
        let d = PyDict::new(py);
        match o {
            Obj::Tensors(s) => {
                let t = g.lock(s)?;
                return Ok(match t.class() {
                    Class::Tensor => tensor_info(py, t.get())?.into_any().unbind(),
                    _ => {
                        let l = PyList::empty(py);
                        for x in t.items() {
                            l.append(tensor_info(py, x)?)?;
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
            }
            Obj::Loss(l) => d.set_item("type", g.lock(l)?.kind())?,
            Obj::Opt(o) => {
                let o = g.lock(o)?;
                d.set_item("type", o.kind())?;
                d.set_item("groups", o.groups())?;
                d.set_item("lr", o.lr())?;
            }
            Obj::Model(m) => {
                let m = g.lock(m)?;
                d.set_item("module", g.lock(m.module())?.kind())?;
                d.set_item("loss", g.lock(m.loss_fn())?.kind())?;
                d.set_item("optimizer", g.lock(m.optimizer())?.kind())?;
                d.set_item("train", m.train.rows())?;
                d.set_item("test", m.test.rows())?;
            }
        }
        Ok(d.into_any().unbind())
    })
}

/// grad(t): the gradient as an array (a list/dict for vectors/dicts), None where undefined.
#[pyfunction]
pub fn grad(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "grad";
    let Some(Obj::Tensors(s)) = obj(f, x)? else {
        return Err(terr(
            f,
            format!(
                "expecting a Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        ));
    };
    let ds = s.domains();
    // the gradients are copied under the owner's lock: a run in another thread
    // frees and recreates them every batch
    let (class, names, grads) = call(py, f, ds, move |g| {
        let t = g.lock(&s)?;
        let grads = t
            .full()
            .iter()
            .map(|x| {
                let gr = x.f_grad()?;
                Ok(if gr.defined() {
                    Some(gr.f_detach_copy()?)
                } else {
                    None
                })
            })
            .collect::<Result<Vec<_>, tch::TchError>>()?;
        Ok((t.class(), t.names().to_vec(), grads))
    })?;
    let one = |gr: &Option<tch::Tensor>| -> PyResult<PyObject> {
        match gr {
            Some(t) => to_numpy(py, t),
            None => Ok(py.None()),
        }
    };
    match class {
        Class::Tensor => one(&grads[0]),
        Class::Vector => Ok(
            PyList::new(py, grads.iter().map(one).collect::<PyResult<Vec<_>>>()?)?
                .into_any()
                .unbind(),
        ),
        Class::Dict => {
            let d = PyDict::new(py);
            for (k, t) in names.iter().zip(&grads) {
                d.set_item(k, one(t)?)?;
            }
            Ok(d.into_any().unbind())
        }
    }
}

/// seed(n): seeds libtorch's random generators.
#[pyfunction]
pub fn seed(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let n: i64 = n
        .extract()
        .map_err(|_| terr("seed", "expecting an integer seed"))?;
    tch::manual_seed(n);
    Ok(())
}

/// help(name): documentation tables, e.g. help("backward") for the modes.
#[pyfunction]
#[pyo3(signature = (name=None))]
pub fn help(py: Python<'_>, name: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
    let f = "help";
    let topic: Option<String> = match name {
        None => None,
        Some(n) => Some(n.extract().map_err(|_| terr(f, "expecting a topic name"))?),
    };
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
        Some("module") => Ok(ktorch_core::nn::module_types()
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Some("loss") => Ok(ktorch_core::loss::LOSS_TYPES
            .to_vec()
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Some("optimizer") | Some("opt") => Ok(ktorch_core::optim::OPTIMIZER_TYPES
            .to_vec()
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        None => Ok(vec!["backward", "module", "loss", "optimizer"]
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Some(s) => Err(kerr(
            f,
            format!("no help for `{s}`, topics: backward, module, loss, optimizer"),
        )),
    }
}

fn binary(
    py: Python<'_>,
    func: &str,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    op: fn(&tch::Tensor, &tch::Tensor) -> Result<tch::Tensor, tch::TchError>,
) -> PyResult<Py<Tensor>> {
    let x = src(func, a)?;
    let y = src(func, b)?;
    let ds = domains([x.domains(), y.domains()]);
    let r = call(py, func, ds, move |g| Ok(op(&x.tensor(g)?, &y.tensor(g)?)?))?;
    wrap(py, r)
}

/// mul(x, y) -> Tensor.
#[pyfunction]
pub fn mul(py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Py<Tensor>> {
    binary(py, "mul", x, y, tch::Tensor::f_mul)
}

/// add(x, y) -> Tensor.
#[pyfunction]
pub fn add(py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Py<Tensor>> {
    binary(py, "add", x, y, tch::Tensor::f_add)
}

fn float_of(t: tch::Tensor) -> Result<tch::Tensor, tch::TchError> {
    if t.is_floating_point() {
        Ok(t)
    } else {
        t.f_to_kind(Kind::Float)
    }
}

fn reduce(
    py: Python<'_>,
    func: &str,
    x: &Bound<'_, PyAny>,
    op: impl FnOnce(&tch::Tensor) -> Result<tch::Tensor, tch::TchError> + Send,
) -> PyResult<Py<Tensor>> {
    let x = src(func, x)?;
    let ds = x.domains();
    let r = call(py, func, ds, move |g| Ok(op(&float_of(x.tensor(g)?)?)?))?;
    wrap(py, r)
}

/// mean(x[, dim]) -> Tensor.
#[pyfunction]
#[pyo3(signature = (x, dim=None))]
pub fn mean(py: Python<'_>, x: &Bound<'_, PyAny>, dim: Option<i64>) -> PyResult<Py<Tensor>> {
    reduce(py, "mean", x, move |t| match dim {
        None => t.f_mean(t.kind()),
        Some(d) => t.f_mean_dim(Some([d].as_slice()), false, t.kind()),
    })
}

/// std(x[, dim]) -> Tensor (unbiased).
#[pyfunction]
#[pyo3(signature = (x, dim=None))]
pub fn std(py: Python<'_>, x: &Bound<'_, PyAny>, dim: Option<i64>) -> PyResult<Py<Tensor>> {
    reduce(py, "std", x, move |t| match dim {
        None => t.f_std(true),
        Some(d) => t.f_std_dim(Some([d].as_slice()), true, false),
    })
}

/// objects(): the number of live handles (for leak checks).
#[pyfunction]
pub fn objects() -> i64 {
    crate::handles::live()
}
