//! A stage's data: inputs and targets batched together, shuffled with a tracked permutation.

use tch::{Device, Kind, Tensor};

use crate::dist::{share, Group};
use crate::error::{invalid, Result};
use crate::model::options::{Options, Phase};
use crate::model::pause::{Paused, PausedParts};
use crate::tensor::{batch_count, common_size, kinds, Tensors};

/// Where training stands: the seeded shuffle generator (seed, state) and the row order.
pub type Position = (Option<(i64, u64)>, Option<Tensor>);

/// Inputs and targets of one stage, batched and shuffled as one.
#[derive(Debug)]
pub struct Data {
    all: Tensors,
    nx: usize,
    /// Rows when the data was given: tensors given as torch.Tensor are shared with
    /// the caller, who may resize them; every pass and batch checks they still agree.
    rows: i64,
    perm: Option<Tensor>,
    index: Option<i64>,
    /// The batch the next [`Stage::batch`] selects, where a resumed pass goes on.
    start: Option<i64>,
}

/// A stage: options and data, for training or testing.
#[derive(Debug)]
pub struct Stage {
    /// The stage's options.
    pub opts: Options,
    data: Option<Data>,
    /// State of the seeded shuffle generator (None until first seeded use).
    gen: Option<(i64, u64)>,
    /// The caller keeps the inputs' memory too (the Python binding: inputs given
    /// as torch.Tensor), and wants results in the same kind.
    shared: bool,
    /// The targets passed a run's check against the loss (cleared when data is
    /// defined again): later runs on the CPU do not read them again.
    targets_checked: bool,
    /// A loaded checkpoint's row order, put back when data of as many rows is defined.
    pending: Option<Tensor>,
    /// A pass stopped between batches, which the next pass finishes.
    paused: Option<Paused>,
    /// Passes completed without error.
    epochs: i64,
    /// The process group of the pass under way (option `dist`): set by the pass.
    shard: Option<Shard>,
}

/// A pass split over a process group: the group, and the device its collectives of row
/// orders use (the module's).
#[derive(Debug, Clone)]
pub(crate) struct Shard {
    pub(crate) group: Group,
    pub(crate) dev: Device,
}

/// Where the current batch is, in a pass split over a process group: its first row and
/// rows in the data, and this process's share of them (first row in the data, rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: i64,
    pub(crate) rows: i64,
    pub(crate) mine: (i64, i64),
}

impl Stage {
    /// A stage with default options and no data.
    pub fn new(phase: Phase) -> Stage {
        Stage {
            opts: Options::new(phase),
            data: None,
            gen: None,
            shared: false,
            targets_checked: false,
            pending: None,
            paused: None,
            epochs: 0,
            shard: None,
        }
    }

    /// Splits the passes that follow over a process group (None: one process), until set
    /// again: every batch is selected (options `task` and `tasks` ignored), narrowed to this
    /// rank's share, and a shuffle takes rank 0's permutation.
    pub(crate) fn set_shard(&mut self, s: Option<Shard>) {
        self.shard = s;
    }

    /// The batch selected now, in a pass split over a process group.
    pub(crate) fn span(&self) -> Option<Span> {
        let g = &self.shard.as_ref()?.group;
        let i = self.batch_index()?;
        let n = self.rows();
        let w = self.width(n);
        let start = i.checked_mul(w)?;
        let rows = w.min(n - start);
        let (a, k) = share(rows, g.rank(), g.size());
        Some(Span {
            start,
            rows,
            mine: (start + a, k),
        })
    }

    /// The rows of each batch of a whole pass (all batches, as a pass split over a process
    /// group visits them).
    pub(crate) fn layout(&self) -> Vec<i64> {
        let n = self.rows();
        let w = self.width(n);
        let count = batch_count(n, self.opts.batchsize, self.opts.droplast);
        (0..count).map(|i| w.min(n - i * w)).collect()
    }

    /// Task and number of tasks of this stage's batches: the options', or 0 of 1 in a pass
    /// split over a process group.
    fn task_of(&self) -> (i64, i64) {
        match self.shard {
            Some(_) => (0, 1),
            None => (self.opts.task, self.opts.tasks.max(1)),
        }
    }

    /// The number of passes of this stage completed without error (a pass stopped
    /// between batches and finished by the next counts once, when it completes).
    pub fn epochs(&self) -> i64 {
        self.epochs
    }

    /// Sets the number of passes completed (a loaded checkpoint's).
    pub fn set_epochs(&mut self, n: i64) {
        self.epochs = n;
    }

    /// Counts a pass completed.
    pub(crate) fn count_epoch(&mut self) {
        self.epochs = self.epochs.saturating_add(1);
    }

    /// The pass stopped between batches that the next pass of this stage resumes
    /// (None where the stage's options have changed since it stopped: the next
    /// pass starts afresh).
    pub fn paused(&self) -> Option<&Paused> {
        self.paused.as_ref().filter(|p| p.opts == self.opts)
    }

    /// The stopped pass this stage would resume, in parts (copies or shallow clones are fine).
    ///
    /// None where the stage's options have changed since the pass stopped (the next
    /// pass starts afresh, and a model loaded with these options must too).
    pub fn paused_parts(&self) -> Option<PausedParts> {
        self.paused().map(Paused::to_parts)
    }

    /// Puts back a stopped pass (read from a file): checked against the stage's
    /// current data and options when the next pass starts (batch index in range,
    /// etc.); a bad one gives a clear Error::Invalid then, or is refused here where
    /// it can be checked now.
    ///
    /// The stage's options now are taken as those of the stopped pass (a loaded
    /// model has its options from the same file): changed before the next pass,
    /// they make it start afresh. The parts are checked here against the options
    /// and the rows they record; with data defined already, its rows must be those.
    /// Without data, the first data defined with as many rows keeps the stopped
    /// pass (after the row order of [`Stage::set_position`] is put back), other
    /// data drops it. `None` drops any stopped pass. A refused one changes nothing.
    pub fn set_paused_parts(&mut self, p: Option<PausedParts>) -> Result<()> {
        let Some(p) = p else {
            self.paused = None;
            return Ok(());
        };
        let mut paused = Paused::from_parts(p, &self.opts)?;
        match self.data.as_ref() {
            Some(_) => paused.check(self.check()?)?,
            None => paused.waiting = true,
        }
        self.paused = Some(paused);
        Ok(())
    }

    /// Takes the stopped pass, leaving none.
    pub(crate) fn take_paused(&mut self) -> Option<Paused> {
        self.paused.take()
    }

    /// Keeps a stopped pass for the next pass to finish.
    pub(crate) fn keep_paused(&mut self, p: Paused) {
        self.paused = Some(p);
    }

    /// The batch selected now (its index in the data), None at full size.
    pub(crate) fn batch_index(&self) -> Option<i64> {
        self.data.as_ref().and_then(|d| d.index)
    }

    /// The index of the batch after the current one, if the pass has one.
    pub(crate) fn following_index(&self) -> Option<i64> {
        let count = batch_count(self.rows(), self.opts.batchsize, self.opts.droplast);
        self.batch_index()
            .and_then(|i| i.checked_add(self.task_of().1))
            .filter(|i| *i < count)
    }

    /// Where training stands, to save: the seeded shuffle generator's seed and state,
    /// and the row order in force (None where the data is in its given order).
    pub fn position(&self) -> Position {
        let order = match &self.data {
            Some(d) => d.perm.as_ref(),
            // a loaded position waiting for its data
            None => self.pending.as_ref(),
        };
        (self.gen, order.map(Tensor::shallow_clone))
    }

    /// Puts back a saved position: the generator now, the row order when data of as
    /// many rows is next defined (the same data given again).
    pub fn set_position(&mut self, gen: Option<(i64, u64)>, order: Option<Tensor>) {
        self.gen = gen;
        self.pending = order;
    }

    /// Whether a run has checked the targets since they were defined.
    pub(crate) fn targets_checked(&self) -> bool {
        self.targets_checked
    }

    /// Records that a run checked the targets.
    pub(crate) fn set_targets_checked(&mut self) {
        self.targets_checked = self.data.is_some();
    }

    /// Whether the caller said it shares the inputs' memory ([`Stage::set_shared`]).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Records whether the caller shares the inputs' memory (the binding hands
    /// results back as torch.Tensor then). Defining inputs again clears it.
    pub fn set_shared(&mut self, on: bool) {
        self.shared = on && self.data.is_some();
    }

    /// True once data is defined.
    pub fn has_data(&self) -> bool {
        self.data.is_some()
    }

    /// Defines inputs and (optional) targets; returns the number of batches.
    /// A rejected definition keeps the old data.
    pub fn set_data(&mut self, x: Vec<Tensor>, y: Option<Vec<Tensor>>) -> Result<i64> {
        if x.is_empty() {
            return Err(invalid("no input tensors given"));
        }
        let nx = x.len();
        let mut all = x;
        all.extend(y.unwrap_or_default());
        for t in &all {
            kinds::check(t)?;
            if t.dim() == 0 {
                return Err(invalid(
                    "data must have at least one dimension, given a scalar",
                ));
            }
        }
        let rows = common_size(&all, 0)?;
        // the stage keeps tensors of its own (sharing storage, not autograd
        // state or sizes) so nothing done to the given tensors reaches them
        let all = all
            .iter()
            .map(Tensor::f_detach)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut all = Tensors::vector(all);
        // a loaded checkpoint's row order, for the same data given again
        let perm = match self.pending.take() {
            Some(p) if p.numel() as i64 == rows && p.dim() == 1 => {
                let p = p.f_to_device(all.items()[0].device())?;
                all.permute(0, &p)?;
                Some(p)
            }
            _ => None,
        };
        self.shared = false;
        self.targets_checked = false;
        self.data = Some(Data {
            all,
            nx,
            rows,
            perm,
            index: None,
            start: None,
        });
        // new data drops a stopped pass, but for one put back (from a file) before
        // any data, which this data, of the rows it ran over, completes
        match self.paused.as_mut() {
            Some(p) if p.waiting && p.rows == rows => p.waiting = false,
            _ => self.paused = None,
        }
        Ok(self.batches())
    }

    /// Replaces the inputs, keeping the targets.
    pub fn set_inputs(&mut self, x: Vec<Tensor>) -> Result<i64> {
        let y = self.targets_full();
        self.set_data(x, y)
    }

    /// Replaces the targets, keeping the inputs (which must be defined).
    pub fn set_targets(&mut self, y: Option<Vec<Tensor>>) -> Result<i64> {
        let x = self
            .inputs_full()
            .ok_or_else(|| invalid("no inputs defined"))?;
        let shared = self.shared;
        let n = self.set_data(x, y)?;
        self.shared = shared;
        Ok(n)
    }

    fn data_mut(&mut self) -> Result<&mut Data> {
        let train = self.opts.train;
        self.data.as_mut().ok_or_else(|| {
            invalid(format!(
                "no {} data defined",
                if train { "training" } else { "test" }
            ))
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

    /// All inputs (not the batch's).
    pub fn inputs_full(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().map(|d| {
            d.all.full()[..d.nx]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    /// All targets (not the batch's), None when no targets were given.
    pub fn targets_full(&self) -> Option<Vec<Tensor>> {
        self.data.as_ref().filter(|d| d.all.len() > d.nx).map(|d| {
            d.all.full()[d.nx..]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
    }

    /// Full number of rows, as given (0 with no data).
    pub fn rows(&self) -> i64 {
        self.data.as_ref().map_or(0, |d| d.rows)
    }

    /// Checks that the data still has the rows it was given with (a torch.Tensor given
    /// as data is shared, and its owner may have resized it since); returns the rows.
    /// Reads sizes only: no device work.
    pub fn check(&self) -> Result<i64> {
        let Some(d) = self.data.as_ref() else {
            return Ok(0);
        };
        let full = d.all.full();
        let rows = |t: &Tensor| t.size().first().copied();
        if full.iter().all(|t| rows(t) == Some(d.rows)) {
            return Ok(d.rows);
        }
        let list = |ts: &[Tensor]| {
            ts.iter()
                .map(|t| rows(t).map_or_else(|| "a scalar".to_string(), |n| format!("{n} rows")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (x, y) = full.split_at(d.nx.min(full.len()));
        let mut msg = format!(
            "{} data changed size after it was given: inputs {}",
            if self.opts.train { "training" } else { "test" },
            list(x)
        );
        if !y.is_empty() {
            msg.push_str(&format!(", targets {}", list(y)));
        }
        msg.push_str(&format!(
            ", given with {} rows; define the data again",
            d.rows
        ));
        Err(invalid(msg))
    }

    /// [`Stage::check`] when `x` are the stage's current inputs (the same tensors,
    /// as a step on the stage's own data gets them), else nothing.
    pub fn check_if_own(&self, x: &[Tensor]) -> Result<()> {
        let own = self.data.as_ref().is_some_and(|d| {
            let mine = &d.all.items()[..d.nx.min(d.all.len())];
            mine.len() == x.len()
                && mine.iter().zip(x).all(|(a, b)| {
                    kinds::is_strided(b) && a.data_ptr() == b.data_ptr() && a.size() == b.size()
                })
        });
        if own {
            self.check()?;
        }
        Ok(())
    }

    /// Rows in the current batch (all rows when not batching).
    pub fn size(&self) -> i64 {
        self.data
            .as_ref()
            .and_then(|d| {
                d.all
                    .items()
                    .first()
                    .and_then(|t| t.size().first().copied())
            })
            .unwrap_or(0)
    }

    fn width(&self, n: i64) -> i64 {
        let w = self.opts.batchsize;
        if w <= 0 || w > n {
            n
        } else {
            w
        }
    }

    /// Number of batches this task processes: batches task, task+tasks, ... of all.
    pub fn batches(&self) -> i64 {
        let (task, tasks) = self.task_of();
        tasks_share(
            batch_count(self.rows(), self.opts.batchsize, self.opts.droplast),
            task,
            tasks,
        )
    }

    /// Moves to the next batch: true while one is selected, false (full size
    /// restored) after the last. A stopped pass is dropped: the next pass starts
    /// afresh.
    pub fn batch(&mut self) -> Result<bool> {
        self.paused = None;
        self.next_batch()
    }

    /// [`Stage::batch`], keeping a stopped pass (a pass's own batching).
    pub(crate) fn next_batch(&mut self) -> Result<bool> {
        let n = self.check()?;
        let count = batch_count(n, self.opts.batchsize, self.opts.droplast);
        let w = self.width(n);
        let (task, tasks) = self.task_of();
        let group = self
            .shard
            .as_ref()
            .map(|s| (s.group.rank(), s.group.size()));
        let d = self.data_mut()?;
        // past the last batch (or past i64::MAX, for a huge number of tasks): done
        let next = match (d.start.take(), d.index) {
            (Some(s), _) => Some(s),
            (None, None) => Some(task),
            (None, Some(i)) => i.checked_add(tasks),
        };
        let Some(next) = next.filter(|i| *i < count) else {
            d.all.restore();
            d.index = None;
            return Ok(false);
        };
        match group {
            Some((rank, size)) => {
                let start = next * w;
                let (a, k) = share(w.min(n - start), rank, size);
                d.all.narrow_share(w, next, start + a, k)?;
            }
            None => d.all.narrow_rows(w, next)?,
        }
        d.index = Some(next);
        Ok(true)
    }

    /// Restores full size, checks the data is still the size it was given with.
    fn restore_checked(&mut self) -> Result<i64> {
        self.end();
        self.check()
    }

    /// Restores full size; returns the number of rows. A stopped pass is dropped:
    /// the next pass starts afresh.
    pub fn restore(&mut self) -> i64 {
        self.paused = None;
        self.end()
    }

    /// [`Stage::restore`] along dimension `dim` (`restore(m, dim)`): a model's data is
    /// batched along its rows, so `dim` must be 0 (an error otherwise, nothing changed).
    pub fn restore_dim(&mut self, dim: i64) -> Result<i64> {
        if dim != 0 {
            return Err(invalid(format!(
                "a model's data is batched along dimension 0 (its rows), given dimension {dim}"
            )));
        }
        Ok(self.restore())
    }

    /// [`Stage::restore`], keeping a stopped pass (the end of a pass).
    pub(crate) fn end(&mut self) -> i64 {
        if let Some(d) = self.data.as_mut() {
            d.all.restore();
            d.index = None;
            d.start = None;
        }
        self.rows()
    }

    /// Makes ready to finish stopped pass `p`: full size, no new shuffle, the next
    /// [`Stage::batch`] selecting the first batch `p` did not do. Returns the
    /// number of batches of the whole pass. `p` is checked against the data
    /// (an error for one that does not fit: [`Paused::check`]).
    pub(crate) fn resume(&mut self, p: &Paused) -> Result<i64> {
        let rows = self.restore_checked()?;
        if self.data.is_none() {
            return Ok(-1);
        }
        p.check(rows)?;
        self.data_mut()?.start = Some(p.next);
        Ok(self.batches())
    }

    /// Where a pass's batches go to meet a module on `module` (see
    /// [`crate::device::placement`]; `what`: the data's name in errors). Data the
    /// stage owns on the host is pinned for a GPU module, so each batch's copy
    /// does not block; data the caller shares is left where it is.
    /// Floating-point data of a dtype other than the module's (`float`) is refused
    /// here too, before the first batch.
    pub fn placement(
        &mut self,
        module: Option<Device>,
        float: Option<Kind>,
        what: &str,
    ) -> Result<Option<Device>> {
        let shared = self.shared;
        let Some(d) = self.data.as_mut() else {
            return Ok(None);
        };
        let dev = crate::device::placement(d.all.full(), module, what)?;
        if let Some(k) = float {
            if let Some(t) = d
                .all
                .full()
                .iter()
                .find(|t| t.is_floating_point() && t.f_kind().is_ok_and(|tk| tk != k))
            {
                return Err(invalid(format!(
                    "{what} torch.{}, the module's parameters torch.{}: define the data again \
                     (data copied from numpy takes the module's dtype) or convert the module",
                    kinds::dtype_name(t),
                    kinds::kind_dtype_name(k)
                )));
            }
        }
        if let (Some(gpu), false, false) = (dev, shared, d.all.batching()) {
            if let Some(p) = crate::device::pinned(d.all.items(), gpu)? {
                d.all.set_items(p);
            }
        }
        Ok(dev)
    }

    /// Restore, shuffle when the option says so; returns the number of batches (-1 with no data).
    /// A stopped pass is dropped: the next pass starts afresh.
    pub fn init(&mut self) -> Result<i64> {
        self.paused = None;
        self.begin()
    }

    /// [`Stage::init`], keeping a stopped pass (a pass's own start).
    pub(crate) fn begin(&mut self) -> Result<i64> {
        if self.data.is_none() {
            return Ok(-1);
        }
        self.restore_checked()?;
        if self.opts.train && self.opts.shuffle {
            self.shuffle_rows()?;
        }
        Ok(self.batches())
    }

    /// Shuffles inputs and targets with one permutation, tracking it for unshuffle.
    /// A stopped pass is dropped: the next pass starts afresh.
    pub fn shuffle(&mut self) -> Result<()> {
        self.paused = None;
        self.shuffle_rows()
    }

    fn shuffle_rows(&mut self) -> Result<()> {
        let n = self.restore_checked()?;
        let mut p = self.permutation(n)?;
        if let Some(s) = &self.shard {
            // every rank drew as one process does; all take rank 0's permutation
            let q = p.f_to_device(s.dev)?;
            s.group.broadcast(std::slice::from_ref(&q), 0)?;
            p = q.f_to_device(p.device())?;
        }
        let d = self.data_mut()?;
        d.index = None;
        d.start = None;
        d.all.permute(0, &p)?;
        d.perm = Some(match d.perm.take() {
            None => p,
            Some(old) => old.f_index_select(0, &p.f_to_device(old.device())?)?,
        });
        Ok(())
    }

    /// Restores the original row order. A stopped pass is dropped: the next pass
    /// starts afresh.
    pub fn unshuffle(&mut self) -> Result<()> {
        self.paused = None;
        self.check()?;
        let d = self.data_mut()?;
        d.index = None;
        d.start = None;
        if let Some(p) = d.perm.take() {
            let inv = p.f_argsort(0, false)?;
            d.all.permute(0, &inv)?;
        }
        Ok(())
    }

    /// The permutation applied so far (row `i` holds original row `perm[i]`).
    pub fn order(&self) -> Option<&Tensor> {
        self.data.as_ref().and_then(|d| d.perm.as_ref())
    }

    fn permutation(&mut self, n: i64) -> Result<Tensor> {
        let dev = self
            .data
            .as_ref()
            .and_then(|d| d.all.items().first().map(Tensor::device))
            .unwrap_or(Device::Cpu);
        // tasks sharing the data without a seed all seed one generator from 0, as the
        // original, so that their batches do not overlap
        let seed = match (self.opts.shuffleseed, &self.shard) {
            (None, None) if self.opts.tasks > 1 => Some(0),
            (s, _) => s,
        };
        match seed {
            None => {
                let gdev = if self.opts.shufflecuda && crate::tensor::cuda_available() {
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

/// How many of `all` batches task `task` of `tasks` visits: batches task,
/// task + tasks, ... below all (tasks below 1 count as 1; no overflow for any values).
fn tasks_share(all: i64, task: i64, tasks: i64) -> i64 {
    let t = tasks.max(1);
    if task < 0 || all <= task {
        0
    } else {
        (all - task - 1) / t + 1
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::value::Value;

    fn stage(rows: i64, batchsize: i64, task: i64, tasks: i64) -> Stage {
        let mut s = Stage::new(Phase::Train);
        s.opts
            .set(&[
                ("batchsize".into(), Value::Int(batchsize)),
                ("tasks".into(), Value::Int(tasks)),
                ("task".into(), Value::Int(task)),
            ])
            .expect("options");
        let x = Tensor::arange(rows, (Kind::Int64, Device::Cpu));
        let y = Tensor::arange(rows, (Kind::Int64, Device::Cpu));
        s.set_data(vec![x], Some(vec![y])).expect("data");
        s
    }

    /// The first row of each batch the stage visits, divided by the batch size.
    fn visits(s: &mut Stage, w: i64) -> Vec<i64> {
        let mut v = vec![];
        while s.batch().expect("batch") {
            let x = s.inputs().expect("inputs").remove(0);
            v.push(x.int64_value(&[0]) / w);
            assert!(v.len() <= 100, "runaway batching: {v:?}");
        }
        v
    }

    #[test]
    fn task_batches() {
        for (task, tasks, want) in [
            (0, 1, vec![0, 1, 2, 3, 4]),
            (1, 2, vec![1, 3]),
            (3, 4, vec![3]),
            (3, i64::MAX, vec![3]),
            (0, i64::MAX, vec![0]),
            (4, i64::MAX, vec![4]),
            (i64::MAX - 1, i64::MAX, vec![]),
        ] {
            let mut s = stage(50, 10, task, tasks);
            assert_eq!(s.init().expect("init"), want.len() as i64, "{task}/{tasks}");
            assert_eq!(s.batches(), want.len() as i64);
            assert_eq!(visits(&mut s, 10), want, "task {task} of {tasks}");
            assert_eq!(s.size(), 50);
        }
    }

    #[test]
    fn share_never_overflows() {
        assert_eq!(tasks_share(5, 0, i64::MAX), 1);
        assert_eq!(tasks_share(i64::MAX, 0, 1), i64::MAX);
        assert_eq!(tasks_share(i64::MAX, i64::MAX - 1, i64::MAX), 1);
        assert_eq!(tasks_share(i64::MAX, 1, 2), i64::MAX / 2);
        assert_eq!(tasks_share(10, 10, 3), 0);
        assert_eq!(tasks_share(10, 9, 3), 1);
        assert_eq!(tasks_share(10, 0, 3), 4);
    }

    #[test]
    fn resized_data_is_an_error() {
        let mut s = stage(40, 10, 0, 1);
        assert!(s.batch().expect("first batch"));
        // the caller resizes a shared input: the next batch, a new pass, a step all say so
        let mut x = s.inputs_full().expect("inputs").remove(0);
        let _ = x.resize_([5]);
        let want = "training data changed size after it was given: inputs 5 rows, targets 40 rows, given with 40 rows";
        for f in ["batch", "init"] {
            let e = match f {
                "batch" => s.batch().map(|_| 0),
                _ => s.init(),
            }
            .expect_err("resized");
            assert!(matches!(e, Error::Invalid(_)), "{e:?}");
            assert!(e.to_string().starts_with(want), "{e}");
            let named = e.named("run").to_string();
            assert!(named.starts_with(&format!("run: {want}")), "{named}");
        }
        assert_eq!(s.rows(), 40);
        let _ = x.resize_(Vec::<i64>::new());
        let e = s.init().expect_err("scalar");
        assert!(e.to_string().contains("inputs a scalar"), "{e}");
        assert_eq!(s.size(), 0);
        // a new definition is accepted and batches again
        s.set_data(
            vec![Tensor::zeros([20, 2], (Kind::Float, Device::Cpu))],
            None,
        )
        .expect("redefine");
        assert_eq!(s.init().expect("init"), 2);
    }

    #[test]
    fn unusable_tensors_are_refused() {
        let mut s = Stage::new(Phase::Train);
        let sparse = Tensor::eye(4, (Kind::Float, Device::Cpu)).to_sparse_sparse_dim(2);
        let e = s.set_data(vec![sparse], None).expect_err("sparse");
        assert!(
            e.to_string()
                .starts_with("sparse tensors are not supported"),
            "{e}"
        );
        let f8 = Tensor::zeros([4], (Kind::Float8e4m3fn, Device::Cpu));
        let e = s.set_data(vec![f8], None).expect_err("float8");
        assert!(
            e.to_string()
                .starts_with("float8_e4m3fn tensors are not supported"),
            "{e}"
        );
        assert!(!s.has_data());
    }
}
