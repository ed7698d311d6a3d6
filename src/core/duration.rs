//! Human durations (`90s`, `5m`, `72h`, `1h30m`, `2d`) as written in configuration
//! files and policy annotations.

use std::fmt;
use std::time::Duration;

/// Parses a duration made of one or more `<number><unit>` parts, units `ms`, `s`,
/// `m`, `h`, `d`, `w`. A bare `0` is accepted; any other bare number is refused
/// because its unit would be a guess.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::new(text, "it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::new(text, "expected a number"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::new(text, "number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let millis: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(DurationError::new(
                    text,
                    "a unit is missing (ms, s, m, h, d or w)",
                ));
            }
            _ => {
                return Err(DurationError::new(
                    text,
                    "unknown unit (use ms, s, m, h, d or w)",
                ));
            }
        };
        total = number
            .checked_mul(millis)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::new(text, "duration too large"))?;
        rest = &rest[unit_len..];
    }
    let millis =
        u64::try_from(total).map_err(|_| DurationError::new(text, "duration too large"))?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse`] reads it, using the largest exact units.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl DurationError {
    fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.to_owned(),
            reason,
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration `{}`: {}", self.input, self.reason)
    }
}

impl std::error::Error for DurationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        let cases = [
            ("90s", 90_000),
            ("5m", 300_000),
            ("72h", 259_200_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("250ms", 250),
            ("0", 0),
            (" 10s ", 10_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn refuses_bad_input() {
        for text in [
            "",
            "5",
            "m",
            "5x",
            "-5s",
            "1.5h",
            "s5",
            "99999999999999999999999d",
        ] {
            assert!(parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["5m", "72h", "1h30m", "250ms", "1d2h3m4s5ms"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_secs(300)), "5m");
    }
}
