//! Initialisers: tensors reset in place with gradients off, as torch.nn.init's
//! functions and the tensor methods for probability distributions do it.
//!
//! Each [`Init`] draws from libtorch's generators with the same calls, in the
//! same order and with the same arguments as `torch.nn.init` (fans, gain and
//! standard deviation computed the same way in double precision), so that with
//! the same generator state the values are the same. [`Init::check`] refuses a
//! bad option or a tensor the initialiser does not fit before anything changes;
//! [`Init::apply_all`] checks every tensor first and puts back the old values
//! if libtorch still fails part way.
//!
//! ```
//! use ktorch_core::init::{FanMode, Init, Kaiming, Nonlinearity};
//! use tch::{Device, Kind, Tensor};
//!
//! let w = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
//! let k = Kaiming { slope: 0.0, mode: FanMode::In, nonlinearity: Nonlinearity::Relu };
//! Init::KaimingNormal(k).apply(&w).unwrap();
//! Init::Zeros.apply(&w.get(0)).unwrap();
//! assert_eq!(w.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
//! ```

use tch::{Device, Kind, Tensor};

use crate::error::{err, Result};

/// A nonlinearity, for the recommended gain ([`Nonlinearity::gain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Linear (identity): gain 1.
    Linear,
    /// 1-d convolution: gain 1.
    Conv1d,
    /// 2-d convolution: gain 1.
    Conv2d,
    /// 3-d convolution: gain 1.
    Conv3d,
    /// 1-d transposed convolution: gain 1.
    ConvTranspose1d,
    /// 2-d transposed convolution: gain 1.
    ConvTranspose2d,
    /// 3-d transposed convolution: gain 1.
    ConvTranspose3d,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU: gain √(2 / (1 + slope²)).
    LeakyRelu,
    /// SELU: gain 3/4.
    Selu,
}

/// The nonlinearities by name, as the api spells them.
pub const NONLINEARITIES: [(&str, Nonlinearity); 12] = [
    ("linear", Nonlinearity::Linear),
    ("conv1d", Nonlinearity::Conv1d),
    ("conv2d", Nonlinearity::Conv2d),
    ("conv3d", Nonlinearity::Conv3d),
    ("convtranspose1d", Nonlinearity::ConvTranspose1d),
    ("convtranspose2d", Nonlinearity::ConvTranspose2d),
    ("convtranspose3d", Nonlinearity::ConvTranspose3d),
    ("sigmoid", Nonlinearity::Sigmoid),
    ("tanh", Nonlinearity::Tanh),
    ("relu", Nonlinearity::Relu),
    ("leakyrelu", Nonlinearity::LeakyRelu),
    ("selu", Nonlinearity::Selu),
];

/// Lower case without underscores: `leaky_relu` reads as `leakyrelu`, `fan_in` as `fanin`.
fn plain_name(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Nonlinearity {
    /// The nonlinearity named `s` (`relu`, `leakyrelu` or `leaky_relu`, `convtranspose2d`
    /// or `conv_transpose2d`...), None for any other name.
    pub fn from_name(s: &str) -> Option<Nonlinearity> {
        let p = plain_name(s);
        NONLINEARITIES
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, f)| *f)
    }

    /// The api's name.
    pub fn name(self) -> &'static str {
        NONLINEARITIES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    /// The recommended gain, as `torch.nn.init.calculate_gain`: `param` is the negative
    /// slope of a leaky ReLU (0.01 when None), ignored by the others.
    pub fn gain(self, param: Option<f64>) -> f64 {
        use Nonlinearity::*;
        match self {
            Linear | Conv1d | Conv2d | Conv3d | ConvTranspose1d | ConvTranspose2d
            | ConvTranspose3d | Sigmoid => 1.0,
            Tanh => 5.0 / 3.0,
            Relu => 2.0f64.sqrt(),
            LeakyRelu => {
                let s = param.unwrap_or(0.01);
                (2.0 / (1.0 + s.powi(2))).sqrt()
            }
            Selu => 3.0 / 4.0,
        }
    }
}

/// The recommended gain for the nonlinearity named `name` (see [`Nonlinearity::gain`]).
pub fn gain(name: &str, param: Option<f64>) -> Result<f64> {
    let f = Nonlinearity::from_name(name).ok_or_else(|| {
        err(
            "gain",
            format!(
                "unrecognized nonlinearity `{name}`, expecting one of: {}",
                nonlinearity_names()
            ),
        )
    })?;
    if let Some(p) = param {
        if !p.is_finite() {
            return Err(err("gain", format!("parameter must be finite, given {p}")));
        }
    }
    Ok(f.gain(param))
}

/// The nonlinearity names, comma-separated, for messages.
pub fn nonlinearity_names() -> String {
    NONLINEARITIES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which fan the Kaiming initialisers scale by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// The number of inputs: keeps the variance of the forward pass.
    In,
    /// The number of outputs: keeps the variance of the backward pass.
    Out,
}

impl FanMode {
    /// `fanin`, `fan_in` or `in`; `fanout`, `fan_out` or `out`; None for any other name.
    pub fn from_name(s: &str) -> Option<FanMode> {
        match plain_name(s).as_str() {
            "fanin" | "in" => Some(FanMode::In),
            "fanout" | "out" => Some(FanMode::Out),
            _ => None,
        }
    }

    /// The api's name: `fanin`, `fanout`.
    pub fn name(self) -> &'static str {
        match self {
            FanMode::In => "fanin",
            FanMode::Out => "fanout",
        }
    }
}

/// Fan in and fan out of a weight of at least 2 dimensions, as torch counts them:
/// size 1 (resp. 0) times the product of the sizes after the first two.
pub fn fans(t: &Tensor) -> Result<(i64, i64)> {
    let s = t.size();
    if s.len() < 2 {
        return Err(crate::error::invalid(format!(
            "fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, given {}",
            s.len()
        )));
    }
    let field: i64 = s[2..].iter().product();
    Ok((s[1] * field, s[0] * field))
}

/// The options of the Kaiming initialisers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kaiming {
    /// The negative slope of the rectifier after the layer (used with a leaky ReLU).
    pub slope: f64,
    /// Fan in or fan out.
    pub mode: FanMode,
    /// The nonlinearity after the layer.
    pub nonlinearity: Nonlinearity,
}

impl Default for Kaiming {
    /// torch's defaults: slope 0, fan in, leaky ReLU.
    fn default() -> Kaiming {
        Kaiming {
            slope: 0.0,
            mode: FanMode::In,
            nonlinearity: Nonlinearity::LeakyRelu,
        }
    }
}

/// A fill value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (exact for long tensors).
    Int(i64),
    /// A floating point value.
    Float(f64),
}

/// An initialiser and its options. Defaults are torch's (and the original api's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Zeros.
    Zeros,
    /// Ones.
    Ones,
    /// A single value.
    Fill(Number),
    /// The identity matrix (2-dimensional tensors).
    Eye,
    /// The Dirac delta of convolution weights (3, 4 or 5 dimensions), in `groups` groups
    /// of output channels (default 1).
    Dirac {
        /// Groups of output channels, each preserving its inputs' identity.
        groups: i64,
    },
    /// A (semi) orthogonal matrix times `gain` (default 1).
    Orthogonal {
        /// Scale.
        gain: f64,
    },
    /// Xavier (Glorot) normal: std = gain √(2 / (fan in + fan out)).
    XavierNormal {
        /// Scale (default 1).
        gain: f64,
    },
    /// Xavier (Glorot) uniform: bound = √3 gain √(2 / (fan in + fan out)).
    XavierUniform {
        /// Scale (default 1).
        gain: f64,
    },
    /// Kaiming (He) normal: std = gain / √fan.
    KaimingNormal(Kaiming),
    /// Kaiming (He) uniform: bound = √3 gain / √fan.
    KaimingUniform(Kaiming),
    /// A sparse 2-d matrix: normal values with the fraction `sparsity` of each column zero.
    Sparse {
        /// Fraction of each column set to zero, 0 to 1.
        sparsity: f64,
        /// Standard deviation of the other values (default 0.01).
        std: f64,
    },
    /// The normal distribution (default mean 0, std 1).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// The uniform distribution over `[low, high)` (default 0, 1).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// The Cauchy distribution (default median 0, sigma 1).
    Cauchy {
        /// Median.
        median: f64,
        /// Half width at half maximum.
        sigma: f64,
    },
    /// The exponential distribution (default rate 1).
    Exponential {
        /// Rate (lambda).
        rate: f64,
    },
    /// The geometric distribution: the number of Bernoulli trials up to the first success.
    Geometric {
        /// Probability of success, in (0, 1).
        p: f64,
    },
    /// The log-normal distribution: its log is normal (default mean 1, std 2).
    LogNormal {
        /// Mean of the log.
        mean: f64,
        /// Standard deviation of the log.
        std: f64,
    },
    /// Discrete uniform over `[low, high)`: with neither, over the values the dtype holds
    /// exactly; with only `high`, from 0; with only `low`, up to the dtype's largest.
    Random {
        /// Lower bound (inclusive).
        low: Option<i64>,
        /// Upper bound (exclusive).
        high: Option<i64>,
    },
}

/// An error unless `x` is finite.
fn finite(f: &str, what: &str, x: f64) -> Result<()> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(err(f, format!("{what} must be finite, given {x}")))
    }
}

/// Finite and at least 0.
fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Finite and above 0.
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl Init {
    /// The api function's name.
    pub fn name(&self) -> &'static str {
        match self {
            Init::Zeros => "zeros",
            Init::Ones => "ones",
            Init::Fill(_) => "fill",
            Init::Eye => "eye",
            Init::Dirac { .. } => "dirac",
            Init::Orthogonal { .. } => "orthogonal",
            Init::XavierNormal { .. } => "xnormal",
            Init::XavierUniform { .. } => "xuniform",
            Init::KaimingNormal(_) => "knormal",
            Init::KaimingUniform(_) => "kuniform",
            Init::Sparse { .. } => "snormal",
            Init::Normal { .. } => "normal",
            Init::Uniform { .. } => "uniform",
            Init::Cauchy { .. } => "cauchy",
            Init::Exponential { .. } => "exponential",
            Init::Geometric { .. } => "geometric",
            Init::LogNormal { .. } => "lognormal",
            Init::Random { .. } => "random",
        }
    }

    /// Checks the options alone (no tensor): errors name the function and the option.
    pub fn check_options(&self) -> Result<()> {
        let f = self.name();
        match *self {
            Init::Zeros | Init::Ones | Init::Eye | Init::Fill(_) => Ok(()),
            Init::Dirac { groups } => {
                if groups < 1 {
                    Err(err(f, format!("groups must be positive, given {groups}")))
                } else {
                    Ok(())
                }
            }
            Init::Orthogonal { gain }
            | Init::XavierNormal { gain }
            | Init::XavierUniform { gain } => finite(f, "gain", gain),
            Init::KaimingNormal(k) | Init::KaimingUniform(k) => finite(f, "slope", k.slope),
            Init::Sparse { sparsity, std } => {
                if !(0.0..=1.0).contains(&sparsity) {
                    return Err(err(
                        f,
                        format!("sparsity must be a fraction from 0 to 1, given {sparsity}"),
                    ));
                }
                if !non_negative(std) {
                    return Err(err(f, format!("std must be non-negative, given {std}")));
                }
                Ok(())
            }
            Init::Normal { mean, std } => {
                finite(f, "mean", mean)?;
                if !non_negative(std) {
                    return Err(err(f, format!("std must be non-negative, given {std}")));
                }
                Ok(())
            }
            Init::Uniform { low, high } => {
                finite(f, "low", low)?;
                finite(f, "high", high)?;
                if low > high {
                    return Err(err(
                        f,
                        format!("low must not exceed high, given low {low}, high {high}"),
                    ));
                }
                Ok(())
            }
            Init::Cauchy { median, sigma } => {
                finite(f, "median", median)?;
                if !positive(sigma) {
                    return Err(err(f, format!("sigma must be positive, given {sigma}")));
                }
                Ok(())
            }
            Init::Exponential { rate } => {
                if !positive(rate) {
                    return Err(err(f, format!("rate must be positive, given {rate}")));
                }
                Ok(())
            }
            Init::Geometric { p } => {
                if !(p > 0.0 && p < 1.0) {
                    return Err(err(
                        f,
                        format!("probability must be between 0 and 1 (exclusive), given {p}"),
                    ));
                }
                Ok(())
            }
            Init::LogNormal { mean, std } => {
                finite(f, "mean", mean)?;
                if !positive(std) {
                    return Err(err(f, format!("std must be positive, given {std}")));
                }
                Ok(())
            }
            Init::Random { low, high } => match (low, high) {
                (Some(l), Some(h)) if l >= h => Err(err(
                    f,
                    format!("low must be less than high, given low {l}, high {h}"),
                )),
                (None, Some(h)) if h <= 0 => Err(err(
                    f,
                    format!("high must be positive when low is not given (low 0), given {h}"),
                )),
                _ => Ok(()),
            },
        }
    }

    /// Checks the options and that the initialiser fits tensor `t` (defined, dense, its
    /// dimensions, a fan to scale by): errors name the function and the argument.
    pub fn check(&self, t: &Tensor) -> Result<()> {
        let f = self.name();
        self.check_options()?;
        if !t.defined() {
            return Err(err(f, "tensor is not defined"));
        }
        if !crate::tensor::kinds::is_strided(t) {
            return Err(err(
                f,
                "not implemented for sparse or other non-strided tensors",
            ));
        }
        let dim = t.dim();
        let needs_float = |what: &str| -> Result<()> {
            if t.is_floating_point() {
                Ok(())
            } else {
                Err(err(
                    f,
                    format!(
                        "{what} needs a floating point tensor, given {}",
                        crate::tensor::kinds::dtype_name(t)
                    ),
                ))
            }
        };
        match *self {
            Init::Eye => {
                if dim != 2 {
                    return Err(err(
                        f,
                        format!("expecting a 2-dimensional tensor, given {dim} dimension(s)"),
                    ));
                }
            }
            Init::Dirac { groups } => {
                if !(3..=5).contains(&dim) {
                    return Err(err(
                        f,
                        format!(
                            "expecting a 3, 4 or 5-dimensional tensor, given {dim} dimension(s)"
                        ),
                    ));
                }
                let n = t.size()[0];
                if n % groups != 0 {
                    return Err(err(
                        f,
                        format!("size of dimension 0 ({n}) is not divisible by groups ({groups})"),
                    ));
                }
            }
            Init::Orthogonal { .. } => {
                if dim < 2 {
                    return Err(err(
                        f,
                        format!(
                            "expecting a tensor of 2 or more dimensions, given {dim} dimension(s)"
                        ),
                    ));
                }
                needs_float("orthogonal initialization")?;
            }
            Init::XavierNormal { .. } | Init::XavierUniform { .. } => {
                let (i, o) = fans(t).map_err(|e| e.named(f))?;
                if i + o == 0 {
                    return Err(err(f, "fan in and fan out are both zero"));
                }
                needs_float("xavier initialization")?;
            }
            Init::KaimingNormal(_) | Init::KaimingUniform(_) => {
                // torch leaves a tensor with no elements as it is, without a fan
                if !t.size().contains(&0) {
                    fans(t).map_err(|e| e.named(f))?;
                    needs_float("kaiming initialization")?;
                }
            }
            Init::Sparse { .. } => {
                if dim != 2 {
                    return Err(err(
                        f,
                        format!("expecting a 2-dimensional tensor, given {dim} dimension(s)"),
                    ));
                }
                needs_float("sparse initialization")?;
            }
            Init::Normal { .. }
            | Init::Uniform { .. }
            | Init::Cauchy { .. }
            | Init::Exponential { .. }
            | Init::LogNormal { .. } => needs_float("the distribution")?,
            Init::Zeros
            | Init::Ones
            | Init::Fill(_)
            | Init::Geometric { .. }
            | Init::Random { .. } => {}
        }
        Ok(())
    }

    /// Resets `t` in place with gradients off, after [`Init::check`].
    pub fn apply(&self, t: &Tensor) -> Result<()> {
        self.check(t)?;
        let _g = tch::no_grad_guard();
        self.run(t)
    }

    /// Resets each tensor in place with gradients off. Every tensor is checked first;
    /// where libtorch fails part way, the tensors are given back their old values.
    pub fn apply_all(&self, ts: &[Tensor]) -> Result<()> {
        for t in ts {
            self.check(t)?;
        }
        let _g = tch::no_grad_guard();
        if ts.len() < 2 && !matches!(self, Init::Dirac { .. } | Init::Sparse { .. }) {
            // one libtorch call on one tensor: it checks before it writes
            return match ts.first() {
                Some(t) => self.run(t),
                None => Ok(()),
            };
        }
        let saved = ts
            .iter()
            .map(|t| t.f_detach_copy())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for t in ts {
            if let Err(e) = self.run(t) {
                for (t, s) in ts.iter().zip(&saved) {
                    let _ = t.shallow_clone().f_copy_(s);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The draws and writes (options and tensor checked; gradients off).
    fn run(&self, t: &Tensor) -> Result<()> {
        let mut x = t.shallow_clone();
        match *self {
            Init::Zeros => {
                let _ = x.f_zero_()?;
            }
            Init::Ones => {
                let _ = x.f_fill_(1.0)?;
            }
            Init::Fill(Number::Int(v)) => {
                let _ = x.f_fill_(v)?;
            }
            Init::Fill(Number::Float(v)) => {
                let _ = x.f_fill_(v)?;
            }
            Init::Eye => {
                let s = x.size();
                let _ = Tensor::f_eye_m_out(&x, s[0], s[1])?;
            }
            Init::Dirac { groups } => dirac(&x, groups)?,
            Init::Orthogonal { gain } => orthogonal(&x, gain)?,
            Init::XavierNormal { gain } => {
                let (i, o) = fans(&x)?;
                let std = gain * (2.0 / (i + o) as f64).sqrt();
                let _ = x.f_normal_(0.0, std)?;
            }
            Init::XavierUniform { gain } => {
                let (i, o) = fans(&x)?;
                let std = gain * (2.0 / (i + o) as f64).sqrt();
                let a = 3.0f64.sqrt() * std;
                let _ = x.f_uniform_(-a, a)?;
            }
            Init::KaimingNormal(k) => {
                if let Some(std) = kaiming_std(&x, k)? {
                    let _ = x.f_normal_(0.0, std)?;
                }
            }
            Init::KaimingUniform(k) => {
                if let Some(std) = kaiming_std(&x, k)? {
                    let bound = 3.0f64.sqrt() * std;
                    let _ = x.f_uniform_(-bound, bound)?;
                }
            }
            Init::Sparse { sparsity, std } => sparse(&x, sparsity, std)?,
            Init::Normal { mean, std } => {
                let _ = x.f_normal_(mean, std)?;
            }
            Init::Uniform { low, high } => {
                let _ = x.f_uniform_(low, high)?;
            }
            Init::Cauchy { median, sigma } => {
                let _ = x.f_cauchy_(median, sigma)?;
            }
            Init::Exponential { rate } => {
                let _ = x.f_exponential_(rate)?;
            }
            Init::Geometric { p } => {
                let _ = x.f_geometric_(p)?;
            }
            Init::LogNormal { mean, std } => {
                let _ = x.f_log_normal_(mean, std)?;
            }
            Init::Random { low, high } => {
                let _ = match (low, high) {
                    (None, None) => x.f_random_()?,
                    (None, Some(h)) => x.f_random_to_(h)?,
                    (Some(l), h) => x.f_random_from_(l, h)?,
                };
            }
        }
        Ok(())
    }
}

/// The standard deviation of Kaiming initialisation, None for a tensor with no elements
/// (left as it is, as torch does).
fn kaiming_std(t: &Tensor, k: Kaiming) -> Result<Option<f64>> {
    if t.size().contains(&0) {
        return Ok(None);
    }
    let (i, o) = fans(t)?;
    let fan = match k.mode {
        FanMode::In => i,
        FanMode::Out => o,
    };
    let gain = k.nonlinearity.gain(Some(k.slope));
    Ok(Some(gain / (fan as f64).sqrt()))
}

/// torch.nn.init.dirac_: zeros, then a one at the centre of each kernel on the diagonal
/// of the channels of each group.
fn dirac(t: &Tensor, groups: i64) -> Result<()> {
    let s = t.size();
    if t.numel() == 0 {
        return Ok(()); // nothing to set, whatever the groups
    }
    let per = s[0] / groups;
    let min_dim = per.min(s[1]);
    let _ = t.shallow_clone().f_zero_()?;
    for g in 0..groups {
        for d in 0..min_dim {
            let mut e = t.f_select(0, g * per + d)?.f_select(0, d)?;
            for k in &s[2..] {
                e = e.f_select(0, k / 2)?;
            }
            let _ = e.f_fill_(1.0)?;
        }
    }
    Ok(())
}

/// torch.nn.init.orthogonal_: the QR decomposition of a normal matrix (transposed when
/// wider than tall), Q's columns signed by R's diagonal, times `gain`.
fn orthogonal(t: &Tensor, gain: f64) -> Result<()> {
    if t.numel() == 0 {
        return Ok(());
    }
    let rows = t.size()[0];
    let cols = t.numel() as i64 / rows;
    let mut flat = t.f_new_empty([rows, cols], (t.kind(), t.device()))?;
    let _ = flat.f_normal_(0.0, 1.0)?;
    if rows < cols {
        flat = flat.f_tr()?;
    }
    let (q, r) = Tensor::f_linalg_qr(&flat, "reduced")?;
    let ph = r.f_diag(0)?.f_sign()?;
    let mut q = q.f_mul(&ph)?;
    if rows < cols {
        q = q.f_tr()?;
    }
    t.f_view_as(&q)?.f_copy_(&q)?;
    let _ = t.shallow_clone().f_mul_scalar_(gain)?;
    Ok(())
}

/// torch.nn.init.sparse_: normal values, then in each column the rows of the first
/// ⌈sparsity · rows⌉ places of a random permutation set to zero.
fn sparse(t: &Tensor, sparsity: f64, std: f64) -> Result<()> {
    let s = t.size();
    let (rows, cols) = (s[0], s[1]);
    let zeros = ((sparsity * rows as f64).ceil() as i64).min(rows);
    let _ = t.shallow_clone().f_normal_(0.0, std)?;
    for c in 0..cols {
        let idx = Tensor::f_randperm(rows, (Kind::Int64, Device::Cpu))?
            .f_narrow(0, 0, zeros)?
            .f_to_device(t.device())?;
        let _ = t.f_select(1, c)?.f_index_fill_(0, &idx, 0.0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(s: &[i64], k: Kind) -> Tensor {
        Tensor::zeros(s, (k, Device::Cpu))
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).expect("values")
    }

    #[test]
    fn kaiming_matches_its_formula_with_the_same_seed() {
        let t = zeros(&[5, 3, 2], Kind::Double);
        let k = Kaiming {
            slope: 0.2,
            mode: FanMode::Out,
            nonlinearity: Nonlinearity::LeakyRelu,
        };
        tch::manual_seed(7);
        Init::KaimingUniform(k).apply(&t).expect("kuniform");
        tch::manual_seed(7);
        // torch's order: gain, then std = gain / √fan, then bound = √3 std
        let std = (2.0 / (1.0 + 0.2f64 * 0.2)).sqrt() / 10.0f64.sqrt();
        let bound = 3.0f64.sqrt() * std;
        let want = zeros(&[5, 3, 2], Kind::Double).uniform_(-bound, bound);
        assert_eq!(values(&t), values(&want));
    }

    #[test]
    fn eye_dirac_and_orthogonal() {
        let t = zeros(&[2, 3], Kind::Float);
        Init::Eye.apply(&t).expect("eye");
        assert_eq!(values(&t), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let c = zeros(&[2, 2, 3], Kind::Float);
        Init::Dirac { groups: 1 }.apply(&c).expect("dirac");
        assert_eq!(
            values(&c),
            [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
        let w = zeros(&[3, 5], Kind::Double);
        Init::Orthogonal { gain: 2.0 }
            .apply(&w)
            .expect("orthogonal");
        let p = w.matmul(&w.tr()).f_div_scalar(4.0).expect("div");
        let e = Tensor::eye(3, (Kind::Double, Device::Cpu));
        assert!(values(&(p - e)).iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let t = zeros(&[4], Kind::Float);
        let e = Init::KaimingNormal(Kaiming::default())
            .apply(&t)
            .expect_err("1-dim");
        assert!(
            e.to_string().starts_with("knormal: fan in and fan out"),
            "{e}"
        );
        let w = zeros(&[3, 4], Kind::Float);
        let e = Init::Dirac { groups: 1 }.apply(&w).expect_err("2-dim");
        assert!(
            e.to_string().starts_with("dirac: expecting a 3, 4 or 5"),
            "{e}"
        );
        let e = Init::Sparse {
            sparsity: 1.5,
            std: 0.01,
        }
        .apply(&w)
        .expect_err("sparsity");
        assert!(e.to_string().contains("sparsity"), "{e}");
        // the second tensor does not fit: the first is left as it was
        let e = Init::Eye
            .apply_all(&[w.shallow_clone(), t.shallow_clone()])
            .expect_err("1-dim");
        assert!(e.to_string().starts_with("eye: "), "{e}");
        assert!(values(&w).iter().all(|v| *v == 0.0));
        assert_eq!(
            gain("leaky_relu", Some(0.5)).expect("gain"),
            (2.0f64 / 1.25).sqrt()
        );
        assert!(gain("softmax", None).is_err());
    }
}
