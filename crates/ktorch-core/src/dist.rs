//! Data-parallel training over a c10d process group (the option `dist`).
//!
//! A [`Group`] is a process group of PyTorch's distributed engine (gloo on CPUs, NCCL on
//! GPUs): one made by `torch.distributed` in this process, found by its name
//! ([`Group::resolve`]), or one made in Rust ([`Group::new`] over
//! [`ProcessGroup::gloo`](ktorch_shim::dist::ProcessGroup::gloo), or
//! [`ProcessGroup::gloo_from_env`](ktorch_shim::dist::ProcessGroup::gloo_from_env) in a
//! process started by `torchrun --no-python`: see `examples/ddp.rs`). Set as a stage's option
//! `dist` ([`crate::model::Options::dist`]), it makes [`crate::Model::run`] train one model
//! over the group's processes as one process would on the same global batches, and
//! [`crate::Model::testrun`] evaluate the test data split over them with exact global
//! metrics:
//!
//! - at the start of a pass, rank 0's parameters and buffers are broadcast to every rank;
//!   at the end of a training pass, rank 0's buffers again (batch normalization's running
//!   statistics: each rank updates them from its own rows during the pass, rank 0's are kept);
//! - a shuffle draws the permutation on every rank as one process does, then every rank takes
//!   rank 0's, so unseeded shuffles agree and seeded ones give one process's order;
//! - `batchsize` is the global batch: every rank goes through every batch of the data and takes
//!   its share, rows `b0 + floor(r n / s)` to `b0 + floor((r + 1) n / s)` of a batch of `n` rows
//!   starting at row `b0`, for rank `r` of `s` (shares may be empty);
//! - each rank's loss is weighted by its share of the global batch before backward, and the
//!   gradients are summed over the ranks as backward produces them, as DistributedDataParallel
//!   does ([`GradReducer`]: buckets of gradients in reverse parameter order, the first of 1 MiB
//!   and the others of 25 MiB, each launched in order as soon as its gradients are ready; the
//!   last one carries the weighted losses too): every rank steps with the gradient and loss of
//!   the global batch (gradient norm, non-finite checks, clipping and the step follow,
//!   identical on every rank; LBFGS's closure returns the global loss);
//! - metrics are those of the global data on every rank: batch losses from the reduction,
//!   accuracy from summed counts, predictions and outputs gathered in the data's row order.
//!   Hidden and cell states stay those of each rank's last share.
//!
//! Every rank must run the same passes with the same options and data; a rank that fails
//! makes the others fail in their next collective (an error within the group's timeout).

use std::fmt;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

pub use ktorch_shim::dist::{GradReducer, ProcessGroup, ReduceOp};

use crate::error::{invalid, Error, Result};

/// A process group shared by the stages that use it: a c10d group (see the [module
/// docs](self)) and, for a group of `torch.distributed`, the name it is registered under.
/// Clones share the group; two groups are equal when they are the same c10d group.
#[derive(Clone)]
pub struct Group {
    pg: Arc<ProcessGroup>,
    name: Option<String>,
}

impl PartialEq for Group {
    fn eq(&self, other: &Group) -> bool {
        Arc::ptr_eq(&self.pg, &other.pg) || self.pg.same(&other.pg)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("backend", &self.pg.backend())
            .field("rank", &self.pg.rank())
            .field("size", &self.pg.size())
            .finish()
    }
}

impl Group {
    /// The group `torch.distributed` registered in this process under `name`: Python's
    /// `pg.group_name`, `"0"` for the default group. An error when there is none.
    pub fn resolve(name: &str) -> Result<Group> {
        let pg = ProcessGroup::resolve(name).map_err(|e| {
            invalid(format!(
                "dist: no process group named {name:?} ({}): initialize torch.distributed \
                 (init_process_group) first",
                e.0
            ))
        })?;
        Ok(Group {
            pg: Arc::new(pg),
            name: Some(name.to_string()),
        })
    }

    /// A group made in Rust (e.g. [`ProcessGroup::gloo`]); it has no name.
    pub fn new(pg: ProcessGroup) -> Group {
        Group {
            pg: Arc::new(pg),
            name: None,
        }
    }

    /// The name the group is registered under (None for a group made in Rust).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// This process's rank in the group, from 0.
    pub fn rank(&self) -> i64 {
        self.pg.rank()
    }

    /// The number of processes in the group.
    pub fn size(&self) -> i64 {
        self.pg.size()
    }

    /// The group's default backend: `"gloo"`, `"nccl"`...
    pub fn backend(&self) -> String {
        self.pg.backend()
    }

    /// The c10d group, for collectives of one's own.
    pub fn process_group(&self) -> &ProcessGroup {
        &self.pg
    }

    /// Checks that a named group is still the one registered under its name (not destroyed
    /// by `torch.distributed.destroy_process_group` since it was set).
    pub(crate) fn check(&self) -> Result<()> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        match ProcessGroup::resolve(name) {
            Ok(pg) if pg.same(&self.pg) => Ok(()),
            _ => Err(invalid(
                "the process group was destroyed: set option dist again (a new group) or to None",
            )),
        }
    }

    /// In-place broadcast from rank `root` of every tensor (a non-contiguous one through a
    /// contiguous copy); one call, bucketed.
    pub(crate) fn broadcast(&self, ts: &[Tensor], root: i64) -> Result<()> {
        let _g = tch::no_grad_guard();
        let flat: Vec<Tensor> = ts
            .iter()
            .map(|t| {
                if t.is_contiguous() {
                    Ok(t.shallow_clone())
                } else {
                    t.f_contiguous()
                }
            })
            .collect::<std::result::Result<_, _>>()?;
        comm(self.pg.broadcast_(&flat, root))?;
        for (t, f) in ts.iter().zip(&flat) {
            if !t.is_contiguous() {
                t.shallow_clone().f_copy_(f)?;
            }
        }
        Ok(())
    }

    /// Checks that every rank's tensors `ts` (named by `names`, for the message) equal rank
    /// 0's, bitwise, changing none: every rank raises the same error when some differ (or
    /// when the ranks' lists differ in number, shapes or dtypes).
    pub(crate) fn agree(&self, names: &[String], ts: &[Tensor]) -> Result<()> {
        let _g = tch::no_grad_guard();
        // the lists' shapes and dtypes first: a broadcast needs the same on every rank
        let mut h: i64 = ts.len() as i64;
        for t in ts {
            for v in t.size().into_iter().chain([-1, kind_code(t.kind())]) {
                h = h.wrapping_mul(1_000_003).wrapping_add(v);
            }
        }
        let dev = ts.first().map_or(Device::Cpu, Tensor::device);
        // one allreduce: the largest of h and of -h give the largest and smallest h
        let sig = Tensor::from_slice(&[h, h.wrapping_neg()]).f_to_device(dev)?;
        comm(self.pg.allreduce_(&[&sig], ReduceOp::Max))?;
        let sig = Vec::<i64>::try_from(&sig.f_to_device(Device::Cpu)?)?;
        if sig[0] != sig[1].wrapping_neg() {
            return Err(invalid(
                "dist: the ranks' parameters and buffers differ in number, shapes or dtypes                  (option distcheck): every rank must train the same module",
            ));
        }
        let copies = ts
            .iter()
            .map(|t| Ok(t.f_detach()?.f_contiguous()?.copy()))
            .collect::<Result<Vec<_>>>()?;
        comm(self.pg.broadcast_(&copies, 0))?;
        let differ: Vec<f64> = ts
            .iter()
            .zip(&copies)
            .map(|(t, c)| {
                // bitwise: NaN payloads compare as bits
                let same = if t.is_floating_point() {
                    let bits = |x: &Tensor| x.f_view_dtype(int_kind(x.kind()));
                    match (bits(t), bits(c)) {
                        (Ok(a), Ok(b)) => a.f_equal(&b)?,
                        _ => t.f_equal(c)?,
                    }
                } else {
                    t.f_equal(c)?
                };
                Ok(if same { 0.0 } else { 1.0 })
            })
            .collect::<Result<_>>()?;
        let flags = Tensor::from_slice(&differ).f_to_device(dev)?;
        comm(self.pg.allreduce_(&[&flags], ReduceOp::Sum))?;
        let flags = Vec::<f64>::try_from(&flags.f_to_device(Device::Cpu)?)?;
        let bad: Vec<String> = names
            .iter()
            .zip(&flags)
            .filter(|(_, &f)| f > 0.0)
            .map(|(n, &f)| format!("{n} ({f} rank{})", if f == 1.0 { "" } else { "s" }))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 5;
        let more = bad.len().saturating_sub(SHOWN);
        Err(invalid(format!(
            "dist: parameters or buffers differ from rank 0's (option distcheck): {}{}",
            bad[..bad.len().min(SHOWN)].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )))
    }

    /// In-place sum over the ranks of every tensor (each contiguous); one call, bucketed.
    pub(crate) fn sum(&self, ts: &[Tensor]) -> Result<()> {
        comm(self.pg.allreduce_(ts, ReduceOp::Sum))
    }

    /// The rows of a metric each rank computed for its shares of the batches (`local`, its
    /// shares' rows one after the other; None where it computed none), gathered on every rank
    /// in the data's row order: for each batch, rank 0's share, then rank 1's... `layout` gives
    /// the rows of every batch. Every rank's rows must have the same trailing sizes and dtype.
    /// None when no rank has any rows.
    pub(crate) fn gather_rows(
        &self,
        local: Option<Tensor>,
        layout: &[i64],
        dev: Device,
        what: &str,
    ) -> Result<Option<Tensor>> {
        let _g = tch::no_grad_guard();
        let (rank, size) = (self.rank(), self.size());
        let ranks = usize::try_from(size).map_err(|_| invalid("dist: invalid group size"))?;
        // rows each rank holds, from the layout alone
        let mut rows = vec![0i64; ranks];
        for &n in layout {
            for (r, k) in rows.iter_mut().enumerate() {
                *k += share(n, r as i64, size).1;
            }
        }
        // each rank's dtype and sizes, for ranks that computed nothing and for a check
        let mut head = vec![0i64; HEAD];
        if let Some(t) = &local {
            let sz = t.size();
            head[0] = 1;
            head[1] = sz.first().copied().unwrap_or(-1);
            head[2] = kind_code(t.kind());
            head[3] = sz.len() as i64;
            for (h, d) in head[4..].iter_mut().zip(sz.iter().skip(1)) {
                *h = *d;
            }
        }
        let heads = comm(
            self.pg
                .allgather(&Tensor::from_slice(&head).f_to_device(dev)?),
        )?
        .iter()
        .map(|t| Vec::<i64>::try_from(&t.f_to_device(Device::Cpu)?).map_err(Error::from))
        .collect::<Result<Vec<_>>>()?;
        let Some(first) = heads.iter().find(|h| h[0] == 1) else {
            return Ok(None);
        };
        let bad = |why: String| Err(invalid(format!("dist: metric {what}: {why}")));
        if first[3] < 1 || first[3] as usize > HEAD - 3 {
            return bad(format!(
                "outputs of {} dimensions: the rows must be the first of 1 to {}",
                first[3],
                HEAD - 3
            ));
        }
        for (r, h) in heads.iter().enumerate() {
            if h[0] == 1 && (h[2..] != first[2..] || h[1] != rows[r]) {
                return bad(format!(
                    "rank {r} has outputs of {} rows of another dtype or sizes than rank 0's, \
                     for {} input rows: outputs must have one row per input row",
                    h[1], rows[r]
                ));
            }
        }
        let kind = KINDS
            .get(usize::try_from(first[2]).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| invalid(format!("dist: metric {what}: unknown dtype code")))?;
        let tail: Vec<i64> = first[4..3 + first[3] as usize].to_vec();
        let most = rows.iter().copied().max().unwrap_or(0);
        let mut sizes = vec![most];
        sizes.extend(&tail);
        let padded = Tensor::f_zeros(&sizes, (kind, dev))?;
        if let Some(t) = &local {
            if rows[rank as usize] > 0 {
                padded
                    .f_narrow(0, 0, rows[rank as usize])?
                    .f_copy_(&t.f_to_device(dev)?)?;
            }
        }
        let all = Tensor::f_cat(&comm(self.pg.allgather(&padded))?, 0)?;
        // the rows in the data's order: per batch, each rank's share
        let mut index = Vec::with_capacity(rows.iter().sum::<i64>() as usize);
        let mut at = vec![0i64; ranks];
        for &n in layout {
            for (r, a) in at.iter_mut().enumerate() {
                let k = share(n, r as i64, size).1;
                let base = r as i64 * most + *a;
                index.extend(base..base + k);
                *a += k;
            }
        }
        let index = Tensor::from_slice(&index).f_to_device(dev)?;
        Ok(Some(all.f_index_select(0, &index)?))
    }
}

/// Length of the header [`Group::gather_rows`] exchanges: has rows, rows, dtype, dims, sizes.
const HEAD: usize = 12;

/// The dtypes a gathered metric may have, by code.
const KINDS: &[Kind] = &[
    Kind::Uint8,
    Kind::Int8,
    Kind::Int16,
    Kind::Int,
    Kind::Int64,
    Kind::Half,
    Kind::Float,
    Kind::Double,
    Kind::ComplexHalf,
    Kind::ComplexFloat,
    Kind::ComplexDouble,
    Kind::Bool,
    Kind::BFloat16,
];

/// The integer dtype of a float dtype's size (to compare floats bit for bit).
fn int_kind(k: Kind) -> Kind {
    match k {
        Kind::Double | Kind::ComplexFloat => Kind::Int64,
        Kind::Half | Kind::BFloat16 => Kind::Int16,
        _ => Kind::Int,
    }
}

fn kind_code(k: Kind) -> i64 {
    KINDS.iter().position(|x| *x == k).map_or(-1, |i| i as i64)
}

/// A collective's error, named as one.
fn comm<T>(r: ktorch_shim::Result<T>) -> Result<T> {
    r.map_err(dist_error)
}

/// A collective's error from the shim, named as one.
pub(crate) fn dist_error(e: ktorch_shim::Error) -> Error {
    match Error::from(e) {
        Error::Torch(m) => Error::Torch(format!("dist: {m}")),
        e => e,
    }
}

/// Rank `rank` of `size`'s share of a batch of `n` rows: its first row within the batch and
/// its number of rows, `floor(rank n / size)` to `floor((rank + 1) n / size)`.
pub(crate) fn share(n: i64, rank: i64, size: i64) -> (i64, i64) {
    let at = |r: i64| ((r as i128 * n as i128) / size.max(1) as i128) as i64;
    let a = at(rank);
    (a, at(rank + 1) - a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_a_batch_in_order() {
        for n in 0..12 {
            for size in 1..5 {
                let mut next = 0;
                for r in 0..size {
                    let (a, k) = share(n, r, size);
                    assert_eq!(a, next, "n {n} size {size} rank {r}");
                    assert!(k >= 0 && k <= n / size + 1);
                    next = a + k;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(share(2, 0, 3), (0, 0));
        assert_eq!(share(2, 1, 3), (0, 1));
        assert_eq!(share(2, 2, 3), (1, 1));
        assert_eq!(
            share(i64::MAX, 1, 2),
            (i64::MAX / 2, i64::MAX - i64::MAX / 2)
        );
    }

    fn solo() -> Group {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let pg = ProcessGroup::gloo("127.0.0.1", port, 0, 1, std::time::Duration::from_secs(20))
            .expect("gloo");
        Group::new(pg)
    }

    #[test]
    fn a_group_of_one() {
        let g = solo();
        assert_eq!((g.rank(), g.size(), g.name()), (0, 1, None));
        assert_eq!(g, g.clone());
        assert_ne!(g, solo());
        g.check().expect("unnamed groups are not looked up");
        let t = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let strided = t.tr();
        g.broadcast(&[t.shallow_clone(), strided.shallow_clone()], 0)
            .expect("broadcast");
        assert!(strided.equal(&t.tr()));
        let rows = Tensor::from_slice(&[5i64, 6, 7]);
        let got = g
            .gather_rows(Some(rows.shallow_clone()), &[2, 1], Device::Cpu, "predict")
            .expect("gather")
            .expect("rows");
        assert!(got.equal(&rows));
        let e = g
            .gather_rows(Some(rows), &[2], Device::Cpu, "predict")
            .expect_err("rows");
        assert!(e.to_string().contains("one row per input row"), "{e}");
        assert!(g
            .gather_rows(None, &[], Device::Cpu, "output")
            .expect("none")
            .is_none());
        let e = Group::resolve("no-such-group").expect_err("unknown");
        assert!(
            e.to_string().starts_with("dist: no process group named"),
            "{e}"
        );
    }
}
