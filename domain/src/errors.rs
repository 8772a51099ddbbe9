//! Twilio error codes: what each means, what smsdesk does about it, and what a person should do.
//!
//! A code arrives either in the error body of a rejected create request (`{"code": 21211, ...}`)
//! or as `ErrorCode` in a status callback for an `undelivered` / `failed` message. [`lookup`] turns
//! it into an [`ErrorInfo`]; the worker acts on its [`Disposition`], the console shows its meaning
//! and operator action, and [`ErrorInfo::alert_admins`] pages the administrators.
//!
//! Only codes whose meaning is documented by Twilio are listed; any other code gets a cautious
//! default (permanent, with a link to Twilio's page for it) rather than a guess.
//! HTTP 5xx answers and network errors carry no Twilio code: the Twilio client handles those.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

// Short names for the table below.
use Disposition::{OptOut, Permanent, RetryWithBackoff};

/// What smsdesk does with the message that got this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Disposition {
    /// Twilio pushed back for a moment (rate limit): retry the same request soon, with
    /// exponential backoff. The request was refused, so retrying cannot send twice.
    RetryWithBackoff,
    /// The condition may clear within minutes or hours: send again later, but at most
    /// `max_retries` more times, since every attempt is billed.
    RetryLater {
        /// Further attempts allowed after the one that got this error.
        max_retries: u8,
    },
    /// Retrying cannot help: mark the message failed and show the operator action.
    Permanent,
    /// The recipient opted out: mark the message failed and record the opt-out, so smsdesk stops
    /// trying (Twilio already blocks the pair).
    OptOut,
}

impl Disposition {
    /// Whether the message may be attempted again.
    pub fn may_retry(self) -> bool {
        match self {
            Disposition::RetryWithBackoff => true,
            Disposition::RetryLater { max_retries } => max_retries > 0,
            Disposition::Permanent | Disposition::OptOut => false,
        }
    }
}

/// Everything smsdesk knows about one Twilio error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorInfo {
    code: u32,
    known: bool,
    meaning: Cow<'static, str>,
    disposition: Disposition,
    alert_admins: bool,
    operator_action: Cow<'static, str>,
}

impl ErrorInfo {
    /// Twilio's numeric code.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// Whether the code is in smsdesk's table (otherwise this is the cautious default).
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// What went wrong, in a few words.
    pub fn meaning(&self) -> &str {
        &self.meaning
    }

    /// What smsdesk does with the message.
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// Whether administrators must be alerted: set when the fault is in the account or its
    /// configuration, so every message (not just this one) will fail until someone fixes it.
    pub fn alert_admins(&self) -> bool {
        self.alert_admins
    }

    /// What an operator should do, in one or two sentences.
    pub fn operator_action(&self) -> &str {
        &self.operator_action
    }

    /// Twilio's page for this code.
    pub fn more_info_url(&self) -> String {
        more_info_url(self.code)
    }
}

fn more_info_url(code: u32) -> String {
    format!("https://www.twilio.com/docs/errors/{code}")
}

/// One row of the table.
struct Entry {
    code: u32,
    meaning: &'static str,
    disposition: Disposition,
    alert_admins: bool,
    operator_action: &'static str,
}

const fn entry(
    code: u32,
    meaning: &'static str,
    disposition: Disposition,
    alert_admins: bool,
    operator_action: &'static str,
) -> Entry {
    Entry {
        code,
        meaning,
        disposition,
        alert_admins,
        operator_action,
    }
}

const fn retry_later(max_retries: u8) -> Disposition {
    Disposition::RetryLater { max_retries }
}

/// Administrators are alerted.
const ALERT: bool = true;
/// The message's operator deals with it.
const NO_ALERT: bool = false;

/// The table, sorted by code (a test checks), so [`lookup`] can binary-search it.
const TABLE: &[Entry] = &[
    entry(
        20003,
        "authentication failed: Twilio rejected the account SID and auth token or API key",
        Permanent,
        ALERT,
        "An administrator must check the Twilio credentials in smsdesk's settings (they may have been rotated) and then resend the failed messages.",
    ),
    entry(
        20404,
        "the requested Twilio resource was not found",
        Permanent,
        NO_ALERT,
        "Check that the message SID belongs to the configured Twilio account; a message deleted in Twilio cannot be fetched again.",
    ),
    entry(
        20429,
        "too many requests: Twilio is rate-limiting the API",
        RetryWithBackoff,
        NO_ALERT,
        "Nothing to do: smsdesk retries with backoff. If it persists, lower the sending rate.",
    ),
    entry(
        21211,
        "invalid 'To' phone number",
        Permanent,
        NO_ALERT,
        "Correct the recipient's number (E.164, such as +14155550100) and send again.",
    ),
    entry(
        21212,
        "invalid 'From' phone number",
        Permanent,
        ALERT,
        "An administrator must set a valid sender: a Twilio number in E.164 format or an alphanumeric sender ID allowed for the destination.",
    ),
    entry(
        21265,
        "the 'To' number is a short code, which cannot receive messages from Twilio numbers",
        Permanent,
        NO_ALERT,
        "Use the recipient's mobile number instead of a short code.",
    ),
    entry(
        21266,
        "the 'To' and 'From' numbers are the same",
        Permanent,
        NO_ALERT,
        "Send to a recipient other than the sender's own number.",
    ),
    entry(
        21408,
        "the account has no permission to send to the recipient's region (geo permissions)",
        Permanent,
        NO_ALERT,
        "If messages to this country are wanted, an administrator must enable it in Twilio Console under Messaging geographic permissions, then send again.",
    ),
    entry(
        21601,
        "the 'From' number is not an SMS-capable phone number of this Twilio account",
        Permanent,
        ALERT,
        "An administrator must configure a sender bought from or ported to Twilio on this account; verified caller IDs cannot send messages.",
    ),
    entry(
        21602,
        "message body is required",
        Permanent,
        NO_ALERT,
        "Write a message body. smsdesk should have caught this: report it to the developers.",
    ),
    entry(
        21603,
        "a 'From' number is required",
        Permanent,
        NO_ALERT,
        "Choose a sender or Messaging Service. smsdesk should have caught this: report it to the developers.",
    ),
    entry(
        21604,
        "a 'To' number is required",
        Permanent,
        NO_ALERT,
        "Choose a recipient. smsdesk should have caught this: report it to the developers.",
    ),
    entry(
        21606,
        "the 'From' number is not a message-capable Twilio number for this destination or account",
        Permanent,
        ALERT,
        "An administrator must check the sender: it must be an SMS-capable number of this account (short codes only reach their own country).",
    ),
    entry(
        21608,
        "trial account: the 'To' number has not been verified",
        Permanent,
        ALERT,
        "Verify the recipient's number in Twilio Console, or have an administrator upgrade the Twilio account.",
    ),
    entry(
        21610,
        "the recipient replied STOP: Twilio blocks messages to them from this sender",
        OptOut,
        NO_ALERT,
        "Do not resend. smsdesk records the opt-out; the recipient can text START to opt back in.",
    ),
    entry(
        21611,
        "the sender has more than about 10 hours of messages queued",
        retry_later(2),
        NO_ALERT,
        "smsdesk retries later. Sustained, it means sending faster than the sender's throughput: add senders to the Messaging Service or spread the campaign out.",
    ),
    entry(
        21612,
        "the message cannot be routed with this 'To' and 'From' combination",
        Permanent,
        NO_ALERT,
        "Check that the sender can reach the recipient's country and number type, or send from another sender.",
    ),
    entry(
        21614,
        "the 'To' number is not a mobile number and cannot receive SMS",
        Permanent,
        NO_ALERT,
        "Ask the recipient for a mobile number.",
    ),
    entry(
        21617,
        "the message body exceeds 1,600 characters",
        Permanent,
        NO_ALERT,
        "Shorten the message or split it into several. smsdesk should have caught this: report it to the developers.",
    ),
    entry(
        21635,
        "the 'To' number is a landline",
        Permanent,
        NO_ALERT,
        "Ask the recipient for a mobile number.",
    ),
    entry(
        30001,
        "queue overflow: the message waited too long in Twilio's queue",
        retry_later(2),
        NO_ALERT,
        "smsdesk retries later. If it recurs, the sender's throughput is too low for the volume: add senders or spread the campaign out.",
    ),
    entry(
        30002,
        "the Twilio account is suspended",
        Permanent,
        ALERT,
        "An administrator must check the Twilio account's balance and any notice from Twilio, then resend the failed messages.",
    ),
    entry(
        30003,
        "unreachable handset: the phone is off or has no signal",
        retry_later(2),
        NO_ALERT,
        "smsdesk retries later, at most twice. If it still fails, contact the recipient another way.",
    ),
    entry(
        30004,
        "message blocked by the recipient or their carrier",
        Permanent,
        NO_ALERT,
        "Do not resend. Contact the recipient another way.",
    ),
    entry(
        30005,
        "unknown or inactive destination number",
        Permanent,
        NO_ALERT,
        "Check the number with the recipient; it may be mistyped or no longer in service.",
    ),
    entry(
        30006,
        "landline or unreachable carrier",
        Permanent,
        NO_ALERT,
        "Ask the recipient for a mobile number.",
    ),
    entry(
        30007,
        "filtered by the carrier as spam or unwanted content",
        Permanent,
        NO_ALERT,
        "Do not resend the same text: reword the message (no URL shorteners, clear sender identity, opt-out wording) and check the sender's registration.",
    ),
    entry(
        30008,
        "unknown delivery error",
        retry_later(1),
        NO_ALERT,
        "smsdesk retries once. If it fails again, contact the recipient another way or ask Twilio support with the message SID.",
    ),
    entry(
        30022,
        "US A2P 10DLC: carrier rate limit for the campaign exceeded",
        retry_later(2),
        NO_ALERT,
        "smsdesk retries later. If it recurs, slow down sending to what the registered campaign allows.",
    ),
    entry(
        30032,
        "the toll-free number has not been verified",
        Permanent,
        ALERT,
        "An administrator must complete Toll-Free Verification in Twilio Console; until it is approved, messages from this number to the US and Canada are blocked.",
    ),
    entry(
        30034,
        "US A2P 10DLC: the sender number is not registered to an approved campaign",
        Permanent,
        ALERT,
        "An administrator must register the number to an approved A2P 10DLC campaign (or use a registered sender); until then US carriers block its messages.",
    ),
    entry(
        30036,
        "validity period expired: the message was still queued when its validity period ran out",
        Permanent,
        NO_ALERT,
        "Send a fresh message if it is still relevant (for a one-time code, a new code).",
    ),
];

/// Everything smsdesk knows about `code`; an unknown code gets a cautious default: permanent, no
/// alert, and an operator action pointing at Twilio's page for the code.
pub fn lookup(code: u32) -> ErrorInfo {
    match TABLE.binary_search_by_key(&code, |entry| entry.code) {
        Ok(index) => {
            let entry = &TABLE[index];
            ErrorInfo {
                code,
                known: true,
                meaning: Cow::Borrowed(entry.meaning),
                disposition: entry.disposition,
                alert_admins: entry.alert_admins,
                operator_action: Cow::Borrowed(entry.operator_action),
            }
        }
        // Permanent, because retrying blindly could bill many failed attempts.
        Err(_) => ErrorInfo {
            code,
            known: false,
            meaning: Cow::Owned(format!("Twilio error {code}, not in smsdesk's table")),
            disposition: Disposition::Permanent,
            alert_admins: false,
            operator_action: Cow::Owned(format!(
                "See {} for what it means, then correct and resend the message if appropriate.",
                more_info_url(code)
            )),
        },
    }
}

/// Every code in smsdesk's table, in ascending order (for the documentation page and tests).
pub fn known_codes() -> impl ExactSizeIterator<Item = u32> + Clone {
    TABLE.iter().map(|entry| entry.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_map_as_twilio_reference_md_says() {
        // The table in /work/shared/twilio-reference.md, row by row.
        let expected = [
            (20003, Permanent, true),
            (20429, RetryWithBackoff, false),
            (21211, Permanent, false),
            (21408, Permanent, false),
            (21608, Permanent, true),
            (21610, OptOut, false),
            (21611, retry_later(2), false),
            (21612, Permanent, false),
            (21614, Permanent, false),
            (30001, retry_later(2), false),
            (30003, retry_later(2), false),
            (30004, Permanent, false),
            (30005, Permanent, false),
            (30006, Permanent, false),
            (30007, Permanent, false),
            (30008, retry_later(1), false),
            (30036, Permanent, false),
        ];
        for (code, disposition, alert) in expected {
            let info = lookup(code);
            assert!(info.is_known(), "{code}");
            assert_eq!(info.disposition(), disposition, "{code}");
            assert_eq!(info.alert_admins(), alert, "{code}");
        }
    }

    #[test]
    fn authentication_failure_alerts_admins_and_is_not_retried() {
        let info = lookup(20003);
        assert!(info.alert_admins());
        assert!(!info.disposition().may_retry());
    }

    #[test]
    fn unreachable_handset_retries_later_at_most_twice() {
        assert_eq!(
            lookup(30003).disposition(),
            Disposition::RetryLater { max_retries: 2 }
        );
    }

    #[test]
    fn unknown_delivery_error_is_retried_a_limited_number_of_times() {
        let Disposition::RetryLater { max_retries } = lookup(30008).disposition() else {
            panic!("30008 should be retried later");
        };
        assert!((1..=2).contains(&max_retries));
    }

    #[test]
    fn recipient_who_replied_stop_is_recorded_as_opted_out() {
        assert_eq!(lookup(21610).disposition(), Disposition::OptOut);
    }

    #[test]
    fn test_credential_magic_numbers_have_entries() {
        // The outcomes of Twilio's magic test numbers, which smsdesk's simulator reproduces.
        for code in [21211, 21212, 21408, 21606, 21610, 21611, 21612, 21614] {
            assert!(lookup(code).is_known(), "{code}");
        }
    }

    #[test]
    fn every_code_smsdesk_documents_is_in_the_table() {
        let required = [
            20003, 20429, 21211, 21212, 21408, 21601, 21602, 21603, 21604, 21606, 21608, 21610,
            21611, 21612, 21614, 21617, 30001, 30002, 30003, 30004, 30005, 30006, 30007, 30008,
            30032, 30034, 30036,
        ];
        for code in required {
            assert!(lookup(code).is_known(), "{code}");
        }
    }

    #[test]
    fn unknown_code_is_permanent_and_points_to_twilio_docs() {
        let info = lookup(12345);
        assert!(!info.is_known());
        assert_eq!(info.code(), 12345);
        assert_eq!(info.disposition(), Disposition::Permanent);
        assert!(!info.alert_admins());
        assert!(
            info.operator_action()
                .contains("https://www.twilio.com/docs/errors/12345"),
            "{}",
            info.operator_action()
        );
        assert!(info.meaning().contains("12345"));
    }

    #[test]
    fn known_codes_are_sorted_and_unique() {
        let codes: Vec<u32> = known_codes().collect();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]), "{codes:?}");
    }

    #[test]
    fn every_entry_is_written_for_a_person() {
        for code in known_codes() {
            let info = lookup(code);
            assert!(!info.meaning().is_empty(), "{code}");
            assert!(info.operator_action().ends_with('.'), "{code}");
            assert!(info.operator_action().len() > 20, "{code}");
        }
    }

    #[test]
    fn account_level_failures_alert_admins_and_recipient_failures_do_not() {
        for code in [20003, 21212, 21601, 21606, 21608, 30002, 30032, 30034] {
            assert!(lookup(code).alert_admins(), "{code}");
        }
        for code in [21211, 21610, 21614, 30003, 30005, 30007] {
            assert!(!lookup(code).alert_admins(), "{code}");
        }
    }

    #[test]
    fn error_info_serializes_for_the_browser() {
        let info = lookup(30003);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["code"], 30003);
        assert_eq!(json["disposition"]["kind"], "retry_later");
        assert_eq!(json["disposition"]["max_retries"], 2);
        let back: ErrorInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn more_info_url_is_twilios_page_for_the_code() {
        assert_eq!(
            lookup(21211).more_info_url(),
            "https://www.twilio.com/docs/errors/21211"
        );
    }

    proptest! {
        #[test]
        fn lookup_always_answers_with_the_code_asked_for(code in any::<u32>()) {
            let info = lookup(code);
            prop_assert_eq!(info.code(), code);
            prop_assert_eq!(info.is_known(), known_codes().any(|known| known == code));
            if !info.is_known() {
                prop_assert_eq!(info.disposition(), Disposition::Permanent);
                prop_assert!(info.operator_action().contains(&info.more_info_url()));
            }
        }

        #[test]
        fn only_retry_dispositions_may_retry(code in proptest::sample::select(known_codes().collect::<Vec<_>>())) {
            let disposition = lookup(code).disposition();
            let retries = matches!(disposition, Disposition::RetryWithBackoff | Disposition::RetryLater { .. });
            prop_assert_eq!(disposition.may_retry(), retries);
        }
    }
}
