//! Typed constructors for the common layers, for Rust programs: each builds
//! the same module as its spec (`("linear", 784, 10)` is `linear(784, 10)`),
//! with the same checks and defaults.
//!
//! ```
//! use ktorch_core::nn::{layers, Module};
//! # fn main() -> ktorch_core::Result<()> {
//! let q = Module::sequential([
//!     layers::linear(2, 16)?,
//!     layers::relu()?,
//!     layers::dropout(0.1)?,
//!     layers::linear(16, 3)?,
//! ])?;
//! assert_eq!(q.parmnames(), ["0.weight", "0.bias", "3.weight", "3.bias"]);
//! # Ok(())
//! # }
//! ```

use crate::error::Result;
use crate::nn::Module;
use crate::value::Value;

fn ints(xs: &[i64]) -> Vec<Value> {
    xs.iter().map(|x| Value::Int(*x)).collect()
}

/// `("linear", inputs, outputs)`: `y = x W^T + b`.
pub fn linear(inputs: i64, outputs: i64) -> Result<Module> {
    Module::layer("linear", &ints(&[inputs, outputs]), &[])
}

/// `("linear", inputs, outputs, {"bias": false})`.
pub fn linear_nobias(inputs: i64, outputs: i64) -> Result<Module> {
    Module::layer(
        "linear",
        &ints(&[inputs, outputs]),
        &[("bias".into(), Value::Bool(false))],
    )
}

/// `("embed", rows, cols)`: an embedding table.
pub fn embed(rows: i64, cols: i64) -> Result<Module> {
    Module::layer("embed", &ints(&[rows, cols]), &[])
}

/// `("conv2d", inputs, outputs, size)`.
pub fn conv2d(inputs: i64, outputs: i64, size: i64) -> Result<Module> {
    Module::layer("conv2d", &ints(&[inputs, outputs, size]), &[])
}

/// `("maxpool2d", size)`.
pub fn maxpool2d(size: i64) -> Result<Module> {
    Module::layer("maxpool2d", &ints(&[size]), &[])
}

/// `("batchnorm1d", features)`.
pub fn batchnorm1d(features: i64) -> Result<Module> {
    Module::layer("batchnorm1d", &ints(&[features]), &[])
}

/// `("batchnorm2d", channels)`.
pub fn batchnorm2d(channels: i64) -> Result<Module> {
    Module::layer("batchnorm2d", &ints(&[channels]), &[])
}

/// `("drop", p)`: dropout with probability `p`.
pub fn dropout(p: f64) -> Result<Module> {
    Module::layer("drop", &[Value::Float(p)], &[])
}

/// `"flatten"`.
pub fn flatten() -> Result<Module> {
    Module::layer("flatten", &[], &[])
}

/// `"relu"`.
pub fn relu() -> Result<Module> {
    Module::layer("relu", &[], &[])
}

/// `"tanh"`.
pub fn tanh() -> Result<Module> {
    Module::layer("tanh", &[], &[])
}

/// `"sigmoid"`.
pub fn sigmoid() -> Result<Module> {
    Module::layer("sigmoid", &[], &[])
}

/// `("lstm", inputs, hidden)`.
pub fn lstm(inputs: i64, hidden: i64) -> Result<Module> {
    Module::layer("lstm", &ints(&[inputs, hidden]), &[])
}

/// `("gru", inputs, hidden)`.
pub fn gru(inputs: i64, hidden: i64) -> Result<Module> {
    Module::layer("gru", &ints(&[inputs, hidden]), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_layers_equal_their_specs() {
        let spec = Value::List(vec![
            "sequential".into(),
            Value::Tuple(vec!["linear".into(), Value::Int(4), Value::Int(8)]),
            "relu".into(),
            Value::Tuple(vec!["lstm".into(), Value::Int(8), Value::Int(5)]),
        ]);
        let a = Module::from_value(&spec).expect("spec");
        let b = Module::sequential([
            linear(4, 8).expect("linear"),
            relu().expect("relu"),
            lstm(8, 5).expect("lstm"),
        ])
        .expect("sequential");
        assert_eq!(a.parmnames(), b.parmnames());
        let sizes = |m: &Module| {
            m.named_parameters()
                .into_iter()
                .map(|(_, t)| t.size())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&a), sizes(&b));
        let e = linear(0, -3).expect_err("bad sizes");
        assert!(e.to_string().starts_with("linear:"), "{e}");
        let named = Module::sequential([relu().expect("relu").named("act")]).expect("seq");
        assert_eq!(named.children()[0].0, "act");
    }
}
