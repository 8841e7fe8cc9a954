//! Checkpoint files: one safetensors file holding an object's tensors, with the
//! rest (what the object is and how to build it again) as JSON in the file's
//! metadata under the key `ktorch`. Nothing in a file is ever run: loading
//! builds the module from its recorded spec (type names and settings, checked
//! as any spec is) and copies the tensors in, after checking every name and
//! shape. Writes go to a temporary file beside the target, synced, then
//! renamed over it, so an interrupted save leaves the old file whole.
//!
//! Modules are saved now; optimizers and models follow the same layout.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{SafeTensors, TensorView};
use safetensors::Dtype;
use serde_json::{json, Map, Value as J};
use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};
use crate::nn::Module;
use crate::value::Value;

/// The layout version this build writes and reads.
pub const FORMAT: i64 = 1;

const META_KEY: &str = "ktorch";

fn dtype_of(k: Kind) -> Result<Dtype> {
    Ok(match k {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        k => return Err(invalid(format!("cannot save a tensor of dtype {k:?}"))),
    })
}

fn kind_of(d: Dtype) -> Result<Kind> {
    Ok(match d {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        d => return Err(invalid(format!("unsupported tensor dtype {d:?} in file"))),
    })
}

/// A tensor's bytes on the host, its dtype and shape.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn raw(t: &Tensor) -> Result<Raw> {
    let c = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let dtype = dtype_of(c.f_kind()?)?;
    let shape = c.size().iter().map(|&s| s as usize).collect();
    let flat = c.f_reshape([-1])?;
    let bytes = if flat.numel() == 0 {
        Vec::new()
    } else if c.f_kind()? == Kind::Bool {
        Vec::<u8>::try_from(&flat.f_to_kind(Kind::Uint8)?)?
    } else {
        Vec::<u8>::try_from(&flat.f_view_dtype(Kind::Uint8)?)?
    };
    Ok(Raw {
        dtype,
        shape,
        bytes,
    })
}

fn from_view(v: &TensorView<'_>) -> Result<Tensor> {
    let kind = kind_of(v.dtype())?;
    let shape: Vec<i64> = v.shape().iter().map(|&s| s as i64).collect();
    let bytes = Tensor::from_slice(v.data());
    let t = match kind {
        Kind::Bool => bytes.f_to_kind(Kind::Bool)?,
        Kind::Uint8 => bytes,
        k if bytes.numel() == 0 => Tensor::f_empty([0], (k, Device::Cpu))?,
        k => bytes.f_view_dtype(k)?,
    };
    Ok(t.f_reshape(shape)?)
}

/// A spec value as JSON: numbers keep integer or float, and tuples and dictionaries
/// are tagged so that they read back as they were.
fn value_json(v: &Value) -> Result<J> {
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => json!(i),
        Value::Float(x) if x.is_finite() => json!({ "float": x }),
        Value::Float(x) => json!({ "float": x.to_string() }),
        Value::Str(s) => J::String(s.clone()),
        Value::List(xs) => J::Array(xs.iter().map(value_json).collect::<Result<_>>()?),
        Value::Tuple(xs) => {
            json!({ "tuple": xs.iter().map(value_json).collect::<Result<Vec<_>>>()? })
        }
        Value::Dict(kv) => json!({
            "dict": kv.iter().map(|(k, v)| Ok(json!([k, value_json(v)?]))).collect::<Result<Vec<_>>>()?
        }),
        Value::Tensor(_) => {
            return Err(invalid(
                "a module built with tensor settings cannot be saved yet",
            ))
        }
        _ => {
            return Err(invalid(
                "callback modules cannot be saved: their forward is a Python function",
            ))
        }
    })
}

fn bad(what: &str) -> crate::error::Error {
    invalid(format!("not a ktorch checkpoint, or a damaged one: {what}"))
}

fn json_value(j: &J) -> Result<Value> {
    Ok(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Int(n.as_i64().ok_or_else(|| bad("an integer out of range"))?),
        J::String(s) => Value::Str(s.clone()),
        J::Array(xs) => Value::List(xs.iter().map(json_value).collect::<Result<_>>()?),
        J::Object(o) => match (o.get("float"), o.get("tuple"), o.get("dict")) {
            (Some(J::Number(n)), None, None) => {
                Value::Float(n.as_f64().ok_or_else(|| bad("a float"))?)
            }
            (Some(J::String(s)), None, None) => {
                Value::Float(s.parse().map_err(|_| bad("a float"))?)
            }
            (None, Some(J::Array(xs)), None) => {
                Value::Tuple(xs.iter().map(json_value).collect::<Result<_>>()?)
            }
            (None, None, Some(J::Array(kv))) => Value::Dict(
                kv.iter()
                    .map(|p| match p.as_array().map(Vec::as_slice) {
                        Some([J::String(k), v]) => Ok((k.clone(), json_value(v)?)),
                        _ => Err(bad("a dictionary entry")),
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => return Err(bad("a setting")),
        },
    })
}

/// A module tree as JSON: type, name, settings, training flag, children by key.
fn module_json(m: &Module) -> Result<J> {
    let (args, kw) = m
        .made()
        .ok_or_else(|| invalid(format!("module `{}` was not built from a spec", m.kind())))?;
    Ok(json!({
        "kind": m.kind(),
        "name": m.name(),
        "args": args.iter().map(value_json).collect::<Result<Vec<_>>>()?,
        "kw": kw.iter().map(|(k, v)| Ok(json!([k, value_json(v)?]))).collect::<Result<Vec<_>>>()?,
        "training": m.is_training(),
        "children": m
            .children()
            .iter()
            .map(|(k, c)| Ok(json!([k, module_json(c)?])))
            .collect::<Result<Vec<_>>>()?,
    }))
}

fn json_module(j: &J) -> Result<Module> {
    let o = j.as_object().ok_or_else(|| bad("a module"))?;
    let kind = o
        .get("kind")
        .and_then(J::as_str)
        .ok_or_else(|| bad("a module type"))?;
    let args = match o.get("args") {
        Some(J::Array(xs)) => xs.iter().map(json_value).collect::<Result<Vec<_>>>()?,
        _ => return Err(bad("module settings")),
    };
    let kw = match o.get("kw") {
        Some(J::Array(kv)) => kv
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([J::String(k), v]) => Ok((k.clone(), json_value(v)?)),
                _ => Err(bad("a module option")),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad("module options")),
    };
    let kids = match o.get("children") {
        Some(J::Array(cs)) => cs
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([J::String(k), c]) => Ok((Some(k.clone()), json_module(c)?)),
                _ => Err(bad("a child module")),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad("child modules")),
    };
    let mut m = crate::nn::spec_build(kind, &args, &kw, kids)?;
    m.set_name(o.get("name").and_then(J::as_str).map(str::to_string));
    if let Some(J::Bool(t)) = o.get("training") {
        m.set_training_here(*t);
    }
    Ok(m)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid(format!("not a file path: {}", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |e: std::io::Error, what: &str| invalid(format!("{what} {}: {e}", path.display()));
    let r = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io(e, "cannot write"))?;
        f.write_all(bytes).map_err(|e| io(e, "cannot write"))?;
        f.sync_all().map_err(|e| io(e, "cannot sync"))?;
        fs::rename(&tmp, path).map_err(|e| io(e, "cannot replace"))?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Saves a module: its spec tree, training flags, frozen parameters, every
/// parameter and buffer (on the host, in its dtype).
pub fn save_module(m: &Module, path: &Path) -> Result<()> {
    let mut raws: Vec<(String, Raw)> = Vec::new();
    for (k, t) in m.named_parameters() {
        raws.push((format!("parm/{k}"), raw(&t)?));
    }
    for (k, t) in m.named_buffers() {
        raws.push((format!("buffer/{k}"), raw(&t)?));
    }
    let frozen: Vec<String> = m
        .gradflags()
        .into_iter()
        .filter(|(_, g)| !g)
        .map(|(k, _)| k)
        .collect();
    let meta = json!({
        "format": FORMAT,
        "class": "module",
        "module": module_json(m)?,
        "frozen": frozen,
    });
    write_file(path, &meta, &raws)
}

/// Writes tensors and metadata as one safetensors file, atomically.
fn write_file(path: &Path, meta: &J, raws: &[(String, Raw)]) -> Result<()> {
    let views = raws
        .iter()
        .map(|(k, r)| {
            TensorView::new(r.dtype, r.shape.clone(), &r.bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| invalid(format!("cannot save tensor {k}: {e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let info: HashMap<String, String> = [(META_KEY.to_string(), meta.to_string())].into();
    let bytes = safetensors::tensor::serialize(views, &Some(info))
        .map_err(|e| invalid(format!("cannot save: {e:?}")))?;
    write_atomic(path, &bytes)
}

/// The class of object a checkpoint file holds (`module`, `model`), read from its
/// metadata after checking the format.
pub fn class(path: &Path) -> Result<String> {
    let bytes =
        fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&format!("{e:?}")))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("no ktorch metadata (a safetensors file from elsewhere?)"))?;
    let meta: J = serde_json::from_str(meta).map_err(|e| bad(&e.to_string()))?;
    meta.get("class")
        .and_then(J::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("no object class"))
}

/// The metadata and tensors of a checkpoint file, checked for format and class.
/// A checkpoint's metadata and its named tensors.
type Opened = (Map<String, J>, Vec<(String, Tensor)>);

fn open(path: &Path, class: &str) -> Result<Opened> {
    let bytes =
        fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&format!("{e:?}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&format!("{e:?}")))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("no ktorch metadata (a safetensors file from elsewhere?)"))?;
    let meta: J = serde_json::from_str(meta).map_err(|e| bad(&e.to_string()))?;
    let J::Object(meta) = meta else {
        return Err(bad("metadata"));
    };
    match meta.get("format").and_then(J::as_i64) {
        Some(FORMAT) => {}
        Some(v) => {
            return Err(invalid(format!(
                "checkpoint format {v}, this ktorch reads format {FORMAT}"
            )))
        }
        None => return Err(bad("no format version")),
    }
    match meta.get("class").and_then(J::as_str) {
        Some(c) if c == class => {}
        Some(c) => return Err(invalid(format!("the file holds a {c}, not a {class}"))),
        None => return Err(bad("no object class")),
    }
    let mut ts = Vec::new();
    for (k, v) in st.tensors() {
        ts.push((k, from_view(&v)?));
    }
    Ok((meta, ts))
}

/// Loads a module saved by [`save_module`]: builds it from its spec, then
/// copies every parameter and buffer in after checking that the file has each
/// one, of the same shape (the first mismatch is named with both shapes), and
/// nothing else.
pub fn load_module(path: &Path) -> Result<Module> {
    let (meta, ts) = open(path, "module")?;
    let ts: Vec<(String, Tensor)> = ts;
    let only: Vec<(String, Tensor)> = ts
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    if let Some((k, _)) = only
        .iter()
        .find(|(k, _)| !(k.starts_with("parm/") || k.starts_with("buffer/")))
    {
        return Err(bad(&format!(
            "tensor {k} belongs to no parameter or buffer"
        )));
    }
    module_from(&meta, &only)
}

/// The module of a checkpoint's metadata, with its tensors copied in after every
/// name and shape is checked.
fn module_from(meta: &Map<String, J>, ts: &[(String, Tensor)]) -> Result<Module> {
    let m = json_module(meta.get("module").ok_or_else(|| bad("no module"))?)?;
    let mut want: Vec<(String, Tensor)> = m
        .named_parameters()
        .into_iter()
        .map(|(k, t)| (format!("parm/{k}"), t))
        .collect();
    want.extend(
        m.named_buffers()
            .into_iter()
            .map(|(k, t)| (format!("buffer/{k}"), t)),
    );
    let mut plan = Vec::with_capacity(want.len());
    for (k, t) in &want {
        let v = ts
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("the file has no {}", k.replace('/', " "))))?;
        if v.size() != t.size() {
            return Err(invalid(format!(
                "{} has shape {:?} in the file, {:?} in the module the file describes",
                k.replace('/', " "),
                v.size(),
                t.size()
            )));
        }
        plan.push((t.shallow_clone(), v.shallow_clone()));
    }
    if let Some((k, _)) = ts.iter().find(|(k, _)| {
        (k.starts_with("parm/") || k.starts_with("buffer/")) && !want.iter().any(|(w, _)| w == k)
    }) {
        return Err(bad(&format!(
            "tensor {k} belongs to no parameter or buffer"
        )));
    }
    let _g = tch::no_grad_guard();
    for (t, v) in &plan {
        let v = v.f_to_kind(t.f_kind()?)?;
        let mut t = t.shallow_clone();
        if t.f_kind()? != v.f_kind()? || t.size() != v.size() {
            t.f_set_data(&v)?;
        } else {
            t.f_copy_(&v)?;
        }
    }
    // the saved dtype: parameters come back as they were saved
    if let Some((_, v)) = plan.iter().find(|(t, _)| t.is_floating_point()) {
        let k = v.f_kind()?;
        if crate::device::is_float(k) && m.float_kind() != Some(k) {
            m.to(&crate::device::Place {
                kind: Some(k),
                ..Default::default()
            })?;
            for (t, v) in &plan {
                t.shallow_clone().f_copy_(v)?;
            }
        }
    }
    if let Some(J::Array(fr)) = meta.get("frozen") {
        let names: Vec<String> = fr
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        if !names.is_empty() {
            m.freeze(Some(&names), None, true)?;
        }
    }
    Ok(m)
}

/// Settings as JSON, each tensor stored under `prefix/name` and referred to by key.
fn settings_json(prefix: &str, kv: &[(String, Value)], raws: &mut Vec<(String, Raw)>) -> Result<J> {
    let mut out = Vec::with_capacity(kv.len());
    for (k, v) in kv {
        let j = match v {
            Value::Tensor(t) => {
                let key = format!("{prefix}/{k}");
                raws.push((key.clone(), raw(t)?));
                json!({ "tensor": key })
            }
            v => value_json(v)?,
        };
        out.push(json!([k, j]));
    }
    Ok(J::Array(out))
}

fn json_settings(j: Option<&J>, ts: &[(String, Tensor)]) -> Result<Vec<(String, Value)>> {
    let Some(J::Array(kv)) = j else {
        return Err(bad("settings"));
    };
    kv.iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([J::String(k), J::Object(o)]) if o.contains_key("tensor") => {
                let key = o
                    .get("tensor")
                    .and_then(J::as_str)
                    .ok_or_else(|| bad("a tensor key"))?;
                let t = ts
                    .iter()
                    .find(|(n, _)| n == key)
                    .map(|(_, t)| t.shallow_clone())
                    .ok_or_else(|| invalid(format!("the file has no tensor {key}")))?;
                Ok((k.clone(), Value::Tensor(t)))
            }
            Some([J::String(k), v]) => Ok((k.clone(), json_value(v)?)),
            _ => Err(bad("a setting")),
        })
        .collect()
}

/// The file's tensor `key`, or an error saying the file lacks it.
fn tensor_named(ts: &[(String, Tensor)], key: &str) -> Result<Tensor> {
    ts.iter()
        .find(|(n, _)| n == key)
        .map(|(_, t)| t.shallow_clone())
        .ok_or_else(|| invalid(format!("the file has no tensor {key}")))
}

/// A stage's position as JSON: the seeded generator and the row order (a tensor).
fn position_json(
    prefix: &str,
    st: &crate::model::Stage,
    raws: &mut Vec<(String, Raw)>,
) -> Result<J> {
    let (gen, order) = st.position();
    let order = match order {
        Some(p) => {
            let key = format!("{prefix}/order");
            raws.push((key.clone(), raw(&p)?));
            J::String(key)
        }
        None => J::Null,
    };
    Ok(json!({ "gen": gen.map(|(seed, state)| json!([seed, state])), "order": order }))
}

fn json_position(j: Option<&J>, ts: &[(String, Tensor)]) -> Result<crate::model::Position> {
    let Some(j) = j else {
        return Ok((None, None));
    };
    let gen = match j.get("gen") {
        Some(J::Array(a)) => match a.as_slice() {
            [s, g] => Some((
                s.as_i64().ok_or_else(|| bad("a generator seed"))?,
                g.as_u64().ok_or_else(|| bad("a generator state"))?,
            )),
            _ => return Err(bad("a generator")),
        },
        _ => None,
    };
    let order = match j.get("order").and_then(J::as_str) {
        Some(key) => Some(tensor_named(ts, key)?),
        None => None,
    };
    Ok((gen, order))
}

/// Saves a model: its module (as [`save_module`] does), its loss and settings, its
/// optimizer with settings and state (momenta, moments, step counts), and its
/// training and test options. The data is not saved. The optimizer's parameters
/// are recorded by their names in the module: an optimizer holding parameters
/// outside the model's module cannot be saved.
pub fn save_model(m: &crate::model::Model, path: &Path) -> Result<()> {
    use crate::sync::lock;
    let q = lock(m.module())?;
    let l = lock(m.loss_fn())?;
    let o = lock(m.optimizer())?;
    let mut raws: Vec<(String, Raw)> = Vec::new();
    let named = q.named_parameters();
    for (k, t) in &named {
        raws.push((format!("parm/{k}"), raw(t)?));
    }
    for (k, t) in q.named_buffers() {
        raws.push((format!("buffer/{k}"), raw(&t)?));
    }
    let frozen: Vec<String> = q
        .gradflags()
        .into_iter()
        .filter(|(_, g)| !g)
        .map(|(k, _)| k)
        .collect();
    let loss = json!({
        "kind": l.kind(),
        "settings": settings_json("loss", &l.options(true)?, &mut raws)?,
    });
    let name_of = |p: &Tensor| -> Result<String> {
        named
            .iter()
            .find(|(_, t)| t.data_ptr() == p.data_ptr() && t.size() == p.size())
            .map(|(k, _)| k.clone())
            .ok_or_else(|| {
                invalid("the optimizer holds parameters outside the model's module: save the module and optimizer state separately")
            })
    };
    let mut groups = Vec::new();
    for g in 0..o.groups() {
        let names = o
            .group_params(g)
            .iter()
            .map(name_of)
            .collect::<Result<Vec<_>>>()?;
        groups.push(json!({
            "settings": settings_json(&format!("opt/group{g}"), &o.settings(g), &mut raws)?,
            "params": names,
        }));
    }
    let defaults = settings_json("opt/defaults", &o.settings(o.groups()), &mut raws)?;
    let mut state = Vec::new();
    if o.groups() > 0 && !matches!(o.kind(), "lbfgs" | "lamb") {
        for (id, e) in o.state_dict()?.state {
            let mut names = Vec::new();
            for (b, t) in &e.buffers {
                let key = format!("opt/state{id}/{b}");
                raws.push((key.clone(), raw(t)?));
                names.push(json!([b, key]));
            }
            state.push(json!({ "id": id, "step": e.step, "buffers": names }));
        }
    } else if o.groups() > 0 {
        return Err(invalid(format!(
            "saving the state of {} optimizers is not supported yet",
            o.kind()
        )));
    }
    let meta = json!({
        "format": FORMAT,
        "class": "model",
        "module": module_json(&q)?,
        "frozen": frozen,
        "loss": loss,
        "optimizer": { "kind": o.kind(), "defaults": defaults, "groups": groups, "state": state },
        "train": settings_json("train", &m.train.opts.all(), &mut raws)?,
        "test": settings_json("test", &m.test.opts.all(), &mut raws)?,
        "position": {
            "train": position_json("train", &m.train, &mut raws)?,
            "test": position_json("test", &m.test, &mut raws)?,
        },
        "rng": "rng/cpu",
    });
    raws.push(("rng/cpu".to_string(), raw(&ktorch_shim::cpu_rng_state()?)?));
    drop((q, l, o));
    write_file(path, &meta, &raws)
}

/// Loads a model saved by [`save_model`]: module, loss, optimizer (settings and
/// state) and options, each checked as when they are made; no data.
pub fn load_model(path: &Path) -> Result<crate::model::Model> {
    use crate::optim::Optimizer;
    let (meta, ts) = open(path, "model")?;
    let q = module_from(&meta, &ts)?;
    let lj = meta.get("loss").ok_or_else(|| bad("no loss"))?;
    let loss = crate::loss::Loss::new(
        lj.get("kind")
            .and_then(J::as_str)
            .ok_or_else(|| bad("a loss type"))?,
        &[],
        &json_settings(lj.get("settings"), &ts)?,
    )?;
    let oj = meta.get("optimizer").ok_or_else(|| bad("no optimizer"))?;
    let kind = oj
        .get("kind")
        .and_then(J::as_str)
        .ok_or_else(|| bad("an optimizer type"))?;
    let named = q.named_parameters();
    let params_of = |g: &J| -> Result<Vec<Tensor>> {
        let Some(J::Array(ns)) = g.get("params") else {
            return Err(bad("group parameters"));
        };
        ns.iter()
            .map(|n| {
                let n = n.as_str().ok_or_else(|| bad("a parameter name"))?;
                named
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, t)| t.shallow_clone())
                    .ok_or_else(|| {
                        invalid(format!(
                            "the optimizer's parameter {n} is not in the module"
                        ))
                    })
            })
            .collect()
    };
    let defaults = json_settings(oj.get("defaults"), &ts)?;
    let mut o = Optimizer::new(kind, Vec::new(), &[], &defaults)?;
    if let Some(J::Array(gs)) = oj.get("groups") {
        for (g, gj) in gs.iter().enumerate() {
            o.add(
                g as i64,
                params_of(gj)?,
                &[],
                &json_settings(gj.get("settings"), &ts)?,
            )?;
        }
    }
    if let Some(J::Array(st)) = oj.get("state") {
        if !st.is_empty() {
            let mut sd = o.state_dict()?;
            sd.state = st
                .iter()
                .map(|e| {
                    let id = e
                        .get("id")
                        .and_then(J::as_i64)
                        .ok_or_else(|| bad("a state id"))?;
                    let step = e.get("step").and_then(J::as_f64);
                    let Some(J::Array(bs)) = e.get("buffers") else {
                        return Err(bad("state buffers"));
                    };
                    let buffers = bs
                        .iter()
                        .map(|b| match b.as_array().map(Vec::as_slice) {
                            Some([J::String(name), J::String(key)]) => ts
                                .iter()
                                .find(|(n, _)| n == key)
                                .map(|(_, t)| (name.clone(), t.shallow_clone()))
                                .ok_or_else(|| invalid(format!("the file has no tensor {key}"))),
                            _ => Err(bad("a state buffer")),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok((id, crate::optim::ParamEntry { step, buffers }))
                })
                .collect::<Result<Vec<_>>>()?;
            o.load_state_dict(&sd)?;
        }
    }
    let mut m = crate::model::Model::new(
        crate::sync::shared(q),
        crate::sync::shared(loss),
        crate::sync::shared(o),
    );
    m.train.opts.set(&json_settings(meta.get("train"), &ts)?)?;
    m.test.opts.set(&json_settings(meta.get("test"), &ts)?)?;
    let pos = meta.get("position");
    let (tg, tp) = json_position(pos.and_then(|p| p.get("train")), &ts)?;
    let (eg, ep) = json_position(pos.and_then(|p| p.get("test")), &ts)?;
    let rng = match meta.get("rng").and_then(J::as_str) {
        Some(key) => Some(tensor_named(&ts, key)?),
        None => None,
    };
    // everything is read: now the process's generator goes back to where it was
    if let Some(r) = rng {
        ktorch_shim::set_cpu_rng_state(&r)?;
    }
    m.train.set_position(tg, tp);
    m.test.set_position(eg, ep);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers;

    #[test]
    fn a_module_comes_back_equal_and_damage_is_refused() {
        let dir = std::env::temp_dir().join(format!("ktorch-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let q = Module::sequential([
            layers::linear(3, 4).expect("linear").named("a"),
            layers::relu().expect("relu"),
            layers::linear(4, 2).expect("linear"),
        ])
        .expect("sequential");
        let p = dir.join("q.kt");
        save_module(&q, &p).expect("save");
        let r = load_module(&p).expect("load");
        assert_eq!(r.parmnames(), q.parmnames());
        for ((_, a), (_, b)) in q.named_parameters().iter().zip(r.named_parameters()) {
            assert!(a.equal(&b));
        }
        let raw = fs::read(&p).expect("read");
        let bad = dir.join("bad.kt");
        fs::write(&bad, &raw[..raw.len() / 2]).expect("write");
        let e = load_module(&bad).expect_err("truncated").to_string();
        assert!(
            e.contains("not a ktorch checkpoint, or a damaged one"),
            "{e}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
