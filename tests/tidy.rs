//! House rules checked as a test (STYLE.md): every source file opens with a `//!` comment,
//! there is no should-panic or ignored test, no unwrap call outside tests, and `agents/` is a
//! leaf that reaches neither the runtime nor the web layer.

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

/// The paths an agent must not name: the runtime and the web layer (agents reach their run only
/// through `RunChannel`), and `super::super`, which could climb out of `agents/` to either.
fn forbidden_in_agents(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for path in ["crate::runtime", "crate::web", "super::super"] {
            if line.contains(path) {
                found.push(format!("line {}: {path}", n + 1));
            }
        }
    }
    // A grouped import (`use crate::{runtime::…, web::…}`) names them without the prefix.
    for (start, _) in text.match_indices("crate::{") {
        let group = text[start..].split('}').next().unwrap_or_default();
        for module in ["runtime", "web"] {
            if group
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == module)
            {
                found.push(format!("crate::{{…{module}…}}"));
            }
        }
    }
    found
}

#[test]
fn agents_are_a_leaf() {
    let files = files("src/agents");
    assert!(!files.is_empty(), "src/agents holds the agents");
    for (path, text) in files {
        let found = forbidden_in_agents(&text);
        assert!(
            found.is_empty(),
            "{} names the runtime or the web layer ({}): give agents what they need through \
             `AgentContext` or `RunChannel` instead",
            path.display(),
            found.join(", ")
        );
    }
}

#[test]
fn the_leaf_check_sees_every_way_in() {
    let caught = |text: &str| !forbidden_in_agents(text).is_empty();
    assert!(caught("use crate::runtime::run_events::RunEvents;"));
    assert!(caught("let s = crate::web::AppState::default();"));
    assert!(caught("use super::super::runtime;"));
    assert!(caught(
        "use crate::{analysis::plan,\n    runtime::pipeline::Pipeline};"
    ));
    assert!(!caught("use crate::store::UserStore;"));
    assert!(!caught("actix_web::web::block(move || work())"));
}

#[test]
fn no_source_file_over_400_lines() {
    for (path, text) in files("src") {
        let lines = text.lines().count();
        assert!(
            lines <= 400,
            "{} has {lines} lines; split it by concept (STYLE.md 15)",
            path.display()
        );
    }
}

/// The places in `text` (library code, before any `#[cfg(test)]`) where a public item or a
/// struct field has no `///` line above it (attributes may come between).
fn undocumented(text: &str, fields_too: bool) -> Vec<String> {
    let library = text.split("#[cfg(test)]").next().unwrap_or_default();
    let lines: Vec<&str> = library.lines().collect();
    let mut missing = Vec::new();
    let mut in_struct = false;
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let public_item = ["pub ", "pub(crate) ", "pub(super) "]
            .iter()
            .filter_map(|vis| trimmed.strip_prefix(vis))
            .any(|rest| {
                [
                    "fn ",
                    "struct ",
                    "enum ",
                    "trait ",
                    "type ",
                    "const ",
                    "async fn ",
                ]
                .iter()
                .any(|kind| rest.starts_with(kind))
            });
        let field = fields_too
            && in_struct
            && !trimmed.starts_with("//")
            && line.starts_with("    ")
            && !line.starts_with("     ")
            && trimmed.split(':').next().is_some_and(|name| {
                let name = name.rsplit(' ').next().unwrap_or_default();
                trimmed.contains(": ")
                    && !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            });
        if public_item || field {
            let documented = line_above_attributes(lines.get(..n).unwrap_or_default())
                .is_some_and(|l| l.trim_start().starts_with("///"));
            if !documented {
                missing.push(format!("line {}: {}", n + 1, trimmed));
            }
        }
        if trimmed.contains("struct ") && line.trim_end().ends_with('{') && !line.starts_with(' ') {
            in_struct = true;
        } else if in_struct && *line == "}" {
            in_struct = false;
        }
    }
    missing
}

/// The last of `lines` that is not part of an attribute (one line, or `#[derive(` … `)]` over
/// several, as rustfmt writes a long one, or an annotation ending `…)]` on its last line).
fn line_above_attributes<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let mut in_attribute = false;
    for line in lines.iter().rev() {
        let trimmed = line.trim_start();
        if in_attribute {
            in_attribute = !trimmed.starts_with("#[");
        } else if trimmed.ends_with(")]") && !trimmed.starts_with("#[") {
            // The last line of an attribute over several (`#[utoipa::path(` … `)))]`).
            in_attribute = true;
        } else if !trimmed.starts_with("#[") {
            return Some(line);
        }
    }
    None
}

/// Fails listing every place under `under` (outside test folders) that `undocumented` finds.
fn assert_documented(under: &str, fields_too: bool) {
    let mut missing = Vec::new();
    for (path, text) in files(under) {
        if path.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        for place in undocumented(&text, fields_too) {
            missing.push(format!("{}: {place}", path.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "say with `///` why each exists:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_runtime_documents_its_items_and_fields() {
    assert_documented("src/runtime", true);
}

#[test]
fn the_documentation_check_sees_fields_and_items() {
    let text = "struct A {\n    /// Why.\n    a: u8,\n    b: u8,\n}\npub fn f() {}\n/// Why.\npub fn g() {}\n";
    assert_eq!(
        undocumented(text, true),
        ["line 4: b: u8,", "line 6: pub fn f() {}"]
    );
    assert_eq!(undocumented(text, false), ["line 6: pub fn f() {}"]);
}

#[test]
fn every_public_item_is_documented() {
    assert_documented("src", false);
}
