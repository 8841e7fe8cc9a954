//! Modules: a tree of named layers owning their parameters and buffers.

mod activation;
mod attention;
mod container;
mod conv;
mod dropout;
mod embed;
mod fns;
mod fold;
mod help;
pub mod layers;
mod linear;
mod localnorm;
mod nbeats;
mod norm;
mod padding;
mod pool;
mod recurrent;
mod seq;
mod shape;
mod spec;
mod state;
#[cfg(test)]
mod testutil;
mod transform;
mod transformer;

use std::sync::Arc;

use tch::Tensor;

use crate::error::{err, invalid, Error, Result};
use crate::value::Value;

pub use help::{module_example, module_help};
pub use spec::Spec;

/// Whether a tensor of size `from` broadcasts to size `to` (numpy's rule, one way).
pub(crate) fn broadcasts(from: &[i64], to: &[i64]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(a, b)| a == b || *a == 1)
}

/// A forward function written outside the core (a Python callable): it gets
/// the callback module (for its parameters) and the inputs. Any closure of
/// that shape is one; a type of its own can be found again with
/// [`Module::callbacks`] and a downcast (`&**f as &dyn Any`).
pub trait Callback: Send + Sync + std::any::Any {
    /// Runs the forward calculation.
    fn call(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>>;
}

impl<F> Callback for F
where
    F: Fn(&Module, &[Tensor]) -> Result<Vec<Tensor>> + Send + Sync + 'static,
{
    fn call(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        self(m, xs)
    }
}

/// A shared forward function for callback modules.
pub type CallbackFn = Arc<dyn Callback>;

/// A forward function as a spec value: `("callback", name, callable(f), ...)`.
pub fn callable(f: CallbackFn) -> Value {
    Value::Callable(Arc::new(f))
}

/// The computation of one module type; parameters and children live in the
/// [`Module`] that holds the layer.
pub trait Layer: Send + Sync + std::fmt::Debug {
    /// Runs the forward calculation, returning one or more outputs.
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>>;
    /// A copy of the layer's settings.
    fn clone_box(&self) -> Box<dyn Layer>;
    /// The forward function of a callback layer.
    fn callback(&self) -> Option<&CallbackFn> {
        None
    }
    /// The layer as `Any`, for a parent whose forward reads a child's settings
    /// (a transformer layer its attention's heads); None where no parent needs it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A module: a layer with its parameters, buffers and child modules.
#[derive(Debug)]
pub struct Module {
    kind: String,
    name: Option<String>,
    params: Vec<(String, Tensor)>,
    buffers: Vec<(String, Tensor)>,
    children: Vec<(String, Module)>,
    training: bool,
    layer: Box<dyn Layer>,
    /// The settings it was built with (`args`, `kw`; not the device), to save and
    /// build again; None for a module made otherwise.
    made: Option<Made>,
}

/// Settings by position and by name, borrowed.
pub type Settings<'a> = (&'a [Value], &'a [(String, Value)]);

/// A module's settings by position and by name, as its spec gave them.
#[derive(Debug, Clone)]
pub(crate) struct Made {
    args: Vec<Value>,
    kw: Vec<(String, Value)>,
    /// The same settings, each by its name (None where the builder names none).
    named: Option<Vec<(String, Value)>>,
}

/// Builds a module of type `kind` as a spec does (the checkpoint reader's way in).
pub(crate) fn spec_build(
    kind: &str,
    args: &[Value],
    kw: &[(String, Value)],
    children: Vec<(Option<String>, Module)>,
) -> Result<Module> {
    spec::build_layer(kind, args, kw, children)
}

impl Clone for Module {
    /// A shallow copy: the copy shares parameter and buffer storage.
    fn clone(&self) -> Self {
        Module {
            kind: self.kind.clone(),
            name: self.name.clone(),
            params: self
                .params
                .iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect(),
            buffers: self
                .buffers
                .iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect(),
            children: self.children.clone(),
            training: self.training,
            layer: self.layer.clone_box(),
            made: self.made.clone(),
        }
    }
}

impl Module {
    /// A module of the given type around a layer; parameters, buffers and
    /// children are added with the `with_*` builders.
    pub fn new(kind: &str, layer: impl Layer + 'static) -> Module {
        Module {
            kind: kind.to_string(),
            name: None,
            params: Vec::new(),
            buffers: Vec::new(),
            children: Vec::new(),
            training: true,
            layer: Box::new(layer),
            made: None,
        }
    }

    /// Builds a module from its spec (see [`Spec`]).
    pub fn from_value(v: &Value) -> Result<Module> {
        Spec::parse(v)?.build()
    }

    /// A module of type `kind` with positional settings and keyword options,
    /// as the api writes them: `Module::layer("conv2d", &[3.into(), 16.into(),
    /// 3.into()], &[("pad".into(), 1.into())])`.
    pub fn layer(kind: &str, settings: &[Value], options: &[(String, Value)]) -> Result<Module> {
        spec::build_layer(kind, settings, options, Vec::new())
    }

    /// A container of type `kind` (`sequential`, `seqjoin`...) holding
    /// `children`, each under its own name or else its position.
    pub fn container(kind: &str, children: impl IntoIterator<Item = Module>) -> Result<Module> {
        let kids = children
            .into_iter()
            .map(|m| (m.name().map(str::to_string), m))
            .collect();
        spec::build_layer(kind, &[], &[], kids)
    }

    /// A sequential container: each child's first output is the next one's input.
    /// `Module::sequential([layers::linear(2, 16)?, layers::relu()?, layers::linear(16, 3)?])`.
    pub fn sequential(children: impl IntoIterator<Item = Module>) -> Result<Module> {
        Module::container("sequential", children)
    }

    /// The module, named (its key in a container).
    pub fn named(mut self, name: &str) -> Module {
        self.set_name(Some(name.to_string()));
        self
    }

    /// Adds a learnable parameter (gradients are turned on).
    pub fn with_param(mut self, name: &str, t: Tensor) -> Result<Module> {
        let t = t.f_set_requires_grad(true)?;
        self.params.push((name.to_string(), t));
        Ok(self)
    }

    /// Adds a buffer (state that is not learned, e.g. running statistics).
    pub fn with_buffer(mut self, name: &str, t: Tensor) -> Module {
        self.buffers.push((name.to_string(), t));
        self
    }

    /// Adds a child module under `name`.
    pub fn with_child(mut self, name: &str, m: Module) -> Module {
        self.children.push((name.to_string(), m));
        self
    }

    /// The module's layer as type `T`, where the layer offers itself ([`Layer::as_any`]).
    pub(crate) fn layer_as<T: 'static>(&self) -> Option<&T> {
        self.layer.as_any().and_then(|a| a.downcast_ref::<T>())
    }

    /// The module type, e.g. `linear`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name given to the module in its spec, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn set_name(&mut self, name: Option<String>) {
        self.name = name;
    }

    /// The module's own parameters, in order.
    pub fn own_params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The module's own buffers, in order.
    pub fn own_buffers(&self) -> &[(String, Tensor)] {
        &self.buffers
    }

    /// The module's own parameter at position `i` (in the order its layer declared them).
    pub fn param_at(&self, i: usize) -> Result<&Tensor> {
        self.params
            .get(i)
            .map(|(_, t)| t)
            .ok_or_else(|| err(&self.kind, format!("no parameter at position {i}")))
    }

    /// The module's own buffer at position `i` (in the order its layer declared them).
    pub fn buffer_at(&self, i: usize) -> Result<&Tensor> {
        self.buffers
            .get(i)
            .map(|(_, t)| t)
            .ok_or_else(|| err(&self.kind, format!("no buffer at position {i}")))
    }

    /// The module's own parameter called `name`, if any.
    pub fn own_param(&self, name: &str) -> Option<&Tensor> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, t)| t)
    }

    /// The forward functions of every callback layer in the tree.
    pub fn callbacks(&self) -> Vec<CallbackFn> {
        let mut out: Vec<CallbackFn> = self.layer.callback().into_iter().cloned().collect();
        for (_, c) in &self.children {
            out.extend(c.callbacks());
        }
        out
    }

    /// Child modules with their names.
    pub fn children(&self) -> &[(String, Module)] {
        &self.children
    }

    /// The settings by position and by name the module was built with (None for a
    /// module not built from a spec).
    pub fn made(&self) -> Option<Settings<'_>> {
        self.made
            .as_ref()
            .map(|m| (m.args.as_slice(), m.kw.as_slice()))
    }

    /// The settings the module was built with, each by its name, positional ones
    /// included (`linear` with 2, 3: `in` 2, `out` 3), in the order the module
    /// declares them; `dtype` last where given. A spec of these alone, by name,
    /// builds the same module. None for a module not built from a spec.
    pub fn options(&self) -> Option<Vec<(String, Value)>> {
        let m = self.made.as_ref()?;
        match &m.named {
            Some(n) => Some(n.clone()),
            None if m.args.is_empty() => Some(m.kw.clone()),
            None => None,
        }
    }

    /// Records the settings the module was built with (`named`: the same by name).
    pub(crate) fn set_made(
        &mut self,
        args: &[Value],
        kw: &[(String, Value)],
        named: Option<Vec<(String, Value)>>,
    ) {
        self.made = Some(Made {
            args: args.to_vec(),
            kw: kw.to_vec(),
            named,
        });
    }

    /// Sets this module's own training flag, not its children's.
    pub(crate) fn set_training_here(&mut self, on: bool) {
        self.training = on;
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Sets training (true) or evaluation (false) mode for the whole tree.
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
        for (_, c) in &mut self.children {
            c.set_training(on);
        }
    }

    /// All parameters with their full dotted names, as PyTorch names them.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.collect("", &mut out, &|m| &m.params);
        out
    }

    /// All buffers with their full dotted names.
    pub fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.collect("", &mut out, &|m| &m.buffers);
        out
    }

    fn collect(
        &self,
        prefix: &str,
        out: &mut Vec<(String, Tensor)>,
        pick: &dyn Fn(&Module) -> &Vec<(String, Tensor)>,
    ) {
        for (k, t) in pick(self) {
            out.push((format!("{prefix}{k}"), t.shallow_clone()));
        }
        for (k, c) in &self.children {
            c.collect(&format!("{prefix}{k}."), out, pick);
        }
    }

    /// The dtype of the module's floating-point parameters (the first one's),
    /// None for a module without any.
    pub fn float_kind(&self) -> Option<tch::Kind> {
        self.named_parameters()
            .iter()
            .find(|(_, t)| t.is_floating_point())
            .and_then(|(_, t)| t.f_kind().ok())
    }

    /// Data in the module's floating dtype. `owned[i]` says whether the caller
    /// handed tensor `i` over (data copied from numpy or a list): a floating
    /// tensor of another floating dtype is then converted; a tensor the caller
    /// shares (a torch.Tensor) is never converted, and a floating dtype other
    /// than the module's is an [`Error::Invalid`] naming both (`what`: inputs,
    /// targets). Integer, boolean and complex tensors pass as they are.
    pub fn conform(&self, xs: Vec<Tensor>, owned: &[bool], what: &str) -> Result<Vec<Tensor>> {
        let Some(k) = self.float_kind() else {
            return Ok(xs);
        };
        let mut out = Vec::with_capacity(xs.len());
        for (i, x) in xs.into_iter().enumerate() {
            if !x.is_floating_point() || x.f_kind().ok() == Some(k) {
                out.push(x);
            } else if owned.get(i).copied().unwrap_or(false) {
                out.push(x.f_to_kind(k)?);
            } else {
                return Err(invalid(format!(
                    "{what} are torch.{}, the module's parameters torch.{}: convert the data \
                     (torch.Tensor data is shared, never converted) or the module",
                    crate::tensor::kinds::dtype_name(&x),
                    crate::tensor::kinds::kind_dtype_name(k)
                )));
            }
        }
        Ok(out)
    }

    /// The parameters (with their gradients) and buffers, to move or convert.
    pub(crate) fn movable(&self) -> Vec<Tensor> {
        let mut ts = self.parameters();
        ts.extend(self.named_buffers().into_iter().map(|(_, t)| t));
        crate::clip::distinct(ts)
    }

    /// Moves or converts every parameter (with its gradient) and buffer as `p`
    /// says (`to(q, "cuda")`); each parameter keeps its identity, so optimizers
    /// and models sharing it see it moved. A failed call changes nothing.
    pub fn to(&self, p: &crate::device::Place) -> Result<()> {
        p.check_floating()?;
        crate::device::convert_in_place(&self.movable(), p)
    }

    /// Where the module lives: its first parameter's device (or first buffer's);
    /// None for a module with neither.
    pub fn device(&self) -> Option<tch::Device> {
        self.params
            .iter()
            .chain(&self.buffers)
            .find(|(_, t)| t.defined())
            .map(|(_, t)| t.device())
            .or_else(|| self.children.iter().find_map(|(_, c)| c.device()))
    }

    /// `xs` where the module can take them: host tensors copied to the module's
    /// GPU; tensors on another device than the module's are an error naming both.
    pub fn place(&self, xs: Vec<Tensor>, what: &str) -> Result<Vec<Tensor>> {
        let dev = crate::device::placement(&xs, self.device(), what)?;
        crate::device::place(xs, dev)
    }

    /// Turns gradients off (`frozen`, the original's `freeze`) or on (`unfreeze`)
    /// for the named parameters, every parameter where `names` is None, first
    /// copying `values` into them where given (one each, of the parameter's size
    /// or a single value to fill it). Frozen parameters lose their gradient, so
    /// no optimizer moves them (weight decay included) and no clipping counts
    /// them. Names and values are checked before anything changes.
    pub fn freeze(
        &self,
        names: Option<&[String]>,
        values: Option<&[Tensor]>,
        frozen: bool,
    ) -> Result<()> {
        let all = self.named_parameters();
        let picked: Vec<(String, Tensor)> = match names {
            None => all,
            Some(ns) => {
                let known: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
                ns.iter()
                    .map(|n| {
                        all.iter()
                            .find(|(k, _)| k == n)
                            .map(|(k, t)| (k.clone(), t.shallow_clone()))
                            .ok_or_else(|| {
                                invalid(crate::error::unrecognized(
                                    "parameter name",
                                    "parameter",
                                    n,
                                    &known,
                                ))
                            })
                    })
                    .collect::<Result<_>>()?
            }
        };
        if let Some(vs) = values {
            if vs.len() != picked.len() {
                return Err(invalid(format!(
                    "{} parameter name(s) but {} value(s)",
                    picked.len(),
                    vs.len()
                )));
            }
            for ((k, p), v) in picked.iter().zip(vs) {
                crate::tensor::kinds::check(v)?;
                if v.numel() != 1 && v.size() != p.size() {
                    return Err(invalid(format!(
                        "parameter `{k}` has size {:?}, given {:?}",
                        p.size(),
                        v.size()
                    )));
                }
            }
            let _g = tch::no_grad_guard();
            let conv = picked
                .iter()
                .zip(vs)
                .map(|((_, p), v)| Ok(v.f_to_device_(p.device(), p.f_kind()?, false, false)?))
                .collect::<Result<Vec<_>>>()?;
            for ((_, p), v) in picked.iter().zip(&conv) {
                let v = if v.numel() == 1 && v.size() != p.size() {
                    v.f_reshape([0i64; 0].as_slice())?
                        .f_expand(p.size(), false)?
                } else {
                    v.shallow_clone()
                };
                p.shallow_clone().f_copy_(&v)?;
            }
        }
        let ts: Vec<Tensor> = picked.into_iter().map(|(_, t)| t).collect();
        for t in &ts {
            let _ = t.f_set_requires_grad(!frozen)?;
        }
        if frozen {
            ktorch_shim::release_grads(&ts)?;
        }
        Ok(())
    }

    /// The child at `path`: names joined by dots (`encoder.layers.0`), each a
    /// child's name or its position among its parent's children.
    pub fn child(&self, path: &str) -> Result<&Module> {
        let mut m = self;
        for part in path.split('.') {
            let found = m.children.iter().find(|(k, _)| k == part).map(|(_, c)| c);
            let found = found.or_else(|| {
                part.parse::<usize>()
                    .ok()
                    .and_then(|i| m.children.get(i).map(|(_, c)| c))
            });
            m = found.ok_or_else(|| {
                let known: Vec<&str> = m.children.iter().map(|(k, _)| k.as_str()).collect();
                invalid(if known.is_empty() {
                    format!("no child `{path}`: module `{}` has no children", m.kind)
                } else {
                    crate::error::unrecognized("child name", "child", part, &known)
                })
            })?;
        }
        Ok(m)
    }

    /// The child at `path` (as [`Module::child`] finds it), to change in place.
    pub fn child_mut(&mut self, path: &str) -> Result<&mut Module> {
        self.child(path)?;
        let mut m = self;
        for part in path.split('.') {
            let i = m
                .children
                .iter()
                .position(|(k, _)| k == part)
                .or_else(|| part.parse::<usize>().ok())
                .filter(|i| *i < m.children.len())
                .ok_or_else(|| invalid(format!("no child `{path}`")))?;
            m = &mut m.children[i].1;
        }
        Ok(m)
    }

    /// Every module of the tree with its dotted name, as PyTorch's
    /// `named_modules`: the module itself first (named `""`), then each
    /// descendant, depth first, in the order the children were given.
    pub fn named_modules(&self) -> Vec<(String, &Module)> {
        fn walk<'a>(m: &'a Module, prefix: &str, out: &mut Vec<(String, &'a Module)>) {
            for (k, c) in &m.children {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push((name.clone(), c));
                walk(c, &name, out);
            }
        }
        let mut out = vec![(String::new(), self)];
        walk(self, "", &mut out);
        out
    }

    /// Rebuilds the module's layer with some settings changed (by name, e.g. a
    /// batchnorm's `momentum`), keeping its parameters, buffers, children, name
    /// and training flag; the new settings are checked as for a new module, and
    /// a failed call changes nothing. For modules built from a spec, without
    /// children.
    pub fn set_options(&mut self, changes: &[(String, Value)]) -> Result<()> {
        let mut kw = self.options().ok_or_else(|| {
            err(
                &self.kind,
                "settings unknown: the module was not built from a spec",
            )
        })?;
        for (k, v) in changes {
            match kw.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => kw.push((k.clone(), v.clone())),
            }
        }
        let fresh = spec::build_layer(&self.kind, &[], &kw, Vec::new())?;
        self.layer = fresh.layer;
        self.made = fresh.made;
        Ok(())
    }

    /// A deep copy (`clone`): the same tree, settings, training flag and gradient
    /// flags, with every parameter and buffer copied to new memory.
    pub fn deep_clone(&self) -> Result<Module> {
        let copy = |ts: &[(String, Tensor)]| -> Result<Vec<(String, Tensor)>> {
            let _g = tch::no_grad_guard();
            ts.iter()
                .map(|(k, t)| {
                    let c = if t.defined() {
                        t.f_detach_copy()?.f_set_requires_grad(t.requires_grad())?
                    } else {
                        Tensor::new()
                    };
                    Ok((k.clone(), c))
                })
                .collect()
        };
        Ok(Module {
            kind: self.kind.clone(),
            name: self.name.clone(),
            params: copy(&self.params)?,
            buffers: copy(&self.buffers)?,
            children: self
                .children
                .iter()
                .map(|(k, c)| Ok((k.clone(), c.deep_clone()?)))
                .collect::<Result<_>>()?,
            training: self.training,
            layer: self.layer.clone_box(),
            made: self.made.clone(),
        })
    }

    /// Copies values into the parameters of the same names (`copyparms(m, d)`), each
    /// of the parameter's size or one that broadcasts to it (a scalar resets a whole
    /// array); names that are not parameters are ignored. Returns each parameter's
    /// name and whether a value was copied into it. Every value is checked before any
    /// parameter changes.
    pub fn copy_params(&self, values: &[(String, Tensor)]) -> Result<Vec<(String, bool)>> {
        let ps = self.named_parameters();
        let mut plan = Vec::new();
        for (k, p) in &ps {
            let Some((_, v)) = values.iter().find(|(n, _)| n == k) else {
                continue;
            };
            crate::tensor::kinds::check(v)?;
            if !broadcasts(&v.size(), &p.size()) {
                return Err(invalid(format!(
                    "parameter `{k}` has size {:?}, given {:?}, which does not broadcast to it",
                    p.size(),
                    v.size()
                )));
            }
            let v = v.f_to_device_(p.device(), p.f_kind()?, false, false)?;
            plan.push((p.shallow_clone(), v));
        }
        let _g = tch::no_grad_guard();
        for (p, v) in &plan {
            p.shallow_clone().f_copy_(v)?;
        }
        Ok(ps
            .into_iter()
            .map(|(k, _)| {
                let hit = values.iter().any(|(n, _)| *n == k);
                (k, hit)
            })
            .collect())
    }

    /// Adds the parameters to the running average kept in dictionary `avg`
    /// (`avgparms(m, d)`, weight averaging): member `.n` counts the values averaged
    /// (1 when absent: the dictionary then holds one copy, as `copyparms` makes it),
    /// each member named as a parameter moves to `avg + (p - avg) / (n + 1)` in place.
    /// Returns the new count. Sizes are checked before any member changes.
    pub fn average_params(&self, avg: &mut crate::tensor::Tensors) -> Result<i64> {
        const N: &str = ".n";
        if avg.class() != crate::tensor::Class::Dict {
            return Err(invalid(
                "expecting a dictionary of parameters to average into",
            ));
        }
        let n = match avg.names().iter().position(|k| k == N) {
            Some(i) => {
                let v = avg.items()[i].f_double_value(&[])?;
                if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0) {
                    return Err(invalid(format!(
                        "`.n` must count the values averaged, given {v}"
                    )));
                }
                v as i64
            }
            None => 1,
        };
        let ps = self.named_parameters();
        let mut pairs = Vec::new();
        for (k, p) in &ps {
            if let Some(i) = avg.names().iter().position(|n| n == k) {
                let a = &avg.items()[i];
                if a.size() != p.size() || !a.is_floating_point() {
                    return Err(invalid(format!(
                        "`{k}`: the average has size {:?} and dtype {}, the parameter {:?}",
                        a.size(),
                        crate::tensor::kind_name(a.f_kind()?),
                        p.size()
                    )));
                }
                pairs.push((a.shallow_clone(), p.shallow_clone()));
            }
        }
        let _g = tch::no_grad_guard();
        let w = 1.0 / (n + 1) as f64;
        for (a, p) in &pairs {
            let p = p.f_to_device_(a.device(), a.f_kind()?, false, false)?;
            let _ = a.shallow_clone().f_add_(&p.f_sub(a)?.f_mul_scalar(w)?)?;
        }
        let count = Tensor::from((n + 1) as f64);
        avg.insert(N, count)?;
        Ok(n + 1)
    }

    /// Copies of the parameters (`copyparms(m)`): new memory, no gradients.
    pub fn copy_of_params(&self) -> Result<Vec<(String, Tensor)>> {
        let _g = tch::no_grad_guard();
        self.named_parameters()
            .into_iter()
            .map(|(k, t)| Ok((k, t.f_detach_copy()?)))
            .collect()
    }

    /// Each parameter's name and whether it takes gradients (`gradflag`).
    pub fn gradflags(&self) -> Vec<(String, bool)> {
        self.named_parameters()
            .into_iter()
            .map(|(k, t)| (k, t.requires_grad()))
            .collect()
    }

    /// All parameters (shallow copies sharing storage and gradients).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Parameter names in order.
    pub fn parmnames(&self) -> Vec<String> {
        self.named_parameters()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// The parameter (or buffer) with the given full name.
    pub fn param(&self, name: &str) -> Result<Tensor> {
        self.named_parameters()
            .into_iter()
            .chain(self.named_buffers())
            .find(|(k, _)| k == name)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                invalid(format!(
                    "parameter `{name}` not found, expecting one of: {}",
                    self.parmnames().join(", ")
                ))
            })
    }

    /// Copies `value` into the named parameter: of the parameter's shape, or a
    /// single value that fills it (`parm(q, "bias", 0.0001)`); the dtype is converted.
    pub fn set_param(&self, name: &str, value: &Tensor) -> Result<()> {
        let mut p = self.param(name)?;
        crate::tensor::kinds::check(value)?;
        let fill = value.numel() == 1 && p.size() != value.size();
        if p.size() != value.size() && !fill {
            return Err(invalid(format!(
                "parameter `{name}` has size {:?}, given {:?}",
                p.size(),
                value.size()
            )));
        }
        let _g = tch::no_grad_guard();
        let mut v = value.f_to_kind(p.kind())?.f_to_device(p.device())?;
        if fill {
            v = v
                .f_reshape([0i64; 0].as_slice())?
                .f_expand(p.size(), false)?;
        }
        p.f_copy_(&v)?;
        Ok(())
    }

    /// Runs the forward calculation.
    pub fn forward(&self, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.layer.forward(self, xs)
    }

    /// Forward, keeping the first output (an error if there is none).
    pub fn forward_first(&self, xs: &[Tensor]) -> Result<Tensor> {
        let mut out = self.forward(xs)?;
        if out.is_empty() {
            return Err(err(&self.kind, "forward returned no output"));
        }
        Ok(out.swap_remove(0))
    }
}

/// Checks the count of inputs given to a layer's forward.
pub(crate) fn want_inputs(kind: &str, xs: &[Tensor], lo: usize, hi: usize) -> Result<()> {
    if xs.is_empty() && lo > 0 {
        return Err(err(kind, "forward(tensor) not implemented given empty"));
    }
    if xs.len() < lo || xs.len() > hi {
        let expect = if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}-{hi}")
        };
        let given = if xs.is_empty() {
            "empty".to_string()
        } else {
            format!("{} tensor(s)", xs.len())
        };
        return Err(err(
            kind,
            format!("forward expects {expect} input tensor(s), given {given}"),
        ));
    }
    Ok(())
}

/// Uniform values in `[-bound, bound]`, as PyTorch's default initialisers draw them.
pub(crate) fn uniform(size: &[i64], bound: f64) -> Result<Tensor> {
    let t = Tensor::f_empty(size, (tch::Kind::Float, tch::Device::Cpu))?;
    let _g = tch::no_grad_guard();
    Ok(t.f_uniform(-bound, bound)?)
}

/// Values from PyTorch's default normal initialiser: mean 0, standard deviation 1.
pub(crate) fn normal(size: &[i64]) -> Result<Tensor> {
    let mut t = Tensor::f_empty(size, (tch::Kind::Float, tch::Device::Cpu))?;
    let _g = tch::no_grad_guard();
    let _ = t.f_normal_(0.0, 1.0)?;
    Ok(t)
}

/// A float tensor filled with `v` (weights of ones, biases of zeros).
pub(crate) fn filled(size: &[i64], v: f64) -> Result<Tensor> {
    Ok(Tensor::f_full(
        size,
        v,
        (tch::Kind::Float, tch::Device::Cpu),
    )?)
}

/// The error for a type name a family does not build.
pub(crate) fn unknown(kind: &str) -> Error {
    err(
        "module",
        crate::error::unrecognized("module type", "module", kind, &module_types()),
    )
}

/// The count of spatial dimensions named by a type's suffix: `conv2d` -> 2.
pub(crate) fn dims(kind: &str) -> usize {
    match kind.as_bytes() {
        [.., b'1', b'd'] => 1,
        [.., b'2', b'd'] => 2,
        [.., b'3', b'd'] => 3,
        _ => 0,
    }
}

/// True when setting `name` is given explicitly as null (where null means
/// something other than the default, e.g. batchnorm's momentum).
pub(crate) fn null_given(
    names: &[&str],
    name: &str,
    pos: &[Value],
    kw: &[(String, Value)],
) -> bool {
    let by_pos = names
        .iter()
        .position(|n| *n == name)
        .and_then(|i| pos.get(i))
        .is_some_and(Value::is_null);
    by_pos || kw.iter().any(|(k, v)| k == name && v.is_null())
}

/// The names of every module type the catalogue builds.
pub fn module_types() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = container::TYPES.to_vec();
    for f in spec::PARENTS {
        v.extend_from_slice(f.0);
    }
    for f in spec::FAMILIES {
        v.extend_from_slice(f.0);
    }
    v
}

impl crate::sync::Share for Module {}
