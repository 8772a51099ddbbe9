//! Rate-limit arithmetic for the sending worker. The state lives in a database row (one `tat` per
//! limit, updated with one `UPDATE … RETURNING`), so everything here is a pure function of the
//! stored state, the current time and the request's cost.
//!
//! Time is an integer in whatever unit the caller picks (smsdesk: microseconds since the Unix
//! epoch, `i64`); windows are lengths in the same unit. No floating point anywhere: emission
//! intervals that do not divide the window (3 per second in microseconds) are kept exact as
//! fractions (see [`Tat`]).
//!
//! # [`Rule`]: "at most `limit` units in any window of length `window`", with GCRA
//!
//! A request costs some units (messages or segments). The contract, property-tested exactly:
//! **for any sequence of requests at non-decreasing times, the units admitted in any half-open
//! window `[t, t + window)` never exceed `limit`**, and a denied request told to retry at
//! `retry_at` is admitted at `retry_at` (if nothing else was admitted in between) and would not be
//! one time unit earlier.
//!
//! One stored number cannot remember *when* inside the window the units went out, so a GCRA that
//! honours that contract must trade burst against sustained rate. With `burst` = `B` (the largest
//! cost ever admitted, and the number admitted at once from idle), the rule runs a GCRA with
//! emission interval `T = window / (limit + 1 − B)` and tolerance `B·T`:
//! * from idle, `B` units go at once, then one more every `T`;
//! * sustained throughput is `limit + 1 − B` units per window;
//! * `B = 1` gives exactly `limit` per window, evenly spaced, one unit at a time;
//!   `B = limit` gives the whole `limit` at once, then `1` per window.
//!
//! Why not the textbook "burst `N`, then one every `window/N`": after `N` units at `t = 0` the next
//! would go at `window/N`, putting `N + 1` units in `[0, window)`. That GCRA bounds any window to
//! `2N − 1` units, not `N`. The general bound, for any half-open span `Δ`, is
//! `admitted · window < Δ · (limit + 1 − B) + B · window` (also tested); `Δ = window` gives
//! `admitted < limit + 1`.
//!
//! Proof sketch, with `P = limit + 1 − B`, `T = window / P`: let units `C` be admitted at whole
//! times `t₁ ≤ … ≤ tₖ` inside a span of length `Δ`, so `tₖ − t₁ ≤ Δ − 1`. Each admission adds
//! `cost · T` to a tat that starts no earlier than `t₁ − (P − 1)/P`, so the last tat is at least
//! `t₁ − (P − 1)/P + C·T`; admission requires it to be at most `tₖ + B·T`. Hence
//! `C·T ≤ Δ − 1 + (P − 1)/P + B·T < Δ + B·T`.
//!
//! A request costing more than `burst` can never be admitted: [`Decision::DenyForever`] says so
//! instead of handing out a retry time.
//!
//! # [`WindowLimit`]: exact sliding-window count
//!
//! For per-recipient hourly/daily caps the past send times are in the messages table anyway, so the
//! exact sliding window is cheap: count sends in `(now − window, …]`, and if at the limit the next
//! send is allowed when the oldest one that matters leaves the window.

use core::cmp::max;

/// Why a rule cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a rate limit must allow at least one unit")]
    ZeroLimit,
    #[error("a rate limit window must be longer than zero")]
    ZeroWindow,
    #[error("the burst must be between 1 and the limit ({limit}), got {burst}")]
    BurstOutOfRange { burst: u32, limit: u32 },
    /// Keeps all arithmetic far from `i64` overflow (2^62 µs is about 146,000 years).
    #[error("burst × window must be below 2^62 time units")]
    WindowTooLong,
}

/// "At most `limit` units in any window of length `window`", admitting up to `burst` units at once.
/// See the [module documentation](self) for the exact guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    limit: u32,
    window: u64,
    burst: u32,
}

/// The stored GCRA state: the theoretical arrival time, `at + frac / per` time units.
///
/// Kept as a fraction so that an emission interval like 1,000,000 µs / 3 stays exact; `per` is
/// the rule's sustained units per window, stored so that a state written under another rule is
/// still read correctly (rounded up, never down, to the new rule's fraction). Store the three
/// parts ([`Tat::at`], [`Tat::frac`], [`Tat::per`]) as integer columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tat {
    at: i64,
    frac: u32,
    per: u32,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it, and store `new_tat`.
    Allow { new_tat: Tat },
    /// Not now: the same request is admitted at `retry_at` (`wait` after `now`) if nothing else is
    /// admitted meanwhile. The state is unchanged.
    Deny { retry_at: i64, wait: u64 },
    /// Never: the request costs more than the rule's burst, so no amount of waiting helps
    /// (split the message, or raise the burst).
    DenyForever { cost: u32, max_cost: u32 },
}

impl Rule {
    /// A rule admitting at most `limit` units in any window of `window` time units, `burst` of
    /// them at once (`1 ≤ burst ≤ limit`).
    pub fn new(limit: u32, window: u64, burst: u32) -> Result<Self, RuleError> {
        if limit == 0 {
            return Err(RuleError::ZeroLimit);
        }
        if window == 0 {
            return Err(RuleError::ZeroWindow);
        }
        if burst == 0 || burst > limit {
            return Err(RuleError::BurstOutOfRange { burst, limit });
        }
        if u128::from(burst) * u128::from(window) >= 1 << 62 {
            return Err(RuleError::WindowTooLong);
        }
        Ok(Self {
            limit,
            window,
            burst,
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    /// The largest cost ever admitted, and how many units go at once from idle.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Units admitted per window when requests never stop: `limit + 1 − burst`.
    pub fn sustained_per_window(&self) -> u32 {
        self.limit - self.burst + 1
    }

    /// Decides a request costing `cost` units at time `now`, given the stored state (`None` for a
    /// limit never used). `now` is expected within ±2^62 time units.
    ///
    /// Arithmetic is on time scaled by `per = sustained_per_window()`, where one unit costs exactly
    /// `window` and the tolerance is exactly `burst · window`: no rounding anywhere.
    pub fn check(&self, state: Option<Tat>, now: i64, cost: u32) -> Decision {
        if cost > self.burst {
            return Decision::DenyForever {
                cost,
                max_cost: self.burst,
            };
        }
        let per = self.sustained_per_window();
        let per_i = i128::from(per);
        let window = i128::from(self.window);
        let tolerance = i128::from(self.burst) * window;
        let now_scaled = i128::from(now) * per_i;
        // Times are whole units, so a request at `now` may use a tat up to `(per − 1) / per` of a
        // unit in the past: no window of whole-unit times sees more than `limit` (see the module
        // bound), and back-to-back sending keeps exactly `per` units per window instead of losing
        // the rounding at every step.
        let earliest = now_scaled - (per_i - 1);
        let base = match state {
            Some(tat) => max(tat.scaled(per), earliest),
            None => earliest,
        };
        let new_scaled = base + i128::from(cost) * window;
        if new_scaled - now_scaled <= tolerance {
            return Decision::Allow {
                new_tat: Tat::from_scaled(new_scaled, per),
            };
        }
        // Denied, so base is the stored tat (cost ≤ burst passes from `earliest`). The earliest
        // t with tat + cost·window − t·per ≤ burst·window (later, `earliest` takes over and passes):
        let retry_at = saturate(ceil_div(new_scaled - tolerance, per_i));
        Decision::Deny {
            retry_at,
            wait: retry_at.abs_diff(now),
        }
    }
}

impl Tat {
    /// Rebuilds a stored state. `None` when `per` is zero (not a state this module wrote). A
    /// `frac` of `per` or more is carried into `at`.
    pub fn from_parts(at: i64, frac: u32, per: u32) -> Option<Self> {
        if per == 0 {
            return None;
        }
        Some(Self {
            at: at.saturating_add(i64::from(frac / per)),
            frac: frac % per,
            per,
        })
    }

    /// Whole time units.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// Numerator of the fractional part, `0 ≤ frac < per`.
    pub fn frac(&self) -> u32 {
        self.frac
    }

    /// Denominator of the fractional part.
    pub fn per(&self) -> u32 {
        self.per
    }

    /// The earliest whole time unit at or after the tat.
    pub fn ceil(&self) -> i64 {
        if self.frac == 0 {
            self.at
        } else {
            self.at.saturating_add(1)
        }
    }

    /// `self · per`, rounding up when the state was written with another denominator.
    fn scaled(&self, per: u32) -> i128 {
        let whole = i128::from(self.at) * i128::from(per);
        if self.per == per {
            whole + i128::from(self.frac)
        } else {
            whole
                + ceil_div(
                    i128::from(self.frac) * i128::from(per),
                    i128::from(self.per),
                )
        }
    }

    fn from_scaled(scaled: i128, per: u32) -> Self {
        let per_i = i128::from(per);
        Self {
            at: saturate(scaled.div_euclid(per_i)),
            // The remainder is below `per`, a u32.
            frac: u32::try_from(scaled.rem_euclid(per_i)).unwrap_or(u32::MAX),
            per,
        }
    }
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// "At most `limit` sends in any window of length `window`", counted exactly from past send times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    limit: u32,
    window: u64,
}

/// Where a recipient stands against a [`WindowLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStatus {
    /// Sends that still count: those after `now − window` (later ones, from a clock running ahead,
    /// count too).
    pub in_window: u32,
    /// When the next send is allowed: `now` if it is allowed now.
    pub next_allowed_at: i64,
}

impl WindowStatus {
    pub fn allowed_at(&self, now: i64) -> bool {
        self.next_allowed_at <= now
    }
}

impl WindowLimit {
    pub fn new(limit: u32, window: u64) -> Result<Self, RuleError> {
        if limit == 0 {
            return Err(RuleError::ZeroLimit);
        }
        if window == 0 {
            return Err(RuleError::ZeroWindow);
        }
        if window >= 1 << 62 {
            return Err(RuleError::WindowTooLong);
        }
        Ok(Self { limit, window })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    /// Counts `sent_at` (any order) in the window ending at `now` and says when one more send is
    /// allowed. A send at `t` stops counting at `t + window`.
    pub fn check(&self, sent_at: &[i64], now: i64) -> WindowStatus {
        let window = i128::from(self.window);
        let counts = |t: i64| i128::from(t) > i128::from(now) - window;
        let in_window = sent_at.iter().filter(|&&t| counts(t)).count();
        let limit = self.limit as usize;
        let next_allowed_at = if in_window < limit {
            now
        } else {
            // Allowed once all but `limit − 1` of them have left: when the k-th oldest leaves.
            let mut recent: Vec<i64> = sent_at.iter().copied().filter(|&t| counts(t)).collect();
            let k = in_window - limit;
            let (_, kth, _) = recent.select_nth_unstable(k);
            saturate(i128::from(*kth) + window)
        };
        WindowStatus {
            in_window: u32::try_from(in_window).unwrap_or(u32::MAX),
            next_allowed_at,
        }
    }
}

/// "At most `limit` units in any window of length `window`", counted exactly from past
/// `(time, units)` entries: the per-sender limit in segments per second, where one message costs
/// several units.
///
/// A request costing more than `limit` can never fit one window (a 3-segment message on a sender
/// allowed 1 segment a second): it is admitted when the window is empty and logged as
/// [`WeightedWindow::chunks`], `limit` units per window, one window after another, the way Twilio
/// spreads its segments; later requests wait for those windows too. So no window ever holds more
/// than `limit` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedWindow {
    limit: u32,
    window: u64,
}

impl WeightedWindow {
    pub fn new(limit: u32, window: u64) -> Result<Self, RuleError> {
        if limit == 0 {
            return Err(RuleError::ZeroLimit);
        }
        if window == 0 {
            return Err(RuleError::ZeroWindow);
        }
        if window >= 1 << 62 {
            return Err(RuleError::WindowTooLong);
        }
        Ok(Self { limit, window })
    }

    /// When a request costing `cost` may go, given the log (any order; entries after
    /// `now − window` count, later ones too): `now` if it may go now.
    pub fn next_allowed_at(&self, log: &[(i64, u32)], now: i64, cost: u32) -> i64 {
        let window = i128::from(self.window);
        let mut recent: Vec<(i64, u32)> = log
            .iter()
            .copied()
            .filter(|&(t, _)| i128::from(t) > i128::from(now) - window)
            .collect();
        recent.sort_unstable();
        let first = u64::from(cost.min(self.limit));
        let mut used: u64 = recent.iter().map(|&(_, u)| u64::from(u)).sum();
        let limit = u64::from(self.limit);
        if used + first <= limit {
            return now;
        }
        for (t, units) in recent {
            used -= u64::from(units);
            if used + first <= limit {
                return saturate(i128::from(t) + window).max(now);
            }
        }
        // Not reached: with every entry gone, `first ≤ limit` fits.
        now
    }

    /// The entries to log for a request admitted at `at`: `limit` units per window until `cost`
    /// is used up.
    pub fn chunks(&self, at: i64, cost: u32) -> Vec<(i64, u32)> {
        let mut out = Vec::new();
        let mut left = cost.max(1);
        let mut t = at;
        while left > 0 {
            let units = left.min(self.limit);
            out.push((t, units));
            left -= units;
            t = saturate(i128::from(t) + i128::from(self.window));
        }
        out
    }
}

fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator.div_euclid(denominator);
    if numerator.rem_euclid(denominator) == 0 {
        quotient
    } else {
        quotient + 1
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weighted_window_admits_up_to_the_limit_then_waits_for_the_oldest() {
        let w = WeightedWindow::new(3, 1_000).expect("valid");
        let log = [(0, 1), (100, 1)];
        assert_eq!(w.next_allowed_at(&log, 200, 1), 200);
        assert_eq!(
            w.next_allowed_at(&log, 200, 2),
            1_000,
            "when the entry at 0 leaves"
        );
        assert_eq!(w.next_allowed_at(&log, 1_000, 2), 1_000);
        assert_eq!(w.next_allowed_at(&[], 5, 3), 5);
    }

    #[test]
    fn weighted_window_spreads_a_request_bigger_than_the_limit() {
        let w = WeightedWindow::new(1, 1_000).expect("valid");
        assert_eq!(w.next_allowed_at(&[], 0, 3), 0);
        let log = w.chunks(0, 3);
        assert_eq!(log, [(0, 1), (1_000, 1), (2_000, 1)]);
        assert_eq!(
            w.next_allowed_at(&log, 1, 1),
            3_000,
            "after the third second"
        );
    }

    proptest! {
        #[test]
        fn weighted_window_never_puts_more_than_the_limit_in_a_window(
            limit in 1u32..6,
            requests in proptest::collection::vec((0i64..400, 1u32..8), 1..40),
        ) {
            let window = 100u64;
            let w = WeightedWindow::new(limit, window).expect("valid");
            let mut log: Vec<(i64, u32)> = Vec::new();
            let mut now = 0i64;
            for (gap, cost) in requests {
                now += gap;
                let at = w.next_allowed_at(&log, now, cost);
                log.extend(w.chunks(at, cost));
                now = now.max(at);
            }
            for &(start, _) in &log {
                let inside: u32 = log
                    .iter()
                    .filter(|&&(t, _)| t >= start && t < start + window as i64)
                    .map(|&(_, u)| u)
                    .sum();
                prop_assert!(inside <= limit, "{inside} units in [{start}, +{window})");
            }
        }
    }

    fn rule(limit: u32, window: u64, burst: u32) -> Rule {
        Rule::new(limit, window, burst).expect("valid rule")
    }

    /// Runs requests `(time, cost)` through `rule`, returning the admitted ones.
    fn run(rule: &Rule, requests: &[(i64, u32)]) -> Vec<(i64, u32)> {
        let mut state = None;
        let mut admitted = Vec::new();
        for &(now, cost) in requests {
            if let Decision::Allow { new_tat } = rule.check(state, now, cost) {
                state = Some(new_tat);
                admitted.push((now, cost));
            }
        }
        admitted
    }

    /// Sends at back-to-back retry times, from `start`, until `count` units are admitted.
    fn greedy_times(rule: &Rule, start: i64, count: usize) -> Vec<i64> {
        let mut state = None;
        let mut now = start;
        let mut times = Vec::new();
        while times.len() < count {
            match rule.check(state, now, 1) {
                Decision::Allow { new_tat } => {
                    state = Some(new_tat);
                    times.push(now);
                }
                Decision::Deny { retry_at, .. } => now = retry_at,
                Decision::DenyForever { .. } => unreachable!("cost 1 fits any burst"),
            }
        }
        times
    }

    /// The largest total cost in any half-open window `[t, t + span)`.
    fn max_in_any_window(admitted: &[(i64, u32)], span: u64) -> u64 {
        // A heaviest window can always be slid right until it starts at an admitted time.
        admitted
            .iter()
            .map(|&(start, _)| {
                admitted
                    .iter()
                    .filter(|&&(t, _)| {
                        t >= start && i128::from(t) < i128::from(start) + i128::from(span)
                    })
                    .map(|&(_, c)| u64::from(c))
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn rule_rejects() {
        assert_eq!(Rule::new(0, 10, 1), Err(RuleError::ZeroLimit));
        assert_eq!(Rule::new(1, 0, 1), Err(RuleError::ZeroWindow));
        assert_eq!(
            Rule::new(3, 10, 0),
            Err(RuleError::BurstOutOfRange { burst: 0, limit: 3 })
        );
        assert_eq!(
            Rule::new(3, 10, 4),
            Err(RuleError::BurstOutOfRange { burst: 4, limit: 3 })
        );
        assert_eq!(Rule::new(2, 1 << 61, 2), Err(RuleError::WindowTooLong));
        assert!(Rule::new(2, (1 << 61) - 1, 2).is_ok());
        assert_eq!(WindowLimit::new(0, 5), Err(RuleError::ZeroLimit));
        assert_eq!(WindowLimit::new(5, 0), Err(RuleError::ZeroWindow));
    }

    #[test]
    fn burst_one_spaces_units_exactly_when_the_window_does_not_divide() {
        // 3 per 1,000: one every 333⅓, and exactly 3 in every 1,000 (no drift from rounding).
        let r = rule(3, 1_000, 1);
        assert_eq!(
            greedy_times(&r, 0, 10),
            [0, 333, 666, 1_000, 1_333, 1_666, 2_000, 2_333, 2_666, 3_000]
        );
    }

    #[test]
    fn full_burst_then_one_per_window() {
        let r = rule(3, 1_000, 3);
        assert_eq!(greedy_times(&r, 0, 6), [0, 0, 0, 1_000, 2_000, 3_000]);
    }

    #[test]
    fn partial_burst_then_sustained_rate() {
        // 10 per 10 s, bursts of 4: sustained 7 per 10 s, one every 1,428,571 3/7 µs.
        let r = rule(10, 10_000_000, 4);
        assert_eq!(r.sustained_per_window(), 7);
        let times = greedy_times(&r, 5, 12);
        assert_eq!(
            times,
            [
                5, 5, 5, 5, 1_428_576, 2_857_147, 4_285_719, 5_714_290, 7_142_862, 8_571_433,
                10_000_005, 11_428_576
            ]
        );
        // The window [5, 10_000_005) holds exactly the limit; the next unit is just outside it.
        let admitted: Vec<(i64, u32)> = times.iter().map(|&t| (t, 1)).collect();
        assert_eq!(max_in_any_window(&admitted, 10_000_000), 10);
    }

    #[test]
    fn retry_at_is_exact() {
        let r = rule(3, 1_000, 1);
        let Decision::Allow { new_tat } = r.check(None, 0, 1) else {
            panic!("first request is allowed")
        };
        // Started ⅔ of a unit early (the first request may use that), so the tat is 332⅔.
        assert_eq!((new_tat.at(), new_tat.frac(), new_tat.per()), (332, 2, 3));
        assert_eq!(new_tat.ceil(), 333);
        assert_eq!(
            r.check(Some(new_tat), 100, 1),
            Decision::Deny {
                retry_at: 333,
                wait: 233
            }
        );
        assert!(!r.check(Some(new_tat), 332, 1).is_allowed());
        assert!(r.check(Some(new_tat), 333, 1).is_allowed());
    }

    #[test]
    fn cost_above_burst_is_denied_forever() {
        let r = rule(10, 1_000, 4);
        assert_eq!(
            r.check(None, 0, 5),
            Decision::DenyForever {
                cost: 5,
                max_cost: 4
            }
        );
        assert!(r.check(None, 0, 4).is_allowed());
    }

    #[test]
    fn cost_zero_is_allowed_and_changes_nothing_when_idle() {
        let r = rule(2, 100, 2);
        let Decision::Allow { new_tat } = r.check(None, 50, 0) else {
            panic!("allowed")
        };
        assert_eq!(new_tat, Tat::from_parts(50, 0, 1).expect("valid"));
    }

    #[test]
    fn an_old_state_does_not_bank_credit() {
        let r = rule(2, 100, 2);
        let old = Tat::from_parts(-1_000, 0, 1).expect("valid");
        assert_eq!(run(&r, &[(0, 2), (0, 1)]), [(0, 2)]);
        let Decision::Allow { new_tat } = r.check(Some(old), 0, 2) else {
            panic!("allowed")
        };
        assert!(!r.check(Some(new_tat), 0, 1).is_allowed());
    }

    #[test]
    fn textbook_gcra_would_break_the_window_but_this_rule_does_not() {
        // With burst N and one every W/N, 4 units at 0 and one at 250 would be 5 in [0, 1000).
        let r = rule(4, 1_000, 4);
        let admitted = run(&r, &[(0, 4), (250, 1), (999, 1), (1_000, 1)]);
        assert_eq!(admitted, [(0, 4), (1_000, 1)]);
    }

    #[test]
    fn state_from_another_rule_is_rounded_up() {
        // Written with per = 3 (at 333⅓); read by a rule with per = 2: 333½ ≥ 333⅓.
        let tat = Tat::from_parts(333, 1, 3).expect("valid");
        assert_eq!(tat.scaled(2), 667);
        assert_eq!(tat.scaled(3), 1_000);
        assert_eq!(Tat::from_parts(10, 7, 3), Tat::from_parts(12, 1, 3));
        assert_eq!(Tat::from_parts(10, 0, 0), None);
    }

    #[test]
    fn negative_times_work() {
        let r = rule(3, 1_000, 1);
        assert_eq!(greedy_times(&r, -1_000, 4), [-1_000, -667, -334, 0]);
    }

    #[test]
    fn window_limit_counts_and_finds_the_next_slot() {
        let w = WindowLimit::new(3, 100).expect("valid");
        let sent = [250, 10, 120, 199, 201];
        // At 220 the window is (120, 220]: 199, 201 and 250 (ahead of the clock) count.
        assert_eq!(
            w.check(&sent, 220),
            WindowStatus {
                in_window: 3,
                next_allowed_at: 299
            }
        );
        assert_eq!(
            w.check(&sent, 219),
            WindowStatus {
                in_window: 4,
                next_allowed_at: 299
            }
        );
        assert_eq!(
            w.check(&[], 5),
            WindowStatus {
                in_window: 0,
                next_allowed_at: 5
            }
        );
        assert!(w.check(&sent, 400).allowed_at(400));
    }

    fn rule_strategy() -> impl Strategy<Value = Rule> {
        (1u32..=12, 1u64..=500)
            .prop_flat_map(|(limit, window)| (Just(limit), Just(window), 1..=limit))
            .prop_map(|(limit, window, burst)| rule(limit, window, burst))
    }

    /// Non-decreasing times from gaps, with costs up to `max_cost`.
    fn requests(max_gap: i64, max_cost: u32) -> impl Strategy<Value = Vec<(i64, u32)>> {
        (
            -10_000i64..10_000,
            proptest::collection::vec((0..=max_gap, 0..=max_cost), 0..120),
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                steps
                    .into_iter()
                    .map(|(gap, cost)| {
                        t += gap;
                        (t, cost)
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_more_than_limit_in_any_window(
            (r, reqs) in rule_strategy().prop_flat_map(|r| {
                (Just(r), requests(i64::try_from(r.window()).unwrap_or(1) / 2 + 1, r.limit() + 1))
            })
        ) {
            let admitted = run(&r, &reqs);
            prop_assert!(max_in_any_window(&admitted, r.window()) <= u64::from(r.limit()));
        }

        #[test]
        fn any_span_is_bounded_by_burst_plus_rate(
            (r, reqs, span) in rule_strategy().prop_flat_map(|r| {
                let w = i64::try_from(r.window()).unwrap_or(1);
                (Just(r), requests(w / 3 + 1, r.burst()), 1..=(3 * r.window()))
            })
        ) {
            let admitted = run(&r, &reqs);
            let most = u128::from(max_in_any_window(&admitted, span));
            let bound = u128::from(span) * u128::from(r.sustained_per_window())
                + u128::from(r.burst()) * u128::from(r.window());
            prop_assert!(most * u128::from(r.window()) < bound);
        }

        #[test]
        fn waiting_until_retry_at_is_enough_and_necessary(
            (r, reqs, cost) in rule_strategy().prop_flat_map(|r| {
                let w = i64::try_from(r.window()).unwrap_or(1);
                (Just(r), requests(w / 2 + 1, r.burst()), 0..=r.burst())
            })
        ) {
            let mut state = None;
            for (now, c) in reqs {
                match r.check(state, now, c) {
                    Decision::Allow { new_tat } => state = Some(new_tat),
                    Decision::Deny { retry_at, wait } => {
                        prop_assert!(retry_at > now);
                        prop_assert_eq!(i128::from(retry_at) - i128::from(now), i128::from(wait));
                        prop_assert!(r.check(state, retry_at, c).is_allowed());
                        prop_assert!(!r.check(state, retry_at - 1, c).is_allowed());
                    }
                    Decision::DenyForever { .. } => prop_assert!(false, "cost within burst"),
                }
                // And for an arbitrary cost within the burst, from the same state.
                if let Decision::Deny { retry_at, .. } = r.check(state, now, cost) {
                    prop_assert!(r.check(state, retry_at, cost).is_allowed());
                }
            }
        }

        #[test]
        fn denied_forever_exactly_when_cost_exceeds_burst(
            r in rule_strategy(), cost in 0u32..20, now in any::<i32>(),
        ) {
            let forever = matches!(r.check(None, i64::from(now), cost), Decision::DenyForever { .. });
            prop_assert_eq!(forever, cost > r.burst());
        }

        #[test]
        fn idle_rule_admits_a_full_burst_at_once(r in rule_strategy(), now in any::<i32>()) {
            let now = i64::from(now);
            let reqs: Vec<(i64, u32)> = (0..r.burst()).map(|_| (now, 1)).collect();
            prop_assert_eq!(run(&r, &reqs).len(), r.burst() as usize);
        }

        #[test]
        fn sustained_rate_is_reached(r in rule_strategy(), start in -10_000i64..10_000) {
            // Greedy sending admits burst + sustained·k units by the start of window k+1.
            let per = r.sustained_per_window() as usize;
            let times = greedy_times(&r, start, r.burst() as usize + 3 * per);
            let last = *times.last().expect("non-empty");
            prop_assert!(i128::from(last) < i128::from(start) + 3 * i128::from(r.window()) + 1);
        }

        #[test]
        fn sliding_window_never_more_than_limit_and_retry_is_exact(
            limit in 1u32..8,
            window in 1u64..300,
            gaps in proptest::collection::vec(0i64..60, 0..150),
        ) {
            let w = WindowLimit::new(limit, window).expect("valid");
            let mut sent: Vec<i64> = Vec::new();
            let mut now = 0;
            for gap in gaps {
                now += gap;
                let status = w.check(&sent, now);
                let expected_count = sent.iter().filter(|&&t| t > now - window as i64).count();
                prop_assert_eq!(status.in_window as usize, expected_count);
                if status.allowed_at(now) {
                    prop_assert_eq!(status.next_allowed_at, now);
                    sent.push(now);
                } else {
                    let at = status.next_allowed_at;
                    prop_assert!(at > now);
                    prop_assert!(w.check(&sent, at).allowed_at(at));
                    prop_assert!(!w.check(&sent, at - 1).allowed_at(at - 1));
                }
            }
            let admitted: Vec<(i64, u32)> = sent.iter().map(|&t| (t, 1)).collect();
            prop_assert!(max_in_any_window(&admitted, window) <= u64::from(limit));
        }
    }
}
