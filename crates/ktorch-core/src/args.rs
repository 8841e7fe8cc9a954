//! Positional and keyword settings of modules, losses and optimizers, checked by name.

use crate::error::{err, Named, Result};
use crate::value::Value;

/// Settings by name.
type ByName = Vec<(String, Value)>;

thread_local! {
    /// While [`named_settings`] runs its builder: the settings of the first
    /// [`Args::parse`] by name (the outer `Option`: capturing; the inner: captured).
    static NAMED: std::cell::RefCell<Option<Option<ByName>>> =
        const { std::cell::RefCell::new(None) };
    /// While [`described`] runs its builder: every setting of the first
    /// [`Args::parse`], with the value given or the default its accessor used.
    static DESCRIBED: std::cell::RefCell<Option<Option<Described>>> =
        const { std::cell::RefCell::new(None) };
}

/// The settings of one [`Args::parse`]: declared names, values given, and the
/// defaults the builder's accessors fell back on.
#[derive(Debug)]
struct Described {
    names: Vec<&'static str>,
    vals: Vec<Option<Value>>,
}

/// Runs `build` and returns, with its result, every setting the first
/// [`Args::parse`] declares, in declaration order, each with the value given or
/// else the default the builder used ([`Value::Null`] where the builder reads the
/// setting without a plain default, e.g. a stride that follows the size). None
/// when `build` parses no settings. `help` reads a type's options this way from
/// the builder itself, so the defaults shown are the ones used.
pub fn described<T>(build: impl FnOnce() -> T) -> (T, Option<Vec<(String, Value)>>) {
    let outer = DESCRIBED.with(|d| d.borrow_mut().replace(None));
    let r = build();
    let got = DESCRIBED.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    let got = got.flatten().map(|d| {
        d.names
            .iter()
            .zip(d.vals)
            .map(|(k, v)| (k.to_string(), v.unwrap_or(Value::Null)))
            .collect()
    });
    (r, got)
}

/// Records `named` as the settings by name of the module being built (for a
/// builder that reads its settings without [`Args::parse`]).
pub(crate) fn record_named(named: Vec<(String, Value)>) {
    NAMED.with(|n| {
        if let Some(slot @ None) = n.borrow_mut().as_mut() {
            *slot = Some(named);
        }
    });
}

/// Runs `build` and returns, with its result, the settings its first [`Args::parse`]
/// matched, each by its declared name (positional ones named too), in declaration
/// order: how a module's options read back. Nested captures keep their own.
pub(crate) fn named_settings<T>(build: impl FnOnce() -> T) -> (T, Option<Vec<(String, Value)>>) {
    let outer = NAMED.with(|n| n.borrow_mut().replace(None));
    let r = build();
    let got = NAMED.with(|n| std::mem::replace(&mut *n.borrow_mut(), outer));
    (r, got.flatten())
}

/// Settings given to a constructor: each declared name takes at most one value,
/// given by position (in declaration order) or by name.
#[derive(Debug, Clone)]
pub struct Args {
    kind: String,
    names: Vec<&'static str>,
    vals: Vec<Option<Value>>,
    /// True for the parse that [`described`] records.
    described: bool,
}

impl Args {
    /// Matches positional and keyword values to the declared `names`.
    pub fn parse(
        kind: &str,
        names: &[&'static str],
        pos: &[Value],
        kw: &[(String, Value)],
    ) -> Result<Args> {
        if pos.len() > names.len() {
            return Err(err(
                kind,
                format!(
                    "expecting at most {} positional setting(s), given {}",
                    names.len(),
                    pos.len()
                ),
            ));
        }
        let mut vals: Vec<Option<Value>> = vec![None; names.len()];
        for (i, v) in pos.iter().enumerate() {
            if !v.is_null() {
                vals[i] = Some(v.clone());
            }
        }
        for (k, v) in kw {
            let i = names.iter().position(|n| n == k).ok_or_else(|| {
                err(
                    kind,
                    format!(
                        "unrecognized option: {k}, expecting one of: {}",
                        names.join(", ")
                    ),
                )
            })?;
            if i < pos.len() && !pos[i].is_null() {
                return Err(err(
                    kind,
                    format!("option {k} given by position and by name"),
                ));
            }
            vals[i] = if v.is_null() { None } else { Some(v.clone()) };
        }
        NAMED.with(|n| {
            let mut n = n.borrow_mut();
            if let Some(slot @ None) = n.as_mut() {
                *slot = Some(
                    names
                        .iter()
                        .zip(&vals)
                        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
                        .collect(),
                );
            }
        });
        let described = DESCRIBED.with(|d| {
            let mut d = d.borrow_mut();
            match d.as_mut() {
                Some(slot @ None) => {
                    *slot = Some(Described {
                        names: names.to_vec(),
                        vals: vals.clone(),
                    });
                    true
                }
                _ => false,
            }
        });
        Ok(Args {
            kind: kind.to_string(),
            names: names.to_vec(),
            vals,
            described,
        })
    }

    /// The name of what is being built (module, loss or optimizer type),
    /// which starts every message.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    fn idx(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("undeclared setting {name}"))
    }

    /// The value given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vals[self.idx(name)].as_ref()
    }

    /// Notes `default` as the value of `name` where none was given (for [`described`]).
    fn note(&self, name: &str, default: impl FnOnce() -> Value) {
        if !self.described || self.get(name).is_some() {
            return;
        }
        let i = self.idx(name);
        DESCRIBED.with(|d| {
            if let Some(Some(d)) = d.borrow_mut().as_mut() {
                if d.vals[i].is_none() {
                    d.vals[i] = Some(default());
                }
            }
        });
    }

    /// True if a value was given for `name`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn required(&self, name: &str) -> Result<&Value> {
        self.get(name)
            .ok_or_else(|| err(&self.kind, format!("{name} not defined")))
    }

    /// A required integer.
    pub fn req_int(&self, name: &str) -> Result<i64> {
        self.required(name)?.as_int(name).named(&self.kind)
    }

    /// A required integer greater than zero.
    pub fn req_pos(&self, name: &str) -> Result<i64> {
        let n = self.req_int(name)?;
        if n <= 0 {
            return Err(err(
                &self.kind,
                format!("{name} must be positive, given {n}"),
            ));
        }
        Ok(n)
    }

    /// An integer with a default.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.note(name, || Value::Int(default));
        self.get(name)
            .map_or(Ok(default), |v| v.as_int(name).named(&self.kind))
    }

    /// An integer greater than zero, with a default.
    pub fn pos_int(&self, name: &str, default: i64) -> Result<i64> {
        let n = self.int(name, default)?;
        if n <= 0 {
            return Err(err(
                &self.kind,
                format!("{name} must be positive, given {n}"),
            ));
        }
        Ok(n)
    }

    /// A number with a default.
    pub fn float(&self, name: &str, default: f64) -> Result<f64> {
        self.note(name, || Value::Float(default));
        self.get(name)
            .map_or(Ok(default), |v| v.as_float(name).named(&self.kind))
    }

    /// A number that must lie in `[lo, hi]`.
    pub fn float_in(&self, name: &str, default: f64, lo: f64, hi: f64) -> Result<f64> {
        let f = self.float(name, default)?;
        if !(lo..=hi).contains(&f) {
            return Err(err(
                &self.kind,
                format!("{name} must be in the range {lo}-{hi}, given {f}"),
            ));
        }
        Ok(f)
    }

    /// A non-negative number.
    pub fn nonneg(&self, name: &str, default: f64) -> Result<f64> {
        let f = self.float(name, default)?;
        if f.is_nan() || f < 0.0 {
            return Err(err(
                &self.kind,
                format!("{name} must be non-negative, given {f}"),
            ));
        }
        Ok(f)
    }

    /// A flag with a default.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        self.note(name, || Value::Bool(default));
        self.get(name)
            .map_or(Ok(default), |v| v.as_bool(name).named(&self.kind))
    }

    /// An optional symbol.
    pub fn str(&self, name: &str) -> Result<Option<String>> {
        self.get(name)
            .map(|v| v.as_str(name).named(&self.kind).map(str::to_string))
            .transpose()
    }

    /// A symbol from a fixed set, with a default.
    pub fn choice(&self, name: &str, default: &str, allowed: &[&str]) -> Result<String> {
        self.note(name, || Value::Str(default.to_string()));
        let s = self.str(name)?.unwrap_or_else(|| default.to_string());
        if !allowed.contains(&s.as_str()) {
            return Err(err(
                &self.kind,
                format!(
                    "{name}: unrecognized value `{s}`, expecting one of: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(s)
    }

    /// An integer or a list of `n` integers (one integer is repeated `n` times).
    pub fn ints(&self, name: &str, n: usize, default: Option<i64>) -> Result<Vec<i64>> {
        if let Some(d) = default {
            self.note(name, || Value::Int(d));
        }
        match self.get(name) {
            None => match default {
                Some(d) => Ok(vec![d; n]),
                None => Err(err(&self.kind, format!("{name} not defined"))),
            },
            Some(v) => {
                let xs = v.as_ints(name).named(&self.kind)?;
                match xs.len() {
                    1 => Ok(vec![xs[0]; n]),
                    k if k == n => Ok(xs),
                    k => Err(err(
                        &self.kind,
                        format!("{name} expects 1 or {n} values, given {k}"),
                    )),
                }
            }
        }
    }

    /// A list of integers of any length.
    pub fn int_list(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.get(name)
            .map(|v| v.as_ints(name).named(&self.kind))
            .transpose()
    }

    /// An optional tensor (numbers and lists become double tensors).
    pub fn tensor(&self, name: &str) -> Result<Option<tch::Tensor>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Tensor(t)) => Ok(Some(t.shallow_clone())),
            Some(v) => {
                let xs = v.as_floats(name).named(&self.kind)?;
                Ok(Some(
                    tch::Tensor::from_slice(&xs).f_to_kind(tch::Kind::Float)?,
                ))
            }
        }
    }
}

/// Splits trailing option dictionaries from positional values.
pub fn split_options(mut xs: Vec<Value>) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut kw = Vec::new();
    while let Some(Value::Dict(_)) = xs.last() {
        if let Some(Value::Dict(d)) = xs.pop() {
            let mut d = d;
            d.extend(kw);
            kw = d;
        }
    }
    (xs, kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_and_keyword() {
        let a = Args::parse(
            "linear",
            &["in", "out", "bias"],
            &[Value::Int(2), Value::Int(3)],
            &[("bias".into(), Value::Bool(false))],
        )
        .expect("parse");
        assert_eq!(a.req_int("in").expect("in"), 2);
        assert!(!a.bool("bias", true).expect("bias"));
    }

    #[test]
    fn unknown_option_named() {
        let e = Args::parse("linear", &["in"], &[], &[("foo".into(), Value::Int(1))])
            .expect_err("unknown");
        assert!(e
            .to_string()
            .starts_with("linear: unrecognized option: foo"));
    }

    #[test]
    fn too_many_positional() {
        let e = Args::parse(
            "relu",
            &["inplace"],
            &[Value::Bool(true), Value::Int(1)],
            &[],
        )
        .expect_err("many");
        assert!(e.to_string().contains("at most 1"));
    }
}
