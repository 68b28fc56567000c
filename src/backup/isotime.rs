//! ISO-8601 date-times as Home Assistant writes them in `backup.json`: the current time for a
//! new backup (`2026-11-20T04:45:12.345678+00:00`, what Supervisor writes) and the instant a
//! date with any offset stands for, to sort backups newest first. No time-zone database is
//! needed: the offsets are in the strings.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `seconds` and `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
pub fn format_utc(seconds: i64, micros: u32) -> String {
    let days = seconds.div_euclid(86400);
    let secs = seconds.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Now, in UTC, as Supervisor writes `date`.
pub fn now_utc() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs() as i64, now.subsec_micros())
}

/// The instant (microseconds since the epoch, UTC) of an ISO-8601 date-time as
/// `validate::is_iso_datetime` accepts it; a date without an offset is taken as UTC.
pub fn parse_micros(s: &str) -> Option<i64> {
    if !super::validate::is_iso_datetime(s) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let mut secs = days_from_civil(y, mo, d) * 86400;
    let mut micros = 0i64;
    let b = s.as_bytes();
    let mut i = 10;
    if b.len() > 10 {
        secs += num(11..13)? * 3600 + num(14..16)? * 60;
        i = 16;
        if b.get(i) == Some(&b':') {
            secs += num(17..19)?;
            i = 19;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let frac = &s[start..i];
                let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
                micros = digits.parse().ok()?;
            }
        }
    }
    match b.get(i) {
        Some(b'+') | Some(b'-') => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if b[i] == b'+' {
                secs -= off;
            } else {
                secs += off;
            }
        }
        _ => {}
    }
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_supervisor() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000000+00:00");
        // 2026-08-20T12:00:00Z, the fixtures' SOURCE_DATE_EPOCH.
        assert_eq!(
            format_utc(1_787_227_200, 345_678),
            "2026-08-20T12:00:00.345678+00:00"
        );
        assert_eq!(
            format_utc(951_782_400, 0),
            "2000-02-29T00:00:00.000000+00:00"
        );
        let now = now_utc();
        assert!(super::super::validate::is_iso_datetime(&now), "{now}");
    }

    #[test]
    fn parses_offsets_to_one_instant() {
        let a = parse_micros("2026-08-13T04:51:03.918274+02:00").unwrap();
        let b = parse_micros("2026-08-13T02:51:03.918274+00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_micros("1970-01-01"), Some(0));
        assert_eq!(parse_micros("1970-01-01T00:00Z"), Some(0));
        assert_eq!(
            parse_micros("1970-01-01T01:00:00.5-01:00"),
            Some(7_200_500_000)
        );
        assert_eq!(
            parse_micros(&format_utc(1_787_227_200, 7)),
            Some(1_787_227_200_000_007)
        );
        assert!(parse_micros("yesterday").is_none());
        assert!(
            parse_micros("2026-08-20T04:45:12.345678+00:00")
                > parse_micros("2026-08-13T04:51:03.918274+02:00")
        );
    }
}
