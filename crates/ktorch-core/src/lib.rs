//! ktorch-core: the ktorch training api on libtorch, for Rust programs and the Python module.
//!
//! A [`Model`] holds a [`Module`], a [`Loss`] and an [`Optimizer`], each a
//! [`Shared`] object (other holders, such as a second model or a handle in the
//! Python module, may share it), with training and test stages: options and
//! data. [`Model::run`] trains one pass over the batches of the training data
//! and returns the metrics asked for; [`Model::testrun`] evaluates.
//!
//! ```
//! use ktorch_core::model::Metric;
//! use ktorch_core::nn::layers;
//! use ktorch_core::sync::shared;
//! use ktorch_core::{Loss, Model, Module, Optimizer, Value};
//! use tch::{Device, Kind, Tensor};
//!
//! fn main() -> ktorch_core::Result<()> {
//!     // ("sequential", ("linear", 2, 16), "relu", ("linear", 16, 3)) as a spec value
//!     // (Module::from_value), or built with the typed constructors:
//!     let q = Module::sequential([layers::linear(2, 16)?, layers::relu()?, layers::linear(16, 3)?])?;
//!     let o = Optimizer::new("sgd", q.parameters(), &[Value::Float(0.1), Value::Float(0.9)], &[])?;
//!     let l = Loss::new("ce", &[], &[])?;
//!     let mut m = Model::new(shared(q), shared(l), shared(o));
//!
//!     m.train_options()
//!         .batchsize(50)?
//!         .shuffle(true)?
//!         .metrics(&[Metric::Loss, Metric::Accuracy])?;
//!     let x = Tensor::randn([500, 2], (Kind::Float, Device::Cpu));
//!     let y = x.sum_dim_intlist(1, false, Kind::Float).gt(0.0).to_kind(Kind::Int64);
//!     m.train.set_data(vec![x], Some(vec![y]))?;
//!
//!     for epoch in 0..10 {
//!         let r = m.run()?;
//!         let loss = r[0].1.as_ref().map_or(f64::NAN, |t| t.double_value(&[]));
//!         let accuracy = r[1].1.as_ref().map_or(f64::NAN, |t| t.double_value(&[]));
//!         println!("epoch {epoch}: loss {loss:.4}, accuracy {accuracy:.1}%");
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Objects shared between threads are reached through [`sync::lock`]: objects
//! that share tensors share a lock domain, so a run in one thread and a
//! gradient read-out in another never touch the same tensor at once.
//! `examples/spirals.rs` trains the spiral example; `examples/steps.rs` writes
//! the training loop by hand with the explicit steps.
#![warn(missing_docs)]

pub(crate) mod amp;
pub mod args;
pub mod autograd;
pub mod checkpoint;
pub mod clip;
pub mod device;
pub mod dist;
pub mod error;
pub mod init;
pub mod loss;
pub mod malloc;
pub mod model;
pub mod nn;
pub mod optim;
pub mod params;
pub mod printed;
pub mod state;
pub mod sync;
pub mod tensor;
pub mod value;

pub use error::{Error, Result};
pub use loss::Loss;
pub use model::{Model, Shared};
pub use nn::Module;
pub use optim::Optimizer;
pub use params::Params;
pub use tensor::Tensors;
pub use value::Value;
