//! A pass stopped between batches ([`crate::Error::Interrupted`]), kept by its stage
//! for the next pass to finish.

use tch::{Device, Tensor};

use crate::error::{invalid, Result};
use crate::model::metrics::Accum;
use crate::model::options::Options;

/// A pass stopped between batches, as the next pass of its stage resumes it.
///
/// The next pass of the stage (`run`, `testrun`, [`crate::model::Model::pass_with`],
/// [`crate::model::Model::pass_watched`]) continues with the first batch not done,
/// in the row order of the stopped pass (no new shuffle), with its metrics
/// accumulated so far and its recurrent hidden state, and returns the metrics of the
/// whole epoch. The stage drops it when data is defined again, on an explicit
/// `batch`, `init`, `shuffle`, `unshuffle` or `restore`, and when the stage's options
/// are no longer those of the stopped pass.
#[derive(Debug)]
pub struct Paused {
    /// Index of the next batch to run (the batch's index in the data: it starts
    /// at row `next * batchsize`).
    pub(crate) next: i64,
    /// Rows of the data the pass ran over.
    pub(crate) rows: i64,
    /// The stage's options when the pass stopped.
    pub(crate) opts: Options,
    /// The metrics accumulated so far.
    pub(crate) acc: Accum,
    /// The recurrent state the next batch takes (option hidden).
    pub(crate) hidden: Vec<Tensor>,
    /// Put back (from a file) before the stage had data: the first data defined
    /// with as many rows keeps it, other data drops it.
    pub(crate) waiting: bool,
}

/// A stopped pass in plain parts, to save and put back.
#[derive(Debug)]
pub struct PausedParts {
    /// Index of the next batch to run.
    pub next: i64,
    /// Counts kept by the accumulator (e.g. "count", "seen").
    pub counts: Vec<(String, i64)>,
    /// Tensors of the accumulator and the hidden carry, by name (lists as "losses.0",
    /// "losses.1", ...; any naming you like as long as from_parts reads what to_parts
    /// writes).
    pub tensors: Vec<(String, Tensor)>,
}

impl Paused {
    /// Index of the next batch to run: the batch's index in the data, the first of
    /// its rows at `next * batchsize`.
    pub fn next(&self) -> i64 {
        self.next
    }

    /// Batches the stopped pass has done.
    pub fn done(&self) -> i64 {
        self.acc.seen()
    }

    /// The parts: the next batch; counts `seen` and `count` of the metrics and
    /// `rows` of the data; tensors of the metrics (`losses.i`, `correct`,
    /// `predict.i`, `output.i`, `hidden.i`, `cell.i`, `norms.i`) and of the recurrent
    /// state (`carry.i`). Tensors are shallow clones.
    pub(crate) fn to_parts(&self) -> PausedParts {
        let mut counts = vec![("rows".to_string(), self.rows)];
        let mut tensors = vec![];
        self.acc.to_parts(&mut counts, &mut tensors);
        for (i, t) in self.hidden.iter().enumerate() {
            tensors.push((format!("carry.{i}"), t.shallow_clone()));
        }
        PausedParts {
            next: self.next,
            counts,
            tensors,
        }
    }

    /// The stopped pass in `p`, with options `opts` (checked against them: see
    /// [`Paused::check`]).
    pub(crate) fn from_parts(p: PausedParts, opts: &Options) -> Result<Paused> {
        let rows = p
            .counts
            .iter()
            .find(|(k, _)| k == "rows")
            .map(|(_, n)| *n)
            .ok_or_else(|| invalid("a stopped pass has no count of the data's rows"))?;
        let mut rest = vec![];
        let acc = Accum::from_parts(&p.counts, p.tensors, &mut rest)?;
        let mut carry = vec![];
        for (k, t) in rest {
            match k
                .strip_prefix("carry.")
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(i) => carry.push((i, t)),
                None => {
                    return Err(invalid(format!(
                        "a stopped pass has an unknown tensor {k:?}"
                    )))
                }
            }
        }
        carry.sort_by_key(|(i, _)| *i);
        if carry.iter().enumerate().any(|(j, (i, _))| *i != j) {
            return Err(invalid(
                "a stopped pass's hidden state is not numbered 0, 1, ... without gaps",
            ));
        }
        let paused = Paused {
            next: p.next,
            rows,
            opts: opts.clone(),
            acc,
            hidden: carry.into_iter().map(|(_, t)| t).collect(),
            waiting: false,
        };
        paused.check(rows)?;
        Ok(paused)
    }

    /// Checks that the stopped pass fits its options and data of `rows` rows: the
    /// next batch is one this task visits, the metrics count the batches before it,
    /// a hidden state only with option hidden.
    pub(crate) fn check(&self, rows: i64) -> Result<()> {
        let o = &self.opts;
        let what = if o.train { "training" } else { "test" };
        if rows != self.rows {
            return Err(invalid(format!(
                "the stopped {what} pass ran over {} rows, the {what} data has {rows}: \
                 define the data it ran over, or drop the stopped pass",
                self.rows
            )));
        }
        let count = crate::tensor::batch_count(rows, o.batchsize, o.droplast);
        let tasks = o.tasks.max(1);
        let visits = self.next >= o.task && (self.next - o.task) % tasks == 0;
        if self.next < 0 || self.next >= count || !visits {
            return Err(invalid(format!(
                "the stopped {what} pass resumes at batch {}, which is not one that task {} \
                 of {tasks} visits among the {count} batches of the {what} data",
                self.next, o.task
            )));
        }
        let done = (self.next - o.task) / tasks;
        if self.acc.seen() != done {
            return Err(invalid(format!(
                "the stopped {what} pass has metrics of {} batches, it did {done} \
                 before batch {}",
                self.acc.seen(),
                self.next
            )));
        }
        self.acc.check(&o.metrics)?;
        if !self.hidden.is_empty() && !o.hidden {
            return Err(invalid(format!(
                "the stopped {what} pass carries a hidden state, the {what} options \
                 have hidden false"
            )));
        }
        Ok(())
    }

    /// Moves every tensor kept to `dev`, the module's device.
    pub(crate) fn move_to(&mut self, dev: Device) -> Result<()> {
        self.acc.move_to(dev)?;
        for t in &mut self.hidden {
            if t.device() != dev {
                *t = t.f_to_device(dev)?;
            }
        }
        Ok(())
    }
}
