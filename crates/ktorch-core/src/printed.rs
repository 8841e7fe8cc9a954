//! The printed form of an object (`str`), as libtorch's C++ `operator<<` writes it:
//! a module tree as `torch::nn::Sequential(\n  (0): torch::nn::Linear(in_features=784,
//! out_features=10, bias=true)\n  ...\n)`, a loss as `torch::nn::CrossEntropyLoss()`,
//! a tensor with its values and `[ CPUFloatType{2,3} ]`.
//!
//! Each module type libtorch has is written as libtorch writes it, from the
//! module's settings (defaults where not given); the types of the original's own
//! (`knn::`) are written as `knn::Name(setting=value, ...)` with the settings given.

use tch::Tensor;

use crate::error::Result;
use crate::loss::Loss;
use crate::nn::Module;
use crate::value::Value;

/// A number as C++ streams write a double by default (`%g`: 6 significant digits).
pub fn cfloat(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:.5e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&exp) {
        format!(
            "{}e{}{:02}",
            trim(mant),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        trim(&format!("{:.*}", (5 - exp) as usize, x))
    }
}

/// A tensor as libtorch prints it (`torch::print`, 80 columns).
pub fn tensor(t: &Tensor) -> Result<String> {
    if !t.defined() {
        return Ok("[ Tensor (undefined) ]".into());
    }
    Ok(t.to_string(80)?)
}

/// A module tree as libtorch prints it.
pub fn module(m: &Module) -> String {
    let mut out = String::new();
    write_tree(m, "", &mut out);
    out
}

fn write_tree(m: &Module, indent: &str, out: &mut String) {
    out.push_str(&head(m));
    if m.children().is_empty() {
        return;
    }
    out.push_str("(\n");
    let inner = format!("{indent}  ");
    for (k, c) in m.children() {
        out.push_str(&format!("{inner}({k}): "));
        write_tree(c, &inner, out);
        out.push('\n');
    }
    out.push_str(indent);
    out.push(')');
}

/// A module's settings by name: those given, else the defaults asked for.
struct Opts(Vec<(String, Value)>);

impl Opts {
    fn of(m: &Module) -> Opts {
        Opts(m.options().unwrap_or_default())
    }

    fn get(&self, k: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn f(&self, k: &str, d: f64) -> f64 {
        self.get(k).and_then(|v| v.as_float(k).ok()).unwrap_or(d)
    }

    fn i(&self, k: &str, d: i64) -> i64 {
        self.get(k).and_then(|v| v.as_int(k).ok()).unwrap_or(d)
    }

    fn b(&self, k: &str, d: bool) -> bool {
        self.get(k).and_then(|v| v.as_bool(k).ok()).unwrap_or(d)
    }

    fn s(&self, k: &str, d: &str) -> String {
        self.get(k)
            .and_then(|v| v.as_str(k).ok().map(str::to_string))
            .unwrap_or_else(|| d.to_string())
    }

    /// `d` values: one given for every dimension, or one each; `dflt` where none given.
    fn ints(&self, k: &str, d: usize, dflt: &[i64]) -> Vec<i64> {
        let v = self
            .get(k)
            .and_then(|v| v.as_ints(k).ok())
            .unwrap_or_else(|| dflt.to_vec());
        if v.len() == 1 && d > 1 {
            vec![v[0]; d]
        } else {
            v
        }
    }
}

fn tf(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// libtorch's `ExpandingArray<d>`: one value for d = 1, else `[a, b]`.
fn arr(v: &[i64], d: usize) -> String {
    if d == 1 && v.len() == 1 {
        return v[0].to_string();
    }
    list(v)
}

fn list(v: &[i64]) -> String {
    format!(
        "[{}]",
        v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )
}

fn inplace(o: &Opts, first: bool) -> String {
    match (o.b("inplace", false), first) {
        (false, _) => String::new(),
        (true, true) => "inplace=true".into(),
        (true, false) => ", inplace=true".into(),
    }
}

fn dims(kind: &str) -> usize {
    match kind.as_bytes() {
        [.., b'1', b'd'] => 1,
        [.., b'2', b'd'] => 2,
        [.., b'3', b'd'] => 3,
        _ => 0,
    }
}

/// libtorch's enum names: `kZeros`, `kBilinear`.
fn enum_name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => format!("k{}{}", f.to_uppercase(), c.as_str()),
        None => "k".into(),
    }
}

/// A value as the original's `knn::` modules write their settings.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => tf(*b).into(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => cfloat(*x),
        Value::Str(s) => s.clone(),
        Value::List(xs) | Value::Tuple(xs) => {
            format!("[{}]", xs.iter().map(plain).collect::<Vec<_>>().join(", "))
        }
        Value::Dict(d) => format!(
            "{{{}}}",
            d.iter()
                .map(|(k, v)| format!("{k}: {}", plain(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tensor(t) => format!("tensor{:?}", t.size()),
        Value::Callable(_) => "<function>".into(),
    }
}

/// The class name of the original's own module types.
fn knn_name(kind: &str) -> &str {
    match kind {
        "residual" => "Residual",
        "callback" => "Callback",
        "droppath" => "DropPath",
        "embedpos" => "EmbedPosition",
        "embedseq" => "EmbedSequence",
        "reshape" => "Reshape",
        "expand" => "Expand",
        "permute" => "Permute",
        "squeeze" => "Squeeze",
        "unsqueeze" => "Unsqueeze",
        "transpose" => "Transpose",
        "select" => "Select",
        "indexselect" => "IndexSelect",
        "pad" => "Pad",
        "cat" => "Cat",
        "matmul" => "Matmul",
        "mul" => "Mul",
        "normalize" => "Normalize",
        "onehot" => "OneHot",
        "interpolate" => "Interpolate",
        "randomcrop" => "RandomCrop",
        "randomflip" => "RandomFlip",
        "zscore" => "Zscore",
        k => k,
    }
}

/// One module's own line (without its children).
fn head(m: &Module) -> String {
    let o = Opts::of(m);
    let kind = m.kind();
    let d = dims(kind);
    let t = |name: &str, body: String| format!("torch::nn::{name}({body})");
    match kind {
        "sequential" => "torch::nn::Sequential".into(),
        "identity" => "torch::nn::Identity()".into(),
        "linear" => t(
            "Linear",
            format!(
                "in_features={}, out_features={}, bias={}",
                o.i("in", 0),
                o.i("out", 0),
                tf(o.b("bias", true))
            ),
        ),
        "bilinear" => t(
            "Bilinear",
            format!(
                "in1_features={}, in2_features={}, out_features={}, bias={}",
                o.i("in1", 0),
                o.i("in2", 0),
                o.i("out", 0),
                tf(o.b("bias", true))
            ),
        ),
        "embed" | "embedbag" => embedding(m, &o),
        k if k.starts_with("convtranspose") || k.starts_with("conv") => conv(kind, d, &o),
        k if k.starts_with("maxpool") => {
            let size = o.ints("size", d, &[1]);
            t(
                &format!("MaxPool{d}d"),
                format!(
                    "kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={}",
                    arr(&size, d),
                    arr(&o.ints("stride", d, &size), d),
                    arr(&o.ints("pad", d, &[0]), d),
                    arr(&o.ints("dilate", d, &[1]), d),
                    tf(o.b("ceiling", false))
                ),
            )
        }
        k if k.starts_with("avgpool") => {
            let size = o.ints("size", d, &[1]);
            t(
                &format!("AvgPool{d}d"),
                format!(
                    "kernel_size={}, stride={}, padding={}",
                    arr(&size, d),
                    arr(&o.ints("stride", d, &size), d),
                    arr(&o.ints("pad", d, &[0]), d)
                ),
            )
        }
        k if k.starts_with("adaptavg") || k.starts_with("adaptmax") => {
            let name = if k.starts_with("adaptavg") {
                "AdaptiveAvgPool"
            } else {
                "AdaptiveMaxPool"
            };
            let sizes: Vec<String> = match o.get("size") {
                Some(Value::List(xs)) | Some(Value::Tuple(xs)) => xs
                    .iter()
                    .map(|x| match x {
                        Value::Null => "None".to_string(),
                        x => plain(x),
                    })
                    .collect(),
                Some(v) => vec![plain(v); d],
                None => vec!["None".into(); d],
            };
            let body = if d == 1 && sizes.len() == 1 {
                sizes[0].clone()
            } else {
                format!("[{}]", sizes.join(", "))
            };
            t(&format!("{name}{d}d"), format!("output_size={body}"))
        }
        k if k.starts_with("fmaxpool") => t(&format!("FractionalMaxPool{d}d"), String::new()),
        k if k.starts_with("lppool") => {
            let size = o.ints("size", d, &[1]);
            t(
                &format!("LPPool{d}d"),
                format!(
                    "norm_type={}, kernel_size={}, stride={}, ceil_mode={}",
                    cfloat(o.f("p", 2.0)),
                    arr(&size, d),
                    arr(&o.ints("stride", d, &size), d),
                    tf(o.b("ceiling", false))
                ),
            )
        }
        k if k.starts_with("batchnorm") || k.starts_with("instancenorm") => {
            let bn = k.starts_with("batchnorm");
            let momentum = if bn {
                match crate::model::swa::momentum(m) {
                    Ok(Some(x)) => cfloat(x),
                    Ok(None) => "None".into(),
                    Err(_) => cfloat(0.1),
                }
            } else {
                cfloat(o.f("momentum", 0.1))
            };
            t(
                &format!("{}{d}d", if bn { "BatchNorm" } else { "InstanceNorm" }),
                format!(
                    "{}, eps={}, momentum={momentum}, affine={}, track_running_stats={}",
                    o.i("in", 0),
                    cfloat(o.f("eps", 1e-5)),
                    tf(o.b("affine", bn)),
                    tf(o.b("track", bn))
                ),
            )
        }
        "layernorm" => t(
            "LayerNorm",
            format!(
                "{}, eps={}, elementwise_affine={}",
                list(&o.ints("shape", 0, &[])),
                cfloat(o.f("eps", 1e-5)),
                tf(o.b("affine", true))
            ),
        ),
        "groupnorm" => t(
            "GroupNorm",
            format!(
                "{}, {}, eps={}, affine={}",
                o.i("groups", 0),
                o.i("channels", 0),
                cfloat(o.f("eps", 1e-5)),
                tf(o.b("affine", true))
            ),
        ),
        "localnorm" | "crossmap2d" => t(
            if kind == "localnorm" {
                "LocalResponseNorm"
            } else {
                "CrossMapLRN2d"
            },
            format!(
                "{}, alpha={}, beta={}, k={}",
                o.i("size", 0),
                cfloat(o.f("alpha", 1e-4)),
                cfloat(o.f("beta", 0.75)),
                cfloat(o.f("k", 1.0))
            ),
        ),
        "drop" | "drop2d" | "drop3d" | "adrop" | "fadrop" => t(
            match kind {
                "drop" => "Dropout",
                "drop2d" => "Dropout2d",
                "drop3d" => "Dropout3d",
                "adrop" => "AlphaDropout",
                _ => "FeatureAlphaDropout",
            },
            format!(
                "p={}, inplace={}",
                cfloat(o.f("p", 0.5)),
                tf(o.b("inplace", false))
            ),
        ),
        "celu" | "elu" => t(
            if kind == "celu" { "CELU" } else { "ELU" },
            format!("alpha={}{}", cfloat(o.f("alpha", 1.0)), inplace(&o, false)),
        ),
        "gelu" => t("GELU", String::new()),
        "glu" => t("GLU", format!("dim={}", o.i("dim", -1))),
        "hardshrink" => t("Hardshrink", cfloat(o.f("lambda", 0.5))),
        "softshrink" => t("Softshrink", cfloat(o.f("lambda", 0.5))),
        "hardtanh" => t(
            "Hardtanh",
            format!(
                "min_val={}, max_val={}{}",
                cfloat(o.f("min", -1.0)),
                cfloat(o.f("max", 1.0)),
                inplace(&o, false)
            ),
        ),
        "leakyrelu" => t(
            "LeakyReLU",
            format!(
                "negative_slope={}{}",
                cfloat(o.f("slope", 0.01)),
                inplace(&o, false)
            ),
        ),
        "logsigmoid" => t("LogSigmoid", String::new()),
        "logsoftmax" => t("LogSoftmax", format!("dim={}", o.i("dim", 0))),
        "softmax" => t("Softmax", format!("dim={}", o.i("dim", 0))),
        "softmin" => t("Softmin", format!("dim={}", o.i("dim", 0))),
        "softmax2d" => t("Softmax2d", String::new()),
        "mish" => t("Mish", String::new()),
        "silu" => t("SiLU", String::new()),
        "sigmoid" => t("Sigmoid", String::new()),
        "softsign" => t("Softsign", String::new()),
        "tanh" => t("Tanh", String::new()),
        "tanhshrink" => t("Tanhshrink", String::new()),
        "prelu" => t("PReLU", format!("num_parameters={}", o.i("in", 1))),
        "relu" => t("ReLU", inplace(&o, true)),
        "relu6" => t("ReLU6", inplace(&o, true)),
        "selu" => t("SELU", inplace(&o, true)),
        "rrelu" => t(
            "RReLU",
            format!(
                "lower={}, upper={}{}",
                cfloat(o.f("lower", 1.0 / 8.0)),
                cfloat(o.f("upper", 1.0 / 3.0)),
                inplace(&o, false)
            ),
        ),
        "softplus" => t(
            "Softplus",
            format!(
                "beta={}, threshold={}",
                cfloat(o.f("beta", 1.0)),
                cfloat(o.f("threshold", 20.0))
            ),
        ),
        "threshold" => t(
            "Threshold",
            format!(
                "threshold={}, value={}{}",
                cfloat(o.f("threshold", 0.0)),
                cfloat(o.f("value", 0.0)),
                inplace(&o, false)
            ),
        ),
        "rnn" | "gru" | "lstm" => t(
            &kind.to_uppercase(),
            format!(
                "input_size={}, hidden_size={}, num_layers={}, bias={}, batch_first={}, dropout={}, bidirectional={}",
                o.i("in", 0),
                o.i("hidden", 0),
                o.i("layers", 1),
                tf(o.b("bias", true)),
                tf(o.b("batchfirst", false)),
                cfloat(o.f("dropout", 0.0)),
                tf(o.b("bi", false))
            ),
        ),
        "flatten" => t(
            "Flatten",
            format!("start_dim={}, end_dim={}", o.i("start", 1), o.i("end", -1)),
        ),
        k if k.starts_with("pad") && d > 0 => t(
            &format!("ConstantPad{d}d"),
            format!(
                "padding={}, value={}",
                list(&o.ints("pad", 2 * d, &[0])),
                cfloat(o.f("value", 0.0))
            ),
        ),
        k if k.starts_with("reflect") || k.starts_with("replicate") || k == "zeropad2d" => {
            let name = if k.starts_with("reflect") {
                format!("ReflectionPad{d}d")
            } else if k.starts_with("replicate") {
                format!("ReplicationPad{d}d")
            } else {
                "ZeroPad2d".into()
            };
            t(&name, format!("padding={}", list(&o.ints("pad", 2 * d, &[0]))))
        }
        "fold" | "unfold" => {
            let rest = format!(
                "kernel_size={}, dilation={}, padding={}, stride={}",
                list(&o.ints("size", 2, &[1])),
                list(&o.ints("dilate", 2, &[1])),
                list(&o.ints("pad", 2, &[0])),
                list(&o.ints("stride", 2, &[1]))
            );
            if kind == "fold" {
                t(
                    "Fold",
                    format!("output_size={}, {rest}", list(&o.ints("out", 2, &[1]))),
                )
            } else {
                t("Unfold", rest)
            }
        }
        "pairwise" => t(
            "PairwiseDistance",
            format!(
                "p={}, eps={}, keepdim={}",
                cfloat(o.f("p", 2.0)),
                cfloat(o.f("eps", 1e-6)),
                tf(o.b("keepdim", false))
            ),
        ),
        "similar" => t(
            "CosineSimilarity",
            format!("dim={}, eps={}", o.i("dim", 1), cfloat(o.f("eps", 1e-8))),
        ),
        "upsample" => {
            let what = match (o.get("size"), o.get("scale")) {
                (Some(v), _) => format!("size={}", list(&v.as_ints("size").unwrap_or_default())),
                (None, Some(v)) => format!(
                    "scale_factor=[{}]",
                    v.as_floats("scale")
                        .unwrap_or_default()
                        .iter()
                        .map(|x| cfloat(*x))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (None, None) => String::new(),
            };
            t(
                "Upsample",
                format!("{what}, mode={}", enum_name(&o.s("mode", "nearest"))),
            )
        }
        k => {
            let body = o
                .0
                .iter()
                .map(|(n, v)| format!("{n}={}", plain(v)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("knn::{}({body})", knn_name(k))
        }
    }
}

fn embedding(m: &Module, o: &Opts) -> String {
    let bag = m.kind() == "embedbag";
    // the weight's size: right also where a matrix of weights was given
    let (rows, cols) = match m.own_params().first().map(|(_, w)| w.size()) {
        Some(s) if s.len() == 2 => (s[0], s[1]),
        _ => (o.i("rows", 0), o.i("cols", 0)),
    };
    let mut s = format!("num_embeddings={rows}, embedding_dim={cols}");
    let pad = o.get("padindex").and_then(|v| v.as_int("padindex").ok());
    if let (false, Some(p)) = (bag, pad) {
        s.push_str(&format!(", padding_idx={p}"));
    }
    if let Some(v) = o.get("maxnorm").and_then(|v| v.as_float("maxnorm").ok()) {
        s.push_str(&format!(", max_norm={}", cfloat(v)));
    }
    let norm = o.f(if bag { "p" } else { "normtype" }, 2.0);
    if norm != 2.0 {
        s.push_str(&format!(", norm_type={}", cfloat(norm)));
    }
    if o.b("scale", false) {
        s.push_str(", scale_grad_by_freq=true");
    }
    if o.b("sparse", false) {
        s.push_str(", sparse=true");
    }
    if bag {
        let mode = o.s("mode", "mean");
        if mode != "mean" {
            s.push_str(&format!(", mode={}", enum_name(&mode)));
        }
        if o.b("lastoffset", false) {
            s.push_str(", include_last_offset=true");
        }
        if let Some(p) = pad {
            s.push_str(&format!(", padding_idx={p}"));
        }
        format!("torch::nn::EmbeddingBag({s})")
    } else {
        format!("torch::nn::Embedding({s})")
    }
}

fn conv(kind: &str, d: usize, o: &Opts) -> String {
    let transposed = kind.starts_with("convtranspose");
    let mut s = format!(
        "{}, {}, kernel_size={}, stride={}",
        o.i("in", 0),
        o.i("out", 0),
        arr(&o.ints("size", d, &[1]), d),
        arr(&o.ints("stride", d, &[1]), d)
    );
    match o.get("pad") {
        Some(Value::Str(p)) => s.push_str(&format!(", padding='{p}'")),
        _ => {
            let pad = o.ints("pad", d, &[0]);
            if pad.iter().any(|x| *x != 0) {
                s.push_str(&format!(", padding={}", arr(&pad, d)));
            }
        }
    }
    let dilate = o.ints("dilate", d, &[1]);
    if dilate.iter().any(|x| *x != 1) {
        s.push_str(&format!(", dilation={}", arr(&dilate, d)));
    }
    if transposed {
        let out = o.ints("outpad", d, &[0]);
        if out.iter().any(|x| *x != 0) {
            s.push_str(&format!(", output_padding={}", arr(&out, d)));
        }
    }
    let groups = o.i("groups", 1);
    if groups != 1 {
        s.push_str(&format!(", groups={groups}"));
    }
    if !o.b("bias", true) {
        s.push_str(", bias=false");
    }
    let mode = o.s("padmode", "zeros");
    if mode != "zeros" {
        s.push_str(&format!(", padding_mode={}", enum_name(&mode)));
    }
    format!(
        "torch::nn::{}{d}d({s})",
        if transposed { "ConvTranspose" } else { "Conv" }
    )
}

/// A loss as libtorch prints its loss module.
pub fn loss(l: &Loss) -> Result<String> {
    let o = Opts(l.options(true)?);
    Ok(match l.kind() {
        "ce" => "torch::nn::CrossEntropyLoss()".into(),
        "nll" => "torch::nn::NLLLoss()".into(),
        "bce" => "torch::nn::BCELoss()".into(),
        "bcelogits" => "torch::nn::BCEWithLogitsLoss()".into(),
        "multisoft" => "torch::nn::MultiLabelSoftMarginLoss()".into(),
        "mse" => "torch::nn::MSELoss()".into(),
        "l1" => "torch::nn::L1Loss()".into(),
        "kl" => "torch::nn::KLDivLoss()".into(),
        "multilabel" => "torch::nn::MultiLabelMarginLoss()".into(),
        "softmargin" => "torch::nn::SoftMarginLoss()".into(),
        "smoothl1" => "torch::nn::SmoothL1Loss".into(),
        "huber" => "torch::nn::HuberLoss".into(),
        "hinge" => format!(
            "torch::nn::HingeEmbeddingLoss(margin={})",
            cfloat(o.f("margin", 1.0))
        ),
        "cosineloss" => format!(
            "torch::nn::CosineEmbeddingLoss(margin={})",
            cfloat(o.f("margin", 0.0))
        ),
        "margin" => "torch::nn::MarginRankingLoss()".into(),
        "multimargin" => {
            let w = match o.get("weight") {
                Some(Value::Tensor(t)) => tensor(t)?,
                _ => "[ Tensor (undefined) ]".into(),
            };
            format!(
                "torch::nn::MultiMarginLoss(p={}, margin={}, weight={w}, reduction={})",
                o.i("p", 1),
                cfloat(o.f("margin", 1.0)),
                enum_name(&o.s("reduce", "mean"))
            )
        }
        "triplet" => format!(
            "torch::nn::TripletMarginLoss(margin={}, p={}, eps={}, swap={})",
            cfloat(o.f("margin", 1.0)),
            cfloat(o.f("p", 2.0)),
            cfloat(o.f("eps", 1e-6)),
            tf(o.b("swap", false))
        ),
        "poissonloss" => "torch::nn::PoissonNLLLoss()".into(),
        "ctc" => "torch::nn::CTCLoss()".into(),
        "pairwise" => format!(
            "torch::nn::PairwiseDistance(p={}, eps={}, keepdim={})",
            cfloat(o.f("p", 2.0)),
            cfloat(o.f("eps", 1e-6)),
            tf(o.b("keepdim", false))
        ),
        "similar" => format!(
            "torch::nn::CosineSimilarity(dim={}, eps={})",
            o.i("dim", 1),
            cfloat(o.f("eps", 1e-8))
        ),
        k => format!("torch::nn::{k}()"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_cpp_streams_do() {
        for (x, s) in [
            (1e-5, "1e-05"),
            (1e-7, "1e-07"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333"),
            (0.125, "0.125"),
            (1e-4, "0.0001"),
            (20.0, "20"),
            (1.0, "1"),
            (-1.0, "-1"),
            (2.5e6, "2.5e+06"),
            (123456.0, "123456"),
            (0.0, "0"),
        ] {
            assert_eq!(cfloat(x), s, "{x}");
        }
    }

    fn spec(v: Value) -> Module {
        Module::from_value(&v).expect("spec")
    }

    fn tuple(xs: Vec<Value>) -> Value {
        Value::Tuple(xs)
    }

    // the expected strings are libtorch 2.11's own (`std::cout << *module`)
    #[test]
    fn modules_print_as_libtorch() {
        let q = spec(Value::List(vec![
            "sequential".into(),
            tuple(vec!["linear".into(), 784.into(), 10.into()]),
            "relu".into(),
        ]));
        assert_eq!(
            module(&q),
            "torch::nn::Sequential(\n  (0): torch::nn::Linear(in_features=784, out_features=10, bias=true)\n  (1): torch::nn::ReLU()\n)"
        );
        let cases: Vec<(Value, &str)> = vec![
            (
                tuple(vec!["conv2d".into(), 16.into(), 32.into(), 3.into()]),
                "torch::nn::Conv2d(16, 32, kernel_size=[3, 3], stride=[1, 1])",
            ),
            (
                tuple(vec![
                    "conv2d".into(),
                    16.into(),
                    32.into(),
                    vec![3i64, 5].into(),
                    2.into(),
                    1.into(),
                    2.into(),
                    2.into(),
                    false.into(),
                    "reflect".into(),
                ]),
                "torch::nn::Conv2d(16, 32, kernel_size=[3, 5], stride=[2, 2], padding=[1, 1], dilation=[2, 2], groups=2, bias=false, padding_mode=kReflect)",
            ),
            (
                tuple(vec!["conv1d".into(), 1.into(), 2.into(), 3.into()]),
                "torch::nn::Conv1d(1, 2, kernel_size=3, stride=1)",
            ),
            (
                tuple(vec!["maxpool2d".into(), 3.into(), 2.into(), 1.into(), 2.into(), true.into()]),
                "torch::nn::MaxPool2d(kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], dilation=[2, 2], ceil_mode=true)",
            ),
            (
                tuple(vec!["maxpool1d".into(), 2.into()]),
                "torch::nn::MaxPool1d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false)",
            ),
            (
                tuple(vec!["batchnorm1d".into(), 800.into(), 1e-7.into(), 0.1.into()]),
                "torch::nn::BatchNorm1d(800, eps=1e-07, momentum=0.1, affine=true, track_running_stats=true)",
            ),
            (
                tuple(vec!["batchnorm2d".into(), 4.into(), Value::Null, Value::Null, false.into(), false.into()]),
                "torch::nn::BatchNorm2d(4, eps=1e-05, momentum=None, affine=false, track_running_stats=false)",
            ),
            (
                tuple(vec!["layernorm".into(), vec![32i64, 10].into(), 1e-3.into(), false.into()]),
                "torch::nn::LayerNorm([32, 10], eps=0.001, elementwise_affine=false)",
            ),
            (
                tuple(vec!["drop".into(), 0.2.into(), true.into()]),
                "torch::nn::Dropout(p=0.2, inplace=true)",
            ),
            ("rrelu".into(), "torch::nn::RReLU(lower=0.125, upper=0.333333)"),
            ("hardtanh".into(), "torch::nn::Hardtanh(min_val=-1, max_val=1)"),
            (
                tuple(vec!["lstm".into(), 64.into(), 512.into(), 2.into(), true.into(), true.into()]),
                "torch::nn::LSTM(input_size=64, hidden_size=512, num_layers=2, bias=true, batch_first=true, dropout=0, bidirectional=false)",
            ),
            (
                tuple(vec!["embed".into(), 10.into(), 4.into()]),
                "torch::nn::Embedding(num_embeddings=10, embedding_dim=4)",
            ),
            (
                tuple(vec!["pad1d".into(), vec![1i64, 2].into(), 3.5.into()]),
                "torch::nn::ConstantPad1d(padding=[1, 2], value=3.5)",
            ),
            (
                tuple(vec!["fold".into(), vec![4i64, 5].into(), 2.into()]),
                "torch::nn::Fold(output_size=[4, 5], kernel_size=[2, 2], dilation=[1, 1], padding=[0, 0], stride=[1, 1])",
            ),
            (
                tuple(vec!["adaptavg2d".into(), Value::List(vec![Value::Null, 3.into()])]),
                "torch::nn::AdaptiveAvgPool2d(output_size=[None, 3])",
            ),
            ("flatten".into(), "torch::nn::Flatten(start_dim=1, end_dim=-1)"),
            (
                tuple(vec!["lppool1d".into(), 2.into(), 3.into()]),
                "torch::nn::LPPool1d(norm_type=2, kernel_size=3, stride=3, ceil_mode=false)",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(module(&spec(v)), want);
        }
    }

    #[test]
    fn losses_print_as_libtorch() {
        let l = |name: &str| Loss::new(name, &[], &[]).expect("loss");
        assert_eq!(loss(&l("ce")).expect("ce"), "torch::nn::CrossEntropyLoss()");
        assert_eq!(loss(&l("huber")).expect("huber"), "torch::nn::HuberLoss");
        assert_eq!(
            loss(&l("triplet")).expect("triplet"),
            "torch::nn::TripletMarginLoss(margin=1, p=2, eps=1e-06, swap=false)"
        );
    }
}
