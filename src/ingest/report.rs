//! What an ingest reports: `IngestReport` (printed by `enclave ingest`), `IngestError` (why it
//! stopped, with how far it got), and row errors as printed.

use std::path::PathBuf;

use super::checkpoint::CheckpointError;
use super::split::SplitError;
use crate::usage::record::RowError;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Records stored, this run and earlier runs of the same ingest.
    pub accepted: u64,
    /// Rows refused (with `partial`).
    pub rejected: u64,
    /// Records already stored (same id).
    pub duplicates: u64,
    /// Uploads sent by this run.
    pub parts: u64,
    /// Uploads the server had already stored (an answer lost before).
    pub replayed: u64,
    /// Rows acknowledged by an earlier run, not sent again.
    pub resumed_after: u64,
    /// Why rows were refused (first 100), rows numbered from the top of the file.
    pub details: Vec<RowError>,
}

/// What `enclave ingest` prints: "accepted A, rejected R, duplicates D (N uploads)", after a
/// line saying where it resumed, if it did.
impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.resumed_after > 0 {
            writeln!(
                f,
                "resumed after row {} (stored by an earlier run)",
                self.resumed_after
            )?;
        }
        let plural = if self.parts == 1 { "" } else { "s" };
        write!(
            f,
            "accepted {}, rejected {}, duplicates {} ({} upload{plural}",
            self.accepted, self.rejected, self.duplicates, self.parts
        )?;
        if self.replayed > 0 {
            write!(f, ", {} already stored", self.replayed)?;
        }
        f.write_str(")")
    }
}

/// One row error as `enclave ingest` prints it: "row R, FIELD: REASON".
pub fn describe(error: &RowError) -> String {
    let field = if error.field.is_empty() {
        "row"
    } else {
        error.field.as_str()
    };
    format!("row {}, {field}: {}", error.row, error.reason)
}

/// Why an ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Split(#[from] SplitError),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
    #[error(
        "{path} is the checkpoint of an interrupted ingest of another file, or of this file \
         before it changed, or for another user, server or options: run with --restart to send \
         this file from the top, or remove the checkpoint"
    )]
    ForeignCheckpoint { path: PathBuf },
    #[error(
        "{rejected} rows are invalid and nothing was sent; fix them, or use --partial to store \
         the valid rows"
    )]
    InvalidRows {
        rejected: u64,
        details: Vec<RowError>,
    },
    #[error(
        "{reason}. The first {rows_done} rows are stored; run the same command again to go on \
         from there"
    )]
    Stopped {
        reason: String,
        rows_done: u64,
        details: Vec<RowError>,
    },
}

impl IngestError {
    /// The row errors to show with this error.
    pub fn details(&self) -> &[RowError] {
        match self {
            Self::InvalidRows { details, .. } | Self::Stopped { details, .. } => details,
            _ => &[],
        }
    }
}
