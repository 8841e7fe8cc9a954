//! Each module type's options as `help` shows them: every option by name, in
//! order, with an example value where the type needs one (the original's
//! examples: `help("linear")` gives in 784, out 10, bias true) and otherwise
//! the default its builder uses.
//!
//! The names and defaults are read from the builder itself while it builds the
//! example ([`crate::args::described`]), so they cannot drift from what the
//! builder does; [`EXAMPLES`] gives only the values a type requires (types that
//! build without settings need no entry).

use crate::error::Result;
use crate::nn::{container, spec};
use crate::value::Value;

/// An example value.
#[derive(Debug, Clone, Copy)]
enum Ex {
    I(i64),
    F(f64),
    S(&'static str),
    Is(&'static [i64]),
    Fs(&'static [f64]),
}

impl Ex {
    fn value(self) -> Value {
        match self {
            Ex::I(i) => Value::Int(i),
            Ex::F(f) => Value::Float(f),
            Ex::S(s) => Value::Str(s.to_string()),
            Ex::Is(xs) => Value::List(xs.iter().map(|x| Value::Int(*x)).collect()),
            Ex::Fs(xs) => Value::List(xs.iter().map(|x| Value::Float(*x)).collect()),
        }
    }
}

use Ex::{Fs, Is, F, I, S};

/// The settings each type needs for an example, by name (the original's examples).
const EXAMPLES: &[(&str, &[(&str, Ex)])] = &[
    ("linear", &[("in", I(784)), ("out", I(10))]),
    (
        "bilinear",
        &[("in1", I(20)), ("in2", I(30)), ("out", I(40))],
    ),
    ("embed", &[("rows", I(1000)), ("cols", I(64))]),
    ("embedbag", &[("rows", I(1000)), ("cols", I(64))]),
    ("embedpos", &[("rows", I(120)), ("cols", I(512))]),
    (
        "embedseq",
        &[("rows", I(5000)), ("cols", I(512)), ("length", I(120))],
    ),
    ("conv1d", &[("in", I(16)), ("out", I(32)), ("size", I(3))]),
    (
        "conv2d",
        &[("in", I(16)), ("out", I(32)), ("size", Is(&[3, 5]))],
    ),
    (
        "conv3d",
        &[("in", I(16)), ("out", I(32)), ("size", Is(&[3, 5, 2]))],
    ),
    (
        "convtranspose1d",
        &[("in", I(128)), ("out", I(64)), ("size", I(5))],
    ),
    (
        "convtranspose2d",
        &[("in", I(128)), ("out", I(64)), ("size", Is(&[3, 5]))],
    ),
    (
        "convtranspose3d",
        &[("in", I(128)), ("out", I(64)), ("size", Is(&[3, 5, 2]))],
    ),
    ("maxpool1d", &[("size", I(3))]),
    ("maxpool2d", &[("size", Is(&[3, 2]))]),
    ("maxpool3d", &[("size", Is(&[3, 2, 2]))]),
    ("avgpool1d", &[("size", I(3))]),
    ("avgpool2d", &[("size", Is(&[3, 2]))]),
    ("avgpool3d", &[("size", Is(&[3, 2, 2]))]),
    ("adaptavg1d", &[("size", I(3))]),
    ("adaptavg2d", &[("size", Is(&[3, 2]))]),
    ("adaptavg3d", &[("size", Is(&[3, 2, 4]))]),
    ("adaptmax1d", &[("size", I(3))]),
    ("adaptmax2d", &[("size", Is(&[3, 2]))]),
    ("adaptmax3d", &[("size", Is(&[3, 2, 4]))]),
    (
        "fmaxpool2d",
        &[("size", Is(&[2, 4])), ("outsize", Is(&[16, 32]))],
    ),
    (
        "fmaxpool3d",
        &[("size", Is(&[2, 4, 3])), ("outsize", Is(&[16, 32, 24]))],
    ),
    ("lppool1d", &[("p", I(2)), ("size", I(3))]),
    ("lppool2d", &[("p", F(1.2)), ("size", Is(&[2, 3]))]),
    ("batchnorm1d", &[("in", I(32))]),
    ("batchnorm2d", &[("in", I(32))]),
    ("batchnorm3d", &[("in", I(32))]),
    ("instancenorm1d", &[("in", I(100))]),
    ("instancenorm2d", &[("in", I(100))]),
    ("instancenorm3d", &[("in", I(100))]),
    ("layernorm", &[("shape", Is(&[32, 10]))]),
    ("groupnorm", &[("groups", I(3)), ("channels", I(6))]),
    ("localnorm", &[("size", I(2))]),
    ("crossmap2d", &[("size", I(2))]),
    ("logsoftmax", &[("dim", I(1))]),
    ("softmax", &[("dim", I(1))]),
    ("softmin", &[("dim", I(1))]),
    ("threshold", &[("threshold", F(0.1)), ("value", F(0.0))]),
    ("rnn", &[("in", I(10)), ("hidden", I(20))]),
    ("gru", &[("in", I(10)), ("hidden", I(20))]),
    ("lstm", &[("in", I(10)), ("hidden", I(20))]),
    ("reshape", &[("size", Is(&[-1, 1, 28, 28]))]),
    ("expand", &[("size", Is(&[-1, -1, 28, 28]))]),
    ("permute", &[("size", Is(&[0, 2, 3, 1]))]),
    ("squeeze", &[("dim", I(1))]),
    ("unsqueeze", &[("dim", I(0))]),
    ("select", &[("dim", I(1)), ("ind", I(-1))]),
    ("indexselect", &[("dim", I(1)), ("ind", Is(&[0, 1, 2]))]),
    ("pad", &[("pad", Is(&[1, 2, 2, 1, 1, 2]))]),
    ("pad1d", &[("pad", Is(&[1, 2]))]),
    ("pad2d", &[("pad", Is(&[1, 1, 2, 2]))]),
    (
        "pad3d",
        &[("pad", Is(&[3, 3, 6, 6, 0, 1])), ("value", F(3.5))],
    ),
    ("reflect1d", &[("pad", Is(&[1, 2]))]),
    ("reflect2d", &[("pad", Is(&[1, 1, 2, 0]))]),
    ("replicate1d", &[("pad", Is(&[1, 2]))]),
    ("replicate2d", &[("pad", Is(&[1, 1, 2, 0]))]),
    ("replicate3d", &[("pad", Is(&[3, 3, 6, 6, 1, 1]))]),
    ("zeropad2d", &[("pad", Is(&[1, 1, 2, 0]))]),
    ("interpolate", &[("size", Is(&[4]))]),
    ("upsample", &[("scale", F(2.0))]),
    ("onehot", &[("classes", I(10))]),
    (
        "randomcrop",
        &[("size", I(32)), ("pad", I(4)), ("padmode", S("reflect"))],
    ),
    (
        "zscore",
        &[
            ("mean", Fs(&[0.51, 0.49, 0.47])),
            ("std", Fs(&[0.25, 0.25, 0.21])),
        ],
    ),
    ("droppath", &[("p", F(0.1))]),
    ("fold", &[("out", Is(&[4, 6])), ("size", Is(&[2, 3]))]),
    ("unfold", &[("size", Is(&[2, 3]))]),
    ("attention", &[("dim", I(512)), ("heads", I(8))]),
    ("selfattention", &[("dim", I(512)), ("heads", I(8))]),
    ("encoderlayer", &[("in", I(512)), ("heads", I(8))]),
    ("decoderlayer", &[("in", I(512)), ("heads", I(8))]),
    (
        "encoder",
        &[("encoderlayer", Is(&[512, 8])), ("layers", I(6))],
    ),
    (
        "decoder",
        &[("decoderlayer", Is(&[512, 8])), ("layers", I(6))],
    ),
];

/// The example settings of module type `kind` by name (none for a type that
/// needs none).
pub fn module_example(kind: &str) -> Vec<(String, Value)> {
    EXAMPLES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, xs)| xs.iter().map(|(k, v)| (k.to_string(), v.value())).collect())
        .unwrap_or_default()
}

/// The options of module type `kind`, in order, each with its example value or
/// else its default (null where the builder derives it, e.g. a pooling stride
/// that follows the size): the original's `help` of a module type. A container
/// that needs children shows the options it takes without them.
pub fn module_help(kind: &str) -> Result<Vec<(String, Value)>> {
    if !super::module_types().contains(&kind) {
        return Err(super::unknown(kind));
    }
    let ex = module_example(kind);
    let (built, options) = crate::args::described(|| spec::build_layer(kind, &[], &ex, Vec::new()));
    match (built, options) {
        (Err(e), _) if !container::TYPES.contains(&kind) => Err(e),
        (_, Some(o)) => Ok(o),
        (_, None) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Module;

    #[test]
    fn every_leaf_type_builds_from_its_help() {
        for k in crate::nn::module_types() {
            let h = module_help(k).unwrap_or_else(|e| panic!("{k}: {e}"));
            if container::TYPES.contains(&k) {
                continue;
            }
            // the options by name, nulls left out, build the same type
            let given: Vec<_> = h.iter().filter(|(_, v)| !v.is_null()).cloned().collect();
            let m = Module::layer(k, &[], &given).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(m.kind(), k);
        }
    }

    #[test]
    fn examples_name_types_and_options_that_exist() {
        let types = crate::nn::module_types();
        for (k, xs) in EXAMPLES {
            assert!(types.contains(k), "{k}");
            let h = module_help(k).expect("help");
            for (name, _) in *xs {
                assert!(h.iter().any(|(n, _)| n == name), "{k}: {name}");
            }
        }
    }

    #[test]
    fn linear_and_conv2d_as_the_original_shows_them() {
        let h = module_help("linear").expect("linear");
        assert_eq!(
            format!("{h:?}"),
            r#"[("in", 784), ("out", 10), ("bias", true)]"#
        );
        let h = module_help("conv2d").expect("conv2d");
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["in", "out", "size", "stride", "pad", "dilate", "groups", "bias", "padmode"]
        );
        assert_eq!(format!("{:?}", h[8].1), "`zeros");
        let h = module_help("recur").expect("recur");
        assert_eq!(format!("{h:?}"), r#"[("detach", true)]"#);
        assert!(module_help("nosuch").is_err());
    }
}
