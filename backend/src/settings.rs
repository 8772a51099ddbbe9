//! Settings admins change at run time (rate limits, retries, senders, geo permissions, default
//! region, the simulator's odds), stored in the database as one JSON document and read by the
//! worker before every claim, so a change takes effect without a restart. Every change is audited.
//!
//! Also the values made once per installation: the Account SID the Twilio-compatible endpoint
//! expects (Twilio's own when `TWILIO_ACCOUNT_SID` is set) and the simulator's signing token.

use domain::money::Money;
use domain::phone::PhoneNumber;
use domain::pricing::SegmentPrice;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::crypto::DataKey;
use crate::db::{Db, DbError, now_micros};
use crate::{on_db, on_tx};

const SENDING_KEY: &str = "sending";

pub use domain::sending::{
    RateLimits, Retries, SenderKind, SenderPace, SendingSettings, SimulatorSettings,
};

/// What is wrong with a settings change; `field` names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Whether `code` is a region smsdesk can number (`US`, `AU`, ...).
pub fn is_known_region(code: &str) -> bool {
    domain::phone::is_known_region(code)
}

/// Whether `id` is a valid alphanumeric sender id.
pub fn is_alphanumeric_id(id: &str) -> bool {
    (1..=11).contains(&id.chars().count())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && id.chars().any(|c| c.is_ascii_alphabetic())
}

/// Checks every field of `settings`; the first problem is returned with the field's name.
pub fn validate(settings: &SendingSettings) -> Result<(), SettingsError> {
    let this = settings;
    let l = &this.limits;
    for (field, value) in [
        ("limits.per_second", l.per_second),
        ("limits.per_minute", l.per_minute),
        ("limits.per_hour", l.per_hour),
        ("limits.per_recipient_per_hour", l.per_recipient_per_hour),
        ("limits.per_recipient_per_day", l.per_recipient_per_day),
    ] {
        if value == 0 {
            return Err(invalid(
                field,
                "must be at least 1 (to stop sending, revoke the API keys instead)",
            ));
        }
    }
    if l.network_margin_ms > 5_000 {
        return Err(invalid(
            "limits.network_margin_ms",
            "must be between 0 and 5000 milliseconds",
        ));
    }
    if !(1..=10).contains(&this.retries.max_attempts) {
        return Err(invalid("retries.max_attempts", "must be between 1 and 10"));
    }
    if !(1..=3_600).contains(&this.retries.base_delay_seconds) {
        return Err(invalid(
            "retries.base_delay_seconds",
            "must be between 1 and 3600 seconds",
        ));
    }
    let p = &this.pace;
    for (field, value) in [
        ("pace.long_code", p.long_code),
        ("pace.toll_free", p.toll_free),
        ("pace.short_code", p.short_code),
        ("pace.alphanumeric", p.alphanumeric),
        ("pace.messaging_service", p.messaging_service),
    ] {
        if value == 0 {
            return Err(invalid(field, "must be at least 1 segment per second"));
        }
    }
    if this.allowed_countries.is_empty() {
        return Err(invalid(
            "allowed_countries",
            "list at least one country (ISO codes such as US, CA, AU)",
        ));
    }
    for (field, list) in [
        ("allowed_countries", &this.allowed_countries),
        ("alphanumeric_countries", &this.alphanumeric_countries),
    ] {
        if let Some(bad) = list.iter().find(|c| !is_known_region(c)) {
            return Err(invalid(
                field,
                format!("{bad:?} is not a two-letter country code such as US or AU"),
            ));
        }
    }
    for (field, text) in [
        ("replies.opt_out", &this.replies.opt_out),
        ("replies.opt_in", &this.replies.opt_in),
        ("replies.help", &this.replies.help),
    ] {
        if text.chars().count() > domain::sending::MAX_REPLY_CHARS {
            return Err(invalid(
                field,
                "must be at most 1600 characters (Twilio's limit for one message)",
            ));
        }
    }
    if !is_known_region(&this.default_region) {
        return Err(invalid(
            "default_region",
            format!(
                "{:?} is not a two-letter country code such as US",
                this.default_region
            ),
        ));
    }
    for sender in &this.extra_senders {
        match PhoneNumber::parse(sender, None) {
            Ok(n) if n.e164() == sender => {}
            _ => {
                return Err(invalid(
                    "extra_senders",
                    format!("{sender:?} is not a number in E.164 form such as +15005550006"),
                ));
            }
        }
    }
    if let Some(id) = &this.alphanumeric_id
        && !is_alphanumeric_id(id)
    {
        return Err(invalid(
            "alphanumeric_id",
            "must be 1 to 11 letters, digits or spaces, with at least one letter",
        ));
    }
    if this.simulator.delivered_percent > 100 {
        return Err(invalid("simulator.delivered_percent", "must be 0 to 100"));
    }
    let data = &this.data;
    if !(1..=domain::sending::MAX_RETENTION_DAYS).contains(&data.body_retention_days) {
        return Err(invalid(
            "data.body_retention_days",
            "must be between 1 and 3650 days",
        ));
    }
    if data.webhook_allow_list.len() > domain::sending::MAX_ALLOW_LIST {
        return Err(invalid(
            "data.webhook_allow_list",
            "may list at most 100 networks",
        ));
    }
    if let Some(bad) = data
        .webhook_allow_list
        .iter()
        .find(|n| network(n).is_none())
    {
        return Err(invalid(
            "data.webhook_allow_list",
            format!(
                "{bad:?} is not a network such as 54.172.60.0/23 or an address such as 2001:db8::1"
            ),
        ));
    }
    validate_alert_webhook(this.budgets.alert_webhook_url.as_deref())?;
    if let Some(code) = this
        .failover
        .codes
        .iter()
        .find(|c| !(10_000..=99_999).contains(*c))
    {
        return Err(invalid(
            "failover.codes",
            format!("{code} is not a Twilio error code (five digits, such as 20003)"),
        ));
    }
    for route in &this.failover.routes {
        match &route.country {
            Some(c) if !is_known_region(c) => {
                return Err(invalid(
                    "failover.routes",
                    format!("{c:?} is not a country code such as AU"),
                ));
            }
            None if route.category.is_none() => {
                return Err(invalid(
                    "failover.routes",
                    "a route names a country, a category or both (to send everything through the fallback, name each category)",
                ));
            }
            _ => {}
        }
    }
    validate_prices(&this.prices)
}

/// The budget alert webhook: https, or http to this machine (a local receiver, tests).
fn validate_alert_webhook(url: Option<&str>) -> Result<(), SettingsError> {
    let Some(text) = url else {
        return Ok(());
    };
    let field = "budgets.alert_webhook_url";
    let parsed = reqwest::Url::parse(text.trim()).map_err(|e| {
        invalid(
            field,
            format!("{text:?} is not an address ({e}): write it as https://hooks.example/smsdesk"),
        )
    })?;
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        _ => Err(invalid(
            field,
            "must be an https address (alerts carry spend figures; http only to this machine)",
        )),
    }
}

/// The most a segment may cost in the price table: Twilio's dearest destinations are well under
/// a dollar, so more is a slip of the decimal point.
const MAX_SEGMENT_PRICE: Money = Money::from_micros(5_000_000);

/// Every country a known one, each (country, sender kind) once, each price from $0 to $5.
fn validate_prices(prices: &[SegmentPrice]) -> Result<(), SettingsError> {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in prices.iter().enumerate() {
        let field = format!("prices[{i}]");
        if !is_known_region(&p.country) {
            return Err(invalid(
                &field,
                format!(
                    "{:?} is not a two-letter country code such as US",
                    p.country
                ),
            ));
        }
        if !seen.insert((p.country.as_str(), domain::pricing::kind_name(p.kind))) {
            return Err(invalid(
                &field,
                format!(
                    "{} for {} senders is priced twice: keep one row",
                    p.country,
                    domain::pricing::kind_name(p.kind)
                ),
            ));
        }
        if p.per_segment.is_negative() || p.per_segment > MAX_SEGMENT_PRICE {
            return Err(invalid(
                &field,
                format!(
                    "{} per segment to {} is not a price: write 0 to $5.00 (US list price: $0.0083)",
                    p.per_segment, p.country
                ),
            ));
        }
    }
    Ok(())
}

/// A network of the webhook allow list: CIDR notation, or one address.
fn network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// Whether Twilio's webhooks may come from `address`: always when the allow list is empty,
/// otherwise when one of its networks holds the address (an IPv4 address reached over IPv6,
/// `::ffff:a.b.c.d`, counts as the IPv4 one). Unreadable entries allow nothing (validation
/// keeps them out).
pub fn webhook_allowed(
    data: &domain::sending::DataProtection,
    address: Option<std::net::IpAddr>,
) -> bool {
    if data.webhook_allow_list.is_empty() {
        return true;
    }
    let Some(address) = address else {
        return false;
    };
    let address = match address {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
        v4 => v4,
    };
    data.webhook_allow_list
        .iter()
        .filter_map(|n| network(n))
        .any(|n| n.contains(&address))
}

/// Why settings could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum SettingsStoreError {
    #[error(transparent)]
    Invalid(#[from] SettingsError),
    #[error("the stored settings no longer read: {0}; an admin must save them again")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for SettingsStoreError {
    fn from(e: sqlx::Error) -> Self {
        SettingsStoreError::Db(DbError::Query(e))
    }
}

async fn read(db: &Db, key: &str) -> Result<Option<String>, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(pool)
    .await?))
}

/// The current sending settings (the defaults until an admin saves them).
pub async fn sending(db: &Db) -> Result<SendingSettings, SettingsStoreError> {
    match read(db, SENDING_KEY).await? {
        None => Ok(SendingSettings::default()),
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| SettingsStoreError::Corrupt(e.to_string()))
        }
    }
}

/// Stores new sending settings after checking them; audited with before and after.
pub async fn save_sending(
    db: &Db,
    actor: &Actor,
    new: &SendingSettings,
) -> Result<(), SettingsStoreError> {
    validate(new)?;
    let before = sending(db).await.ok();
    let json = serde_json::to_string(new).expect("serializable");
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by"
    )
    .bind(SENDING_KEY)
    .bind(&json)
    .bind(now_micros())
    .bind(&actor.label)
    .execute(conn)
    .await?
    .rows_affected());
    audit::record(
        &mut tx,
        actor,
        "settings.update",
        "settings:sending",
        before.map(|b| serde_json::to_value(b).expect("serializable")),
        Some(serde_json::to_value(new).expect("serializable")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Values made once per installation and shared by every instance.
#[derive(Clone)]
pub struct Installation {
    /// The `AC...` the Twilio-compatible endpoint expects in its path.
    pub account_sid: String,
    /// The token the simulator signs its callbacks with (when `TWILIO_AUTH_TOKEN` is not set).
    pub simulator_token: secrecy::SecretString,
}

impl std::fmt::Debug for Installation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installation")
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

/// `prefix` + 32 lowercase hex digits, random: Twilio's sid shape.
pub fn random_sid(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Stores `value` under `key` unless one is there, and returns the stored one (another instance
/// may have won the race).
async fn once(db: &Db, key: &str, value: &str) -> Result<String, DbError> {
    let _turn = db.write_turn().await;
    on_db!(db, |pool| sqlx::query(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, 'system')
             ON CONFLICT (key) DO NOTHING"
    )
    .bind(key)
    .bind(value)
    .bind(now_micros())
    .execute(pool)
    .await?
    .rows_affected());
    Ok(read(db, key).await?.unwrap_or_else(|| value.to_owned()))
}

/// The Account SID the Twilio-compatible endpoint expects: Twilio's when given, otherwise one
/// generated on first start and kept.
pub async fn account_sid(db: &Db, twilio_account_sid: Option<&str>) -> Result<String, DbError> {
    match twilio_account_sid {
        Some(sid) => Ok(sid.to_owned()),
        None => once(db, "account_sid", &random_sid("AC")).await,
    }
}

/// The installation's values: `account_sid` is Twilio's when given, otherwise one generated on
/// first start and kept.
pub async fn installation(
    db: &Db,
    key: &DataKey,
    twilio_account_sid: Option<&str>,
) -> Result<Installation, SettingsStoreError> {
    let account_sid = account_sid(db, twilio_account_sid).await?;
    let mut token = [0u8; 16];
    rand::rng().fill_bytes(&mut token);
    let token = hex::encode(token);
    let stored = once(db, "simulator_token", &key.encrypt(&token)).await?;
    let simulator_token = key
        .decrypt(&stored)
        .map_err(|e| SettingsStoreError::Corrupt(format!("simulator token: {e}")))?;
    Ok(Installation {
        account_sid,
        simulator_token: simulator_token.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seed() {
        let s = SendingSettings::default();
        assert_eq!(validate(&s), Ok(()));
        assert_eq!(
            (s.limits.per_second, s.limits.per_minute, s.limits.per_hour),
            (10, 100, 1_000)
        );
        assert_eq!(s.allowed_countries, ["US", "CA", "AU"]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut s = SendingSettings::default();
        s.limits.per_minute = 0;
        assert_eq!(validate(&s).unwrap_err().field, "limits.per_minute");
        let mut s = SendingSettings::default();
        s.allowed_countries.push("XX".into());
        assert_eq!(validate(&s).unwrap_err().field, "allowed_countries");
        let mut s = SendingSettings::default();
        s.extra_senders.push("+1 500 555 0006".into());
        assert_eq!(validate(&s).unwrap_err().field, "extra_senders");
        let s = SendingSettings {
            alphanumeric_id: Some("SafeShipperLtd".into()),
            ..SendingSettings::default()
        };
        assert_eq!(validate(&s).unwrap_err().field, "alphanumeric_id");
    }

    #[test]
    fn prices_are_checked_and_a_document_without_them_gets_the_list_prices() {
        let price = |country: &str, kind, micros| SegmentPrice {
            country: country.to_owned(),
            kind,
            per_segment: Money::from_micros(micros),
        };
        let with = |prices| SendingSettings {
            prices,
            ..SendingSettings::default()
        };
        let short = Some(domain::sending::SenderKind::ShortCode);
        assert_eq!(
            validate(&with(vec![
                price("US", None, 8_300),
                price("US", short, 9_100)
            ])),
            Ok(())
        );
        assert_eq!(validate(&with(Vec::new())), Ok(()));
        for (bad, says) in [
            (vec![price("XX", None, 8_300)], "\"XX\" is not a two-letter"),
            (
                vec![price("US", None, 8_300), price("US", None, 8_400)],
                "priced twice",
            ),
            (vec![price("US", None, -1)], "is not a price"),
            (vec![price("US", None, 5_000_001)], "is not a price"),
        ] {
            let e = validate(&with(bad)).unwrap_err();
            assert!(e.message.contains(says), "{e:?}");
        }
        let e = validate(&with(vec![price("US", None, 1), price("ZZ", None, 1)])).unwrap_err();
        assert_eq!(e.field, "prices[1]");
        // A document saved before prices existed reads with the list prices.
        let old: SendingSettings = serde_json::from_str(r#"{"default_region":"US"}"#).unwrap();
        assert_eq!(old.prices, domain::pricing::starting_prices());
        let json = serde_json::to_value(&old).unwrap();
        assert_eq!(
            json["prices"][2],
            serde_json::json!({"country": "US", "kind": null, "per_segment_micros": 8300})
        );
    }

    #[test]
    fn data_protection_is_checked() {
        let with = |days: u32, list: &[&str]| SendingSettings {
            data: domain::sending::DataProtection {
                body_retention_days: days,
                webhook_allow_list: list.iter().map(|s| (*s).to_owned()).collect(),
            },
            ..SendingSettings::default()
        };
        assert_eq!(SendingSettings::default().data.body_retention_days, 90);
        assert_eq!(
            validate(&with(
                1,
                &["54.172.60.0/23", "2001:db8::/32", "203.0.113.9"]
            )),
            Ok(())
        );
        assert_eq!(validate(&with(3_650, &[])), Ok(()));
        for days in [0, 3_651] {
            assert_eq!(
                validate(&with(days, &[])).unwrap_err().field,
                "data.body_retention_days"
            );
        }
        for bad in ["54.172.60.0/33", "twilio.com", "10.0.0.0/8/1", ""] {
            let e = validate(&with(90, &[bad])).unwrap_err();
            assert_eq!(e.field, "data.webhook_allow_list", "{bad:?}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            validate(&with(90, &many)).unwrap_err().field,
            "data.webhook_allow_list"
        );
    }

    #[test]
    fn webhooks_come_only_from_the_allowed_networks() {
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let open = domain::sending::DataProtection::default();
        assert!(webhook_allowed(&open, ip("198.51.100.7")));
        assert!(webhook_allowed(&open, None));
        let list = domain::sending::DataProtection {
            webhook_allow_list: vec!["54.172.60.0/23".into(), "2001:db8::1".into()],
            ..Default::default()
        };
        assert!(webhook_allowed(&list, ip("54.172.60.1")));
        assert!(webhook_allowed(&list, ip("54.172.61.255")));
        assert!(!webhook_allowed(&list, ip("54.172.62.0")));
        assert!(
            webhook_allowed(&list, ip("::ffff:54.172.60.9")),
            "IPv4 over IPv6"
        );
        assert!(webhook_allowed(&list, ip("2001:db8::1")));
        assert!(!webhook_allowed(&list, ip("2001:db8::2")));
        assert!(
            !webhook_allowed(&list, None),
            "an unknown address is not on the list"
        );
    }

    #[test]
    fn sender_kinds() {
        assert_eq!(SenderKind::of("+14155550100"), SenderKind::LongCode);
        assert_eq!(SenderKind::of("+18885550100"), SenderKind::TollFree);
        assert_eq!(SenderKind::of("12345"), SenderKind::ShortCode);
        assert_eq!(SenderKind::of("SafeShip"), SenderKind::Alphanumeric);
        assert_eq!(
            SenderKind::of("MG0123456789abcdef0123456789abcdef"),
            SenderKind::MessagingService
        );
        assert_eq!(SenderPace::default().for_sender("+18885550100"), 3);
    }

    #[test]
    fn sids_have_twilios_shape() {
        let sid = random_sid("SM");
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert!(
            sid[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "lowercase hex: {sid}"
        );
        assert_ne!(sid, random_sid("SM"));
    }
}

/// A price list as finance pastes it, and what it does to `table`:
/// - Twilio's Pricing API answer for a country (JSON, `{"iso_country": …,
///   "outbound_sms_prices": …}`, or an array of them): those countries' rows are replaced;
/// - CSV (`country,sender_kind,price_per_segment`, the header optional): the whole table is.
///
/// Every row is read before anything changes; the first bad one is named.
pub fn apply_price_list(
    table: &[SegmentPrice],
    text: &str,
) -> Result<Vec<SegmentPrice>, domain::pricing::PriceError> {
    use domain::pricing::{CSV_HEADER, CountryPricing, PriceError};
    let trimmed = text.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let answers: Vec<CountryPricing> = if trimmed.starts_with('[') {
            serde_json::from_str(trimmed)
        } else {
            serde_json::from_str(trimmed).map(|one| vec![one])
        }
        .map_err(|e| PriceError::Shape {
            line: e.line(),
            problem: format!("not Twilio's Pricing API answer ({e})"),
        })?;
        let mut imported = Vec::new();
        for answer in &answers {
            imported.extend(domain::pricing::from_twilio_pricing(answer)?);
        }
        if imported.is_empty() {
            return Err(PriceError::Empty);
        }
        let mut rows: Vec<SegmentPrice> = table
            .iter()
            .filter(|row| !imported.iter().any(|i| i.country == row.country))
            .cloned()
            .collect();
        rows.extend(imported);
        rows.sort_by(|a, b| a.country.cmp(&b.country));
        return Ok(rows);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(trimmed.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = record.map_err(|e| PriceError::Shape {
            line,
            problem: e.to_string(),
        })?;
        let fields: Vec<&str> = record.iter().collect();
        if i == 0
            && fields
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .eq(CSV_HEADER.iter().map(|h| h.to_string()))
        {
            continue;
        }
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        rows.push(domain::pricing::from_csv_record(line, &fields)?);
    }
    if rows.is_empty() {
        return Err(PriceError::Empty);
    }
    Ok(rows)
}

#[cfg(test)]
mod price_list_tests {
    use super::*;
    use domain::pricing::starting_prices;

    #[test]
    fn a_csv_replaces_the_table_and_names_a_bad_line() {
        let rows = apply_price_list(
            &starting_prices(),
            "country,sender_kind,price_per_segment\nUS,any,0.0079\nUS,toll_free,0.0083\n",
        )
        .expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].per_segment.micros(), 7_900);
        let bad = apply_price_list(&starting_prices(), "US,any,0.0079\nXX,any,cheap")
            .expect_err("bad line");
        assert!(bad.to_string().contains("line 2"), "{bad}");
        assert!(
            apply_price_list(
                &starting_prices(),
                "country,sender_kind,price_per_segment\n"
            )
            .is_err()
        );
    }

    #[test]
    fn twilios_pricing_answer_replaces_its_country_only() {
        let answer = r#"{"iso_country": "AU", "price_unit": "USD", "outbound_sms_prices": [
            {"carrier": "Telstra", "prices": [{"number_type": "local", "base_price": "0.0515", "current_price": "0.0515"}]},
            {"carrier": "Optus", "prices": [{"number_type": "local", "base_price": "0.0600", "current_price": "0.0600"}]}
        ]}"#;
        let rows = apply_price_list(&starting_prices(), answer).expect("read");
        let au: Vec<_> = rows.iter().filter(|r| r.country == "AU").collect();
        // Long codes, and any other sender: each at the dearest carrier's price.
        assert_eq!(au.len(), 2);
        assert!(
            au.iter().all(|r| r.per_segment.micros() == 60_000),
            "{au:?}"
        );
        assert!(
            rows.iter().any(|r| r.country == "US"),
            "other countries stay"
        );
        let euros = answer.replace("\"USD\"", "\"EUR\"");
        assert!(
            apply_price_list(&starting_prices(), &euros)
                .expect_err("EUR")
                .to_string()
                .contains("EUR")
        );
    }
}
