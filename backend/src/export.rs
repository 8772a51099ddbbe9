//! The delivery log as CSV: the filtered messages, newest first, read [`BATCH`] at a time
//! (keyset paging) and written as they are read, so a million rows never sit in memory. A cell
//! a spreadsheet would take for a formula (beginning with `=`, `+`, `-`, `@`, a tab or a carriage
//! return) is written with a `'` in front: spreadsheets then show it as text (and hide the `'`).
//! The exports running on an instance report their progress in [`Exports`], so the page that
//! started one can show it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::outbox::MessageView;

/// Messages read per query, and written per chunk of the response.
pub const BATCH: u32 = 1_000;

/// The columns, in order.
pub const COLUMNS: [&str; 17] = [
    "sid",
    "created_at",
    "to",
    "status",
    "error_code",
    "error_message",
    "category",
    "template",
    "priority",
    "source",
    "sender",
    "segments",
    "encoding",
    "price_usd",
    "sent_at",
    "twilio_sid",
    "body",
];

/// `cell`, with a `'` in front when a spreadsheet would read it as a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A CSV writer into memory (CRLF line ends, as RFC 4180 and spreadsheets have them).
fn writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

/// One record, each cell neutralised.
fn write_record<'a>(w: &mut csv::Writer<&mut Vec<u8>>, cells: impl IntoIterator<Item = &'a str>) {
    for cell in cells {
        w.write_field(neutralise(cell).as_bytes())
            .expect("writing to memory cannot fail");
    }
    w.write_record(None::<&[u8]>)
        .expect("writing to memory cannot fail");
}

/// The header line.
pub fn header() -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = writer(&mut out);
    write_record(&mut w, COLUMNS);
    w.flush().expect("writing to memory cannot fail");
    drop(w);
    out
}

/// These messages as CSV lines. `whole_numbers`: the recipient in full (roles that send), else
/// masked. Two-factor messages have no body.
pub fn rows(messages: &[MessageView], whole_numbers: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.len() * 200);
    let mut w = writer(&mut out);
    for m in messages {
        let text = |v: Option<String>| v.unwrap_or_default();
        let price = m.price_micros.map(|p| {
            domain::money::Money::from_micros(p)
                .to_string()
                .trim_start_matches('$')
                .to_owned()
        });
        let cells: [String; 17] = [
            m.sid.clone(),
            rfc3339(m.created_at),
            if whole_numbers {
                m.to.clone()
            } else {
                m.to_masked.clone()
            },
            m.status.as_str().to_owned(),
            text(m.error_code.map(|c| c.to_string())),
            text(m.error_message.clone()),
            m.category.map_or("", |c| c.as_str()).to_owned(),
            text(m.template_key.clone()),
            m.priority.as_str().to_owned(),
            m.source.to_string(),
            text(m.sender.clone()),
            m.segments.to_string(),
            m.encoding.clone(),
            text(price),
            text(m.dispatched_at.map(rfc3339)),
            text(m.provider_sid.clone()),
            text(m.body.clone()),
        ];
        write_record(&mut w, cells.iter().map(String::as_str));
    }
    w.flush().expect("writing to memory cannot fail");
    drop(w);
    out
}

/// How far an export has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Rows written so far.
    pub rows: u64,
    pub done: bool,
    /// It stopped on an error (the download is cut short; the server log says why).
    pub failed: bool,
}

/// The exports running (or just finished) on this instance, by the token the page chose.
#[derive(Debug, Clone, Default)]
pub struct Exports(Arc<Mutex<HashMap<String, Progress>>>);

/// Most exports remembered; finished ones are forgotten first.
const REMEMBERED: usize = 256;

impl Exports {
    /// Whether `token` is one a page may choose: 16 to 64 letters or digits.
    pub fn valid_token(token: &str) -> bool {
        (16..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    pub fn set(&self, token: &str, progress: Progress) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REMEMBERED && !map.contains_key(token) {
            map.retain(|_, p| !(p.done || p.failed));
            if map.len() >= REMEMBERED {
                map.clear();
            }
        }
        map.insert(token.to_owned(), progress);
    }

    pub fn get(&self, token: &str) -> Option<Progress> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_nothing_else_changes() {
        for cell in ["=SUM(A1:A2)", "+1+1", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "Pickup at 6", "a=b", "'quoted", "€5"] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[test]
    fn cells_with_commas_quotes_and_lines_stay_one_cell() {
        let mut out = Vec::new();
        let mut w = writer(&mut out);
        write_record(&mut w, ["a, b", "say \"hi\"", "two\nlines", "=1+1"]);
        w.flush().expect("flushed");
        drop(w);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        let record = reader.records().next().expect("a record").expect("valid");
        assert_eq!(
            record.iter().collect::<Vec<_>>(),
            ["a, b", "say \"hi\"", "two\nlines", "'=1+1"]
        );
    }

    #[test]
    fn tokens_are_checked_and_finished_exports_are_forgotten_first() {
        assert!(Exports::valid_token("abcdef0123456789"));
        assert!(!Exports::valid_token("short"));
        assert!(!Exports::valid_token("abcdef0123456789/../"));
        let exports = Exports::default();
        exports.set(
            "running",
            Progress {
                rows: 5,
                ..Progress::default()
            },
        );
        for i in 0..REMEMBERED {
            exports.set(
                &format!("done{i}"),
                Progress {
                    done: true,
                    ..Progress::default()
                },
            );
        }
        assert_eq!(exports.get("running").map(|p| p.rows), Some(5));
    }
}
