//! RFC 3339 timestamps of the publish contract (`2023-05-20T13:45:30Z`,
//! fractions and offsets allowed), to and from ms since the Unix epoch.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years counted from March, so the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// ms since the epoch of an RFC 3339 date-time (`T` or a space between
/// date and time, `Z` or `±hh:mm`, any fraction digits — beyond ms
/// truncated); `None` when it is not one.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let s = b.get(from..from + n)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let sep_ok = at(4, b'-')
        && at(7, b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && at(13, b':')
        && at(16, b':');
    if !sep_ok
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && at(i + 3, b':') => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let v = h * 60 + m;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // A leap second counts as the last second of its minute.
    let second = second.min(59);
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// `ms` as RFC 3339 in UTC with milliseconds (`2023-05-20T13:45:31.000Z`).
pub(crate) fn format(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_contract_examples() {
        assert_eq!(parse("2023-05-20T13:45:30Z"), Some(1_684_590_330_000));
        assert_eq!(
            parse("2023-05-20T15:45:30.5+02:00"),
            Some(1_684_590_330_500)
        );
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(format(1_684_590_331_000), "2023-05-20T13:45:31.000Z");
        assert_eq!(
            parse("2024-02-29T00:00:00Z").map(format).as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
        for bad in [
            "",
            "2023-05-20",
            "2023-05-20T13:45:30",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-05-20T24:00:00Z",
            "2023-05-20T13:45:30.Z",
            "2023-05-20T13:45:30Zjunk",
            "2023-05-20T13:45:30+0200",
            "yesterday",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Formatting then parsing gives the instant back, for any ms
        /// between years 0 and 9999.
        #[test]
        fn format_then_parse_is_the_identity(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            prop_assert_eq!(parse(&format(ms)), Some(ms));
        }

        /// An offset moves the instant by exactly its minutes.
        #[test]
        fn offsets_shift_by_their_minutes(ms in 0i64..4_102_444_800_000, h in 0i64..24, m in 0i64..60) {
            let utc = format(ms);
            let local = format(ms + (h * 60 + m) * 60_000);
            let with_offset = format!("{}+{h:02}:{m:02}", &local[..local.len() - 1]);
            prop_assert_eq!(parse(&with_offset), parse(&utc));
        }
    }
}
