//! A stage's data: inputs and targets batched together, shuffled with a tracked permutation.

use tch::{Device, Kind, Tensor};

use crate::error::{err, Result};
use crate::model::options::Options;
use crate::tensor::{batch_count, common_size, Tensors};

/// Inputs and targets of one stage, batched and shuffled as one.
#[derive(Debug)]
pub struct Data {
    all: Tensors,
    nx: usize,
    perm: Option<Tensor>,
    index: Option<i64>,
}

/// A stage: options and data, for training or testing.
#[derive(Debug)]
pub struct Stage {
    /// The stage's options.
    pub opts: Options,
    data: Option<Data>,
    /// State of the seeded shuffle generator (None until first seeded use).
    gen: Option<(i64, u64)>,
}

impl Stage {
    /// A stage with default options and no data.
    pub fn new(train: bool) -> Stage {
        Stage {
            opts: Options::new(train),
            data: None,
            gen: None,
        }
    }

    /// True once data is defined.
    pub fn has_data(&self) -> bool {
        self.data.is_some()
    }

    /// Defines inputs and (optional) targets; returns the number of batches.
    /// A rejected definition keeps the old data.
    pub fn set_data(&mut self, func: &str, x: Vec<Tensor>, y: Option<Vec<Tensor>>) -> Result<i64> {
        if x.is_empty() {
            return Err(err(func, "no input tensors given"));
        }
        let nx = x.len();
        let mut all = x;
        all.extend(y.unwrap_or_default());
        for t in &all {
            if t.dim() == 0 {
                return Err(err(
                    func,
                    "data must have at least one dimension, given a scalar",
                ));
            }
        }
        common_size(func, &all, 0)?;
        // the stage keeps tensors of its own (sharing storage, not autograd
        // state or sizes) so nothing done to the given tensors reaches them
        let all = all
            .iter()
            .map(Tensor::f_detach)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.data = Some(Data {
            all: Tensors::vector(all),
            nx,
            perm: None,
            index: None,
        });
        Ok(self.batches())
    }

    /// Replaces the inputs, keeping the targets.
    pub fn set_inputs(&mut self, func: &str, x: Vec<Tensor>) -> Result<i64> {
        let y = self.targets_full();
        self.set_data(func, x, y)
    }

    /// Replaces the targets, keeping the inputs (which must be defined).
    pub fn set_targets(&mut self, func: &str, y: Option<Vec<Tensor>>) -> Result<i64> {
        let x = self
            .inputs_full()
            .ok_or_else(|| err(func, "no inputs defined"))?;
        self.set_data(func, x, y)
    }

    fn data_mut(&mut self, func: &str) -> Result<&mut Data> {
        let train = self.opts.train;
        self.data.as_mut().ok_or_else(|| {
            err(
                func,
                format!(
                    "no {} data defined",
                    if train { "training" } else { "test" }
                ),
            )
        })
    }

    /// Current inputs (the batch when batching).
    pub fn inputs(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().map(|d| {
            d.all.items()[..d.nx]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    /// Current targets, None when no targets were given.
    pub fn targets(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().filter(|d| d.all.len() > d.nx).map(|d| {
            d.all.items()[d.nx..]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    fn inputs_full(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().map(|d| {
            d.all.full()[..d.nx]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    fn targets_full(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().filter(|d| d.all.len() > d.nx).map(|d| {
            d.all.full()[d.nx..]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    /// Full number of rows.
    pub fn rows(&self) -> i64 {
        self.data
            .as_ref()
            .and_then(|d| common_size("data", d.all.full(), 0).ok())
            .unwrap_or(0)
    }

    /// Rows in the current batch (all rows when not batching).
    pub fn size(&self) -> i64 {
        self.data
            .as_ref()
            .and_then(|d| d.all.items().first().map(|t| t.size()[0]))
            .unwrap_or(0)
    }

    fn width(&self) -> i64 {
        let n = self.rows();
        let w = self.opts.batchsize;
        if w <= 0 || w > n {
            n
        } else {
            w
        }
    }

    /// Number of batches this task processes.
    pub fn batches(&self) -> i64 {
        let all = batch_count(self.rows(), self.opts.batchsize, self.opts.droplast);
        let (k, t) = (self.opts.task, self.opts.tasks.max(1));
        if all <= k {
            0
        } else {
            (all - k + t - 1) / t
        }
    }

    /// Moves to the next batch: true while one is selected, false (full size
    /// restored) after the last.
    pub fn batch(&mut self, func: &str) -> Result<bool> {
        let count = batch_count(self.rows(), self.opts.batchsize, self.opts.droplast);
        let w = self.width();
        let (task, tasks) = (self.opts.task, self.opts.tasks.max(1));
        let d = self.data_mut(func)?;
        let next = match d.index {
            None => task,
            Some(i) => i + tasks,
        };
        if next >= count {
            d.all.restore();
            d.index = None;
            return Ok(false);
        }
        d.all.narrow_rows(func, w, next)?;
        d.index = Some(next);
        Ok(true)
    }

    /// Restores full size; returns the number of rows.
    pub fn restore(&mut self) -> i64 {
        if let Some(d) = self.data.as_mut() {
            d.all.restore();
            d.index = None;
        }
        self.rows()
    }

    /// Restore, shuffle when the option says so; returns the number of batches (-1 with no data).
    pub fn init(&mut self, func: &str) -> Result<i64> {
        if self.data.is_none() {
            return Ok(-1);
        }
        self.restore();
        if self.opts.train && self.opts.shuffle {
            self.shuffle(func)?;
        }
        Ok(self.batches())
    }

    /// Shuffles inputs and targets with one permutation, tracking it for unshuffle.
    pub fn shuffle(&mut self, func: &str) -> Result<()> {
        let n = self.rows();
        let p = self.permutation(n)?;
        let d = self.data_mut(func)?;
        d.index = None;
        d.all.permute(0, &p)?;
        d.perm = Some(match d.perm.take() {
            None => p,
            Some(old) => old.f_index_select(0, &p.f_to_device(old.device())?)?,
        });
        Ok(())
    }

    /// Restores the original row order.
    pub fn unshuffle(&mut self, func: &str) -> Result<()> {
        let d = self.data_mut(func)?;
        d.index = None;
        if let Some(p) = d.perm.take() {
            let inv = p.f_argsort(0, false)?;
            d.all.permute(0, &inv)?;
        }
        Ok(())
    }

    /// The permutation applied so far (row i holds original row perm[i]).
    pub fn order(&self) -> Option<&Tensor> {
        self.data.as_ref().and_then(|d| d.perm.as_ref())
    }

    fn permutation(&mut self, n: i64) -> Result<Tensor> {
        let dev = self
            .data
            .as_ref()
            .and_then(|d| d.all.items().first().map(Tensor::device))
            .unwrap_or(Device::Cpu);
        match self.opts.shuffleseed {
            None => {
                let gdev = if self.opts.shufflecuda && tch::Cuda::is_available() {
                    dev
                } else {
                    Device::Cpu
                };
                Ok(Tensor::f_randperm(n, (Kind::Int64, gdev))?.f_to_device(dev)?)
            }
            Some(seed) => {
                // every task seeds the same generator, so all draw the same permutation
                let state = match self.gen {
                    Some((s, st)) if s == seed => st,
                    _ => seed as u64,
                };
                let (p, st) = seeded_perm(n, state);
                self.gen = Some((seed, st));
                Ok(Tensor::from_slice(&p).f_to_device(dev)?)
            }
        }
    }
}

/// Fisher-Yates with SplitMix64: the same seed gives the same permutations on every task.
fn seeded_perm(n: i64, mut state: u64) -> (Vec<i64>, u64) {
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<i64> = (0..n).collect();
    for i in (1..p.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    (p, state)
}
