//! The built-in simulator: what smsdesk sends through when it has no Twilio credentials. It answers
//! like Twilio (the Message JSON's shapes, the magic test numbers' errors), moves each message
//! along a realistic lifecycle (queued, then sent, then delivered or undelivered with a carrier
//! error, at the odds and delays in the settings), and posts **signed status callbacks over HTTP**
//! to the `StatusCallback` URL, which is smsdesk's own webhook: the whole pipeline is real.
//!
//! Callbacks are due at a time; [`Simulator::post_due`] posts those due by `now`. The server calls
//! it on a timer; tests call it with the time they choose. Seedable, so a test gets the same sids
//! and outcomes every run. The simulator's ledger is kept in memory, the newest
//! [`LEDGER_CAPACITY`] messages (a long-running instance does not grow without end; smsdesk asks
//! about a message within minutes of sending it, and for its price within a week): after a
//! restart it has forgotten earlier messages, as a fresh fake Twilio would.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use domain::money::Money;
use domain::segments::SegmentedMessage;
use domain::signature::AuthToken;
use domain::status::MessageStatus;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::settings::SimulatorSettings;
use crate::twilio::{Message, NewMessage, Sender, TwilioError};

/// Carrier errors a simulated undelivered message ends with.
const CARRIER_ERRORS: [(u32, &str); 5] = [
    (30003, "Unreachable destination handset"),
    (30005, "Unknown destination handset"),
    (30006, "Landline or unreachable carrier"),
    (30007, "Message filtered"),
    (30008, "Unknown error"),
];

/// Twilio's magic `To` numbers and the error each gives at create.
const MAGIC_TO: [(&str, u32, &str); 5] = [
    (
        "+15005550001",
        21211,
        "The 'To' number +15005550001 is not a valid phone number.",
    ),
    (
        "+15005550002",
        21612,
        "The 'To' phone number: +15005550002, is not currently reachable using the 'From' phone number",
    ),
    (
        "+15005550003",
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
    ),
    (
        "+15005550004",
        21610,
        "Attempt to send to unsubscribed recipient",
    ),
    (
        "+15005550009",
        21614,
        "'To' number is not a valid mobile number",
    ),
];

/// Twilio's magic `From` numbers and their errors.
const MAGIC_FROM: [(&str, u32, &str); 3] = [
    (
        "+15005550001",
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
    (
        "+15005550007",
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account",
    ),
    (
        "+15005550008",
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
];

struct PendingCallback {
    url: String,
    sid: String,
    status: MessageStatus,
    error: Option<(u32, &'static str)>,
    /// What the message costs, set on it when this status arrives (as Twilio, the price is
    /// known only once the message has left, and only a fetch of the message shows it).
    price: Option<Money>,
}

/// Callbacks posted at once (each message's in order).
const CALLBACK_LANES: usize = 32;

/// How many messages the simulator remembers (the oldest are forgotten first).
pub const LEDGER_CAPACITY: usize = 100_000;

struct State {
    rng: StdRng,
    /// The newest messages created, by sid.
    ledger: BTreeMap<String, Message>,
    /// Their sids, oldest first.
    order: VecDeque<String>,
    /// Callbacks by (due time, sequence).
    pending: BTreeMap<(i64, u64), PendingCallback>,
    sequence: u64,
}

/// A simulated Twilio account.
pub struct Simulator {
    account_sid: String,
    token: AuthToken,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

fn api_error(status: u16, code: u32, message: &str) -> TwilioError {
    TwilioError::Api {
        status,
        code: Some(code),
        message: domain::redact::mask_numbers(message),
        more_info: Some(format!("https://www.twilio.com/docs/errors/{code}")),
        retry_after: None,
    }
}

fn micros_to_datetime(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

impl Simulator {
    /// A simulator signing with `token`; `seed` makes sids and outcomes repeatable.
    pub fn new(account_sid: &str, token: AuthToken, seed: Option<u64>) -> Simulator {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Simulator {
            account_sid: account_sid.to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
            state: Mutex::new(State {
                rng,
                ledger: BTreeMap::new(),
                order: VecDeque::new(),
                pending: BTreeMap::new(),
                sequence: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a message as Twilio would at `now` (µs): an error for the magic numbers, otherwise
    /// `queued`, with its callbacks scheduled.
    pub fn create(
        &self,
        message: &NewMessage,
        now: i64,
        settings: &SimulatorSettings,
    ) -> Result<Message, TwilioError> {
        self.create_priced(message, now, settings, None)
    }

    /// [`Simulator::create`] for a message whose segments cost `per_segment` (the price table's
    /// price): the message carries its price once sent, as a fetch shows.
    pub fn create_priced(
        &self,
        message: &NewMessage,
        now: i64,
        settings: &SimulatorSettings,
        per_segment: Option<Money>,
    ) -> Result<Message, TwilioError> {
        if let Some((_, code, text)) = MAGIC_TO.iter().find(|(n, ..)| *n == message.to) {
            return Err(api_error(400, *code, text));
        }
        let from = match &message.sender {
            Sender::From(from) => {
                if let Some((_, code, text)) = MAGIC_FROM.iter().find(|(n, ..)| n == from) {
                    return Err(api_error(400, *code, text));
                }
                Some(from.clone())
            }
            Sender::MessagingService(_) => None,
        };
        let segments =
            SegmentedMessage::analyze(&message.body, message.smart_encoded == Some(true))
                .map_err(|e| api_error(400, 21617, &e.to_string()))?
                .segment_count();
        let mut state = self.lock();
        let mut bytes = [0u8; 16];
        state.rng.fill(&mut bytes);
        let sid = format!("SM{}", hex::encode(bytes));
        let created = Message {
            sid: sid.clone(),
            status: MessageStatus::Queued,
            to: message.to.clone(),
            from,
            messaging_service_sid: match &message.sender {
                Sender::MessagingService(mg) => Some(mg.clone()),
                Sender::From(_) => None,
            },
            body: message.body.clone(),
            num_segments: u32::try_from(segments).unwrap_or(u32::MAX),
            // Without callbacks nothing marks it sent later: priced at once.
            price: if message.status_callback.is_none() {
                per_segment
                    .and_then(|p| p.for_segments(u32::try_from(segments).unwrap_or(u32::MAX)))
            } else {
                None
            },
            price_unit: Some("USD".to_owned()),
            error_code: None,
            error_message: None,
            date_created: micros_to_datetime(now),
            date_sent: None,
            date_updated: micros_to_datetime(now),
        };
        state.ledger.insert(sid.clone(), created.clone());
        state.order.push_back(sid.clone());
        while state.order.len() > LEDGER_CAPACITY {
            if let Some(oldest) = state.order.pop_front() {
                state.ledger.remove(&oldest);
            }
        }
        if let Some(url) = &message.status_callback {
            let sent_at = now + i64::from(settings.sent_after_ms) * 1_000;
            let final_at = sent_at + i64::from(settings.final_after_ms) * 1_000;
            let delivered = state.rng.random_range(0..100u8) < settings.delivered_percent;
            let error = (!delivered)
                .then(|| CARRIER_ERRORS[state.rng.random_range(0..CARRIER_ERRORS.len())]);
            for (at, status, error) in [
                (sent_at, MessageStatus::Sent, None),
                (
                    final_at,
                    if delivered {
                        MessageStatus::Delivered
                    } else {
                        MessageStatus::Undelivered
                    },
                    error,
                ),
            ] {
                state.sequence += 1;
                let seq = state.sequence;
                state.pending.insert(
                    (at, seq),
                    PendingCallback {
                        url: url.clone(),
                        sid: sid.clone(),
                        status,
                        error,
                        price: per_segment.and_then(|p| {
                            p.for_segments(u32::try_from(segments).unwrap_or(u32::MAX))
                        }),
                    },
                );
            }
        }
        Ok(created)
    }

    /// One message by sid, as Twilio's fetch answers it (404 / 20404 for an unknown sid).
    pub fn fetch(&self, sid: &str) -> Result<Message, TwilioError> {
        self.lock()
            .ledger
            .get(sid)
            .cloned()
            .ok_or_else(|| api_error(404, 20404, "The requested resource was not found"))
    }

    /// Messages created for `to` and sent on or after `day` (as Twilio's `DateSent>` filter).
    pub fn list_messages_to(&self, to: &str, day: NaiveDate) -> Vec<Message> {
        let state = self.lock();
        state
            .ledger
            .values()
            .filter(|m| m.to == to)
            .filter(|m| m.date_created.is_some_and(|d| d.date_naive() >= day))
            .cloned()
            .collect()
    }

    /// What the simulated phone `to` (E.164) received: every message created for it, newest
    /// first, at most `limit`. Read by the simulator's inbox (developers and tests read codes
    /// there without a phone).
    pub fn inbox(&self, to: &str, limit: usize) -> Vec<Message> {
        let state = self.lock();
        let mut received: Vec<Message> = state
            .ledger
            .values()
            .filter(|m| m.to == to)
            .cloned()
            .collect();
        received.sort_by_key(|m| std::cmp::Reverse(m.date_created));
        received.truncate(limit);
        received
    }

    /// How many callbacks wait to be posted, and when the next is due.
    pub fn next_due(&self) -> Option<i64> {
        self.lock().pending.keys().next().map(|(at, _)| *at)
    }

    /// Posts every callback due by `now`, signed, each message's in due order; returns how many
    /// were answered with a 2xx. One that smsdesk refuses is dropped, as Twilio gives up on them
    /// too; one that cannot reach smsdesk is tried again a second later.
    pub async fn post_due(&self, now: i64) -> usize {
        let due: Vec<PendingCallback> = {
            let mut state = self.lock();
            let later = state.pending.split_off(&(now.saturating_add(1), 0));
            let due = std::mem::replace(&mut state.pending, later);
            let due: Vec<PendingCallback> = due.into_values().collect();
            for cb in &due {
                if let Some(m) = state.ledger.get_mut(&cb.sid) {
                    m.status = cb.status;
                    m.date_updated = micros_to_datetime(now);
                    if cb.status == MessageStatus::Sent {
                        m.date_sent = micros_to_datetime(now);
                        m.price = cb.price;
                    }
                    m.error_code = cb.error.map(|(c, _)| c);
                    m.error_message = cb.error.map(|(_, t)| t.to_owned());
                }
            }
            due
        };
        // Each message's callbacks in order, messages side by side (as Twilio posts them: one
        // at a time would fall behind a busy smsdesk, and the backlog would grow without end).
        let mut groups: Vec<Vec<PendingCallback>> = Vec::new();
        let mut group_of: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for cb in due {
            match group_of.get(&cb.sid) {
                Some(&i) => groups[i].push(cb),
                None => {
                    group_of.insert(cb.sid.clone(), groups.len());
                    groups.push(vec![cb]);
                }
            }
        }
        let posted: Vec<(usize, Vec<(PendingCallback, String)>)> = futures::stream::iter(groups)
            .map(|group| self.post_in_order(group))
            .buffer_unordered(CALLBACK_LANES)
            .collect()
            .await;
        let answered = posted.iter().map(|(n, _)| n).sum();
        // Callbacks smsdesk could not be reached for (it is stopping, or busy): tried again in a
        // second, like Twilio's retry of a connection that failed; one log line for them all.
        let unreached: Vec<(PendingCallback, String)> =
            posted.into_iter().flat_map(|(_, u)| u).collect();
        if let Some((_, error)) = unreached.first() {
            tracing::warn!(
                error = %error,
                callbacks = unreached.len(),
                "simulated status callbacks could not reach smsdesk; trying them again in a second"
            );
            let mut state = self.lock();
            for (cb, _) in unreached {
                state.sequence += 1;
                let seq = state.sequence;
                state
                    .pending
                    .insert((now.saturating_add(1_000_000), seq), cb);
            }
        }
        answered
    }

    /// Posts one message's callbacks in order: how many were answered with a 2xx, and those
    /// that could not reach smsdesk (from the first that failed on, so the order holds).
    async fn post_in_order(
        &self,
        group: Vec<PendingCallback>,
    ) -> (usize, Vec<(PendingCallback, String)>) {
        let mut answered = 0;
        let mut group = group.into_iter();
        while let Some(cb) = group.next() {
            match self.post(&cb).await {
                Ok(true) => answered += 1,
                Ok(false) => {}
                Err(e) => {
                    let mut unreached = vec![(cb, e)];
                    unreached.extend(group.map(|cb| (cb, String::new())));
                    return (answered, unreached);
                }
            }
        }
        (answered, Vec::new())
    }

    /// Posts one callback, signed: whether smsdesk answered 2xx, or why it could not be reached.
    async fn post(&self, cb: &PendingCallback) -> Result<bool, String> {
        let (to, from) = {
            let state = self.lock();
            state
                .ledger
                .get(&cb.sid)
                .map(|m| (m.to.clone(), m.from.clone().unwrap_or_default()))
                .unwrap_or_default()
        };
        let mut params: Vec<(&str, String)> = vec![
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("From", from),
            ("MessageSid", cb.sid.clone()),
            ("MessageStatus", cb.status.as_str().to_owned()),
            ("SmsSid", cb.sid.clone()),
            ("SmsStatus", cb.status.as_str().to_owned()),
            ("To", to),
        ];
        if let Some((code, text)) = cb.error {
            params.push(("ErrorCode", code.to_string()));
            params.push(("ErrorMessage", text.to_owned()));
        }
        let signature = domain::signature::sign(&self.token, &cb.url, &params);
        let posted = self
            .http
            .post(&cb.url)
            .header("X-Twilio-Signature", signature)
            .header("User-Agent", "TwilioProxy/1.1 (smsdesk simulator)")
            .form(&params)
            .send()
            .await;
        match posted {
            Ok(r) if r.status().is_success() => Ok(true),
            Ok(r) => {
                tracing::warn!(status = %r.status(), sid = %cb.sid, "simulated status callback refused");
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulator() -> Simulator {
        Simulator::new(
            "AC00000000000000000000000000000000",
            AuthToken::new("secret").expect("token"),
            Some(7),
        )
    }

    fn message(to: &str) -> NewMessage {
        NewMessage {
            to: to.to_owned(),
            sender: Sender::From("+15005550006".to_owned()),
            body: "Shipment 42 picked up".to_owned(),
            status_callback: Some("http://127.0.0.1:9/webhooks/twilio/status".to_owned()),
            validity_period: None,
            smart_encoded: None,
            attempt: Some(1),
        }
    }

    #[test]
    fn magic_numbers_fail_like_twilio() {
        let sim = simulator();
        let settings = SimulatorSettings::default();
        for (to, code) in [
            ("+15005550001", 21211),
            ("+15005550002", 21612),
            ("+15005550003", 21408),
            ("+15005550004", 21610),
            ("+15005550009", 21614),
        ] {
            match sim.create(&message(to), 0, &settings) {
                Err(TwilioError::Api {
                    status: 400,
                    code: Some(c),
                    ..
                }) => assert_eq!(c, code, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        let mut from_magic = message("+14155552671");
        from_magic.sender = Sender::From("+15005550008".to_owned());
        assert!(matches!(
            sim.create(&from_magic, 0, &settings),
            Err(TwilioError::Api {
                code: Some(21611),
                ..
            })
        ));
    }

    #[test]
    fn the_ledger_keeps_the_newest_messages_and_forgets_the_oldest() {
        let sim = simulator();
        let settings = SimulatorSettings::default();
        let mut without_callback = message("+14155552671");
        without_callback.status_callback = None;
        let first = sim
            .create(&without_callback, 0, &settings)
            .expect("created");
        let mut last = first.clone();
        for i in 0..LEDGER_CAPACITY {
            last = sim
                .create(&without_callback, i as i64, &settings)
                .expect("created");
        }
        assert!(sim.fetch(&first.sid).is_err(), "the oldest is forgotten");
        assert!(sim.fetch(&last.sid).is_ok());
        assert_eq!(sim.lock().ledger.len(), LEDGER_CAPACITY);
    }

    #[test]
    fn a_message_is_queued_with_its_callbacks_due_in_order() {
        let sim = simulator();
        let settings = SimulatorSettings {
            delivered_percent: 100,
            sent_after_ms: 10,
            final_after_ms: 20,
        };
        let created = sim
            .create(&message("+14155552671"), 1_000_000, &settings)
            .expect("created");
        assert_eq!(created.status, MessageStatus::Queued);
        assert!(created.sid.starts_with("SM") && created.sid.len() == 34);
        assert_eq!(created.num_segments, 1);
        assert_eq!(sim.next_due(), Some(1_010_000));
        let state = sim.lock();
        let statuses: Vec<_> = state.pending.values().map(|c| c.status).collect();
        assert_eq!(statuses, [MessageStatus::Sent, MessageStatus::Delivered]);
    }

    #[test]
    fn the_same_seed_gives_the_same_sids() {
        let settings = SimulatorSettings::default();
        let a = simulator().create(&message("+14155552671"), 0, &settings);
        let b = simulator().create(&message("+14155552671"), 0, &settings);
        assert_eq!(a.expect("a").sid, b.expect("b").sid);
    }
}
