//! The types whose JSON is not their Protobuf message's fields: how Go
//! writes a metav1.Time, MicroTime and Duration.

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn utc(seconds: i64) -> String {
    let (y, mo, d) = civil_from_days(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// metav1.Time: RFC 3339 in UTC to the second (`2006-01-02T15:04:05Z`).
pub fn rfc3339(seconds: i64) -> String {
    format!("{}Z", utc(seconds))
}

/// metav1.MicroTime: RFC 3339 in UTC with six fractional digits.
pub fn rfc3339_micro(seconds: i64, nanos: i32) -> String {
    format!("{}.{:06}Z", utc(seconds), nanos.clamp(0, 999_999_999) / 1000)
}

/// Writes `v`'s last `prec` decimal digits as a fraction without trailing
/// zeros (nothing when they are all zero) and returns `v / 10^prec`, as
/// Go's `time.Duration.String` does.
fn frac(v: u64, prec: u32, out: &mut String) -> u64 {
    let scale = 10u64.pow(prec);
    let f = v % scale;
    if f != 0 {
        let digits = format!("{f:0width$}", width = prec as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    v / scale
}

/// Go's `time.Duration.String` of a number of nanoseconds: `1h2m3.5s`,
/// `1.5ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    let u = nanos.unsigned_abs();
    let sign = if nanos < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let mut f = String::new();
        let whole = frac(u, prec, &mut f);
        return format!("{sign}{whole}{f}{unit}");
    }
    let mut f = String::new();
    let secs = frac(u, 9, &mut f);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{f}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}{f}s")
    } else {
        format!("{sign}{s}{f}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56Z, a leap day: 19782 days and 45296 s.
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn micro_times_keep_six_digits() {
        assert_eq!(
            rfc3339_micro(1_709_210_096, 123_456_789),
            "2024-02-29T12:34:56.123456Z"
        );
        assert_eq!(rfc3339_micro(0, 0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        for (nanos, s) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90 * 1_000_000_000, "1m30s"),
            (3_600 * 1_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(nanos), s, "{nanos}");
        }
    }
}
