//! May one more message go to the provider now? The global limits as Twilio counts them: by when
//! requests *arrive*, which is when they are sent plus a network delay that varies. A send is
//! allowed at time `t` only if fewer than `limit` sends started in `(t − window − margin, t]`;
//! then the `limit + 1`-th send after any send starts at least `window + margin` after it, and
//! however the network delays each request by 0 to `margin`, no `window` of arrival times holds
//! more than `limit`. Pure: the caller gives the recent send times and the time.
//!
//! Also the claim's rule, [`admit`]: which of the due messages go in this step, which expire and
//! which wait until when, under the global limits (counted at the claim, widened by the same
//! margin), each recipient's limits and each sender's pace. Pure too: the worker reads the counts
//! and recent sends, asks [`admit`], and writes what it answers.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::ratelimit::{WeightedWindow, WindowLimit};
use crate::sending::{RateLimits, SenderPace};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

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

/// The global limits (per second, minute, hour), as the send gate and the claim both keep them.
pub fn global_rules(limits: &RateLimits) -> [SendRule; 3] {
    [
        SendRule {
            limit: limits.per_second,
            window: SECOND,
        },
        SendRule {
            limit: limits.per_minute,
            window: MINUTE,
        },
        SendRule {
            limit: limits.per_hour,
            window: HOUR,
        },
    ]
}

/// How much later than its neighbours a request may arrive (µs): the global windows are widened
/// by this much.
pub fn network_margin(limits: &RateLimits) -> i64 {
    i64::from(limits.network_margin_ms) * 1_000
}

/// How far back [`Usage::recipient_sends`] must reach: the longest per-recipient window (a day).
pub const RECIPIENT_LOOKBACK: i64 = DAY;

/// How far back [`Usage::sender_logs`] must reach: the pace's window (a second).
pub const SENDER_LOOKBACK: i64 = SECOND;

/// One global limit as the claim counted it in the dispatch log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalCount {
    pub limit: u32,
    /// The rule's window widened by the network margin (µs).
    pub window: i64,
    /// Sends logged after `now − window`.
    pub count: i64,
    /// Read only when there is no [`room`](GlobalCount::room): the time of the send whose leaving
    /// the window makes room again (the `count − limit + 1`-th oldest in it).
    pub blocking: Option<i64>,
}

impl GlobalCount {
    /// Sends this limit still allows now.
    pub fn room(&self) -> i64 {
        (i64::from(self.limit) - self.count).max(0)
    }

    /// When this limit has room again, if it has none now (`now + 1` when the blocking send was
    /// not read).
    pub fn free_at(&self, now: i64) -> Option<i64> {
        (self.room() == 0).then(|| self.blocking.map_or(now + 1, |t| t + self.window))
    }
}

/// When every full global limit has room again, if any is full now.
pub fn global_free_at(counts: &[GlobalCount], now: i64) -> Option<i64> {
    counts.iter().filter_map(|c| c.free_at(now)).max()
}

/// A due message, as the admission sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    /// Rank: lower goes first (emergency, two-factor, the rest); FIFO by `id` within one.
    pub priority: i64,
    /// Who it goes to (any stable key, smsdesk uses the number's hash): the per-recipient
    /// limits count by it.
    pub recipient: String,
    /// The sender (number, alphanumeric id or Messaging Service): its pace counts by it.
    pub sender: String,
    /// What it costs against the sender's pace.
    pub segments: u32,
    /// After this (µs) it must not be sent.
    pub validity_until: Option<i64>,
    /// Skips the recipient's limits (emergency, when the settings say so); never the global
    /// limits or the sender's pace.
    pub exempt: bool,
}

/// The recent sends the limits read, for the candidates at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Send times of each (non-exempt) recipient within [`RECIPIENT_LOOKBACK`].
    pub recipient_sends: HashMap<String, Vec<i64>>,
    /// Each sender's logged `(time, segments)` within [`SENDER_LOOKBACK`].
    pub sender_logs: HashMap<String, Vec<(i64, u32)>>,
}

/// What the claim does with its candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Sent in this step, in this order.
    pub claimed: Vec<i64>,
    /// Past their validity: never sent.
    pub expired: Vec<i64>,
    /// Held back by the recipient's limits or the sender's pace: `(id, when it would be allowed)`.
    pub deferred: Vec<(i64, i64)>,
    /// What the claimed messages add to the sender log: segments per `(sender, time)`.
    pub sender_log: BTreeMap<(String, i64), u32>,
}

/// Decides the candidates at `now`, in priority order (then by id), one at a time, each
/// admitted only if everything admitted before it leaves room:
/// 1. past its validity: expires (before anything else, even when the global limits are full);
/// 2. no room left under the global limits: it and everything after it stay due, untouched;
/// 3. the recipient's hourly and daily limits (unless exempt): deferred until both allow it;
/// 4. the sender's pace, in segments per second: deferred until the pace allows it;
/// 5. otherwise claimed, and counted against all three for the candidates after it.
pub fn admit(
    candidates: &[Candidate],
    mut usage: Usage,
    global: &[GlobalCount],
    limits: &RateLimits,
    pace: &SenderPace,
    now: i64,
) -> Admission {
    let hour = WindowLimit::new(limits.per_recipient_per_hour.max(1), HOUR as u64)
        .expect("an hour is a valid window");
    let day = WindowLimit::new(limits.per_recipient_per_day.max(1), DAY as u64)
        .expect("a day is a valid window");
    let mut room = global
        .iter()
        .map(GlobalCount::room)
        .min()
        .unwrap_or(i64::MAX);
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by_key(|c| (c.priority, c.id));
    let mut out = Admission::default();
    for c in order {
        if c.validity_until.is_some_and(|until| until <= now) {
            out.expired.push(c.id);
            continue;
        }
        if room <= 0 {
            break;
        }
        if !c.exempt {
            let times = usage
                .recipient_sends
                .get(&c.recipient)
                .map_or(&[][..], Vec::as_slice);
            let allowed_at = hour
                .check(times, now)
                .next_allowed_at
                .max(day.check(times, now).next_allowed_at);
            if allowed_at > now {
                out.deferred.push((c.id, allowed_at));
                continue;
            }
        }
        let paced = WeightedWindow::new(pace.for_sender(&c.sender).max(1), SECOND as u64)
            .expect("a positive pace");
        let cost = c.segments.max(1);
        let log = usage.sender_logs.entry(c.sender.clone()).or_default();
        let allowed_at = paced.next_allowed_at(log, now, cost);
        if allowed_at > now {
            out.deferred.push((c.id, allowed_at));
            continue;
        }
        for (at, units) in paced.chunks(now, cost) {
            log.push((at, units));
            *out.sender_log.entry((c.sender.clone(), at)).or_default() += units;
        }
        if !c.exempt {
            usage
                .recipient_sends
                .entry(c.recipient.clone())
                .or_default()
                .push(now);
        }
        room -= 1;
        out.claimed.push(c.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    fn open_limits() -> RateLimits {
        RateLimits {
            per_second: 10_000,
            per_minute: 100_000,
            per_hour: 1_000_000,
            per_recipient_per_hour: 1_000,
            per_recipient_per_day: 1_000,
            emergency_exempt: true,
            two_factor_exempt: true,
            network_margin_ms: 0,
        }
    }

    fn open_pace() -> SenderPace {
        SenderPace {
            long_code: 10_000,
            ..SenderPace::default()
        }
    }

    const FROM: &str = "+15005550006";
    const NOW: i64 = 1_700_000_000 * SECOND;

    fn candidate(id: i64, recipient: &str) -> Candidate {
        Candidate {
            id,
            priority: 2,
            recipient: recipient.to_owned(),
            sender: FROM.to_owned(),
            segments: 1,
            validity_until: None,
            exempt: false,
        }
    }

    fn count(limit: u32, window: i64, count: i64, blocking: Option<i64>) -> GlobalCount {
        GlobalCount {
            limit,
            window,
            count,
            blocking,
        }
    }

    #[test]
    fn admits_only_the_room_left_under_the_tightest_global_limit() {
        let candidates: Vec<Candidate> =
            (1..=5).map(|id| candidate(id, &format!("r{id}"))).collect();
        let global = [
            count(10, SECOND, 7, None),
            count(100, MINUTE, 98, None),
            count(1_000, HOUR, 500, None),
        ];
        let a = admit(
            &candidates,
            Usage::default(),
            &global,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!(a.claimed, [1, 2], "the minute has room for two");
        assert!(
            a.deferred.is_empty() && a.expired.is_empty(),
            "the rest stay due: {a:?}"
        );
        assert_eq!(global_free_at(&global, NOW), None);
    }

    #[test]
    fn a_full_global_limit_frees_when_its_blocking_send_leaves_the_window() {
        let margin = 200_000;
        let full = count(10, SECOND + margin, 12, Some(NOW - 900_000));
        assert_eq!(full.room(), 0);
        assert_eq!(full.free_at(NOW), Some(NOW - 900_000 + SECOND + margin));
        let unread = count(10, SECOND, 10, None);
        assert_eq!(unread.free_at(NOW), Some(NOW + 1));
        let global = [full, count(100, MINUTE, 20, None), unread];
        assert_eq!(global_free_at(&global, NOW), Some(NOW + 300_000));
        let a = admit(
            &[candidate(1, "r")],
            Usage::default(),
            &global,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!(a, Admission::default(), "nothing claimed, nothing moved");
    }

    #[test]
    fn a_recipient_waits_exactly_until_both_its_hourly_and_daily_limits_allow() {
        let mut limits = open_limits();
        limits.per_recipient_per_hour = 3;
        limits.per_recipient_per_day = 4;
        let mut usage = Usage::default();
        usage.recipient_sends.insert(
            "busy".to_owned(),
            vec![NOW - 50 * MINUTE, NOW - 20 * MINUTE, NOW - 2 * HOUR],
        );
        let candidates = [
            candidate(1, "busy"),
            candidate(2, "busy"),
            candidate(3, "quiet"),
        ];
        let a = admit(&candidates, usage, &[], &limits, &open_pace(), NOW);
        assert_eq!(a.claimed, [1, 3]);
        // With the one just claimed, the hour (3) is full until the send from 50 minutes ago
        // leaves it, and the day (4) until the one from 2 hours ago does: the later of the two.
        assert_eq!(a.deferred, [(2, NOW - 2 * HOUR + DAY)]);
    }

    #[test]
    fn a_recipient_at_its_hourly_limit_is_deferred_to_the_hour_not_the_day() {
        let mut limits = open_limits();
        limits.per_recipient_per_hour = 2;
        let mut usage = Usage::default();
        usage
            .recipient_sends
            .insert("r".to_owned(), vec![NOW - 40 * MINUTE, NOW - 10 * MINUTE]);
        let a = admit(&[candidate(1, "r")], usage, &[], &limits, &open_pace(), NOW);
        assert_eq!(a.deferred, [(1, NOW + 20 * MINUTE)]);
        assert!(a.claimed.is_empty());
    }

    #[test]
    fn emergency_skips_the_recipients_limits_but_not_the_global_ones() {
        let mut limits = open_limits();
        limits.per_recipient_per_hour = 1;
        let mut usage = Usage::default();
        usage
            .recipient_sends
            .insert("r".to_owned(), vec![NOW - MINUTE]);
        let emergency = Candidate {
            priority: 0,
            exempt: true,
            ..candidate(9, "r")
        };
        let normal = candidate(1, "r");
        let a = admit(
            &[normal.clone(), emergency.clone()],
            usage.clone(),
            &[],
            &limits,
            &open_pace(),
            NOW,
        );
        assert_eq!(a.claimed, [9]);
        assert_eq!(a.deferred, [(1, NOW - MINUTE + HOUR)]);
        let full = [count(1, SECOND, 1, Some(NOW - 10))];
        let a = admit(&[emergency], usage, &full, &limits, &open_pace(), NOW);
        assert!(a.claimed.is_empty(), "{a:?}");
    }

    #[test]
    fn a_sender_past_its_pace_defers_until_its_segments_leave_the_second() {
        let pace = SenderPace {
            long_code: 1,
            ..SenderPace::default()
        };
        let long = Candidate {
            segments: 2,
            ..candidate(1, "a")
        };
        let a = admit(
            &[long, candidate(2, "b")],
            Usage::default(),
            &[],
            &open_limits(),
            &pace,
            NOW,
        );
        assert_eq!(a.claimed, [1]);
        assert_eq!(a.deferred, [(2, NOW + 2 * SECOND)], "2 segments at 1/s");
        assert_eq!(
            a.sender_log.into_iter().collect::<Vec<_>>(),
            [
                ((FROM.to_owned(), NOW), 1),
                ((FROM.to_owned(), NOW + SECOND), 1)
            ]
        );
    }

    #[test]
    fn expiry_comes_before_every_limit() {
        let stale = Candidate {
            validity_until: Some(NOW),
            ..candidate(3, "r")
        };
        let fresh = Candidate {
            validity_until: Some(NOW + 1),
            ..candidate(1, "r")
        };
        let full = [count(1, SECOND, 1, Some(NOW - 10))];
        let a = admit(
            &[fresh.clone(), stale.clone()],
            Usage::default(),
            &full,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        // The fresh one is first and finds no room: the claim stops there, the stale one after
        // it stays for the next claim.
        assert_eq!(a, Admission::default());
        let a = admit(
            &[stale, fresh],
            Usage::default(),
            &[],
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!((a.expired, a.claimed), (vec![3], vec![1]));
    }

    #[test]
    fn expired_messages_ahead_of_a_full_limit_still_expire() {
        let stale = Candidate {
            priority: 0,
            validity_until: Some(NOW - 1),
            ..candidate(5, "r")
        };
        let full = [count(1, SECOND, 1, Some(NOW - 10))];
        let a = admit(
            &[candidate(1, "r"), stale],
            Usage::default(),
            &full,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!(a.expired, [5]);
        assert!(a.claimed.is_empty());
    }

    #[test]
    fn candidates_go_in_priority_order_then_first_in_first_out() {
        let mut candidates = vec![
            candidate(4, "a"),
            Candidate {
                priority: 1,
                ..candidate(7, "b")
            },
            candidate(2, "c"),
            Candidate {
                priority: 0,
                ..candidate(9, "d")
            },
            Candidate {
                priority: 1,
                ..candidate(5, "e")
            },
        ];
        let global = [count(10, SECOND, 6, None)];
        let a = admit(
            &candidates,
            Usage::default(),
            &global,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!(
            a.claimed,
            [9, 5, 7, 2],
            "room for four: the last normal one waits"
        );
        candidates.reverse();
        let b = admit(
            &candidates,
            Usage::default(),
            &global,
            &open_limits(),
            &open_pace(),
            NOW,
        );
        assert_eq!(a, b, "the order given does not matter");
    }

    #[test]
    fn the_send_gate_and_the_claim_keep_the_same_windows() {
        let mut limits = open_limits();
        limits.network_margin_ms = 250;
        assert_eq!(network_margin(&limits), 250_000);
        let rules = global_rules(&limits);
        assert_eq!(
            rules.map(|r| (r.limit, r.window)),
            [(10_000, SECOND), (100_000, MINUTE), (1_000_000, HOUR)]
        );
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
