//! How one setting's value is read — from an `ENCLAVE_*` variable's text or from a value in
//! `enclave.toml` — and written back as a TOML literal for `enclave config show`.
//!
//! Each kind is a marker type implementing `Kind<T>` for the field types it serves; the
//! settings table (`settings.rs`) names one per setting. Errors are reasons only: the caller
//! adds the variable or key they came from.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use toml::Value;

use super::env_vars::parse_duration;

/// Reads and shows values of type `T`.
pub(super) trait Kind<T> {
    /// The value in an environment variable (never empty).
    fn from_env(raw: &str) -> Result<T, String>;
    /// The value in the configuration file.
    fn from_file(value: &Value) -> Result<T, String>;
    /// The value as a TOML literal; `None` when it is unset.
    fn show(value: &T) -> Option<String>;
}

/// Text, or anything parsed from text (an address, a mode): a TOML string.
pub(super) struct Text;
/// Text that may be unset.
pub(super) struct OptText;
/// A URL that may carry a password, shown with the password masked.
pub(super) struct Url;
/// A URL that may be unset.
pub(super) struct OptUrl;
/// A number: a TOML integer (or float, for fractional settings).
pub(super) struct Number;
/// `true` or `false`.
pub(super) struct Flag;
/// A duration in milliseconds in the environment (`ENCLAVE_…_MS=250`), a string with a unit
/// in the file (`"250ms"`, `"10s"`).
pub(super) struct Millis;
/// A `Millis` that may be unset.
pub(super) struct OptMillis;
/// A duration with a unit in both (`30d`, `24h`).
pub(super) struct Span;
/// A `Span` that may be unset.
pub(super) struct OptSpan;
/// A list of words (origins, addresses): comma-separated in the environment, an array of
/// strings in the file.
pub(super) struct TextList;
/// A secret, shown masked.
pub(super) struct Secret;
/// A list of secrets: comma-separated in the environment, an array of strings (or one string)
/// in the file.
pub(super) struct SecretList;

fn string(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string in quotes, found {}", value.type_str()))
}

fn quoted(text: &str) -> String {
    // A JSON string is a valid TOML basic string: the same escapes.
    serde_json::to_string(text).unwrap_or_default()
}

fn parsed<T: FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: Display,
{
    raw.parse().map_err(|e: T::Err| e.to_string())
}

impl<T: FromStr + Display> Kind<T> for Text
where
    T::Err: Display,
{
    fn from_env(raw: &str) -> Result<T, String> {
        parsed(raw)
    }
    fn from_file(value: &Value) -> Result<T, String> {
        parsed(string(value)?)
    }
    fn show(value: &T) -> Option<String> {
        Some(quoted(&value.to_string()))
    }
}

impl Kind<String> for Url {
    fn from_env(raw: &str) -> Result<String, String> {
        Ok(raw.to_owned())
    }
    fn from_file(value: &Value) -> Result<String, String> {
        string(value).map(str::to_owned)
    }
    fn show(value: &String) -> Option<String> {
        Some(quoted(&crate::store::connection::redact_password(value)))
    }
}

impl Kind<Option<String>> for OptUrl {
    fn from_env(raw: &str) -> Result<Option<String>, String> {
        OptText::from_env(raw)
    }
    fn from_file(value: &Value) -> Result<Option<String>, String> {
        OptText::from_file(value)
    }
    fn show(value: &Option<String>) -> Option<String> {
        value.as_ref().and_then(Url::show)
    }
}

impl Kind<Option<String>> for OptText {
    fn from_env(raw: &str) -> Result<Option<String>, String> {
        Ok(Some(raw.to_owned()))
    }
    fn from_file(value: &Value) -> Result<Option<String>, String> {
        Ok(Some(string(value)?.to_owned()).filter(|s| !s.is_empty()))
    }
    fn show(value: &Option<String>) -> Option<String> {
        value.as_deref().map(quoted)
    }
}

impl<T: FromStr + Display> Kind<T> for Number
where
    T::Err: Display,
{
    fn from_env(raw: &str) -> Result<T, String> {
        parsed(raw.trim())
    }
    fn from_file(value: &Value) -> Result<T, String> {
        match value {
            Value::Integer(n) => parsed(&n.to_string()),
            Value::Float(x) => parsed(&x.to_string()),
            other => Err(format!("expected a number, found {}", other.type_str())),
        }
    }
    fn show(value: &T) -> Option<String> {
        Some(value.to_string())
    }
}

impl Kind<bool> for Flag {
    fn from_env(raw: &str) -> Result<bool, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("{raw:?} is not true or false")),
        }
    }
    fn from_file(value: &Value) -> Result<bool, String> {
        value
            .as_bool()
            .ok_or_else(|| format!("expected true or false, found {}", value.type_str()))
    }
    fn show(value: &bool) -> Option<String> {
        Some(value.to_string())
    }
}

impl Kind<Duration> for Millis {
    fn from_env(raw: &str) -> Result<Duration, String> {
        parsed::<u64>(raw.trim()).map(Duration::from_millis)
    }
    fn from_file(value: &Value) -> Result<Duration, String> {
        parse_duration(string(value)?)
    }
    fn show(value: &Duration) -> Option<String> {
        Some(quoted(&format_duration(*value)))
    }
}

impl Kind<Option<Duration>> for OptMillis {
    fn from_env(raw: &str) -> Result<Option<Duration>, String> {
        Millis::from_env(raw).map(Some)
    }
    fn from_file(value: &Value) -> Result<Option<Duration>, String> {
        Millis::from_file(value).map(Some)
    }
    fn show(value: &Option<Duration>) -> Option<String> {
        value.as_ref().and_then(Millis::show)
    }
}

impl Kind<Duration> for Span {
    fn from_env(raw: &str) -> Result<Duration, String> {
        parse_duration(raw)
    }
    fn from_file(value: &Value) -> Result<Duration, String> {
        parse_duration(string(value)?)
    }
    fn show(value: &Duration) -> Option<String> {
        Some(quoted(&format_duration(*value)))
    }
}

impl Kind<Option<Duration>> for OptSpan {
    fn from_env(raw: &str) -> Result<Option<Duration>, String> {
        parse_duration(raw).map(Some)
    }
    fn from_file(value: &Value) -> Result<Option<Duration>, String> {
        parse_duration(string(value)?).map(Some)
    }
    fn show(value: &Option<Duration>) -> Option<String> {
        value.map(|d| quoted(&format_duration(d)))
    }
}

impl Kind<Vec<String>> for TextList {
    fn from_env(raw: &str) -> Result<Vec<String>, String> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }
    fn from_file(value: &Value) -> Result<Vec<String>, String> {
        SecretList::from_file(value)
    }
    fn show(value: &Vec<String>) -> Option<String> {
        let items: Vec<String> = value.iter().map(|item| quoted(item)).collect();
        Some(format!("[{}]", items.join(", ")))
    }
}

/// What `config show` prints instead of a secret.
pub(super) const MASKED: &str = "\"(set, not shown)\"";

impl Kind<Option<String>> for Secret {
    fn from_env(raw: &str) -> Result<Option<String>, String> {
        OptText::from_env(raw)
    }
    fn from_file(value: &Value) -> Result<Option<String>, String> {
        OptText::from_file(value)
    }
    fn show(value: &Option<String>) -> Option<String> {
        value.as_ref().map(|_| MASKED.to_owned())
    }
}

impl Kind<Vec<String>> for SecretList {
    fn from_env(raw: &str) -> Result<Vec<String>, String> {
        Ok(raw.split(',').map(|s| s.trim().to_owned()).collect())
    }
    fn from_file(value: &Value) -> Result<Vec<String>, String> {
        if let Some(one) = value.as_str() {
            return Ok(vec![one.to_owned()]);
        }
        let Some(items) = value.as_array() else {
            return Err(format!(
                "expected a list of strings, found {}",
                value.type_str()
            ));
        };
        items
            .iter()
            .map(|item| string(item).map(str::to_owned))
            .collect()
    }
    fn show(value: &Vec<String>) -> Option<String> {
        (!value.is_empty()).then(|| format!("[{}]", vec![MASKED; value.len()].join(", ")))
    }
}

/// `d` as the largest whole unit that states it exactly: `7d`, `24h`, `90s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return String::from("0s");
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_in_their_largest_exact_unit_and_read_back() {
        for (d, text) in [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn file_values_must_have_their_kinds_type() {
        let ten = Value::Integer(10);
        assert_eq!(<Number as Kind<usize>>::from_file(&ten), Ok(10));
        assert!(<Number as Kind<usize>>::from_file(&Value::Integer(-1)).is_err());
        assert!(<Number as Kind<usize>>::from_file(&Value::String("10".into())).is_err());
        assert!(<Text as Kind<String>>::from_file(&ten).is_err());
        assert!(<Millis as Kind<Duration>>::from_file(&ten).is_err());
        assert_eq!(
            <Millis as Kind<Duration>>::from_file(&Value::String("2s".into())),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            <Millis as Kind<Duration>>::from_env("2000"),
            Ok(Duration::from_secs(2))
        );
        assert!(<Flag as Kind<bool>>::from_env("maybe").is_err());
    }

    #[test]
    fn secrets_are_never_shown() {
        let one = Some(String::from("a-secret-of-more-than-32-bytes-long!"));
        let shown = <Secret as Kind<Option<String>>>::show(&one).unwrap_or_default();
        assert!(!shown.contains("secret-of"), "{shown}");
        let list = vec![String::from("first-secret"), String::from("second")];
        let shown = <SecretList as Kind<Vec<String>>>::show(&list).unwrap_or_default();
        assert!(
            !shown.contains("first") && !shown.contains("second"),
            "{shown}"
        );
        assert_eq!(<Secret as Kind<Option<String>>>::show(&None), None);
    }
}
