//! May one more message go to the provider now? The global limits as Twilio counts them: by when
//! requests *arrive*, which is when they are sent plus a network delay that varies. A send is
//! allowed at time `t` only if fewer than `limit` sends started in `(t − window − margin, t]`;
//! then the `limit + 1`-th send after any send starts at least `window + margin` after it, and
//! however the network delays each request by 0 to `margin`, no `window` of arrival times holds
//! more than `limit`. Pure: the caller gives the recent send times and the time.

use std::collections::VecDeque;

/// "Never more than `limit` in any `window` (µs)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRule {
    pub limit: u32,
    pub window: i64,
}

/// The earliest time at or after `now` when one more send keeps every rule, given when the
/// recent sends started (`recent`, ascending) and the network `margin` (µs).
pub fn next_send_at(recent: &VecDeque<i64>, now: i64, rules: &[SendRule], margin: i64) -> i64 {
    let mut at = now;
    for rule in rules {
        let limit = rule.limit.max(1) as usize;
        if recent.len() >= limit {
            // The `limit`-th most recent send must have left the widened window.
            let blocking = recent[recent.len() - limit];
            at = at.max(blocking + rule.window + margin);
        }
    }
    at
}

/// Forgets sends no rule can count any more at `now`.
pub fn forget_before(recent: &mut VecDeque<i64>, now: i64, rules: &[SendRule], margin: i64) {
    let longest = rules.iter().map(|r| r.window).max().unwrap_or(0) + margin;
    while recent.front().is_some_and(|&t| t <= now - longest) {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: i64 = 1_000_000;

    fn rules() -> [SendRule; 2] {
        [
            SendRule {
                limit: 10,
                window: SECOND,
            },
            SendRule {
                limit: 100,
                window: 60 * SECOND,
            },
        ]
    }

    #[test]
    fn the_eleventh_send_waits_for_the_first_to_leave_the_widened_window() {
        let recent: VecDeque<i64> = (0..10).map(|i| i * 1_000).collect();
        assert_eq!(next_send_at(&recent, 9_500, &rules(), 0), SECOND);
        assert_eq!(
            next_send_at(&recent, 9_500, &rules(), 200_000),
            SECOND + 200_000
        );
        // Room left: at once.
        let nine: VecDeque<i64> = (0..9).collect();
        assert_eq!(next_send_at(&nine, 50, &rules(), 200_000), 50);
    }

    #[test]
    fn the_minute_rule_holds_when_the_second_rule_has_room() {
        let recent: VecDeque<i64> = (0..100).map(|i| i * 500_000).collect();
        let now = 50 * SECOND;
        assert_eq!(next_send_at(&recent, now, &rules(), 0), 60 * SECOND);
    }

    #[test]
    fn forgetting_keeps_what_the_longest_window_still_counts() {
        let mut recent: VecDeque<i64> = [0, SECOND, 59 * SECOND].into();
        forget_before(&mut recent, 61 * SECOND, &rules(), SECOND / 2);
        assert_eq!(recent, [SECOND, 59 * SECOND]);
    }

    proptest! {
        /// Sends scheduled by `next_send_at`, each arriving after a delay of 0 to `margin`:
        /// no window of arrival times holds more than a rule's limit.
        #[test]
        fn arrivals_never_exceed_a_limit(
            asks in proptest::collection::vec(0i64..3 * SECOND, 1..80),
            delays in proptest::collection::vec(0i64..=200_000, 80),
            limit in 1u32..8,
        ) {
            let rules = [SendRule { limit, window: SECOND }];
            let margin = 200_000;
            let mut asks = asks;
            asks.sort_unstable();
            let mut recent = VecDeque::new();
            let mut arrivals = Vec::new();
            for (i, ask) in asks.iter().enumerate() {
                let now = (*ask).max(recent.back().copied().unwrap_or(0));
                let at = next_send_at(&recent, now, &rules, margin);
                prop_assert!(at >= now);
                recent.push_back(at);
                arrivals.push(at + delays[i]);
            }
            arrivals.sort_unstable();
            for (i, start) in arrivals.iter().enumerate() {
                let in_window = arrivals[i..].iter().take_while(|&&a| a < start + SECOND).count();
                prop_assert!(in_window <= limit as usize, "{in_window} arrivals in a second");
            }
        }
    }
}
