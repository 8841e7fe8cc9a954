//! The argument language of the api: symbols, numbers, flags, lists, dicts, tensors and null.

use crate::error::{invalid, Result};

/// One argument value, as Python (or a Rust program) hands it to the core.
pub enum Value {
    /// `None` / q null.
    Null,
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A symbol (name).
    Str(String),
    /// A list (a Python list).
    List(Vec<Value>),
    /// A tuple (a Python tuple): a module spec, or a selection of data members.
    Tuple(Vec<Value>),
    /// A dictionary with string keys, in the order given.
    Dict(Vec<(String, Value)>),
    /// A tensor (array data).
    Tensor(tch::Tensor),
    /// A function (a callback module's forward function, see
    /// `nn::callable`), opaque here: whoever takes it knows its type.
    Callable(std::sync::Arc<dyn std::any::Any + Send + Sync>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "`{s}"),
            Value::List(v) => f.debug_list().entries(v).finish(),
            Value::Tuple(v) => f.debug_tuple("").field(v).finish(),
            Value::Dict(d) => f
                .debug_map()
                .entries(d.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Tensor(t) => write!(f, "tensor{:?}", t.size()),
            Value::Callable(_) => f.write_str("<callable>"),
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(v) => Value::List(v.clone()),
            Value::Tuple(v) => Value::Tuple(v.clone()),
            Value::Dict(d) => Value::Dict(d.clone()),
            Value::Tensor(t) => Value::Tensor(t.shallow_clone()),
            Value::Callable(c) => Value::Callable(c.clone()),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::Dict(a), Value::Dict(b)) => a == b,
            _ => false,
        }
    }
}

/// `f` as an i64 when it is finite, integral and within [-2**63, 2**63), else None.
pub fn float_to_int(f: f64) -> Option<i64> {
    // -2**63 and 2**63 are exact in f64; every integral f64 in between converts exactly
    const LIM: f64 = 9_223_372_036_854_775_808.0;
    if f.is_finite() && f.fract() == 0.0 && (-LIM..LIM).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl Value {
    /// A short name of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Tensor(_) => "tensor",
            Value::Callable(_) => "callable",
        }
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an integer: a float is accepted when it is finite, integral
    /// and within the 64-bit range (it is never rounded or saturated).
    pub fn as_int(&self, what: &str) -> Result<i64> {
        match self {
            Value::Int(i) => Ok(*i),
            Value::Float(f) => float_to_int(*f).ok_or_else(|| {
                invalid(if !f.is_finite() {
                        format!("{what} expects an integer, given float {f}")
                    } else if f.fract() != 0.0 {
                        format!("{what} expects an integer, given float")
                    } else {
                        format!(
                            "{what} expects an integer, given float {f:e}, outside the 64-bit integer range"
                        )
                    }
                )
            }),
            Value::Tensor(t) if t.numel() == 1 && !t.is_floating_point() => {
                Ok(t.f_int64_value(&[])?)
            }
            v => Err(invalid(format!("{what} expects an integer, given {}", v.type_name()),
            )),
        }
    }

    /// The value as a float.
    pub fn as_float(&self, what: &str) -> Result<f64> {
        match self {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Tensor(t) if t.numel() == 1 && t.dim() == 0 => Ok(t.f_double_value(&[])?),
            v => Err(invalid(format!(
                "{what} expects a number, given {}",
                v.type_name()
            ))),
        }
    }

    /// The value as a flag.
    pub fn as_bool(&self, what: &str) -> Result<bool> {
        match self {
            Value::Bool(b) => Ok(*b),
            v => Err(invalid(format!(
                "{what} expects a boolean, given {}",
                v.type_name()
            ))),
        }
    }

    /// The value as a symbol.
    pub fn as_str(&self, what: &str) -> Result<&str> {
        match self {
            Value::Str(s) => Ok(s),
            v => Err(invalid(format!(
                "{what} expects a symbol, given {}",
                v.type_name()
            ))),
        }
    }

    /// The value as a list of integers (a single integer is a list of one).
    pub fn as_ints(&self, what: &str) -> Result<Vec<i64>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v.iter().map(|x| x.as_int(what)).collect(),
            Value::Tensor(t) if t.dim() == 1 && !t.is_floating_point() => {
                Ok(Vec::<i64>::try_from(t)?)
            }
            v => Ok(vec![v.as_int(what)?]),
        }
    }

    /// The value as a list of floats (a single number is a list of one).
    pub fn as_floats(&self, what: &str) -> Result<Vec<f64>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v.iter().map(|x| x.as_float(what)).collect(),
            Value::Tensor(t) if t.dim() == 1 => {
                Ok(Vec::<f64>::try_from(&t.f_to_kind(tch::Kind::Double)?)?)
            }
            v => Ok(vec![v.as_float(what)?]),
        }
    }

    /// The value as a list of symbols (a single symbol is a list of one).
    pub fn as_strs(&self, what: &str) -> Result<Vec<String>> {
        match self {
            Value::List(v) | Value::Tuple(v) => v
                .iter()
                .map(|x| x.as_str(what).map(str::to_string))
                .collect(),
            v => Ok(vec![v.as_str(what)?.to_string()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_become_integers_only_when_exact() {
        let int = |f: f64| Value::Float(f).as_int("value");
        assert_eq!(int(3.0).expect("3"), 3);
        assert_eq!(int(-0.0).expect("-0"), 0);
        assert_eq!(int(-9_223_372_036_854_775_808.0).expect("min"), i64::MIN);
        assert_eq!(
            int(9_223_372_036_854_774_784.0).expect("largest below 2**63"),
            9_223_372_036_854_774_784
        );
        for f in [
            1e300,
            -1e300,
            9_223_372_036_854_775_808.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            2.5,
            1e-300,
        ] {
            let e = int(f).expect_err("refused");
            assert!(
                e.to_string()
                    .starts_with("value expects an integer, given float"),
                "{f}: {e}"
            );
        }
        assert_eq!(
            int(1e300).expect_err("range").to_string(),
            "value expects an integer, given float 1e300, outside the 64-bit integer range"
        );
        assert_eq!(
            int(f64::INFINITY).expect_err("inf").to_string(),
            "value expects an integer, given float inf"
        );
        assert_eq!(Value::Int(i64::MAX).as_int("x").expect("int"), i64::MAX);
    }
}
