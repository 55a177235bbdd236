//! One series read from the Prometheus text of `/metrics`, shared by the test binaries that
//! ask a server for its counters (`e2e`, `browser`).

/// `enclave_<name>` (labels included in `name`, e.g. `db_panics_total{thread="reader"}`) in
/// `text`; panics, showing the text, when the server has no such series.
pub fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("enclave_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}
