//! The statutory public holidays of 《全国年节及纪念日放假办法》, for the
//! years whose State Council notice is not in the rules.
//!
//! Such a year is never guessed: its holidays are the statutory days alone
//! (no bridge days, no make-up working days), and the calendar marks its
//! days provisional. The law fixes the Gregorian holidays; the lunar ones
//! (除夕, 端午, 中秋) and 清明 (a solar term) come from [`LUNAR`], a table
//! derived from a maintained calendar crate (tyme4rs) and checked against
//! it by the tests below.
//!
//! | revision | in force | 元旦 | 春节 | 清明 | 劳动节 | 端午 | 中秋 | 国庆 |
//! |---|---|---|---|---|---|---|---|---|
//! | 2013 | 2014–2024 | 1-1 | 正月初一–初三 | 1 day | 5-1 | 1 day | 1 day | 10-1–10-3 |
//! | 2024 | 2025– | 1-1 | 除夕–正月初三 | 1 day | 5-1–5-2 | 1 day | 1 day | 10-1–10-3 |

use chrono::{Days, NaiveDate};

/// The first and last year [`LUNAR`] covers.
pub const FIRST_YEAR: i32 = 2014;
pub const LAST_YEAR: i32 = 2100;

/// Per year, the Gregorian (month, day) of 除夕 (the eve of the lunar new
/// year), 清明, 端午 (fifth day of the fifth lunar month) and 中秋 (fifteenth
/// of the eighth), in Beijing time.
const LUNAR: [(i32, [(u32, u32); 4]); (LAST_YEAR - FIRST_YEAR + 1) as usize] = [
    (2014, [(1, 30), (4, 5), (6, 2), (9, 8)]),
    (2015, [(2, 18), (4, 5), (6, 20), (9, 27)]),
    (2016, [(2, 7), (4, 4), (6, 9), (9, 15)]),
    (2017, [(1, 27), (4, 4), (5, 30), (10, 4)]),
    (2018, [(2, 15), (4, 5), (6, 18), (9, 24)]),
    (2019, [(2, 4), (4, 5), (6, 7), (9, 13)]),
    (2020, [(1, 24), (4, 4), (6, 25), (10, 1)]),
    (2021, [(2, 11), (4, 4), (6, 14), (9, 21)]),
    (2022, [(1, 31), (4, 5), (6, 3), (9, 10)]),
    (2023, [(1, 21), (4, 5), (6, 22), (9, 29)]),
    (2024, [(2, 9), (4, 4), (6, 10), (9, 17)]),
    (2025, [(1, 28), (4, 4), (5, 31), (10, 6)]),
    (2026, [(2, 16), (4, 5), (6, 19), (9, 25)]),
    (2027, [(2, 5), (4, 5), (6, 9), (9, 15)]),
    (2028, [(1, 25), (4, 4), (5, 28), (10, 3)]),
    (2029, [(2, 12), (4, 4), (6, 16), (9, 22)]),
    (2030, [(2, 2), (4, 5), (6, 5), (9, 12)]),
    (2031, [(1, 22), (4, 5), (6, 24), (10, 1)]),
    (2032, [(2, 10), (4, 4), (6, 12), (9, 19)]),
    (2033, [(1, 30), (4, 4), (6, 1), (9, 8)]),
    (2034, [(2, 18), (4, 5), (6, 20), (9, 27)]),
    (2035, [(2, 7), (4, 5), (6, 10), (9, 16)]),
    (2036, [(1, 27), (4, 4), (5, 30), (10, 4)]),
    (2037, [(2, 14), (4, 4), (6, 18), (9, 24)]),
    (2038, [(2, 3), (4, 5), (6, 7), (9, 13)]),
    (2039, [(1, 23), (4, 5), (5, 27), (10, 2)]),
    (2040, [(2, 11), (4, 4), (6, 14), (9, 20)]),
    (2041, [(1, 31), (4, 4), (6, 3), (9, 10)]),
    (2042, [(1, 21), (4, 4), (6, 22), (9, 28)]),
    (2043, [(2, 9), (4, 5), (6, 11), (9, 17)]),
    (2044, [(1, 29), (4, 4), (5, 31), (10, 5)]),
    (2045, [(2, 16), (4, 4), (6, 19), (9, 25)]),
    (2046, [(2, 5), (4, 4), (6, 8), (9, 15)]),
    (2047, [(1, 25), (4, 5), (5, 29), (10, 4)]),
    (2048, [(2, 13), (4, 4), (6, 15), (9, 22)]),
    (2049, [(2, 1), (4, 4), (6, 4), (9, 11)]),
    (2050, [(1, 22), (4, 4), (6, 23), (9, 30)]),
    (2051, [(2, 10), (4, 5), (6, 13), (9, 19)]),
    (2052, [(1, 31), (4, 4), (6, 1), (9, 7)]),
    (2053, [(2, 18), (4, 4), (6, 20), (9, 26)]),
    (2054, [(2, 7), (4, 4), (6, 10), (9, 16)]),
    (2055, [(1, 27), (4, 5), (5, 30), (10, 5)]),
    (2056, [(2, 14), (4, 4), (6, 17), (9, 24)]),
    (2057, [(2, 3), (4, 4), (6, 6), (9, 13)]),
    (2058, [(1, 23), (4, 4), (6, 25), (10, 2)]),
    (2059, [(2, 11), (4, 5), (6, 14), (9, 21)]),
    (2060, [(2, 1), (4, 4), (6, 3), (9, 9)]),
    (2061, [(1, 20), (4, 4), (6, 22), (9, 28)]),
    (2062, [(2, 8), (4, 4), (6, 11), (9, 17)]),
    (2063, [(1, 28), (4, 5), (6, 1), (10, 6)]),
    (2064, [(2, 16), (4, 4), (6, 19), (9, 25)]),
    (2065, [(2, 4), (4, 4), (6, 8), (9, 15)]),
    (2066, [(1, 25), (4, 4), (5, 28), (10, 3)]),
    (2067, [(2, 13), (4, 5), (6, 16), (9, 23)]),
    (2068, [(2, 2), (4, 4), (6, 4), (9, 11)]),
    (2069, [(1, 22), (4, 4), (6, 23), (9, 29)]),
    (2070, [(2, 10), (4, 4), (6, 13), (9, 19)]),
    (2071, [(1, 30), (4, 5), (6, 2), (9, 8)]),
    (2072, [(2, 18), (4, 4), (6, 20), (9, 26)]),
    (2073, [(2, 6), (4, 4), (6, 10), (9, 16)]),
    (2074, [(1, 26), (4, 4), (5, 30), (10, 5)]),
    (2075, [(2, 14), (4, 4), (6, 17), (9, 24)]),
    (2076, [(2, 4), (4, 4), (6, 6), (9, 12)]),
    (2077, [(1, 23), (4, 4), (6, 24), (10, 1)]),
    (2078, [(2, 11), (4, 4), (6, 14), (9, 20)]),
    (2079, [(2, 1), (4, 4), (6, 4), (9, 10)]),
    (2080, [(1, 21), (4, 4), (6, 22), (9, 28)]),
    (2081, [(2, 8), (4, 4), (6, 11), (9, 17)]),
    (2082, [(1, 28), (4, 4), (6, 1), (10, 6)]),
    (2083, [(2, 16), (4, 4), (6, 19), (9, 26)]),
    (2084, [(2, 5), (4, 4), (6, 7), (9, 14)]),
    (2085, [(1, 25), (4, 4), (5, 27), (10, 3)]),
    (2086, [(2, 13), (4, 4), (6, 15), (9, 22)]),
    (2087, [(2, 2), (4, 4), (6, 5), (9, 11)]),
    (2088, [(1, 23), (4, 4), (6, 23), (9, 29)]),
    (2089, [(2, 9), (4, 4), (6, 13), (9, 18)]),
    (2090, [(1, 29), (4, 4), (6, 2), (9, 8)]),
    (2091, [(2, 17), (4, 4), (6, 21), (9, 27)]),
    (2092, [(2, 6), (4, 4), (6, 9), (9, 16)]),
    (2093, [(1, 26), (4, 4), (5, 29), (10, 5)]),
    (2094, [(2, 14), (4, 4), (6, 17), (9, 24)]),
    (2095, [(2, 4), (4, 4), (6, 6), (9, 13)]),
    (2096, [(1, 24), (4, 4), (6, 24), (9, 30)]),
    (2097, [(2, 11), (4, 4), (6, 14), (9, 20)]),
    (2098, [(1, 31), (4, 4), (6, 4), (9, 9)]),
    (2099, [(1, 20), (4, 4), (6, 23), (9, 29)]),
    (2100, [(2, 8), (4, 5), (6, 12), (9, 18)]),
];

/// The statutory holidays of `year` (sorted), or `None` for a year outside
/// [`FIRST_YEAR`]`..=`[`LAST_YEAR`].
pub fn holidays(year: i32) -> Option<Vec<(NaiveDate, &'static str)>> {
    let i = usize::try_from(year.checked_sub(FIRST_YEAR)?).ok()?;
    let (y, [eve, qingming, duanwu, zhongqiu]) = *LUNAR.get(i)?;
    debug_assert_eq!(y, year);
    let date = |(m, d): (u32, u32)| NaiveDate::from_ymd_opt(year, m, d);
    let revised_2024 = year >= 2025;
    let mut out = Vec::new();
    let mut add = |first: NaiveDate, n: u64, name: &'static str| {
        for k in 0..n {
            if let Some(d) = first.checked_add_days(Days::new(k)) {
                out.push((d, name));
            }
        }
    };
    add(date((1, 1))?, 1, "元旦");
    let eve = date(eve)?;
    if revised_2024 {
        add(eve, 4, "春节");
    } else {
        add(eve.checked_add_days(Days::new(1))?, 3, "春节");
    }
    add(date(qingming)?, 1, "清明节");
    add(date((5, 1))?, if revised_2024 { 2 } else { 1 }, "劳动节");
    add(date(duanwu)?, 1, "端午节");
    add(date(zhongqiu)?, 1, "中秋节");
    add(date((10, 1))?, 3, "国庆节");
    out.sort();
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Datelike;
    use tyme4rs::tyme::lunar::LunarDay;
    use tyme4rs::tyme::solar::{SolarDay, SolarTerm};
    use tyme4rs::tyme::{Culture, Tyme};

    fn md(d: SolarDay) -> (u32, u32) {
        (d.get_month() as u32, d.get_day() as u32)
    }

    /// Every row of the table is what the calendar crate computes: 除夕 the
    /// day before 正月初一, 清明 the solar term (index 7 from 冬至), 端午
    /// 五月初五, 中秋 八月十五.
    #[test]
    fn the_lunar_table_agrees_with_the_calendar_crate() {
        for (year, [eve, qingming, duanwu, zhongqiu]) in LUNAR {
            let y = year as isize;
            let spring = LunarDay::from_ymd(y, 1, 1).get_solar_day();
            assert_eq!(spring.get_year(), y, "{year}");
            assert_eq!(eve, md(spring.next(-1)), "{year} 除夕");
            let term = SolarTerm::from_index(y, 7);
            assert_eq!(term.get_name(), "清明");
            let qm = term.get_julian_day().get_solar_day();
            assert_eq!(qm.get_year(), y, "{year}");
            assert_eq!(qingming, md(qm), "{year} 清明");
            assert_eq!(
                duanwu,
                md(LunarDay::from_ymd(y, 5, 5).get_solar_day()),
                "{year} 端午"
            );
            assert_eq!(
                zhongqiu,
                md(LunarDay::from_ymd(y, 8, 15).get_solar_day()),
                "{year} 中秋"
            );
        }
        assert_eq!(LUNAR[0].0, FIRST_YEAR);
        assert_eq!(LUNAR[LUNAR.len() - 1].0, LAST_YEAR);
    }

    /// Eleven days a year under the 2013 revision, thirteen under the 2024
    /// one; 中秋 may fall in the National Day holiday (2028-10-03), where
    /// the day is a holiday once.
    #[test]
    fn the_2024_revision_gives_thirteen_days_from_2025_and_2013_eleven_before() {
        assert_eq!(holidays(2024).unwrap().len(), 11);
        for year in 2025..=2035 {
            let days = holidays(year).unwrap();
            assert_eq!(days.len(), 13, "{year}: {days:?}");
            assert!(days.iter().all(|(d, _)| d.year() == year));
        }
        let mut y2028: Vec<NaiveDate> = holidays(2028).unwrap().iter().map(|d| d.0).collect();
        y2028.dedup();
        assert_eq!(y2028.len(), 12);
        assert!(holidays(FIRST_YEAR - 1).is_none());
        assert!(holidays(LAST_YEAR + 1).is_none());
    }

    /// 2027, computed: 春节 from 除夕 2027-02-05 through 初三 02-08, 清明
    /// 04-05, 端午 06-09, 中秋 09-15.
    #[test]
    fn twenty_twenty_seven() {
        let days: Vec<String> = holidays(2027)
            .unwrap()
            .iter()
            .map(|(d, n)| format!("{} {n}", d.format("%m-%d")))
            .collect();
        assert_eq!(
            days,
            [
                "01-01 元旦",
                "02-05 春节",
                "02-06 春节",
                "02-07 春节",
                "02-08 春节",
                "04-05 清明节",
                "05-01 劳动节",
                "05-02 劳动节",
                "06-09 端午节",
                "09-15 中秋节",
                "10-01 国庆节",
                "10-02 国庆节",
                "10-03 国庆节",
            ]
        );
    }
}
