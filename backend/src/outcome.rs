//! What a Twilio failure means for the message that got it: try again (after how long, and
//! whether Twilio must be asked first if it went out), or stop; and whether to alert the
//! administrators and record an opt-out. Decided here, once, for both places a failure shows up:
//! the worker's answer to a create request and a status callback saying `failed` or
//! `undelivered`.
//!
//! Pure and deterministic: the callers apply the [`Decision`] in their own transaction
//! (`worker`), and the ±20 % jitter is added there, when the retry is written.

use domain::errors::{self, Disposition};
use domain::sending::Retries;

use crate::twilio::TwilioError;

const SECOND: i64 = 1_000_000;

/// A failure to decide about.
#[derive(Debug, Clone, Copy)]
pub enum Failure<'a> {
    /// Twilio refused the create request (an HTTP 4xx answer): nothing was sent, so retrying
    /// cannot send twice.
    Refused(&'a TwilioError),
    /// No usable answer (a timeout, a network error, a 5xx, an unreadable answer, or the
    /// in-doubt lookup failed): the message may have gone out.
    NoAnswer(&'a TwilioError),
    /// A status callback said `failed` or `undelivered` with this code.
    Callback { code: u32 },
}

/// What happens to the message next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again `delay` µs from now (before jitter); `in_doubt`: ask Twilio's message list
    /// first whether the last attempt went out.
    Retry { delay: i64, in_doubt: bool },
    /// No further attempt: the message ends failed.
    Fail,
}

/// An alert for the administrators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub code: u32,
    /// What the alert says (numbers not masked yet: the writer masks).
    pub reason: String,
}

/// What to do about one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    /// Twilio's code, stored with the message and its event.
    pub code: Option<u32>,
    /// Why, for a person (numbers not masked yet: the writers mask).
    pub reason: String,
    /// Set when the fault is in the account or its configuration.
    pub alert: Option<Alert>,
    /// The recipient opted out (21610): record it in the consent ledger.
    pub record_opt_out: bool,
}

/// Decides what `failure` of attempt number `attempt` (1 for the first) means under `retries`.
pub fn decide(failure: Failure<'_>, attempt: i64, retries: &Retries) -> Decision {
    let max_attempts = i64::from(retries.max_attempts);
    let retry = |allowed: i64, in_doubt: bool| {
        if attempt < allowed {
            Next::Retry {
                delay: backoff(retries, attempt),
                in_doubt,
            }
        } else {
            Next::Fail
        }
    };
    match failure {
        Failure::NoAnswer(e) => {
            let next = retry(max_attempts, true);
            let reason = match next {
                Next::Retry { .. } => e.to_string(),
                Next::Fail => format!(
                    "no answer from Twilio after {attempt} attempts ({e}); it was not found in Twilio's message list either"
                ),
            };
            Decision {
                next,
                code: None,
                reason,
                alert: None,
                record_opt_out: false,
            }
        }
        Failure::Refused(e) => {
            let code = match e {
                TwilioError::Api { code, .. } => *code,
                _ => None,
            };
            let info = code.map(errors::lookup);
            // An answer without a code says nothing more: retrying blindly could bill many
            // failed attempts.
            let disposition = info
                .as_ref()
                .map_or(Disposition::Permanent, |i| i.disposition());
            let allowed = match disposition {
                Disposition::RetryWithBackoff => max_attempts,
                Disposition::RetryLater { max_retries } => {
                    max_attempts.min(1 + i64::from(max_retries))
                }
                Disposition::Permanent | Disposition::OptOut => 0,
            };
            let reason = match &info {
                Some(i) => format!("{} ({e}). {}", i.meaning(), i.operator_action()),
                None => e.to_string(),
            };
            Decision {
                next: retry(allowed, false),
                code,
                alert: info.as_ref().filter(|i| i.alert_admins()).map(|i| Alert {
                    code: i.code(),
                    reason: reason.clone(),
                }),
                reason,
                record_opt_out: disposition == Disposition::OptOut,
            }
        }
        Failure::Callback { code } => {
            let info = errors::lookup(code);
            let allowed = match info.disposition() {
                Disposition::RetryLater { max_retries } => {
                    max_attempts.min(1 + i64::from(max_retries))
                }
                // 20429 answers a request; the message itself never failed on it.
                Disposition::RetryWithBackoff => 0,
                Disposition::Permanent | Disposition::OptOut => 0,
            };
            Decision {
                next: retry(allowed, false),
                code: Some(code),
                reason: format!("{} (error {code})", info.meaning()),
                alert: info.alert_admins().then(|| Alert {
                    code,
                    reason: info.meaning().to_owned(),
                }),
                record_opt_out: info.disposition() == Disposition::OptOut,
            }
        }
    }
}

/// The wait before trying again after attempt number `attempt` failed, before jitter: the base
/// delay, doubled for every further attempt (capped at 2¹⁶ times the base).
pub fn backoff(retries: &Retries, attempt: i64) -> i64 {
    let base = i64::from(retries.base_delay_seconds) * SECOND;
    let exp = (attempt.clamp(1, 20) - 1) as u32;
    base.saturating_mul(1i64 << exp.min(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retries() -> Retries {
        Retries {
            max_attempts: 3,
            base_delay_seconds: 60,
        }
    }

    fn api(status: u16, code: u32) -> TwilioError {
        TwilioError::Api {
            status,
            code: Some(code),
            message: "refused".to_owned(),
            more_info: None,
            retry_after: None,
        }
    }

    fn refused(status: u16, code: u32, attempt: i64) -> Decision {
        decide(Failure::Refused(&api(status, code)), attempt, &retries())
    }

    #[test]
    fn a_rate_limited_send_is_retried_with_exponential_backoff_up_to_max_attempts() {
        let first = refused(429, 20429, 1);
        assert_eq!(
            first.next,
            Next::Retry {
                delay: 60 * SECOND,
                in_doubt: false
            }
        );
        assert_eq!(first.code, Some(20429));
        assert_eq!((first.alert, first.record_opt_out), (None, false));
        assert_eq!(
            refused(429, 20429, 2).next,
            Next::Retry {
                delay: 120 * SECOND,
                in_doubt: false
            }
        );
        assert_eq!(refused(429, 20429, 3).next, Next::Fail, "3 attempts in all");
    }

    #[test]
    fn an_invalid_number_fails_at_once_with_twilios_meaning_and_the_operator_action() {
        let d = refused(400, 21211, 1);
        assert_eq!(d.next, Next::Fail);
        assert_eq!(d.code, Some(21211));
        let info = errors::lookup(21211);
        assert!(d.reason.starts_with(info.meaning()), "{}", d.reason);
        assert!(d.reason.contains("21211"), "{}", d.reason);
        assert!(d.reason.ends_with(info.operator_action()), "{}", d.reason);
        assert_eq!((d.alert, d.record_opt_out), (None, false));
    }

    #[test]
    fn a_recipient_who_replied_stop_fails_and_is_recorded_as_opted_out() {
        let d = refused(400, 21610, 1);
        assert_eq!(d.next, Next::Fail);
        assert!(d.record_opt_out);
        assert_eq!(d.alert, None);
        let from_callback = decide(Failure::Callback { code: 21610 }, 1, &retries());
        assert_eq!(from_callback.next, Next::Fail);
        assert!(from_callback.record_opt_out);
    }

    #[test]
    fn an_authentication_failure_fails_and_alerts_the_administrators() {
        let d = refused(401, 20003, 1);
        assert_eq!(d.next, Next::Fail);
        assert_eq!(
            d.alert,
            Some(Alert {
                code: 20003,
                reason: d.reason.clone()
            })
        );
        let from_callback = decide(Failure::Callback { code: 30002 }, 1, &retries());
        assert_eq!(
            from_callback.alert,
            Some(Alert {
                code: 30002,
                reason: errors::lookup(30002).meaning().to_owned()
            })
        );
    }

    #[test]
    fn an_unreachable_handset_from_a_callback_is_retried_as_the_table_allows() {
        // 30003 allows two more attempts; max_attempts (3) allows the same.
        for attempt in [1, 2] {
            let d = decide(Failure::Callback { code: 30003 }, attempt, &retries());
            assert_eq!(
                d.next,
                Next::Retry {
                    delay: backoff(&retries(), attempt),
                    in_doubt: false
                },
                "attempt {attempt}"
            );
            assert_eq!(d.code, Some(30003));
            assert_eq!(
                d.reason,
                format!("{} (error 30003)", errors::lookup(30003).meaning())
            );
        }
        assert_eq!(
            decide(Failure::Callback { code: 30003 }, 3, &retries()).next,
            Next::Fail
        );
        // 30008 allows one more attempt, whatever max_attempts says.
        let many = Retries {
            max_attempts: 10,
            ..retries()
        };
        assert!(matches!(
            decide(Failure::Callback { code: 30008 }, 1, &many).next,
            Next::Retry { .. }
        ));
        assert_eq!(
            decide(Failure::Callback { code: 30008 }, 2, &many).next,
            Next::Fail
        );
    }

    #[test]
    fn the_smaller_of_the_table_and_max_attempts_wins() {
        let one = Retries {
            max_attempts: 1,
            ..retries()
        };
        assert_eq!(
            decide(Failure::Callback { code: 30003 }, 1, &one).next,
            Next::Fail
        );
        assert_eq!(
            decide(Failure::Refused(&api(429, 20429)), 1, &one).next,
            Next::Fail
        );
    }

    #[test]
    fn unknown_codes_and_answers_without_a_code_fail() {
        let d = refused(400, 12345, 1);
        assert_eq!((d.next, d.code, d.alert), (Next::Fail, Some(12345), None));
        assert!(
            d.reason
                .contains("https://www.twilio.com/docs/errors/12345"),
            "{}",
            d.reason
        );
        let bare = TwilioError::Api {
            status: 400,
            code: None,
            message: "bad request".to_owned(),
            more_info: None,
            retry_after: None,
        };
        let d = decide(Failure::Refused(&bare), 1, &retries());
        assert_eq!((d.next, d.code), (Next::Fail, None));
        assert_eq!(d.reason, bare.to_string());
        assert_eq!(
            decide(Failure::Callback { code: 12345 }, 1, &retries()).next,
            Next::Fail
        );
    }

    #[test]
    fn a_rate_limit_code_in_a_callback_retries_nothing() {
        assert_eq!(
            decide(Failure::Callback { code: 20429 }, 1, &retries()).next,
            Next::Fail
        );
    }

    #[test]
    fn no_answer_retries_in_doubt_until_max_attempts_then_fails() {
        let e = TwilioError::Timeout;
        let d = decide(Failure::NoAnswer(&e), 1, &retries());
        assert_eq!(
            d.next,
            Next::Retry {
                delay: 60 * SECOND,
                in_doubt: true
            }
        );
        assert_eq!((d.code, d.reason.as_str()), (None, e.to_string().as_str()));
        let d = decide(Failure::NoAnswer(&e), 3, &retries());
        assert_eq!(d.next, Next::Fail);
        assert!(
            d.reason
                .starts_with("no answer from Twilio after 3 attempts"),
            "{}",
            d.reason
        );
        assert_eq!((d.alert, d.record_opt_out), (None, false));
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_growing() {
        let r = retries();
        assert_eq!(backoff(&r, 0), 60 * SECOND, "attempt numbers start at 1");
        assert_eq!(backoff(&r, 1), 60 * SECOND);
        assert_eq!(backoff(&r, 4), 8 * 60 * SECOND);
        assert_eq!(backoff(&r, 17), backoff(&r, 40));
        assert_eq!(backoff(&r, 17), (1 << 16) * 60 * SECOND);
    }
}
