//! Objects that hold parameters: the one place that says which tensors a
//! gradient reset, a clip or an optimizer step works on.

use tch::Tensor;

use crate::clip::distinct;
use crate::error::Result;
use crate::model::Model;
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::sync::lock;
use crate::tensor::Tensors;

/// Something holding parameters (shallow copies are returned: they share
/// storage and gradients with the holder's tensors).
pub trait Params {
    /// Every parameter, once each.
    fn parameters(&self) -> Result<Vec<Tensor>>;

    /// The parameters by optimizer group: one group where there are no groups.
    fn param_groups(&self) -> Result<Vec<Vec<Tensor>>> {
        Ok(vec![self.parameters()?])
    }
}

impl Params for Tensors {
    /// The full-size members.
    fn parameters(&self) -> Result<Vec<Tensor>> {
        Ok(self.full().iter().map(Tensor::shallow_clone).collect())
    }
}

impl Params for Module {
    /// The parameters of the whole tree, in PyTorch's order.
    fn parameters(&self) -> Result<Vec<Tensor>> {
        Ok(Module::parameters(self))
    }
}

impl Params for Optimizer {
    fn parameters(&self) -> Result<Vec<Tensor>> {
        Ok(distinct(self.params()))
    }

    fn param_groups(&self) -> Result<Vec<Vec<Tensor>>> {
        Ok(Optimizer::param_groups(self))
    }
}

impl Params for Model {
    /// Every parameter the model trains: the module's and the optimizer's.
    fn parameters(&self) -> Result<Vec<Tensor>> {
        let mut ps = lock(self.module())?.parameters();
        ps.extend(lock(self.optimizer())?.params());
        Ok(distinct(ps))
    }

    /// The optimizer's groups, or the module's parameters as one group when
    /// the optimizer has none.
    fn param_groups(&self) -> Result<Vec<Vec<Tensor>>> {
        let gs = lock(self.optimizer())?.param_groups();
        if gs.is_empty() {
            return Ok(vec![lock(self.module())?.parameters()]);
        }
        Ok(gs)
    }
}
