//! Tensor options (dtype, device, gradient) and the creation modes randn, zeros, arange ...

use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};
use crate::value::Value;

/// Options given with a tensor: dtype, device and gradient flag.
#[derive(Debug, Clone, Copy, Default)]
pub struct TensorOptions {
    /// Data type, if given.
    pub kind: Option<Kind>,
    /// Device, if given.
    pub device: Option<Device>,
    /// Track gradients (`grad`), or not (`nograd`); None where neither was given.
    pub grad: Option<bool>,
}

/// The api's dtype names.
const KIND_NAMES: [&str; 12] = [
    "float", "double", "half", "bfloat", "long", "int", "short", "byte", "char", "bool", "cfloat",
    "cdouble",
];

/// The dtype called `name` (`float`, `double`, `long` ...).
pub fn kind_from_name(name: &str) -> Option<Kind> {
    Some(match name {
        "float" => Kind::Float,
        "double" => Kind::Double,
        "half" => Kind::Half,
        "bfloat" => Kind::BFloat16,
        "long" => Kind::Int64,
        "int" => Kind::Int,
        "short" => Kind::Int16,
        "byte" => Kind::Uint8,
        "char" => Kind::Int8,
        "bool" => Kind::Bool,
        "cfloat" => Kind::ComplexFloat,
        "cdouble" => Kind::ComplexDouble,
        _ => return None,
    })
}

/// The api's name for a dtype.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::Half => "half",
        Kind::BFloat16 => "bfloat",
        Kind::Int64 => "long",
        Kind::Int => "int",
        Kind::Int16 => "short",
        Kind::Uint8 => "byte",
        Kind::Int8 => "char",
        Kind::Bool => "bool",
        Kind::ComplexFloat => "cfloat",
        Kind::ComplexDouble => "cdouble",
        _ => "other",
    }
}

/// The device called `name` (`cpu`, `cuda`, `cuda:1`).
///
/// A CUDA name first registers libtorch's CUDA backend ([`ktorch_shim::cuda::register`]),
/// which a pure-Rust program's libtorch lacks until then (the Python module's torch has
/// loaded it already); when it cannot be registered (loading failed, or libtorch was asked
/// about CUDA before), the error says why.
pub fn device_from_name(name: &str) -> Result<Option<Device>> {
    Ok(Some(match name {
        "cpu" => Device::Cpu,
        "cuda" => {
            cuda_backend()?;
            Device::Cuda(default_cuda())
        }
        s if s.starts_with("cuda:") => {
            let i: usize = s[5..]
                .parse()
                .map_err(|_| invalid(format!("unrecognized device: {s}")))?;
            cuda_backend()?;
            Device::Cuda(i)
        }
        _ => return Ok(None),
    }))
}

/// The index of the CUDA device that `cuda` names (0 unless [`set_default_cuda`] changed it).
static DEFAULT_CUDA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The index of the CUDA device the generic name `cuda` means (the original's `cudadevice()`).
pub fn default_cuda() -> usize {
    DEFAULT_CUDA.load(std::sync::atomic::Ordering::SeqCst)
}

/// Makes `cuda` mean CUDA device `i` from now on (the original's `cudadevice(`cuda:i)`);
/// an error for a device this process does not have.
pub fn set_default_cuda(i: usize) -> Result<()> {
    let count = tch::Cuda::device_count();
    if i64::try_from(i).map_or(true, |i| i >= count) {
        return Err(invalid(format!(
            "device cuda:{i} not available ({count} CUDA device(s))"
        )));
    }
    DEFAULT_CUDA.store(i, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// The device called `name` where this process has it: None for a name that is
/// not a device's, an error for a device this machine lacks (`cuda:99`).
pub fn device_here(name: &str) -> Result<Option<Device>> {
    let Some(d) = device_from_name(name)? else {
        return Ok(None);
    };
    if let Device::Cuda(i) = d {
        let count = tch::Cuda::device_count();
        if i as i64 >= count {
            return Err(invalid(format!(
                "device {name} not available ({count} CUDA device(s))"
            )));
        }
    }
    Ok(Some(d))
}

/// Registers the CUDA backend; an error when the build has one that could not be registered
/// (a build without one is left to libtorch's own messages).
fn cuda_backend() -> Result<()> {
    use ktorch_shim::cuda::{backend, Backend};
    match backend() {
        b @ (Backend::Failed(_) | Backend::TooLate(_)) => Err(invalid(format!(
            "CUDA backend not registered: {}",
            b.problem().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// True when a CUDA device can be used (the CUDA backend registered first, see
/// [`device_from_name`]).
pub fn cuda_available() -> bool {
    ktorch_shim::cuda::is_available()
}

/// The api's name for a device.
///
/// tch reads a tensor's device through a C wrapper that answers `Mps` for MPS and for
/// every device type tch has no variant for; on a libtorch without MPS the one such
/// device a tensor can be on is `meta` (shapes without data), so `Mps` is named
/// `meta` there.
pub fn device_name(d: Device) -> String {
    device_name_with(d, tch::utils::has_mps())
}

fn device_name_with(d: Device, has_mps: bool) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) if i == default_cuda() => "cuda".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps if has_mps => "mps".into(),
        Device::Mps => "meta".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

impl TensorOptions {
    /// Reads option names: `grad`, a dtype name, a device name.
    pub fn parse(names: &[String]) -> Result<TensorOptions> {
        let mut o = TensorOptions::default();
        for n in names {
            if n == "grad" {
                o.grad = Some(true);
            } else if n == "nograd" {
                o.grad = Some(false);
            } else if let Some(k) = kind_from_name(n) {
                o.kind = Some(k);
            } else if let Some(d) = device_here(n)? {
                o.device = Some(d);
            } else {
                let mut known = vec!["grad", "nograd", "cpu", "cuda"];
                known.extend(KIND_NAMES);
                let near = crate::error::closest(n, &known);
                let hint = match near.first() {
                    Some(x) => format!(" (did you mean {x}?)"),
                    None => String::new(),
                };
                return Err(invalid(format!("unrecognized tensor option: {n}{hint}, expecting grad, a dtype (float, double, long ...) or a device (cpu, cuda)")));
            }
        }
        Ok(o)
    }

    /// Applies dtype, device and gradient to `t`.
    pub fn apply(&self, t: Tensor) -> Result<Tensor> {
        let mut t = t;
        if let Some(k) = self.kind {
            if t.kind() != k {
                t = t.f_to_kind(k)?;
            }
        }
        if let Some(d) = self.device {
            if t.device() != d {
                t = t.f_to_device(d)?;
            }
        }
        if self.grad == Some(true) {
            if !t.is_floating_point()
                && !matches!(t.kind(), Kind::ComplexFloat | Kind::ComplexDouble)
            {
                return Err(invalid(format!(
                    "gradients need a floating point tensor, given {}",
                    kind_name(t.kind())
                )));
            }
            t = t.f_detach()?.f_set_requires_grad(true)?;
        }
        Ok(t)
    }

    fn opts(&self, default: Kind) -> (Kind, Device) {
        (
            self.kind.unwrap_or(default),
            self.device.unwrap_or(Device::Cpu),
        )
    }
}

/// The creation modes.
pub const MODES: &[&str] = &[
    "randn", "rand", "randint", "zeros", "ones", "full", "empty", "eye", "arange", "linspace",
    "logspace", "randperm",
];

fn size_of(v: Option<&Value>) -> Result<Vec<i64>> {
    let v = v.ok_or_else(|| invalid("size not given"))?;
    let s = v.as_ints("size")?;
    if let Some(x) = s.iter().find(|x| **x < 0) {
        return Err(invalid(format!("negative size {x}")));
    }
    Ok(s)
}

fn want(mode: &str, args: &[Value], lo: usize, hi: usize) -> Result<()> {
    if args.len() < lo || args.len() > hi {
        return Err(invalid(format!(
            "{mode} expects {lo}-{hi} argument(s), given {}",
            args.len()
        )));
    }
    Ok(())
}

/// Creates a tensor by mode, e.g. `randn` with a size, `randint` with high and size.
pub fn create(mode: &str, args: &[Value], o: &TensorOptions) -> Result<Tensor> {
    let f = |i: usize, what: &str| -> Result<f64> { args[i].as_float(what) };
    let int_or_float = |v: &Value| matches!(v, Value::Int(_));
    let t = match mode {
        "randn" | "rand" | "zeros" | "ones" | "empty" => {
            want(mode, args, 1, 1)?;
            let s = size_of(args.first())?;
            let opts = o.opts(Kind::Float);
            match mode {
                "randn" => Tensor::f_randn(&s, opts)?,
                "rand" => Tensor::f_rand(&s, opts)?,
                "zeros" => Tensor::f_zeros(&s, opts)?,
                "ones" => Tensor::f_ones(&s, opts)?,
                _ => Tensor::f_empty(&s, opts)?,
            }
        }
        "full" => {
            want(mode, args, 2, 2)?;
            let s = size_of(args.first())?;
            let k = if int_or_float(&args[1]) {
                Kind::Int64
            } else if matches!(args[1], Value::Bool(_)) {
                Kind::Bool
            } else {
                Kind::Float
            };
            match &args[1] {
                Value::Bool(b) => Tensor::f_full(&s, i64::from(*b), o.opts(k))?,
                Value::Int(i) => Tensor::f_full(&s, *i, o.opts(k))?,
                _ => Tensor::f_full(&s, f(1, "fill value")?, o.opts(k))?,
            }
        }
        "randint" => {
            want(mode, args, 2, 3)?;
            let (lo, hi, s) = if args.len() == 2 {
                (0, args[0].as_int("high")?, size_of(args.get(1))?)
            } else {
                (
                    args[0].as_int("low")?,
                    args[1].as_int("high")?,
                    size_of(args.get(2))?,
                )
            };
            if hi <= lo {
                return Err(invalid(format!(
                    "randint: high {hi} must be greater than low {lo}"
                )));
            }
            Tensor::f_randint_low(lo, hi, &s, o.opts(Kind::Int64))?
        }
        "randperm" => {
            want(mode, args, 1, 1)?;
            let n = args[0].as_int("n")?;
            if n < 0 {
                return Err(invalid(format!("randperm: negative size {n}")));
            }
            Tensor::f_randperm(n, o.opts(Kind::Int64))?
        }
        "eye" => {
            want(mode, args, 1, 2)?;
            let n = args[0].as_int("n")?;
            let m = if args.len() > 1 {
                args[1].as_int("m")?
            } else {
                n
            };
            if n < 0 || m < 0 {
                return Err(invalid("eye: negative size"));
            }
            Tensor::f_eye_m(n, m, o.opts(Kind::Float))?
        }
        "arange" => {
            want(mode, args, 1, 3)?;
            let ints = args.iter().all(int_or_float);
            let k = if ints { Kind::Int64 } else { Kind::Float };
            let (s, e, st) = match args.len() {
                1 => (0.0, f(0, "end")?, 1.0),
                2 => (f(0, "start")?, f(1, "end")?, 1.0),
                _ => (f(0, "start")?, f(1, "end")?, f(2, "step")?),
            };
            if st == 0.0 {
                return Err(invalid("arange: step must be non-zero"));
            }
            if !((e - s) / st).is_finite() || (e - s) * st < 0.0 {
                return Err(invalid(format!(
                    "arange: end {e} cannot be reached from start {s} with step {st}"
                )));
            }
            if ints {
                Tensor::f_arange_start_step(s as i64, e as i64, st as i64, o.opts(k))?
            } else {
                Tensor::f_arange_start_step(s, e, st, o.opts(k))?
            }
        }
        "linspace" | "logspace" => {
            want(mode, args, 3, 4)?;
            let (s, e) = (f(0, "start")?, f(1, "end")?);
            let n = args[2].as_int("steps")?;
            if n < 0 {
                return Err(invalid(format!(
                    "{mode}: number of steps must be non-negative, given {n}"
                )));
            }
            if mode == "linspace" {
                want(mode, args, 3, 3)?;
                Tensor::f_linspace(s, e, n, o.opts(Kind::Float))?
            } else {
                let base = if args.len() > 3 { f(3, "base")? } else { 10.0 };
                Tensor::f_logspace(s, e, n, base, o.opts(Kind::Float))?
            }
        }
        _ => return Err(invalid(format!("unrecognized creation mode: {mode}"))),
    };
    o.apply(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
        assert_eq!(device_name_with(Device::Mps, true), "mps");
        assert_eq!(device_name_with(Device::Mps, false), "meta");
        if !tch::utils::has_mps() {
            assert_eq!(device_name(Device::Mps), "meta");
        }
    }
}
