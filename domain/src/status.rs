//! Message statuses and the rule that a status only moves forward.
//!
//! Twilio reports status changes by callback, and callbacks arrive **out of order** and **more than
//! once**. smsdesk therefore never stores "the last callback"; it stores the furthest status seen,
//! and [`MessageStatus::advance`] decides whether an incoming status is news:
//!
//! - every status has a stage along the path
//!   `scheduled -> accepted -> queued -> sending -> sent -> partially_delivered -> (final)`, and an
//!   incoming status is applied only when its stage is strictly further than the current one, so a
//!   late `sent` never replaces `delivered` and a duplicate is ignored;
//! - a final status (`delivered`, `undelivered`, `failed`, `canceled`, `read`, `received`) is
//!   never left, with one exception: `delivered -> read`, because a read receipt (RCS, WhatsApp)
//!   is the only news that can follow a delivery, and it implies the delivery;
//! - inbound statuses (`receiving`, `received`) and outbound ones never mix: a callback of the
//!   other direction is ignored.
//!
//! Every applied transition strictly increases the stage, so no sequence of callbacks, in any
//! order, can make a message go backwards or loop.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A message's status as Twilio names it (`status` in the Message JSON, `MessageStatus` in
/// callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Received by a Messaging Service, which has not picked a sender yet.
    Accepted,
    /// Waiting in a Messaging Service until its `SendAt` time.
    Scheduled,
    /// Waiting in Twilio's queue for the sender's throughput.
    Queued,
    /// Being handed to the carrier.
    Sending,
    /// Handed to the carrier; may stay the last status when the carrier sends no receipt.
    Sent,
    /// The carrier confirmed delivery to the handset. Final for SMS.
    Delivered,
    /// The carrier could not deliver it (see the error code). Final.
    Undelivered,
    /// Twilio never sent it (see the error code). Final.
    Failed,
    /// A scheduled message canceled before its time. Final.
    Canceled,
    /// The recipient opened it (channels with read receipts). Final.
    Read,
    /// An inbound message whose segments are still arriving.
    Receiving,
    /// An inbound message fully received. Final.
    Received,
    /// Some, not all, parts or recipients were delivered; a final receipt may still follow.
    PartiallyDelivered,
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// smsdesk to a handset.
    Outbound,
    /// A handset to smsdesk.
    Inbound,
}

/// The status string is not one of Twilio's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a Twilio message status: expected one of accepted, scheduled, queued, sending, sent, delivered, undelivered, failed, canceled, read, receiving, received, partially_delivered (lowercase)"
)]
pub struct UnknownStatus(String);

impl UnknownStatus {
    /// The string that was received, for the log.
    pub fn received(&self) -> &str {
        &self.0
    }
}

/// What to do with an incoming status, given the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Transition {
    /// The incoming status is news: store it.
    Advance,
    /// Keep the current status; the callback is still acknowledged (HTTP 200) so Twilio stops.
    Ignore(IgnoreReason),
}

/// Why an incoming status does not replace the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The same status again: Twilio retried the callback.
    Duplicate,
    /// The current status is final and the incoming one may not follow it.
    AlreadyFinal,
    /// The incoming status is an earlier stage that arrived late.
    Stale,
    /// An inbound status for an outbound message, or the reverse.
    WrongDirection,
}

impl IgnoreReason {
    /// A sentence for the message's event log.
    pub fn describe(self) -> &'static str {
        match self {
            IgnoreReason::Duplicate => "duplicate callback: the message already has this status",
            IgnoreReason::AlreadyFinal => {
                "the message already has a final status, which a later callback cannot change"
            }
            IgnoreReason::Stale => "late callback: the message has already moved past this status",
            IgnoreReason::WrongDirection => {
                "callback for the other direction: inbound and outbound statuses never mix"
            }
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl MessageStatus {
    /// Every status, in declaration order.
    pub const ALL: [MessageStatus; 13] = [
        MessageStatus::Accepted,
        MessageStatus::Scheduled,
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Undelivered,
        MessageStatus::Failed,
        MessageStatus::Canceled,
        MessageStatus::Read,
        MessageStatus::Receiving,
        MessageStatus::Received,
        MessageStatus::PartiallyDelivered,
    ];

    /// Twilio's lowercase name, as in the API and callbacks.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Accepted => "accepted",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Canceled => "canceled",
            MessageStatus::Read => "read",
            MessageStatus::Receiving => "receiving",
            MessageStatus::Received => "received",
            MessageStatus::PartiallyDelivered => "partially_delivered",
        }
    }

    /// Whether nothing (but `read` after `delivered`) may follow this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MessageStatus::Delivered
                | MessageStatus::Undelivered
                | MessageStatus::Failed
                | MessageStatus::Canceled
                | MessageStatus::Read
                | MessageStatus::Received
        )
    }

    /// Whether the message did not reach its recipient and never will (its error code says why).
    pub fn is_failure(self) -> bool {
        matches!(self, MessageStatus::Undelivered | MessageStatus::Failed)
    }

    /// Which way a message with this status travels.
    pub fn direction(self) -> Direction {
        match self {
            MessageStatus::Receiving | MessageStatus::Received => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }

    /// How far along its path a message with this status is; finals share the last stages.
    ///
    /// `scheduled` comes before `accepted` because a scheduled message is accepted when its time
    /// comes. Inbound statuses reuse the outbound scale; [`MessageStatus::direction`] keeps the two
    /// apart.
    fn stage(self) -> u8 {
        match self {
            MessageStatus::Scheduled => 0,
            MessageStatus::Accepted => 1,
            MessageStatus::Queued => 2,
            MessageStatus::Sending | MessageStatus::Receiving => 3,
            MessageStatus::Sent => 4,
            MessageStatus::PartiallyDelivered => 5,
            MessageStatus::Delivered
            | MessageStatus::Undelivered
            | MessageStatus::Failed
            | MessageStatus::Canceled
            | MessageStatus::Received => 6,
            MessageStatus::Read => 7,
        }
    }

    /// Decides whether `incoming` (from a callback or a fetch) replaces `self`, the stored status.
    ///
    /// Callable as `MessageStatus::advance(current, incoming)`. See the module documentation for
    /// the rules.
    pub fn advance(self, incoming: MessageStatus) -> Transition {
        if incoming == self {
            Transition::Ignore(IgnoreReason::Duplicate)
        } else if incoming.direction() != self.direction() {
            Transition::Ignore(IgnoreReason::WrongDirection)
        } else if self.is_final() {
            if (self, incoming) == (MessageStatus::Delivered, MessageStatus::Read) {
                Transition::Advance
            } else {
                Transition::Ignore(IgnoreReason::AlreadyFinal)
            }
        } else if incoming.stage() > self.stage() {
            Transition::Advance
        } else {
            Transition::Ignore(IgnoreReason::Stale)
        }
    }

    /// Whether `next` would replace `self`: shorthand for [`MessageStatus::advance`].
    pub fn can_advance_to(self, next: MessageStatus) -> bool {
        self.advance(next) == Transition::Advance
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownStatus;

    /// Parses Twilio's exact lowercase name; anything else (other case, spaces) is rejected, since
    /// Twilio never sends it and guessing could record a wrong status.
    fn from_str(input: &str) -> Result<MessageStatus, UnknownStatus> {
        MessageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == input)
            .ok_or_else(|| UnknownStatus(input.to_owned()))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;
    use proptest::prelude::*;

    fn ignored(current: MessageStatus, incoming: MessageStatus) -> Option<IgnoreReason> {
        match current.advance(incoming) {
            Transition::Advance => None,
            Transition::Ignore(reason) => Some(reason),
        }
    }

    #[test]
    fn every_status_parses_from_its_own_name() {
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
    }

    #[test]
    fn unknown_status_is_rejected_with_the_list_of_known_ones() {
        let error = "bounced".parse::<MessageStatus>().unwrap_err();
        assert_eq!(error.received(), "bounced");
        assert!(error.to_string().contains("partially_delivered"));
    }

    #[test]
    fn status_in_another_case_or_with_spaces_is_rejected() {
        assert!("Delivered".parse::<MessageStatus>().is_err());
        assert!(" sent".parse::<MessageStatus>().is_err());
        assert!("".parse::<MessageStatus>().is_err());
        assert!("partially-delivered".parse::<MessageStatus>().is_err());
    }

    #[test]
    fn serde_uses_twilio_names() {
        for status in MessageStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(
                serde_json::from_str::<MessageStatus>(&json).unwrap(),
                status
            );
        }
        assert!(serde_json::from_str::<MessageStatus>("\"bounced\"").is_err());
    }

    #[test]
    fn the_outbound_path_advances_step_by_step() {
        let path = [Accepted, Queued, Sending, Sent, Delivered, Read];
        for step in path.windows(2) {
            assert!(
                step[0].can_advance_to(step[1]),
                "{} -> {}",
                step[0],
                step[1]
            );
        }
        assert!(Scheduled.can_advance_to(Queued));
        assert!(Scheduled.can_advance_to(Accepted));
        assert!(Scheduled.can_advance_to(Canceled));
        assert!(Sent.can_advance_to(Undelivered));
        assert!(Queued.can_advance_to(Failed));
        assert!(Receiving.can_advance_to(Received));
    }

    #[test]
    fn skipped_steps_still_advance() {
        // Twilio sends no callback for the initial status, and callbacks can be lost.
        assert!(Queued.can_advance_to(Delivered));
        assert!(Accepted.can_advance_to(Sent));
        assert!(Sent.can_advance_to(Read));
    }

    #[test]
    fn late_sent_callback_does_not_undo_delivered() {
        assert_eq!(ignored(Delivered, Sent), Some(IgnoreReason::AlreadyFinal));
    }

    #[test]
    fn late_earlier_status_is_ignored_as_stale() {
        assert_eq!(ignored(Sent, Sending), Some(IgnoreReason::Stale));
        assert_eq!(ignored(Sent, Queued), Some(IgnoreReason::Stale));
        assert_eq!(ignored(Queued, Accepted), Some(IgnoreReason::Stale));
        assert_eq!(ignored(PartiallyDelivered, Sent), Some(IgnoreReason::Stale));
    }

    #[test]
    fn duplicate_callback_is_ignored() {
        for status in MessageStatus::ALL {
            assert_eq!(ignored(status, status), Some(IgnoreReason::Duplicate));
        }
    }

    #[test]
    fn a_final_status_is_never_replaced_by_another_final_status() {
        assert_eq!(
            ignored(Delivered, Undelivered),
            Some(IgnoreReason::AlreadyFinal)
        );
        assert_eq!(
            ignored(Undelivered, Delivered),
            Some(IgnoreReason::AlreadyFinal)
        );
        assert_eq!(ignored(Failed, Delivered), Some(IgnoreReason::AlreadyFinal));
        assert_eq!(ignored(Canceled, Queued), Some(IgnoreReason::AlreadyFinal));
        assert_eq!(ignored(Read, Delivered), Some(IgnoreReason::AlreadyFinal));
    }

    #[test]
    fn read_is_accepted_after_delivered_only() {
        assert!(Delivered.can_advance_to(Read));
        assert_eq!(ignored(Undelivered, Read), Some(IgnoreReason::AlreadyFinal));
        assert_eq!(ignored(Failed, Read), Some(IgnoreReason::AlreadyFinal));
        assert_eq!(ignored(Canceled, Read), Some(IgnoreReason::AlreadyFinal));
    }

    #[test]
    fn inbound_and_outbound_statuses_never_mix() {
        assert_eq!(ignored(Receiving, Sent), Some(IgnoreReason::WrongDirection));
        assert_eq!(
            ignored(Queued, Received),
            Some(IgnoreReason::WrongDirection)
        );
        assert_eq!(
            ignored(Received, Delivered),
            Some(IgnoreReason::WrongDirection)
        );
    }

    #[test]
    fn transition_serializes_with_its_reason() {
        let json = serde_json::to_string(&Transition::Ignore(IgnoreReason::Stale)).unwrap();
        assert_eq!(json, r#"{"outcome":"ignore","reason":"stale"}"#);
        let json = serde_json::to_string(&Transition::Advance).unwrap();
        assert_eq!(json, r#"{"outcome":"advance"}"#);
    }

    #[test]
    fn only_the_documented_statuses_are_final() {
        let finals: Vec<_> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [Delivered, Undelivered, Failed, Canceled, Read, Received]
        );
    }

    fn status() -> impl Strategy<Value = MessageStatus> {
        proptest::sample::select(MessageStatus::ALL.to_vec())
    }

    /// Applies `incoming` in order from `start`, returning every status held along the way.
    fn apply(start: MessageStatus, incoming: &[MessageStatus]) -> Vec<MessageStatus> {
        let mut history = vec![start];
        let mut current = start;
        for &next in incoming {
            if current.advance(next) == Transition::Advance {
                current = next;
            }
            history.push(current);
        }
        history
    }

    proptest! {
        #[test]
        fn any_callback_order_yields_a_monotone_history_that_never_leaves_a_final_status(
            start in status(),
            incoming in proptest::collection::vec(status(), 0..40),
        ) {
            let history = apply(start, &incoming);
            for step in history.windows(2) {
                let (before, after) = (step[0], step[1]);
                prop_assert!(after.stage() >= before.stage(), "{} -> {}", before, after);
                prop_assert_eq!(after.direction(), before.direction());
                if before.is_final() && before != after {
                    prop_assert_eq!((before, after), (Delivered, Read));
                }
            }
        }

        #[test]
        fn every_applied_transition_moves_strictly_forward(current in status(), incoming in status()) {
            if current.can_advance_to(incoming) {
                prop_assert!(incoming.stage() > current.stage());
                prop_assert!(!incoming.can_advance_to(current), "{} <-> {}", current, incoming);
            }
        }

        #[test]
        fn a_duplicate_never_changes_the_outcome(
            start in status(),
            incoming in proptest::collection::vec(status(), 0..20),
        ) {
            // Delivering every callback twice ends where delivering it once does.
            let doubled: Vec<_> = incoming.iter().flat_map(|&s| [s, s]).collect();
            prop_assert_eq!(apply(start, &incoming).last().copied(), apply(start, &doubled).last().copied());
        }

        #[test]
        fn the_final_status_wins_whatever_the_arrival_order(
            (last, callbacks) in (
                proptest::sample::subsequence(vec![Accepted, Queued, Sending, Sent, PartiallyDelivered], 0..=5),
                proptest::sample::select(vec![Delivered, Undelivered, Failed]),
            )
                .prop_flat_map(|(mut path, last)| {
                    // One message's real callbacks: part of the outbound path and one final status.
                    path.push(last);
                    (Just(last), Just(path).prop_shuffle())
                }),
        ) {
            prop_assert_eq!(apply(Scheduled, &callbacks).last().copied(), Some(last));
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_known_names(input in "\\PC{0,25}") {
            let known = MessageStatus::ALL.iter().any(|s| s.as_str() == input);
            prop_assert_eq!(input.parse::<MessageStatus>().is_ok(), known);
        }
    }
}
