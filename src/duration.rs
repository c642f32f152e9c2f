//! Durations the operator writes (`-t`, `-O ConnectTimeout=`, ssh_config,
//! YAML `timeout:`), read in one place and bounded there, so that no later
//! `Instant + Duration` anywhere in fleet (or in russh's keepalive timer)
//! can overflow and panic.

use std::time::Duration;

/// The longest duration fleet accepts anywhere: 30 days. Longer is a typo
/// (or an attack on the arithmetic), never a real timeout.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Whole seconds (`30`), as pssh and ssh_config write them, at most
/// [`MAX_DURATION`].
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .filter(|duration| *duration <= MAX_DURATION)
        .ok_or_else(|| {
            format!(
                "expected whole seconds from 0 to {}, found `{text}`",
                MAX_DURATION.as_secs()
            )
        })
}

/// `30`, `1.5s`, `500ms`, `5m`, `1h` or `2d`, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|seconds| {
            seconds.is_finite() && *seconds >= 0.0 && *seconds <= MAX_DURATION.as_secs_f64()
        })
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!(
                "expected a duration like 30s, 500ms, 5m or 1h (at most 30 days), found `{text}`"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bounds() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("30d").unwrap(), MAX_DURATION);
        assert!(parse_duration("31d").is_err());
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("expected a duration"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e400").is_err());
        assert_eq!(parse_seconds("0").unwrap(), Duration::ZERO);
        assert!(parse_seconds("18446744073709551615").is_err());
        assert!(parse_seconds("2592001").is_err());
    }
}
