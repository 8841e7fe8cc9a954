//! Train and test options: names, defaults, get/set with validation.

use crate::dist::Group;
use crate::error::{err, invalid, Error, Named, Result};
use crate::model::metrics::Metric;
use crate::value::Value;

/// What a training step does when the gradient norm is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonFinite {
    /// Step anyway (the original's behaviour).
    Proceed,
    /// Skip the optimizer step for that batch.
    Skip,
    /// Stop the run with an error.
    Raise,
}

impl NonFinite {
    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            NonFinite::Proceed => "proceed",
            NonFinite::Skip => "skip",
            NonFinite::Raise => "raise",
        }
    }
}

/// Which of a model's two stages: training or testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Training: `train`, `run`, `batch`, `shuffle`...
    Train,
    /// Testing: `test`, `testrun`, `testbatch`...
    Test,
}

impl Phase {
    /// True for training.
    pub fn is_train(self) -> bool {
        self == Phase::Train
    }

    /// The api's name of the stage's options and data function: `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Train => "train",
            Phase::Test => "test",
        }
    }

    /// How messages name the stage's data: `training` or `test`.
    pub fn data_name(self) -> &'static str {
        match self {
            Phase::Train => "training",
            Phase::Test => "test",
        }
    }
}

/// Options of one stage (training or testing).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// True for the training options (which have more names).
    pub train: bool,
    /// Rows per batch (0: all rows in one batch).
    pub batchsize: i64,
    /// Drop the last batch when it is not full size.
    pub droplast: bool,
    /// The module takes and returns a hidden state, passed from batch to batch.
    pub hidden: bool,
    /// Return metrics as tensors rather than arrays.
    pub tensor: bool,
    /// Return metrics as a dictionary keyed by name.
    pub dictionary: bool,
    /// Metrics the run returns.
    pub metrics: Vec<Metric>,
    /// Clip by norm per optimizer group.
    pub clipgroup: bool,
    /// Maximum gradient norm and norm type.
    pub clipnorm: Option<(f64, f64)>,
    /// Maximum gradient magnitude.
    pub clipvalue: Option<f64>,
    /// Shuffle the data at the start of each pass.
    pub shuffle: bool,
    /// Synchronize with the device after each batch.
    pub sync: bool,
    /// Task index (0 .. tasks-1).
    pub task: i64,
    /// Number of tasks sharing the data: task k takes batches k, k+tasks, ... (ignored
    /// with a process group, option `dist`).
    pub tasks: i64,
    /// Draw the shuffle permutation on CUDA.
    pub shufflecuda: bool,
    /// Seed of the shuffle generator shared by all tasks.
    pub shuffleseed: Option<i64>,
    /// What to do with a NaN or infinite gradient norm.
    pub nonfinite: NonFinite,
    /// Draw a progress bar on stderr during a pass (batches, rate, ETA, running
    /// loss), when stderr is a terminal.
    pub progress: bool,
    /// Mixed precision: forward and loss under autocast in this dtype (bfloat16 or
    /// float16) on the module's device; float16 training scales the loss
    /// dynamically (as torch's GradScaler). None: full precision.
    pub autocast: Option<tch::Kind>,
    /// The process group a pass is split over ([`crate::dist`]), None for one process. The
    /// test stage without one of its own uses the training stage's.
    pub dist: Option<Group>,
    /// With a process group: a pass checks that every rank's parameters and buffers equal
    /// rank 0's (an error on every rank naming those that differ) rather than giving every
    /// rank rank 0's.
    pub distcheck: bool,
}

/// One option: its name, whether only training has it, how it is read and set.
struct Opt {
    name: &'static str,
    train_only: bool,
    get: fn(&Options) -> Value,
    /// Sets the option from a value; the name is for messages.
    set: fn(&mut Options, &'static str, &Value) -> Result<()>,
}

/// A boolean option: `flag_opt!(name, train_only, field)`.
macro_rules! flag_opt {
    ($name:literal, $train_only:expr, $field:ident) => {
        Opt {
            name: $name,
            train_only: $train_only,
            get: |o| Value::Bool(o.$field),
            set: |o, k, v| {
                o.$field = v.as_bool("value").named(k)?;
                Ok(())
            },
        }
    };
}

/// An integer option with a lower bound:
/// `int_opt!(name, train_only, field, least, message)`.
macro_rules! int_opt {
    ($name:literal, $train_only:expr, $field:ident, $least:literal, $why:literal) => {
        Opt {
            name: $name,
            train_only: $train_only,
            get: |o| Value::Int(o.$field),
            set: |o, k, v| {
                let n = v.as_int("value").named(k)?;
                if n < $least {
                    return Err(err(k, format!("{}, given {n}", $why)));
                }
                o.$field = n;
                Ok(())
            },
        }
    };
}

/// Every option, in the order `train(m)` / `test(m)` list them: the one place
/// an option is named, read and set.
const OPTIONS: &[Opt] = &[
    Opt {
        name: "batchsize",
        train_only: false,
        get: |o| Value::Int(o.batchsize),
        set: |o, k, v| {
            let n = v.as_int("value").named(k)?;
            if n < 0 {
                return Err(invalid(format!(
                    "batchsize must be non-negative, given {n}"
                )));
            }
            o.batchsize = n;
            Ok(())
        },
    },
    flag_opt!("droplast", false, droplast),
    flag_opt!("hidden", false, hidden),
    flag_opt!("tensor", false, tensor),
    flag_opt!("dictionary", false, dictionary),
    Opt {
        name: "metrics",
        train_only: false,
        get: |o| {
            Value::List(
                o.metrics
                    .iter()
                    .map(|m| Value::Str(m.name().into()))
                    .collect(),
            )
        },
        set: set_metrics,
    },
    flag_opt!("clipgroup", true, clipgroup),
    Opt {
        name: "clipnorm",
        train_only: true,
        get: |o| {
            o.clipnorm.map_or(Value::Null, |(a, b)| {
                Value::List(vec![Value::Float(a), Value::Float(b)])
            })
        },
        set: set_clipnorm,
    },
    Opt {
        name: "clipvalue",
        train_only: true,
        get: |o| o.clipvalue.map_or(Value::Null, Value::Float),
        set: set_clipvalue,
    },
    flag_opt!("shuffle", true, shuffle),
    flag_opt!("sync", true, sync),
    int_opt!("task", false, task, 0, "must be non-negative"),
    int_opt!("tasks", false, tasks, 1, "must be at least 1"),
    flag_opt!("shufflecuda", true, shufflecuda),
    Opt {
        name: "shuffleseed",
        train_only: true,
        get: |o| o.shuffleseed.map_or(Value::Null, Value::Int),
        set: |o, k, v| {
            o.shuffleseed = match v {
                Value::Null => None,
                v => Some(v.as_int("value").named(k)?),
            };
            Ok(())
        },
    },
    Opt {
        name: "nonfinite",
        train_only: true,
        get: |o| Value::Str(o.nonfinite.name().into()),
        set: |o, k, v| {
            o.nonfinite = match v.as_str("value").named(k)? {
                "proceed" => NonFinite::Proceed,
                "skip" => NonFinite::Skip,
                "raise" => NonFinite::Raise,
                s => {
                    return Err(err(
                        k,
                        format!("unrecognized setting `{s}`, expecting proceed, skip or raise"),
                    ))
                }
            };
            Ok(())
        },
    },
    flag_opt!("progress", false, progress),
    Opt {
        name: "autocast",
        train_only: false,
        get: |o| match o.autocast {
            None => Value::Null,
            Some(k) => Value::Str(crate::tensor::kind_name(k).into()),
        },
        set: |o, k, v| {
            o.autocast = match v {
                Value::Null | Value::Bool(false) => None,
                v => match v.as_str("value").named(k)? {
                    "bfloat" => Some(tch::Kind::BFloat16),
                    "half" => Some(tch::Kind::Half),
                    s => {
                        return Err(err(
                            k,
                            format!(
                                "unrecognized setting `{s}`, expecting bfloat, half or None (off)"
                            ),
                        ))
                    }
                },
            };
            Ok(())
        },
    },
    Opt {
        name: "dist",
        train_only: false,
        get: |o| {
            o.dist
                .as_ref()
                .and_then(Group::name)
                .map_or(Value::Null, |n| Value::Str(n.into()))
        },
        set: set_dist,
    },
    flag_opt!("distcheck", false, distcheck),
];

/// The process group option: a group's name (its `torch.distributed` `group_name`), true for
/// the default group (named "0"), null or false for none.
fn set_dist(o: &mut Options, k: &'static str, v: &Value) -> Result<()> {
    o.dist = match v {
        Value::Null | Value::Bool(false) => None,
        Value::Bool(true) => Some(Group::resolve("0")?),
        Value::Str(name) => Some(Group::resolve(name)?),
        v => {
            return Err(invalid(format!(
                "{k}: expecting a process group (its name), true (the default group) or \
                 null, given {}",
                v.type_name()
            )))
        }
    };
    Ok(())
}

fn set_metrics(o: &mut Options, k: &'static str, v: &Value) -> Result<()> {
    let names = match v {
        Value::Null => vec![],
        Value::List(x) if x.is_empty() => vec![],
        v => v.as_strs("value").named(k)?,
    };
    let mut ms = Vec::with_capacity(names.len());
    for n in names {
        let m = Metric::from_name(&n).ok_or_else(|| {
            err(
                k,
                format!(
                    "unrecognized metric: {n}, expecting one of: {}",
                    Metric::ALL
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if ms.contains(&m) {
            return Err(err(k, format!("metric {n} given twice")));
        }
        ms.push(m);
    }
    o.metrics = ms;
    Ok(())
}

fn set_clipnorm(o: &mut Options, k: &'static str, v: &Value) -> Result<()> {
    o.clipnorm = match v {
        Value::Null => None,
        Value::List(x) | Value::Tuple(x) if x.is_empty() => None,
        v => {
            let xs = v.as_floats("value").named(k)?;
            let (m, p) = match xs.as_slice() {
                [m] => (*m, 2.0),
                [m, p] => (*m, *p),
                _ => {
                    return Err(err(
                        k,
                        format!(
                            "expecting max norm or (max norm, norm type), given {} values",
                            xs.len()
                        ),
                    ))
                }
            };
            crate::clip::check_norm(m, p).map_err(|e| e.named(k))?;
            Some((m, p))
        }
    };
    if o.clipnorm.is_some() {
        o.clipvalue = None;
    }
    Ok(())
}

fn set_clipvalue(o: &mut Options, k: &'static str, v: &Value) -> Result<()> {
    o.clipvalue = match v {
        Value::Null => None,
        Value::List(x) | Value::Tuple(x) if x.is_empty() => None,
        v => {
            let x = v.as_float("value").named(k)?;
            if x.is_nan() || x < 0.0 {
                return Err(err(k, format!("must be non-negative, given {x}")));
            }
            Some(x)
        }
    };
    if o.clipvalue.is_some() {
        o.clipnorm = None;
    }
    Ok(())
}

impl Options {
    /// The defaults of the training or test stage.
    pub fn new(phase: Phase) -> Options {
        let train = phase.is_train();
        Options {
            train,
            batchsize: if train { 32 } else { 100 },
            droplast: false,
            hidden: false,
            tensor: false,
            dictionary: false,
            metrics: vec![Metric::Loss],
            clipgroup: false,
            clipnorm: None,
            clipvalue: None,
            shuffle: false,
            sync: false,
            task: 0,
            tasks: 1,
            shufflecuda: false,
            shuffleseed: None,
            nonfinite: NonFinite::Proceed,
            progress: false,
            autocast: None,
            dist: None,
            distcheck: false,
        }
    }

    fn table(&self) -> impl Iterator<Item = &'static Opt> + '_ {
        OPTIONS.iter().filter(|o| self.train || !o.train_only)
    }

    /// The option names of this stage, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.table().map(|o| o.name).collect()
    }

    /// Every option and its value.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.table()
            .map(|o| (o.name.to_string(), (o.get)(self)))
            .collect()
    }

    /// The value of one option.
    pub fn get(&self, name: &str) -> Result<Value> {
        Ok((self.find(name)?.get)(self))
    }

    fn find(&self, name: &str) -> Result<&'static Opt> {
        match OPTIONS.iter().find(|o| o.name == name) {
            Some(o) if self.train || !o.train_only => Ok(o),
            Some(_) => Err(invalid(format!("{name}: not set for evaluation"))),
            None => Err(invalid(format!(
                "unrecognized option: {name}, expecting one of: {}",
                self.names().join(", ")
            ))),
        }
    }

    fn set_value(&mut self, name: &str, v: Value) -> Result<&mut Self> {
        self.set(&[(name.to_string(), v)])?;
        Ok(self)
    }

    /// Rows per batch (0: all rows in one batch).
    pub fn batchsize(&mut self, n: i64) -> Result<&mut Self> {
        self.set_value("batchsize", Value::Int(n))
    }

    /// Drop the last batch when it is not full size.
    pub fn droplast(&mut self, on: bool) -> Result<&mut Self> {
        self.set_value("droplast", Value::Bool(on))
    }

    /// The module takes and returns a hidden state, passed from batch to batch.
    pub fn hidden(&mut self, on: bool) -> Result<&mut Self> {
        self.set_value("hidden", Value::Bool(on))
    }

    /// The metrics a pass returns, in order (each at most once).
    pub fn metrics(&mut self, ms: &[Metric]) -> Result<&mut Self> {
        let v = Value::List(ms.iter().map(|m| Value::Str(m.name().into())).collect());
        self.set_value("metrics", v)
    }

    /// Draw a progress bar on stderr during a pass, when stderr is a terminal.
    pub fn progress(&mut self, on: bool) -> Result<&mut Self> {
        self.set_value("progress", Value::Bool(on))
    }

    /// Mixed precision in `kind` (`Kind::BFloat16`, `Kind::Half`), or None for full precision.
    pub fn autocast(&mut self, kind: Option<tch::Kind>) -> Result<&mut Self> {
        self.set_value(
            "autocast",
            kind.map_or(Value::Null, |k| {
                Value::Str(crate::tensor::kind_name(k).into())
            }),
        )
    }

    /// Shuffle the training data at the start of each pass (training only).
    pub fn shuffle(&mut self, on: bool) -> Result<&mut Self> {
        self.set_value("shuffle", Value::Bool(on))
    }

    /// Seed of the shuffle generator, None for libtorch's generator (training only).
    pub fn shuffleseed(&mut self, seed: Option<i64>) -> Result<&mut Self> {
        self.set_value("shuffleseed", seed.map_or(Value::Null, Value::Int))
    }

    /// Clip gradients to a maximum norm of the given type (training only; clears `clipvalue`).
    pub fn clipnorm(&mut self, maxnorm: f64, normtype: f64) -> Result<&mut Self> {
        self.set_value(
            "clipnorm",
            Value::List(vec![Value::Float(maxnorm), Value::Float(normtype)]),
        )
    }

    /// Clip each gradient value to [-v, v] (training only; clears `clipnorm`).
    pub fn clipvalue(&mut self, v: f64) -> Result<&mut Self> {
        self.set_value("clipvalue", Value::Float(v))
    }

    /// Clip by norm per optimizer group (training only).
    pub fn clipgroup(&mut self, on: bool) -> Result<&mut Self> {
        self.set_value("clipgroup", Value::Bool(on))
    }

    /// This process's task among `tasks` sharing the data.
    pub fn task(&mut self, task: i64, tasks: i64) -> Result<&mut Self> {
        self.set(&[
            ("tasks".to_string(), Value::Int(tasks)),
            ("task".to_string(), Value::Int(task)),
        ])?;
        Ok(self)
    }

    /// The process group run and testrun split their batches over ([`crate::dist`]), None
    /// for one process.
    pub fn dist(&mut self, group: Option<Group>) -> &mut Self {
        self.dist = group;
        self
    }

    /// With a process group: check that every rank's parameters and buffers equal rank 0's
    /// at the start of a pass (true) rather than give every rank rank 0's (false).
    pub fn distcheck(&mut self, on: bool) -> &mut Self {
        self.distcheck = on;
        self
    }

    /// What a step does with a non-finite gradient norm (training only).
    pub fn nonfinite(&mut self, what: NonFinite) -> Result<&mut Self> {
        self.set_value("nonfinite", Value::Str(what.name().into()))
    }

    /// Sets options by name; on any error every option keeps its old value. Errors are
    /// [`Error::Invalid`], naming the option (`"batchsize: ..."`): the caller adds its own
    /// name ([`Error::named`]), as the Python binding adds `train:` or `test:`.
    pub fn set(&mut self, pairs: &[(String, Value)]) -> Result<()> {
        let mut o = self.clone();
        for (k, v) in pairs {
            let opt = o.find(k)?;
            // named by the option, and left for the caller to name by its function
            (opt.set)(&mut o, opt.name, v).map_err(|e| match e {
                Error::Arg(m) => Error::Invalid(m),
                e => e,
            })?;
        }
        if o.task >= o.tasks {
            return Err(invalid(format!(
                "task {} implies at least {} tasks, but only {} defined",
                o.task,
                o.task + 1,
                o.tasks
            )));
        }
        *self = o;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_set_keeps_everything() {
        let mut o = Options::new(Phase::Train);
        let e = o.set(&[
            ("batchsize".into(), Value::Int(5)),
            ("metrics".into(), Value::Str("bogus".into())),
        ]);
        assert!(e.is_err());
        assert_eq!(o.batchsize, 32);
    }

    #[test]
    fn clip_options_exclude_each_other() {
        let mut o = Options::new(Phase::Train);
        o.set(&[("clipnorm".into(), Value::Int(2))]).expect("set");
        assert_eq!(o.clipnorm, Some((2.0, 2.0)));
        o.set(&[("clipvalue".into(), Value::Float(0.5))])
            .expect("set");
        assert_eq!(o.clipnorm, None);
    }

    #[test]
    fn train_only_refused_on_test() {
        let mut o = Options::new(Phase::Test);
        let e = o
            .set(&[("clipnorm".into(), Value::Int(2))])
            .expect_err("test");
        assert_eq!(e.to_string(), "clipnorm: not set for evaluation");
    }

    #[test]
    fn integer_options_refuse_inexact_floats() {
        for train in [true, false] {
            let names: &[&str] = if train {
                &["batchsize", "task", "tasks", "shuffleseed"]
            } else {
                &["batchsize"]
            };
            for name in names {
                for f in [1e300, -1e300, 9.3e18, f64::INFINITY, f64::NAN, 2.5] {
                    let mut o = Options::new(if train { Phase::Train } else { Phase::Test });
                    let before = o.clone();
                    let e = o
                        .set(&[(name.to_string(), Value::Float(f))])
                        .expect_err("refused");
                    assert!(
                        e.to_string()
                            .starts_with(&format!("{name}: value expects an integer, given float")),
                        "{name}={f}: {e}"
                    );
                    assert_eq!(o, before, "{name}={f} changed the options");
                }
            }
        }
        // integral floats in range are taken as they are
        let mut o = Options::new(Phase::Train);
        o.set(&[
            ("batchsize".into(), Value::Float(64.0)),
            ("tasks".into(), Value::Float(4.0)),
            ("task".into(), Value::Float(3.0)),
            ("shuffleseed".into(), Value::Float(-7.0)),
        ])
        .expect("set");
        assert_eq!(
            (o.batchsize, o.tasks, o.task, o.shuffleseed),
            (64, 4, 3, Some(-7))
        );
    }

    #[test]
    fn every_option_reads_back_what_it_was_set_to() {
        let mut o = Options::new(Phase::Train);
        for (k, v) in o.all() {
            o.set(&[(k.clone(), v.clone())]).expect("set");
            assert_eq!(format!("{:?}", o.get(&k).expect("get")), format!("{v:?}"));
        }
        assert_eq!(Options::new(Phase::Test).names().len(), 12);
        assert_eq!(o.names().len(), OPTIONS.len());
    }

    #[test]
    fn typed_setters_check_like_the_named_ones() {
        let mut o = Options::new(Phase::Train);
        o.batchsize(100)
            .and_then(|o| o.shuffle(true))
            .and_then(|o| o.metrics(&[Metric::Loss, Metric::Accuracy]))
            .and_then(|o| o.clipnorm(1.0, 2.0))
            .expect("set");
        assert_eq!(
            (o.batchsize, o.shuffle, o.clipnorm),
            (100, true, Some((1.0, 2.0)))
        );
        assert_eq!(o.metrics, vec![Metric::Loss, Metric::Accuracy]);
        let e = o.batchsize(-1).expect_err("negative");
        assert_eq!(e.to_string(), "batchsize must be non-negative, given -1");
        assert_eq!(o.batchsize, 100);
        let mut t = Options::new(Phase::Test);
        assert_eq!(
            t.shuffle(true).expect_err("test").to_string(),
            "shuffle: not set for evaluation"
        );
    }

    #[test]
    fn dist_takes_a_group_name_or_none() {
        let mut o = Options::new(Phase::Test);
        for v in [Value::Null, Value::Bool(false)] {
            o.set(&[("dist".into(), v)]).expect("none");
            assert_eq!(o.get("dist").expect("get"), Value::Null);
        }
        let e = o
            .set(&[("dist".into(), Value::Int(3))])
            .expect_err("an integer");
        assert!(
            e.to_string()
                .starts_with("dist: expecting a process group (its name)"),
            "{e}"
        );
        let e = o
            .set(&[("dist".into(), Value::Str("no-such-group".into()))])
            .expect_err("unknown");
        assert!(
            e.to_string()
                .starts_with("dist: no process group named \"no-such-group\""),
            "{e}"
        );
        assert!(o.dist.is_none());
    }

    #[test]
    fn task_below_tasks() {
        let mut o = Options::new(Phase::Train);
        let e = o
            .set(&[
                ("tasks".into(), Value::Int(2)),
                ("task".into(), Value::Int(2)),
            ])
            .expect_err("task");
        assert_eq!(
            e.to_string(),
            "task 2 implies at least 3 tasks, but only 2 defined"
        );
    }
}
