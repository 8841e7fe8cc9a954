//! Devices and dtypes: moving and converting tensors, modules, optimizers and
//! models (`to`), copies elsewhere (`copyto`), and where an object lives.
//!
//! Modules and optimizers are converted in place: each parameter keeps its
//! identity (its data is replaced, as PyTorch's `module.to` does), so an
//! optimizer, a model or a handle that shares a parameter sees it moved.
//! Every new tensor is made before any is put in place, so a call that fails
//! (an unknown device, memory exhausted) changes nothing.

use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};
use crate::tensor::{device_name, kind_name, TensorOptions, Tensors};

/// Where and as what to move: a device and a floating dtype, either optional,
/// and whether a host-to-device copy may return before it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// The device to move to; None keeps each tensor's own.
    pub device: Option<Device>,
    /// The dtype floating-point tensors become; None keeps each tensor's own.
    pub kind: Option<Kind>,
    /// Copies from pinned host memory to a GPU may overlap with host work.
    pub non_blocking: bool,
}

impl Place {
    /// A place from tensor options (device and dtype; a gradient flag is an error
    /// here: modules and optimizers decide their tensors' flags).
    pub fn from_options(o: &TensorOptions, non_blocking: bool) -> Result<Place> {
        if o.grad.is_some() {
            return Err(invalid(
                "grad/nograd apply to tensors: use freeze/unfreeze for parameters",
            ));
        }
        let p = Place {
            device: o.device,
            kind: o.kind,
            non_blocking,
        };
        p.check_floating()?;
        Ok(p)
    }

    /// Modules, optimizers and models convert to floating dtypes only, as PyTorch's do.
    pub fn check_floating(&self) -> Result<()> {
        match self.kind {
            Some(k) if !is_float(k) => Err(invalid(format!(
                "modules and optimizers take a floating dtype (float, double, half, bfloat), given {}",
                kind_name(k)
            ))),
            _ => Ok(()),
        }
    }

    /// `t` where it belongs, or None where it is there already. The dtype applies
    /// to floating-point tensors only (step counts and indices keep theirs).
    pub fn convert(&self, t: &Tensor) -> Result<Option<Tensor>> {
        if !t.defined() {
            return Ok(None);
        }
        let (k, d) = (t.f_kind()?, t.device());
        let kind = match self.kind {
            Some(want) if is_float(k) => want,
            _ => k,
        };
        let device = self.device.unwrap_or(d);
        if kind == k && device == d {
            return Ok(None);
        }
        let _g = tch::no_grad_guard();
        Ok(Some(t.f_detach()?.f_to_device_(
            device,
            kind,
            self.non_blocking,
            false,
        )?))
    }
}

/// Floating-point dtypes (the ones autograd and modules train).
pub fn is_float(k: Kind) -> bool {
    matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}

/// `t` moved and converted as `o` says (device, dtype, gradient flag). With
/// nothing to change the result is `t` itself (a shallow copy of the same
/// tensor); a gradient flag alone changes `t`'s own flag where `t` is a leaf.
/// A moved or converted tensor is a new leaf, tracking gradients where `o`
/// says `grad`, or where `t` did and `o` says nothing.
pub fn tensor_to(t: &Tensor, o: &TensorOptions, non_blocking: bool) -> Result<Tensor> {
    check_to(t, o)?;
    let (k, d) = (t.f_kind()?, t.device());
    let kind = o.kind.unwrap_or(k);
    let device = o.device.unwrap_or(d);
    let grad = o.grad.unwrap_or(t.requires_grad());
    if kind == k && device == d && grad == t.requires_grad() {
        return Ok(t.shallow_clone());
    }
    let base = if kind != k || device != d {
        let _g = tch::no_grad_guard();
        t.f_detach()?
            .f_to_device_(device, kind, non_blocking, false)?
    } else if t.f_is_leaf()? {
        t.shallow_clone()
    } else {
        t.f_detach()?
    };
    Ok(base.f_set_requires_grad(grad)?)
}

/// Refuses what [`tensor_to`] cannot do to `t`: gradients for a tensor that is not
/// floating point.
fn check_to(t: &Tensor, o: &TensorOptions) -> Result<()> {
    let kind = o.kind.unwrap_or(t.f_kind()?);
    let grad = o.grad.unwrap_or(t.requires_grad());
    if grad && !(is_float(kind) || matches!(kind, Kind::ComplexFloat | Kind::ComplexDouble)) {
        return Err(invalid(format!(
            "gradients need a floating point tensor, given {}",
            kind_name(kind)
        )));
    }
    Ok(())
}

/// A copy of `t` as `o` says, leaving `t` where it was (`copyto`): always new
/// storage, even where device and dtype are `t`'s own.
pub fn tensor_copy(t: &Tensor, o: &TensorOptions, non_blocking: bool) -> Result<Tensor> {
    let k = t.f_kind()?;
    let kind = o.kind.unwrap_or(k);
    let device = o.device.unwrap_or(t.device());
    let grad = o.grad.unwrap_or(false);
    if grad && !(is_float(kind) || matches!(kind, Kind::ComplexFloat | Kind::ComplexDouble)) {
        return Err(invalid(format!(
            "gradients need a floating point tensor, given {}",
            kind_name(kind)
        )));
    }
    let _g = tch::no_grad_guard();
    let c = t
        .f_detach()?
        .f_to_device_(device, kind, non_blocking, true)?;
    Ok(c.f_set_requires_grad(grad)?)
}

/// Puts `new`'s data in `t` in place: every handle sharing `t` sees it.
pub(crate) fn set_data(t: &Tensor, new: &Tensor) -> Result<()> {
    let mut h = t.shallow_clone();
    h.f_set_data(new)?;
    Ok(())
}

/// Converts `ts` in place as `p` says, their gradients too: every conversion is made
/// first, then put in place, so an error leaves every tensor as it was.
pub(crate) fn convert_in_place(ts: &[Tensor], p: &Place) -> Result<()> {
    let mut done = Vec::new();
    for t in ts {
        if let Some(n) = p.convert(t)? {
            done.push((t.shallow_clone(), n));
        }
        let g = t.grad();
        if let Some(n) = p.convert(&g)? {
            done.push((g, n));
        }
    }
    for (t, n) in &done {
        set_data(t, n)?;
    }
    Ok(())
}

impl Tensors {
    /// Moves or converts every member as `o` says ([`tensor_to`]); refused while
    /// batching (restore first). A failed call changes nothing.
    pub fn to(&mut self, o: &TensorOptions, non_blocking: bool) -> Result<()> {
        if self.batching() {
            return Err(invalid(
                "cannot move or convert while batching: restore the full size first",
            ));
        }
        // a gradient flag alone changes a member in place: check every member first
        for t in self.items() {
            check_to(t, o)?;
        }
        let items = self
            .items()
            .iter()
            .map(|t| tensor_to(t, o, non_blocking))
            .collect::<Result<Vec<_>>>()?;
        self.set_items(items);
        Ok(())
    }

    /// Each member's device.
    pub fn devices(&self) -> Vec<Device> {
        self.items().iter().map(Tensor::device).collect()
    }
}

/// The device of the first of `ts` (None for none): where a module or an
/// optimizer lives.
pub fn first_device(ts: &[Tensor]) -> Option<Device> {
    ts.iter().find(|t| t.defined()).map(Tensor::device)
}

/// The name of the one device of `ts`, or an error naming the devices found
/// where they differ (`what`: the object's description).
pub fn one_device(ts: &[Tensor], what: &str) -> Result<Option<Device>> {
    let mut ds: Vec<Device> = Vec::new();
    for t in ts.iter().filter(|t| t.defined()) {
        if !ds.contains(&t.device()) {
            ds.push(t.device());
        }
    }
    match ds.as_slice() {
        [] => Ok(None),
        [d] => Ok(Some(*d)),
        _ => Err(invalid(format!(
            "{what} on several devices: {}",
            ds.iter()
                .map(|d| device_name(*d))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Where `data` goes to meet a module on `module`: Some(device) where host
/// tensors must be copied to the module's GPU batch by batch, None where
/// everything is in place already. Data on a GPU for a host module, or on
/// another GPU, is an error naming both (`what`: the data's description).
pub fn placement(data: &[Tensor], module: Option<Device>, what: &str) -> Result<Option<Device>> {
    let Some(md) = module else {
        return Ok(None);
    };
    let mut copy = false;
    for t in data.iter().filter(|t| t.defined()) {
        let d = t.device();
        if d == md {
            continue;
        }
        if d == Device::Cpu {
            copy = true;
            continue;
        }
        return Err(invalid(format!(
            "{what} on {}, the module on {}: move the module or the data (to)",
            device_name(d),
            device_name(md)
        )));
    }
    Ok(copy.then_some(md))
}

/// `ts` on `device` (None: as they are): host tensors are copied without
/// blocking (a real overlap where the host memory is pinned), others are left.
pub fn place(ts: Vec<Tensor>, device: Option<Device>) -> Result<Vec<Tensor>> {
    let Some(d) = device else {
        return Ok(ts);
    };
    ts.into_iter()
        .map(|t| {
            if t.defined() && t.device() != d {
                Ok(t.f_to_device_(d, t.f_kind()?, true, false)?)
            } else {
                Ok(t)
            }
        })
        .collect()
}

/// `ts` with every host tensor in pinned (page-locked) memory, for copies to a
/// GPU that do not block; tensors pinned already, or elsewhere, are as they were.
pub fn pinned(ts: &[Tensor], gpu: Device) -> Result<Option<Vec<Tensor>>> {
    let mut any = false;
    let mut out = Vec::with_capacity(ts.len());
    for t in ts {
        if t.defined() && t.device() == Device::Cpu && !t.f_is_pinned(gpu)? {
            out.push(t.f_pin_memory(gpu)?);
            any = true;
        } else {
            out.push(t.shallow_clone());
        }
    }
    Ok(any.then_some(out))
}

impl Tensors {
    /// Turns gradients off (`frozen`) or on for every member (a parameter
    /// dictionary's `freeze`/`unfreeze`); a frozen member loses its gradient.
    /// Every member must be floating point; checked before any changes.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        for x in self.full() {
            let k = x.f_kind()?;
            if !(is_float(k) || matches!(k, Kind::ComplexFloat | Kind::ComplexDouble)) {
                return Err(invalid(format!(
                    "gradients need a floating point tensor, given {}",
                    kind_name(k)
                )));
            }
        }
        for x in self.full() {
            let _ = x.f_set_requires_grad(!frozen)?;
        }
        if frozen {
            ktorch_shim::release_grads(self.full())?;
        }
        Ok(())
    }
}

impl Tensors {
    /// A new object of the same class (and member names) whose members are `f` of
    /// each full-size member: copies elsewhere (`copyto`), deep copies (`clone`).
    pub fn map_members(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensors> {
        let items = self.full().iter().map(f).collect::<Result<Vec<_>>>()?;
        Ok(match self.class() {
            crate::tensor::Class::Tensor => {
                Tensors::tensor(items.into_iter().next().unwrap_or_default())
            }
            crate::tensor::Class::Vector => Tensors::vector(items),
            crate::tensor::Class::Dict => {
                Tensors::dict(self.names().iter().cloned().zip(items).collect())?
            }
        })
    }

    /// A copy of every member as `o` says ([`tensor_copy`], `copyto`).
    pub fn copied(&self, o: &TensorOptions, non_blocking: bool) -> Result<Tensors> {
        self.map_members(|t| tensor_copy(t, o, non_blocking))
    }

    /// A deep copy (`clone`): every member copied to new memory, gradient flags kept.
    pub fn deep_clone(&self) -> Result<Tensors> {
        self.map_members(|t| {
            if !t.defined() {
                return Ok(Tensor::new());
            }
            let _g = tch::no_grad_guard();
            Ok(t.f_detach_copy()?.f_set_requires_grad(t.requires_grad())?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers;
    use crate::nn::Module;
    use crate::optim::Optimizer;
    use crate::value::Value;

    fn net() -> Module {
        Module::sequential([
            layers::linear(3, 4).expect("ok"),
            layers::relu().expect("ok"),
            layers::linear(4, 2).expect("ok"),
        ])
        .expect("ok")
    }

    #[test]
    fn module_to_double_keeps_parameter_identity_for_the_optimizer() {
        let q = net();
        let mut o = Optimizer::new("adam", q.parameters(), &[Value::Float(0.01)], &[]).expect("ok");
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        q.forward_first(&[x])
            .expect("ok")
            .sum(Kind::Float)
            .backward();
        o.step().expect("ok");
        let first = |p: &Tensor| p.flatten(0, -1).double_value(&[0]);
        let before: Vec<f64> = q.parameters().iter().map(first).collect();
        let p = Place {
            kind: Some(Kind::Double),
            ..Place::default()
        };
        q.to(&p).expect("ok");
        o.to(&p).expect("ok");
        for (t, b) in q.parameters().iter().zip(&before) {
            assert_eq!(t.kind(), Kind::Double);
            assert_eq!(first(t), *b);
        }
        // the optimizer holds the same parameters, now double, and steps on double data
        assert!(o.params().iter().all(|t| t.kind() == Kind::Double));
        let x = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        q.forward_first(&[x])
            .expect("ok")
            .sum(Kind::Double)
            .backward();
        o.step().expect("ok");
        assert_eq!(q.float_kind(), Some(Kind::Double));
    }

    #[test]
    fn refused_conversions_change_nothing() {
        let q = net();
        let p = Place {
            kind: Some(Kind::Int64),
            ..Place::default()
        };
        assert!(q.to(&p).is_err());
        assert_eq!(q.float_kind(), Some(Kind::Float));
        let mut v = Tensors::vector(vec![
            Tensor::from_slice(&[1.0f32]),
            Tensor::from_slice(&[1i64]),
        ]);
        let o = TensorOptions {
            grad: Some(true),
            ..TensorOptions::default()
        };
        assert!(v.to(&o, false).is_err());
        assert!(v.items().iter().all(|t| !t.requires_grad()));
    }

    #[test]
    fn frozen_parameters_lose_their_gradient_and_flag() {
        let q = net();
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        q.forward_first(&[x])
            .expect("ok")
            .sum(Kind::Float)
            .backward();
        let names = vec!["0.weight".to_string()];
        q.freeze(Some(&names), None, true).expect("ok");
        let flags = q.gradflags();
        assert_eq!(flags[0], ("0.weight".to_string(), false));
        assert!(flags[1..].iter().all(|(_, f)| *f));
        assert!(!q.param("0.weight").expect("ok").grad().defined());
        let bad = vec!["0.weight".to_string(), "0.wieght".to_string()];
        let e = q
            .freeze(Some(&bad), None, false)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("did you mean 0.weight"), "{e}");
        assert!(!q.param("0.weight").expect("ok").requires_grad());
    }

    #[test]
    fn placement_refuses_data_on_another_device_than_the_module() {
        let cpu = vec![Tensor::zeros([2], (Kind::Float, Device::Cpu))];
        assert_eq!(placement(&cpu, Some(Device::Cpu), "x").expect("ok"), None);
        assert_eq!(placement(&cpu, None, "x").expect("ok"), None);
        assert_eq!(
            placement(&cpu, Some(Device::Cuda(0)), "x").expect("ok"),
            Some(Device::Cuda(0))
        );
    }
}
