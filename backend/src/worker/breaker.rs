//! When Twilio is in a storm (429 Too Many Requests, a run of 5xx answers or timeouts) the
//! instance stops sending for a while instead of hammering it, then tries one message (a probe)
//! before it sends at full speed again.
//!
//! - A 429 pauses sending at once, for Twilio's `Retry-After` when it gives one (at most
//!   [`MAX_RETRY_AFTER`]), else for the backoff below. The refused message is put back, its
//!   attempt not counted: Twilio refused the request, not the message.
//! - [`NO_ANSWER_RUN`] sends in a row without a usable answer (5xx, timeout, network error) pause
//!   sending for [`FIRST_PAUSE`]. Those messages are in doubt and retried as `crate::outcome`
//!   decides (Twilio's list is asked first, so nothing goes out twice).
//! - After a pause, a step claims one message only (the probe). If it fails too, the next pause
//!   is twice as long (at most [`MAX_PAUSE`]). Any answer from Twilio other than a 429 or a 5xx
//!   ends the storm, and the next step claims a full batch.
//!
//! One breaker per instance, shared by its worker loops; each instance learns of a storm from
//! its own sends. The rules are pure: times are given (µs), never read from the clock.

use std::sync::{Arc, Mutex};

const SECOND: i64 = 1_000_000;

/// Sends in a row without an answer that open the breaker.
pub const NO_ANSWER_RUN: u32 = 3;
/// The first pause after a run of failures.
pub const FIRST_PAUSE: i64 = SECOND;
/// The longest pause the breaker chooses itself.
pub const MAX_PAUSE: i64 = 60 * SECOND;
/// The longest `Retry-After` obeyed (a longer one is read as this).
pub const MAX_RETRY_AFTER: i64 = 300 * SECOND;
/// While a probe is under way, how long others wait before asking again.
pub const PROBE_WAIT: i64 = SECOND / 10;

/// What one send told about Twilio's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Twilio answered (accepted, or refused for a reason of the message's own).
    Answered,
    /// 429 Too Many Requests, with `Retry-After` in seconds when given.
    RateLimited { retry_after: Option<u32> },
    /// No usable answer: a 5xx, a timeout, a network error.
    NoAnswer,
}

/// The breaker's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Sends in a row without an answer, since the last answer.
    pub run: u32,
    /// Pauses since the last answer: each one that Twilio chose no length for lasts twice the
    /// one before. While it is above zero, steps send one probe.
    pub pauses: u32,
    /// No send starts before this (µs).
    pub paused_until: i64,
    /// A probe is under way: no other send goes to this provider until it reports.
    pub probing: bool,
}

/// What the breaker allows at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Send as usual.
    Batch,
    /// After a pause: one message, to see whether Twilio has recovered.
    Probe,
    /// No send until then (µs).
    PausedUntil(i64),
}

impl State {
    /// What may be sent at `at`.
    pub fn allowed(&self, at: i64) -> Allowed {
        if at < self.paused_until {
            Allowed::PausedUntil(self.paused_until)
        } else if self.pauses > 0 && self.probing {
            Allowed::PausedUntil(at + PROBE_WAIT)
        } else if self.pauses > 0 {
            Allowed::Probe
        } else {
            Allowed::Batch
        }
    }

    /// Whether one more send may go to this provider at `at`: always while it is healthy, once
    /// (the probe) after a pause, never during one.
    pub fn take(&mut self, at: i64) -> bool {
        match self.allowed(at) {
            Allowed::Batch => true,
            Allowed::Probe if !self.probing => {
                self.probing = true;
                true
            }
            Allowed::Probe | Allowed::PausedUntil(_) => false,
        }
    }

    /// When a send may go to this provider again, seen at `at` (`at` when it may now).
    pub fn resume_at(&self, at: i64) -> i64 {
        match self.allowed(at) {
            Allowed::PausedUntil(until) => until,
            Allowed::Batch | Allowed::Probe => at,
        }
    }

    /// Takes in a failed lookup in the provider's message list: a sign of a storm like a failed
    /// send, but it neither is nor ends a probe (a lookup that works says nothing about sends).
    pub fn observe_lookup_failure(&mut self, signal: Signal, at: i64) -> Option<i64> {
        if signal == Signal::Answered {
            return None;
        }
        let probing = self.probing;
        let paused = self.observe(signal, at);
        self.probing = probing;
        paused
    }

    /// Takes in what a send that ended at `at` learnt. Answers whether this signal paused
    /// sending (for a log line), and until when.
    ///
    /// A send that was in flight when a pause began reports during it: its answer does not lift
    /// the pause (the probe after it decides) and its failure does not lengthen it, except that
    /// a longer `Retry-After` is obeyed.
    pub fn observe(&mut self, signal: Signal, at: i64) -> Option<i64> {
        self.probing = false;
        let in_pause = at < self.paused_until;
        let until = match signal {
            Signal::Answered if in_pause => return None,
            Signal::Answered => {
                *self = State::default();
                return None;
            }
            Signal::RateLimited {
                retry_after: Some(s),
            } => {
                if !in_pause {
                    self.pauses = self.pauses.saturating_add(1);
                }
                at.saturating_add((i64::from(s) * SECOND).clamp(SECOND, MAX_RETRY_AFTER))
            }
            _ if in_pause => return None,
            Signal::RateLimited { retry_after: None } => {
                self.pauses = self.pauses.saturating_add(1);
                at.saturating_add(backoff(self.pauses))
            }
            Signal::NoAnswer => {
                self.run = self.run.saturating_add(1);
                if self.run < NO_ANSWER_RUN && self.pauses == 0 {
                    return None;
                }
                self.pauses = self.pauses.saturating_add(1);
                at.saturating_add(backoff(self.pauses))
            }
        };
        if until <= self.paused_until {
            return None;
        }
        self.paused_until = until;
        Some(until)
    }
}

/// The pause after the `n`-th failure that pauses (1 for the first): [`FIRST_PAUSE`] doubled,
/// at most [`MAX_PAUSE`].
pub fn backoff(n: u32) -> i64 {
    let doublings = n.saturating_sub(1).min(16);
    FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE)
}

/// The breaker of one instance, shared by its worker loops.
#[derive(Debug, Clone, Default)]
pub struct Breaker(Arc<Mutex<State>>);

impl Breaker {
    pub fn allowed(&self, at: i64) -> Allowed {
        self.state().allowed(at)
    }

    /// See [`State::take`].
    pub fn take(&self, at: i64) -> bool {
        self.state().take(at)
    }

    /// See [`State::resume_at`].
    pub fn resume_at(&self, at: i64) -> i64 {
        self.state().resume_at(at)
    }

    /// What a send (a create request) told about the provider.
    pub fn observe(&self, signal: Signal, at: i64) {
        let mut state = self.state();
        let paused = state.observe(signal, at);
        Self::log_pause(&state, signal, at, paused);
    }

    /// What a failed lookup told about the provider (see [`State::observe_lookup_failure`]).
    pub fn observe_lookup_failure(&self, signal: Signal, at: i64) {
        let mut state = self.state();
        let paused = state.observe_lookup_failure(signal, at);
        Self::log_pause(&state, signal, at, paused);
    }

    fn log_pause(state: &State, signal: Signal, at: i64, paused: Option<i64>) {
        if let Some(until) = paused {
            let seconds = (until - at) as f64 / SECOND as f64;
            let why = match signal {
                Signal::RateLimited { .. } => "Twilio answered 429 Too Many Requests",
                _ => "Twilio gave no usable answer (5xx, timeout or network error)",
            };
            tracing::warn!(
                pauses_in_a_row = state.pauses,
                pause_seconds = seconds,
                "{why}: sending pauses, then one message is tried before the rest"
            );
            crate::telemetry::provider_paused(matches!(signal, Signal::RateLimited { .. }));
        }
    }

    /// The state now (for tests and the operations page).
    pub fn snapshot(&self) -> State {
        self.state().clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000 * SECOND;

    #[test]
    fn a_rate_limit_pauses_at_once_for_retry_after_then_probes_then_sends_in_batches() {
        let mut s = State::default();
        assert_eq!(s.allowed(T), Allowed::Batch);
        assert_eq!(
            s.observe(
                Signal::RateLimited {
                    retry_after: Some(5)
                },
                T
            ),
            Some(T + 5 * SECOND)
        );
        assert_eq!(
            s.allowed(T + 4 * SECOND),
            Allowed::PausedUntil(T + 5 * SECOND)
        );
        assert_eq!(s.allowed(T + 5 * SECOND), Allowed::Probe);
        s.observe(Signal::Answered, T + 5 * SECOND);
        assert_eq!(s.allowed(T + 5 * SECOND), Allowed::Batch);
        assert_eq!(s, State::default());
    }

    #[test]
    fn after_a_pause_one_send_probes_and_the_others_wait_for_its_answer() {
        let mut s = State::default();
        assert!(s.take(T) && s.take(T), "healthy: every send goes");
        s.observe(
            Signal::RateLimited {
                retry_after: Some(2),
            },
            T,
        );
        assert!(!s.take(T + SECOND), "paused");
        assert!(s.take(T + 2 * SECOND), "the probe");
        assert!(!s.take(T + 2 * SECOND), "one probe at a time");
        assert_eq!(
            s.allowed(T + 2 * SECOND),
            Allowed::PausedUntil(T + 2 * SECOND + PROBE_WAIT),
            "the others ask again shortly, not at once"
        );
        s.observe(Signal::Answered, T + 3 * SECOND);
        assert!(s.take(T + 3 * SECOND) && s.take(T + 3 * SECOND));
    }

    #[test]
    fn a_failed_lookup_counts_toward_a_storm_but_neither_is_nor_ends_a_probe() {
        let mut s = State::default();
        s.observe_lookup_failure(Signal::Answered, T);
        assert_eq!(s, State::default(), "a lookup that works says nothing");
        for _ in 0..3 {
            s.observe_lookup_failure(Signal::NoAnswer, T);
        }
        assert_eq!(s.allowed(T), Allowed::PausedUntil(T + SECOND));
        assert!(s.take(T + SECOND), "the probe");
        s.observe_lookup_failure(Signal::NoAnswer, T + SECOND);
        assert!(s.probing, "still under way");
    }

    #[test]
    fn a_rate_limit_without_retry_after_backs_off_exponentially() {
        let mut s = State::default();
        s.observe(Signal::RateLimited { retry_after: None }, T);
        assert_eq!(s.paused_until, T + SECOND);
        s.observe(Signal::RateLimited { retry_after: None }, T + SECOND);
        assert_eq!(s.paused_until, T + 3 * SECOND, "2 s after the second");
        s.observe(Signal::RateLimited { retry_after: None }, T + 3 * SECOND);
        assert_eq!(s.paused_until, T + 7 * SECOND, "4 s after the third");
    }

    #[test]
    fn retry_after_is_obeyed_between_one_second_and_five_minutes() {
        let mut s = State::default();
        s.observe(
            Signal::RateLimited {
                retry_after: Some(0),
            },
            T,
        );
        assert_eq!(s.paused_until, T + SECOND);
        let mut s = State::default();
        s.observe(
            Signal::RateLimited {
                retry_after: Some(86_400),
            },
            T,
        );
        assert_eq!(s.paused_until, T + MAX_RETRY_AFTER);
    }

    #[test]
    fn no_answers_pause_only_after_a_run_and_then_double_up_to_a_minute() {
        let mut s = State::default();
        assert_eq!(s.observe(Signal::NoAnswer, T), None);
        assert_eq!(s.observe(Signal::NoAnswer, T), None);
        assert_eq!(s.allowed(T), Allowed::Batch, "two failures are not a storm");
        assert_eq!(s.observe(Signal::NoAnswer, T), Some(T + SECOND));
        // The probe fails: the pause doubles, and keeps doubling to a minute.
        let mut at = T + SECOND;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            assert_eq!(s.allowed(at), Allowed::Probe);
            let until = s.observe(Signal::NoAnswer, at).expect("paused");
            pauses.push((until - at) / SECOND);
            at = until;
        }
        assert_eq!(pauses, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn an_answer_between_failures_ends_the_run() {
        let mut s = State::default();
        s.observe(Signal::NoAnswer, T);
        s.observe(Signal::NoAnswer, T);
        s.observe(Signal::Answered, T);
        assert_eq!(s.observe(Signal::NoAnswer, T), None);
        assert_eq!(s.allowed(T), Allowed::Batch);
    }

    #[test]
    fn late_reports_from_sends_in_flight_never_shorten_a_pause() {
        let mut s = State::default();
        s.observe(
            Signal::RateLimited {
                retry_after: Some(30),
            },
            T,
        );
        assert_eq!(s.observe(Signal::NoAnswer, T + SECOND), None);
        assert_eq!(s.paused_until, T + 30 * SECOND);
        s.observe(Signal::Answered, T + 2 * SECOND);
        assert_eq!(
            s.allowed(T + 2 * SECOND),
            Allowed::PausedUntil(T + 30 * SECOND)
        );
        assert_eq!(s.allowed(T + 30 * SECOND), Allowed::Probe);
    }
}
