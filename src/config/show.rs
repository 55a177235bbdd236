//! The configuration as TOML text: `enclave config show` (the effective values, secrets
//! masked, each with where it came from) and `enclave config example` (every setting
//! commented out at its default, documented in place — the shipped `enclave.example.toml`).

use std::fmt::Write as _;

use super::load::Loaded;
use super::settings::{SETTINGS, Setting};
use super::{Config, DEFAULT_DATABASE_URL};

/// Width the documentation is wrapped to.
const WIDTH: usize = 92;

/// The effective configuration: a TOML file (secrets masked) with each value's origin.
pub fn effective(loaded: &Loaded) -> String {
    let mut out = String::new();
    let file = loaded.file().map_or(String::from("no file"), |path| {
        format!("file {}", path.display())
    });
    let _ = writeln!(
        out,
        "# enclave's effective configuration: defaults, then {file}, then the environment, \
         then flags.\n# Secrets are masked."
    );
    render(&mut out, loaded.config(), |out, setting, value| {
        let origin = loaded.origin(setting.key);
        match value {
            Some(value) => writeln!(out, "{} = {value}  # {origin}", setting.name()),
            None => writeln!(out, "# {} is unset  # {origin}", setting.name()),
        }
    });
    out
}

/// Every setting at its default, commented out and documented.
pub fn example() -> String {
    let mut out = String::from(
        "# enclave.toml: every setting enclave reads, commented out at its default.\n\
         # Copy this file to enclave.toml in the directory enclave runs in (or name it with\n\
         # --config FILE or ENCLAVE_CONFIG) and uncomment what you change. The environment\n\
         # variable named beside each setting overrides the file; flags override both.\n\
         # Durations take a unit: 250ms, 30s, 15m, 24h, 7d.\n",
    );
    let defaults = Config::for_database(DEFAULT_DATABASE_URL);
    render(&mut out, &defaults, |out, setting, value| {
        let _ = writeln!(out);
        for line in wrap(setting.doc) {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "# env: {}", setting.envs.join(" or "));
        match value {
            Some(value) => writeln!(out, "#{} = {value}", setting.name()),
            None => writeln!(out, "#{} =", setting.name()),
        }
    });
    out
}

/// Walks the settings section by section, writing a `[section]` header before each.
fn render(
    out: &mut String,
    config: &Config,
    mut line: impl FnMut(&mut String, &Setting, Option<String>) -> std::fmt::Result,
) {
    let mut section = "";
    for setting in SETTINGS {
        if setting.section() != section {
            section = setting.section();
            let _ = writeln!(out, "\n[{section}]");
        }
        let _ = line(out, setting, (setting.show)(config));
    }
}

/// `text` in lines of at most `WIDTH` characters, broken at spaces.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let fits = lines.last().is_some_and(|last| {
            last.is_empty() || last.chars().count() + 1 + word.chars().count() <= WIDTH
        });
        if !fits {
            lines.push(String::new());
        }
        if let Some(last) = lines.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_reads_back_as_the_defaults() {
        // Uncommenting every line of the example must give a valid file equal to the defaults.
        let text: String = example()
            .lines()
            .filter(|line| line.starts_with('[') || (line.starts_with("#") && line.contains(" = ")))
            .filter(|line| !line.starts_with("# "))
            .map(|line| format!("{}\n", line.trim_start_matches('#')))
            .collect();
        let dir = std::env::temp_dir().join(format!("enclave-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("enclave.toml");
        std::fs::write(&path, &text).expect("write");
        // The file alone: a variable exported where the test runs must not change it.
        let loaded = Loaded::file_only(&path).expect("the example loads");
        let defaults = Config::for_database(DEFAULT_DATABASE_URL);
        for setting in SETTINGS {
            assert_eq!(
                (setting.show)(loaded.config()),
                (setting.show)(&defaults),
                "{}",
                setting.key
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn long_docs_wrap_at_spaces() {
        let doc = "word ".repeat(60);
        let lines = wrap(&doc);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
        assert_eq!(lines.join(" "), doc.trim_end());
    }
}
