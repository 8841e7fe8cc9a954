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
    /// A handle used after it was freed.
    #[error("{0}: object has been freed")]
    Freed(String),
    /// An error raised by user code called from the core (a callback module).
    #[error("{0}")]
    Callback(String),
    /// An operation stopped by an interrupt request.
    #[error("{0}: interrupted")]
    Interrupted(String),
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(clean_torch_message(&e.to_string()))
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

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Arg`] whose message starts with the function's name.
pub fn err(func: &str, msg: impl std::fmt::Display) -> Error {
    Error::Arg(format!("{func}: {msg}"))
}

/// Returns early with an [`Error::Arg`] naming the function.
#[macro_export]
macro_rules! bail {
    ($func:expr, $($arg:tt)*) => {
        return Err($crate::error::err($func, format!($($arg)*)))
    };
}

/// Adds a function name to libtorch errors that have none.
pub trait Context<T> {
    /// Prefixes a libtorch error with `func: `.
    fn ctx(self, func: &str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, tch::TchError> {
    fn ctx(self, func: &str) -> Result<T> {
        self.map_err(|e| match Error::from(e) {
            Error::Torch(m) => Error::Torch(format!("{func}: {m}")),
            other => other,
        })
    }
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
    fn arg_error_names_function() {
        assert_eq!(
            err("train", "tensor size mismatch, 100 vs 10").to_string(),
            "train: tensor size mismatch, 100 vs 10"
        );
    }
}
