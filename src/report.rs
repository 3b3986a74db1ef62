//! Events the library emits while it works; only `cli` turns them into output.

/// The pipeline stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Metadata,
    Resolve,
    Fetch,
    Unpack,
    Diff,
    Write,
    Package,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Metadata => "metadata",
            Stage::Resolve => "resolve",
            Stage::Fetch => "fetch",
            Stage::Unpack => "unpack",
            Stage::Diff => "diff",
            Stage::Write => "write",
            Stage::Package => "package",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// A stage begins with `items` units of work (0 when unknown) and `bytes` to move.
    StageStarted {
        stage: Stage,
        items: u64,
        bytes: u64,
    },
    /// One unit of work is done.
    Item {
        stage: Stage,
        name: &'a str,
        bytes: u64,
        cached: bool,
    },
    /// Bytes arrived (or were found in the cache) for a stage that moves bytes: drawn as a
    /// rate. `Item` still follows each finished unit.
    Progress {
        stage: Stage,
        bytes: u64,
    },
    StageFinished {
        stage: Stage,
    },
    /// Something the user should know that does not stop the build.
    Warning(&'a str),
}

/// Receives events; implementations must be cheap and thread-safe (stages run in parallel).
pub trait Reporter: Sync {
    fn event(&self, e: Event<'_>);
}

/// Discards every event.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event<'_>) {}
}
