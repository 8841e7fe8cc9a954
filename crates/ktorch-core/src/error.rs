//! The core's error type: every fallible call returns [`Result`].

/// Errors raised by ktorch-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error raised by libtorch, with its own message.
    #[error("{0}")]
    Torch(String),
    /// A bad argument or a call that does not fit the object's state:
    /// the message names the function and the argument at fault.
    #[error("{0}")]
    Arg(String),
    /// A bad argument, in a message that does not name the function: whoever
    /// knows the function adds it ([`Error::named`]; the binding does).
    #[error("{0}")]
    Invalid(String),
    /// A handle used after it was freed.
    #[error("{func}: {class} has been freed")]
    Freed {
        /// The function given the handle.
        func: String,
        /// The handle's class (`Tensor`, `Model`...).
        class: &'static str,
    },
    /// An object the calling thread holds already: a callback calling back
    /// into the object its own call holds. The binding names the function.
    #[error("object is in use by this thread (a call back into ktorch from a callback on the same object?)")]
    InUse,
    /// An object a thread of the parent process held when this process was
    /// forked. The binding names the function.
    #[error("object was in use by another thread when this process was forked; it cannot be used in the child process")]
    Forked,
    /// An error raised by user code called from the core (a callback module).
    #[error("{0}")]
    Callback(String),
    /// An operation stopped by an interrupt request.
    #[error("interrupted")]
    Interrupted,
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(clean_torch_message(&e.to_string()))
    }
}

impl From<ktorch_shim::Error> for Error {
    fn from(e: ktorch_shim::Error) -> Self {
        Error::Torch(clean_torch_message(&e.0))
    }
}

/// libtorch's messages carry a C++ backtrace after the first line(s); keep the
/// message a user can read.
fn clean_torch_message(s: &str) -> String {
    let s = s.strip_prefix("Torch(\"").unwrap_or(s);
    let s = s.strip_prefix("Internal torch error: ").unwrap_or(s);
    let mut out = String::new();
    for line in s.lines() {
        if line.starts_with("Exception raised from") || line.starts_with("frame #") {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out.trim_end().to_string()
}

impl Error {
    /// The error with `ctx` (a function or argument name) in front of a
    /// message that has none yet.
    pub fn named(self, ctx: &str) -> Error {
        match self {
            Error::Invalid(m) => Error::Arg(format!("{ctx}: {m}")),
            e @ (Error::InUse | Error::Forked) => Error::Arg(format!("{ctx}: {e}")),
            e => e,
        }
    }
}

/// An [`Error::Invalid`]: a bad argument, named later by the caller.
pub fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::Invalid(msg.to_string())
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Arg`] whose message starts with its context: the
/// module, loss, optimizer or option the message is about.
pub fn err(ctx: &str, msg: impl std::fmt::Display) -> Error {
    Error::Arg(format!("{ctx}: {msg}"))
}

/// Names the [`Error::Invalid`] errors of a result with their context.
pub trait Named<T> {
    /// [`Error::named`] on the error, if any.
    fn named(self, ctx: &str) -> Result<T>;
}

impl<T> Named<T> for Result<T> {
    fn named(self, ctx: &str) -> Result<T> {
        self.map_err(|e| e.named(ctx))
    }
}

/// Returns early with an [`Error::Arg`] naming the function.
#[macro_export]
macro_rules! bail {
    ($func:expr, $($arg:tt)*) => {
        return Err($crate::error::err($func, format!($($arg)*)))
    };
}

/// True for the payload of a panic in which tch unwrapped a libtorch error
/// (`Torch("...")` in its text).
pub fn is_torch_panic(payload: &str) -> bool {
    payload.contains("Torch(\"")
}

/// The error for a panic caught at an api boundary: libtorch's own message
/// where a tch call unwrapped a libtorch error (without the C++ backtrace),
/// else an internal error. The caller adds the function's name.
pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let text = match msg.find("Torch(\"") {
        Some(i) => {
            let m = &msg[i + 7..];
            let end = m
                .find("\\nException raised")
                .or_else(|| m.find("\\n"))
                .or_else(|| m.rfind('"'))
                .unwrap_or(m.len());
            m[..end].replace("\\\"", "\"").replace("\\'", "'")
        }
        None => format!("internal error: {msg}"),
    };
    Error::Torch(text)
}

/// Valid names listed in full in an [`unrecognized`] message when there are at most this many.
const LIST_MAX: usize = 24;

/// The names in `valid` closest to `given` for a "did you mean" hint: by edit
/// distance (a swap of neighbours counts one), ignoring case, those at the least
/// distance when it is at most a third of the longer name (at least 1); at most 3,
/// in the order of `valid`.
pub fn closest<'a>(given: &str, valid: &[&'a str]) -> Vec<&'a str> {
    let g = given.to_lowercase();
    if g.is_empty() {
        return vec![];
    }
    let scored: Vec<(usize, &'a str)> = valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(&g, &v.to_lowercase()), *v))
        .filter(|(d, v)| *d <= (g.chars().count().max(v.chars().count()) / 3).max(1))
        .collect();
    let best = scored.iter().map(|(d, _)| *d).min();
    scored
        .into_iter()
        .filter(|(d, _)| Some(*d) == best)
        .map(|(_, v)| v)
        .take(3)
        .collect()
}

/// The message for a name that is not one of `valid`:
/// `unrecognized {what}: {given}`, then the closest valid names
/// (`(did you mean relu or relu6?)`), then every valid name where the list is
/// short, else where `help(topic)` lists them.
pub fn unrecognized(what: &str, topic: &str, given: &str, valid: &[&str]) -> String {
    let mut s = format!("unrecognized {what}: {given}");
    let near = closest(given, valid);
    if let Some((last, rest)) = near.split_last() {
        let alts = if rest.is_empty() {
            last.to_string()
        } else {
            format!("{} or {last}", rest.join(", "))
        };
        s.push_str(&format!(" (did you mean {alts}?)"));
    }
    if valid.len() <= LIST_MAX {
        s.push_str(&format!(", expecting one of: {}", valid.join(", ")));
    } else {
        s.push_str(&format!(
            ", help(\"{topic}\") lists all {} names",
            valid.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_message_drops_backtrace() {
        let m =
            clean_torch_message("bad shape\nException raised from foo at x.cpp:1\nframe #0: ...");
        assert_eq!(m, "bad shape");
    }

    #[test]
    fn panics_become_errors() {
        // what tch's unwrap of a libtorch error panics with
        let p: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"value cannot be converted to type uint8_t without overflow\\nException raised from foo\")",
        ));
        assert!(is_torch_panic(p.downcast_ref::<String>().expect("text")));
        assert_eq!(
            from_panic(&*p).to_string(),
            "value cannot be converted to type uint8_t without overflow"
        );
        let p: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert_eq!(
            from_panic(&*p).to_string(),
            "internal error: index out of bounds"
        );
        let p: Box<dyn std::any::Any + Send> = Box::new(3);
        assert_eq!(from_panic(&*p).to_string(), "internal error: unknown panic");
    }

    #[test]
    fn unnamed_errors_take_the_callers_name() {
        let e = crate::clip::check_norm(-1.0, 2.0).expect_err("negative");
        assert_eq!(e.to_string(), "maximum norm must be non-negative, given -1");
        assert_eq!(
            e.named("clip").to_string(),
            "clip: maximum norm must be non-negative, given -1"
        );
        assert_eq!(
            Error::InUse.named("run").to_string(),
            "run: object is in use by this thread (a call back into ktorch from a callback on the same object?)"
        );
        // an error that names its function already keeps its name
        assert_eq!(err("batch", "x").named("run").to_string(), "batch: x");
    }

    #[test]
    fn arg_error_names_function() {
        assert_eq!(
            err("train", "tensor size mismatch, 100 vs 10").to_string(),
            "train: tensor size mismatch, 100 vs 10"
        );
    }
    #[test]
    fn closest_names_by_edit_distance() {
        let v = [
            "relu", "relu6", "prelu", "linear", "bilinear", "conv1d", "conv2d",
        ];
        assert_eq!(closest("linearr", &v), ["linear"]);
        assert_eq!(closest("Linear", &v), ["linear"]);
        assert_eq!(closest("reluu", &v), ["relu", "relu6"]);
        assert_eq!(closest("conv", &v), ["conv1d", "conv2d"]);
        assert_eq!(closest("lniear", &v), ["linear"]);
        assert!(closest("nosuch", &v).is_empty());
        assert!(closest("", &v).is_empty());
    }

    #[test]
    fn unrecognized_names_the_closest_and_lists_short_catalogues() {
        assert_eq!(
            unrecognized("optimizer", "optimizer", "sgdd", &["sgd", "adam"]),
            "unrecognized optimizer: sgdd (did you mean sgd?), expecting one of: sgd, adam"
        );
        assert_eq!(
            unrecognized("optimizer", "optimizer", "x", &["sgd", "adam"]),
            "unrecognized optimizer: x, expecting one of: sgd, adam"
        );
        let many: Vec<String> = (0..30).map(|i| format!("type{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            unrecognized("module type", "module", "nosuch", &many),
            "unrecognized module type: nosuch, help(\"module\") lists all 30 names"
        );
    }
}
