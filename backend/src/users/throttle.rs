//! Sign-in throttling per client address, in memory (see [the sign-in protection](super)).
//!
//! Each instance of smsdesk keeps its own counts: they are about one machine's visitors, need no
//! database round trip before the password check, and are lost on restart (which costs an
//! attacker nothing they could not get by waiting half an hour). Time is a parameter, as
//! everywhere in sign-in, so tests move it by hand.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use domain::ratelimit::WindowLimit;

use super::{Charge, FAILURES_FORGOTTEN_AFTER, LOCK_AFTER_FAILURES};

/// Failed sign-ins an address may make in any [`ADDRESS_WINDOW`], whatever the e-mails. No more
/// than an account's lock takes, so that an address meets its own limit first.
pub const ADDRESS_FAILURES: u32 = 5;
/// The window [`ADDRESS_FAILURES`] are counted in. It is also how long an address's failure on
/// an account keeps it from adding another to that account's run of failures.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(30 * 60);

// An address adds at most one failure to an account per window; the account forgets a run that
// went quiet for less than a window, so a lone address never adds to the same run twice.
const _: () = assert!(ADDRESS_WINDOW.as_secs() > FAILURES_FORGOTTEN_AFTER.as_secs());
const _: () = assert!(ADDRESS_FAILURES as i64 <= LOCK_AFTER_FAILURES);

/// Counts failed sign-ins per address. Shared by every request of one instance.
#[derive(Debug)]
pub struct SignInThrottle {
    limit: WindowLimit,
    /// Keys the hash that stands for an e-mail: the counts hold no e-mail address, and nobody
    /// outside this process can aim collisions at them.
    accounts: RandomState,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Recent failures (and attempts under way) by network, oldest first.
    failures: HashMap<IpAddr, Vec<Failure>>,
    /// How many networks were left after the last sweep; the next comes once that has doubled.
    swept_to: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    at: i64,
    account: u64,
}

/// An attempt the throttle let through. Until it is [settled](SignInThrottle::settle) it counts
/// as a failure of its address, so that attempts sent together cannot all slip past the limit.
#[derive(Debug)]
#[must_use = "settle the attempt, or it stays counted as a failure"]
pub struct Ticket {
    network: IpAddr,
    failure: Failure,
    /// Whether a failure adds to the account's run (see [`Charge`]).
    pub charge: Charge,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Wrong password, unknown e-mail, or an account that takes no attempt now.
    Failed,
    /// The password was right (signed in, or told the account is disabled).
    RightPassword,
    /// Never judged (the server was busy or its database unreachable): it does not count.
    NotChecked,
}

/// An address that failed too often; it may try again at `retry_at` (µs, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "too many failed sign-ins from your network: try again in {minutes} minute(s), or ask an admin"
)]
pub struct Throttled {
    pub retry_at: i64,
    pub minutes: i64,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle::new()
    }
}

impl SignInThrottle {
    pub fn new() -> SignInThrottle {
        let window = ADDRESS_WINDOW.as_micros() as u64;
        SignInThrottle {
            limit: WindowLimit::new(ADDRESS_FAILURES, window)
                .expect("the sign-in limit is a valid window"),
            accounts: RandomState::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// Admits an attempt from `address` on `email` at `now`, or refuses it because the address
    /// has failed too often. The attempt counts as a failure until [settled](Self::settle).
    pub fn begin(&self, address: IpAddr, email: &str, now: i64) -> Result<Ticket, Throttled> {
        let network = network(address);
        let account = self.accounts.hash_one(email.trim().to_lowercase());
        let window = self.limit.window() as i64;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sweep_if_grown(now - window);
        let failures = state.failures.entry(network).or_default();
        failures.retain(|f| f.at > now - window);
        let times: Vec<i64> = failures.iter().map(|f| f.at).collect();
        let status = self.limit.check(&times, now);
        if !status.allowed_at(now) {
            let wait = status.next_allowed_at - now;
            return Err(Throttled {
                retry_at: status.next_allowed_at,
                minutes: (wait + 59_999_999) / 60_000_000,
            });
        }
        let charge = if failures.iter().any(|f| f.account == account) {
            Charge::AddressOnly
        } else {
            Charge::Account
        };
        let failure = Failure { at: now, account };
        failures.push(failure);
        Ok(Ticket {
            network,
            failure,
            charge,
        })
    }

    /// Ends an attempt: a failure stays counted against its address, anything else is given back.
    pub fn settle(&self, ticket: Ticket, outcome: Outcome) {
        if outcome == Outcome::Failed {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(failures) = state.failures.get_mut(&ticket.network) {
            if let Some(i) = failures.iter().position(|f| *f == ticket.failure) {
                failures.remove(i);
            }
            if failures.is_empty() {
                state.failures.remove(&ticket.network);
            }
        }
    }
}

impl State {
    /// Forgets networks with no failure after `horizon`, once there are twice as many as after
    /// the last sweep: memory follows the addresses seen in the last window, at a cost spread
    /// over the attempts that made it grow.
    fn sweep_if_grown(&mut self, horizon: i64) {
        if self.failures.len() < 2 * self.swept_to.max(512) {
            return;
        }
        self.failures
            .retain(|_, failures| failures.iter().any(|f| f.at > horizon));
        self.swept_to = self.failures.len();
    }
}

/// The network an address stands for: an IPv4 address itself, an IPv6 address's /64 (one
/// subscriber's network: whoever has one address there has billions).
fn network(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_after_its_failures_whatever_the_emails() {
        // Arrange
        let throttle = SignInThrottle::new();
        let attacker = ip("203.0.113.7");
        let t = 1_000 * MINUTE;
        for n in 0..ADDRESS_FAILURES {
            let ticket = throttle
                .begin(attacker, &format!("guess{n}@example.com"), t)
                .expect("within the limit");
            throttle.settle(ticket, Outcome::Failed);
        }

        // Act
        let refused = throttle.begin(attacker, "admin@example.com", t + MINUTE);
        let elsewhere = throttle.begin(ip("198.51.100.1"), "admin@example.com", t + MINUTE);

        // Assert
        assert_eq!(
            refused.unwrap_err(),
            Throttled {
                retry_at: t + ADDRESS_WINDOW.as_micros() as i64,
                minutes: 29
            }
        );
        assert!(elsewhere.is_ok(), "another address is not affected");
        let later = throttle.begin(attacker, "admin@example.com", t + 30 * MINUTE);
        assert!(
            later.is_ok(),
            "the address may try again once the window has passed"
        );
    }

    #[test]
    fn attempts_sent_together_count_before_they_are_judged() {
        // Arrange
        let throttle = SignInThrottle::new();
        let attacker = ip("203.0.113.7");

        // Act: forty attempts at once, none settled yet.
        let admitted: Vec<_> = (0..40)
            .filter_map(|_| throttle.begin(attacker, "admin@example.com", 0).ok())
            .collect();

        // Assert
        assert_eq!(admitted.len(), ADDRESS_FAILURES as usize);
    }

    #[test]
    fn only_failures_count_against_an_address() {
        // Arrange: an office behind one address signs in all morning.
        let throttle = SignInThrottle::new();
        let office = ip("198.51.100.1");

        // Act
        for n in 0..50 {
            let ticket = throttle
                .begin(office, &format!("person{n}@example.com"), n * MINUTE / 10)
                .expect("signing in is never throttled");
            throttle.settle(ticket, Outcome::RightPassword);
        }
        let busy = throttle
            .begin(office, "a@example.com", 10 * MINUTE)
            .unwrap();
        throttle.settle(busy, Outcome::NotChecked);

        // Assert
        let state = throttle.state.lock().unwrap();
        assert!(state.failures.is_empty(), "{:?}", state.failures);
    }

    #[test]
    fn an_address_adds_one_failure_per_window_to_an_account() {
        // Arrange
        let throttle = SignInThrottle::new();
        let attacker = ip("203.0.113.7");

        // Act
        let first = throttle.begin(attacker, "admin@example.com", 0).unwrap();
        let second = throttle
            .begin(attacker, " Admin@Example.com", MINUTE)
            .unwrap();
        let other_account = throttle.begin(attacker, "ops@example.com", MINUTE).unwrap();
        let other_address = throttle
            .begin(ip("198.51.100.1"), "admin@example.com", MINUTE)
            .unwrap();

        // Assert
        assert_eq!(first.charge, Charge::Account);
        assert_eq!(second.charge, Charge::AddressOnly);
        assert_eq!(other_account.charge, Charge::Account);
        assert_eq!(other_address.charge, Charge::Account);
        for ticket in [first, second, other_account, other_address] {
            throttle.settle(ticket, Outcome::Failed);
        }
        // Once the window has passed since its last failure on the account.
        let next_window = throttle
            .begin(attacker, "admin@example.com", 31 * MINUTE)
            .unwrap();
        assert_eq!(next_window.charge, Charge::Account);
        throttle.settle(next_window, Outcome::Failed);
    }

    #[test]
    fn an_ipv6_network_is_one_address() {
        // Arrange
        let throttle = SignInThrottle::new();
        for n in 0..ADDRESS_FAILURES {
            let ticket = throttle
                .begin(ip(&format!("2001:db8:1:2::{n:x}")), "admin@example.com", 0)
                .unwrap();
            throttle.settle(ticket, Outcome::Failed);
        }

        // Act
        let same_network = throttle.begin(ip("2001:db8:1:2:ffff::1"), "admin@example.com", 0);
        let next_network = throttle.begin(ip("2001:db8:1:3::1"), "admin@example.com", 0);
        let mapped = throttle.begin(ip("::ffff:203.0.113.7"), "x@example.com", 0);

        // Assert
        assert!(same_network.is_err());
        assert!(next_network.is_ok());
        assert_eq!(network(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert!(mapped.is_ok());
    }

    #[test]
    fn networks_that_went_quiet_are_forgotten() {
        // Arrange: a thousand addresses failed once, long ago.
        let throttle = SignInThrottle::new();
        for n in 0..1_000u32 {
            let address = IpAddr::from(n.to_be_bytes());
            let ticket = throttle.begin(address, "admin@example.com", 0).unwrap();
            throttle.settle(ticket, Outcome::Failed);
        }

        // Act: more failures, a day later.
        for n in 0..100u32 {
            let address = IpAddr::from((1_000_000 + n).to_be_bytes());
            let ticket = throttle
                .begin(address, "admin@example.com", 24 * 60 * MINUTE)
                .unwrap();
            throttle.settle(ticket, Outcome::Failed);
        }

        // Assert
        let state = throttle.state.lock().unwrap();
        assert!(state.failures.len() <= 100, "{}", state.failures.len());
    }
}
