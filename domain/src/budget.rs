//! Budgets: how much SMS may cost per UTC day or month, overall or for one category, the
//! warning levels that raise an alert, and whether reaching the amount stops sending.
//!
//! Intake reserves each message's estimate against every budget it falls under, in the same
//! transaction that accepts it; [`admit`] is the rule it applies, pure so it is tested here.

use serde::{Deserialize, Serialize};

use crate::template::Category;

const DAY: i64 = 86_400_000_000;

/// Warning levels a budget gets unless told otherwise, in percent of its amount.
pub const DEFAULT_WARN_PERCENTS: [u8; 3] = [50, 80, 100];

/// Largest budget amount: $10,000,000 in µ$.
pub const MAX_AMOUNT_MICROS: i64 = 10_000_000_000_000;

/// The stretch of time a budget covers: a UTC day or a UTC calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub const ALL: [Period; 2] = [Period::Day, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The first µs of the period holding `at` (µs since the epoch, UTC).
    pub fn start(self, at: i64) -> i64 {
        let day = at.div_euclid(DAY);
        match self {
            Period::Day => day * DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY
            }
        }
    }

    /// The first µs of the period after the one holding `at`: when a budget resets.
    pub fn next_start(self, at: i64) -> i64 {
        match self {
            Period::Day => self.start(at) + DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days(at.div_euclid(DAY));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY
            }
        }
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            other => Err(format!("{other:?} is not a period: use day or month")),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01: (year, month 1–12, day 1–31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A budget as set, with what its period has spent so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub period: Period,
    /// `None`: every message counts.
    pub category: Option<Category>,
    pub amount_micros: i64,
    /// Percent of the amount at which an alert is raised, ascending.
    pub warn_percents: Vec<u8>,
    /// Refuse a message that would take the period's spend past the amount.
    pub hard_stop: bool,
}

impl Budget {
    /// Whether a message of `category` counts against this budget.
    pub fn covers(&self, category: Option<Category>) -> bool {
        self.category.is_none() || self.category == category
    }

    /// The warning levels `spent` has reached.
    pub fn levels_reached(&self, spent: i64) -> impl Iterator<Item = u8> + '_ {
        self.warn_percents.iter().copied().filter(move |&level| {
            i128::from(spent) * 100 >= i128::from(level) * i128::from(self.amount_micros)
        })
    }

    /// Checks a budget as given by a person or a script: a name for what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.amount_micros <= 0 || self.amount_micros > MAX_AMOUNT_MICROS {
            return Err("the amount must be more than $0 and at most $10,000,000".to_owned());
        }
        if self.warn_percents.iter().any(|&p| p == 0 || p > 100) {
            return Err("each warning level is a percent from 1 to 100".to_owned());
        }
        if self.warn_percents.windows(2).any(|w| w[0] >= w[1]) {
            return Err("warning levels go in ascending order, each once (50,80,100)".to_owned());
        }
        Ok(())
    }
}

/// Reads an amount of dollars as finance writes it (`250`, `99.50`, `$1,200`), exactly, in µ$.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let plain: String = text
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    crate::money::Money::parse(&plain)
        .map(crate::money::Money::micros)
        .map_err(|e| format!("amount {text:?}: {e}; write dollars, such as 250 or 99.50"))
}

/// Reads warning levels as people write them: `50,80` or `50 %, 80 %, 100 %`; sorted, each once.
pub fn parse_warn_percents(text: &str) -> Result<Vec<u8>, String> {
    let mut levels = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = part.trim_end_matches('%').trim();
        match number.parse::<u8>() {
            Ok(p) if (1..=100).contains(&p) => levels.push(p),
            _ => {
                return Err(format!(
                    "{part:?} is not a warning level: write percents from 1 to 100, such as 50,80,100"
                ));
            }
        }
    }
    levels.sort_unstable();
    levels.dedup();
    Ok(levels)
}

/// One message as a budget sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub category: Option<Category>,
    /// The estimate reserved, µ$ (0 when no price is known).
    pub micros: i64,
    /// Sent whatever the hard stops say (emergencies, when the setting exempts them); it
    /// still counts.
    pub exempt: bool,
}

/// What [`admit`] decided: for each charge, `None` when admitted or the first budget whose
/// hard stop refused it; and each budget's spend after the admitted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub refused_by: Vec<Option<Refused>>,
    pub spent: Vec<i64>,
}

/// The budget (its index) that refused a charge, and what it held at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub budget: usize,
    pub spent: i64,
}

/// Admits charges in order against `budgets` (with `spent`, each one's spend so far in its
/// period): a charge that would take any hard-stopped budget it falls under past its amount is
/// refused and reserves nothing; the rest add to every budget they fall under.
pub fn admit(budgets: &[Budget], spent: &[i64], charges: &[Charge]) -> Admission {
    let mut spent = spent.to_vec();
    let refused_by = charges
        .iter()
        .map(|charge| {
            let over = budgets.iter().enumerate().find(|(i, b)| {
                !charge.exempt
                    && b.hard_stop
                    && b.covers(charge.category)
                    && spent[*i].saturating_add(charge.micros) > b.amount_micros
            });
            if let Some((i, _)) = over {
                return Some(Refused {
                    budget: i,
                    spent: spent[i],
                });
            }
            for (i, b) in budgets.iter().enumerate() {
                if b.covers(charge.category) {
                    spent[i] = spent[i].saturating_add(charge.micros);
                }
            }
            None
        })
        .collect();
    Admission { refused_by, spent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(category: Option<Category>, amount: i64, hard_stop: bool) -> Budget {
        Budget {
            period: Period::Day,
            category,
            amount_micros: amount,
            warn_percents: DEFAULT_WARN_PERCENTS.to_vec(),
            hard_stop,
        }
    }

    fn charge(category: Option<Category>, micros: i64) -> Charge {
        Charge {
            category,
            micros,
            exempt: false,
        }
    }

    // 2026-12-01T10:08:44Z
    const AT: i64 = 1_796_119_724_000_000;

    #[test]
    fn periods_start_at_utc_midnight_and_on_the_first() {
        assert_eq!(Period::Day.start(AT), 1_796_083_200_000_000); // 2026-12-01T00:00Z
        assert_eq!(Period::Month.start(AT), 1_796_083_200_000_000);
        assert_eq!(Period::Day.next_start(AT), 1_796_169_600_000_000); // 12-02
        assert_eq!(Period::Month.next_start(AT), 1_798_761_600_000_000); // 2027-01-01
        // 2024-02-29 (a leap day): the month is February, next is March.
        let leap = 1_709_208_000_000_000; // 2024-02-29T12:00Z
        assert_eq!(Period::Month.start(leap), 1_706_745_600_000_000); // 2024-02-01
        assert_eq!(Period::Month.next_start(leap), 1_709_251_200_000_000); // 2024-03-01
        assert_eq!(Period::Day.start(0), 0);
        assert_eq!(Period::Month.start(-1), -31 * DAY); // 1969-12-01
    }

    #[test]
    fn dates_round_trip_for_four_centuries() {
        for day in (-146_097..146_097).step_by(17) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
        }
    }

    #[test]
    fn a_hard_stop_refuses_what_would_pass_the_amount_and_reserves_nothing_for_it() {
        let budgets = [budget(None, 100, true)];
        let a = admit(
            &budgets,
            &[60],
            &[charge(None, 30), charge(None, 20), charge(None, 10)],
        );
        let by = |budget, spent| Some(Refused { budget, spent });
        assert_eq!(a.refused_by, vec![None, by(0, 90), None]);
        assert_eq!(a.spent, vec![100]);
    }

    #[test]
    fn a_budget_without_hard_stop_only_counts() {
        let budgets = [budget(None, 100, false)];
        let a = admit(&budgets, &[90], &[charge(None, 30)]);
        assert_eq!(a.refused_by, vec![None]);
        assert_eq!(a.spent, vec![120]);
    }

    #[test]
    fn category_budgets_see_only_their_category_and_exempt_charges_still_count() {
        let budgets = [
            budget(Some(Category::Shipment), 50, true),
            budget(None, 1_000, true),
        ];
        let exempt = Charge {
            category: Some(Category::Emergency),
            micros: 2_000,
            exempt: true,
        };
        let a = admit(
            &budgets,
            &[0, 0],
            &[
                charge(Some(Category::Shipment), 40),
                charge(Some(Category::Shipment), 40),
                charge(Some(Category::Driver), 40),
                exempt,
                charge(Some(Category::Driver), 1),
            ],
        );
        let by = |budget, spent| Some(Refused { budget, spent });
        assert_eq!(
            a.refused_by,
            vec![None, by(0, 40), None, None, by(1, 2_080)]
        );
        assert_eq!(a.spent, vec![40, 2_080]);
    }

    #[test]
    fn levels_are_reached_at_their_exact_share() {
        let b = budget(None, 1_000, false);
        assert_eq!(b.levels_reached(499).collect::<Vec<_>>(), Vec::<u8>::new());
        assert_eq!(b.levels_reached(500).collect::<Vec<_>>(), vec![50]);
        assert_eq!(
            b.levels_reached(1_000).collect::<Vec<_>>(),
            vec![50, 80, 100]
        );
        let huge = budget(None, MAX_AMOUNT_MICROS, false);
        assert_eq!(huge.levels_reached(i64::MAX).count(), 3);
    }

    #[test]
    fn amounts_read_as_finance_writes_them() {
        assert_eq!(parse_amount("250"), Ok(250_000_000));
        assert_eq!(parse_amount("$1,200.50"), Ok(1_200_500_000));
        assert_eq!(parse_amount(" 0.0083 "), Ok(8_300));
        assert!(parse_amount("ten").is_err());
        assert!(parse_amount("1.0000001").is_err());
    }

    #[test]
    fn warning_levels_read_as_people_write_them() {
        assert_eq!(
            parse_warn_percents("80, 50 %,100%,80"),
            Ok(vec![50, 80, 100])
        );
        assert_eq!(parse_warn_percents(""), Ok(vec![]));
        assert!(parse_warn_percents("0").is_err());
        assert!(parse_warn_percents("101").is_err());
        assert!(parse_warn_percents("half").is_err());
    }

    #[test]
    fn budgets_are_checked() {
        assert!(budget(None, 1, true).validate().is_ok());
        assert!(budget(None, 0, true).validate().is_err());
        assert!(
            budget(None, MAX_AMOUNT_MICROS + 1, true)
                .validate()
                .is_err()
        );
        let mut b = budget(None, 10, true);
        b.warn_percents = vec![80, 50];
        assert!(b.validate().is_err());
    }
}
