//! A module's state as PyTorch's `state_dict` holds it: names and values of the
//! parameters and buffers, to give to torch.nn modules and to take from them.

use tch::Tensor;

use super::Module;
use crate::error::{invalid, Result};

/// The keys and shapes of a failed load, as torch's message lists them.
fn quoted(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Module {
    /// Parameters and buffers with their full dotted names, in the order of PyTorch's
    /// `state_dict()`: a module's parameters, then its buffers, then each child's,
    /// depth first. The tensors share storage with the module.
    pub fn state_entries(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.collect_state("", &mut out);
        out
    }

    fn collect_state(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (k, t) in self.params.iter().chain(&self.buffers) {
            out.push((format!("{prefix}{k}"), t.shallow_clone()));
        }
        for (k, c) in &self.children {
            c.collect_state(&format!("{prefix}{k}."), out);
        }
    }

    /// The module's state as PyTorch's `state_dict()` gives it for the equivalent
    /// torch.nn module: names in its order ([`Module::state_entries`]) with detached
    /// copies of the parameters and buffers, on the module's device.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let _g = tch::no_grad_guard();
        self.state_entries()
            .into_iter()
            .map(|(k, t)| {
                let mut c = t.f_empty_like()?;
                c.f_copy_(&t)?;
                Ok((k, c))
            })
            .collect()
    }

    /// Copies the values of `sd` (as PyTorch's `state_dict()` gives them) into the
    /// parameters and buffers of the same names, converted to each one's dtype and
    /// device. Returns the missing keys (the module's names not in `sd`) and the
    /// unexpected ones (names in `sd` the module does not have); with `strict`, either
    /// is an [`crate::Error::Invalid`] listing them, as torch's message does. A shape
    /// that differs is an error naming the first such key and both shapes, strict or
    /// not. Every key and shape is checked and every value converted before anything
    /// is copied: a failed call changes nothing.
    pub fn load_state_dict(
        &self,
        sd: &[(String, Tensor)],
        strict: bool,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let own = self.state_entries();
        let find = |k: &str| sd.iter().find(|(n, _)| n == k);
        let missing: Vec<String> = own
            .iter()
            .filter(|(k, _)| find(k).is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let mut unexpected: Vec<String> = Vec::new();
        for (k, _) in sd {
            if !own.iter().any(|(n, _)| n == k) && !unexpected.contains(k) {
                unexpected.push(k.clone());
            }
        }
        if strict && (!missing.is_empty() || !unexpected.is_empty()) {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!(
                    "Missing key(s) in state_dict: {}",
                    quoted(&missing)
                ));
            }
            if !unexpected.is_empty() {
                parts.push(format!(
                    "Unexpected key(s) in state_dict: {}",
                    quoted(&unexpected)
                ));
            }
            return Err(invalid(format!(
                "error(s) in loading state_dict for {}: {}",
                self.kind,
                parts.join("; ")
            )));
        }
        let mut pairs = Vec::new();
        for (k, p) in &own {
            let Some((_, v)) = find(k) else { continue };
            crate::tensor::kinds::check(v).map_err(|e| invalid(format!("`{k}`: {e}")))?;
            if !v.defined() || v.size() != p.size() {
                return Err(invalid(format!(
                    "size mismatch for `{k}`: given shape {:?}, the module's is {:?}",
                    if v.defined() { v.size() } else { vec![] },
                    p.size()
                )));
            }
            if v.is_complex() && !p.is_complex() {
                return Err(invalid(format!(
                    "`{k}` is complex, the module's is torch.{}",
                    crate::tensor::kinds::dtype_name(p)
                )));
            }
            pairs.push((p, v));
        }
        let _g = tch::no_grad_guard();
        // converted copies first: a conversion that fails leaves the module as it was
        let conv = pairs
            .iter()
            .map(|(p, v)| Ok(v.f_to_device_(p.device(), p.f_kind()?, false, true)?))
            .collect::<Result<Vec<_>>>()?;
        for ((p, _), v) in pairs.iter().zip(&conv) {
            p.shallow_clone().f_copy_(v)?;
        }
        Ok((missing, unexpected))
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use crate::nn::layers;
    use crate::nn::Module;
    use crate::value::Value;

    fn net() -> Module {
        let bn = Module::layer("batchnorm1d", &[Value::Int(3)], &[]).expect("batchnorm");
        Module::sequential([layers::linear(2, 3).expect("linear"), bn]).expect("sequential")
    }

    fn names(sd: &[(String, Tensor)]) -> Vec<&str> {
        sd.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn order_and_copies() {
        let q = net();
        let sd = q.state_dict().expect("state_dict");
        assert_eq!(
            names(&sd),
            [
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "1.running_mean",
                "1.running_var",
                "1.num_batches_tracked"
            ]
        );
        assert_eq!(sd[6].1.kind(), Kind::Int64);
        assert!(!sd[0].1.requires_grad());
        // a copy: changing it leaves the module as it was
        let _ = sd[0].1.shallow_clone().fill_(7.0);
        let w = q.param("0.weight").expect("weight");
        assert!(w.ne(7.0).all().int64_value(&[]) == 1);
    }

    #[test]
    fn load_converts_and_reports() {
        let (a, b) = (net(), net());
        let mut sd = a.state_dict().expect("state_dict");
        // float64 values are converted to the module's float32
        sd[0].1 = sd[0].1.to_kind(Kind::Double) + 1.0;
        let (miss, unexp) = b.load_state_dict(&sd, true).expect("load");
        assert!(miss.is_empty() && unexp.is_empty());
        let w = b.param("0.weight").expect("weight");
        assert_eq!(w.kind(), Kind::Float);
        assert!(w.requires_grad());
        let want = a.param("0.weight").expect("weight") + 1.0;
        assert!(w.allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn strict_and_shapes_change_nothing() {
        let (a, b) = (net(), net());
        let mut sd = a.state_dict().expect("state_dict");
        sd.retain(|(k, _)| k != "1.running_var");
        sd.push(("extra".into(), Tensor::from(1.0)));
        let e = b
            .load_state_dict(&sd, true)
            .expect_err("strict")
            .to_string();
        assert!(
            e.contains("Missing key(s) in state_dict: \"1.running_var\""),
            "{e}"
        );
        assert!(
            e.contains("Unexpected key(s) in state_dict: \"extra\""),
            "{e}"
        );
        let (miss, unexp) = b.load_state_dict(&sd, false).expect("not strict");
        assert_eq!(miss, ["1.running_var"]);
        assert_eq!(unexp, ["extra"]);
        // the copy went in, the missing buffer kept its value
        assert!(b
            .param("0.weight")
            .expect("weight")
            .equal(&a.param("0.weight").expect("weight")));
        let c = net();
        let c0 = c.state_dict().expect("state_dict");
        let mut bad = a.state_dict().expect("state_dict");
        bad[2].1 = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu));
        let e = c
            .load_state_dict(&bad, false)
            .expect_err("shape")
            .to_string();
        assert!(e.contains("size mismatch for `1.weight`"), "{e}");
        assert!(e.contains("[4]") && e.contains("[3]"), "{e}");
        for ((_, x), (_, y)) in c.state_dict().expect("state_dict").iter().zip(&c0) {
            assert!(x.equal(y));
        }
    }
}
