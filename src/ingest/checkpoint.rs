//! The checkpoint of an `enclave ingest`: which file, for whom and where, and how many of its
//! rows the server has acknowledged. Written (to a temporary file, then renamed) after every
//! acknowledged part, so a re-run of the same command goes on after the last acknowledged row
//! and sends the next part with the same `Idempotency-Key` as before: a part the server stored
//! but whose answer was lost is answered again, not stored twice.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// The checkpoint format this build writes and reads.
const VERSION: u32 = 1;

/// Which upload a checkpoint belongs to: a re-run resumes only the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestTarget {
    /// The file, canonical.
    pub file: PathBuf,
    /// Its length when the ingest started.
    pub file_len: u64,
    /// Its modification time (ns since the epoch) when the ingest started.
    pub file_modified_ns: u128,
    /// Whose records they are.
    pub user: String,
    /// The server.
    pub url: String,
    /// `?format=`, if any.
    pub format: Option<String>,
    /// `?partial=true`.
    pub partial: bool,
}

impl IngestTarget {
    /// The target for `file` as it is now.
    pub fn of_file(
        file: &Path,
        user: &str,
        url: &str,
        format: Option<&str>,
        partial: bool,
    ) -> std::io::Result<Self> {
        let meta = std::fs::metadata(file)?;
        let modified = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            file: std::fs::canonicalize(file)?,
            file_len: meta.len(),
            file_modified_ns: modified,
            user: user.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            format: format.map(str::to_owned),
            partial,
        })
    }
}

/// How far an ingest got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format version.
    pub version: u32,
    /// What is being ingested.
    pub target: IngestTarget,
    /// This ingest's id: the prefix of every part's `Idempotency-Key`.
    pub ingest_id: String,
    /// The most bytes per upload, kept for a resume: the same parts get the same keys.
    pub part_bytes: usize,
    /// Data rows the server has acknowledged, from the top of the file.
    pub rows_done: u64,
    /// Records stored so far.
    pub accepted: u64,
    /// Rows refused so far (with `--partial`).
    pub rejected: u64,
    /// Records already stored before (same id) so far.
    pub duplicates: u64,
}

impl Checkpoint {
    /// A fresh ingest of `target` in uploads of at most `part_bytes`.
    pub fn start(target: IngestTarget, part_bytes: usize) -> Self {
        Self {
            version: VERSION,
            target,
            ingest_id: uuid::Uuid::new_v4().simple().to_string(),
            part_bytes,
            rows_done: 0,
            accepted: 0,
            rejected: 0,
            duplicates: 0,
        }
    }

    /// The `Idempotency-Key` of the part of `rows` rows after the first `first_row`.
    pub fn part_key(&self, first_row: u64, rows: u64) -> String {
        format!("ingest-{}-{first_row}-{rows}", self.ingest_id)
    }
}

/// The checkpoint file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write the checkpoint {path}: {source} (name another place with --checkpoint)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the checkpoint {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The checkpoint file beside `file`: `FILE.enclave-ingest`.
pub fn default_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".enclave-ingest");
    PathBuf::from(name)
}

/// The checkpoint at `path` if there is one this build can read (an unreadable or foreign one
/// is `None`: the ingest starts over).
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(serde_json::from_slice::<Checkpoint>(&text)
        .ok()
        .filter(|c| c.version == VERSION))
}

/// Writes `checkpoint` to `path` whole or not at all (a temporary file renamed over it).
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let failed = |source| CheckpointError::Write {
        path: path.to_owned(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let text = serde_json::to_vec_pretty(checkpoint).map_err(|e| failed(e.into()))?;
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Removes the checkpoint at `path` once the ingest is complete.
pub fn remove(path: &Path) -> Result<(), CheckpointError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CheckpointError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}
