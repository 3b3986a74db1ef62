//! mkosi configuration directories, read the way mkosi reads them.
//!
//! `elsx build DIR` on a mkosi tree must build what mkosi would, so this module implements mkosi's
//! configuration language (the reference is mkosi's man page and `mkosi/config.py`) and nothing
//! of mkosi's build: it turns a directory into a list of [`Resolved`] images in build order, each
//! value carrying where it came from.
//!
//! The pieces, in the order data flows through them:
//!
//! - [`ini`]: mkosi's INI dialect, a pure parser (`&str` in, sections out).
//! - [`settings`]: the one table of settings: section, kind, scope, specifier, default paths,
//!   and whether elsx implements each one.
//! - [`value`]: what one assignment does to a setting's value (parse, append, reset).
//! - [`matching`]: `[Match]`-style conditions and UAPI version comparison.
//! - [`config`]: the merger: walks the directory (`mkosi.conf`, `mkosi.conf.d/`, `Include=`,
//!   profiles, `mkosi.images/`), evaluates conditions and specifiers, inherits settings into
//!   subimages and orders images by `Dependencies=`.
//! - [`resolved`]: the typed result, mkosi's output naming, the summary and `--json` data.
//!
//! Contract: [`ini::parse`] does no I/O; [`load`] reads the directory (and the files it names)
//! but never writes, never runs a script and never touches the network. Warnings (unknown
//! settings, settings elsx ignores) are returned as data for the CLI to print.

pub mod config;
pub mod ini;
pub mod matching;
pub mod resolved;
pub mod settings;
pub mod value;

use std::fmt;
use std::path::PathBuf;

pub use config::{Error, Host, Project, load};
pub use resolved::{Feature, Format, Resolved, Tree, Verity};

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A `Key=Value` assignment (or a `[Match]` condition) at this line of a config file.
    Line { file: String, line: u32 },
    /// A file or directory found under its default name (`mkosi.extra/`, `mkosi.version`, …).
    Found { path: PathBuf },
    /// mkosi's default for the setting.
    Default,
}

impl Origin {
    pub fn line(file: impl Into<String>, line: u32) -> Origin {
        Origin::Line {
            file: file.into(),
            line,
        }
    }

    pub fn is_default(&self) -> bool {
        matches!(self, Origin::Default)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line { file, line } => write!(f, "{file}:{line}"),
            Origin::Found { path } => write!(f, "{}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A value and its origin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Valued<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Valued<T> {
    pub fn new(value: T, origin: Origin) -> Valued<T> {
        Valued { value, origin }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Valued<U> {
        Valued {
            value: f(self.value),
            origin: self.origin,
        }
    }
}

/// Something the user should know that does not stop the build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}
