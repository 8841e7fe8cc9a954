//! Objects as plain data: a module tree, a loss, an optimizer or a model with
//! every setting and tensor it needs to be built again equal, as the original's
//! `state` returns them. Each state type serialises with serde (tensors as
//! dtype, shape and little-endian bytes) and builds its object back
//! (`ModuleState::build`...), checking everything as a spec is checked and
//! every tensor's name and shape before any is used. Checkpoint files
//! ([`crate::checkpoint`]) hold these same types.
//!
//! ```
//! use ktorch_core::nn::layers;
//! use ktorch_core::state::ModuleState;
//! use ktorch_core::Module;
//! # fn main() -> ktorch_core::Result<()> {
//! let q = Module::sequential([layers::linear(2, 3)?, layers::relu()?])?;
//! let s = ModuleState::of(&q)?;
//! let json = serde_json::to_string(&s).expect("serialise");
//! let back: ModuleState = serde_json::from_str(&json).expect("deserialise");
//! let r = back.build()?;
//! assert!(r.param("0.weight")?.equal(&q.param("0.weight")?));
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;

use safetensors::Dtype;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::model::{Model, PausedParts, Stage};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::sync::{lock, shared};
use crate::value::Value;

pub(crate) fn dtype_of(k: Kind) -> Result<Dtype> {
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

pub(crate) fn kind_of(d: Dtype) -> Result<Kind> {
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
        d => return Err(invalid(format!("unsupported tensor dtype {d:?}"))),
    })
}

/// A tensor's bytes on the host (little endian, row-major), its dtype and shape.
pub(crate) fn host_bytes(t: &Tensor) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
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
    Ok((dtype, shape, bytes))
}

/// A host tensor of `dtype` and `shape` from its bytes, checked for length.
pub(crate) fn from_bytes(dtype: Dtype, shape: &[usize], data: &[u8]) -> Result<Tensor> {
    let kind = kind_of(dtype)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| invalid(format!("a tensor of shape {shape:?} is too large")))?;
    if n != data.len() {
        return Err(invalid(format!(
            "a tensor of dtype {dtype:?} and shape {shape:?} needs {n} bytes, given {}",
            data.len()
        )));
    }
    let shape: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    let bytes = Tensor::from_slice(data);
    let t = match kind {
        Kind::Bool => bytes.f_to_kind(Kind::Bool)?,
        Kind::Uint8 => bytes,
        k if bytes.numel() == 0 => Tensor::f_empty([0], (k, Device::Cpu))?,
        k => bytes.f_view_dtype(k)?,
    };
    Ok(t.f_reshape(shape)?)
}

/// While a checkpoint file is written or read: the tensors of the state being
/// serialised go to the file (each a key in the JSON), or come from it.
#[derive(Default)]
pub(crate) struct FileTensors {
    /// Keys for some state tensors, by the tensor's address (module parameters
    /// and buffers go under their names, `parm/0.weight`).
    pub names: HashMap<usize, String>,
    /// Tensors written, by key.
    pub out: Vec<(String, Tensor)>,
    /// Tensors read, by key.
    pub input: HashMap<String, Tensor>,
    /// Keys of the tensors read that the state referred to.
    pub used: std::collections::HashSet<String>,
}

thread_local! {
    static FILE: RefCell<Option<FileTensors>> = const { RefCell::new(None) };
}

/// Runs `f` with tensors going to (or coming from) `ft` instead of inline bytes.
pub(crate) fn with_file<T>(ft: FileTensors, f: impl FnOnce() -> T) -> (T, FileTensors) {
    let outer = FILE.with(|c| c.borrow_mut().replace(ft));
    let r = f();
    let ft = FILE
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
        .unwrap_or_default();
    (r, ft)
}

/// A tensor held by a state: a copy on the host, detached from any graph.
/// Serialises as its dtype, shape and bytes (in a checkpoint file, as the key of
/// the file's tensor).
#[derive(Debug)]
pub struct StateTensor(pub Tensor);

impl StateTensor {
    /// A host copy of `t`, detached.
    pub fn copy_of(t: &Tensor) -> Result<StateTensor> {
        let _g = tch::no_grad_guard();
        let c = t.f_detach()?.f_to_device(Device::Cpu)?;
        // a copy of its own even where the tensor was on the host already
        let c = if c.data_ptr() == t.data_ptr() && c.numel() > 0 {
            c.f_detach_copy()?
        } else {
            c
        };
        Ok(StateTensor(c))
    }

    /// A tensor sharing this state's data.
    pub fn tensor(&self) -> Tensor {
        self.0.shallow_clone()
    }
}

#[derive(Serialize, Deserialize)]
struct TensorRepr {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TensorIn {
    Key(String),
    Data(TensorRepr),
}

impl Serialize for StateTensor {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let addr = self as *const StateTensor as usize;
        let key = FILE.with(|c| {
            c.borrow_mut().as_mut().map(|ft| {
                let key = ft
                    .names
                    .get(&addr)
                    .cloned()
                    .unwrap_or_else(|| format!("t/{}", ft.out.len()));
                ft.out.push((key.clone(), self.0.shallow_clone()));
                key
            })
        });
        match key {
            Some(k) => s.serialize_str(&k),
            None => {
                let (dtype, shape, data) = host_bytes(&self.0).map_err(S::Error::custom)?;
                TensorRepr { dtype, shape, data }.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for StateTensor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<StateTensor, D::Error> {
        use serde::de::Error;
        match TensorIn::deserialize(d)? {
            TensorIn::Key(k) => FILE
                .with(|c| {
                    c.borrow_mut().as_mut().and_then(|ft| {
                        let t = ft.input.get(&k).map(Tensor::shallow_clone);
                        ft.used.insert(k.clone());
                        t
                    })
                })
                .map(StateTensor)
                .ok_or_else(|| D::Error::custom(format!("the file has no tensor {k}"))),
            TensorIn::Data(r) => from_bytes(r.dtype, &r.shape, &r.data)
                .map(StateTensor)
                .map_err(D::Error::custom),
        }
    }
}

/// A setting of a module, loss, optimizer or stage: a [`Value`] without
/// functions, its tensors held as [`StateTensor`]s.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// No value.
    Null,
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number (non-finite ones serialise as strings).
    Float(#[serde(with = "float")] f64),
    /// A name.
    Str(String),
    /// A list.
    List(Vec<Setting>),
    /// A tuple.
    Tuple(Vec<Setting>),
    /// A dictionary, in order.
    Dict(Vec<(String, Setting)>),
    /// A tensor.
    Tensor(StateTensor),
}

mod float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_str(&x.to_string())
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum F {
        N(f64),
        S(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match F::deserialize(d)? {
            F::N(x) => Ok(x),
            F::S(s) => s
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("not a number: {s}"))),
        }
    }
}

impl Setting {
    /// The setting of a value (tensors copied); functions have none.
    pub fn of(v: &Value) -> Result<Setting> {
        Ok(match v {
            Value::Null => Setting::Null,
            Value::Bool(b) => Setting::Bool(*b),
            Value::Int(i) => Setting::Int(*i),
            Value::Float(x) => Setting::Float(*x),
            Value::Str(s) => Setting::Str(s.clone()),
            Value::List(xs) => Setting::List(xs.iter().map(Setting::of).collect::<Result<_>>()?),
            Value::Tuple(xs) => Setting::Tuple(xs.iter().map(Setting::of).collect::<Result<_>>()?),
            Value::Dict(kv) => Setting::Dict(settings_of(kv)?),
            Value::Tensor(t) => Setting::Tensor(StateTensor::copy_of(t)?),
            Value::Callable(_) => {
                return Err(invalid(
                    "a callback module has no state: its forward is a Python function",
                ))
            }
        })
    }

    /// The value of this setting (tensors shared with it).
    pub fn value(&self) -> Value {
        match self {
            Setting::Null => Value::Null,
            Setting::Bool(b) => Value::Bool(*b),
            Setting::Int(i) => Value::Int(*i),
            Setting::Float(x) => Value::Float(*x),
            Setting::Str(s) => Value::Str(s.clone()),
            Setting::List(xs) => Value::List(xs.iter().map(Setting::value).collect()),
            Setting::Tuple(xs) => Value::Tuple(xs.iter().map(Setting::value).collect()),
            Setting::Dict(kv) => Value::Dict(values_of(kv)),
            Setting::Tensor(t) => Value::Tensor(t.tensor()),
        }
    }
}

/// Named values as settings.
pub fn settings_of(kv: &[(String, Value)]) -> Result<Vec<(String, Setting)>> {
    kv.iter()
        .map(|(k, v)| Ok((k.clone(), Setting::of(v)?)))
        .collect()
}

/// Named settings as values.
pub fn values_of(kv: &[(String, Setting)]) -> Vec<(String, Value)> {
    kv.iter().map(|(k, v)| (k.clone(), v.value())).collect()
}

fn tensors_of(kv: &[(String, Tensor)]) -> Result<Vec<(String, StateTensor)>> {
    kv.iter()
        .map(|(k, t)| Ok((k.clone(), StateTensor::copy_of(t)?)))
        .collect()
}

/// A module and its children: type, name, options, training flag, its own
/// parameters (with the names of those frozen) and buffers, as the original's
/// `state` describes each row of a module table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleState {
    /// Module type (`linear`).
    pub kind: String,
    /// The name given in the spec, if any.
    pub name: Option<String>,
    /// Settings by name (`in`, `out`...; positional ones named).
    pub options: Vec<(String, Setting)>,
    /// Settings by position that the module does not name (usually none).
    #[serde(default)]
    pub args: Vec<Setting>,
    /// Training (true) or evaluation mode.
    pub training: bool,
    /// The module's own parameters.
    pub parms: Vec<(String, StateTensor)>,
    /// The module's own buffers.
    pub buffers: Vec<(String, StateTensor)>,
    /// Own parameters that do not take gradients (frozen).
    #[serde(default)]
    pub frozen: Vec<String>,
    /// Child modules by key.
    #[serde(default)]
    pub children: Vec<(String, ModuleState)>,
}

impl ModuleState {
    /// The state of `m` and its children (tensors copied to the host).
    pub fn of(m: &Module) -> Result<ModuleState> {
        let (args, kw) = m.made().ok_or_else(|| {
            invalid(format!(
                "module `{}` was not built from a spec: it has no state",
                m.kind()
            ))
        })?;
        let (options, args) = match m.options() {
            Some(o) => (settings_of(&o)?, Vec::new()),
            None => (
                settings_of(kw)?,
                args.iter().map(Setting::of).collect::<Result<_>>()?,
            ),
        };
        Ok(ModuleState {
            kind: m.kind().to_string(),
            name: m.name().map(str::to_string),
            options,
            args,
            training: m.is_training(),
            parms: tensors_of(m.own_params())?,
            buffers: tensors_of(m.own_buffers())?,
            frozen: m
                .own_params()
                .iter()
                .filter(|(_, t)| !t.requires_grad())
                .map(|(k, _)| k.clone())
                .collect(),
            children: m
                .children()
                .iter()
                .map(|(k, c)| Ok((k.clone(), ModuleState::of(c)?)))
                .collect::<Result<_>>()?,
        })
    }

    /// Every module of the tree, depth first, with its depth and key path
    /// (`""` for the top, `"0"`, `"0.a"`...).
    pub fn rows(&self) -> Vec<(usize, String, &ModuleState)> {
        let mut out = Vec::new();
        self.walk(0, "", &mut out);
        out
    }

    fn walk<'a>(
        &'a self,
        depth: usize,
        path: &str,
        out: &mut Vec<(usize, String, &'a ModuleState)>,
    ) {
        out.push((depth, path.to_string(), self));
        for (k, c) in &self.children {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            c.walk(depth + 1, &p, out);
        }
    }

    /// Every parameter (`parm`) and buffer of the tree with its full name.
    fn tensors(&self) -> Vec<(&'static str, String, &StateTensor)> {
        let mut out = Vec::new();
        for (_, path, m) in self.rows() {
            let full = |k: &str| {
                if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                }
            };
            out.extend(m.parms.iter().map(|(k, t)| ("parameter", full(k), t)));
            out.extend(m.buffers.iter().map(|(k, t)| ("buffer", full(k), t)));
        }
        out
    }

    /// Keys for this tree's tensors in a checkpoint file: `parm/name`, `buffer/name`.
    pub(crate) fn file_names(&self, names: &mut HashMap<usize, String>) {
        for (what, k, t) in self.tensors() {
            let p = if what == "parameter" {
                "parm"
            } else {
                "buffer"
            };
            names.insert(t as *const StateTensor as usize, format!("{p}/{k}"));
        }
    }

    fn build_tree(&self) -> Result<Module> {
        let kids = self
            .children
            .iter()
            .map(|(k, c)| Ok((Some(k.clone()), c.build_tree()?)))
            .collect::<Result<Vec<_>>>()?;
        let args: Vec<Value> = self.args.iter().map(Setting::value).collect();
        let mut options = values_of(&self.options);
        if self.kind == "parmdict" {
            // a parameter dictionary's parameters are its settings: they are kept
            // once, as parameters, and given back to its builder here
            let parms = self
                .parms
                .iter()
                .map(|(k, t)| (k.clone(), Value::Tensor(t.tensor())));
            options = parms.chain(options).collect();
        }
        let mut m = crate::nn::spec_build(&self.kind, &args, &options, kids)?;
        m.set_name(self.name.clone());
        m.set_training_here(self.training);
        Ok(m)
    }

    /// Builds the module again: from its type and options (checked as a spec is),
    /// then every parameter and buffer copied in after checking that the state has
    /// each one, of the module's shape (the first mismatch is named with both
    /// shapes), and nothing else. Parameters keep the state's dtype.
    pub fn build(&self) -> Result<Module> {
        let m = self.build_tree()?;
        let mut want: Vec<(&str, String, Tensor)> = m
            .named_parameters()
            .into_iter()
            .map(|(k, t)| ("parameter", k, t))
            .collect();
        want.extend(m.named_buffers().into_iter().map(|(k, t)| ("buffer", k, t)));
        let have = self.tensors();
        let mut plan = Vec::with_capacity(want.len());
        for (what, k, t) in &want {
            let v = have
                .iter()
                .find(|(w, n, _)| w == what && n == k)
                .map(|(_, _, v)| &v.0)
                .ok_or_else(|| invalid(format!("the state has no {what} {k}")))?;
            if v.size() != t.size() {
                return Err(invalid(format!(
                    "{what} {k} has shape {:?} in the state, {:?} in the module it describes",
                    v.size(),
                    t.size()
                )));
            }
            crate::tensor::kinds::check(v).map_err(|e| invalid(format!("{what} {k}: {e}")))?;
            plan.push((t.shallow_clone(), v.shallow_clone()));
        }
        if let Some((w, k, _)) = have
            .iter()
            .find(|(w, k, _)| !want.iter().any(|(a, b, _)| a == w && b == k))
        {
            return Err(invalid(format!(
                "the state has {w} {k}, which the module it describes does not"
            )));
        }
        // parameters come back in the state's dtype
        if let Some((_, v)) = plan.iter().find(|(t, _)| t.is_floating_point()) {
            let k = v.f_kind()?;
            if crate::device::is_float(k) && m.float_kind() != Some(k) {
                m.to(&crate::device::Place {
                    kind: Some(k),
                    ..Default::default()
                })?;
            }
        }
        let _g = tch::no_grad_guard();
        for (t, v) in &plan {
            t.shallow_clone().f_copy_(v)?;
        }
        let frozen: Vec<String> = self
            .rows()
            .iter()
            .flat_map(|(_, path, s)| {
                s.frozen.iter().map(move |k| {
                    if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    }
                })
            })
            .collect();
        if !frozen.is_empty() {
            m.freeze(Some(&frozen), None, true)?;
        }
        Ok(m)
    }
}

/// A loss: its type and every setting.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossState {
    /// Loss type (`ce`).
    pub kind: String,
    /// Every setting by name.
    pub options: Vec<(String, Setting)>,
}

impl LossState {
    /// The state of `l`.
    pub fn of(l: &Loss) -> Result<LossState> {
        Ok(LossState {
            kind: l.kind().to_string(),
            options: settings_of(&l.options(true)?)?,
        })
    }

    /// Builds the loss again (settings checked as when a loss is made).
    pub fn build(&self) -> Result<Loss> {
        Loss::new(&self.kind, &[], &values_of(&self.options))
    }
}

/// One parameter of an optimizer: its name in the module it came from (where
/// known), its shape, and its state (step count, buffers such as `exp_avg`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptParmState {
    /// Parameter name (`0.weight`), None where unknown.
    pub name: Option<String>,
    /// Parameter shape.
    pub size: Vec<i64>,
    /// Steps taken.
    pub step: i64,
    /// State buffers by name.
    pub buffers: Vec<(String, StateTensor)>,
}

/// One parameter group of an optimizer: settings and parameters.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptGroupState {
    /// Every setting by name (`lr`, `momentum`...).
    pub options: Vec<(String, Setting)>,
    /// The group's parameters.
    pub parms: Vec<OptParmState>,
}

/// An optimizer: type, defaults, groups with each parameter's state, and
/// lbfgs's history.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptState {
    /// Optimizer type (`adamw`).
    pub kind: String,
    /// Settings for groups added later.
    pub defaults: Vec<(String, Setting)>,
    /// Parameter groups.
    pub groups: Vec<OptGroupState>,
    /// lbfgs's history (empty for the others).
    #[serde(default)]
    pub history: Vec<(String, Setting)>,
}

impl OptState {
    /// The state of `o` (tensors copied to the host). Parameters are named as
    /// the optimizer knows them, else by `named` (a module's named parameters).
    pub fn of(o: &Optimizer, named: &[(String, Tensor)]) -> Result<OptState> {
        let states = o.param_states()?;
        let mut groups = Vec::with_capacity(o.groups());
        for (g, st) in states.into_iter().enumerate() {
            let names = o.param_names(g);
            let params = o.group_params(g);
            let mut parms = Vec::with_capacity(params.len());
            for ((p, n), (step, bufs)) in params.iter().zip(names).zip(st) {
                let name = n.or_else(|| {
                    named
                        .iter()
                        .find(|(_, t)| {
                            t.data_ptr() == p.data_ptr() && t.size() == p.size() && p.numel() > 0
                        })
                        .map(|(k, _)| k.clone())
                });
                parms.push(OptParmState {
                    name,
                    size: p.size(),
                    step,
                    buffers: tensors_of(&bufs)?,
                });
            }
            groups.push(OptGroupState {
                options: settings_of(&o.settings(g))?,
                parms,
            });
        }
        Ok(OptState {
            kind: o.kind().to_string(),
            defaults: settings_of(&o.settings(o.groups()))?,
            groups,
            history: settings_of(&o.history()?)?,
        })
    }

    /// Builds the optimizer again over parameters from `named` (a module's named
    /// parameters, or any tensors with names): by name where the state names every
    /// parameter and `named` has each, else by position (as many parameters as the
    /// state has); every shape must match. Settings are checked as when an optimizer
    /// is made, the state as [`Optimizer::set_states`] checks it.
    pub fn build(&self, named: &[(String, Tensor)]) -> Result<Optimizer> {
        let all: Vec<&OptParmState> = self.groups.iter().flat_map(|g| &g.parms).collect();
        let by_name = all.iter().all(|p| {
            p.name
                .as_ref()
                .is_some_and(|n| named.iter().any(|(k, _)| k == n))
        });
        if !by_name && all.len() != named.len() {
            let missing = all
                .iter()
                .filter_map(|p| p.name.as_ref())
                .find(|n| !named.iter().any(|(k, _)| k == *n));
            return Err(invalid(format!(
                "the optimizer's state has {} parameter(s){}, given {}",
                all.len(),
                missing.map_or(String::new(), |n| format!(" (`{n}` among them)")),
                named.len()
            )));
        }
        let mut pick = Vec::with_capacity(all.len());
        for (i, p) in all.iter().enumerate() {
            let (k, t) = if by_name {
                let n = p.name.as_deref().unwrap_or_default();
                named.iter().find(|(k, _)| k == n).expect("checked above")
            } else {
                &named[i]
            };
            if t.size() != p.size {
                return Err(invalid(format!(
                    "parameter {} has shape {:?} in the optimizer's state, {:?} given ({k})",
                    p.name.as_deref().unwrap_or(k),
                    p.size,
                    t.size()
                )));
            }
            pick.push(t.shallow_clone());
        }
        let mut o = Optimizer::new(&self.kind, Vec::new(), &[], &values_of(&self.defaults))?;
        let mut at = 0;
        for (g, grp) in self.groups.iter().enumerate() {
            let ps: Vec<Tensor> = pick[at..at + grp.parms.len()]
                .iter()
                .map(Tensor::shallow_clone)
                .collect();
            at += grp.parms.len();
            o.add(g as i64, ps, &[], &values_of(&grp.options))?;
        }
        o.name_params(named);
        let states: Vec<Vec<crate::optim::ParmState>> = self
            .groups
            .iter()
            .map(|g| {
                g.parms
                    .iter()
                    .map(|p| {
                        (
                            p.step,
                            p.buffers
                                .iter()
                                .map(|(k, t)| (k.clone(), t.tensor()))
                                .collect(),
                        )
                    })
                    .collect()
            })
            .collect();
        o.set_states(&states, &values_of(&self.history))?;
        Ok(o)
    }
}

/// A pass stopped between batches (Ctrl-C), as the next pass resumes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PausedState {
    /// The next batch to run.
    pub next: i64,
    /// Counts of the metrics kept so far.
    pub counts: Vec<(String, i64)>,
    /// Tensors of the metrics kept so far and the recurrent carry.
    pub tensors: Vec<(String, StateTensor)>,
}

/// A stage's data, in the order it was given (inputs, and targets where given).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataState {
    /// Input tensors.
    pub inputs: Vec<StateTensor>,
    /// Target tensors, None where the data has none.
    pub targets: Option<Vec<StateTensor>>,
}

/// A model's training or test stage: options and where it stands (completed
/// passes, the seeded shuffle generator, the row order in force, a stopped pass),
/// and its data where asked for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageState {
    /// Every option by name.
    pub options: Vec<(String, Setting)>,
    /// Passes completed.
    #[serde(default)]
    pub epochs: i64,
    /// The seeded shuffle generator: seed and state.
    #[serde(default)]
    pub generator: Option<(i64, u64)>,
    /// The row order in force (row `i` holds given row `order[i]`).
    #[serde(default)]
    pub order: Option<StateTensor>,
    /// A pass stopped between batches.
    #[serde(default)]
    pub paused: Option<PausedState>,
    /// The data, when the state was taken with it.
    #[serde(default)]
    pub data: Option<DataState>,
}

impl StageState {
    fn of(st: &Stage, data: bool) -> Result<StageState> {
        let (generator, order) = st.position();
        let data = if data && st.has_data() {
            // in the order given: the row order is put back when the data is defined
            let given = |ts: Vec<Tensor>| -> Result<Vec<StateTensor>> {
                ts.iter()
                    .map(|t| {
                        let t = match &order {
                            Some(p) => {
                                let inv = p.f_argsort(0, false)?.f_to_device(t.device())?;
                                t.f_index_select(0, &inv)?
                            }
                            None => t.shallow_clone(),
                        };
                        StateTensor::copy_of(&t)
                    })
                    .collect()
            };
            Some(DataState {
                inputs: given(st.inputs_full().unwrap_or_default())?,
                targets: st.targets_full().map(given).transpose()?,
            })
        } else {
            None
        };
        Ok(StageState {
            // a process group belongs to this process: the state has none
            options: settings_of(
                &st.opts
                    .all()
                    .into_iter()
                    .map(|(k, v)| {
                        if k == "dist" {
                            (k, Value::Null)
                        } else {
                            (k, v)
                        }
                    })
                    .collect::<Vec<_>>(),
            )?,
            epochs: st.epochs(),
            generator,
            order: order.as_ref().map(StateTensor::copy_of).transpose()?,
            paused: st
                .paused_parts()
                .map(|p| -> Result<PausedState> {
                    Ok(PausedState {
                        next: p.next,
                        counts: p.counts,
                        tensors: tensors_of(&p.tensors)?,
                    })
                })
                .transpose()?,
            data,
        })
    }

    fn put(&self, st: &mut Stage) -> Result<()> {
        if let Some(o) = &self.order {
            let o = &o.0;
            let n = o.numel() as i64;
            let ok = o.dim() == 1
                && o.f_kind()? == Kind::Int64
                && o.f_sort(0, false)?
                    .0
                    .equal(&Tensor::f_arange(n, (Kind::Int64, Device::Cpu))?);
            if !ok {
                return Err(invalid(format!(
                    "the row order must be a permutation of 0..n (a 1-dim int64 tensor), given {} of shape {:?}",
                    crate::tensor::kinds::dtype_name(o),
                    o.size()
                )));
            }
        }
        st.opts.set(&values_of(&self.options))?;
        st.set_epochs(self.epochs);
        st.set_position(self.generator, self.order.as_ref().map(StateTensor::tensor));
        st.set_paused_parts(self.paused.as_ref().map(|p| {
            PausedParts {
                next: p.next,
                counts: p.counts.clone(),
                tensors: p
                    .tensors
                    .iter()
                    .map(|(k, t)| (k.clone(), t.tensor()))
                    .collect(),
            }
        }))?;
        if let Some(d) = &self.data {
            st.set_data(
                d.inputs.iter().map(StateTensor::tensor).collect(),
                d.targets
                    .as_ref()
                    .map(|ts| ts.iter().map(StateTensor::tensor).collect()),
            )?;
        }
        Ok(())
    }
}

/// A model: module, loss, optimizer (state included), and its training and test
/// stages; `rng`, the process's CPU generator, in checkpoints only.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    /// The module tree.
    pub module: ModuleState,
    /// The loss.
    pub loss: LossState,
    /// The optimizer, its parameters named as in the module.
    pub optimizer: OptState,
    /// The training stage.
    pub train: StageState,
    /// The test stage.
    pub test: StageState,
    /// The CPU random generator's state (dropout, unseeded shuffles), put back by
    /// [`ModelState::build`] where present.
    #[serde(default)]
    pub rng: Option<StateTensor>,
}

impl ModelState {
    /// The state of `m`, with its data where `data` is true (without the CPU
    /// generator: see [`ModelState::rng`]). The optimizer's parameters must all be
    /// the module's.
    pub fn of(m: &Model, data: bool) -> Result<ModelState> {
        let q = lock(m.module())?;
        let l = lock(m.loss_fn())?;
        let o = lock(m.optimizer())?;
        let named = q.named_parameters();
        if let Some(p) = o.params().iter().find(|p| {
            !named
                .iter()
                .any(|(_, t)| t.data_ptr() == p.data_ptr() && t.size() == p.size())
        }) {
            return Err(invalid(format!(
                "the optimizer holds parameters outside the model's module (one of shape {:?}): \
                 save the module and the optimizer apart",
                p.size()
            )));
        }
        let mut optimizer = OptState::of(&o, &named)?;
        // named as in this module, whatever the optimizer recorded
        for (p, st) in o
            .params()
            .iter()
            .zip(optimizer.groups.iter_mut().flat_map(|g| g.parms.iter_mut()))
        {
            st.name = named
                .iter()
                .find(|(_, t)| t.data_ptr() == p.data_ptr() && t.size() == p.size())
                .map(|(k, _)| k.clone());
        }
        Ok(ModelState {
            module: ModuleState::of(&q)?,
            loss: LossState::of(&l)?,
            optimizer,
            train: StageState::of(&m.train, data)?,
            test: StageState::of(&m.test, data)?,
            rng: None,
        })
    }

    /// Builds the model again: module, loss, optimizer over the module's parameters
    /// (by name), options, positions and data; then, where the state holds one, puts
    /// the CPU generator back. Nothing outside the new model changes unless all of it
    /// was built.
    pub fn build(&self) -> Result<Model> {
        let q = self.module.build()?;
        let l = self.loss.build()?;
        let o = self.optimizer.build(&q.named_parameters())?;
        let mut m = Model::new(shared(q), shared(l), shared(o));
        self.train.put(&mut m.train)?;
        self.test.put(&mut m.test)?;
        if let Some(r) = &self.rng {
            ktorch_shim::set_cpu_rng_state(&r.0)?;
        }
        Ok(m)
    }
}
