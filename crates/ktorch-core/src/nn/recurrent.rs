//! Recurrent layers: rnn, gru, lstm, with PyTorch's parameter names and layout.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{spec::Given, uniform, unknown, want_inputs, Layer, Module};

pub(crate) const TYPES: &[&str] = &["rnn", "gru", "lstm"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Tanh,
    Relu,
    Gru,
    Lstm,
}

#[derive(Debug, Clone)]
struct Recur {
    cell: Cell,
    input: i64,
    hidden: i64,
    layers: i64,
    bias: bool,
    batchfirst: bool,
    dropout: f64,
    bi: bool,
}

pub(crate) fn build(g: &Given) -> Result<Module> {
    let (kind, pos, kw) = (g.kind, g.pos, g.kw);
    let (a, cell) = match kind {
        "rnn" => {
            let a = Args::parse(
                kind,
                &[
                    "in",
                    "hidden",
                    "layers",
                    "fn",
                    "bias",
                    "batchfirst",
                    "dropout",
                    "bi",
                ],
                pos,
                kw,
            )?;
            let cell = if a.choice("fn", "tanh", &["tanh", "relu"])? == "tanh" {
                Cell::Tanh
            } else {
                Cell::Relu
            };
            (a, cell)
        }
        "gru" | "lstm" => {
            let a = Args::parse(
                kind,
                &[
                    "in",
                    "hidden",
                    "layers",
                    "bias",
                    "batchfirst",
                    "dropout",
                    "bi",
                ],
                pos,
                kw,
            )?;
            (a, if kind == "gru" { Cell::Gru } else { Cell::Lstm })
        }
        _ => return Err(unknown(kind)),
    };
    let r = Recur {
        cell,
        input: a.req_pos("in")?,
        hidden: a.req_pos("hidden")?,
        layers: a.pos_int("layers", 1)?,
        bias: a.bool("bias", true)?,
        batchfirst: a.bool("batchfirst", false)?,
        dropout: a.float_in("dropout", 0.0, 0.0, 1.0)?,
        bi: a.bool("bi", false)?,
    };
    let gates = match cell {
        Cell::Tanh | Cell::Relu => 1,
        Cell::Gru => 3,
        Cell::Lstm => 4,
    };
    let (h, dirs) = (r.hidden, if r.bi { 2 } else { 1 });
    let bound = 1.0 / (h as f64).sqrt();
    let mut m = Module::new(kind, r.clone());
    // PyTorch's order: per layer, per direction, weight_ih, weight_hh, bias_ih, bias_hh
    for layer in 0..r.layers {
        let n = if layer == 0 { r.input } else { h * dirs };
        for dir in 0..dirs {
            let sfx = format!("l{layer}{}", if dir == 1 { "_reverse" } else { "" });
            m = m.with_param(
                &format!("weight_ih_{sfx}"),
                uniform(&[gates * h, n], bound)?,
            )?;
            m = m.with_param(
                &format!("weight_hh_{sfx}"),
                uniform(&[gates * h, h], bound)?,
            )?;
            if r.bias {
                m = m.with_param(&format!("bias_ih_{sfx}"), uniform(&[gates * h], bound)?)?;
                m = m.with_param(&format!("bias_hh_{sfx}"), uniform(&[gates * h], bound)?)?;
            }
        }
    }
    Ok(m)
}

impl Recur {
    /// A given initial state, checked against the expected size and made batched.
    fn state(
        &self,
        kind: &str,
        what: &str,
        t: &Tensor,
        want: &[i64],
        batched: bool,
    ) -> Result<Tensor> {
        let t = if batched {
            t.shallow_clone()
        } else {
            t.f_unsqueeze(1)?
        };
        if t.size() != want {
            let want: Vec<i64> = if batched {
                want.to_vec()
            } else {
                vec![want[0], want[2]]
            };
            let given = if batched {
                t.size()
            } else {
                vec![t.size()[0], t.size()[2]]
            };
            return Err(err(
                kind,
                format!("expected {what} of size {want:?}, given {given:?}"),
            ));
        }
        Ok(t)
    }
}

impl Layer for Recur {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        let kind = m.kind();
        let lstm = self.cell == Cell::Lstm;
        want_inputs(kind, xs, 1, if lstm { 3 } else { 2 })?;
        if lstm && xs.len() == 2 {
            return Err(err(
                kind,
                "expects both hidden and cell state, given hidden state only",
            ));
        }
        let x = &xs[0];
        let size = x.size();
        if size.len() != 2 && size.len() != 3 {
            return Err(err(
                kind,
                format!("expected 2D or 3D input, given {}D", size.len()),
            ));
        }
        if size[size.len() - 1] != self.input {
            return Err(err(
                kind,
                format!(
                    "expected input with {} features in the last dimension, given {size:?}",
                    self.input
                ),
            ));
        }
        let batched = size.len() == 3;
        let bdim = if self.batchfirst { 0 } else { 1 };
        let x = if batched {
            x.shallow_clone()
        } else {
            x.f_unsqueeze(bdim)?
        };
        let dirs = if self.bi { 2 } else { 1 };
        let want = [self.layers * dirs, x.size()[bdim as usize], self.hidden];
        let mut states = Vec::with_capacity(2);
        for (i, what) in ["hidden state", "cell state"]
            .into_iter()
            .enumerate()
            .take(if lstm { 2 } else { 1 })
        {
            states.push(match xs.get(i + 1) {
                Some(t) => self.state(kind, what, t, &want, batched)?,
                None => Tensor::f_zeros(want, (x.kind(), x.device()))?,
            });
        }
        let ps: Vec<Tensor> = m
            .own_params()
            .iter()
            .map(|(_, t)| t.shallow_clone())
            .collect();
        let (l, d, tr, bi, bf, b) = (
            self.layers,
            self.dropout,
            m.is_training(),
            self.bi,
            self.batchfirst,
            self.bias,
        );
        let mut out = match self.cell {
            Cell::Tanh => {
                let (y, h) = x.f_rnn_tanh(&states[0], &ps, b, l, d, tr, bi, bf)?;
                vec![y, h]
            }
            Cell::Relu => {
                let (y, h) = x.f_rnn_relu(&states[0], &ps, b, l, d, tr, bi, bf)?;
                vec![y, h]
            }
            Cell::Gru => {
                let (y, h) = x.f_gru(&states[0], &ps, b, l, d, tr, bi, bf)?;
                vec![y, h]
            }
            Cell::Lstm => {
                let (y, h, c) = x.f_lstm(&states, &ps, b, l, d, tr, bi, bf)?;
                vec![y, h, c]
            }
        };
        if !batched {
            out[0] = out[0].f_squeeze_dim(bdim)?;
            for t in out.iter_mut().skip(1) {
                *t = t.f_squeeze_dim(1)?;
            }
        }
        Ok(out)
    }
    layer_clone!();
}

#[cfg(test)]
#[path = "recurrent_tests.rs"]
mod tests;
