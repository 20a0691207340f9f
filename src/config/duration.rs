//! Durations as written in the config file: `500ms`, `30s`, `15m`, `1h`, `30d`.

use std::time::Duration;

/// Why a duration cannot be read (each message names the text, fit for a config error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} has no unit (use ms, s, m, h or d)")]
    NoUnit(String),
    #[error("duration {0:?} must start with a whole number")]
    NotANumber(String),
    #[error("duration {0:?} has an unknown unit (use ms, s, m, h or d)")]
    UnknownUnit(String),
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

/// Parses one number followed by one unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::NoUnit(text.to_string()))?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_string()))?;
    let secs_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::UnknownUnit(text.to_string())),
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::TooLarge(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "-1s",
            "10 weeks",
            "1y",
            "99999999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse("10 weeks").unwrap_err().to_string(),
            r#"duration "10 weeks" has an unknown unit (use ms, s, m, h or d)"#
        );
        assert_eq!(parse("30"), Err(DurationError::NoUnit("30".into())));
    }
}
