//! Mixed precision: autocast regions for forward and loss, and dynamic loss
//! scaling for float16 training, as torch.autocast and torch.amp.GradScaler do.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// Autocast for a pass or a step: the dtype, and whether the module is on CUDA.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cast {
    cuda: bool,
    kind: Kind,
}

impl Cast {
    /// The autocast region of option `kind` for a module on `device` (None: off).
    pub(crate) fn of(kind: Option<Kind>, device: Option<Device>) -> Option<Cast> {
        kind.map(|kind| Cast {
            cuda: matches!(device, Some(Device::Cuda(_))),
            kind,
        })
    }

    /// Autocast on until the guard is dropped.
    pub(crate) fn enter(&self) -> Result<ktorch_shim::Autocast> {
        Ok(ktorch_shim::Autocast::enter(self.cuda, self.kind)?)
    }

    /// Float16 training scales its loss.
    pub(crate) fn scales(&self) -> bool {
        self.kind == Kind::Half
    }
}

/// Enters `cast`'s region where there is one.
pub(crate) fn enter(cast: Option<&Cast>) -> Result<Option<ktorch_shim::Autocast>> {
    cast.map(Cast::enter).transpose()
}

/// Dynamic loss scaling with torch.amp.GradScaler's defaults: the loss is
/// multiplied by a scale (2^16 to start) before backward, gradients are
/// divided by it after; a step with a non-finite gradient is skipped and the
/// scale halved; 2000 finite steps in a row double it.
#[derive(Debug)]
pub(crate) struct Scaler {
    scale: Tensor,
    growth: Tensor,
}

const INIT_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: i64 = 2000;

impl Scaler {
    /// A scaler with its state on `device`.
    pub(crate) fn new(device: Device) -> Result<Scaler> {
        let scalar = [0i64; 0];
        Ok(Scaler {
            scale: Tensor::f_full(scalar.as_slice(), INIT_SCALE, (Kind::Float, device))?,
            growth: Tensor::f_full(scalar.as_slice(), 0, (Kind::Int, device))?,
        })
    }

    /// The state on `device` (moved where the module went since).
    pub(crate) fn on(&mut self, device: Device) -> Result<()> {
        if self.scale.device() != device {
            self.scale = self.scale.f_to_device(device)?;
            self.growth = self.growth.f_to_device(device)?;
        }
        Ok(())
    }

    /// The loss times the scale, for backward.
    pub(crate) fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        Ok(loss.f_mul(&self.scale)?)
    }

    /// Divides every defined gradient of `params` by the scale; true where any
    /// gradient holds an infinity or a NaN (a host read: float16 training
    /// syncs once a step, as GradScaler does). `found` is kept for [`Scaler::update`].
    pub(crate) fn unscale(&self, params: &[Tensor]) -> Result<(bool, Tensor)> {
        let _g = tch::no_grad_guard();
        let inv = self
            .scale
            .f_to_kind(Kind::Double)?
            .f_reciprocal()?
            .f_to_kind(Kind::Float)?;
        let mut found = Tensor::f_zeros([1], (Kind::Float, self.scale.device()))?;
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                g.f_internal_amp_non_finite_check_and_unscale(&mut found, &inv)?;
            }
        }
        let inf = found.f_double_value(&[0])? > 0.0;
        Ok((inf, found))
    }

    /// Halves the scale after a non-finite step, doubles it after enough finite ones.
    pub(crate) fn update(&mut self, found: &Tensor) -> Result<()> {
        let _g = tch::no_grad_guard();
        let _ = self.scale.f_internal_amp_update_scale_(
            &self.growth,
            found,
            GROWTH_FACTOR,
            BACKOFF_FACTOR,
            GROWTH_INTERVAL,
        )?;
        Ok(())
    }

    /// The scale now.
    pub fn value(&self) -> Result<f64> {
        Ok(self.scale.f_double_value(&[])?)
    }
}
