//! `enclave ingest`: a usage file of any size sent to a running server as uploads under its
//! size limit (`split`), each with an `Idempotency-Key`, resumable from a `checkpoint` of the
//! rows the server has acknowledged. Without `--partial` the whole file is first checked with
//! the server's own parser, so an invalid row is reported before anything is stored and the
//! file goes in whole or not at all, as one upload would.

pub mod checkpoint;
mod report;
pub mod split;

pub use report::{IngestError, IngestReport, describe};

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{self, Answer, ClientError, UploadOptions};
use crate::usage::import::{ImportFormat, Imported, detect, read_upload};
use crate::usage::parse::{Format, MAX_REPORTED_ERRORS};
use crate::usage::record::RowError;
use checkpoint::{Checkpoint, IngestTarget};
use split::{Container, Part};

/// Bytes per upload unless told (a quarter of the server's default limit).
pub const DEFAULT_PART_BYTES: usize = 8 << 20;

/// Parts cut ahead of the one being sent.
const PARTS_AHEAD: usize = 2;

/// Times one part is sent again after the server was unreachable or answered 5xx.
const RETRIES: u32 = 5;

/// What to ingest, where, and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The file.
    pub file: PathBuf,
    /// How the file holds its rows.
    pub container: Container,
    /// `?format=` of a provider or gateway export, if any.
    pub format: Option<String>,
    /// Store the valid rows even when some are invalid.
    pub partial: bool,
    /// The server's base URL.
    pub url: String,
    /// Whose records they are (the token's user).
    pub user: String,
    /// The bearer token.
    pub token: String,
    /// The most bytes per upload.
    pub part_bytes: usize,
    /// Where the checkpoint lives.
    pub checkpoint: PathBuf,
    /// Start over even when a checkpoint of this file exists.
    pub fresh: bool,
}

/// How `file` is cut for export `format` (if any): by its name (`.ndjson`/`.jsonl`, `.csv`,
/// `.json`), except that an OTLP JSON document (`otel`, `.json`) is sent whole.
pub fn container_for(file: &std::path::Path, format: Option<&str>) -> Result<Container, String> {
    let container = Container::of_path(file).ok_or_else(|| {
        format!(
            "cannot tell the format of {}: name it .ndjson, .jsonl, .csv or .json",
            file.display()
        )
    })?;
    match format {
        None => Ok(container),
        Some(name) if ImportFormat::named(name).is_none() => Err(format!(
            "--format {name:?} is not one of openai, litellm, helicone, langfuse, otel"
        )),
        Some("otel") if container == Container::JsonArray => Ok(Container::Whole),
        Some(_) => Ok(container),
    }
}

/// Runs an ingest: resumes its checkpoint if it is of this file (unless `fresh`), checks the
/// file (unless `partial`), sends it part by part and removes the checkpoint when done.
pub async fn run(options: IngestOptions) -> Result<IngestReport, IngestError> {
    let file_error = |source| IngestError::File {
        path: options.file.clone(),
        source,
    };
    let target = IngestTarget::of_file(
        &options.file,
        &options.user,
        &options.url,
        options.format.as_deref(),
        options.partial,
    )
    .map_err(file_error)?;
    let mut progress = Checkpoint::start(target.clone(), options.part_bytes);
    if !options.fresh
        && let Some(earlier) = checkpoint::load(&options.checkpoint)?
    {
        if earlier.target != target {
            return Err(IngestError::ForeignCheckpoint {
                path: options.checkpoint.clone(),
            });
        }
        // The parts of the earlier run, so a part it sent gets the key it had.
        progress = earlier;
    }
    let mut options = IngestOptions {
        part_bytes: progress.part_bytes,
        ..options
    };
    // Recognised once, from the top of the file, and named on every part: a later part whose
    // first row says less is still read as the same export.
    if options.format.is_none() {
        options.format = recognise(&options).await?.map(|f| f.as_str().to_owned());
    }
    let bar = progress_bar(target.file_len);
    let resumed_after = progress.rows_done;
    if resumed_after == 0 && !options.partial {
        bar.set_message("checking");
        check(&options, bar.clone()).await?;
    }
    bar.set_message(if resumed_after > 0 {
        format!("resuming after row {resumed_after}")
    } else {
        String::from("sending")
    });
    bar.set_position(0);
    let mut report = IngestReport {
        resumed_after,
        ..IngestReport::default()
    };
    let mut parts = cut(&options, resumed_after);
    checkpoint::save(&options.checkpoint, &progress)?;
    while let Some(part) = parts.recv().await {
        let stopped = |reason: String, details: Vec<RowError>| IngestError::Stopped {
            reason,
            rows_done: progress.rows_done,
            details,
        };
        let part = part.map_err(|e| stopped(e.to_string(), Vec::new()))?;
        let answer = send(&options, &progress, &part, &bar).await;
        let answer = answer.map_err(|e| stopped(e.to_string(), Vec::new()))?;
        let details = row_errors(&answer.body, part.first_row);
        if answer.status != 200 {
            bar.finish_and_clear();
            return Err(stopped(refusal(&answer), details));
        }
        let count = |name: &str| answer.body.get(name).and_then(Value::as_u64).unwrap_or(0);
        progress.accepted += count("accepted");
        progress.rejected += count("rejected");
        progress.duplicates += count("duplicates");
        progress.rows_done = part.first_row + part.rows;
        checkpoint::save(&options.checkpoint, &progress)?;
        report.parts += 1;
        let replayed = answer.body.get("replayed").and_then(Value::as_bool);
        report.replayed += u64::from(replayed == Some(true));
        let room = MAX_REPORTED_ERRORS.saturating_sub(report.details.len());
        report.details.extend(details.into_iter().take(room));
        bar.set_position(part.file_offset);
    }
    bar.finish_and_clear();
    checkpoint::remove(&options.checkpoint)?;
    report.accepted = progress.accepted;
    report.rejected = progress.rejected;
    report.duplicates = progress.duplicates;
    Ok(report)
}

/// Cuts the file on a thread of its own, a few parts ahead of the sending.
fn cut(options: &IngestOptions, skip_rows: u64) -> mpsc::Receiver<Result<Part, IngestError>> {
    let (parts, receiver) = mpsc::channel(PARTS_AHEAD);
    let (file, container, budget) = (options.file.clone(), options.container, options.part_bytes);
    std::thread::spawn(move || {
        let mut sink = |part: Part| parts.blocking_send(Ok(part)).is_ok();
        if let Err(e) = split::split(&file, container, budget, skip_rows, &mut sink) {
            let _ = parts.blocking_send(Err(e.into()));
        }
    });
    receiver
}

/// Parses every part as the server will, before anything is sent; the row errors found, rows
/// numbered from the top of the file.
async fn check(options: &IngestOptions, bar: ProgressBar) -> Result<(), IngestError> {
    let format = part_format(options.container);
    let export = match options.format.as_deref() {
        Some(name) => Some(
            ImportFormat::named(name)
                .ok_or_else(|| IngestError::Unreadable(format!("unknown format {name:?}")))?,
        ),
        None => None,
    };
    let (file, container, budget) = (options.file.clone(), options.container, options.part_bytes);
    actix_web::rt::task::spawn_blocking(move || {
        let mut rejected = 0u64;
        let mut details = Vec::new();
        let mut unreadable = None;
        let mut sink = |part: Part| {
            match read_upload(format, export, &part.body) {
                Ok((_, Imported { parsed, .. })) => {
                    rejected += parsed.rejected as u64;
                    let room = MAX_REPORTED_ERRORS.saturating_sub(details.len());
                    details.extend(parsed.errors.into_iter().take(room).map(|mut e| {
                        e.row += part.first_row as usize;
                        e
                    }));
                }
                Err(e) => unreadable = Some(e.to_string()),
            }
            bar.set_position(part.file_offset);
            unreadable.is_none()
        };
        split::split(&file, container, budget, 0, &mut sink)?;
        match unreadable {
            Some(reason) => Err(IngestError::Unreadable(reason)),
            None if rejected > 0 => Err(IngestError::InvalidRows { rejected, details }),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| IngestError::Unreadable(e.to_string()))?
}

/// How the server reads the parts cut from a file held in `container`.
fn part_format(container: Container) -> Format {
    match container {
        Container::Csv => Format::Csv,
        Container::NdJson | Container::JsonArray => Format::NdJson,
        Container::Whole => Format::JsonArray,
    }
}

/// The export the file's first part is recognised as, if any.
async fn recognise(options: &IngestOptions) -> Result<Option<ImportFormat>, IngestError> {
    let (file, container, budget) = (options.file.clone(), options.container, options.part_bytes);
    actix_web::rt::task::spawn_blocking(move || {
        let mut first = None;
        let mut sink = |part: Part| {
            first = Some(part);
            false
        };
        split::split(&file, container, budget, 0, &mut sink)?;
        Ok(first.and_then(|part| detect(part_format(container), &part.body)))
    })
    .await
    .map_err(|e| IngestError::Unreadable(e.to_string()))?
}

/// Sends one part, again after a lost connection or a 5xx (with the same key, so a part the
/// server stored is not stored twice) and after a 429 when the server says how long to wait.
async fn send(
    options: &IngestOptions,
    progress: &Checkpoint,
    part: &Part,
    bar: &ProgressBar,
) -> Result<Answer, ClientError> {
    let key = progress.part_key(part.first_row, part.rows);
    let upload = UploadOptions {
        content_type: options.container.part_content_type(),
        partial: options.partial,
        format: options.format.as_deref(),
        key: Some(&key),
    };
    let mut failures = 0;
    loop {
        let answer = client::upload_usage(
            &options.url,
            &options.token,
            &upload,
            part.body.clone(),
            |_| {},
        )
        .await;
        let wait = match &answer {
            Ok(a) if a.status == 429 => Duration::from_secs(a.retry_after.unwrap_or(1).min(60)),
            // 408: the body came in too slowly (a slow patch of network); sent again under the
            // same key, it is stored once.
            Ok(a) if a.status < 500 && a.status != 408 => return answer,
            _ if failures >= RETRIES => return answer,
            _ => {
                failures += 1;
                Duration::from_millis(200 << failures)
            }
        };
        bar.set_message(format!("waiting {} ms to send again", wait.as_millis()));
        actix_web::rt::time::sleep(wait).await;
        bar.set_message("sending");
    }
}

/// The server's reason for refusing an upload.
fn refusal(answer: &Answer) -> String {
    let message = answer
        .body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    format!(
        "the server refused an upload ({}): {message}",
        answer.status
    )
}

/// The row errors of an answer (`details`, or `error.details`), numbered from the top of the
/// file.
fn row_errors(body: &Value, first_row: u64) -> Vec<RowError> {
    let details = body
        .get("details")
        .or_else(|| body.pointer("/error/details"))
        .and_then(Value::as_array);
    details
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_value::<RowError>(d.clone()).ok())
        .map(|mut e| {
            e.row += first_row as usize;
            e
        })
        .collect()
}

/// A bar over the file's bytes (drawn only on a terminal).
fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
