//! Formatting of node timestamps (UTC microseconds since the Unix epoch), without a date crate.

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339, UTC) of microseconds since the epoch.
pub fn rfc3339_micros(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), all in non-negative integers.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339_micros;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(1_767_225_600_000_001), "2026-01-01T00:00:00.000001Z");
        assert_eq!(rfc3339_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(4_107_542_399_999_999), "2100-02-28T23:59:59.999999Z");
    }
}
