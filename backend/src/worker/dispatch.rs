//! Step 2, one send: the in-doubt lookup first when the last attempt's outcome is unknown (at the
//! provider that attempt went to, or at every provider when a crash left that unknown), then the
//! create request at the provider the breakers allow: the primary while it is healthy, else the
//! fallback; and at the fallback when the primary refuses with one of the failover codes. No
//! transaction is open meanwhile.

use chrono::DateTime;

use super::breaker::{Allowed, Breaker};
use super::{Carrier, Claimed, Hold, MINUTE, Outcome, SECOND, Worker};
use crate::settings::SendingSettings;
use crate::twilio::{self, NewMessage, Sender, TwilioError};

impl Worker {
    /// Sends `c` as claimed at `now`: the validity period Twilio gets counts from `now`.
    /// `clock` is the step's clock (`now` moved on by the time elapsed), which the breakers read.
    pub(super) async fn dispatch(
        &self,
        c: &Claimed,
        now: i64,
        settings: &SendingSettings,
        clock: &(dyn Fn() -> i64 + Sync),
    ) -> (Outcome, Option<Carrier>) {
        let recorded = c.recorded_carrier();
        let Ok(to) = self.key.decrypt(&c.to_encrypted) else {
            return (Outcome::Undecryptable, recorded);
        };
        let in_doubt = c.in_doubt || c.state == "sending";
        if in_doubt {
            // Every provider is asked: an earlier attempt still in doubt may be at either.
            for carrier in self.carriers() {
                let breaker = self.breaker(carrier);
                if let Allowed::PausedUntil(until) = breaker.allowed(clock()) {
                    return (Outcome::Held(until, Hold::Paused), recorded);
                }
                match self.look_up(c, &to, now, carrier, clock).await {
                    Ok(Some(m)) => return (Outcome::FoundSent(m), Some(carrier)),
                    Ok(None) => {}
                    Err(e) if e.rate_limited() => {
                        let until = breaker.resume_at(clock());
                        return (Outcome::Held(until, Hold::RateLimited), recorded);
                    }
                    // Still unknown: the attempt stays with the provider it was with.
                    Err(e) => return (Outcome::Unknown(e), recorded),
                }
            }
        }
        let validity_period = c.validity_until.map(|until| {
            u32::try_from(((until - now) / SECOND).clamp(1, 36_000)).unwrap_or(36_000)
        });
        let mut message = NewMessage {
            to,
            sender: self.sender_of(c),
            body: c.body.clone(),
            status_callback: self.config.status_callback.clone(),
            validity_period,
            smart_encoded: c.smart_encoded.then_some(true),
            attempt: u32::try_from(c.attempts + 1).ok(),
        };
        let Some(carrier) = self.choose(&message.to, c, settings, clock()) else {
            // Every provider is paused (or probing): back to the outbox, untried.
            return (Outcome::NotStarted, recorded);
        };
        match self
            .create(carrier, &mut message, now, settings, clock)
            .await
        {
            Err(e) if e.rate_limited() => {
                let until = self.breaker(carrier).resume_at(clock());
                (Outcome::Held(until, Hold::RateLimited), recorded)
            }
            // Refused by the primary (an answer, not a 5xx: nothing went out) with a failover
            // code: the fallback carries it, or it waits for the fallback.
            Err(TwilioError::Api {
                code: Some(code),
                status,
                ..
            }) if carrier == Carrier::Primary
                && status < 500
                && self.config.fallback.is_some()
                && settings.failover.codes.contains(&code) =>
            {
                if !self.fallback_takes(clock()) {
                    let until = self.breaker(Carrier::Fallback).resume_at(clock());
                    return (Outcome::Held(until, Hold::FallbackPaused(code)), recorded);
                }
                tracing::info!(
                    code,
                    "the primary refused a message with a failover code; it goes to the fallback provider"
                );
                match self
                    .create(Carrier::Fallback, &mut message, now, settings, clock)
                    .await
                {
                    Ok(m) => (Outcome::FailedOver(m, code), Some(Carrier::Fallback)),
                    Err(e) if e.rate_limited() => {
                        let until = self.breaker(Carrier::Fallback).resume_at(clock());
                        (Outcome::Held(until, Hold::RateLimited), recorded)
                    }
                    result => (outcome_of(result), Some(Carrier::Fallback)),
                }
            }
            result => (outcome_of(result), Some(carrier)),
        }
    }

    /// The provider for this send: the one its failover route names first (the primary unless
    /// one sends it to the fallback), else the other, if their breakers let it go now.
    fn choose(
        &self,
        to: &str,
        c: &Claimed,
        settings: &SendingSettings,
        at: i64,
    ) -> Option<Carrier> {
        let routed = self.config.fallback.is_some() && !settings.failover.routes.is_empty() && {
            let region = domain::phone::PhoneNumber::parse(to, None)
                .map(|n| n.region().to_owned())
                .unwrap_or_default();
            let category = c.category.as_deref().and_then(|k| k.parse().ok());
            settings.failover.routes_to_fallback(&region, category)
        };
        let order = if routed {
            [Carrier::Fallback, Carrier::Primary]
        } else {
            [Carrier::Primary, Carrier::Fallback]
        };
        order.into_iter().find(|&carrier| match carrier {
            Carrier::Primary => self.config.breaker.take(at),
            Carrier::Fallback => self.fallback_takes(at),
        })
    }

    /// The providers configured, primary first.
    fn carriers(&self) -> Vec<Carrier> {
        match self.config.fallback {
            Some(_) => vec![Carrier::Primary, Carrier::Fallback],
            None => vec![Carrier::Primary],
        }
    }

    fn breaker(&self, carrier: Carrier) -> &Breaker {
        match (carrier, &self.config.fallback) {
            (Carrier::Fallback, Some(f)) => &f.breaker,
            _ => &self.config.breaker,
        }
    }

    fn fallback_takes(&self, at: i64) -> bool {
        self.config
            .fallback
            .as_ref()
            .is_some_and(|f| f.breaker.take(at))
    }

    /// Whether Twilio's Message list at `carrier` shows `c` (same body, not before the attempt,
    /// a minute of clock difference allowed).
    async fn look_up(
        &self,
        c: &Claimed,
        to: &str,
        now: i64,
        carrier: Carrier,
        clock: &(dyn Fn() -> i64 + Sync),
    ) -> Result<Option<twilio::Message>, TwilioError> {
        let started = c.attempt_started_at.unwrap_or(now);
        let day = DateTime::from_timestamp_micros(started)
            .unwrap_or_default()
            .date_naive();
        let provider = match (carrier, &self.config.fallback) {
            (Carrier::Fallback, Some(f)) => &f.provider,
            _ => &self.provider,
        };
        let found = provider.list_to(to, day).await;
        if let Err(e) = &found {
            self.breaker(carrier)
                .observe_lookup_failure(e.signal(), clock());
        }
        let earliest = started - MINUTE;
        Ok(found?.into_iter().find(|m| {
            m.body == c.body
                && m.date_created
                    .is_none_or(|d| d.timestamp_micros() >= earliest)
        }))
    }

    /// The create request at `carrier` (with the fallback's own sender there).
    async fn create(
        &self,
        carrier: Carrier,
        message: &mut NewMessage,
        now: i64,
        settings: &SendingSettings,
        clock: &(dyn Fn() -> i64 + Sync),
    ) -> Result<twilio::Message, TwilioError> {
        let provider = match (carrier, &self.config.fallback) {
            (Carrier::Fallback, Some(f)) => {
                message.sender = f.sender.clone();
                &f.provider
            }
            _ => &self.provider,
        };
        let result = provider.create(message, now, settings).await;
        let signal = match &result {
            Ok(_) => super::breaker::Signal::Answered,
            Err(e) => e.signal(),
        };
        self.breaker(carrier).observe(signal, clock());
        result
    }

    /// The sender a message names, else this instance's default.
    pub(super) fn sender_of(&self, claimed: &Claimed) -> Sender {
        match &claimed.sender {
            Some(s) => Sender::From(s.clone()),
            None => self.config.default_sender.clone(),
        }
    }
}

fn outcome_of(result: Result<twilio::Message, TwilioError>) -> Outcome {
    match result {
        Ok(m) => Outcome::Sent(m),
        Err(e) if e.in_doubt() => Outcome::Unknown(e),
        Err(e) => Outcome::Refused(e),
    }
}
