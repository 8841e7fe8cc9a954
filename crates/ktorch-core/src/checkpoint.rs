//! Checkpoint files: one safetensors file holding an object's tensors, with the
//! rest (its [`crate::state`]: what the object is, its settings, where training
//! stands) as JSON in the file's metadata under the key `ktorch`, each tensor
//! referred to by its key in the file (a module's parameters and buffers under
//! `parm/name` and `buffer/name`, which any safetensors reader sees). Nothing in
//! a file is ever run: loading builds the object from its recorded type names and
//! settings, checked as any spec is, and copies the tensors in after checking
//! every name and shape. Writes go to a temporary file beside the target, synced,
//! then renamed over it, so an interrupted save leaves the old file whole.
//!
//! ```no_run
//! use ktorch_core::Model;
//! # fn go(m: &Model) -> ktorch_core::Result<()> {
//! m.save("run.kt")?; // module, loss, optimizer state, options, position
//! let mut m = Model::load("run.kt")?; // in this process or another
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value as J};
use tch::Tensor;

use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::model::Model;
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::state::{
    from_bytes, host_bytes, with_file, FileTensors, LossState, ModelState, ModuleState, OptState,
    StateTensor,
};

/// The layout version this build writes and reads.
pub const FORMAT: i64 = 2;

const META_KEY: &str = "ktorch";

fn bad(what: &str) -> crate::error::Error {
    invalid(format!("not a ktorch checkpoint, or a damaged one: {what}"))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid(format!("not a file path: {}", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |e: std::io::Error, what: &str| invalid(format!("{what} {}: {e}", path.display()));
    let r = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io(e, "cannot write"))?;
        f.write_all(bytes).map_err(|e| io(e, "cannot write"))?;
        f.sync_all().map_err(|e| io(e, "cannot sync"))?;
        fs::rename(&tmp, path).map_err(|e| io(e, "cannot replace"))?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Writes a state of class `class` as one safetensors file, atomically: its
/// tensors (keys from `names`, else `t/N`) and its JSON as metadata.
fn write<T: Serialize>(
    path: &Path,
    class: &str,
    state: &T,
    names: HashMap<usize, String>,
) -> Result<()> {
    let ft = FileTensors {
        names,
        ..Default::default()
    };
    let (j, ft) = with_file(ft, || serde_json::to_value(state));
    let j = j.map_err(|e| invalid(format!("cannot save: {e}")))?;
    let raws = ft
        .out
        .iter()
        .map(|(k, t)| Ok((k.clone(), host_bytes(t)?)))
        .collect::<Result<Vec<_>>>()?;
    let sum = checksum(raws.iter().map(|(k, (_, _, b))| (k.as_str(), b.as_slice())));
    let meta = json!({ "format": FORMAT, "class": class, "checksum": sum, "state": j });
    let views = raws
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| invalid(format!("cannot save tensor {k}: {e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let info: HashMap<String, String> = [(META_KEY.to_string(), meta.to_string())].into();
    let bytes = safetensors::tensor::serialize(views, &Some(info))
        .map_err(|e| invalid(format!("cannot save: {e:?}")))?;
    write_atomic(path, &bytes)
}

/// A CRC-32 of every tensor's name and bytes, in name order: any change to the
/// tensor data of a file shows.
fn checksum<'a>(ts: impl Iterator<Item = (&'a str, &'a [u8])>) -> u32 {
    let mut ts: Vec<_> = ts.collect();
    ts.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crc32fast::Hasher::new();
    for (k, b) in ts {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    }
    h.finalize()
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))
}

/// The metadata of a checkpoint's bytes, its format checked.
fn metadata(bytes: &[u8]) -> Result<serde_json::Map<String, J>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(&format!("{e:?}")))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("no ktorch metadata (a safetensors file from elsewhere?)"))?;
    let J::Object(meta) = serde_json::from_str(meta).map_err(|e| bad(&e.to_string()))? else {
        return Err(bad("metadata"));
    };
    match meta.get("format").and_then(J::as_i64) {
        Some(FORMAT) => Ok(meta),
        Some(v) => Err(invalid(format!(
            "checkpoint format {v}, this ktorch reads format {FORMAT}"
        ))),
        None => Err(bad("no format version")),
    }
}

/// The class of object a checkpoint file holds (`module`, `loss`, `optimizer`,
/// `model`), read from its metadata after checking the format.
pub fn class(path: &Path) -> Result<String> {
    metadata(&read_bytes(path)?)?
        .get("class")
        .and_then(J::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("no object class"))
}

/// Reads the state of class `class` from a file: every tensor the JSON names
/// must be in the file, and every tensor in the file named by the JSON.
fn read<T: DeserializeOwned>(path: &Path, class: &str) -> Result<T> {
    let bytes = read_bytes(path)?;
    let meta = metadata(&bytes)?;
    match meta.get("class").and_then(J::as_str) {
        Some(c) if c == class => {}
        Some(c) => return Err(invalid(format!("the file holds a {c}, not a {class}"))),
        None => return Err(bad("no object class")),
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&format!("{e:?}")))?;
    let views = st.tensors();
    let sum = checksum(views.iter().map(|(k, v)| (k.as_str(), v.data())));
    if meta.get("checksum").and_then(J::as_u64) != Some(u64::from(sum)) {
        return Err(bad("the tensor data does not match its checksum"));
    }
    let mut input = HashMap::new();
    for (k, v) in st.tensors() {
        input.insert(k, from_bytes(v.dtype(), v.shape(), v.data())?);
    }
    let j = meta.get("state").ok_or_else(|| bad("no state"))?;
    let ft = FileTensors {
        input,
        ..Default::default()
    };
    let (r, ft) = with_file(ft, || T::deserialize(j));
    let r = r.map_err(|e| {
        let e = e.to_string();
        if e.starts_with("the file has no tensor") {
            invalid(e)
        } else {
            bad(&e)
        }
    })?;
    let mut extra: Vec<&String> = ft.input.keys().filter(|k| !ft.used.contains(*k)).collect();
    extra.sort();
    if let Some(k) = extra.first() {
        return Err(bad(&format!(
            "tensor {k} belongs to nothing the file describes"
        )));
    }
    Ok(r)
}

/// Saves a module: its tree of types and settings, training flags, frozen
/// parameters, every parameter and buffer (on the host, in its dtype).
pub fn save_module(m: &Module, path: &Path) -> Result<()> {
    let s = ModuleState::of(m)?;
    let mut names = HashMap::new();
    s.file_names(&mut names);
    write(path, "module", &s, names)
}

/// Loads a module saved by [`save_module`] (see [`ModuleState::build`] for the checks).
pub fn load_module(path: &Path) -> Result<Module> {
    let s: ModuleState = read(path, "module")?;
    s.build()
}

/// Saves a loss: its type and settings (class weights included).
pub fn save_loss(l: &Loss, path: &Path) -> Result<()> {
    write(path, "loss", &LossState::of(l)?, HashMap::new())
}

/// Loads a loss saved by [`save_loss`].
pub fn load_loss(path: &Path) -> Result<Loss> {
    let s: LossState = read(path, "loss")?;
    s.build()
}

/// Saves an optimizer: type, defaults, groups and settings, every parameter's
/// state (named by `named`, a module's named parameters, where the optimizer
/// does not know the names), lbfgs's history. Not the parameters themselves:
/// [`load_optimizer`] takes them from a module.
pub fn save_optimizer(o: &Optimizer, named: &[(String, Tensor)], path: &Path) -> Result<()> {
    write(path, "optimizer", &OptState::of(o, named)?, HashMap::new())
}

/// Loads an optimizer saved by [`save_optimizer`] over the parameters `named`
/// (see [`OptState::build`] for how they are matched).
pub fn load_optimizer(path: &Path, named: &[(String, Tensor)]) -> Result<Optimizer> {
    let s: OptState = read(path, "optimizer")?;
    s.build(named)
}

/// Saves a model: module, loss, optimizer with its state (momenta, moments, step
/// counts), training and test options, where training stands (passes completed,
/// the seeded shuffle generator, the row order in force, a pass stopped between
/// batches) and the CPU generator; the data too where `data` is true.
pub fn save_model(m: &Model, path: &Path, data: bool) -> Result<()> {
    let mut s = ModelState::of(m, data)?;
    s.rng = Some(StateTensor(ktorch_shim::cpu_rng_state()?));
    let mut names = HashMap::new();
    s.module.file_names(&mut names);
    write(path, "model", &s, names)
}

/// Loads a model saved by [`save_model`]; giving it the same data again (where the
/// file has none) keeps the saved position. The CPU generator is put back last,
/// once everything else is read and built.
pub fn load_model(path: &Path) -> Result<Model> {
    let s: ModelState = read(path, "model")?;
    s.build()
}

impl Model {
    /// Saves the model to `path` ([`save_model`], without the data).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(self, path.as_ref(), false)
    }

    /// Loads a model saved by [`Model::save`] ([`load_model`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        load_model(path.as_ref())
    }
}

impl Module {
    /// Saves the module to `path` ([`save_module`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_module(self, path.as_ref())
    }

    /// Loads a module saved by [`Module::save`] ([`load_module`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Module> {
        load_module(path.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers;

    #[test]
    fn a_module_comes_back_equal_and_damage_is_refused() {
        let dir = std::env::temp_dir().join(format!("ktorch-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let q = Module::sequential([
            layers::linear(3, 4).expect("linear").named("a"),
            layers::relu().expect("relu"),
            layers::linear(4, 2).expect("linear"),
        ])
        .expect("sequential");
        let p = dir.join("q.kt");
        save_module(&q, &p).expect("save");
        let r = load_module(&p).expect("load");
        assert_eq!(r.parmnames(), q.parmnames());
        for ((_, a), (_, b)) in q.named_parameters().iter().zip(r.named_parameters()) {
            assert!(a.equal(&b));
        }
        let raw = fs::read(&p).expect("read");
        let bad = dir.join("bad.kt");
        fs::write(&bad, &raw[..raw.len() / 2]).expect("write");
        let e = load_module(&bad).expect_err("truncated").to_string();
        assert!(
            e.contains("not a ktorch checkpoint, or a damaged one"),
            "{e}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
