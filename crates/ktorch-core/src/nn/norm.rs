//! Normalization: batchnorm1d/2d/3d, instancenorm1d/2d/3d, layernorm, groupnorm.

use tch::{Kind, Tensor};

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{dims, filled, null_given, spec::Given, unknown, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[
    "batchnorm1d",
    "batchnorm2d",
    "batchnorm3d",
    "layernorm",
    "groupnorm",
    "instancenorm1d",
    "instancenorm2d",
    "instancenorm3d",
];

const BATCHNORM: &[&str] = &["in", "eps", "momentum", "affine", "track"];

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    match kind {
        "batchnorm1d" | "batchnorm2d" | "batchnorm3d" => batchnorm(kind, pos, kw),
        "instancenorm1d" | "instancenorm2d" | "instancenorm3d" => instancenorm(kind, pos, kw),
        "layernorm" => {
            let a = Args::parse(kind, &["shape", "eps", "affine", "bias"], pos, kw)?;
            let shape = a
                .int_list("shape")?
                .ok_or_else(|| err(kind, "shape not defined"))?;
            if shape.is_empty() || shape.iter().any(|n| *n <= 0) {
                return Err(err(
                    kind,
                    format!("shape must be one or more positive sizes, given {shape:?}"),
                ));
            }
            let eps = a.nonneg("eps", 1e-5)?;
            let (affine, bias) = (a.bool("affine", true)?, a.bool("bias", true)?);
            let mut m = Module::new(
                kind,
                LayerNorm {
                    shape: shape.clone(),
                    eps,
                    weight: affine,
                    bias: affine && bias,
                },
            );
            if affine {
                m = m.with_param("weight", filled(&shape, 1.0)?)?;
                if bias {
                    m = m.with_param("bias", filled(&shape, 0.0)?)?;
                }
            }
            Ok(m)
        }
        "groupnorm" => {
            let a = Args::parse(kind, &["groups", "channels", "eps", "affine"], pos, kw)?;
            let (groups, channels) = (a.req_pos("groups")?, a.req_pos("channels")?);
            if channels % groups != 0 {
                return Err(err(
                    kind,
                    format!("channels ({channels}) must be divisible by groups ({groups})"),
                ));
            }
            let (eps, affine) = (a.nonneg("eps", 1e-5)?, a.bool("affine", true)?);
            let mut m = Module::new(
                kind,
                GroupNorm {
                    groups,
                    eps,
                    affine,
                },
            );
            if affine {
                m = m
                    .with_param("weight", filled(&[channels], 1.0)?)?
                    .with_param("bias", filled(&[channels], 0.0)?)?;
            }
            Ok(m)
        }
        _ => Err(unknown(kind)),
    }
}

fn batchnorm(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let a = Args::parse(kind, BATCHNORM, pos, kw)?;
    let n = a.req_pos("in")?;
    let eps = a.nonneg("eps", 1e-5)?;
    // momentum given as null: running statistics are a cumulative average, as in PyTorch
    let momentum = if null_given(BATCHNORM, "momentum", pos, kw) {
        None
    } else {
        Some(a.float_in("momentum", 0.1, 0.0, 1.0)?)
    };
    let (affine, track) = (a.bool("affine", true)?, a.bool("track", true)?);
    let m = Module::new(
        kind,
        BatchNorm {
            d: dims(kind),
            n,
            eps,
            momentum,
            affine,
            track,
        },
    );
    with_statistics(m, n, affine, track)
}

/// A batch or instance normalization's tensors (torch's names): with `affine`, weight (ones)
/// and bias (zeros) of `n` channels; with `track`, the running mean and variance and the
/// count of batches tracked.
fn with_statistics(mut m: Module, n: i64, affine: bool, track: bool) -> Result<Module> {
    if affine {
        m = m
            .with_param("weight", filled(&[n], 1.0)?)?
            .with_param("bias", filled(&[n], 0.0)?)?;
    }
    if track {
        let count = Tensor::f_zeros([], (Kind::Int64, tch::Device::Cpu))?;
        m = m
            .with_buffer("running_mean", filled(&[n], 0.0)?)
            .with_buffer("running_var", filled(&[n], 1.0)?)
            .with_buffer("num_batches_tracked", count);
    }
    Ok(m)
}

/// Instance normalization: batchnorm's options, with affine and track off by
/// default; when tracking, the same buffers as batchnorm (torch's names;
/// `num_batches_tracked` stays 0, as in torch).
fn instancenorm(kind: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Module> {
    let a = Args::parse(kind, BATCHNORM, pos, kw)?;
    let n = a.req_pos("in")?;
    let eps = a.nonneg("eps", 1e-5)?;
    let momentum = a.float_in("momentum", 0.1, 0.0, 1.0)?;
    let (affine, track) = (a.bool("affine", false)?, a.bool("track", false)?);
    let m = Module::new(
        kind,
        InstanceNorm {
            d: dims(kind),
            n,
            eps,
            momentum,
            affine,
            track,
        },
    );
    with_statistics(m, n, affine, track)
}

/// Instance normalization: each sample's channels normalized over their own
/// spatial values; with `track`, running statistics (updated in training mode)
/// normalize in evaluation mode.
#[derive(Debug, Clone)]
struct InstanceNorm {
    d: usize,
    n: i64,
    eps: f64,
    momentum: f64,
    affine: bool,
    track: bool,
}

impl Layer for InstanceNorm {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let size = x.size();
        let d = self.d;
        if size.len() != d + 1 && size.len() != d + 2 {
            return Err(err(
                m.kind(),
                format!(
                    "expected {}D or {}D input, given {}D",
                    d + 1,
                    d + 2,
                    size.len()
                ),
            ));
        }
        let unbatched = size.len() == d + 1;
        let c = usize::from(!unbatched);
        if size[c] != self.n && (self.affine || self.track) {
            return Err(err(
                m.kind(),
                format!(
                    "expected {} channels in dimension {c}, given input size {size:?}",
                    self.n
                ),
            ));
        }
        let stats = m.is_training() || !self.track;
        if stats && size[c + 1..].iter().product::<i64>() == 1 {
            return Err(err(
                m.kind(),
                format!(
                    "expected more than 1 spatial element when training, given input size {size:?}"
                ),
            ));
        }
        let (w, b) = if self.affine {
            (Some(m.param_at(0)?), Some(m.param_at(1)?))
        } else {
            (None, None)
        };
        let (mean, var) = if self.track {
            (Some(m.buffer_at(0)?), Some(m.buffer_at(1)?))
        } else {
            (None, None)
        };
        let x4 = if unbatched {
            x.f_unsqueeze(0)?
        } else {
            x.shallow_clone()
        };
        let y = x4.f_instance_norm(w, b, mean, var, stats, self.momentum, self.eps, true)?;
        Ok(vec![if unbatched { y.f_squeeze_dim(0)? } else { y }])
    }
    layer_clone!();
}

/// Batch normalization; running statistics live in the module's buffers.
#[derive(Debug, Clone)]
struct BatchNorm {
    d: usize,
    n: i64,
    eps: f64,
    momentum: Option<f64>,
    affine: bool,
    track: bool,
}

impl Layer for BatchNorm {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        let size = x.size();
        let ok = match self.d {
            1 => size.len() == 2 || size.len() == 3,
            d => size.len() == d + 2,
        };
        if !ok {
            let want = if self.d == 1 {
                "2D or 3D".to_string()
            } else {
                format!("{}D", self.d + 2)
            };
            return Err(err(
                m.kind(),
                format!("expected {want} input, given {}D", size.len()),
            ));
        }
        if size[1] != self.n {
            return Err(err(
                m.kind(),
                format!(
                    "expected {} channels in dimension 1, given input size {size:?}",
                    self.n
                ),
            ));
        }
        let training = m.is_training();
        let batch_stats = training || !self.track;
        if batch_stats && size[0] * size[2..].iter().product::<i64>() == 1 {
            return Err(err(m.kind(), format!("expected more than 1 value per channel when training, given input size {size:?}")));
        }
        let mut factor = self.momentum.unwrap_or(0.0);
        if training && self.track {
            let _g = tch::no_grad_guard();
            let mut count = m.buffer_at(2)?.shallow_clone();
            let _ = count.f_add_scalar_(1)?;
            if self.momentum.is_none() {
                factor = 1.0 / count.f_double_value(&[])?;
            }
        }
        let (w, b) = if self.affine {
            (Some(m.param_at(0)?), Some(m.param_at(1)?))
        } else {
            (None, None)
        };
        let (mean, var) = if self.track {
            (Some(m.buffer_at(0)?), Some(m.buffer_at(1)?))
        } else {
            (None, None)
        };
        Ok(vec![x.f_batch_norm(
            w,
            b,
            mean,
            var,
            batch_stats,
            factor,
            self.eps,
            true,
        )?])
    }
    layer_clone!();
}

#[derive(Debug, Clone)]
struct LayerNorm {
    shape: Vec<i64>,
    eps: f64,
    weight: bool,
    bias: bool,
}

impl Layer for LayerNorm {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let w = if self.weight {
            Some(m.param_at(0)?)
        } else {
            None
        };
        let b = if self.bias {
            Some(m.param_at(1)?)
        } else {
            None
        };
        Ok(vec![xs[0].f_layer_norm(
            self.shape.as_slice(),
            w,
            b,
            self.eps,
            true,
        )?])
    }
    layer_clone!();
}

#[derive(Debug, Clone)]
struct GroupNorm {
    groups: i64,
    eps: f64,
    affine: bool,
}

impl Layer for GroupNorm {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        if x.dim() < 2 {
            return Err(err(
                m.kind(),
                format!(
                    "expected input with at least 2 dimensions, given {}D",
                    x.dim()
                ),
            ));
        }
        let (w, b) = if self.affine {
            (Some(m.param_at(0)?), Some(m.param_at(1)?))
        } else {
            (None, None)
        };
        Ok(vec![x.f_group_norm(self.groups, w, b, self.eps, true)?])
    }
    layer_clone!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::*;

    fn stats(x: &Tensor) -> (Tensor, Tensor) {
        let dims = [0i64, 2, 3];
        let mean = x.mean_dim(dims.as_slice(), false, Kind::Float);
        let var = x.var_dim(dims.as_slice(), true, false);
        (mean, var)
    }

    #[test]
    fn batchnorm_names_and_running_stats() {
        let mut m = make("batchnorm2d", vec![Value::Int(3)]);
        assert_eq!(shapes(&m), named(&[("weight", &[3]), ("bias", &[3])]));
        let bufs = named(&[
            ("running_mean", &[3]),
            ("running_var", &[3]),
            ("num_batches_tracked", &[]),
        ]);
        assert_eq!(buffer_shapes(&m), bufs);
        let x = randn(&[4, 3, 5, 5]) * 2 + 1;
        let y = fwd(&m, &[&x]);
        let want = x.batch_norm(
            Some(m.param_at(0).expect("declared")),
            Some(m.param_at(1).expect("declared")),
            None::<&Tensor>,
            None,
            true,
            0.1,
            1e-5,
            false,
        );
        assert_close(&y, &want);
        let (mean, var) = stats(&x);
        assert_close(m.buffer_at(0).expect("declared"), &(&mean * 0.1));
        assert_close(m.buffer_at(1).expect("declared"), &(&var * 0.1 + 0.9));
        assert_eq!(m.buffer_at(2).expect("declared").int64_value(&[]), 1);
        // eval mode uses the running statistics and leaves them alone
        m.set_training(false);
        let y = fwd(&m, &[&x]);
        let want = (&x - m.buffer_at(0).expect("declared").view([1, 3, 1, 1]))
            / (m.buffer_at(1).expect("declared").view([1, 3, 1, 1]) + 1e-5).sqrt();
        assert_close(&y, &want);
        assert_eq!(m.buffer_at(2).expect("declared").int64_value(&[]), 1);
    }

    #[test]
    fn batchnorm_null_momentum_is_cumulative_average() {
        let m = make(
            "batchnorm1d",
            vec![Value::Int(2), Value::Float(1e-5), Value::Null],
        );
        let (x1, x2) = (randn(&[6, 2]), randn(&[6, 2]));
        let _ = fwd(&m, &[&x1]);
        let _ = fwd(&m, &[&x2]);
        let both = Tensor::cat(&[&x1, &x2], 0);
        let mean = (x1.mean_dim(0, false, Kind::Float) + x2.mean_dim(0, false, Kind::Float)) / 2;
        assert_close(m.buffer_at(0).expect("declared"), &mean);
        assert_eq!(m.buffer_at(2).expect("declared").int64_value(&[]), 2);
        assert_eq!(both.size(), [12, 2]);
        let m = make(
            "batchnorm1d",
            vec![Value::Int(2), kw(vec![("momentum", Value::Null)])],
        );
        let _ = fwd(&m, &[&x1]);
        assert_close(
            m.buffer_at(0).expect("declared"),
            &x1.mean_dim(0, false, Kind::Float),
        );
    }

    #[test]
    fn batchnorm_options() {
        let m = make(
            "batchnorm2d",
            vec![Value::Int(3), kw(vec![("affine", false.into())])],
        );
        assert!(shapes(&m).is_empty());
        assert_eq!(buffer_shapes(&m).len(), 3);
        let mut m = make(
            "batchnorm1d",
            vec![Value::Int(3), kw(vec![("track", false.into())])],
        );
        assert!(buffer_shapes(&m).is_empty());
        m.set_training(false);
        let x = randn(&[5, 3, 4]);
        let want = x.batch_norm(
            Some(m.param_at(0).expect("declared")),
            Some(m.param_at(1).expect("declared")),
            None::<&Tensor>,
            None,
            true,
            0.1,
            1e-5,
            false,
        );
        assert_close(&fwd(&m, &[&x]), &want);
        let e = build_err(
            "batchnorm1d",
            vec![Value::Int(3), Value::Float(1e-5), Value::Int(2)],
        );
        assert_eq!(e, "batchnorm1d: momentum must be in the range 0-1, given 2");
        let m = make("batchnorm2d", vec![Value::Int(3)]);
        let e = m.forward(&[randn(&[2, 3])]).expect_err("2d");
        assert_eq!(e.to_string(), "batchnorm2d: expected 4D input, given 2D");
        let e = m.forward(&[randn(&[1, 3, 1, 1])]).expect_err("one value");
        assert!(
            e.to_string()
                .starts_with("batchnorm2d: expected more than 1 value per channel"),
            "{e}"
        );
        assert!(m.forward(&[randn(&[2, 4, 2, 2])]).is_err());
    }

    #[test]
    fn instancenorm_stats_and_buffers() {
        let m = make("instancenorm2d", vec![Value::Int(3)]);
        assert!(shapes(&m).is_empty() && buffer_shapes(&m).is_empty());
        let x = randn(&[2, 3, 4, 5]) * 3 + 1;
        // each sample's channel normalized over its own values
        let dims = [2i64, 3];
        let mean = x.mean_dim(dims.as_slice(), true, Kind::Float);
        let var = x.var_dim(dims.as_slice(), false, true);
        assert_close(&fwd(&m, &[&x]), &((&x - mean) / (var + 1e-5).sqrt()));
        // unbatched input: the same as a batch of one
        let x1 = x.get(0);
        assert_close(
            &fwd(&m, &[&x1]),
            &fwd(&m, &[&x1.unsqueeze(0)]).squeeze_dim(0),
        );
        let mut m = make(
            "instancenorm1d",
            vec![
                Value::Int(3),
                Value::Float(1e-5),
                Value::Float(0.5),
                Value::Bool(true),
                Value::Bool(true),
            ],
        );
        assert_eq!(shapes(&m), named(&[("weight", &[3]), ("bias", &[3])]));
        let bufs = named(&[
            ("running_mean", &[3]),
            ("running_var", &[3]),
            ("num_batches_tracked", &[]),
        ]);
        assert_eq!(buffer_shapes(&m), bufs);
        let x = randn(&[4, 3, 6]) + 2;
        let _ = fwd(&m, &[&x]);
        // running mean: momentum 0.5 toward the mean of the instances' means
        let mean = x.mean_dim([2i64].as_slice(), false, Kind::Float).mean_dim(
            [0i64].as_slice(),
            false,
            Kind::Float,
        );
        assert_close(m.buffer_at(0).expect("declared"), &(mean * 0.5));
        assert_eq!(m.buffer_at(2).expect("declared").int64_value(&[]), 0);
        // evaluation: the running statistics
        m.set_training(false);
        let rm = m.buffer_at(0).expect("declared").view([1, 3, 1]);
        let rv = m.buffer_at(1).expect("declared").view([1, 3, 1]);
        assert_close(&fwd(&m, &[&x]), &((&x - rm) / (rv + 1e-5).sqrt()));
        let e = m.forward(&[randn(&[4, 2, 6])]).expect_err("channels");
        assert!(
            e.to_string()
                .starts_with("instancenorm1d: expected 3 channels in dimension 1"),
            "{e}"
        );
        let e = make("instancenorm3d", vec![Value::Int(3)])
            .forward(&[randn(&[3, 4, 4])])
            .expect_err("3d");
        assert_eq!(
            e.to_string(),
            "instancenorm3d: expected 4D or 5D input, given 3D"
        );
        assert_eq!(
            build_err("instancenorm2d", vec![]),
            "instancenorm2d: in not defined"
        );
    }

    #[test]
    fn layernorm_and_groupnorm() {
        let m = make("layernorm", vec![Value::from(vec![3i64, 4])]);
        assert_eq!(shapes(&m), named(&[("weight", &[3, 4]), ("bias", &[3, 4])]));
        let x = randn(&[2, 3, 4]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.layer_norm(
                [3, 4],
                Some(m.param_at(0).expect("declared")),
                Some(m.param_at(1).expect("declared")),
                1e-5,
                false,
            ),
        );
        let m = make(
            "layernorm",
            vec![Value::Int(4), kw(vec![("bias", false.into())])],
        );
        assert_eq!(shapes(&m), named(&[("weight", &[4])]));
        assert_close(
            &fwd(&m, &[&x]),
            &x.layer_norm(
                [4],
                Some(m.param_at(0).expect("declared")),
                None,
                1e-5,
                false,
            ),
        );
        let m = make(
            "layernorm",
            vec![Value::Int(4), Value::Float(1e-3), Value::Bool(false)],
        );
        assert!(shapes(&m).is_empty());
        assert!(m.forward(&[randn(&[2, 5])]).is_err());
        let m = make("groupnorm", vec![Value::Int(2), Value::Int(6)]);
        assert_eq!(shapes(&m), named(&[("weight", &[6]), ("bias", &[6])]));
        let x = randn(&[3, 6, 5]);
        assert_close(
            &fwd(&m, &[&x]),
            &x.group_norm(
                2,
                Some(m.param_at(0).expect("declared")),
                Some(m.param_at(1).expect("declared")),
                1e-5,
                false,
            ),
        );
        assert_eq!(
            build_err("groupnorm", vec![Value::Int(4), Value::Int(6)]),
            "groupnorm: channels (6) must be divisible by groups (4)"
        );
        assert_eq!(
            build_err("layernorm", vec![]),
            "layernorm: shape not defined"
        );
        assert!(m.forward(&[randn(&[3, 4, 5])]).is_err());
    }
}
