//! Module specs: `"relu"`, `("linear", "a", 64, 20, {"bias": False})`, and lists
//! `[container, child, child, ...]`, parsed into a tree and built by type name.

use crate::args::split_options;
use crate::error::{err, invalid, Result};
use crate::nn::{
    activation, attention, container, conv, dropout, embed, fns, fold, linear, localnorm, nbeats,
    norm, padding, pool, recurrent, shape, transform, transformer, Module,
};
use crate::value::Value;

/// What a spec gives a family's builder: the module type and its settings.
pub(crate) struct Given<'a> {
    /// Module type.
    pub kind: &'a str,
    /// Positional settings.
    pub pos: &'a [Value],
    /// Keyword settings.
    pub kw: &'a [(String, Value)],
}

/// A leaf family's builder.
pub(crate) type Builder = fn(&Given) -> Result<Module>;

/// Each leaf family's type names and builder (containers, the one family
/// with children, are built by [`container::build`]).
pub(crate) const FAMILIES: &[(&[&str], Builder)] = &[
    (linear::TYPES, linear::build),
    (conv::TYPES, conv::build),
    (pool::TYPES, pool::build),
    (norm::TYPES, norm::build),
    (dropout::TYPES, dropout::build),
    (activation::TYPES, activation::build),
    (recurrent::TYPES, recurrent::build),
    (shape::TYPES, shape::build),
    (padding::TYPES, padding::build),
    (fns::TYPES, fns::build),
    (transform::TYPES, transform::build),
    (embed::TYPES, embed::build),
    (fold::TYPES, fold::build),
    (localnorm::TYPES, localnorm::build),
    (attention::TYPES, attention::build),
    (transformer::TYPES, transformer::build),
];

/// A builder of modules that hold the children a spec gives them.
pub(crate) type ParentBuilder = fn(&Given, Vec<(String, Module)>) -> Result<Module>;

/// Types beyond the containers whose children come from the spec (`nbeats`: its blocks).
pub(crate) const PARENTS: &[(&[&str], ParentBuilder)] = &[(nbeats::TYPES, nbeats::build)];

/// Types with an option of their own called `dtype` (onehot: the output's), which
/// is then not the dtype of the module's parameters.
const OWN_DTYPE: &[&str] = &["onehot"];

/// A parsed module spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Module type.
    pub kind: String,
    /// Name given in the spec.
    pub name: Option<String>,
    /// Positional settings.
    pub args: Vec<Value>,
    /// Keyword settings (the trailing dict).
    pub kw: Vec<(String, Value)>,
    /// Child specs (for containers).
    pub children: Vec<Spec>,
}

impl Spec {
    /// Parses a spec value.
    pub fn parse(v: &Value) -> Result<Spec> {
        match v {
            Value::Str(s) => Ok(Spec { kind: s.clone(), name: None, args: vec![], kw: vec![], children: vec![] }),
            Value::Tuple(items) => {
                let kind = match items.first() {
                    Some(Value::Str(s)) => s.clone(),
                    Some(x) => return Err(err("module", format!("expecting module type as a symbol, given {}", x.type_name()))),
                    None => return Err(err("module", "empty module spec")),
                };
                let mut rest: Vec<Value> = items[1..].to_vec();
                let name = match rest.first() {
                    Some(Value::Str(s)) => {
                        let s = s.clone();
                        rest.remove(0);
                        Some(s)
                    }
                    _ => None,
                };
                let (args, kw) = split_options(rest);
                Ok(Spec { kind, name, args, kw, children: vec![] })
            }
            Value::List(items) => {
                let (first, rest) = items.split_first().ok_or_else(|| err("module", "empty module list"))?;
                let mut s = Spec::parse(first)?;
                for c in rest {
                    s.children.push(Spec::parse(c)?);
                }
                Ok(s)
            }
            x => Err(err("module", format!("expecting a module type, a (type, settings...) tuple or a list of them, given {}", x.type_name()))),
        }
    }

    /// Builds the module tree.
    pub fn build(&self) -> Result<Module> {
        let mut m = build_layer(
            &self.kind,
            &self.args,
            &self.kw,
            self.children
                .iter()
                .map(|c| Ok((c.name.clone(), c.build()?)))
                .collect::<Result<Vec<_>>>()?,
        )?;
        m.set_name(self.name.clone());
        Ok(m)
    }
}

/// Builds a module of type `kind` with its settings and children (each with
/// its name, or its position when it has none).
pub(crate) fn build_layer(
    kind: &str,
    args: &[Value],
    kw: &[(String, Value)],
    children: Vec<(Option<String>, Module)>,
) -> Result<Module> {
    let mut kids: Vec<(String, Module)> = Vec::with_capacity(children.len());
    for (i, (name, m)) in children.into_iter().enumerate() {
        let key = name.unwrap_or_else(|| i.to_string());
        if kids.iter().any(|(k, _)| *k == key) {
            return Err(err(kind, format!("child name `{key}` used twice")));
        }
        kids.push((key, m));
    }
    // the options every module takes: where its parameters live and their dtype
    let (placed, kw): (Vec<_>, Vec<_>) = kw
        .iter()
        .cloned()
        .partition(|(k, _)| k == "device" || (k == "dtype" && !OWN_DTYPE.contains(&kind)));
    let place = placement(kind, &placed)?;
    let (m, named) = crate::args::named_settings(|| build_unplaced(kind, args, &kw, kids));
    let mut m = m?;
    // recorded to save and build again: the dtype goes with the settings, the device not
    let dtype: Vec<_> = placed
        .iter()
        .filter(|(k, _)| k == "dtype")
        .cloned()
        .collect();
    let mut made = kw.clone();
    made.extend(dtype.iter().cloned());
    let named = named.map(|mut n| {
        n.extend(dtype);
        n
    });
    m.set_made(args, &made, named);
    if place != crate::device::Place::default() {
        m.to(&place).map_err(|e| e.named(kind))?;
    }
    Ok(m)
}

/// The `device` and `dtype` options of a module spec.
fn placement(kind: &str, kw: &[(String, Value)]) -> Result<crate::device::Place> {
    let mut p = crate::device::Place::default();
    for (k, v) in kw {
        let name = v.as_str(k).map_err(|e| e.named(kind))?;
        if k == "device" {
            p.device = Some(
                crate::tensor::device_here(name)
                    .and_then(|d| {
                        d.ok_or_else(|| {
                            invalid(format!(
                                "unrecognized device: {name}, expecting cpu, cuda or cuda:<index>"
                            ))
                        })
                    })
                    .map_err(|e| e.named(kind))?,
            );
        } else {
            p.kind = Some(
                crate::tensor::kind_from_name(name)
                    .ok_or_else(|| {
                        invalid(crate::error::unrecognized(
                            "dtype",
                            "dtype",
                            name,
                            &["float", "double", "half", "bfloat"],
                        ))
                    })
                    .map_err(|e| e.named(kind))?,
            );
        }
    }
    p.check_floating().map_err(|e| e.named(kind))?;
    Ok(p)
}

fn build_unplaced(
    kind: &str,
    args: &[Value],
    kw: &[(String, Value)],
    kids: Vec<(String, Module)>,
) -> Result<Module> {
    let g = Given {
        kind,
        pos: args,
        kw,
    };
    if container::TYPES.contains(&kind) {
        return container::build(&g, kids);
    }
    if let Some((_, b)) = PARENTS.iter().find(|(names, _)| names.contains(&kind)) {
        return b(&g, kids);
    }
    let builder = FAMILIES
        .iter()
        .find(|(names, _)| names.contains(&kind))
        .map(|(_, b)| *b)
        .ok_or_else(|| super::unknown(kind))?;
    let m = builder(&g)?;
    if kids.is_empty() {
        Ok(m)
    } else {
        adopt(m, kids)
    }
}

/// A module that builds its own children (`embedseq`: `tok` and `pos`) given
/// children, as its state rebuilds it: they take the place of the ones it built
/// when they have the same names, types, parameters and buffers (by name and
/// size); any other module cannot hold children.
fn adopt(mut m: Module, kids: Vec<(String, Module)>) -> Result<Module> {
    let kind = m.kind().to_string();
    if m.children.is_empty() {
        return Err(err(&kind, "not a container, cannot hold child modules"));
    }
    let shapes = |c: &Module| -> Vec<(String, Vec<i64>)> {
        c.named_parameters()
            .into_iter()
            .chain(c.named_buffers())
            .map(|(k, t)| (k, t.size()))
            .collect()
    };
    let same = kids.len() == m.children.len()
        && kids
            .iter()
            .zip(&m.children)
            .all(|((k, c), (k0, c0))| k == k0 && c.kind() == c0.kind() && shapes(c) == shapes(c0));
    if !same {
        let own: Vec<String> = m
            .children
            .iter()
            .map(|(k, c)| format!("{k} ({})", c.kind()))
            .collect();
        return Err(err(
            &kind,
            format!(
                "builds its own child modules, {}: children given must match them and their options",
                own.join(", ")
            ),
        ));
    }
    m.children = kids;
    Ok(m)
}
