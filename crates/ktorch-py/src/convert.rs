//! Conversions: Python data (numpy, lists, scalars, torch.Tensor, handles) to and from tensors and values.

use std::sync::Arc;

use ktorch_core::sync::{shared, Domain, Shared};
use ktorch_core::tensor::{kinds, Class, Key, Tensors};
use ktorch_core::{Module, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3_tch::PyTensor;
use tch::Tensor as TchTensor;

use crate::errors::{type_error, IntoPy, KtorchError, Res};
use crate::gate::{call, Gate};
use crate::handles::{is_handle, Tensor, Vector};

static NUMPY: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
static TORCH: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

fn numpy(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(NUMPY
        .get_or_try_init(py, || py.import("numpy").map(|m| m.into_any().unbind()))?
        .bind(py))
}

fn torch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(TORCH
        .get_or_try_init(py, || py.import("torch").map(|m| m.into_any().unbind()))?
        .bind(py))
}

/// True for a torch.Tensor.
pub fn is_torch(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    let t = torch(x.py())?.getattr("Tensor")?;
    x.is_instance(&t)
}

/// True for a numpy array or numpy scalar.
pub fn is_numpy(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    let np = numpy(x.py())?;
    Ok(x.is_instance(&np.getattr("ndarray")?)? || x.is_instance(&np.getattr("generic")?)?)
}

/// True for data a tensor can be made from (not a handle, string or dict):
/// lists, numbers, numpy arrays, torch.Tensor, Tensor handles, and any object
/// with `__array__` (pandas DataFrame and Series...) or `__dlpack__`.
pub fn is_data(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(x.is_instance_of::<PyList>()
        || x.is_instance_of::<PyFloat>()
        || x.is_instance_of::<PyInt>()
        || is_numpy(x)?
        || is_torch(x)?
        || x.is_instance_of::<Tensor>()
        || (!is_handle(x) && (is_dlpack(x)? || x.hasattr("__array__")?)))
}

/// True for an object with `__dlpack__` (not numpy, which is copied as an array).
fn is_dlpack(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(!is_numpy(x)? && !is_torch(x)? && x.hasattr("__dlpack__")?)
}

/// The tensors of a `torch.utils.data.TensorDataset`, None for anything else.
pub fn dataset_tensors<'py>(x: &Bound<'py, PyAny>) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
    let py = x.py();
    let ds = py.import("torch.utils.data")?.getattr("TensorDataset")?;
    if !x.is_instance(&ds)? {
        return Ok(None);
    }
    Ok(Some(
        x.getattr("tensors")?.try_iter()?.collect::<PyResult<_>>()?,
    ))
}

/// A libtorch tensor from a torch.Tensor (shared), or numpy / list / scalar
/// data (copied); handles are refused (see [`Src`]).
pub fn to_tch(func: &str, x: &Bound<'_, PyAny>) -> PyResult<TchTensor> {
    if is_handle(x) {
        return Err(type_error(
            func,
            format!(
                "expecting array data or a Tensor, given a {}",
                x.get_type().name()?
            ),
        ));
    }
    if is_torch(x)? {
        return torch_data(func, x);
    }
    if is_dlpack(x)? {
        let t = torch(x.py())?
            .call_method1("from_dlpack", (x,))
            .map_err(|e| type_error(func, format!("cannot make a tensor from __dlpack__: {e}")))?;
        return torch_data(func, &t);
    }
    if x.is_none() || x.is_instance_of::<PyString>() || x.is_instance_of::<PyDict>() {
        return Err(type_error(
            func,
            format!("expecting array data, given {}", x.get_type().name()?),
        ));
    }
    let py = x.py();
    let np = numpy(py)?;
    let a = np.call_method1("asarray", (x,)).map_err(|e| {
        type_error(
            func,
            format!(
                "cannot make a tensor from {}: {e}",
                x.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        )
    })?;
    let kind: String = a.getattr("dtype")?.getattr("kind")?.extract()?;
    // torch takes neither negative strides nor non-native byte order: copy to a plain array
    let a = if a.getattr("dtype")?.getattr("isnative")?.extract::<bool>()? {
        a
    } else {
        a.call_method1(
            "astype",
            (a.getattr("dtype")?.call_method1("newbyteorder", ("=",))?,),
        )?
    };
    let a = if a.getattr("ndim")?.extract::<i64>()? > 0 {
        np.call_method1("ascontiguousarray", (a,))?
    } else {
        a
    };
    if !matches!(kind.as_str(), "b" | "i" | "u" | "f" | "c") {
        let dt = a.getattr("dtype")?.str()?.to_string();
        return Err(type_error(
            func,
            format!("cannot make a tensor from array of dtype {dt}"),
        ));
    }
    // the platform's duplicate C types (numpy.ulonglong beside numpy.uint64 ...) are
    // unknown to torch: view the array as the canonical dtype of the same layout
    let canonical = np.call_method1("dtype", (a.getattr("dtype")?.getattr("str")?,))?;
    let a = a.call_method1("view", (canonical,))?;
    let tt = torch(py)?
        .call_method1("tensor", (a,))
        .map_err(|e| type_error(func, format!("cannot make a tensor: {e}")))?;
    let t: PyTensor = tt.extract()?;
    // numpy's uint16/32/64 arrive as torch's unsigned dtypes, which tch cannot name
    kinds::admit(t.0, "a numpy array").map_err(|m| type_error(func, m))
}

/// A torch.Tensor as ktorch data, shared with the caller: strided, on a cpu, cuda or
/// mps device, of a dtype ktorch computes with (uint16/32/64 are widened losslessly,
/// a copy). Anything else is a TypeError naming `func` and what was given.
fn torch_data(func: &str, x: &Bound<'_, PyAny>) -> PyResult<TchTensor> {
    let py = x.py();
    let layout = x.getattr("layout")?;
    if !layout.is(&torch(py)?.getattr("strided")?) {
        let name = layout.str()?.to_string();
        let short = match name.trim_start_matches("torch.").trim_start_matches('_') {
            "jagged" => "nested",
            s => s,
        };
        return Err(type_error(
            func,
            format!("{short} tensors are not supported, given a torch.Tensor with layout {name}"),
        ));
    }
    if x.getattr("is_nested")?.is_truthy()? {
        return Err(type_error(
            func,
            "nested tensors are not supported, given a nested torch.Tensor with layout torch.strided",
        ));
    }
    let dev = x.getattr("device")?;
    let ty: String = dev.getattr("type")?.extract()?;
    match ty.as_str() {
        "cpu" | "cuda" | "mps" => {}
        "meta" => {
            return Err(type_error(
                func,
                "meta tensors hold no data, given a torch.Tensor on device meta",
            ))
        }
        _ => {
            return Err(type_error(
                func,
                format!(
                    "{ty} tensors are not supported, given a torch.Tensor on device {}",
                    dev.str()?
                ),
            ))
        }
    }
    let t: PyTensor = x.extract()?;
    kinds::admit(t.0, "a torch.Tensor").map_err(|m| type_error(func, m))
}

/// A torch.Tensor sharing storage with `t`.
pub fn to_torch<'py>(py: Python<'py>, t: &TchTensor) -> PyResult<Bound<'py, PyAny>> {
    PyTensor(t.shallow_clone()).into_pyobject(py)
}

/// A numpy array (a numpy scalar for 0-dim tensors) holding a copy of `t`'s values.
pub fn to_numpy(py: Python<'_>, t: &TchTensor) -> PyResult<PyObject> {
    if !t.defined() {
        return Ok(py.None());
    }
    if t.dim() == 0 {
        if let Some(v) = scalar(py, t)? {
            return Ok(v);
        }
    }
    // never reached through the api (every tensor entering ktorch passes kinds::admit);
    // kept so that no tensor can make tch panic here
    let kind = match t.f_kind() {
        Ok(k) if kinds::is_strided(t) => k,
        _ => {
            return Err(KtorchError::new_err(format!(
                "cannot return the values of a {} tensor of dtype torch.{}",
                if kinds::is_strided(t) {
                    "strided"
                } else {
                    "sparse, mkldnn or nested"
                },
                kinds::dtype_name(t)
            )))
        }
    };
    let mut c = t
        .f_detach()
        .map_err(ktorch_core::Error::from)
        .py()?
        .f_to_device(tch::Device::Cpu)
        .map_err(ktorch_core::Error::from)
        .py()?;
    // numpy has no bfloat16, complex32, float8 or quantized dtypes: widen, dequantize
    use tch::Kind::*;
    let wide = match kind {
        BFloat16 | Float8e5m2 | Float8e4m3fn | Float8e5m2fnuz | Float8e4m3fnuz => {
            Some(c.f_to_kind(Float))
        }
        ComplexHalf => Some(c.f_to_kind(ComplexFloat)),
        QInt8 | QUInt8 | QInt32 => Some(c.f_dequantize()),
        _ => None,
    };
    if let Some(w) = wide {
        c = w.map_err(ktorch_core::Error::from).py()?;
    }
    // numpy() refuses tensors with the conjugate or negative bit set
    c = c
        .f_resolve_conj()
        .and_then(|c| c.f_resolve_neg())
        .map_err(ktorch_core::Error::from)
        .py()?;
    let c = if c.data_ptr() == t.data_ptr() {
        c.f_detach_copy().map_err(ktorch_core::Error::from).py()?
    } else {
        c
    };
    let obj = to_torch(py, &c)?;
    let a = obj.call_method0("numpy")?;
    if t.dim() == 0 {
        return Ok(a.get_item(())?.unbind());
    }
    Ok(a.unbind())
}

/// A 0-dim tensor as a numpy scalar of its dtype, read without an array in between.
fn scalar(py: Python<'_>, t: &TchTensor) -> PyResult<Option<PyObject>> {
    use tch::Kind::*;
    let Ok(kind) = t.f_kind() else {
        return Ok(None);
    };
    let name = match kind {
        Float | BFloat16 => "float32",
        Double => "float64",
        Half => "float16",
        Int64 => "int64",
        Int => "int32",
        Int16 => "int16",
        Int8 => "int8",
        Uint8 => "uint8",
        Bool => "bool_",
        _ => return Ok(None),
    };
    let f = numpy(py)?.getattr(name)?;
    let v = if t.is_floating_point() {
        f.call1((t.f_double_value(&[]).py()?,))?
    } else {
        f.call1((t.f_int64_value(&[]).py()?,))?
    };
    Ok(Some(v.unbind()))
}

/// The values of a tensor, vector or dictionary: an array, a list of arrays, a dict of arrays.
pub fn tensors_to_py(py: Python<'_>, t: &Tensors) -> PyResult<PyObject> {
    match t.class() {
        Class::Tensor => to_numpy(py, t.get()),
        Class::Vector => {
            let l = PyList::empty(py);
            for x in t.items() {
                l.append(to_numpy(py, x)?)?;
            }
            Ok(l.into_any().unbind())
        }
        Class::Dict => {
            let d = PyDict::new(py);
            for (k, x) in t.names().iter().zip(t.items()) {
                d.set_item(k, to_numpy(py, x)?)?;
            }
            Ok(d.into_any().unbind())
        }
    }
}

/// A new handle of the object's own class (Tensor, Vector or Dict) around `t`, which
/// no other object holds.
pub fn wrap_tensors(py: Python<'_>, t: Tensors) -> PyResult<PyObject> {
    let class = t.class();
    let sh = shared(t);
    Ok(match class {
        ktorch_core::tensor::Class::Tensor => Py::new(py, Tensor::new(sh))?.into_any(),
        ktorch_core::tensor::Class::Vector => Py::new(py, Vector::new(sh))?.into_any(),
        ktorch_core::tensor::Class::Dict => Py::new(py, crate::handles::Dict::new(sh))?.into_any(),
    })
}

/// The names and values of a Python dict of parameter names to data (arrays, lists,
/// scalars, Tensors), for freeze and copyparms.
pub fn named_srcs(
    func: &str,
    d: &Bound<'_, pyo3::types::PyDict>,
) -> PyResult<(Vec<String>, Vec<Src>)> {
    let mut names = Vec::with_capacity(d.len());
    let mut vs = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        names.push(
            k.downcast::<pyo3::types::PyString>()
                .map_err(|_| type_error(func, "expecting parameter names as dict keys"))?
                .to_string(),
        );
        vs.push(src(func, &v)?);
    }
    Ok((names, vs))
}

/// A new Tensor handle around `t`, a tensor no other object holds.
pub fn wrap(py: Python<'_>, t: TchTensor) -> PyResult<Py<Tensor>> {
    Py::new(py, Tensor::new(shared(Tensors::tensor(t))))
}

/// A new Tensor handle on a tensor that objects in domains `ds` hold too
/// (a parameter, a model's data): using it takes their locks.
pub fn wrap_shared(py: Python<'_>, t: TchTensor, ds: Vec<Domain>) -> PyResult<Py<Tensor>> {
    Py::new(
        py,
        Tensor::new(Shared::with_domains(Tensors::tensor(t), ds)),
    )
}

/// A new Vector handle on tensors that objects in domains `ds` hold too.
pub fn wrap_vector_shared(
    py: Python<'_>,
    ts: Vec<TchTensor>,
    ds: Vec<Domain>,
) -> PyResult<Py<Vector>> {
    Py::new(
        py,
        Vector::new(Shared::with_domains(Tensors::vector(ts), ds)),
    )
}

/// Tensor data for a call: values made from Python data, or a handle whose
/// tensors are read under its lock, inside the call.
pub enum Src {
    /// A tensor shared with the caller: a torch.Tensor, or `__dlpack__` data.
    Data(TchTensor),
    /// A tensor copied from numpy, a list, a scalar or `__array__` data.
    Copied(TchTensor),
    /// A Tensor, Vector or Dict handle, whole or a selection of its members.
    Handle(Shared<Tensors>, Option<Vec<Key>>),
}

impl Src {
    /// The domains to hold while reading the tensors.
    pub fn domains(&self) -> Vec<Domain> {
        match self {
            Src::Data(_) | Src::Copied(_) => Vec::new(),
            Src::Handle(s, _) => s.domains(),
        }
    }

    /// The tensors (inside a call; the handle's domains are held).
    pub fn tensors(&self, gate: &Gate) -> Res<Vec<TchTensor>> {
        match self {
            Src::Data(t) | Src::Copied(t) => Ok(vec![t.shallow_clone()]),
            Src::Handle(s, None) => Ok(gate.lock(s)?.shallow()),
            Src::Handle(s, Some(keys)) => Ok(gate.lock(s)?.select_keys(keys)?),
        }
    }

    /// The one tensor of a Tensor handle or data (inside a call).
    pub fn tensor(&self, gate: &Gate) -> Res<TchTensor> {
        match self {
            Src::Data(t) | Src::Copied(t) => Ok(t.shallow_clone()),
            Src::Handle(s, _) => Ok(gate.lock(s)?.get().shallow_clone()),
        }
    }
}

/// Several sources read by one call.
#[derive(Default)]
pub struct Srcs(pub Vec<Src>);

impl Srcs {
    /// The domains of every handle among the sources.
    pub fn domains(&self) -> Vec<Domain> {
        self.0.iter().flat_map(Src::domains).collect()
    }

    /// Every tensor, in order (inside a call).
    pub fn tensors(&self, gate: &Gate) -> Res<Vec<TchTensor>> {
        Ok(self.owned_tensors(gate)?.0)
    }

    /// Every tensor, in order, with whether ktorch owns it (a copy made of
    /// numpy or list data) or shares it with the caller (inside a call).
    pub fn owned_tensors(&self, gate: &Gate) -> Res<(Vec<TchTensor>, Vec<bool>)> {
        let (mut out, mut owned) = (Vec::new(), Vec::new());
        for s in &self.0 {
            let ts = s.tensors(gate)?;
            owned.extend(std::iter::repeat_n(matches!(s, Src::Copied(_)), ts.len()));
            out.extend(ts);
        }
        Ok((out, owned))
    }

    /// True when every source is a torch.Tensor (or `__dlpack__` data): results
    /// computed from them are handed back as torch.Tensor.
    pub fn torch(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|s| matches!(s, Src::Data(_)))
    }
}

/// One tensor argument: a Tensor handle, or data (numpy, list, scalar, torch.Tensor).
pub fn src(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Src> {
    if let Ok(h) = x.downcast::<Tensor>() {
        return Ok(Src::Handle(h.get().get(func)?, None));
    }
    let shared = is_torch(x)? || is_dlpack(x)?;
    let t = to_tch(func, x)?;
    Ok(if shared { Src::Data(t) } else { Src::Copied(t) })
}

/// One tensor argument for use after the call that reads it: data as
/// [`to_tch`] gives it, a handle's tensor as a copy taken under its lock.
pub fn owned_tensor(func: &str, x: &Bound<'_, PyAny>) -> PyResult<TchTensor> {
    match src(func, x)? {
        Src::Data(t) | Src::Copied(t) => Ok(t),
        s => {
            let ds = s.domains();
            call(x.py(), func, ds, move |g| {
                Ok(s.tensor(g)?.f_detach_copy()?)
            })
        }
    }
}

/// An argument value: None, bool, int, float, str, list, tuple, dict with
/// string keys, callables, and data (as tensors).
pub fn to_value(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Value> {
    if x.is_none() {
        return Ok(Value::Null);
    }
    if x.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(x.extract()?));
    }
    if x.is_instance_of::<PyInt>() {
        return Ok(Value::Int(x.extract().map_err(|_| {
            crate::errors::ktorch_error(func, "integer out of range for a 64-bit integer")
        })?));
    }
    if x.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(x.extract()?));
    }
    if let Ok(s) = x.downcast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    if let Ok(l) = x.downcast::<PyList>() {
        return Ok(Value::List(
            l.iter()
                .map(|v| to_value(func, &v))
                .collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(t) = x.downcast::<PyTuple>() {
        return Ok(Value::Tuple(
            t.iter()
                .map(|v| to_value(func, &v))
                .collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(d) = x.downcast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| type_error(func, "dictionary keys must be strings"))?;
            out.push((k, to_value(func, &v)?));
        }
        return Ok(Value::Dict(out));
    }
    if is_numpy(x)? {
        let np = numpy(x.py())?;
        if x.is_instance(&np.getattr("generic")?)? {
            return to_value(func, &x.call_method0("item")?);
        }
        return Ok(Value::Tensor(to_tch(func, x)?));
    }
    if x.is_instance_of::<Tensor>() {
        // a value is used after the call that reads it: take a copy under the handle's lock
        return Ok(Value::Tensor(owned_tensor(func, x)?));
    }
    if is_torch(x)? {
        return Ok(Value::Tensor(to_tch(func, x)?));
    }
    if x.is_callable() && !is_handle(x) {
        return Ok(ktorch_core::nn::callable(callback(x)));
    }
    Err(PyTypeError::new_err(format!(
        "{func}: unsupported argument of type {}",
        x.get_type().name()?
    )))
}

/// Keyword arguments as (name, value) pairs.
pub fn kwargs(func: &str, kw: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, Value)>> {
    let mut out = Vec::new();
    if let Some(d) = kw {
        for (k, v) in d.iter() {
            out.push((k.extract()?, to_value(func, &v)?));
        }
    }
    Ok(out)
}

/// A callback module's forward function: the Python callable `f(module,
/// *inputs)`. It holds the callable weakly where the callable allows it:
/// the handles of the objects that run it keep it alive, visibly to Python's
/// garbage collector.
pub struct PyCallback {
    /// A weak reference to the callable, or the callable itself if it takes none.
    f: Py<PyAny>,
    weak: bool,
}

impl PyCallback {
    /// The callable, while it lives.
    pub fn callable(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        if !self.weak {
            return Some(self.f.clone_ref(py));
        }
        let o = self.f.bind(py).call0().ok()?;
        if o.is_none() {
            None
        } else {
            Some(o.unbind())
        }
    }
}

impl ktorch_core::nn::Callback for PyCallback {
    fn call(&self, m: &Module, xs: &[TchTensor]) -> ktorch_core::Result<Vec<TchTensor>> {
        crate::gate::park_if_finalizing();
        Python::with_gil(|py| {
            let Some(f) = self.callable(py) else {
                return Err(ktorch_core::Error::Callback(
                    "callback: the callback function no longer exists (every handle on its module was freed)".into(),
                ));
            };
            let r = (|| -> PyResult<Vec<TchTensor>> {
                // the module handle shares the parameters of the module running
                // now, whose domains this thread holds
                let held = ktorch_core::sync::held_domains();
                let mh = Py::new(
                    py,
                    crate::handles::PyModule::new(Shared::with_domains(m.clone(), held.clone())),
                )?;
                let mut args: Vec<PyObject> = vec![mh.into_any()];
                for x in xs {
                    // the inputs may be the model's data: handles on them take its lock
                    args.push(wrap_shared(py, x.shallow_clone(), held.clone())?.into_any());
                }
                let out = f.call1(py, PyTuple::new(py, args)?)?;
                let out = out.bind(py);
                let srcs = if let Ok(t) = out.downcast::<PyTuple>() {
                    Srcs(
                        t.iter()
                            .map(|v| src("callback", &v))
                            .collect::<PyResult<_>>()?,
                    )
                } else if let Ok(v) = out.downcast::<Vector>() {
                    Srcs(vec![Src::Handle(v.get().get("callback")?, None)])
                } else {
                    Srcs(vec![src("callback", out)?])
                };
                let ds = srcs.domains();
                call(py, "callback", ds, move |g| srcs.tensors(g))
            })();
            r.map_err(|e| crate::errors::callback_error(py, e))
        })
    }
}

/// A core callback calling the Python function `f`.
fn callback(f: &Bound<'_, PyAny>) -> ktorch_core::nn::CallbackFn {
    let py = f.py();
    let weak = py
        .import("weakref")
        .and_then(|w| w.call_method1("ref", (f,)));
    Arc::new(match weak {
        Ok(w) => PyCallback {
            f: w.unbind(),
            weak: true,
        },
        Err(_) => PyCallback {
            f: f.clone().unbind(),
            weak: false,
        },
    })
}

/// The Python callables of the callback modules in a value (a module spec):
/// a handle on what the spec builds keeps them alive.
pub fn callables(py: Python<'_>, v: &Value, out: &mut Vec<Py<PyAny>>) {
    match v {
        Value::Callable(c) => {
            let Some(f) = c.downcast_ref::<ktorch_core::nn::CallbackFn>() else {
                return;
            };
            let any: &dyn std::any::Any = &**f;
            if let Some(p) = any.downcast_ref::<PyCallback>() {
                if p.weak {
                    if let Some(f) = p.callable(py) {
                        out.push(f);
                    }
                }
            }
        }
        Value::List(l) | Value::Tuple(l) => {
            for x in l {
                callables(py, x, out);
            }
        }
        Value::Dict(d) => {
            for (_, x) in d {
                callables(py, x, out);
            }
        }
        _ => {}
    }
}

/// Positional settings and keyword options.
pub type Settings = (Vec<Value>, Vec<(String, Value)>);

/// Settings of a constructor: positional values (trailing dicts become options) and keywords.
pub fn settings(
    func: &str,
    args: &[Bound<'_, PyAny>],
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Settings> {
    let vals: Vec<Value> = args
        .iter()
        .map(|x| to_value(func, x))
        .collect::<PyResult<_>>()?;
    let (pos, mut opts) = ktorch_core::args::split_options(vals);
    opts.extend(kwargs(func, kw)?);
    Ok((pos, opts))
}
