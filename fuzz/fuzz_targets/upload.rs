//! The upload parsers: enclave's own NDJSON, CSV and JSON-array layouts, and each provider or
//! gateway importer, fed any body. The first byte picks the container and the export (or
//! none, which also tries detection); the rest is the body. Each answers records, row errors
//! or a `ParseError`, and never panics.
#![no_main]

use enclave::usage::import::{ImportFormat, read_upload};
use enclave::usage::parse::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let container = match choice % 3 {
        0 => Format::NdJson,
        1 => Format::Csv,
        _ => Format::JsonArray,
    };
    let export = match (choice / 3) % 6 {
        0 => None,
        n => ImportFormat::ALL.get(usize::from(n) - 1).copied(),
    };
    if let Ok((_, imported)) = read_upload(container, export, body) {
        for record in &imported.parsed.records {
            assert!(record.prompt_tokens >= 0 && record.completion_tokens >= 0);
        }
    }
});
