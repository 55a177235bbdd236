//! House rules checked as a test (STYLE.md): every source file opens with a `//!` comment,
//! there is no should-panic or ignored test, and no unwrap call outside tests.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn files(under: &str) -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(under),
        &mut paths,
    );
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable source file");
            (p, text)
        })
        .collect()
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    for (path, text) in files("src").into_iter().chain(files("tests")) {
        assert!(
            text.starts_with("//!"),
            "{} must open with a `//!` comment saying what it owns and why",
            path.display()
        );
    }
}

#[test]
fn no_should_panic_or_ignore() {
    let should_panic = ["#[should", "_panic]"].concat();
    let ignore = ["#[ig", "nore]"].concat();
    for (path, text) in files("src").into_iter().chain(files("tests")) {
        assert!(!text.contains(&should_panic), "{}", path.display());
        assert!(!text.contains(&ignore), "{}", path.display());
    }
}

#[test]
fn no_unwrap_in_library_code() {
    let unwrap = [".unw", "rap()"].concat();
    for (path, text) in files("src") {
        let library = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(
            !library.contains(&unwrap),
            "{}: use `?` or `expect(\"why this cannot fail\")`",
            path.display()
        );
    }
}
