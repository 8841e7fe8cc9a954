//! state(h): a module, loss, optimizer or model as Python dicts, lists and
//! numpy arrays, as the original describes them; and the forms that build an
//! equal object from one: module(state), loss(state), opt(state, module),
//! model(state).

use ktorch_core::state::{
    DataState, LossState, ModelState, ModuleState, OptGroupState, OptParmState, OptState,
    PausedState, Setting, StageState, StateTensor,
};
use ktorch_core::{Module, Optimizer};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{to_numpy, to_tch, to_value};
use crate::errors::{ktorch_error, type_error};
use crate::gate::{call, Gate};
use crate::handles::{obj, Obj};
use crate::state::value_py;

// ---- to Python ----

fn tensor_py(py: Python<'_>, t: &StateTensor) -> PyResult<PyObject> {
    to_numpy(py, &t.0)
}

fn setting_py(py: Python<'_>, s: &Setting) -> PyResult<PyObject> {
    value_py(py, &s.value())
}

fn settings_py<'py>(py: Python<'py>, kv: &[(String, Setting)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in kv {
        d.set_item(k, setting_py(py, v)?)?;
    }
    Ok(d)
}

fn tensors_py<'py>(py: Python<'py>, kv: &[(String, StateTensor)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, t) in kv {
        d.set_item(k, tensor_py(py, t)?)?;
    }
    Ok(d)
}

/// A module's state: a dict for a module without children, else a list of row
/// dicts (the original's table), depth first.
fn module_py(py: Python<'_>, s: &ModuleState) -> PyResult<PyObject> {
    let rows = s.rows();
    let mut out = Vec::with_capacity(rows.len());
    for (depth, path, m) in &rows {
        let d = PyDict::new(py);
        d.set_item("depth", depth)?;
        d.set_item("module", &m.kind)?;
        let name = if *depth == 0 {
            m.name.clone()
        } else {
            path.rsplit('.').next().map(str::to_string)
        };
        d.set_item("name", name)?;
        d.set_item("options", settings_py(py, &m.options)?)?;
        if !m.args.is_empty() {
            let a: Vec<PyObject> = m
                .args
                .iter()
                .map(|x| setting_py(py, x))
                .collect::<PyResult<_>>()?;
            d.set_item("args", a)?;
        }
        d.set_item("parms", tensors_py(py, &m.parms)?)?;
        d.set_item("buffers", tensors_py(py, &m.buffers)?)?;
        d.set_item("training", m.training)?;
        d.set_item("frozen", &m.frozen)?;
        out.push(d.into_any().unbind());
    }
    if s.children.is_empty() && !matches!(s.kind.as_str(), "sequential") {
        return Ok(out.remove(0));
    }
    Ok(PyList::new(py, out)?.into_any().unbind())
}

fn loss_py(py: Python<'_>, s: &LossState) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("loss", &s.kind)?;
    d.set_item("options", settings_py(py, &s.options)?)?;
    Ok(d.into_any().unbind())
}

fn opt_py(py: Python<'_>, s: &OptState) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("optimizer", &s.kind)?;
    let groups: Vec<Bound<'_, PyDict>> = s
        .groups
        .iter()
        .map(|g| settings_py(py, &g.options))
        .collect::<PyResult<_>>()?;
    d.set_item("options", groups)?;
    d.set_item("defaults", settings_py(py, &s.defaults)?)?;
    let mut rows = Vec::new();
    for (g, grp) in s.groups.iter().enumerate() {
        for p in &grp.parms {
            let r = PyDict::new(py);
            r.set_item("parmgroup", g)?;
            r.set_item("name", &p.name)?;
            r.set_item("size", &p.size)?;
            r.set_item("step", p.step)?;
            r.set_item("buffers", tensors_py(py, &p.buffers)?)?;
            rows.push(r);
        }
    }
    d.set_item("parms", rows)?;
    d.set_item("history", settings_py(py, &s.history)?)?;
    Ok(d.into_any().unbind())
}

fn stage_py<'py>(py: Python<'py>, s: &StageState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("epochs", s.epochs)?;
    d.set_item("generator", s.generator)?;
    d.set_item(
        "order",
        s.order.as_ref().map(|t| tensor_py(py, t)).transpose()?,
    )?;
    let paused = match &s.paused {
        None => None,
        Some(p) => {
            let pd = PyDict::new(py);
            pd.set_item("next", p.next)?;
            let c = PyDict::new(py);
            for (k, n) in &p.counts {
                c.set_item(k, n)?;
            }
            pd.set_item("counts", c)?;
            pd.set_item("tensors", tensors_py(py, &p.tensors)?)?;
            Some(pd)
        }
    };
    d.set_item("paused", paused)?;
    Ok(d)
}

fn data_py(py: Python<'_>, d: &Option<DataState>) -> PyResult<PyObject> {
    let Some(d) = d else {
        return Ok(py.None());
    };
    let list = |ts: &[StateTensor]| -> PyResult<Vec<PyObject>> {
        ts.iter().map(|t| tensor_py(py, t)).collect()
    };
    let x = list(&d.inputs)?;
    let y = d.targets.as_deref().map(list).transpose()?;
    Ok(PyList::new(
        py,
        [
            x.into_pyobject(py)?.into_any(),
            y.into_pyobject(py)?.into_any(),
        ],
    )?
    .into_any()
    .unbind())
}

fn model_py(py: Python<'_>, s: &ModelState, data: bool) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("module", module_py(py, &s.module)?)?;
    d.set_item("loss", loss_py(py, &s.loss)?)?;
    d.set_item("optimizer", opt_py(py, &s.optimizer)?)?;
    d.set_item("train", settings_py(py, &s.train.options)?)?;
    d.set_item("test", settings_py(py, &s.test.options)?)?;
    let pos = PyDict::new(py);
    pos.set_item("train", stage_py(py, &s.train)?)?;
    pos.set_item("test", stage_py(py, &s.test)?)?;
    d.set_item("position", pos)?;
    if data {
        let dd = PyDict::new(py);
        dd.set_item("train", data_py(py, &s.train.data)?)?;
        dd.set_item("test", data_py(py, &s.test.data)?)?;
        d.set_item("data", dd)?;
    }
    Ok(d.into_any().unbind())
}

/// state(h) -> dict or list
/// state(m, data=True) -> dict
///
/// The whole state of a module, loss, optimizer or model as Python dicts, lists and
/// numpy arrays: what `module(state)`, `loss(state)`, `opt(state, module)` and
/// `model(state)` build an equal object from (`clone` without the round trip).
///
/// - Module: a dict for a module without children, a list of row dicts for a
///   container (the original's table, depth first), each with depth, module (type),
///   name, options (every option given, by name), parms and buffers (arrays),
///   training, frozen (parameters that take no gradient).
/// - Loss: loss (type), options (every setting).
/// - Optimizer: optimizer (type), options (one dict a group), defaults, parms (a row a
///   parameter: parmgroup, name in its module where known, size, step, buffers such as
///   `exp_avg`), history (lbfgs's).
/// - Model: module, loss, optimizer as above, train and test (options), position (a dict
///   a stage: epochs completed, the seeded shuffle generator, the row order in force, a
///   pass stopped between batches); with `data=True`, data (each stage's inputs and
///   targets in the order given).
#[pyfunction]
#[pyo3(signature = (h, data=false))]
pub fn state(py: Python<'_>, h: &Bound<'_, PyAny>, data: bool) -> PyResult<PyObject> {
    let f = "state";
    let o = obj(f, h)?.ok_or_else(|| {
        type_error(
            f,
            format!(
                "expecting a Module, Loss, Optimizer or Model, given {}",
                h.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ),
        )
    })?;
    if data && !matches!(o, Obj::Model(_)) {
        return Err(ktorch_error(f, "data: only a model holds data"));
    }
    let ds = o.domains();
    match o {
        Obj::Module(q) => {
            let s = call(py, f, ds, move |g| Ok(ModuleState::of(&*g.lock(&q)?)?))?;
            module_py(py, &s)
        }
        Obj::Loss(l) => {
            let s = call(py, f, ds, move |g| Ok(LossState::of(&*g.lock(&l)?)?))?;
            loss_py(py, &s)
        }
        Obj::Opt(o) => {
            let s = call(py, f, ds, move |g| Ok(OptState::of(&*g.lock(&o)?, &[])?))?;
            opt_py(py, &s)
        }
        Obj::Model(m) => {
            let s = call(py, f, ds, move |g| Ok(ModelState::of(&*g.lock(&m)?, data)?))?;
            model_py(py, &s, data)
        }
        Obj::Tensors(_) => Err(type_error(
            f,
            "a Tensor, Vector or Dict's state is its values: use tensor(h)",
        )),
    }
}

// ---- from Python ----

fn item<'py>(
    f: &str,
    d: &Bound<'py, PyDict>,
    key: &str,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| ktorch_error(f, format!("{what} has no `{key}`")))
}

fn dict<'py>(f: &str, x: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyDict>> {
    x.downcast::<PyDict>()
        .cloned()
        .map_err(|_| ktorch_error(f, format!("{what} expects a dict")))
}

fn list<'py>(f: &str, x: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = x.downcast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = x.downcast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    Err(ktorch_error(f, format!("{what} expects a list")))
}

fn text(f: &str, x: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    x.extract()
        .map_err(|_| ktorch_error(f, format!("{what} expects a name")))
}

fn int(f: &str, x: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    if x.is_instance_of::<pyo3::types::PyBool>() {
        return Err(ktorch_error(f, format!("{what} expects an integer")));
    }
    x.extract()
        .map_err(|_| ktorch_error(f, format!("{what} expects an integer")))
}

fn tensor_in(f: &str, x: &Bound<'_, PyAny>) -> PyResult<StateTensor> {
    let np = x.py().import("numpy")?;
    let a = if crate::convert::is_torch(x)? {
        x.clone()
    } else {
        np.call_method1("asarray", (x,))?
    };
    let t = to_tch(f, &a)?;
    StateTensor::copy_of(&t).map_err(|e| ktorch_error(f, e))
}

fn settings_in(f: &str, x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<(String, Setting)>> {
    let d = dict(f, x, what)?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .extract()
            .map_err(|_| type_error(f, format!("{what}: keys must be strings")))?;
        let v = Setting::of(&to_value(f, &v)?).map_err(|e| ktorch_error(f, e))?;
        out.push((k, v));
    }
    Ok(out)
}

fn tensors_in(f: &str, x: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<(String, StateTensor)>> {
    let d = dict(f, x, what)?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .extract()
            .map_err(|_| type_error(f, format!("{what}: keys must be strings")))?;
        let t = tensor_in(f, &v)
            .map_err(|e| ktorch_error(f, format!("{what} `{k}`: {}", strip(&e, x.py()))))?;
        out.push((k, t));
    }
    Ok(out)
}

fn strip(e: &PyErr, py: Python<'_>) -> String {
    e.value(py).to_string()
}

/// True for what a module's state looks like: a dict with `module` and `depth`,
/// or a non-empty list of such dicts.
pub(crate) fn is_module_state(x: &Bound<'_, PyAny>) -> bool {
    let row = |r: &Bound<'_, PyAny>| {
        r.downcast::<PyDict>().is_ok_and(|d| {
            d.contains("module").unwrap_or(false) && d.contains("depth").unwrap_or(false)
        })
    };
    if row(x) {
        return true;
    }
    x.downcast::<PyList>()
        .is_ok_and(|l| !l.is_empty() && l.iter().all(|r| row(&r)))
}

fn module_in(f: &str, x: &Bound<'_, PyAny>) -> PyResult<ModuleState> {
    let rows = if x.downcast::<PyDict>().is_ok() {
        vec![x.clone()]
    } else {
        list(f, x, "module state")?
    };
    // rows depth first: a stack of (depth, state) folds children into parents
    let mut stack: Vec<(i64, String, ModuleState)> = Vec::new();
    fn fold(stack: &mut Vec<(i64, String, ModuleState)>) {
        if stack.len() > 1 {
            if let Some((_, key, s)) = stack.pop() {
                if let Some((_, _, parent)) = stack.last_mut() {
                    parent.children.push((key, s));
                }
            }
        }
    }
    let mut done: Option<ModuleState> = None;
    for (i, r) in rows.iter().enumerate() {
        let what = format!("module state row {i}");
        let d = dict(f, r, &what)?;
        let depth = int(f, &item(f, &d, "depth", &what)?, &format!("{what} depth"))?;
        let kind = text(f, &item(f, &d, "module", &what)?, &format!("{what} module"))?;
        let name: Option<String> = match d.get_item("name")? {
            None => None,
            Some(n) if n.is_none() => None,
            Some(n) => Some(text(f, &n, &format!("{what} name"))?),
        };
        let expect = stack.last().map_or(0, |(d, _, _)| d + 1);
        if i == 0 && depth != 0 || i > 0 && (depth < 1 || depth > expect) {
            return Err(ktorch_error(
                f,
                format!("{what}: depth {depth} does not follow the rows before it"),
            ));
        }
        if done.is_some() {
            return Err(ktorch_error(
                f,
                format!("{what}: a second module at depth 0"),
            ));
        }
        while stack.last().is_some_and(|(d, _, _)| *d >= depth) {
            fold(&mut stack);
        }
        let opt = |k: &str| d.get_item(k);
        let options = match opt("options")? {
            Some(o) if !o.is_none() => settings_in(f, &o, &format!("{what} options"))?,
            _ => Vec::new(),
        };
        let args = match opt("args")? {
            Some(a) if !a.is_none() => list(f, &a, &format!("{what} args"))?
                .iter()
                .map(|v| Setting::of(&to_value(f, v)?).map_err(|e| ktorch_error(f, e)))
                .collect::<PyResult<_>>()?,
            _ => Vec::new(),
        };
        let tensors = |k: &str| -> PyResult<Vec<(String, StateTensor)>> {
            match opt(k)? {
                Some(t) if !t.is_none() => tensors_in(f, &t, &format!("{what} {k}")),
                _ => Ok(Vec::new()),
            }
        };
        let training = match opt("training")? {
            Some(t) if !t.is_none() => t
                .extract::<bool>()
                .map_err(|_| ktorch_error(f, format!("{what} training expects True or False")))?,
            _ => true,
        };
        let frozen = match opt("frozen")? {
            Some(t) if !t.is_none() => list(f, &t, &format!("{what} frozen"))?
                .iter()
                .map(|n| text(f, n, &format!("{what} frozen")))
                .collect::<PyResult<_>>()?,
            _ => Vec::new(),
        };
        let key = name.clone().unwrap_or_else(|| {
            stack
                .last()
                .map_or(0, |(_, _, p)| p.children.len())
                .to_string()
        });
        // a child's key is its name; a name equal to its position was none
        let own = if depth == 0 {
            name
        } else {
            let pos = stack.last().map_or(0, |(_, _, p)| p.children.len());
            name.filter(|n| *n != pos.to_string())
        };
        stack.push((
            depth,
            key,
            ModuleState {
                kind,
                name: own,
                options,
                args,
                training,
                parms: tensors("parms")?,
                buffers: tensors("buffers")?,
                frozen,
                children: Vec::new(),
            },
        ));
        if i + 1 == rows.len() {
            while stack.len() > 1 {
                fold(&mut stack);
            }
            done = stack.pop().map(|(_, _, s)| s);
        }
    }
    done.ok_or_else(|| ktorch_error(f, "an empty module state"))
}

/// module(state): the module a state describes.
pub(crate) fn module_from(py: Python<'_>, f: &str, x: &Bound<'_, PyAny>) -> PyResult<Module> {
    let s = module_in(f, x)?;
    call(py, f, Vec::new(), move |_| Ok(s.build()?))
}

fn loss_in(f: &str, x: &Bound<'_, PyAny>) -> PyResult<LossState> {
    let d = dict(f, x, "loss state")?;
    Ok(LossState {
        kind: text(f, &item(f, &d, "loss", "loss state")?, "loss state loss")?,
        options: match d.get_item("options")? {
            Some(o) if !o.is_none() => settings_in(f, &o, "loss state options")?,
            _ => Vec::new(),
        },
    })
}

/// True for a loss's state: a dict with `loss`.
pub(crate) fn is_loss_state(x: &Bound<'_, PyAny>) -> bool {
    x.downcast::<PyDict>().is_ok_and(|d| {
        d.contains("loss").unwrap_or(false) && !d.contains("module").unwrap_or(false)
    })
}

/// loss(state): the loss a state describes.
pub(crate) fn loss_from(
    py: Python<'_>,
    f: &str,
    x: &Bound<'_, PyAny>,
) -> PyResult<ktorch_core::Loss> {
    let s = loss_in(f, x)?;
    call(py, f, Vec::new(), move |_| Ok(s.build()?))
}

/// True for an optimizer's state: a dict with `optimizer` and `parms`.
pub(crate) fn is_opt_state(x: &Bound<'_, PyAny>) -> bool {
    x.downcast::<PyDict>().is_ok_and(|d| {
        d.contains("optimizer").unwrap_or(false) && d.contains("parms").unwrap_or(false)
    })
}

fn opt_in(f: &str, x: &Bound<'_, PyAny>) -> PyResult<OptState> {
    let w = "optimizer state";
    let d = dict(f, x, w)?;
    let kind = text(
        f,
        &item(f, &d, "optimizer", w)?,
        "optimizer state optimizer",
    )?;
    let options = list(f, &item(f, &d, "options", w)?, "optimizer state options")?;
    let mut groups: Vec<OptGroupState> = options
        .iter()
        .enumerate()
        .map(|(g, o)| {
            Ok(OptGroupState {
                options: settings_in(f, o, &format!("optimizer state options of group {g}"))?,
                parms: Vec::new(),
            })
        })
        .collect::<PyResult<_>>()?;
    for (i, r) in list(f, &item(f, &d, "parms", w)?, "optimizer state parms")?
        .iter()
        .enumerate()
    {
        let what = format!("optimizer state parms row {i}");
        let r = dict(f, r, &what)?;
        let g = int(
            f,
            &item(f, &r, "parmgroup", &what)?,
            &format!("{what} parmgroup"),
        )?;
        let n = groups.len();
        let grp = usize::try_from(g)
            .ok()
            .and_then(|g| groups.get_mut(g))
            .ok_or_else(|| {
                ktorch_error(
                    f,
                    format!("{what}: parmgroup {g}, the state has {n} group(s)"),
                )
            })?;
        let name = match r.get_item("name")? {
            Some(n) if !n.is_none() => Some(text(f, &n, &format!("{what} name"))?),
            _ => None,
        };
        let size: Vec<i64> = item(f, &r, "size", &what)?
            .extract()
            .map_err(|_| ktorch_error(f, format!("{what} size expects a list of integers")))?;
        let step = match r.get_item("step")? {
            Some(s) if !s.is_none() => int(f, &s, &format!("{what} step"))?,
            _ => 0,
        };
        let buffers = match r.get_item("buffers")? {
            Some(b) if !b.is_none() => tensors_in(f, &b, &format!("{what} buffers"))?,
            _ => Vec::new(),
        };
        grp.parms.push(OptParmState {
            name,
            size,
            step,
            buffers,
        });
    }
    Ok(OptState {
        kind,
        defaults: match d.get_item("defaults")? {
            Some(o) if !o.is_none() => settings_in(f, &o, "optimizer state defaults")?,
            _ => Vec::new(),
        },
        groups,
        history: match d.get_item("history")? {
            Some(o) if !o.is_none() => settings_in(f, &o, "optimizer state history")?,
            _ => Vec::new(),
        },
    })
}

/// The named parameters an optimizer state is put back over: a module's or
/// model's module's, a dict's by key, a tensor's or vector's by position.
pub(crate) fn named_params(g: &Gate, o: &Obj) -> crate::errors::Res<Vec<(String, tch::Tensor)>> {
    Ok(match o {
        Obj::Module(m) => g.lock(m)?.named_parameters(),
        Obj::Model(m) => {
            let q = g.lock(m)?.module().clone();
            let ps = g.lock(&q)?.named_parameters();
            ps
        }
        Obj::Tensors(t) => {
            let t = g.lock(t)?;
            let keys = t.names();
            t.full()
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let k = keys.get(i).cloned().unwrap_or_else(|| i.to_string());
                    (k, x.shallow_clone())
                })
                .collect()
        }
        Obj::Opt(o) => {
            let o = g.lock(o)?;
            let mut out = Vec::new();
            for grp in 0..o.groups() {
                for (i, (p, n)) in o
                    .group_params(grp)
                    .into_iter()
                    .zip(o.param_names(grp))
                    .enumerate()
                {
                    out.push((n.unwrap_or_else(|| format!("{grp}.{i}")), p));
                }
            }
            out
        }
        Obj::Loss(_) => Vec::new(),
    })
}

/// opt(state, parameters): the optimizer a state describes, over a module's
/// parameters (by name where the state names them, else in order).
pub(crate) fn opt_from(
    py: Python<'_>,
    f: &str,
    x: &Bound<'_, PyAny>,
    src: Option<Obj>,
) -> PyResult<(Optimizer, Vec<ktorch_core::sync::Domain>)> {
    let s = opt_in(f, x)?;
    let ds = src.as_ref().map(Obj::domains).unwrap_or_default();
    let own = ds.clone();
    let o = call(py, f, ds, move |g| {
        let named = match &src {
            Some(o) => named_params(g, o)?,
            None => Vec::new(),
        };
        Ok(s.build(&named)?)
    })?;
    Ok((o, own))
}

fn stage_in(
    f: &str,
    options: Option<Bound<'_, PyAny>>,
    pos: Option<Bound<'_, PyAny>>,
    data: Option<Bound<'_, PyAny>>,
    stage: &str,
) -> PyResult<StageState> {
    let options = match options {
        Some(o) if !o.is_none() => settings_in(f, &o, &format!("model state {stage}"))?,
        _ => Vec::new(),
    };
    let mut s = StageState {
        options,
        epochs: 0,
        generator: None,
        order: None,
        paused: None,
        data: None,
    };
    if let Some(p) = pos.filter(|p| !p.is_none()) {
        let what = format!("model state position {stage}");
        let p = dict(f, &p, &what)?;
        if let Some(e) = p.get_item("epochs")?.filter(|e| !e.is_none()) {
            s.epochs = int(f, &e, &format!("{what} epochs"))?;
        }
        if let Some(g) = p.get_item("generator")?.filter(|e| !e.is_none()) {
            s.generator =
                Some(g.extract::<(i64, u64)>().map_err(|_| {
                    ktorch_error(f, format!("{what} generator expects (seed, state)"))
                })?);
        }
        if let Some(o) = p.get_item("order")?.filter(|e| !e.is_none()) {
            s.order = Some(tensor_in(f, &o)?);
        }
        if let Some(q) = p.get_item("paused")?.filter(|e| !e.is_none()) {
            let w = format!("{what} paused");
            let q = dict(f, &q, &w)?;
            let counts = match q.get_item("counts")? {
                Some(c) if !c.is_none() => dict(f, &c, &format!("{w} counts"))?
                    .iter()
                    .map(|(k, v)| Ok((text(f, &k, &w)?, int(f, &v, &format!("{w} counts"))?)))
                    .collect::<PyResult<_>>()?,
                _ => Vec::new(),
            };
            s.paused = Some(PausedState {
                next: int(f, &item(f, &q, "next", &w)?, &format!("{w} next"))?,
                counts,
                tensors: match q.get_item("tensors")? {
                    Some(t) if !t.is_none() => tensors_in(f, &t, &format!("{w} tensors"))?,
                    _ => Vec::new(),
                },
            });
        }
    }
    if let Some(d) = data.filter(|d| !d.is_none()) {
        let what = format!("model state data {stage}");
        let xy = list(f, &d, &what)?;
        let [x, y] = xy.as_slice() else {
            return Err(ktorch_error(f, format!("{what} expects [inputs, targets]")));
        };
        let ts = |v: &Bound<'_, PyAny>| -> PyResult<Vec<StateTensor>> {
            list(f, v, &what)?.iter().map(|t| tensor_in(f, t)).collect()
        };
        s.data = Some(DataState {
            inputs: ts(x)?,
            targets: if y.is_none() { None } else { Some(ts(y)?) },
        });
    }
    Ok(s)
}

/// True for a model's state: a dict with `module`, `loss` and `optimizer`.
pub(crate) fn is_model_state(x: &Bound<'_, PyAny>) -> bool {
    x.downcast::<PyDict>().is_ok_and(|d| {
        ["module", "loss", "optimizer"]
            .iter()
            .all(|k| d.contains(k).unwrap_or(false))
    })
}

/// model(state): the model a state describes.
pub(crate) fn model_from(
    py: Python<'_>,
    f: &str,
    x: &Bound<'_, PyAny>,
) -> PyResult<ktorch_core::Model> {
    let w = "model state";
    let d = dict(f, x, w)?;
    let pos = d.get_item("position")?.filter(|p| !p.is_none());
    let data = d.get_item("data")?.filter(|p| !p.is_none());
    let pos_of = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match &pos {
            Some(p) => Ok(dict(f, p, "model state position")?.get_item(k)?),
            None => Ok(None),
        }
    };
    let data_of = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match &data {
            Some(p) => Ok(dict(f, p, "model state data")?.get_item(k)?),
            None => Ok(None),
        }
    };
    let s = ModelState {
        module: module_in(f, &item(f, &d, "module", w)?)?,
        loss: loss_in(f, &item(f, &d, "loss", w)?)?,
        optimizer: opt_in(f, &item(f, &d, "optimizer", w)?)?,
        train: stage_in(
            f,
            d.get_item("train")?,
            pos_of("train")?,
            data_of("train")?,
            "train",
        )?,
        test: stage_in(
            f,
            d.get_item("test")?,
            pos_of("test")?,
            data_of("test")?,
            "test",
        )?,
        rng: None,
    };
    call(py, f, Vec::new(), move |_| Ok(s.build()?))
}
