//! Durations as rule files and settings write them: `90s`, `15m`, `24h`,
//! `30d`, `2w`, parsed to seconds and written back for people; and
//! rectification periods, which may also count working days (`10wd`).

/// Parses `90s`, `15m`, `24h`, `30d` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("a duration needs a unit: s, m, h, d or w (e.g. 24h)")?;
    let (n, unit) = s.split_at(unit_at);
    let n: i64 = n
        .parse()
        .map_err(|_| "a duration starts with a whole number (e.g. 30d)".to_owned())?;
    let mult =
        unit_seconds(unit).ok_or_else(|| format!("unknown unit `{unit}`: use s, m, h, d or w"))?;
    if n <= 0 {
        return Err("a duration must be positive".to_owned());
    }
    n.checked_mul(mult)
        .ok_or_else(|| "duration too long".to_owned())
}

fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    })
}

/// How long an alert may stay unrectified before it escalates
/// (`escalate_after:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A fixed length, in seconds (`30d`).
    Seconds(i64),
    /// Working days on the rules' calendar (`10wd`): the period ends at the
    /// end of the last of them, in the business time zone.
    WorkingDays(u32),
}

impl Period {
    /// Parses `30d` (any duration) or `10wd` (working days).
    pub fn parse(s: &str) -> Result<Period, String> {
        let t = s.trim();
        if let Some(n) = t.strip_suffix("wd") {
            let n: u32 = n.parse().map_err(|_| {
                "working days are a whole number followed by `wd` (e.g. 10wd)".to_owned()
            })?;
            if n == 0 {
                return Err("a period must be positive".to_owned());
            }
            return Ok(Period::WorkingDays(n));
        }
        parse_duration(t)
            .map(Period::Seconds)
            .map_err(|e| format!("{e}, or working days such as 10wd"))
    }
}

/// Seconds written in the largest unit that divides them (`3600` → `1h`).
pub fn format_duration(secs: i64) -> String {
    for unit in ["w", "d", "h", "m"] {
        let n = unit_seconds(unit).unwrap_or(1);
        if secs != 0 && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration(" 24h "), Ok(86_400));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("99999999999999w").is_err());
    }

    #[test]
    fn periods_are_durations_or_working_days() {
        assert_eq!(Period::parse("30d"), Ok(Period::Seconds(2_592_000)));
        assert_eq!(Period::parse("10wd"), Ok(Period::WorkingDays(10)));
        assert_eq!(Period::parse(" 1wd "), Ok(Period::WorkingDays(1)));
        assert!(Period::parse("0wd").is_err());
        assert!(Period::parse("wd").is_err());
        assert!(Period::parse("1.5wd").is_err());
        let e = Period::parse("10 working days");
        assert!(e.as_ref().is_err_and(|e| e.contains("10wd")), "{e:?}");
    }

    #[test]
    fn formats_in_the_largest_whole_unit() {
        assert_eq!(format_duration(3600), "1h");
        assert_eq!(format_duration(7 * 86_400), "1w");
        assert_eq!(format_duration(2 * 86_400), "2d");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(0), "0s");
        for s in ["90s", "15m", "24h", "30d", "2w"] {
            let secs = parse_duration(s).unwrap_or_default();
            assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }
    }
}
