//! Tensor collections (a tensor, a vector, a dictionary) with batching and shuffling in place.

mod create;
pub mod kinds;

use tch::{Device, Kind, Tensor};

use crate::error::{invalid, Result};

pub use create::{
    create, cuda_available, default_cuda, device_from_name, device_here, device_name,
    kind_from_name, kind_name, set_default_cuda, TensorOptions, MODES,
};

/// Which api object a [`Tensors`] value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A single tensor.
    Tensor,
    /// A list of tensors.
    Vector,
    /// Tensors by name.
    Dict,
}

impl Class {
    /// The name `objclass` returns.
    pub fn name(self) -> &'static str {
        match self {
            Class::Tensor => "tensor",
            Class::Vector => "vector",
            Class::Dict => "dictionary",
        }
    }
}

/// How a member of a vector or dictionary is selected: `(v, [0, 1])`, `(d, ["a", "b"])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// By name (dictionaries).
    Name(String),
    /// By index (vectors).
    Index(i64),
}

/// Batching in effect: the full tensors and the batch now selected.
#[derive(Debug)]
struct Batching {
    full: Vec<Tensor>,
    dim: i64,
    size: i64,
    index: i64,
}

/// A tensor, vector or dictionary of tensors. Batching narrows every member
/// in place to the same slice along one dimension; the full tensors are kept
/// until [`Tensors::restore`].
#[derive(Debug)]
pub struct Tensors {
    class: Class,
    names: Vec<String>,
    items: Vec<Tensor>,
    batch: Option<Batching>,
}

impl Tensors {
    /// A single tensor.
    pub fn tensor(t: Tensor) -> Tensors {
        Tensors {
            class: Class::Tensor,
            names: vec![],
            items: vec![t],
            batch: None,
        }
    }

    /// A vector of tensors.
    pub fn vector(items: Vec<Tensor>) -> Tensors {
        Tensors {
            class: Class::Vector,
            names: vec![],
            items,
            batch: None,
        }
    }

    /// A dictionary of tensors; names must be unique.
    pub fn dict(pairs: Vec<(String, Tensor)>) -> Result<Tensors> {
        let mut names = Vec::with_capacity(pairs.len());
        let mut items = Vec::with_capacity(pairs.len());
        for (k, t) in pairs {
            if names.contains(&k) {
                return Err(invalid(format!("duplicate key `{k}`")));
            }
            names.push(k);
            items.push(t);
        }
        Ok(Tensors {
            class: Class::Dict,
            names,
            items,
            batch: None,
        })
    }

    /// The object's class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// Member names (dictionaries only).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Current members (narrowed to the batch when batching).
    pub fn items(&self) -> &[Tensor] {
        &self.items
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The single tensor of a tensor object.
    pub fn get(&self) -> &Tensor {
        &self.items[0]
    }

    /// The full-size members: the same as [`Tensors::items`] unless batching.
    pub fn full(&self) -> &[Tensor] {
        match &self.batch {
            Some(b) => &b.full,
            None => &self.items,
        }
    }

    /// Shallow copies of the current members.
    pub fn shallow(&self) -> Vec<Tensor> {
        self.items.iter().map(Tensor::shallow_clone).collect()
    }

    /// The member at `i` (vector) or under `key` (dictionary).
    pub fn index_of(&self, key: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == key)
            .ok_or_else(|| match self.class {
                Class::Dict => invalid(format!("dictionary has no key `{key}`")),
                _ => invalid(format!(
                    "a {} is selected by index, given name `{key}`",
                    self.class.name()
                )),
            })
    }

    /// Checks an index into a vector.
    pub fn check_index(&self, i: i64) -> Result<usize> {
        if i < 0 || i as usize >= self.items.len() {
            return Err(invalid(format!(
                "vector index {i} invalid for vector of {} tensor(s)",
                self.items.len()
            )));
        }
        Ok(i as usize)
    }

    /// The members selected by `keys`, in order (current views, shared).
    pub fn select_keys(&self, keys: &[Key]) -> Result<Vec<Tensor>> {
        keys.iter()
            .map(|k| {
                let i = match k {
                    Key::Name(n) => self.index_of(n)?,
                    Key::Index(i) => self.check_index(*i)?,
                };
                Ok(self.items[i].shallow_clone())
            })
            .collect()
    }

    /// Replaces the members (batching is dropped).
    pub fn set_items(&mut self, items: Vec<Tensor>) {
        self.batch = None;
        self.items = items;
    }

    /// Sets dictionary member `name` to `t`, adding it at the end if new (dictionaries
    /// only; refused while batching).
    pub fn insert(&mut self, name: &str, t: Tensor) -> Result<()> {
        if self.class != Class::Dict {
            return Err(invalid("members are added by name to dictionaries only"));
        }
        if self.batching() {
            return Err(invalid(
                "cannot add a member while batching: restore the full size first",
            ));
        }
        match self.names.iter().position(|k| k == name) {
            Some(i) => self.items[i] = t,
            None => {
                self.names.push(name.to_string());
                self.items.push(t);
            }
        }
        Ok(())
    }

    /// The size along `dim` shared by every member, or an error naming the mismatch.
    pub fn common_size(&self, dim: i64) -> Result<i64> {
        common_size(self.full(), dim)
    }

    /// True while a batch is selected.
    pub fn batching(&self) -> bool {
        self.batch.is_some()
    }

    /// Moves to the next batch of size `w` along `dim`: true while a batch is
    /// selected, false (with full size restored) after the last one.
    pub fn batch(&mut self, w: i64, dim: i64) -> Result<bool> {
        let next = match &self.batch {
            Some(b) if b.size == w && b.dim == dim => b.index + 1,
            _ => {
                self.restore();
                let n = self.common_size(dim)?;
                check_batch_size(w, n)?;
                0
            }
        };
        let n = self.common_size(dim)?;
        if next.checked_mul(w).is_none_or(|start| start >= n) {
            self.restore();
            return Ok(false);
        }
        self.select(w, dim, next)?;
        Ok(true)
    }

    /// Selects batch `i` of size `w` along `dim`.
    pub fn batch_at(&mut self, w: i64, dim: i64, i: i64) -> Result<()> {
        let n = self.common_size(dim)?;
        check_batch_size(w, n)?;
        let count = batch_count(n, w, false);
        if i < 0 || i >= count {
            return Err(invalid(format!(
                "batch[{i}] invalid, valid range is from 0-{}",
                count - 1
            )));
        }
        self.select(w, dim, i)
    }

    /// Narrows every member to batch `i` of size `w` along dim 0 (the last batch may be short).
    pub fn narrow_rows(&mut self, w: i64, i: i64) -> Result<()> {
        if w < 1 {
            return Err(invalid(format!("batch size {w} must be positive")));
        }
        self.select(w, 0, i)
    }

    /// Batch `i` of size `w` along the rows, narrowed further to its `len` rows from row
    /// `start` of the data (inside the batch; `len` may be 0): a process's share of a batch
    /// that several processes divide (option `dist`).
    pub(crate) fn narrow_share(&mut self, w: i64, i: i64, start: i64, len: i64) -> Result<()> {
        if w < 1 {
            return Err(invalid(format!("batch size {w} must be positive")));
        }
        self.select_span(w, 0, i, Some((start, len)))
    }

    fn select(&mut self, w: i64, dim: i64, i: i64) -> Result<()> {
        self.select_span(w, dim, i, None)
    }

    fn select_span(&mut self, w: i64, dim: i64, i: i64, span: Option<(i64, i64)>) -> Result<()> {
        let full: Vec<Tensor> = match self.batch.take() {
            Some(b) => b.full,
            None => std::mem::take(&mut self.items),
        };
        let n = match common_size(&full, dim) {
            Ok(n) => n,
            Err(e) => {
                self.items = full;
                return Err(e);
            }
        };
        let mut start = match i.checked_mul(w) {
            Some(s) if i >= 0 && s < n => s,
            _ => {
                self.items = full;
                return Err(invalid(format!(
                    "batch {i} of size {w} starts past the {n} row(s) of the data"
                )));
            }
        };
        let mut len = w.min(n - start);
        if let Some((a, k)) = span {
            if a < start || k < 0 || a + k > start + len {
                self.items = full;
                return Err(invalid(format!(
                    "rows {a}..{} are not inside batch {i} (rows {start}..{})",
                    a + k,
                    start + len
                )));
            }
            (start, len) = (a, k);
        }
        let mut items = Vec::with_capacity(full.len());
        for t in &full {
            match t.f_narrow(dim, start, len) {
                Ok(v) => items.push(v),
                Err(e) => {
                    self.items = full;
                    return Err(e.into());
                }
            }
        }
        self.items = items;
        self.batch = Some(Batching {
            full,
            dim,
            size: w,
            index: i,
        });
        Ok(())
    }

    /// Restores full size; returns the size along the batching dimension (0 by default).
    pub fn restore(&mut self) -> i64 {
        let dim = self.batch.as_ref().map_or(0, |b| b.dim);
        if let Some(b) = self.batch.take() {
            self.items = b.full;
        }
        self.items
            .first()
            .and_then(|t| t.size().get(dim as usize).copied())
            .unwrap_or(0)
    }

    /// Restores full size after batching along `dim` (the original's `restore(x, dim)`)
    /// and returns the size along `dim`, the one every member shares. Batching along
    /// another dimension is an error naming it, and so is a dimension the members do
    /// not share (where the original would resize the tensors wrongly): either leaves
    /// the batch in place.
    pub fn restore_dim(&mut self, dim: i64) -> Result<i64> {
        if let Some(b) = &self.batch {
            if b.dim != dim {
                return Err(invalid(format!(
                    "batched along dimension {}, given dimension {dim}: restore along the batching dimension",
                    b.dim
                )));
            }
        }
        let n = self.common_size(dim)?;
        self.restore();
        Ok(n)
    }

    /// Restores full size, then reorders every member along `dim` with one
    /// random permutation, which is returned.
    pub fn shuffle(
        &mut self,
        dim: i64,
        gen: Option<&mut dyn FnMut(i64, Device) -> Result<Tensor>>,
    ) -> Result<Tensor> {
        self.restore();
        let n = self.common_size(dim)?;
        let dev = self.items.first().map_or(Device::Cpu, Tensor::device);
        let p = match gen {
            Some(g) => g(n, dev)?,
            None => Tensor::f_randperm(n, (Kind::Int64, dev))?,
        };
        self.permute(dim, &p)?;
        Ok(p)
    }

    /// Reorders every member along `dim` by index `p` (full size restored first).
    pub fn permute(&mut self, dim: i64, p: &Tensor) -> Result<()> {
        self.restore();
        let _g = tch::no_grad_guard();
        let mut out = Vec::with_capacity(self.items.len());
        for t in &self.items {
            let idx = p.f_to_device(t.device())?;
            out.push(t.f_index_select(dim, &idx)?);
        }
        for (t, o) in self.items.iter_mut().zip(out) {
            // keep leaves (and their gradient flag) by writing into the existing storage
            if t.requires_grad() {
                t.f_copy_(&o)?;
            } else {
                *t = o;
            }
        }
        Ok(())
    }
}

/// The mean of `t` (over `dim`, or all values); integer and bool data as float32.
pub fn mean(t: &Tensor, dim: Option<i64>) -> Result<Tensor> {
    let t = floating(t)?;
    Ok(match dim {
        None => t.f_mean(t.kind())?,
        Some(d) => t.f_mean_dim(Some([d].as_slice()), false, t.kind())?,
    })
}

/// The unbiased standard deviation of `t` (over `dim`, or all values);
/// integer and bool data as float32.
pub fn std(t: &Tensor, dim: Option<i64>) -> Result<Tensor> {
    let t = floating(t)?;
    Ok(match dim {
        None => t.f_std(true)?,
        Some(d) => t.f_std_dim(Some([d].as_slice()), true, false)?,
    })
}

/// Integer and bool data as float32; floating and complex data as they are.
fn floating(t: &Tensor) -> Result<Tensor> {
    let complex = matches!(
        t.f_kind()?,
        Kind::ComplexHalf | Kind::ComplexFloat | Kind::ComplexDouble
    );
    if t.is_floating_point() || complex {
        Ok(t.shallow_clone())
    } else {
        Ok(t.f_to_kind(Kind::Float)?)
    }
}

/// The size along `dim` shared by every tensor.
pub fn common_size(ts: &[Tensor], dim: i64) -> Result<i64> {
    let mut n: Option<i64> = None;
    for t in ts {
        let d = t.dim() as i64;
        if dim < 0 || dim >= d.max(0) {
            return Err(invalid(format!(
                "dimension {dim} invalid for tensor with {d} dimension(s)"
            )));
        }
        let s = t.size()[dim as usize];
        match n {
            None => n = Some(s),
            Some(m) if m != s => return Err(invalid(format!("tensor size mismatch, {m} vs {s}"))),
            _ => {}
        }
    }
    n.ok_or_else(|| invalid("no tensors"))
}

fn check_batch_size(w: i64, n: i64) -> Result<()> {
    if n < 2 {
        return Err(invalid(format!(
            "size {w} invalid: {n} row(s) cannot be split into batches"
        )));
    }
    if w < 1 || w >= n {
        return Err(invalid(format!("size {w} not in the range 1-{}", n - 1)));
    }
    Ok(())
}

/// Number of batches of size `w` in `n` rows (w clamped to n; 0 means one batch).
pub fn batch_count(n: i64, w: i64, droplast: bool) -> i64 {
    if n == 0 {
        return 0;
    }
    if n <= 0 {
        return 0;
    }
    let w = if w <= 0 || w > n { n } else { w };
    if droplast {
        n / w
    } else {
        // ceil(n / w) without forming n + w - 1, which overflows for n near i64::MAX
        (n - 1) / w + 1
    }
}

impl crate::sync::Share for Tensors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t).expect("values")
    }

    #[test]
    fn batches_then_restores() {
        let mut x = Tensors::tensor(Tensor::arange(7, (Kind::Int64, Device::Cpu)));
        let mut seen = vec![];
        while x.batch(3, 0).expect("batch") {
            seen.push(vals(x.get()));
        }
        assert_eq!(seen, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(vals(x.get()).len(), 7);
    }

    #[test]
    fn restores_along_the_batching_dimension() {
        let t = Tensor::arange(20, (Kind::Int64, Device::Cpu)).reshape([2, 10]);
        let mut x = Tensors::tensor(t);
        assert!(x.batch(5, 1).expect("batch"));
        let e = x.restore_dim(0).expect_err("other dimension");
        assert_eq!(
            e.to_string(),
            "batched along dimension 1, given dimension 0: restore along the batching dimension"
        );
        assert_eq!(x.get().size(), [2, 5]);
        assert_eq!(x.restore_dim(1).expect("restore"), 10);
        assert_eq!(x.get().size(), [2, 10]);
        assert_eq!(x.restore_dim(0).expect("not batching"), 2);
        assert!(x.restore_dim(2).is_err());
    }

    #[test]
    fn batch_size_range() {
        let mut x = Tensors::tensor(Tensor::arange(9, (Kind::Int64, Device::Cpu)));
        let e = x.batch(9, 0).expect_err("too big");
        assert_eq!(e.to_string(), "size 9 not in the range 1-8");
        assert_eq!(
            e.named("batch").to_string(),
            "batch: size 9 not in the range 1-8"
        );
        let e = x.batch_at(3, 0, 4).expect_err("index");
        assert_eq!(e.to_string(), "batch[4] invalid, valid range is from 0-2");
    }

    #[test]
    fn shuffle_is_shared_permutation() {
        let a = Tensor::arange(12, (Kind::Int64, Device::Cpu)).reshape([3, 4]);
        let b = Tensor::from_slice(&[1i64, 2, 3]);
        let mut d = Tensors::dict(vec![("a".into(), a), ("b".into(), b)]).expect("dict");
        let p = d.shuffle(0, None).expect("shuffle");
        let p = vals(&p);
        let bs = vals(&d.items()[1]);
        let a0 = vals(&d.items()[0].get(0));
        for i in 0..3 {
            assert_eq!(bs[i], p[i] + 1);
        }
        assert_eq!(a0[0], p[0] * 4);
    }

    #[test]
    fn counts() {
        assert_eq!(batch_count(10, 3, false), 4);
        assert_eq!(batch_count(10, 3, true), 3);
        assert_eq!(batch_count(10, 0, false), 1);
        assert_eq!(batch_count(10, 100, false), 1);
        assert_eq!(batch_count(i64::MAX, i64::MAX - 1, false), 2);
        assert_eq!(batch_count(i64::MAX, 2, false), i64::MAX / 2 + 1);
        assert_eq!(batch_count(i64::MAX, 1, true), i64::MAX);
        assert_eq!(batch_count(-3, 2, false), 0);
    }

    #[test]
    fn batch_index_past_the_end_is_an_error() {
        let mut x = Tensors::tensor(Tensor::arange(10, (Kind::Int64, Device::Cpu)));
        for i in [4, i64::MAX / 3, i64::MAX, -1] {
            let e = x.narrow_rows(3, i).expect_err("past the end");
            assert!(e.to_string().starts_with("batch "), "{e}");
            assert_eq!(
                vals(x.get()).len(),
                10,
                "data kept after a refused batch {i}"
            );
            assert!(!x.batching());
        }
        x.narrow_rows(3, 3).expect("last batch");
        assert_eq!(vals(x.get()), vec![9]);
        // moving on from the last batch ends the pass, whatever the size
        let mut y = Tensors::tensor(Tensor::arange(10, (Kind::Int64, Device::Cpu)));
        assert!(y.batch(9, 0).expect("first"));
        assert!(y.batch(9, 0).expect("second"));
        assert!(!y.batch(9, 0).expect("end"));
        assert_eq!(vals(y.get()).len(), 10);
    }
}
