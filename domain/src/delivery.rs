//! The delivery log's filter as people and programs write it: the query of the console's log
//! address (`/messages?status=problems&template=pickup`) and of `GET /api/v1/messages`, the same
//! names in both. Text only here, so the browser can build and read addresses; the server checks
//! it into typed criteria (`backend::delivery::Filter::parse`), with a sentence for what is wrong.

use serde::{Deserialize, Serialize};

/// A log filter as written in an address. Empty values count as not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogQuery {
    /// A status (`delivered`, `failed`, …) or `problems` (failed and undelivered).
    pub status: Option<String>,
    /// A template's key.
    pub template: Option<String>,
    /// `shipment`, `emergency`, `two_factor` or `driver`.
    pub category: Option<String>,
    /// Who sent it: `api_key:SK…` or `user:<e-mail>` (an `SK…` id or an e-mail alone will do).
    pub source: Option<String>,
    /// The recipient, in any format a phone number is written in.
    pub to: Option<String>,
    /// Twilio's error code.
    pub error_code: Option<String>,
    /// Text the body contains.
    pub text: Option<String>,
    /// Written on or after this day (`YYYY-MM-DD`, UTC) or instant (RFC 3339).
    pub date_from: Option<String>,
    /// Written on or before this day (`YYYY-MM-DD`, UTC, the whole day) or before this instant.
    pub date_to: Option<String>,
}

impl LogQuery {
    /// The names in an address, in the order addresses are written.
    pub const NAMES: [&'static str; 9] = [
        "status",
        "template",
        "category",
        "source",
        "to",
        "error_code",
        "text",
        "date_from",
        "date_to",
    ];

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "status" => &mut self.status,
            "template" => &mut self.template,
            "category" => &mut self.category,
            "source" => &mut self.source,
            "to" => &mut self.to,
            "error_code" => &mut self.error_code,
            "text" => &mut self.text,
            "date_from" => &mut self.date_from,
            "date_to" => &mut self.date_to,
            _ => return None,
        })
    }

    /// The value given for `name` (trimmed; `None` when empty or not a filter name).
    pub fn get(&self, name: &str) -> Option<&str> {
        let value = match name {
            "status" => &self.status,
            "template" => &self.template,
            "category" => &self.category,
            "source" => &self.source,
            "to" => &self.to,
            "error_code" => &self.error_code,
            "text" => &self.text,
            "date_from" => &self.date_from,
            "date_to" => &self.date_to,
            _ => return None,
        };
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    /// Sets `name`, trimmed (an unknown name is ignored, so other parameters can share the
    /// address).
    pub fn set(&mut self, name: &str, value: Option<String>) {
        if let Some(slot) = self.slot(name) {
            *slot = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        }
    }

    /// The query read from an address's pairs (unknown names ignored; the last value wins).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LogQuery {
        let mut q = LogQuery::default();
        for (name, value) in pairs {
            q.set(name, Some(value.to_owned()));
        }
        q
    }

    /// The filters given, as an address writes them (empty ones left out).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        Self::NAMES
            .into_iter()
            .filter_map(|name| self.get(name).map(|v| (name, v)))
            .collect()
    }

    /// Whether no filter is given.
    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// This query with `name` set to `value` (a link to a narrower or another view).
    pub fn with(&self, name: &str, value: &str) -> LogQuery {
        let mut q = self.clone();
        q.set(name, Some(value.to_owned()));
        q
    }

    /// This query without `name`.
    pub fn without(&self, name: &str) -> LogQuery {
        let mut q = self.clone();
        q.set(name, None);
        q
    }
}

/// Where a page of the log starts: the messages older than a message's id, or newer. Written in
/// addresses and API answers as `o<id>` / `n<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cursor {
    Older(i64),
    Newer(i64),
}

impl Cursor {
    /// The cursor a text names, if it is one smsdesk wrote.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (kind, id) = text.split_at_checked(1)?;
        let id = id.parse::<i64>().ok().filter(|id| *id > 0)?;
        match kind {
            "o" => Some(Cursor::Older(id)),
            "n" => Some(Cursor::Newer(id)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Older(id) => write!(f, "o{id}"),
            Cursor::Newer(id) => write!(f, "n{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_reads_back_into_the_same_query() {
        let q = LogQuery::from_pairs([
            ("status", "problems"),
            ("to", " +1 415 555 0100 "),
            ("text", ""),
            ("cursor", "o12"),
        ]);
        assert_eq!(q.get("status"), Some("problems"));
        assert_eq!(q.get("to"), Some("+1 415 555 0100"));
        assert_eq!(q.get("text"), None, "an empty value is no filter");
        assert_eq!(
            q.pairs(),
            vec![("status", "problems"), ("to", "+1 415 555 0100")]
        );
        assert_eq!(LogQuery::from_pairs(q.pairs()), q);
    }

    #[test]
    fn cursors_read_back_and_nothing_else_is_one() {
        for c in [Cursor::Older(12), Cursor::Newer(1)] {
            assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        }
        for text in ["", "o", "x12", "o-1", "o0", "n1.5", "ö1"] {
            assert_eq!(Cursor::parse(text), None, "{text}");
        }
    }

    #[test]
    fn with_and_without_change_one_filter() {
        let q = LogQuery::default().with("category", "driver");
        assert_eq!(q.with("status", "failed").pairs().len(), 2);
        assert!(q.without("category").is_empty());
        assert!(q.with("category", "  ").is_empty());
    }
}
