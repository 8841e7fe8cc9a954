//! The `ktorch._ktorch` Python module: argument conversion, handle classes and error mapping over ktorch-core.

/// A train/test pair of Python functions `f(m, *args)` over one
/// implementation that takes the stage's `Phase`:
/// `phase_pair!(imp, /// doc\n train_name, /// doc\n test_name)`; with
/// `watched` first, the functions also take `callback=None, every=1`.
macro_rules! phase_pair {
    ($imp:ident, $(#[$ta:meta])* $train:ident, $(#[$sa:meta])* $test:ident) => {
        phase_pair!(@one $imp, Train, $(#[$ta])* $train);
        phase_pair!(@one $imp, Test, $(#[$sa])* $test);
    };
    (watched $imp:ident, $(#[$ta:meta])* $train:ident, $(#[$sa:meta])* $test:ident) => {
        phase_pair!(@watched $imp, Train, $(#[$ta])* $train);
        phase_pair!(@watched $imp, Test, $(#[$sa])* $test);
    };
    (@watched $imp:ident, $phase:ident, $(#[$a:meta])* $name:ident) => {
        $(#[$a])*
        #[pyfunction]
        #[pyo3(signature = (m, *args, callback=None, every=1))]
        pub fn $name(
            py: Python<'_>,
            m: &Bound<'_, PyAny>,
            args: &Bound<'_, PyTuple>,
            callback: Option<&Bound<'_, PyAny>>,
            every: i64,
        ) -> PyResult<PyObject> {
            let c = $crate::PhaseCall(py, stringify!($name), Phase::$phase, m, args);
            $imp(c, callback, every)
        }
    };
    (@one $imp:ident, $phase:ident, $(#[$a:meta])* $name:ident) => {
        $(#[$a])*
        #[pyfunction]
        #[pyo3(signature = (m, *args))]
        pub fn $name(
            py: Python<'_>,
            m: &Bound<'_, PyAny>,
            args: &Bound<'_, PyTuple>,
        ) -> PyResult<PyObject> {
            $imp($crate::PhaseCall(py, stringify!($name), Phase::$phase, m, args))
        }
    };
}

/// The arguments of a [`phase_pair!`] implementation: Python, the function's
/// name, the stage, the model, the rest of the positional arguments.
pub(crate) struct PhaseCall<'a, 'py>(
    Python<'py>,
    &'static str,
    ktorch_core::model::Phase,
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, pyo3::types::PyTuple>,
);

mod api16;
mod convert;
mod data;
mod device;
mod errors;
mod files;
mod gate;
mod handles;
mod init;
mod loss;
mod module;
mod objects;
mod objstate;
mod opt;
mod parms;
mod run;
mod state;
mod tensor;

use pyo3::prelude::*;

#[pymodule]
fn _ktorch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::quiet_converted_panics();
    // glibc's allocator thresholds for training loops (no page faults per batch);
    // KTORCH_MALLOC=system keeps glibc's own settings
    let tuned = if std::env::var("KTORCH_MALLOC").is_ok_and(|v| v == "system") {
        false
    } else {
        ktorch_core::malloc::tune()
    };
    m.setattr("_malloc_tuned", tuned)?;
    let fin = wrap_pyfunction!(gate::_finalizing, m)?;
    m.py().import("atexit")?.call_method1("register", (fin,))?;
    m.add("KtorchError", m.py().get_type::<errors::KtorchError>())?;
    m.add_class::<handles::Tensor>()?;
    m.add_class::<handles::Vector>()?;
    m.add_class::<handles::Dict>()?;
    m.add_class::<handles::PyModule>()?;
    m.add_class::<handles::PyLoss>()?;
    m.add_class::<handles::PyOptimizer>()?;
    m.add_class::<handles::PyModel>()?;
    m.add_function(wrap_pyfunction!(tensor::tensor, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::vector, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::dict, m)?)?;
    m.add_function(wrap_pyfunction!(objects::free, m)?)?;
    m.add_function(wrap_pyfunction!(objects::addref, m)?)?;
    m.add_function(wrap_pyfunction!(objects::use_, m)?)?;
    m.add_function(wrap_pyfunction!(objects::objclass, m)?)?;
    m.add_function(wrap_pyfunction!(objects::size, m)?)?;
    m.add_function(wrap_pyfunction!(objects::info, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::grad, m)?)?;
    m.add_function(wrap_pyfunction!(objects::seed, m)?)?;
    m.add_function(wrap_pyfunction!(objects::help, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::mul, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::add, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::mean, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::std, m)?)?;
    m.add_function(wrap_pyfunction!(objects::objects, m)?)?;
    m.add_function(wrap_pyfunction!(device::to, m)?)?;
    m.add_function(wrap_pyfunction!(device::copyto, m)?)?;
    m.add_function(wrap_pyfunction!(device::device, m)?)?;
    m.add_function(wrap_pyfunction!(device::dtype, m)?)?;
    m.add_function(wrap_pyfunction!(device::sync, m)?)?;
    m.add_function(wrap_pyfunction!(device::cudadevices, m)?)?;
    m.add_function(wrap_pyfunction!(device::training, m)?)?;
    m.add_function(wrap_pyfunction!(device::freeze, m)?)?;
    m.add_function(wrap_pyfunction!(device::unfreeze, m)?)?;
    m.add_function(wrap_pyfunction!(device::gradflag, m)?)?;
    m.add_function(wrap_pyfunction!(module::module, m)?)?;
    m.add_function(wrap_pyfunction!(module::parmnames, m)?)?;
    m.add_function(wrap_pyfunction!(module::parm, m)?)?;
    m.add_function(wrap_pyfunction!(parms::parms, m)?)?;
    m.add_function(wrap_pyfunction!(parms::buffers, m)?)?;
    m.add_function(wrap_pyfunction!(parms::buffernames, m)?)?;
    m.add_function(wrap_pyfunction!(parms::childnames, m)?)?;
    m.add_function(wrap_pyfunction!(parms::children, m)?)?;
    m.add_function(wrap_pyfunction!(parms::child, m)?)?;
    m.add_function(wrap_pyfunction!(parms::clone, m)?)?;
    m.add_function(wrap_pyfunction!(parms::copyparms, m)?)?;
    m.add_function(wrap_pyfunction!(parms::avgparms, m)?)?;
    m.add_function(wrap_pyfunction!(files::save, m)?)?;
    m.add_function(wrap_pyfunction!(files::load, m)?)?;
    m.add_function(wrap_pyfunction!(objstate::state, m)?)?;
    m.add_function(wrap_pyfunction!(state::state_dict, m)?)?;
    m.add_function(wrap_pyfunction!(state::load_state_dict, m)?)?;
    m.add_function(wrap_pyfunction!(loss::loss, m)?)?;
    m.add_function(wrap_pyfunction!(loss::_lossfn, m)?)?;
    m.add_function(wrap_pyfunction!(loss::_loss_types, m)?)?;
    m.add_function(wrap_pyfunction!(opt::opt, m)?)?;
    m.add_function(wrap_pyfunction!(opt::lr, m)?)?;
    m.add_function(wrap_pyfunction!(run::model, m)?)?;
    m.add_function(wrap_pyfunction!(run::zerograd, m)?)?;
    m.add_function(wrap_pyfunction!(run::nograd, m)?)?;
    m.add_function(wrap_pyfunction!(run::forward, m)?)?;
    m.add_function(wrap_pyfunction!(run::nforward, m)?)?;
    m.add_function(wrap_pyfunction!(run::eforward, m)?)?;
    m.add_function(wrap_pyfunction!(run::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(run::backward, m)?)?;
    m.add_function(wrap_pyfunction!(run::clipv, m)?)?;
    m.add_function(wrap_pyfunction!(run::clip, m)?)?;
    m.add_function(wrap_pyfunction!(run::step, m)?)?;
    m.add_function(wrap_pyfunction!(run::backstep, m)?)?;
    m.add_function(wrap_pyfunction!(run::run, m)?)?;
    m.add_function(wrap_pyfunction!(run::testrun, m)?)?;
    m.add_function(wrap_pyfunction!(data::train, m)?)?;
    m.add_function(wrap_pyfunction!(data::test, m)?)?;
    m.add_function(wrap_pyfunction!(data::data, m)?)?;
    m.add_function(wrap_pyfunction!(data::testdata, m)?)?;
    m.add_function(wrap_pyfunction!(data::input, m)?)?;
    m.add_function(wrap_pyfunction!(data::testinput, m)?)?;
    m.add_function(wrap_pyfunction!(data::target, m)?)?;
    m.add_function(wrap_pyfunction!(data::testtarget, m)?)?;
    m.add_function(wrap_pyfunction!(data::datasize, m)?)?;
    m.add_function(wrap_pyfunction!(data::testsize, m)?)?;
    m.add_function(wrap_pyfunction!(data::batch, m)?)?;
    m.add_function(wrap_pyfunction!(data::testbatch, m)?)?;
    m.add_function(wrap_pyfunction!(data::restore, m)?)?;
    m.add_function(wrap_pyfunction!(data::testrestore, m)?)?;
    m.add_function(wrap_pyfunction!(data::batchinit, m)?)?;
    m.add_function(wrap_pyfunction!(data::testinit, m)?)?;
    m.add_function(wrap_pyfunction!(data::shuffle, m)?)?;
    m.add_function(wrap_pyfunction!(data::unshuffle, m)?)?;
    m.add_function(wrap_pyfunction!(init::zeros, m)?)?;
    m.add_function(wrap_pyfunction!(init::ones, m)?)?;
    m.add_function(wrap_pyfunction!(init::fill, m)?)?;
    m.add_function(wrap_pyfunction!(init::eye, m)?)?;
    m.add_function(wrap_pyfunction!(init::dirac, m)?)?;
    m.add_function(wrap_pyfunction!(init::orthogonal, m)?)?;
    m.add_function(wrap_pyfunction!(init::xnormal, m)?)?;
    m.add_function(wrap_pyfunction!(init::xuniform, m)?)?;
    m.add_function(wrap_pyfunction!(init::knormal, m)?)?;
    m.add_function(wrap_pyfunction!(init::kuniform, m)?)?;
    m.add_function(wrap_pyfunction!(init::snormal, m)?)?;
    m.add_function(wrap_pyfunction!(init::normal, m)?)?;
    m.add_function(wrap_pyfunction!(init::uniform, m)?)?;
    m.add_function(wrap_pyfunction!(init::cauchy, m)?)?;
    m.add_function(wrap_pyfunction!(init::exponential, m)?)?;
    m.add_function(wrap_pyfunction!(init::geometric, m)?)?;
    m.add_function(wrap_pyfunction!(init::lognormal, m)?)?;
    m.add_function(wrap_pyfunction!(init::random, m)?)?;
    m.add_function(wrap_pyfunction!(init::gain, m)?)?;
    m.add_function(wrap_pyfunction!(api16::names, m)?)?;
    m.add_function(wrap_pyfunction!(api16::moduletypes, m)?)?;
    m.add_function(wrap_pyfunction!(api16::parmtypes, m)?)?;
    m.add_function(wrap_pyfunction!(api16::kforward, m)?)?;
    m.add_function(wrap_pyfunction!(api16::str_, m)?)?;
    m.add_function(wrap_pyfunction!(api16::batchnorm, m)?)?;
    m.add_function(wrap_pyfunction!(api16::cudadevice, m)?)?;
    m.add_function(wrap_pyfunction!(api16::bcelogit1, m)?)?;
    m.add_function(wrap_pyfunction!(api16::bcelogit2, m)?)?;
    Ok(())
}
