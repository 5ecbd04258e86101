//! From the `calendar:` sections of the rule files to a [`Calendar`], with a
//! diagnostic naming the file and line for every mistake: an unknown time
//! zone, a zone or a year declared twice, a date that is not one, a make-up
//! working day that is not a weekend day, a day both off and worked. A
//! notice that leaves out a statutory holiday is warned about (a typo is
//! likelier than a change of the law).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;

use super::{statutory, Calendar, Notice};
use crate::diag::{levenshtein, Diagnostic};
use crate::load::SourceFile;
use crate::model::{HolidayDef, RuleFile};

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// The calendar the rule files declare (Asia/Shanghai and no notice where
/// they declare none). Errors and warnings go to `diags`.
pub(crate) fn from_rule_files(
    files: &[(&SourceFile, &RuleFile)],
    diags: &mut Vec<Diagnostic>,
) -> Calendar {
    let files = files
        .iter()
        .filter_map(|(f, rf)| rf.calendar.as_ref().map(|c| (*f, c)));
    let mut zone: Option<(Tz, &str)> = None;
    let mut years: BTreeMap<i32, &str> = BTreeMap::new();
    let mut notices = Vec::new();
    for (f, def) in files {
        let error = |msg: String, needle: &str| {
            Diagnostic::error(&f.path, msg)
                .at_line(line_of(&f.text, needle))
                .item("calendar")
        };
        if let Some(name) = &def.time_zone {
            if let Some((_, first)) = zone {
                diags.push(error(
                    format!("the time zone is already declared in {first}"),
                    "time_zone",
                ));
            } else {
                match name.trim().parse::<Tz>() {
                    Ok(tz) => zone = Some((tz, &f.path)),
                    Err(_) => {
                        let mut msg = format!(
                            "unknown time zone `{name}`: the business time zone is an IANA \
                             name such as Asia/Shanghai"
                        );
                        // Only a typo's distance: `Asia/Wuhan` is not `Asia/Amman`.
                        let close = chrono_tz::TZ_VARIANTS
                            .iter()
                            .map(|t| (levenshtein(name, t.name()), t.name()))
                            .filter(|(d, _)| *d <= 2)
                            .min();
                        if let Some((_, s)) = close {
                            msg.push_str(&format!("; did you mean `{s}`?"));
                        }
                        diags.push(error(msg, "time_zone"));
                    }
                }
            }
        }
        match (def.year, def.holidays.is_empty()) {
            (None, false) => diags.push(error(
                "`holidays` need the `year` of the notice they come from".to_owned(),
                "holidays",
            )),
            (Some(y), true) => {
                diags.push(error(format!("the {y} notice lists no `holidays`"), "year"))
            }
            (Some(y), false) => {
                if let Some(first) = years.get(&y) {
                    diags.push(error(
                        format!("the {y} notice is already in {first}: one file per year"),
                        "year",
                    ));
                    continue;
                }
                years.insert(y, &f.path);
                if let Some(n) = notice(f, y, &def.holidays, diags) {
                    notices.push(n);
                }
            }
            (None, true) => {
                if def.source.is_some() {
                    diags.push(error(
                        "`source` names a notice: give its `year` and `holidays`".to_owned(),
                        "source",
                    ));
                }
            }
        }
    }
    Calendar::new(zone.map_or(Tz::Asia__Shanghai, |(tz, _)| tz), &notices)
}

/// Parses `2026-01-01`.
fn date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{}` is not a date written YYYY-MM-DD", s.trim()))
}

/// The days of `2026-02-15..2026-02-23` (inclusive) or of one date.
fn days_off(s: &str) -> Result<Vec<NaiveDate>, String> {
    let (from, to) = match s.split_once("..") {
        Some((a, b)) => (date(a)?, date(b)?),
        None => {
            let d = date(s)?;
            (d, d)
        }
    };
    if to < from {
        return Err(format!("`{s}` ends before it starts"));
    }
    if (to - from).num_days() > 31 {
        return Err(format!("`{s}` is more than a month of days off"));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

/// One notice, checked; `None` (with diagnostics) if any date is wrong.
fn notice(
    f: &SourceFile,
    year: i32,
    holidays: &[HolidayDef],
    diags: &mut Vec<Diagnostic>,
) -> Option<Notice> {
    let before = diags.len();
    let item = format!("calendar {year}");
    let error = |msg: String, needle: &str| {
        Diagnostic::error(&f.path, msg)
            .at_line(line_of(&f.text, needle).or_else(|| line_of(&f.text, "year")))
            .item(&item)
    };
    let near = |d: NaiveDate| (year - 1..=year + 1).contains(&d.year());
    let mut off: BTreeMap<NaiveDate, &str> = BTreeMap::new();
    let mut work: BTreeMap<NaiveDate, &str> = BTreeMap::new();
    for h in holidays {
        let name = h.name.as_str();
        match days_off(&h.off) {
            Ok(days) => {
                for d in days {
                    if !near(d) {
                        diags.push(error(
                            format!("{name}: {d} is not in or next to {year}"),
                            &h.off,
                        ));
                    } else if let Some(other) = off.insert(d, name) {
                        diags.push(error(
                            format!("{name}: {d} is already a day off of {other}"),
                            &h.off,
                        ));
                    }
                }
            }
            Err(e) => diags.push(error(format!("{name}: `off`: {e}"), &h.off)),
        }
        for w in &h.work {
            let d = match date(w) {
                Ok(d) => d,
                Err(e) => {
                    diags.push(error(format!("{name}: `work`: {e}"), w));
                    continue;
                }
            };
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                diags.push(error(
                    format!(
                        "{name}: {d} is a {}: a make-up working day is a Saturday or Sunday",
                        d.format("%A")
                    ),
                    w,
                ));
            } else if !near(d) {
                diags.push(error(format!("{name}: {d} is not in or next to {year}"), w));
            } else if let Some(other) = work.insert(d, name) {
                diags.push(error(
                    format!("{name}: {d} is already a make-up working day of {other}"),
                    w,
                ));
            }
        }
    }
    for (d, name) in &work {
        if let Some(other) = off.get(d) {
            diags.push(error(
                format!("{name}: {d} is a make-up working day and a day off of {other}"),
                &d.to_string(),
            ));
        }
    }
    if diags[before..].iter().any(|d| d.is_error()) {
        return None;
    }
    let listed: BTreeSet<NaiveDate> = off.keys().copied().collect();
    for (d, name) in statutory::holidays(year).unwrap_or_default() {
        if !listed.contains(&d) {
            diags.push(
                Diagnostic::warning(
                    &f.path,
                    format!(
                        "the notice gives no day off on {d} ({name}), a statutory holiday: check \
                         it against the notice"
                    ),
                )
                .at_line(line_of(&f.text, "year"))
                .item(&item),
            );
        }
    }
    Some(Notice {
        year,
        off: off.into_keys().collect(),
        work: work.into_keys().collect(),
    })
}
