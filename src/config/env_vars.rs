//! Reading `Config`'s values from the environment: each `ENCLAVE_*` variable parsed into its
//! field's type, with an error naming the variable; and durations written as `30s`, `15m`,
//! `24h`, `7d`.

use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

/// Parses `24h`, `90m`, `30s`, `7d` or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 30s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {raw:?}; use s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(n * secs))
}

/// Replaces `value` with variable `name`'s, parsed, when that is set and not empty.
pub(super) fn env_into<T: FromStr>(name: &str, value: &mut T) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(raw) = env_opt(name) {
        *value = raw.parse().map_err(|e: T::Err| ConfigError {
            name: name.to_owned(),
            reason: e.to_string(),
            value: raw,
        })?;
    }
    Ok(())
}

/// A variable that is set and not empty.
pub(super) fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The duration (`30s`, `15m`, `24h`, `7d`) in `name`, if it is set and not empty.
pub(super) fn env_duration(name: &str) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = env_opt(name) else {
        return Ok(None);
    };
    parse_duration(&raw)
        .map(Some)
        .map_err(|reason| ConfigError {
            name: name.into(),
            value: raw.clone(),
            reason,
        })
}

/// `env_into` for a duration given in milliseconds.
pub(super) fn env_ms_into(name: &str, value: &mut Duration) -> Result<(), ConfigError> {
    let mut ms = value.as_millis() as u64;
    env_into(name, &mut ms)?;
    *value = Duration::from_millis(ms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
