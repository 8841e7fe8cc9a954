//! ktorch-core: the ktorch training api on libtorch, for Rust programs and the Python module.
#![warn(missing_docs)]

pub mod args;
pub mod autograd;
pub mod clip;
pub mod error;
pub mod loss;
pub mod model;
pub mod nn;
pub mod optim;
pub mod sync;
pub mod tensor;
pub mod value;

pub use error::{Error, Result};
pub use loss::Loss;
pub use model::{Model, Shared};
pub use nn::Module;
pub use optim::Optimizer;
pub use tensor::Tensors;
pub use value::Value;
