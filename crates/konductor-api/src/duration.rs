//! Go-style duration strings (`30s`, `15m`, `1h30m`, `500ms`, `1.5h`) — the format of
//! `spec.timeout` and of `koncli barrier wait --timeout`.
//!
//! The accepted language is the strict core of Go's `time.ParseDuration`: one or more
//! `<number><unit>` pairs, the number digits with an optional `.digits` fraction, the
//! unit one of `ns`, `us` (or `µs`/`μs`), `ms`, `s`, `m`, `h`. Like Go, values must fit in
//! a signed 64-bit count of nanoseconds (about 292 years). Unlike Go, a bare number (even
//! `0`), a sign, surrounding spaces and half-written fractions (`.5s`, `5.s`) are refused:
//! a timeout always names its unit and is never negative. [`DURATION_PATTERN`] describes
//! the same language for the CRD schema, so a real API server and this crate agree.

use std::fmt;
use std::time::Duration;

/// The regular expression the CRD schema uses for duration fields. It accepts the same
/// strings as [`parse_duration`] except values too large to represent (which the
/// schema cannot express and the barrier rules report as an invalid spec).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+$";

/// The largest duration Go can represent: `i64::MAX` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string was refused. Each message says what is wrong and shows a
/// valid example, so it can be shown to a user as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty (or only whitespace).
    #[error("empty duration: give a number and a unit, e.g. 30s, 15m or 1h30m")]
    Empty,
    /// The string starts with `-` (or `+`).
    #[error("invalid duration {0:?}: durations cannot be negative or signed; use e.g. 5m")]
    Signed(String),
    /// A number is not followed by a unit, e.g. `5` or `1h30`.
    #[error(
        "invalid duration {0:?}: missing unit after the number (use ns, us, ms, s, m or h, e.g. 5m)"
    )]
    MissingUnit(String),
    /// A unit is not one Go knows, e.g. `5d` or `1 hour`.
    #[error(
        "invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h, e.g. 1h30m)"
    )]
    UnknownUnit {
        /// The whole string given.
        input: String,
        /// The unit text that was not recognised.
        unit: String,
    },
    /// Something other than a digit or `.` where a number should start.
    #[error("invalid duration {0:?}: expected a number followed by a unit, e.g. 30s, 15m or 1h30m")]
    Malformed(String),
    /// The value does not fit in 64-bit nanoseconds (about 292 years).
    #[error("invalid duration {0:?}: too large (the maximum is about 2562047h)")]
    Overflow(String),
}

/// Parses a Go-style duration string; see the module documentation for the format.
///
/// ```
/// use konductor_api::duration::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
/// assert!(parse_duration("1 hour").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input;
    if text.trim().is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with(['-', '+']) {
        return Err(DurationError::Signed(input.to_owned()));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, remaining) = parse_component(input, rest)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        rest = remaining;
    }
    let secs = u64::try_from(total / 1_000_000_000).expect("bounded by MAX_NANOS");
    let nanos = u32::try_from(total % 1_000_000_000).expect("below one billion");
    Ok(Duration::new(secs, nanos))
}

/// An optional duration field of a spec (`spec.<field>`, as written), or an error that
/// names the field: how every kind's rules read their durations.
pub fn parse_spec_field(value: Option<&str>, field: &str) -> Result<Option<Duration>, String> {
    value
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("spec.{field}: {e}"))
}

/// Parses one `<number><unit>` pair from the front of `rest`, returning its value in
/// nanoseconds and what follows it.
fn parse_component<'a>(input: &str, rest: &'a str) -> Result<(u128, &'a str), DurationError> {
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, after) = rest.split_at(number_len);
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let well_formed = !whole.is_empty()
        && !fraction.contains('.')
        && (!number.contains('.') || !fraction.is_empty());
    if !well_formed {
        return Err(DurationError::Malformed(input.to_owned()));
    }
    let unit_len = after
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(after.len());
    let (unit, remaining) = after.split_at(unit_len);
    if unit.is_empty() {
        return Err(DurationError::MissingUnit(input.to_owned()));
    }
    let unit_nanos: u128 = match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    let overflow = || DurationError::Overflow(input.to_owned());
    let whole_value: u128 = whole.parse().map_err(|_| overflow())?;
    let mut nanos = whole_value.checked_mul(unit_nanos).ok_or_else(overflow)?;
    if nanos > MAX_NANOS {
        return Err(overflow());
    }
    // Like Go, the fraction is scaled by the unit and truncated to whole nanoseconds;
    // digits beyond what can matter (more than 30) are dropped to keep the math in u128.
    let mut scale: u128 = 1;
    let mut fraction_value: u128 = 0;
    for digit in fraction.bytes().take(30) {
        fraction_value = fraction_value * 10 + u128::from(digit - b'0');
        scale *= 10;
    }
    nanos = nanos
        .checked_add(fraction_value * unit_nanos / scale)
        .filter(|n| *n <= MAX_NANOS)
        .ok_or_else(overflow)?;
    Ok((nanos, remaining))
}

/// Formats a duration the way Go's `time.Duration.String` does (`1h30m0s`, `500ms`,
/// `1.5s`), so values written back into specs and messages look familiar.
///
/// ```
/// use konductor_api::duration::format_duration;
/// use std::time::Duration;
/// assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
/// assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    GoDuration(duration).to_string()
}

/// Displays a [`Duration`] in Go's notation; see [`format_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            // Sub-second values use the largest unit that keeps the integer part non-zero.
            let (unit_nanos, unit) = if total < 1_000 {
                (1, "ns")
            } else if total < 1_000_000 {
                (1_000, "µs")
            } else {
                (1_000_000, "ms")
            };
            return write_decimal(f, total, unit_nanos, unit);
        }
        let hours = total / 3_600_000_000_000;
        let minutes = (total / 60_000_000_000) % 60;
        let second_nanos = total % 60_000_000_000;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write_decimal(f, second_nanos, 1_000_000_000, "s")
    }
}

/// Formats an age the way kubectl's AGE column does (`45s`, `5m30s`, `3h`, `2d4h`,
/// `1y20d`): precise when young, coarser with age.
///
/// ```
/// use konductor_api::duration::human_duration;
/// use std::time::Duration;
/// assert_eq!(human_duration(Duration::from_secs(330)), "5m30s");
/// assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3d");
/// ```
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// Writes `value / unit_nanos` with the fraction's trailing zeros removed, then `unit`.
fn write_decimal(
    f: &mut fmt::Formatter<'_>,
    value: u128,
    unit_nanos: u128,
    unit: &str,
) -> fmt::Result {
    let whole = value / unit_nanos;
    let fraction = value % unit_nanos;
    if fraction == 0 {
        return write!(f, "{whole}{unit}");
    }
    let width = unit_nanos.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    write!(f, "{whole}.{}{unit}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(input: &str) -> Duration {
        parse_duration(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("15m"), Duration::from_secs(900));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("2h45m30s"), Duration::from_secs(2 * 3600 + 45 * 60 + 30));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("0.5s"), Duration::from_millis(500));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_strings_with_a_message_saying_why() {
        let cases = [
            ("1 hour", "unknown unit"),
            ("-5m", "negative"),
            ("+5m", "signed"),
            ("5", "missing unit"),
            ("1h30", "missing unit"),
            ("", "empty"),
            ("   ", "empty"),
            ("5d", "unknown unit \"d\""),
            ("abc", "expected a number"),
            (" 5m", "expected a number"),
            ("h", "expected a number"),
            (".5s", "expected a number"),
            ("5.s", "expected a number"),
            ("1.2.3s", "expected a number"),
            ("99999999999999999999h", "too large"),
            ("2562048h", "too large"),
            ("9223372036854775808ns", "too large"),
        ];
        for (input, expected) in cases {
            let err = parse_duration(input).expect_err(input).to_string();
            assert!(
                err.contains(expected),
                "{input:?}: {err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn the_largest_go_duration_still_parses() {
        assert_eq!(ok("9223372036854775807ns").as_nanos(), i64::MAX as u128);
        assert!(ok("2562047h").as_secs() > 0);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 60, "5h1m"),
            (47 * 3600, "47h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(secs)),
                expected,
                "{secs}s"
            );
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_micros(10), "10µs"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(900), "15m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(2 * 3600 + 45 * 60 + 30), "2h45m30s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_duration(duration), expected);
        }
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_is_the_identity(nanos in 0u64..=i64::MAX as u64) {
            let duration = Duration::from_nanos(nanos);
            prop_assert_eq!(ok(&format_duration(duration)), duration);
        }

        #[test]
        fn sums_of_components_add_up(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(ms);
            prop_assert_eq!(ok(&text), expected);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn the_schema_pattern_accepts_exactly_what_the_parser_accepts(
            text in "[0-9.hmsun µ-]{0,12}"
        ) {
            let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
            match parse_duration(&text) {
                Ok(_) => prop_assert!(pattern.is_match(&text), "{text:?} parsed but the pattern refuses it"),
                Err(DurationError::Overflow(_)) => prop_assert!(pattern.is_match(&text)),
                Err(e) => prop_assert!(!pattern.is_match(&text), "{text:?} matches the pattern but: {e}"),
            }
        }
    }
}
