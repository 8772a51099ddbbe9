//! Step 2, one send: the in-doubt lookup first when the last attempt's outcome is unknown, then
//! the create request. No transaction is open meanwhile.

use chrono::DateTime;

use super::{Claimed, MINUTE, Outcome, SECOND, Worker};
use crate::settings::SendingSettings;
use crate::twilio::NewMessage;

impl Worker {
    /// Sends `c` as claimed at `now`: the validity period Twilio gets counts from `now`.
    pub(super) async fn dispatch(
        &self,
        c: &Claimed,
        now: i64,
        settings: &SendingSettings,
    ) -> Outcome {
        let Ok(to) = self.key.decrypt(&c.to_encrypted) else {
            return Outcome::Undecryptable;
        };
        let in_doubt = c.in_doubt || c.state == "sending";
        if in_doubt {
            let started = c.attempt_started_at.unwrap_or(now);
            let day = DateTime::from_timestamp_micros(started)
                .unwrap_or_default()
                .date_naive();
            match self.provider.list_to(&to, day).await {
                Ok(found) => {
                    // Created for this message: same body, not before the attempt (a minute of
                    // clock difference allowed).
                    let earliest = started - MINUTE;
                    if let Some(m) = found.into_iter().find(|m| {
                        m.body == c.body
                            && m.date_created
                                .is_none_or(|d| d.timestamp_micros() >= earliest)
                    }) {
                        return Outcome::FoundSent(m);
                    }
                }
                Err(e) => return Outcome::Unknown(e),
            }
        }
        let validity_period = c.validity_until.map(|until| {
            u32::try_from(((until - now) / SECOND).clamp(1, 36_000)).unwrap_or(36_000)
        });
        let message = NewMessage {
            to,
            sender: self.sender_of(c),
            body: c.body.clone(),
            status_callback: self.config.status_callback.clone(),
            validity_period,
            smart_encoded: c.smart_encoded.then_some(true),
            attempt: u32::try_from(c.attempts + 1).ok(),
        };
        match self.provider.create(&message, now, settings).await {
            Ok(m) => Outcome::Sent(m),
            Err(e) if e.in_doubt() => Outcome::Unknown(e),
            Err(e) => Outcome::Refused(e),
        }
    }
}
