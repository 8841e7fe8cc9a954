//! nbeats: the original's N-BEATS container (knn::NBeats). Each child is a block
//! returning a backcast and a forecast; the input minus each block's backcast goes
//! to the next block, and the forecasts are summed.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["nbeats"];

pub(crate) fn build(g: &Given, kids: Vec<(String, Module)>) -> Result<Module> {
    Args::parse(g.kind, &[], g.pos, g.kw)?;
    let mut m = Module::new(g.kind, NBeats);
    for (k, c) in kids {
        m = m.with_child(&k, c);
    }
    Ok(m)
}

/// Runs the blocks in order: `b, f = block(x)`, `x = x - b`, `y = y + f`.
#[derive(Debug, Clone)]
struct NBeats;

/// The outputs of a block: a sequential block passes each child's first output to
/// the next and keeps all of its last child's (as libtorch's Sequential returns
/// its last module's result).
fn outputs(c: &Module, x: &Tensor) -> Result<Vec<Tensor>> {
    if c.kind() != "sequential" || c.children().is_empty() {
        return c.forward(std::slice::from_ref(x));
    }
    let mut cur = vec![x.shallow_clone()];
    for (_, k) in c.children() {
        cur.truncate(1);
        cur = k.forward(&cur)?;
    }
    Ok(cur)
}

fn block(kind: &str, key: &str, c: &Module, x: &mut Tensor, y: &mut Option<Tensor>) -> Result<()> {
    if c.kind() == "modulelist" {
        for (k, b) in c.children() {
            block(kind, &format!("{key}.{k}"), b, x, y)?;
        }
        return Ok(());
    }
    let out = outputs(c, x)?;
    if out.len() < 2 {
        return Err(err(
            kind,
            format!(
                "block {key} ({}) returned {} output(s), expecting a backcast and a forecast",
                c.kind(),
                out.len()
            ),
        ));
    }
    *x = x.f_sub(&out[0])?;
    *y = Some(match y.take() {
        Some(y) => y.f_add(&out[1])?,
        None => out[1].shallow_clone(),
    });
    Ok(())
}

impl Layer for NBeats {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        want_inputs(kind, xs, 1, 1)?;
        let mut x = xs[0].shallow_clone();
        let mut y = None;
        for (k, c) in m.children() {
            block(kind, k, c, &mut x, &mut y)?;
        }
        match y {
            Some(y) => Ok(vec![y]),
            None => Err(err(kind, "no blocks: nothing to forecast")),
        }
    }
    layer_clone!();
}
