//! Prices per outbound segment: the table smsdesk estimates every message's cost from before
//! Twilio reports it, and the two ways a table is imported (Twilio's Pricing API answer for a
//! country, and CSV).
//!
//! A price belongs to a destination country and, optionally, a kind of sender (Twilio charges
//! some countries differently from a toll-free number or a short code). The most specific row
//! wins: the country and the sender's kind, else the country for any sender.

use serde::{Deserialize, Serialize};

use crate::money::{Money, MoneyError};
use crate::sending::SenderKind;

/// The price of one outbound segment to `country` from senders of `kind` (`None`: any sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPrice {
    /// ISO 3166-1 alpha-2, upper case (`US`).
    pub country: String,
    pub kind: Option<SenderKind>,
    /// µ$ per segment in the settings document (`8300` for $0.0083).
    #[serde(rename = "per_segment_micros")]
    pub per_segment: Money,
}

/// Why a price list could not be read. Each names the row (from 1 after a CSV's header) or the
/// field, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error(
        "the prices are in {0}: smsdesk counts US dollars; convert them or import Twilio's USD list"
    )]
    NotUsd(String),
    #[error("{country:?} is not a country: use its two-letter ISO code, such as US")]
    Country { country: String },
    #[error(
        "{0:?} is not a kind of sender: use any, long_code, toll_free, short_code, alphanumeric or messaging_service"
    )]
    Kind(String),
    #[error("price {price:?}: {source}")]
    Price {
        price: String,
        #[source]
        source: MoneyError,
    },
    #[error(
        "price {0}: a price per segment is not negative; write what one segment costs, such as 0.0083"
    )]
    Negative(String),
    #[error("line {line}: {problem}")]
    Line {
        line: usize,
        problem: Box<PriceError>,
    },
    #[error("line {line}: {problem}")]
    Shape { line: usize, problem: String },
    #[error("there are no outbound SMS prices in this list")]
    Empty,
}

/// A country code as stored: two ASCII letters, upper case.
pub fn country(code: &str) -> Result<String, PriceError> {
    let code = code.trim();
    if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(PriceError::Country {
            country: code.to_owned(),
        })
    }
}

/// A kind of sender as written in a price list: `any` (or empty) for every sender, else
/// smsdesk's name (`toll_free`) or Twilio's (`toll free`, `shortcode`, `local`, `mobile`).
pub fn kind(name: &str) -> Result<Option<SenderKind>, PriceError> {
    let normal = name.trim().to_ascii_lowercase();
    Ok(Some(match normal.as_str() {
        "" | "any" => return Ok(None),
        "long_code" | "local" | "mobile" => SenderKind::LongCode,
        "toll_free" | "toll free" | "tollfree" => SenderKind::TollFree,
        "short_code" | "shortcode" | "short code" => SenderKind::ShortCode,
        "alphanumeric" => SenderKind::Alphanumeric,
        "messaging_service" => SenderKind::MessagingService,
        _ => return Err(PriceError::Kind(name.to_owned())),
    }))
}

/// The name a kind of sender is stored and written under (`any` for none).
pub fn kind_name(kind: Option<SenderKind>) -> &'static str {
    match kind {
        None => "any",
        Some(SenderKind::LongCode) => "long_code",
        Some(SenderKind::TollFree) => "toll_free",
        Some(SenderKind::ShortCode) => "short_code",
        Some(SenderKind::Alphanumeric) => "alphanumeric",
        Some(SenderKind::MessagingService) => "messaging_service",
    }
}

fn per_segment(price: &str) -> Result<Money, PriceError> {
    let money = Money::parse(price.trim()).map_err(|source| PriceError::Price {
        price: price.to_owned(),
        source,
    })?;
    if money.is_negative() {
        return Err(PriceError::Negative(price.to_owned()));
    }
    Ok(money)
}

/// The price of a message of `segments` segments at `price`, or `None` when there is no price
/// for its country (or the product overflows, which no real price reaches).
pub fn estimate(segments: u32, price: Option<Money>) -> Option<Money> {
    price?.for_segments(segments)
}

/// The price that applies to a message to `country` from a sender of `kind` (`None`: the
/// configured default sender, whose kind intake does not know): the row for both, else the
/// country's row for any sender.
pub fn lookup(table: &[SegmentPrice], country: &str, kind: Option<SenderKind>) -> Option<Money> {
    let row = |k: Option<SenderKind>| {
        table
            .iter()
            .find(|p| p.country == country && p.kind == k)
            .map(|p| p.per_segment)
    };
    kind.and_then(|k| row(Some(k))).or_else(|| row(None))
}

/// Twilio's Pricing API answer for one country, the fields smsdesk reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct CountryPricing {
    pub iso_country: String,
    pub price_unit: Option<String>,
    #[serde(default)]
    pub outbound_sms_prices: Vec<CarrierPrices>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CarrierPrices {
    #[serde(default)]
    pub prices: Vec<NumberTypePrice>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NumberTypePrice {
    pub number_type: String,
    pub current_price: String,
}

/// The prices in Twilio's Pricing API answer for one country
/// (`GET https://pricing.twilio.com/v1/Messaging/Countries/{IsoCountry}`): per kind of sender,
/// the highest current price over the country's carriers (an estimate that took the cheapest
/// carrier would let spend pass a budget). Number types smsdesk does not send from are left out.
pub fn from_twilio_pricing(answer: &CountryPricing) -> Result<Vec<SegmentPrice>, PriceError> {
    if let Some(unit) = answer.price_unit.as_deref()
        && !unit.eq_ignore_ascii_case("USD")
    {
        return Err(PriceError::NotUsd(unit.to_owned()));
    }
    let country = country(&answer.iso_country)?;
    let mut prices: Vec<SegmentPrice> = Vec::new();
    for carrier in &answer.outbound_sms_prices {
        for p in &carrier.prices {
            let Ok(Some(kind)) = kind(&p.number_type) else {
                continue;
            };
            let price = per_segment(&p.current_price)?;
            match prices.iter_mut().find(|e| e.kind == Some(kind)) {
                Some(e) => e.per_segment = e.per_segment.max(price),
                None => prices.push(SegmentPrice {
                    country: country.clone(),
                    kind: Some(kind),
                    per_segment: price,
                }),
            }
        }
    }
    if prices.is_empty() {
        return Err(PriceError::Empty);
    }
    // The highest of them also stands for any other sender to the country.
    let highest = prices
        .iter()
        .map(|p| p.per_segment)
        .max()
        .unwrap_or(Money::ZERO);
    prices.push(SegmentPrice {
        country,
        kind: None,
        per_segment: highest,
    });
    prices.sort_by_key(|p| kind_name(p.kind));
    Ok(prices)
}

/// The header a price CSV starts with (smsdesk's export writes it too).
pub const CSV_HEADER: [&str; 3] = ["country", "sender_kind", "price_per_segment"];

/// One CSV record (`US,any,0.0083`): which row of the table it sets. `line` is the record's
/// line, for the error.
pub fn from_csv_record(line: usize, fields: &[&str]) -> Result<SegmentPrice, PriceError> {
    let at = |problem: PriceError| PriceError::Line {
        line,
        problem: Box::new(problem),
    };
    let [c, k, p] = fields else {
        return Err(PriceError::Shape {
            line,
            problem: format!(
                "{} fields; write three: country,sender_kind,price_per_segment (US,any,0.0083)",
                fields.len()
            ),
        });
    };
    Ok(SegmentPrice {
        country: country(c).map_err(at)?,
        kind: kind(k).map_err(at)?,
        per_segment: per_segment(p).map_err(at)?,
    })
}

/// List prices smsdesk starts with, per segment, for the countries it allows by default: Twilio's
/// published prices in 2026 (US and Canada $0.0083, Australia $0.0515). Finance replaces them
/// with the account's own (the spend page, or an import of Twilio's Pricing API answer).
pub fn starting_prices() -> Vec<SegmentPrice> {
    [("AU", 51_500), ("CA", 8_300), ("US", 8_300)]
        .into_iter()
        .map(|(country, micros)| SegmentPrice {
            country: country.to_owned(),
            kind: None,
            per_segment: Money::from_micros(micros),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn an_estimate_is_segments_times_the_price_and_none_without_a_price() {
        assert_eq!(estimate(1, Some(usd("0.0083"))), Some(usd("0.0083")));
        assert_eq!(estimate(3, Some(usd("0.0083"))), Some(usd("0.0249")));
        assert_eq!(estimate(0, Some(usd("0.0083"))), Some(Money::ZERO));
        assert_eq!(estimate(2, None), None);
    }

    #[test]
    fn the_sender_kind_row_wins_over_the_country_row() {
        let table = vec![
            SegmentPrice {
                country: "US".into(),
                kind: None,
                per_segment: usd("0.0083"),
            },
            SegmentPrice {
                country: "US".into(),
                kind: Some(SenderKind::ShortCode),
                per_segment: usd("0.0091"),
            },
        ];
        assert_eq!(
            lookup(&table, "US", Some(SenderKind::ShortCode)),
            Some(usd("0.0091"))
        );
        assert_eq!(
            lookup(&table, "US", Some(SenderKind::TollFree)),
            Some(usd("0.0083"))
        );
        assert_eq!(lookup(&table, "US", None), Some(usd("0.0083")));
        assert_eq!(lookup(&table, "CA", Some(SenderKind::LongCode)), None);
    }

    const TWILIO_US: &str = r#"{
        "country": "United States", "iso_country": "US", "price_unit": "USD",
        "url": "https://pricing.twilio.com/v1/Messaging/Countries/US",
        "inbound_sms_prices": [{"number_type": "local", "base_price": "0.0083", "current_price": "0.0083"}],
        "outbound_sms_prices": [
            {"carrier": "AT&T", "mcc": "310", "mnc": "410", "prices": [
                {"number_type": "local", "base_price": "0.0083", "current_price": "0.0083"},
                {"number_type": "toll free", "base_price": "0.0083", "current_price": "0.0083"},
                {"number_type": "shortcode", "base_price": "0.0091", "current_price": "0.0091"}]},
            {"carrier": "Verizon", "mcc": "311", "mnc": "480", "prices": [
                {"number_type": "local", "base_price": "0.0083", "current_price": "0.0085"},
                {"number_type": "shortcode", "base_price": "0.0091", "current_price": "0.0090"}]}
        ]}"#;

    fn twilio(json: &str) -> Result<Vec<SegmentPrice>, PriceError> {
        from_twilio_pricing(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn twilio_pricing_gives_the_highest_carrier_price_per_sender_kind() {
        let prices = twilio(TWILIO_US).unwrap();
        let get = |k| prices.iter().find(|p| p.kind == k).map(|p| p.per_segment);
        assert_eq!(get(Some(SenderKind::LongCode)), Some(usd("0.0085")));
        assert_eq!(get(Some(SenderKind::TollFree)), Some(usd("0.0083")));
        assert_eq!(get(Some(SenderKind::ShortCode)), Some(usd("0.0091")));
        assert_eq!(get(None), Some(usd("0.0091")));
        assert_eq!(prices.len(), 4);
        assert!(prices.iter().all(|p| p.country == "US"));
    }

    #[test]
    fn twilio_pricing_in_another_currency_or_without_prices_is_refused() {
        let eur = TWILIO_US.replace("\"USD\"", "\"EUR\"");
        assert_eq!(twilio(&eur), Err(PriceError::NotUsd("EUR".into())));
        let none = r#"{"iso_country": "US", "price_unit": "USD", "outbound_sms_prices": []}"#;
        assert_eq!(twilio(none), Err(PriceError::Empty));
        let bad = TWILIO_US.replace("0.0085", "-0.0085");
        assert_eq!(twilio(&bad), Err(PriceError::Negative("-0.0085".into())));
    }

    #[test]
    fn csv_records_name_their_line_and_field() {
        assert_eq!(
            from_csv_record(2, &["us", "any", "0.0083"]).unwrap(),
            SegmentPrice {
                country: "US".into(),
                kind: None,
                per_segment: usd("0.0083")
            }
        );
        assert_eq!(
            from_csv_record(3, &["AU", "toll free", "0.0515"])
                .unwrap()
                .kind,
            Some(SenderKind::TollFree)
        );
        let err = from_csv_record(4, &["USA", "any", "0.0083"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: \"USA\" is not a country: use its two-letter ISO code, such as US"
        );
        let err = from_csv_record(5, &["US", "any", "0.00831234"]).unwrap_err();
        assert!(
            err.to_string().starts_with("line 5: price \"0.00831234\""),
            "{err}"
        );
        let err = from_csv_record(6, &["US", "0.0083"]).unwrap_err();
        assert!(err.to_string().starts_with("line 6: 2 fields"), "{err}");
        let err = from_csv_record(7, &["US", "fax", "0.01"]).unwrap_err();
        assert!(
            err.to_string().contains("\"fax\" is not a kind of sender"),
            "{err}"
        );
    }

    #[test]
    fn kind_names_read_back() {
        for k in [
            None,
            Some(SenderKind::LongCode),
            Some(SenderKind::TollFree),
            Some(SenderKind::ShortCode),
            Some(SenderKind::Alphanumeric),
            Some(SenderKind::MessagingService),
        ] {
            assert_eq!(kind(kind_name(k)), Ok(k));
        }
    }
}
