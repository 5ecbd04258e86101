//! The business time zone and the working calendar.
//!
//! Every event's `occurred_hour`, `occurred_weekday`, `occurred_workday` and
//! `occurred_holiday` are read in one IANA time zone declared with the rules,
//! whatever offset the event's timestamp carries: an approval stamped
//! `15:30Z` happened at 23:30 in Wuhan. The zone is part of the rules, so
//! `levee check`, `test`, `replay` and `run` agree.
//!
//! ```yaml
//! # rules/calendar/calendar.yaml (absent: Asia/Shanghai)
//! calendar:
//!   time_zone: Asia/Shanghai
//!
//! # rules/calendar/2026.yaml: one year's State Council notice
//! calendar:
//!   year: 2026
//!   source: 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04)
//!   holidays:
//!     - {name: 春节 Spring Festival, off: 2026-02-15..2026-02-23, work: [2026-02-14, 2026-02-28]}
//! ```
//!
//! What a day is:
//!
//! | year | `occurred_holiday` | `occurred_workday` | alerts that read it |
//! |---|---|---|---|
//! | its notice is in the rules | a day off the notice lists | not a day off, and Monday to Friday or a make-up working day | |
//! | no notice, 2014–2100 | a statutory holiday ([`statutory`]) | not a holiday, and Monday to Friday | `"calendar": "provisional"` |
//! | no notice, other years | missing | missing | `"calendar": "unknown"` |
//!
//! Weekends are not holidays: `occurred_holiday` is a public holiday's day
//! off (with the weekend days a notice moves into the break), and
//! `!occurred_workday` is any rest day, weekends included.
//!
//! # Layout
//! - `build`: rule files → [`Calendar`], every mistake a diagnostic.
//! - [`statutory`]: the law's holidays, for the years without a notice.

mod build;
pub mod statutory;

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate, Offset, SecondsFormat, TimeZone};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::graph::{Aggregate, ControlPoint, Op, Program, Slot, HOLIDAY_SLOT, WORKDAY_SLOT};

pub(crate) use build::from_rule_files;

/// The time zone of rules that declare none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

const SECS_PER_DAY: i64 = 86_400;
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

const KNOWN: u8 = 1;
const WORK: u8 = 2;
const HOLIDAY: u8 = 4;
const PROVISIONAL: u8 = 8;

/// What one day is on the working calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub workday: bool,
    pub holiday: bool,
    /// No notice of its year is in the rules: the statutory holidays only.
    pub provisional: bool,
}

/// What the working calendar of a day rests on (also what a rule test
/// expects of an alert: `calendar: provisional`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Its year's notice is in the rules.
    #[default]
    Published,
    /// No notice: the statutory holidays only.
    Provisional,
    /// Neither a notice nor the statutory table covers the day.
    Unknown,
}

impl Basis {
    /// An alert's `calendar` field: none for a published calendar.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Basis::Published => None,
            Basis::Provisional => Some("provisional"),
            Basis::Unknown => Some("unknown"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.label().unwrap_or("published")
    }
}

/// An instant as the business sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0..=23.
    pub hour: u8,
    /// 1 = Monday ..= 7 = Sunday.
    pub weekday: u8,
    /// `None` where the calendar does not know the day.
    pub day: Option<Day>,
}

impl LocalTime {
    pub fn basis(&self) -> Basis {
        match self.day {
            None => Basis::Unknown,
            Some(d) if d.provisional => Basis::Provisional,
            Some(_) => Basis::Published,
        }
    }
}

/// One year's notice: its year, days off and make-up working days.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notice {
    pub year: i32,
    pub off: Vec<NaiveDate>,
    pub work: Vec<NaiveDate>,
}

/// The business time zone and working calendar of a rule set (see the
/// module doc). Immutable once compiled; day lookups are an array index.
#[derive(Clone)]
pub struct Calendar {
    zone: Tz,
    /// Days since 1970-01-01 of the first day of `days`.
    first_day: i64,
    /// Per local date, flags (`KNOWN`, `WORK`, `HOLIDAY`, `PROVISIONAL`).
    days: Vec<u8>,
    /// Years whose notice is in the rules, ascending.
    published: Vec<i32>,
}

impl std::fmt::Debug for Calendar {
    /// The zone, the notices and the span of days, not every day.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = |d: i64| date_of(d).map(|d| d.to_string()).unwrap_or_default();
        f.debug_struct("Calendar")
            .field("time_zone", &self.time_zone())
            .field("published", &self.published)
            .field("first_day", &span(self.first_day))
            .field(
                "last_day",
                &span(self.first_day + self.days.len() as i64 - 1),
            )
            .finish()
    }
}

impl Default for Calendar {
    /// Asia/Shanghai, no notice: every day of 2014–2100 provisional.
    fn default() -> Self {
        Calendar::new(Tz::Asia__Shanghai, &[])
    }
}

fn days_since_epoch(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) - EPOCH_DAYS_FROM_CE
}

fn date_of(days: i64) -> Option<NaiveDate> {
    i32::try_from(days + EPOCH_DAYS_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

/// 1 = Monday ..= 7 = Sunday (1970-01-01 was a Thursday).
fn weekday_of(days: i64) -> u8 {
    ((days + 3).rem_euclid(7) + 1) as u8
}

impl Calendar {
    /// The calendar in `zone` with these notices; the statutory holidays
    /// for every other year of the statutory table.
    pub(crate) fn new(zone: Tz, notices: &[Notice]) -> Self {
        let mut published: Vec<i32> = notices.iter().map(|n| n.year).collect();
        published.sort_unstable();
        published.dedup();
        let listed = notices.iter().flat_map(|n| n.off.iter().chain(&n.work));
        let first_year = listed
            .clone()
            .map(|d| d.year())
            .chain(published.first().copied())
            .fold(statutory::FIRST_YEAR, i32::min);
        let last_year = listed
            .map(|d| d.year())
            .chain(published.last().copied())
            .fold(statutory::LAST_YEAR, i32::max);
        let (Some(first), Some(end)) = (
            NaiveDate::from_ymd_opt(first_year, 1, 1),
            NaiveDate::from_ymd_opt(last_year + 1, 1, 1),
        ) else {
            return Calendar {
                zone,
                first_day: 0,
                days: Vec::new(),
                published,
            };
        };
        let first_day = days_since_epoch(first);
        let mut days = vec![0u8; (days_since_epoch(end) - first_day) as usize];
        for (i, flags) in days.iter_mut().enumerate() {
            let day = first_day + i as i64;
            let year = date_of(day).map_or(0, |d| d.year());
            let weekday_work = if weekday_of(day) <= 5 { WORK } else { 0 };
            if published.binary_search(&year).is_ok() {
                *flags = KNOWN | weekday_work;
            } else if (statutory::FIRST_YEAR..=statutory::LAST_YEAR).contains(&year) {
                *flags = KNOWN | PROVISIONAL | weekday_work;
            }
        }
        let mut cal = Calendar {
            zone,
            first_day,
            days,
            published,
        };
        for year in statutory::FIRST_YEAR..=statutory::LAST_YEAR {
            if cal.published.binary_search(&year).is_ok() {
                continue;
            }
            for (d, _) in statutory::holidays(year).unwrap_or_default() {
                cal.set(d, KNOWN | PROVISIONAL | HOLIDAY);
            }
        }
        // A notice speaks for every day it lists, even one of another year
        // (a New Year break that starts on 12-31).
        for n in notices {
            for &d in &n.off {
                cal.set(d, KNOWN | HOLIDAY);
            }
            for &d in &n.work {
                cal.set(d, KNOWN | WORK);
            }
        }
        cal
    }

    fn set(&mut self, date: NaiveDate, flags: u8) {
        let i = days_since_epoch(date) - self.first_day;
        if let Some(f) = usize::try_from(i).ok().and_then(|i| self.days.get_mut(i)) {
            *f = flags;
        }
    }

    /// The IANA name of the business time zone, e.g. `Asia/Shanghai`.
    pub fn time_zone(&self) -> &'static str {
        self.zone.name()
    }

    /// The years whose notice is in the rules, ascending.
    pub fn published_years(&self) -> &[i32] {
        &self.published
    }

    /// The zone's offset from UTC at `at` (seconds since the epoch), in seconds.
    fn offset(&self, at: i64) -> i64 {
        DateTime::from_timestamp(at, 0).map_or(0, |t| {
            i64::from(
                self.zone
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        })
    }

    /// The local date of `at`, as days since 1970-01-01.
    fn local_days(&self, at: i64) -> i64 {
        (at + self.offset(at)).div_euclid(SECS_PER_DAY)
    }

    fn day_at(&self, days: i64) -> Option<Day> {
        let i = usize::try_from(days - self.first_day).ok()?;
        let f = *self.days.get(i)?;
        (f & KNOWN != 0).then_some(Day {
            workday: f & WORK != 0,
            holiday: f & HOLIDAY != 0,
            provisional: f & PROVISIONAL != 0,
        })
    }

    /// Hour, weekday and day of an instant (seconds since the epoch) in the
    /// business time zone.
    pub fn local(&self, at: i64) -> LocalTime {
        let secs = at + self.offset(at);
        let days = secs.div_euclid(SECS_PER_DAY);
        LocalTime {
            hour: (secs.rem_euclid(SECS_PER_DAY) / 3600) as u8,
            weekday: weekday_of(days),
            day: self.day_at(days),
        }
    }

    /// What a local date is on the calendar.
    pub fn day(&self, date: NaiveDate) -> Option<Day> {
        self.day_at(days_since_epoch(date))
    }

    /// Whether a local date (days since the epoch) is a working day; a day
    /// the calendar does not know is one from Monday to Friday.
    fn is_working(&self, days: i64) -> bool {
        self.day_at(days)
            .map_or(weekday_of(days) <= 5, |d| d.workday)
    }

    /// The first second of a local date in the business time zone (a
    /// table row's `valid_from: 2026-12-01`).
    pub fn midnight(&self, date: NaiveDate) -> i64 {
        self.start_of_day(days_since_epoch(date))
    }

    /// The first second of a local date (days since the epoch).
    fn start_of_day(&self, days: i64) -> i64 {
        let naive = date_of(days).and_then(|d| d.and_hms_opt(0, 0, 0));
        let Some(naive) = naive else {
            return days * SECS_PER_DAY;
        };
        match self.zone.from_local_datetime(&naive).earliest() {
            Some(t) => t.timestamp(),
            // Midnight skipped by a clock change: the day starts at the
            // change, midnight read with the day before's offset.
            None => {
                let utc = naive.and_utc().timestamp();
                utc - self.offset(utc - SECS_PER_DAY)
            }
        }
    }

    /// The end of the `n`-th working day after the day `raised_at` falls
    /// on, in the business time zone: the epoch second of its last second
    /// (23:59:59 local). `n = 0` is the end of the raise day itself.
    ///
    /// Working days are those of the calendar (make-up working days count,
    /// holidays do not; provisional years count their statutory holidays
    /// only); past the calendar's years, Monday to Friday.
    pub fn deadline_after_working_days(&self, raised_at: i64, n: u32) -> i64 {
        let mut day = self.local_days(raised_at);
        let last_known = self.first_day + self.days.len() as i64 - 1;
        let mut left = i64::from(n);
        while left > 0 {
            if day >= last_known && left > 5 {
                // Beyond the calendar every week has five working days.
                let weeks = (left - 1) / 5;
                day += 7 * weeks;
                left -= 5 * weeks;
                continue;
            }
            day += 1;
            if self.is_working(day) {
                left -= 1;
            }
        }
        self.start_of_day(day + 1) - 1
    }

    /// An instant as RFC 3339 in the business time zone, to the second,
    /// e.g. `2026-03-04T23:59:59+08:00`.
    pub fn format_local(&self, at: i64) -> String {
        match self.zone.timestamp_opt(at, 0).earliest() {
            Some(t) => t.fixed_offset().to_rfc3339_opts(SecondsFormat::Secs, false),
            None => at.to_string(),
        }
    }
}

/// Sets `reads_calendar` of the control points `indices` of one event type.
pub(crate) fn mark_readers(
    program: &Program,
    aggregates: &[Aggregate],
    indices: &[u32],
    control_points: &mut [ControlPoint],
) {
    for &c in indices {
        if let Some(cp) = control_points.get(c as usize) {
            let reads = reads_calendar(program, aggregates, cp);
            control_points[c as usize].reads_calendar = reads;
        }
    }
}

/// Whether a control point's conditions read `occurred_workday` or
/// `occurred_holiday`: its `when` and tiers, through derived values and
/// through the `of` and `where` of the aggregates they read.
fn reads_calendar(program: &Program, aggregates: &[Aggregate], cp: &ControlPoint) -> bool {
    let is_calendar = |s: Slot| s == WORKDAY_SLOT || s == HOLIDAY_SLOT;
    let roots: Vec<Slot> = std::iter::once(cp.when)
        .chain(cp.tiers.iter().filter_map(|t| t.when))
        .collect();
    if roots.iter().copied().any(is_calendar) {
        return true;
    }
    program
        .cone(roots, aggregates, &HashSet::new())
        .into_iter()
        .filter_map(|i| program.nodes.get(i as usize))
        .any(|node| {
            let aggregate_reads = match node.op {
                Op::Aggregate(a) => aggregates
                    .get(a as usize)
                    .is_some_and(|spec| spec.of.into_iter().chain(spec.filter).any(is_calendar)),
                _ => false,
            };
            aggregate_reads || node.op.operands().into_iter().any(is_calendar)
        })
}

#[cfg(test)]
mod tests;
