#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, NaiveDate};

use super::*;
use crate::graph::COMMON_FIELDS;
use crate::load::RuleSources;

const CALENDAR: &str = include_str!("../../../../rules/calendar/calendar.yaml");
const Y2025: &str = include_str!("../../../../rules/calendar/2025.yaml");
const Y2026: &str = include_str!("../../../../rules/calendar/2026.yaml");

/// The shipped calendar files, compiled.
fn shipped() -> Calendar {
    let (cal, diags) = build(&[
        ("calendar/calendar.yaml", CALENDAR),
        ("calendar/2025.yaml", Y2025),
        ("calendar/2026.yaml", Y2026),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    cal
}

/// Compiles calendar files alone: the calendar and its diagnostics.
fn build(files: &[(&str, &str)]) -> (Calendar, Vec<String>) {
    let sources = RuleSources::from_texts(files.iter().copied());
    let parsed: Vec<(&crate::load::SourceFile, crate::model::RuleFile)> = sources
        .files
        .iter()
        .map(|f| (f, serde_norway::from_str(&f.text).unwrap()))
        .collect();
    let refs: Vec<_> = parsed.iter().map(|(f, rf)| (*f, rf)).collect();
    let mut diags = Vec::new();
    let cal = from_rule_files(&refs, &mut diags);
    (cal, diags.iter().map(|d| d.to_string()).collect())
}

fn at(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn the_calendar_fields_are_in_their_slots() {
    assert_eq!(COMMON_FIELDS[WORKDAY_SLOT as usize].0, "occurred_workday");
    assert_eq!(COMMON_FIELDS[HOLIDAY_SLOT as usize].0, "occurred_holiday");
}

#[test]
fn an_instant_reads_the_same_in_any_offset_it_is_written_in() {
    let cal = shipped();
    assert_eq!(cal.time_zone(), "Asia/Shanghai");
    // An approval stamped 15:30Z happened at 23:30 in Wuhan.
    let z = cal.local(at("2026-03-06T15:30:00Z"));
    assert_eq!(z, cal.local(at("2026-03-06T23:30:00+08:00")));
    assert_eq!(z, cal.local(at("2026-03-06T10:30:00-05:00")));
    assert_eq!((z.hour, z.weekday), (23, 5));
    // 16:30Z on a Friday is Saturday 00:30 in Beijing.
    let sat = cal.local(at("2026-03-06T16:30:00Z"));
    assert_eq!((sat.hour, sat.weekday), (0, 6));
    assert_eq!(
        sat.day,
        Some(Day {
            workday: false,
            holiday: false,
            provisional: false
        })
    );
}

#[test]
fn a_make_up_saturday_is_a_working_day_and_a_holiday_weekday_is_not() {
    let cal = shipped();
    let day = |y, m, d| cal.day(ymd(y, m, d)).unwrap();
    // 2026-02-14, a Saturday worked before the Spring Festival.
    let makeup = day(2026, 2, 14);
    assert!(makeup.workday && !makeup.holiday && !makeup.provisional);
    let local = cal.local(at("2026-02-14T10:00:00+08:00"));
    assert_eq!(local.weekday, 6);
    assert_eq!(local.day, Some(makeup));
    // Monday 2026-02-16 is 除夕, a day off.
    let eve = day(2026, 2, 16);
    assert!(!eve.workday && eve.holiday);
    // Sunday 2026-02-15 is in the break: a holiday too.
    assert!(day(2026, 2, 15).holiday);
    // An ordinary weekend day and weekday.
    let sat = day(2026, 3, 7);
    assert!(!sat.workday && !sat.holiday);
    let wed = day(2026, 3, 4);
    assert!(wed.workday && !wed.holiday);
    // 2025: 01-26 (Sunday) worked, National Day through 10-08, 10-11 worked.
    assert!(day(2025, 1, 26).workday);
    assert!(day(2025, 10, 8).holiday);
    assert!(day(2025, 10, 11).workday);
    assert!(!day(2025, 10, 12).workday);
}

#[test]
fn a_year_without_a_notice_has_its_statutory_holidays_provisionally() {
    let cal = shipped();
    assert_eq!(cal.published_years(), [2025, 2026]);
    // 除夕 2027 is Friday 02-05: a provisional holiday.
    let eve = cal.local(at("2027-02-05T10:00:00+08:00"));
    assert_eq!(eve.basis(), Basis::Provisional);
    let d = eve.day.unwrap();
    assert!(d.holiday && !d.workday && d.provisional);
    // No make-up day is assumed: Saturday 2027-02-20 is rest.
    let sat = cal.day(ymd(2027, 2, 20)).unwrap();
    assert!(!sat.workday && !sat.holiday && sat.provisional);
    // Monday 2027-02-22 is worked (a notice might give it off; none is guessed).
    assert!(cal.day(ymd(2027, 2, 22)).unwrap().workday);
    // 2024 follows the 2013 revision: 初一 to 初三, and 05-01 alone.
    assert!(!cal.day(ymd(2024, 2, 9)).unwrap().holiday);
    assert!(cal.day(ymd(2024, 2, 10)).unwrap().holiday);
    assert!(!cal.day(ymd(2024, 5, 2)).unwrap().holiday);
    // Outside the statutory table the calendar does not know.
    assert_eq!(cal.day(ymd(2013, 10, 1)), None);
    assert_eq!(
        cal.local(at("2101-01-01T12:00:00+08:00")).basis(),
        Basis::Unknown
    );
    assert_eq!(Basis::Unknown.label(), Some("unknown"));
    assert_eq!(Basis::Provisional.label(), Some("provisional"));
    assert_eq!(Basis::Published.label(), None);
}

/// 10 working days from Thursday 2026-02-12 across the Spring Festival:
/// 02-13 (Fri), 02-14 (make-up Sat), the break 02-15..02-23, 02-24..02-27,
/// 02-28 (make-up Sat), 03-02, 03-03, 03-04.
#[test]
fn ten_working_days_across_the_2026_spring_festival_end_on_march_4() {
    let cal = shipped();
    let raised = at("2026-02-12T10:00:00+08:00");
    let end = cal.deadline_after_working_days(raised, 10);
    assert_eq!(cal.format_local(end), "2026-03-04T23:59:59+08:00");
    assert_eq!(end, at("2026-03-04T15:59:59Z"));
    // The day counted from is the raise day in Beijing: 15:30Z on 02-12 is
    // 23:30 there, 16:30Z is already 02-13 (and 02-14 is worked).
    let one = |s| cal.format_local(cal.deadline_after_working_days(at(s), 1));
    assert_eq!(one("2026-02-12T15:30:00Z"), "2026-02-13T23:59:59+08:00");
    assert_eq!(one("2026-02-12T16:30:00Z"), "2026-02-14T23:59:59+08:00");
    // From the last day before the break, the next working day is after it.
    assert_eq!(
        one("2026-02-14T12:00:00+08:00"),
        "2026-02-24T23:59:59+08:00"
    );
    assert_eq!(
        cal.format_local(cal.deadline_after_working_days(raised, 0)),
        "2026-02-12T23:59:59+08:00"
    );
}

#[test]
fn deadlines_past_the_calendar_count_five_working_days_a_week() {
    let cal = shipped();
    // Friday 2100-12-31 plus 11 working days: two weeks and a day.
    let raised = at("2100-12-31T09:00:00+08:00");
    let end = cal.deadline_after_working_days(raised, 11);
    assert_eq!(cal.format_local(end), "2101-01-17T23:59:59+08:00");
    // One day at a time gives the same.
    let mut t = raised;
    for _ in 0..11 {
        t = cal.deadline_after_working_days(t, 1);
    }
    assert_eq!(t, end);
}

#[test]
fn the_time_zone_is_the_declared_one() {
    let (cal, diags) = build(&[("c.yaml", "calendar:\n  time_zone: Europe/Berlin\n")]);
    assert!(diags.is_empty());
    assert_eq!(cal.time_zone(), "Europe/Berlin");
    let l = cal.local(at("2026-07-01T15:30:00Z"));
    assert_eq!(l.hour, 17);
    assert_eq!(
        cal.format_local(at("2026-01-01T00:00:00Z")),
        "2026-01-01T01:00:00+01:00"
    );
    assert_eq!(Calendar::default().time_zone(), DEFAULT_TIME_ZONE);
    assert_eq!(
        format!("{:?}", shipped()),
        "Calendar { time_zone: \"Asia/Shanghai\", published: [2025, 2026], \
         first_day: \"2014-01-01\", last_day: \"2100-12-31\" }"
    );
}

#[test]
fn an_unknown_time_zone_is_an_error_naming_the_file_and_line() {
    let (cal, diags) = build(&[(
        "rules/calendar/calendar.yaml",
        "# the zone\ncalendar:\n  time_zone: Asia/Shangai\n",
    )]);
    assert_eq!(
        diags,
        [
            "error: rules/calendar/calendar.yaml:3: calendar: unknown time zone `Asia/Shangai`: \
          the business time zone is an IANA name such as Asia/Shanghai; did you mean \
          `Asia/Shanghai`?"
        ]
    );
    assert_eq!(cal.time_zone(), "Asia/Shanghai");
}

#[test]
fn mistakes_in_notices_are_errors_and_missing_statutory_days_warnings() {
    let (_, diags) = build(&[
        ("a.yaml", "calendar:\n  time_zone: UTC\n"),
        ("b.yaml", "calendar:\n  time_zone: UTC\n"),
        (
            "2026.yaml",
            "calendar:\n  year: 2026\n  holidays:\n    - {name: X, off: 2026-10-01..2026-10-07, work: [2026-10-09]}\n    - {name: Y, off: 2026-02-30}\n",
        ),
        (
            "2026b.yaml",
            "calendar:\n  year: 2026\n  holidays:\n    - {name: Z, off: 2026-01-01}\n",
        ),
        ("h.yaml", "calendar:\n  holidays:\n    - {name: Z, off: 2026-01-01}\n"),
    ]);
    // In file order.
    let want = [
        "error: 2026.yaml:4: calendar 2026: X: 2026-10-09 is a Friday: a make-up working day is a Saturday or Sunday",
        "error: 2026.yaml:5: calendar 2026: Y: `off`: `2026-02-30` is not a date written YYYY-MM-DD",
        "error: 2026b.yaml:2: calendar: the 2026 notice is already in 2026.yaml: one file per year",
        "error: b.yaml:2: calendar: the time zone is already declared in a.yaml",
        "error: h.yaml:2: calendar: `holidays` need the `year` of the notice they come from",
    ];
    assert_eq!(diags, want);

    let (cal, diags) = build(&[(
        "2027.yaml",
        "calendar:\n  year: 2027\n  holidays:\n    - {name: 元旦, off: 2027-01-01}\n",
    )]);
    assert_eq!(diags.len(), 12, "{diags:?}");
    assert!(diags[0].starts_with(
        "warning: 2027.yaml:2: calendar 2027: the notice gives no day off on 2027-02-05 (春节)"
    ));
    // The notice is the calendar of its year, as written.
    assert!(!cal.day(ymd(2027, 2, 5)).unwrap().holiday);
    assert!(!cal.day(ymd(2027, 2, 5)).unwrap().provisional);
}

/// The shipped notices agree, day by day, with the holiday data of an
/// independent calendar crate (tyme4rs' 法定假日).
#[test]
fn the_shipped_notices_agree_with_the_calendar_crates_holidays() {
    use tyme4rs::tyme::holiday::LegalHoliday;
    let cal = shipped();
    let mut d = ymd(2025, 1, 1);
    while d <= ymd(2026, 12, 31) {
        let day = cal.day(d).unwrap();
        let (y, m, dd) = (d.year() as isize, d.month() as usize, d.day() as usize);
        match LegalHoliday::from_ymd(y, m, dd) {
            Some(h) if h.is_work() => assert!(day.workday && !day.holiday, "{d} is worked"),
            Some(_) => assert!(day.holiday && !day.workday, "{d} is off"),
            None => {
                assert!(!day.holiday, "{d}");
                let weekend = d.weekday().number_from_monday() >= 6;
                assert_eq!(day.workday, !weekend, "{d}");
            }
        }
        d = d.succ_opt().unwrap();
    }
}

#[test]
fn reading_the_calendar_is_decided_at_compile_time() {
    let rules = r#"
event_types:
  trip:
    stream: s
    subject: vehicle_id
    fields:
      vehicle_id: {type: string, required: true}
      km: {type: number}
    derived:
      rest_day: "!occurred_workday"
control_points:
  - {id: A, domain: d, title: t, event_type: trip, when: "occurred_holiday", tiers: [{tier: 1, notify: r}], message: m}
  - {id: B, domain: d, title: t, event_type: trip, when: "rest_day && km > 1", tiers: [{tier: 1, notify: r}], message: m}
  - {id: C, domain: d, title: t, event_type: trip, when: "km > 1", tiers: [{tier: 1, notify: r}, {tier: 2, when: "occurred_holiday"}], message: m}
  - id: D
    domain: d
    title: t
    event_type: trip
    aggregates: {n: {fn: count, where: "!occurred_workday", over: 7d}}
    when: "n > 2"
    tiers: [{tier: 1, notify: r}]
    message: m
  - {id: E, domain: d, title: t, event_type: trip, when: "occurred_weekday >= 6 && km > 1", tiers: [{tier: 1, notify: r}], message: "{occurred_holiday}"}
"#;
    let g = crate::compile(&RuleSources::from_texts([("r.yaml", rules)]))
        .unwrap()
        .graph;
    let reads: Vec<(&str, bool)> = g
        .control_points
        .iter()
        .map(|c| (c.id.as_str(), c.reads_calendar))
        .collect();
    assert_eq!(
        reads,
        [
            ("A", true),
            ("B", true),
            ("C", true),
            ("D", true),
            ("E", false)
        ]
    );
}
