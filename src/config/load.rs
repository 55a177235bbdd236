//! Building the effective `Config` in layers — defaults, then `enclave.toml`, then `ENCLAVE_*`
//! variables, then command-line flags, each overriding the one before — remembering where
//! every value came from, and checking the result as a whole before anything starts.
//!
//! An unknown key, a value of the wrong type and a rule broken across settings all stop the
//! start with an error naming the key or variable (never showing a secret's value).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::env_vars::env_opt;
use super::settings::{self, SETTINGS, Setting};
use super::{Config, ConfigError, DEFAULT_DATABASE_URL, MIN_RETAIN_EVENTS, MIN_SECRET_BYTES};

/// Variables that set a list setting to their whole value as its one item, where the
/// setting's other variable is a comma-separated list (`ENCLAVE_JWT_SECRET` beside
/// `ENCLAVE_JWT_SECRETS`).
const WHOLE_VALUE_ENVS: &[&str] = &["ENCLAVE_JWT_SECRET"];

/// The file looked for when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "enclave.toml";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "env {name}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Which configuration file to read.
#[derive(Debug, Clone)]
pub enum ConfigFile {
    /// This one, which must exist (`--config`, `ENCLAVE_CONFIG`).
    Given(PathBuf),
    /// `./enclave.toml` if there is one.
    WorkingDirectory,
    /// None: defaults and the environment only.
    Skip,
}

/// A configuration being built, and where each value came from.
#[derive(Debug)]
pub struct Loaded {
    config: Config,
    origins: HashMap<&'static str, Origin>,
    /// The file read, if any.
    file: Option<PathBuf>,
}

impl Loaded {
    /// Defaults overridden by the file `path` alone, the environment left out.
    pub fn file_only(path: &Path) -> Result<Self, ConfigError> {
        let mut loaded = Self {
            config: Config::for_database(DEFAULT_DATABASE_URL),
            origins: HashMap::new(),
            file: None,
        };
        loaded.read_file(path)?;
        Ok(loaded)
    }

    /// Defaults, overridden by the file and then the environment.
    pub fn load(file: ConfigFile) -> Result<Self, ConfigError> {
        let mut loaded = Self {
            config: Config::for_database(DEFAULT_DATABASE_URL),
            origins: HashMap::new(),
            file: None,
        };
        let path = match file {
            ConfigFile::Given(path) => Some(path),
            ConfigFile::WorkingDirectory => {
                Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|path| path.exists())
            }
            ConfigFile::Skip => None,
        };
        if let Some(path) = path {
            loaded.read_file(&path)?;
        }
        loaded.read_env()?;
        Ok(loaded)
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let unreadable = |reason: String| ConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        for (key, value) in flatten(&table) {
            let Some(setting) = settings::find(&key) else {
                return Err(ConfigError::UnknownKey {
                    hint: nearest_key(&key)
                        .map(|near| format!(" (did you mean {near}?)"))
                        .unwrap_or_default(),
                    path: path.to_owned(),
                    key,
                });
            };
            (setting.from_file)(&mut self.config, value).map_err(|reason| {
                ConfigError::Invalid {
                    name: format!("{}: {key}", path.display()),
                    value: shown(setting, &value.to_string()),
                    reason,
                }
            })?;
            self.origins
                .insert(setting.key, Origin::File(path.to_owned()));
        }
        self.file = Some(path.to_owned());
        Ok(())
    }

    fn read_env(&mut self) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            let set: Vec<(&'static str, String)> = setting
                .envs
                .iter()
                .filter_map(|name| env_opt(name).map(|raw| (*name, raw)))
                .collect();
            match set.as_slice() {
                [] => {}
                [(name, raw)] => self.apply_env(setting, name, raw)?,
                [..] => {
                    return Err(ConfigError::Conflict(
                        set.iter()
                            .map(|(name, _)| *name)
                            .collect::<Vec<_>>()
                            .join(" and "),
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply_env(
        &mut self,
        setting: &'static Setting,
        name: &'static str,
        raw: &str,
    ) -> Result<(), ConfigError> {
        let applied = if WHOLE_VALUE_ENVS.contains(&name) {
            // One item of a list setting, taken whole (a secret may hold a comma).
            (setting.from_file)(&mut self.config, &toml::Value::String(raw.to_owned()))
        } else {
            (setting.from_env)(&mut self.config, raw)
        };
        applied.map_err(|reason| ConfigError::Invalid {
            name: name.to_owned(),
            value: shown(setting, &format!("{raw:?}")),
            reason,
        })?;
        self.origins.insert(setting.key, Origin::Env(name));
        Ok(())
    }

    /// Overrides the setting `key` with a command-line flag's value.
    pub fn flag(&mut self, key: &str, flag: &'static str, raw: &str) -> Result<(), ConfigError> {
        let Some(setting) = settings::find(key) else {
            return Err(ConfigError::Invalid {
                name: flag.to_owned(),
                value: format!("{raw:?}"),
                reason: format!("no setting {key}"),
            });
        };
        (setting.from_env)(&mut self.config, raw).map_err(|reason| ConfigError::Invalid {
            name: flag.to_owned(),
            value: shown(setting, &format!("{raw:?}")),
            reason,
        })?;
        self.origins.insert(setting.key, Origin::Flag(flag));
        Ok(())
    }

    /// Where `key`'s value came from.
    pub fn origin(&self, key: &str) -> &Origin {
        self.origins.get(key).unwrap_or(&Origin::Default)
    }

    /// The file read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The configuration so far (not yet checked as a whole).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration, once the rules spanning settings hold.
    pub fn finish(self) -> Result<Config, ConfigError> {
        let c = &self.config;
        for (n, secret) in c.jwt_secrets.iter().enumerate() {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::Invalid {
                    name: self.named("auth.secrets"),
                    value: String::from("(not shown)"),
                    reason: format!(
                        "secret {} has {} bytes; a secret needs at least {MIN_SECRET_BYTES} \
                         (e.g. `openssl rand -hex 32`)",
                        n + 1,
                        secret.len()
                    ),
                });
            }
        }
        for proxy in &c.trusted_proxies {
            if crate::web::client_addr::parse_net(proxy).is_none() {
                return Err(ConfigError::Invalid {
                    name: self.named("http.trusted_proxies"),
                    value: format!("{proxy:?}"),
                    reason: "a proxy is an address or a CIDR block, e.g. 10.0.0.0/8".into(),
                });
            }
        }
        for origin in &c.allowed_origins {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if authority.is_none_or(|a| a.is_empty() || a.trim_end_matches('/').contains('/')) {
                return Err(ConfigError::Invalid {
                    name: self.named("http.allowed_origins"),
                    value: format!("{origin:?}"),
                    reason: "an origin is scheme://host[:port], e.g. https://app.example.com"
                        .into(),
                });
            }
        }
        for (key, value) in [
            ("auth.revocation_check", c.revocation_check),
            ("http.request_timeout", c.request_timeout),
            ("sockets.heartbeat", c.heartbeat_interval),
            ("sockets.client_timeout", c.client_timeout),
            ("retention.housekeeping", c.housekeeping_interval),
            ("database.timeout", c.db_timeout),
            ("database.node_lease", c.node_lease),
            ("usage.upload_read_grace", c.upload_read_grace),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    name: self.named(key),
                    value: "\"0s\"".into(),
                    reason: "must be more than 0".into(),
                });
            }
        }
        if c.upload_min_bytes_per_second == 0 {
            return Err(ConfigError::Invalid {
                name: self.named("usage.upload_min_bytes_per_second"),
                value: "0".into(),
                reason: "must be more than 0".into(),
            });
        }
        if let Some(keep) = c.retain_events
            && keep < MIN_RETAIN_EVENTS
        {
            return Err(ConfigError::Invalid {
                name: self.named("retention.events"),
                value: format!("{:?}", super::kinds::format_duration(keep)),
                reason: "events must be kept at least a day (1d): a repeated client_msg_id \
                         is answered from them for 24 hours"
                    .into(),
            });
        }
        Ok(self.config)
    }

    /// How an error names `key`: the variable, flag or file key its value came from.
    fn named(&self, key: &str) -> String {
        match self.origin(key) {
            Origin::Env(name) | Origin::Flag(name) => (*name).to_owned(),
            Origin::File(path) => format!("{}: {key}", path.display()),
            Origin::Default => key.to_owned(),
        }
    }
}

/// A value as an error may show it: a secret's never.
fn shown(setting: &Setting, raw: &str) -> String {
    if setting.secret {
        String::from("(not shown)")
    } else {
        raw.to_owned()
    }
}

/// `[section] name = value` as `("section.name", value)`; a value outside a section or a
/// table inside one keeps its full dotted path, which names no setting.
fn flatten(table: &toml::Table) -> Vec<(String, &toml::Value)> {
    let mut keys = Vec::new();
    for (section, value) in table {
        match value.as_table() {
            Some(inner) => {
                for (name, value) in inner {
                    let key = format!("{section}.{name}");
                    match value.as_table() {
                        Some(deeper) => {
                            keys.extend(deeper.iter().map(|(more, v)| (format!("{key}.{more}"), v)))
                        }
                        None => keys.push((key, value)),
                    }
                }
            }
            None => keys.push((section.clone(), value)),
        }
    }
    keys
}

/// The known key an unknown one was probably meant to be: same name in another section, or
/// within two edits.
fn nearest_key(unknown: &str) -> Option<&'static str> {
    let name = unknown.rsplit('.').next().unwrap_or(unknown);
    SETTINGS
        .iter()
        .find(|s| s.name() == name)
        .or_else(|| {
            SETTINGS
                .iter()
                .map(|s| (edit_distance(s.key, unknown), s))
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, s)| s)
        })
        .map(|s| s.key)
}

/// Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let best = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            nearest_key("sockets.max_per_usr"),
            Some("sockets.max_per_user")
        );
        assert_eq!(
            nearest_key("server.max_per_user"),
            Some("sockets.max_per_user")
        );
        assert_eq!(nearest_key("nothing.like.it"), None);
    }
}
