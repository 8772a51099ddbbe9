//! Two-factor codes, as Twilio Verify v2 runs them: the limits of a service's settings, the life of
//! a verification (pending until approved, canceled, expired or out of checks), how many sends
//! and checks it allows, and the errors Twilio answers with (code, HTTP status, message).
//!
//! Pure rules: the backend stores verifications and decides with these functions, so the rules
//! are unit-tested without a database and the same on every route (Verify API, console sign-in).

use serde::{Deserialize, Serialize};

/// Digits in a code when the service does not say (Twilio's default).
pub const DEFAULT_CODE_LENGTH: u8 = 6;
pub const MIN_CODE_LENGTH: u8 = 4;
pub const MAX_CODE_LENGTH: u8 = 10;
/// Longest `FriendlyName` Twilio takes.
pub const MAX_FRIENDLY_NAME_CHARS: usize = 30;
/// How long a code lives when the service does not say: 10 minutes.
pub const DEFAULT_LIFETIME_SECONDS: u32 = 600;
/// Shortest and longest life a service may give its codes (2 minutes to 24 hours).
pub const MIN_LIFETIME_SECONDS: u32 = 120;
pub const MAX_LIFETIME_SECONDS: u32 = 24 * 60 * 60;
/// Sends to one number a service allows within [`SEND_WINDOW_MICROS`]; the next is 60203.
pub const MAX_SENDS: u32 = 5;
/// The window sends are counted in: 10 minutes.
pub const SEND_WINDOW_MICROS: i64 = 10 * 60 * 1_000_000;
/// Checks a verification allows; the next is 60202 and ends it.
pub const MAX_CHECKS: u32 = 5;
/// Codes per hour a new service may send to one country (its guard against SMS pumping).
pub const DEFAULT_HOURLY_CAP_PER_COUNTRY: u32 = 100;
/// Highest hourly cap per country a service may be given.
pub const MAX_HOURLY_CAP_PER_COUNTRY: u32 = 1_000_000;
/// The window the hourly cap counts in.
pub const CAP_WINDOW_MICROS: i64 = 60 * 60 * 1_000_000;

/// Where a verification stands. `Expired` is never stored: a pending verification past its life
/// reads as expired ([`Status::at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Canceled,
    MaxAttemptsReached,
    Expired,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Canceled,
        Status::MaxAttemptsReached,
        Status::Expired,
    ];

    /// Twilio's name for it (`pending`, `max_attempts_reached`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Canceled => "canceled",
            Status::MaxAttemptsReached => "max_attempts_reached",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// What a verification stored as `self`, living until `expires_at`, is at `now` (µs).
    pub fn at(self, expires_at: i64, now: i64) -> Status {
        if self == Status::Pending && now >= expires_at {
            Status::Expired
        } else {
            self
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why Twilio Verify (and smsdesk) refuses a request: its code, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VerifyError {
    /// 60200: a parameter is missing or malformed (named, as Twilio names it).
    #[error("Invalid parameter: {0}")]
    InvalidParameter(String),
    /// 60221: a check names neither `To` nor `VerificationSid`.
    #[error("Either a 'To' number or 'VerificationSid' must be specified")]
    MissingTarget,
    /// 60202: the verification already had [`MAX_CHECKS`] checks (it ends with this answer).
    #[error("Max check attempts reached")]
    MaxChecks,
    /// 60203: [`MAX_SENDS`] codes already went to this number within 10 minutes.
    #[error("Max send attempts reached")]
    MaxSends,
    /// 20404: no such service or verification, or it is approved, canceled, expired or out of
    /// checks.
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    /// 60605: the service does not send codes to the number's country.
    #[error(
        "Verification delivery attempt blocked: codes from this service may not go to {0} (its countries are set on smsdesk's Verify page)"
    )]
    CountryBlocked(String),
    /// 60410: the service's hourly cap of codes to the country was reached (SMS pumping guard).
    #[error(
        "Verification delivery attempt blocked: this service already sent {cap} codes to {country} in the last hour (its cap against SMS pumping, set on smsdesk's Verify page)"
    )]
    CountryCapReached { country: String, cap: u32 },
}

impl VerifyError {
    /// Twilio's error code.
    pub fn code(&self) -> u32 {
        match self {
            VerifyError::InvalidParameter(_) => 60200,
            VerifyError::MissingTarget => 60221,
            VerifyError::MaxChecks => 60202,
            VerifyError::MaxSends => 60203,
            VerifyError::NotFound(_) => 20404,
            VerifyError::CountryBlocked(_) => 60605,
            VerifyError::CountryCapReached { .. } => 60410,
        }
    }

    /// The HTTP status Twilio answers it with.
    pub fn http_status(&self) -> u16 {
        match self {
            VerifyError::InvalidParameter(_) | VerifyError::MissingTarget => 400,
            VerifyError::MaxChecks | VerifyError::MaxSends => 429,
            VerifyError::NotFound(_) => 404,
            VerifyError::CountryBlocked(_) | VerifyError::CountryCapReached { .. } => 403,
        }
    }

    pub fn invalid(parameter: &str) -> VerifyError {
        VerifyError::InvalidParameter(parameter.to_owned())
    }
}

/// A service's `FriendlyName`: 1 to 30 characters, trimmed.
pub fn friendly_name(input: &str) -> Result<String, VerifyError> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        return Err(VerifyError::invalid("FriendlyName"));
    }
    Ok(name.to_owned())
}

/// A service's `CodeLength`: absent is 6; otherwise 4 to 10.
pub fn code_length(input: Option<&str>) -> Result<u8, VerifyError> {
    match input {
        None => Ok(DEFAULT_CODE_LENGTH),
        Some(s) => s
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|n| (MIN_CODE_LENGTH..=MAX_CODE_LENGTH).contains(n))
            .ok_or_else(|| VerifyError::invalid("CodeLength")),
    }
}

/// A code's life in seconds as a service may set it (2 minutes to 24 hours).
pub fn lifetime_seconds(seconds: u32) -> Result<u32, String> {
    if (MIN_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "a code lives from {} minutes to {} hours: {seconds} seconds is outside that",
            MIN_LIFETIME_SECONDS / 60,
            MAX_LIFETIME_SECONDS / 3600
        ))
    }
}

/// A code as a check gives it: 4 to 10 characters, letters or digits (Twilio's bounds).
pub fn checked_code(input: Option<&str>) -> Result<&str, VerifyError> {
    let code = input.map(str::trim).unwrap_or_default();
    let len = code.chars().count();
    if !(usize::from(MIN_CODE_LENGTH)..=usize::from(MAX_CODE_LENGTH)).contains(&len)
        || !code.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(VerifyError::invalid("Code"));
    }
    Ok(code)
}

/// The channel of a start: smsdesk sends codes by SMS only. Twilio's other channels (call,
/// email, whatsapp, sna, auto) are refused as an invalid `Channel`, naming the parameter.
pub fn channel(input: Option<&str>) -> Result<&'static str, VerifyError> {
    match input.map(|c| c.trim().to_ascii_lowercase()) {
        Some(c) if c == "sms" => Ok("sms"),
        _ => Err(VerifyError::invalid("Channel")),
    }
}

/// The status an update may set: `canceled` or `approved`.
pub fn update_status(input: Option<&str>) -> Result<Status, VerifyError> {
    match input.map(str::trim) {
        Some("canceled") => Ok(Status::Canceled),
        Some("approved") => Ok(Status::Approved),
        _ => Err(VerifyError::invalid("Status")),
    }
}

/// A code of `length` digits from 32 uniformly random bytes. Each digit takes a byte below 250
/// (so every digit is equally likely); the bytes left over after 32 are more than enough for
/// 10 digits except with negligible probability, and then the rest come from the remainder.
pub fn code_from(bytes: &[u8; 32], length: u8) -> String {
    let length = usize::from(length.clamp(MIN_CODE_LENGTH, MAX_CODE_LENGTH));
    let mut code: String = bytes
        .iter()
        .filter(|b| **b < 250)
        .take(length)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    // 32 bytes all but 9 of them >= 250: chance about 1e-60, but the code keeps its length.
    let mut spare = bytes.iter().cycle();
    while code.len() < length {
        let b = spare.next().expect("a cycle never ends");
        code.push(char::from(b'0' + b % 10));
    }
    code
}

/// Whether another send to a number is allowed, given how many went to it within the last
/// 10 minutes.
pub fn may_send(sends_in_window: u32) -> Result<(), VerifyError> {
    if sends_in_window >= MAX_SENDS {
        Err(VerifyError::MaxSends)
    } else {
        Ok(())
    }
}

/// Whether a service may send another code to `country`, given its countries (empty: any the
/// geo permissions allow), its hourly cap and the codes it sent there in the last hour.
pub fn may_send_to_country(
    country: &str,
    countries: &[String],
    hourly_cap: Option<u32>,
    sent_last_hour: u32,
) -> Result<(), VerifyError> {
    if !countries.is_empty() && !countries.iter().any(|c| c == country) {
        return Err(VerifyError::CountryBlocked(country.to_owned()));
    }
    match hourly_cap {
        Some(cap) if sent_last_hour >= cap => Err(VerifyError::CountryCapReached {
            country: country.to_owned(),
            cap,
        }),
        _ => Ok(()),
    }
}

/// What a check does to a verification that has had `checks` checks so far: count this one, or
/// end it with 60202.
pub fn may_check(checks: u32) -> Result<(), VerifyError> {
    if checks >= MAX_CHECKS {
        Err(VerifyError::MaxChecks)
    } else {
        Ok(())
    }
}

/// Whole minutes (rounded up) left of a code's life at `now`: what the message tells the
/// reader.
pub fn minutes_left(expires_at: i64, now: i64) -> u32 {
    let seconds = seconds_left(expires_at, now);
    seconds.div_ceil(60)
}

/// Whole seconds left of a code's life at `now` (0 once over).
pub fn seconds_left(expires_at: i64, now: i64) -> u32 {
    let micros = (expires_at - now).max(0);
    u32::try_from((micros + 999_999) / 1_000_000).unwrap_or(u32::MAX)
}

/// The share of verifications approved, in per mille (0 to 1000), or `None` without any.
pub fn approved_per_mille(approved: u64, total: u64) -> Option<u32> {
    (total > 0).then(|| u32::try_from(approved.min(total) * 1000 / total).unwrap_or(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_verification_expires_at_its_end_and_nothing_else_changes() {
        assert_eq!(Status::Pending.at(100, 99), Status::Pending);
        assert_eq!(Status::Pending.at(100, 100), Status::Expired);
        assert_eq!(Status::Approved.at(100, 500), Status::Approved);
        assert_eq!(Status::Canceled.at(100, 500), Status::Canceled);
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("deleted"), None);
    }

    #[test]
    fn errors_carry_twilios_codes_and_statuses() {
        let cases = [
            (
                VerifyError::invalid("To"),
                60200,
                400,
                "Invalid parameter: To",
            ),
            (
                VerifyError::MissingTarget,
                60221,
                400,
                "Either a 'To' number or 'VerificationSid' must be specified",
            ),
            (
                VerifyError::MaxChecks,
                60202,
                429,
                "Max check attempts reached",
            ),
            (
                VerifyError::MaxSends,
                60203,
                429,
                "Max send attempts reached",
            ),
        ];
        for (e, code, status, message) in cases {
            assert_eq!(
                (e.code(), e.http_status(), e.to_string()),
                (code, status, message.to_owned())
            );
        }
        assert_eq!(VerifyError::NotFound("/v2/x".into()).http_status(), 404);
        assert_eq!(VerifyError::CountryBlocked("GB".into()).code(), 60605);
        let capped = VerifyError::CountryCapReached {
            country: "GB".into(),
            cap: 3,
        };
        assert_eq!((capped.code(), capped.http_status()), (60410, 403));
    }

    #[test]
    fn service_parameters_are_checked_as_twilio_checks_them() {
        assert_eq!(friendly_name("  SafeShipper  ").unwrap(), "SafeShipper");
        assert_eq!(friendly_name(&"x".repeat(30)).unwrap().len(), 30);
        assert_eq!(
            friendly_name(&"x".repeat(31)),
            Err(VerifyError::invalid("FriendlyName"))
        );
        assert_eq!(
            friendly_name(" "),
            Err(VerifyError::invalid("FriendlyName"))
        );
        assert_eq!(code_length(None), Ok(6));
        assert_eq!(code_length(Some("4")), Ok(4));
        assert_eq!(code_length(Some("10")), Ok(10));
        for bad in ["3", "11", "six", "-1", ""] {
            assert_eq!(
                code_length(Some(bad)),
                Err(VerifyError::invalid("CodeLength"))
            );
        }
        assert!(lifetime_seconds(120).is_ok());
        assert!(lifetime_seconds(86_400).is_ok());
        assert!(lifetime_seconds(119).is_err());
        assert!(lifetime_seconds(86_401).is_err());
    }

    #[test]
    fn checks_take_four_to_ten_letters_or_digits() {
        assert_eq!(checked_code(Some("123456")), Ok("123456"));
        assert_eq!(checked_code(Some("1234")), Ok("1234"));
        assert_eq!(checked_code(Some("abcd123456")), Ok("abcd123456"));
        for bad in [
            None,
            Some(""),
            Some("123"),
            Some("12345678901"),
            Some("12 34"),
            Some("12-34"),
        ] {
            assert_eq!(
                checked_code(bad),
                Err(VerifyError::invalid("Code")),
                "{bad:?}"
            );
        }
        assert_eq!(channel(Some("sms")), Ok("sms"));
        assert_eq!(channel(Some("SMS")), Ok("sms"));
        for bad in [None, Some("call"), Some("email"), Some("")] {
            assert_eq!(channel(bad), Err(VerifyError::invalid("Channel")));
        }
        assert_eq!(update_status(Some("canceled")), Ok(Status::Canceled));
        assert_eq!(update_status(Some("approved")), Ok(Status::Approved));
        assert_eq!(
            update_status(Some("pending")),
            Err(VerifyError::invalid("Status"))
        );
        assert_eq!(update_status(None), Err(VerifyError::invalid("Status")));
    }

    #[test]
    fn codes_have_their_length_in_digits_and_every_digit_is_equally_likely() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 8);
        for length in MIN_CODE_LENGTH..=MAX_CODE_LENGTH {
            let code = code_from(&bytes, length);
            assert_eq!(code.len(), usize::from(length));
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
        // Bytes 250..=255 are skipped (they would favour 0..=5).
        let mut skewed = [255u8; 32];
        skewed[5] = 7;
        skewed[9] = 13;
        skewed[20] = 249;
        skewed[31] = 0;
        assert!(code_from(&skewed, 4).starts_with("7390"));
        // Every byte value below 250 maps to each digit 25 times.
        let mut counts = [0u32; 10];
        for b in 0..250u8 {
            counts[usize::from(b % 10)] += 1;
        }
        assert!(counts.iter().all(|c| *c == 25));
    }

    #[test]
    fn five_sends_and_five_checks_then_twilios_limits() {
        for n in 0..MAX_SENDS {
            assert_eq!(may_send(n), Ok(()));
        }
        assert_eq!(may_send(5), Err(VerifyError::MaxSends));
        for n in 0..MAX_CHECKS {
            assert_eq!(may_check(n), Ok(()));
        }
        assert_eq!(may_check(5), Err(VerifyError::MaxChecks));
    }

    #[test]
    fn a_service_sends_only_to_its_countries_and_within_its_hourly_cap() {
        let none: Vec<String> = Vec::new();
        let us = vec!["US".to_owned(), "AU".to_owned()];
        assert_eq!(may_send_to_country("GB", &none, None, 1_000), Ok(()));
        assert_eq!(may_send_to_country("AU", &us, Some(2), 1), Ok(()));
        assert_eq!(
            may_send_to_country("GB", &us, Some(2), 0),
            Err(VerifyError::CountryBlocked("GB".into()))
        );
        assert_eq!(
            may_send_to_country("US", &us, Some(2), 2),
            Err(VerifyError::CountryCapReached {
                country: "US".into(),
                cap: 2
            })
        );
    }

    #[test]
    fn time_left_rounds_up_and_stops_at_zero() {
        let minute = 60_000_000;
        assert_eq!(minutes_left(10 * minute, 0), 10);
        assert_eq!(minutes_left(10 * minute, 1), 10);
        assert_eq!(minutes_left(10 * minute, minute + 1), 9);
        assert_eq!(minutes_left(10 * minute, 11 * minute), 0);
        assert_eq!(seconds_left(10 * minute, 0), 600);
        assert_eq!(seconds_left(1_500_000, 0), 2);
        assert_eq!(approved_per_mille(0, 0), None);
        assert_eq!(approved_per_mille(2, 3), Some(666));
        assert_eq!(approved_per_mille(5, 5), Some(1000));
    }
}
