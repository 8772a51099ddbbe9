//! The settings of the sending engine that admins change at run time: rate limits, retries,
//! sender pace, geo permissions, default region, senders, the simulator's odds. Plain data shared
//! by the server (which stores and checks them: `backend::settings`) and the console's form.

use serde::{Deserialize, Serialize};

/// Everything the sending engine reads at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendingSettings {
    pub limits: RateLimits,
    pub retries: Retries,
    pub pace: SenderPace,
    /// Countries (ISO 3166 alpha-2) smsdesk may send to: Twilio's geo permissions, checked first.
    pub allowed_countries: Vec<String>,
    /// How numbers without `+country` are read (ISO 3166 alpha-2).
    pub default_region: String,
    /// More numbers (E.164) a caller may name as `sender`, besides the configured one.
    pub extra_senders: Vec<String>,
    /// An alphanumeric sender id (1 to 11 letters, digits, spaces; at least one letter) used for
    /// recipients in `alphanumeric_countries`.
    pub alphanumeric_id: Option<String>,
    pub alphanumeric_countries: Vec<String>,
    pub simulator: SimulatorSettings,
    /// What smsdesk answers to Twilio's keywords on the incoming-message webhook.
    pub replies: KeywordReplies,
    /// How long bodies are kept, and where Twilio's webhooks may come from.
    pub data: DataProtection,
    /// What one outbound segment costs, by country (and kind of sender): every message's
    /// estimate at intake. A country without a price gets no estimate.
    pub prices: Vec<crate::pricing::SegmentPrice>,
    /// How budgets treat emergencies, and where their alerts are posted.
    pub budgets: BudgetSettings,
    /// When a message goes to the fallback provider (when one is configured).
    pub failover: Failover,
}

/// When the fallback provider carries a message. Besides these codes, it carries every message
/// while the primary is in a storm (429s, 5xx answers, timeouts), until a probe finds the primary
/// healthy again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Failover {
    /// Twilio error codes with which the primary refuses a message that the fallback then
    /// carries at once (the primary sent nothing).
    pub codes: Vec<u32>,
    /// Messages the fallback carries first (the primary when the fallback is paused).
    pub routes: Vec<FailoverRoute>,
}

/// Which messages go to the fallback first: to a country, of a category, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRoute {
    /// ISO 3166 alpha-2 (`AU`); `None`: any country.
    #[serde(default)]
    pub country: Option<String>,
    /// `None`: any category (messages without one included).
    #[serde(default)]
    pub category: Option<crate::template::Category>,
}

impl FailoverRoute {
    /// Whether a message to `region` of `category` takes this route.
    pub fn matches(&self, region: &str, category: Option<crate::template::Category>) -> bool {
        self.country.as_deref().is_none_or(|c| c == region)
            && self.category.is_none_or(|c| Some(c) == category)
    }
}

impl Failover {
    /// Whether the fallback carries a message to `region` of `category` first.
    pub fn routes_to_fallback(
        &self,
        region: &str,
        category: Option<crate::template::Category>,
    ) -> bool {
        self.routes.iter().any(|r| r.matches(region, category))
    }
}

impl FailoverRoute {
    /// A route as the console writes it: a country code, a category, or both (`AU`,
    /// `emergency`, `AU emergency`).
    pub fn to_text(&self) -> String {
        [
            self.country.clone(),
            self.category.map(|c| c.as_str().to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Reads [`FailoverRoute::to_text`]'s form (words split by spaces or commas, any case): a
    /// two-letter word is the country, another is a category. Says what is wrong otherwise.
    pub fn parse(text: &str) -> Result<FailoverRoute, String> {
        let mut route = FailoverRoute {
            country: None,
            category: None,
        };
        for word in text.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
            if word.len() == 2 && word.chars().all(|c| c.is_ascii_alphabetic()) {
                if route.country.is_some() {
                    return Err(format!(
                        "{text:?} names two countries: write one route per line"
                    ));
                }
                route.country = Some(word.to_ascii_uppercase());
            } else {
                if route.category.is_some() {
                    return Err(format!(
                        "{text:?} names two categories: write one route per line"
                    ));
                }
                let category = word.to_ascii_lowercase().parse().map_err(|_| {
                    format!(
                        "{word:?} is neither a country code (AU) nor a category (shipment, emergency, two_factor, driver)"
                    )
                })?;
                route.category = Some(category);
            }
        }
        if route.country.is_none() && route.category.is_none() {
            return Err("an empty route".to_owned());
        }
        Ok(route)
    }
}

impl Failover {
    /// The codes as the console writes them: `20003, 20005, 21611`.
    pub fn codes_text(&self) -> String {
        self.codes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads codes split by commas, spaces or lines; says which word is not a number.
    pub fn parse_codes(text: &str) -> Result<Vec<u32>, String> {
        text.split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.parse()
                    .map_err(|_| format!("{w:?} is not an error code: write numbers such as 20003"))
            })
            .collect()
    }

    /// The routes as the console writes them, one per line.
    pub fn routes_text(&self) -> String {
        self.routes
            .iter()
            .map(FailoverRoute::to_text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads one route per line (blank lines skipped), naming the first bad line.
    pub fn parse_routes(text: &str) -> Result<Vec<FailoverRoute>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| FailoverRoute::parse(l).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect()
    }
}

impl Default for Failover {
    /// The primary account cannot send at all: authentication failed (20003), the account is not
    /// active (20005), the sender's queue is full (21611).
    fn default() -> Self {
        Failover {
            codes: vec![20003, 20005, 21611],
            routes: Vec::new(),
        }
    }
}

/// Budgets' settings (the budgets themselves are set on the spend page or with `smsdesk budget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetSettings {
    /// Emergency messages pass hard stops (they still count against every budget).
    pub exempt_emergency: bool,
    /// An https address each budget alert is posted to as JSON, signed with
    /// `SMSDESK_ALERT_WEBHOOK_SECRET` (HMAC-SHA256 in `X-Smsdesk-Signature`).
    pub alert_webhook_url: Option<String>,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            exempt_emergency: true,
            alert_webhook_url: None,
        }
    }
}

/// Data protection: bodies are removed after `body_retention_days` (the rest of the record
/// stays; two-factor bodies go as soon as the code has left); Twilio's webhooks are accepted
/// only from `webhook_allow_list` when it is not empty (checked after the signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataProtection {
    /// 1 to [`MAX_RETENTION_DAYS`].
    pub body_retention_days: u32,
    /// Networks in CIDR notation (`54.172.60.0/23`) or single addresses.
    pub webhook_allow_list: Vec<String>,
}

impl Default for DataProtection {
    fn default() -> Self {
        DataProtection {
            body_retention_days: 90,
            webhook_allow_list: Vec::new(),
        }
    }
}

/// Longest body retention: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3_650;
/// Most networks in the webhook allow list.
pub const MAX_ALLOW_LIST: usize = 100;

/// The answers to STOP (and its synonyms), START and HELP: Twilio's default texts unless
/// changed. An empty reply answers nothing (an empty TwiML `<Response/>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeywordReplies {
    pub opt_out: String,
    pub opt_in: String,
    pub help: String,
}

impl Default for KeywordReplies {
    fn default() -> Self {
        KeywordReplies {
            opt_out: crate::consent::OPT_OUT_REPLY.to_owned(),
            opt_in: crate::consent::OPT_IN_REPLY.to_owned(),
            help: crate::consent::HELP_REPLY.to_owned(),
        }
    }
}

impl KeywordReplies {
    /// The reply to a keyword, if any (none to an ordinary message or an emptied reply).
    pub fn to(&self, keyword: crate::keywords::Keyword) -> Option<&str> {
        use crate::keywords::Keyword;
        let text = match keyword {
            Keyword::OptOut => &self.opt_out,
            Keyword::OptIn => &self.opt_in,
            Keyword::Help => &self.help,
            Keyword::Other => return None,
        };
        (!text.trim().is_empty()).then_some(text.as_str())
    }
}

/// Longest keyword reply (Twilio's body limit).
pub const MAX_REPLY_CHARS: usize = 1_600;

/// "Never more than N in any window", for all messages and per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub per_second: u32,
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_recipient_per_hour: u32,
    pub per_recipient_per_day: u32,
    /// Emergency messages skip the per-recipient limits (never the global ones).
    pub emergency_exempt: bool,
    /// Two-factor messages (codes) skip the per-recipient limits (never the global ones): a
    /// person signing in again must not wait an hour for a code that lives ten minutes; the
    /// verifications' own limit (5 codes per number in 10 minutes) guards the recipient.
    pub two_factor_exempt: bool,
    /// How much later than its neighbours a request may reach Twilio (ms): the global limits
    /// are kept over each window widened by this much, so that they hold by arrival time, as
    /// Twilio counts. 0 to 5,000.
    pub network_margin_ms: u32,
}

/// How failed sends are tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Retries {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long (with jitter).
    pub base_delay_seconds: u32,
}

/// Segments per second each kind of sender may send (Twilio queues anything faster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SenderPace {
    pub long_code: u32,
    pub toll_free: u32,
    pub short_code: u32,
    pub alphanumeric: u32,
    pub messaging_service: u32,
}

/// How the simulator's messages end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatorSettings {
    /// Of the messages that reach a handset, the share (percent) delivered; the rest end
    /// undelivered with a carrier error.
    pub delivered_percent: u8,
    /// Milliseconds from queued to sent, and from sent to the final status.
    pub sent_after_ms: u32,
    pub final_after_ms: u32,
}

impl Default for SendingSettings {
    fn default() -> Self {
        SendingSettings {
            limits: RateLimits::default(),
            retries: Retries::default(),
            pace: SenderPace::default(),
            allowed_countries: vec!["US".into(), "CA".into(), "AU".into()],
            default_region: "US".into(),
            extra_senders: Vec::new(),
            alphanumeric_id: None,
            alphanumeric_countries: Vec::new(),
            simulator: SimulatorSettings::default(),
            replies: KeywordReplies::default(),
            data: DataProtection::default(),
            prices: crate::pricing::starting_prices(),
            budgets: BudgetSettings::default(),
            failover: Failover::default(),
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_second: 10,
            per_minute: 100,
            per_hour: 1_000,
            per_recipient_per_hour: 3,
            per_recipient_per_day: 10,
            emergency_exempt: true,
            two_factor_exempt: true,
            network_margin_ms: 200,
        }
    }
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max_attempts: 3,
            base_delay_seconds: 60,
        }
    }
}

impl Default for SenderPace {
    fn default() -> Self {
        SenderPace {
            long_code: 1,
            toll_free: 3,
            short_code: 100,
            alphanumeric: 10,
            messaging_service: 10,
        }
    }
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        SimulatorSettings {
            delivered_percent: 95,
            sent_after_ms: 300,
            final_after_ms: 1_500,
        }
    }
}

/// What kind of sender a `From` (or Messaging Service) is, which sets its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    LongCode,
    TollFree,
    ShortCode,
    Alphanumeric,
    MessagingService,
}

/// North American toll-free area codes.
const TOLL_FREE_AREAS: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];

impl SenderKind {
    pub fn of(sender: &str) -> SenderKind {
        if sender.starts_with("MG") && sender.len() == 34 {
            SenderKind::MessagingService
        } else if sender.chars().any(|c| c.is_ascii_alphabetic()) {
            SenderKind::Alphanumeric
        } else if !sender.starts_with('+') && (5..=6).contains(&sender.len()) {
            SenderKind::ShortCode
        } else if sender
            .strip_prefix("+1")
            .is_some_and(|rest| TOLL_FREE_AREAS.iter().any(|a| rest.starts_with(a)))
        {
            SenderKind::TollFree
        } else {
            SenderKind::LongCode
        }
    }
}

impl SenderPace {
    /// Segments per second for this sender.
    pub fn for_sender(&self, sender: &str) -> u32 {
        match SenderKind::of(sender) {
            SenderKind::LongCode => self.long_code,
            SenderKind::TollFree => self.toll_free,
            SenderKind::ShortCode => self.short_code,
            SenderKind::Alphanumeric => self.alphanumeric,
            SenderKind::MessagingService => self.messaging_service,
        }
    }
}

#[cfg(test)]
mod failover_tests {
    use super::*;
    use crate::template::Category;

    #[test]
    fn a_route_matches_its_country_and_category_each_when_named() {
        let au = FailoverRoute {
            country: Some("AU".into()),
            category: None,
        };
        assert!(au.matches("AU", None) && au.matches("AU", Some(Category::Driver)));
        assert!(!au.matches("US", None));
        let emergencies_in_au = FailoverRoute {
            country: Some("AU".into()),
            category: Some(Category::Emergency),
        };
        assert!(emergencies_in_au.matches("AU", Some(Category::Emergency)));
        assert!(!emergencies_in_au.matches("AU", Some(Category::Shipment)));
        assert!(!emergencies_in_au.matches("AU", None));
        let failover = Failover {
            codes: Vec::new(),
            routes: vec![au, emergencies_in_au],
        };
        assert!(failover.routes_to_fallback("AU", None));
        assert!(!failover.routes_to_fallback("NZ", Some(Category::Emergency)));
    }

    #[test]
    fn routes_and_codes_read_back_what_the_console_writes() {
        let failover = Failover {
            codes: vec![20003, 21611],
            routes: vec![
                FailoverRoute {
                    country: Some("AU".into()),
                    category: None,
                },
                FailoverRoute {
                    country: None,
                    category: Some(Category::Emergency),
                },
                FailoverRoute {
                    country: Some("NZ".into()),
                    category: Some(Category::TwoFactor),
                },
            ],
        };
        assert_eq!(failover.codes_text(), "20003, 21611");
        assert_eq!(failover.routes_text(), "AU\nemergency\nNZ two_factor");
        assert_eq!(
            Failover::parse_codes(&failover.codes_text()),
            Ok(failover.codes.clone())
        );
        assert_eq!(
            Failover::parse_routes(&failover.routes_text()),
            Ok(failover.routes.clone())
        );
        // Any case, commas, blank lines, the category first.
        assert_eq!(
            Failover::parse_routes("au\n\n  Emergency \ntwo_factor, nz"),
            Ok(failover.routes.clone())
        );
        assert_eq!(Failover::parse_codes(""), Ok(Vec::new()));
    }

    #[test]
    fn a_bad_route_or_code_is_named() {
        let why = Failover::parse_routes("AU\nAustralia").expect_err("a word that is neither");
        assert!(
            why.starts_with("line 2:") && why.contains("\"Australia\""),
            "{why}"
        );
        assert!(
            Failover::parse_routes("AU NZ")
                .expect_err("two")
                .contains("two countries")
        );
        assert!(
            Failover::parse_routes("driver emergency")
                .expect_err("two")
                .contains("two categories")
        );
        let why = Failover::parse_codes("20003, 2OOO5").expect_err("a letter O");
        assert!(why.contains("\"2OOO5\""), "{why}");
    }
}
