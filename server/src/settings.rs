//! Settings: from the environment and `.env`, with Twilio's own names where they exist. Every
//! setting is checked at start-up; a missing or malformed one stops smsdesk with a sentence that
//! names it and shows a good value. `smsdesk serve --help` lists them all.

use std::net::SocketAddr;

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// The settings as given (`clap` reads the flags and the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where the data lives: a SQLite file (`sqlite://data/smsdesk.db`, the default) or a
    /// PostgreSQL database shared by several instances (`postgres://user@host/smsdesk`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    pub database_url: String,
    /// Address and port to listen on. Port 0 picks a free port (the start-up line gives it).
    #[arg(long, env = "SMSDESK_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// The address people and Twilio reach smsdesk at (`https://sms.example.com`); webhook
    /// signatures are checked against it and cookies are `Secure` when it is https.
    /// Default: `http://` + the listen address.
    #[arg(long, env = "SMSDESK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Whether smsdesk is reached only through a reverse proxy that appends the client's address
    /// to `X-Forwarded-For` (nginx `proxy_add_x_forwarded_for`, Caddy, most load balancers).
    /// Sign-in throttling then counts failures by that address instead of the proxy's. Leave it
    /// `false` when clients connect directly: they could write any address in the header.
    #[arg(long, env = "SMSDESK_BEHIND_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub behind_proxy: bool,
    /// Key that encrypts phone numbers at rest: 32 random bytes, base64 (`openssl rand -base64 32`).
    #[arg(long, env = "SMSDESK_DATA_KEY", hide_env_values = true)]
    pub data_key: Option<String>,
    /// Key that signs session cookies: 64 random bytes, base64 (`openssl rand -base64 64`).
    #[arg(long, env = "SMSDESK_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,
    /// E-mail of the first admin, created when there is no user yet.
    #[arg(
        long,
        env = "SMSDESK_ADMIN_EMAIL",
        default_value = "admin@localhost.localdomain"
    )]
    pub admin_email: String,
    /// Password of the first admin; when unset, one is generated and printed once.
    #[arg(long, env = "SMSDESK_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Twilio Account SID (`AC` + 32 hex). Without it smsdesk sends through its simulator.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (signs Twilio's webhooks; authenticates to Twilio unless an API key is set).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// A webhook SharedKey's secret: webhooks Twilio signs with it (HMAC-SHA256, named by
    /// `X-Twilio-Webhooks-Signature-Settings`) are checked with it.
    #[arg(long, env = "TWILIO_WEBHOOK_SHARED_KEY", hide_env_values = true)]
    pub twilio_webhook_shared_key: Option<String>,
    /// Sender number in E.164 (`+15005550006`).
    #[arg(long, env = "TWILIO_PHONE_NUMBER")]
    pub twilio_phone_number: Option<String>,
    /// Messaging Service SID (`MG` + 32 hex), used instead of a sender number when set.
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID")]
    pub twilio_messaging_service_sid: Option<String>,
    /// API key SID (`SK` + 32 hex) and secret, to authenticate instead of the auth token.
    #[arg(long, env = "TWILIO_API_KEY_SID")]
    pub twilio_api_key_sid: Option<String>,
    #[arg(long, env = "TWILIO_API_KEY_SECRET", hide_env_values = true)]
    pub twilio_api_key_secret: Option<String>,
    /// Twilio's API base URL (default `https://api.twilio.com`).
    #[arg(
        long,
        env = "TWILIO_API_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_api_base_url: String,
    /// A fallback provider's account sid (`AC` + 32 hex): a second Twilio account or subaccount,
    /// or any API with Twilio's Messages shape at `SMSDESK_FALLBACK_API_BASE_URL`. It carries
    /// messages while Twilio is in a storm and those refused with a failover code (Settings).
    #[arg(long, env = "SMSDESK_FALLBACK_ACCOUNT_SID")]
    pub fallback_account_sid: Option<String>,
    /// The fallback's auth token (authenticates to it, and checks its status callbacks).
    #[arg(long, env = "SMSDESK_FALLBACK_AUTH_TOKEN", hide_env_values = true)]
    pub fallback_auth_token: Option<String>,
    /// The sender number on the fallback's account (E.164).
    #[arg(long, env = "SMSDESK_FALLBACK_PHONE_NUMBER")]
    pub fallback_phone_number: Option<String>,
    /// A Messaging Service on the fallback's account, used instead of a sender number when set.
    #[arg(long, env = "SMSDESK_FALLBACK_MESSAGING_SERVICE_SID")]
    pub fallback_messaging_service_sid: Option<String>,
    /// The fallback's API base URL.
    #[arg(
        long,
        env = "SMSDESK_FALLBACK_API_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub fallback_api_base_url: String,
    /// Send through the built-in simulator even when Twilio credentials are set.
    #[arg(long, env = "SMSDESK_SIMULATOR", default_value_t = false)]
    pub simulator: bool,
    /// Makes the simulator's sids and outcomes repeatable (tests, demos).
    #[arg(long, env = "SMSDESK_SIMULATOR_SEED")]
    pub simulator_seed: Option<u64>,
    /// Longest wait for Twilio's answer to one request, in seconds (1 to 120); past it the send is
    /// in doubt and looked up before any retry.
    #[arg(long, env = "SMSDESK_SEND_TIMEOUT_SECONDS", default_value_t = 15)]
    pub send_timeout_seconds: u64,
    /// Whether this instance sends (runs the worker); `false` for an intake-only instance.
    #[arg(long, env = "SMSDESK_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,
    /// Longest time one request to smsdesk may take, body included, in seconds (1 to 300);
    /// past it the request is answered 408 and dropped (a client trickling its body holds
    /// nothing for long).
    #[arg(long, env = "SMSDESK_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// When set, `/metrics` asks for it as a bearer token (`Authorization: Bearer …`).
    #[arg(long, env = "SMSDESK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Signs the budget alerts posted to the webhook named in Settings (HMAC-SHA256 in
    /// `X-Smsdesk-Signature: sha256=…`); alerts are not posted without it.
    #[arg(long, env = "SMSDESK_ALERT_WEBHOOK_SECRET", hide_env_values = true)]
    pub alert_webhook_secret: Option<String>,
    /// Log lines as `json` (one object a line, for log collectors) or `text`; `auto`: text at a
    /// terminal, JSON otherwise.
    #[arg(long, env = "SMSDESK_LOG_FORMAT", default_value = "auto")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// A setting that stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}. A good value looks like {example}")]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
    pub example: &'static str,
}

fn bad(name: &'static str, problem: impl Into<String>, example: &'static str) -> SettingError {
    SettingError {
        name,
        problem: problem.into(),
        example,
    }
}

/// Twilio credentials, when smsdesk sends for real.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Option<SecretString>,
    pub phone_number: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub api_key: Option<(String, SecretString)>,
    pub api_base_url: String,
}

/// Checked settings.
#[derive(Debug)]
pub struct Settings {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    /// Whether the client's address is the last `X-Forwarded-For` entry (a proxy in front).
    pub behind_proxy: bool,
    pub data_key: SecretBox<[u8; 32]>,
    pub session_secret: SecretBox<[u8; 64]>,
    pub admin_email: String,
    pub admin_password: Option<SecretString>,
    /// `None` when sending through the simulator.
    pub twilio: Option<TwilioSettings>,
    /// The fallback provider, if one is configured (only beside a real Twilio account).
    pub fallback: Option<TwilioSettings>,
    /// `TWILIO_ACCOUNT_SID` when set (also when simulating): the Twilio-compatible endpoint's.
    pub account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN` when set: what the simulator signs with (and Twilio does).
    pub auth_token: Option<SecretString>,
    /// `TWILIO_WEBHOOK_SHARED_KEY` when set: checks webhooks signed with HMAC-SHA256.
    pub webhook_shared_key: Option<SecretString>,
    /// `TWILIO_PHONE_NUMBER` when set (the simulator sends "from" it too).
    pub phone_number: Option<String>,
    pub simulator_seed: Option<u64>,
    /// How long one request to Twilio may take.
    pub send_timeout: std::time::Duration,
    /// Whether this instance runs the worker.
    pub worker: bool,
    /// How long one request to smsdesk may take.
    pub request_timeout: std::time::Duration,
    /// The bearer token `/metrics` asks for, if any.
    pub metrics_token: Option<SecretString>,
    /// What signs budget alerts posted to the webhook.
    pub alert_webhook_secret: Option<SecretString>,
}

fn check_sid(
    name: &'static str,
    value: &str,
    prefix: &str,
    example: &'static str,
) -> Result<(), SettingError> {
    let ok = value.len() == 34
        && value.starts_with(prefix)
        && value[2..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(bad(
            name,
            format!("{value:?} is not {prefix} followed by 32 hexadecimal digits"),
            example,
        ))
    }
}

pub(crate) fn key<const N: usize>(
    name: &'static str,
    value: Option<&str>,
    example: &'static str,
) -> Result<SecretBox<[u8; N]>, SettingError> {
    let value =
        value.ok_or_else(|| bad(name, "is not set (make run writes one into .env)", example))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| bad(name, "is not base64", example))?;
    let array: [u8; N] = bytes.try_into().map_err(|b: Vec<u8>| {
        bad(
            name,
            format!("decodes to {} bytes, not {N}", b.len()),
            example,
        )
    })?;
    Ok(SecretBox::new(Box::new(array)))
}

impl ServeArgs {
    /// Checks every setting; the first problem stops start-up.
    pub fn check(self) -> Result<Settings, SettingError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            bad(
                "SMSDESK_LISTEN",
                format!("{:?} is not an address and port", self.listen),
                "127.0.0.1:3000 (or 0.0.0.0:3000 to listen on every interface)",
            )
        })?;
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "DATABASE_URL",
                format!("{:?} is neither SQLite nor PostgreSQL", self.database_url),
                "sqlite://data/smsdesk.db or postgres://smsdesk@db.internal/smsdesk",
            ));
        }
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .filter(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ']))
                    .ok_or_else(|| {
                        bad(
                            "SMSDESK_PUBLIC_URL",
                            format!("{url:?} is not an http(s) address"),
                            "https://sms.safeshipper.com",
                        )
                    })?;
                let _ = rest;
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        let data_key = key::<32>(
            "SMSDESK_DATA_KEY",
            self.data_key.as_deref(),
            "the output of `openssl rand -base64 32`",
        )?;
        let session_secret = key::<64>(
            "SMSDESK_SESSION_SECRET",
            self.session_secret.as_deref(),
            "the output of `openssl rand -base64 64 | tr -d '\\n'`",
        )?;
        if let Some(p) = &self.admin_password
            && p.chars().count() < backend::users::MIN_PASSWORD_CHARS
        {
            return Err(bad(
                "SMSDESK_ADMIN_PASSWORD",
                format!(
                    "is shorter than {} characters",
                    backend::users::MIN_PASSWORD_CHARS
                ),
                "a passphrase such as 'tanker-violet-harbour-42'",
            ));
        }
        if let Some(sid) = &self.twilio_account_sid {
            check_sid(
                "TWILIO_ACCOUNT_SID",
                sid,
                "AC",
                "AC followed by 32 hex digits, from the Twilio console",
            )?;
        }
        if let Some(token) = &self.twilio_auth_token
            && domain::signature::AuthToken::new(token.clone()).is_err()
        {
            return Err(bad(
                "TWILIO_AUTH_TOKEN",
                "is empty or contains white space (a trailing newline?)",
                "the 32-character auth token from the Twilio console",
            ));
        }
        if let Some(key) = &self.twilio_webhook_shared_key
            && domain::signature::SharedKey::new(key).is_err()
        {
            return Err(bad(
                "TWILIO_WEBHOOK_SHARED_KEY",
                "is empty or contains white space (a trailing newline?)",
                "the SharedKey's secret from the Twilio console",
            ));
        }
        if !(1..=300).contains(&self.request_timeout_seconds) {
            return Err(bad(
                "SMSDESK_REQUEST_TIMEOUT_SECONDS",
                format!("{} is out of range", self.request_timeout_seconds),
                "30 (seconds, 1 to 300)",
            ));
        }
        if self
            .metrics_token
            .as_deref()
            .is_some_and(|t| t.len() < 16 || t.chars().any(char::is_whitespace))
        {
            return Err(bad(
                "SMSDESK_METRICS_TOKEN",
                "is shorter than 16 characters or contains white space",
                "the output of `openssl rand -hex 24`",
            ));
        }
        if !(1..=120).contains(&self.send_timeout_seconds) {
            return Err(bad(
                "SMSDESK_SEND_TIMEOUT_SECONDS",
                format!("{} is out of range", self.send_timeout_seconds),
                "15 (seconds, 1 to 120)",
            ));
        }
        let twilio = match (&self.twilio_account_sid, self.simulator) {
            (Some(sid), false) => {
                if let Some(mg) = &self.twilio_messaging_service_sid {
                    check_sid(
                        "TWILIO_MESSAGING_SERVICE_SID",
                        mg,
                        "MG",
                        "MG followed by 32 hex digits",
                    )?;
                }
                let api_key = match (&self.twilio_api_key_sid, &self.twilio_api_key_secret) {
                    (Some(id), Some(secret)) => {
                        check_sid(
                            "TWILIO_API_KEY_SID",
                            id,
                            "SK",
                            "SK followed by 32 hex digits",
                        )?;
                        Some((id.clone(), SecretString::from(secret.clone())))
                    }
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(bad(
                            "TWILIO_API_KEY_SECRET",
                            "is missing while TWILIO_API_KEY_SID is set",
                            "the secret shown once when the API key was created",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(bad(
                            "TWILIO_API_KEY_SID",
                            "is missing while TWILIO_API_KEY_SECRET is set",
                            "SK followed by 32 hex digits",
                        ));
                    }
                };
                if api_key.is_none() && self.twilio_auth_token.is_none() {
                    return Err(bad(
                        "TWILIO_AUTH_TOKEN",
                        "is missing: set it (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET), or unset TWILIO_ACCOUNT_SID to use the simulator",
                        "the 32-character auth token from the Twilio console",
                    ));
                }
                if self.twilio_phone_number.is_none() && self.twilio_messaging_service_sid.is_none()
                {
                    return Err(bad(
                        "TWILIO_PHONE_NUMBER",
                        "is missing: smsdesk needs a sender number or TWILIO_MESSAGING_SERVICE_SID",
                        "+15005550006",
                    ));
                }
                Some(TwilioSettings {
                    account_sid: sid.clone(),
                    auth_token: self.twilio_auth_token.clone().map(SecretString::from),
                    phone_number: self.twilio_phone_number.clone(),
                    messaging_service_sid: self.twilio_messaging_service_sid.clone(),
                    api_key,
                    api_base_url: self.twilio_api_base_url.trim_end_matches('/').to_owned(),
                })
            }
            _ => None,
        };
        let fallback = self.fallback(twilio.is_some())?;
        Ok(Settings {
            database_url: self.database_url,
            listen,
            public_url,
            behind_proxy: self.behind_proxy,
            data_key,
            session_secret,
            admin_email: self.admin_email,
            admin_password: self.admin_password.map(SecretString::from),
            twilio,
            fallback,
            account_sid: self.twilio_account_sid,
            auth_token: self.twilio_auth_token.map(SecretString::from),
            webhook_shared_key: self.twilio_webhook_shared_key.map(SecretString::from),
            phone_number: self.twilio_phone_number,
            simulator_seed: self.simulator_seed,
            send_timeout: std::time::Duration::from_secs(self.send_timeout_seconds),
            worker: self.worker,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            metrics_token: self.metrics_token.map(SecretString::from),
            alert_webhook_secret: self.alert_webhook_secret.map(SecretString::from),
        })
    }

    /// The fallback provider's settings, if `SMSDESK_FALLBACK_ACCOUNT_SID` is set; `primary`:
    /// whether smsdesk sends through a real Twilio account (a fallback needs one).
    fn fallback(&self, primary: bool) -> Result<Option<TwilioSettings>, SettingError> {
        let Some(sid) = &self.fallback_account_sid else {
            return Ok(None);
        };
        if !primary {
            return Err(bad(
                "SMSDESK_FALLBACK_ACCOUNT_SID",
                "is set while smsdesk sends through its simulator: a fallback stands in for a Twilio account (set TWILIO_ACCOUNT_SID), or unset it",
                "AC followed by 32 hex digits",
            ));
        }
        check_sid(
            "SMSDESK_FALLBACK_ACCOUNT_SID",
            sid,
            "AC",
            "AC followed by 32 hex digits",
        )?;
        if let Some(mg) = &self.fallback_messaging_service_sid {
            check_sid(
                "SMSDESK_FALLBACK_MESSAGING_SERVICE_SID",
                mg,
                "MG",
                "MG followed by 32 hex digits",
            )?;
        }
        let Some(token) = &self.fallback_auth_token else {
            return Err(bad(
                "SMSDESK_FALLBACK_AUTH_TOKEN",
                "is missing while SMSDESK_FALLBACK_ACCOUNT_SID is set",
                "the fallback account's auth token",
            ));
        };
        if self.fallback_phone_number.is_none() && self.fallback_messaging_service_sid.is_none() {
            return Err(bad(
                "SMSDESK_FALLBACK_PHONE_NUMBER",
                "is missing: the fallback needs a sender number on its account or SMSDESK_FALLBACK_MESSAGING_SERVICE_SID",
                "+15005550006",
            ));
        }
        Ok(Some(TwilioSettings {
            account_sid: sid.clone(),
            auth_token: Some(SecretString::from(token.clone())),
            phone_number: self.fallback_phone_number.clone(),
            messaging_service_sid: self.fallback_messaging_service_sid.clone(),
            api_key: None,
            api_base_url: self.fallback_api_base_url.trim_end_matches('/').to_owned(),
        }))
    }
}

impl Settings {
    /// Whether session cookies must be `Secure`.
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The session cookie signing key.
    pub fn cookie_key(&self) -> tower_sessions::cookie::Key {
        tower_sessions::cookie::Key::from(self.session_secret.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(args_override_self = true)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut all = vec![
            "smsdesk",
            "--data-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "--session-secret",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ];
        all.extend_from_slice(extra);
        Wrapper::try_parse_from(all).expect("flags parse").args
    }

    #[test]
    fn defaults_are_sqlite_on_localhost_with_the_simulator() {
        let s = args(&[]).check().expect("valid");
        assert_eq!(s.database_url, "sqlite://data/smsdesk.db");
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert!(s.twilio.is_none());
        assert!(!s.https());
    }

    #[test]
    fn a_bad_setting_is_named_with_an_example() {
        let e = args(&["--listen", "localhost"]).check().unwrap_err();
        assert_eq!(e.name, "SMSDESK_LISTEN");
        assert!(e.to_string().contains("127.0.0.1:3000"));
        let e = args(&["--data-key", "c2hvcnQ="]).check().unwrap_err();
        assert_eq!(e.name, "SMSDESK_DATA_KEY");
        assert!(e.to_string().contains("decodes to 5 bytes, not 32"));
        let e = args(&["--twilio-account-sid", "AC123"])
            .check()
            .unwrap_err();
        assert_eq!(e.name, "TWILIO_ACCOUNT_SID");
        let e = args(&["--public-url", "sms.example.com"])
            .check()
            .unwrap_err();
        assert_eq!(e.name, "SMSDESK_PUBLIC_URL");
        let e = args(&["--database-url", "mysql://x"]).check().unwrap_err();
        assert_eq!(e.name, "DATABASE_URL");
    }

    #[test]
    fn twilio_credentials_switch_off_the_simulator_unless_asked() {
        let sid = "AC0123456789abcdef0123456789abcdef";
        let real = args(&[
            "--twilio-account-sid",
            sid,
            "--twilio-auth-token",
            "t0ken",
            "--twilio-phone-number",
            "+15005550006",
        ]);
        assert!(real.clone().check().unwrap().twilio.is_some());
        let mut simulated = real;
        simulated.simulator = true;
        assert!(simulated.check().unwrap().twilio.is_none());
        let e = args(&[
            "--twilio-account-sid",
            sid,
            "--twilio-phone-number",
            "+15005550006",
        ])
        .check()
        .unwrap_err();
        assert_eq!(e.name, "TWILIO_AUTH_TOKEN");
    }

    #[test]
    fn a_fallback_provider_needs_a_real_primary_its_token_and_a_sender() {
        let primary = [
            "--twilio-account-sid",
            "AC0123456789abcdef0123456789abcdef",
            "--twilio-auth-token",
            "t0ken",
            "--twilio-phone-number",
            "+15005550006",
        ];
        let fallback = [
            "--fallback-account-sid",
            "ACfedcba9876543210fedcba9876543210",
            "--fallback-auth-token",
            "other",
            "--fallback-phone-number",
            "+15005550010",
            "--fallback-api-base-url",
            "https://sms.other.example/",
        ];
        let both: Vec<&str> = primary.iter().chain(&fallback).copied().collect();
        let f = args(&both).check().unwrap().fallback.expect("configured");
        assert_eq!(f.api_base_url, "https://sms.other.example");
        assert_eq!(f.phone_number.as_deref(), Some("+15005550010"));
        assert_eq!(
            args(&fallback).check().unwrap_err().name,
            "SMSDESK_FALLBACK_ACCOUNT_SID",
            "no fallback for the simulator"
        );
        let no_token: Vec<&str> = both
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--fallback-auth") && *a != "other")
            .collect();
        assert_eq!(
            args(&no_token).check().unwrap_err().name,
            "SMSDESK_FALLBACK_AUTH_TOKEN"
        );
        let no_sender: Vec<&str> = both
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--fallback-phone") && *a != "+15005550010")
            .collect();
        assert_eq!(
            args(&no_sender).check().unwrap_err().name,
            "SMSDESK_FALLBACK_PHONE_NUMBER"
        );
    }

    #[test]
    fn https_public_urls_make_cookies_secure() {
        let s = args(&["--public-url", "https://sms.safeshipper.com/"])
            .check()
            .unwrap();
        assert!(s.https());
        assert_eq!(s.public_url.as_deref(), Some("https://sms.safeshipper.com"));
    }
}
