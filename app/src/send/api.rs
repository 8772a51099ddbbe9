//! Sending from the console (dispatchers): the send page's review and send, and its progress.

use std::collections::BTreeMap;

#[cfg(feature = "ssr")]
use domain::access::Permission;
use domain::template::Category;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{require, state};

/// Most recipients in one send from the console (larger lists go through the batch API).
pub const MAX_RECIPIENTS: usize = 5_000;

/// What the dispatcher filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendDraft {
    /// Numbers, one per line, or CSV rows (the first cell that looks like a number is used).
    pub recipients: String,
    /// A template key, or `None` for free text.
    pub template: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub body: String,
    pub category: Option<Category>,
}

/// One recipient that will not be sent to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based line of the pasted list.
    pub line: usize,
    pub input: String,
    /// invalid | opted_out | geo_blocked | duplicate
    pub kind: String,
    pub reason: String,
}

/// What sending would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub valid: usize,
    pub invalid: usize,
    pub opted_out: usize,
    pub geo_blocked: usize,
    pub duplicates: usize,
    pub problems: Vec<Problem>,
    /// The message itself cannot be sent (template values, empty or too long): why.
    pub message_error: Option<String>,
    /// The first recipient's rendered text.
    pub sample_body: Option<String>,
    pub total_segments: u64,
    /// Messages already waiting in the outbox.
    pub backlog: i64,
    /// About how long until the last of these is handed to Twilio, in seconds.
    pub last_send_after_seconds: i64,
    /// What the messages are estimated to cost (segments × the price table), µ$.
    pub cost_micros: i64,
    /// Messages to countries without a price: not in the estimate.
    pub unpriced: usize,
    /// What sending would do to each budget the messages fall under.
    pub budgets: Vec<BudgetLine>,
}

/// One budget before and after a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetLine {
    /// "daily budget", "monthly shipment budget".
    pub name: String,
    pub amount_micros: i64,
    pub spent_micros: i64,
    pub after_micros: i64,
    pub hard_stop: bool,
    /// Messages its hard stop would refuse.
    pub refused: usize,
    /// When its period starts again (µs, UTC).
    pub resets_at: i64,
}

impl Review {
    /// Why the send cannot go as reviewed because of a budget's hard stop.
    pub fn budget_error(&self) -> Option<String> {
        self.budgets.iter().find(|b| b.refused > 0).map(|b| {
            format!(
                "the {}'s hard stop would refuse {} of these messages ({} of {} reserved); send fewer, or ask finance to raise the budget",
                b.name,
                b.refused,
                domain::money::Money::from_micros(b.spent_micros),
                domain::money::Money::from_micros(b.amount_micros),
            )
        })
    }
}

/// What a send did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub sids: Vec<String>,
    pub review: Review,
    /// Some messages were refused by a budget's hard stop reached meanwhile: why.
    pub refused: Option<String>,
}

/// Recipients of a pasted list or CSV file: (1-based line, the cell used). Rows are read by the
/// csv crate, so a quoted cell may hold the delimiter or a doubled quote (`"Müller, Zoë"`). The
/// number is the first cell with at least 5 digits, else the first cell; a first row without
/// any digit is a header ("name,phone") and skipped.
#[cfg(feature = "ssr")]
pub fn recipient_lines(text: &str) -> Vec<(usize, String)> {
    let digits = |c: &str| c.chars().filter(char::is_ascii_digit).count();
    let mut lines = Vec::new();
    let mut first = true;
    // A string with an ASCII delimiter and ragged rows allowed: no read can fail.
    for record in csv_reader(text, delimiter(text)).records().flatten() {
        // A line of spaces; empty lines the reader skips itself.
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if std::mem::take(&mut first) && record.iter().all(|c| digits(c) == 0) {
            continue;
        }
        let cell = record.iter().find(|c| digits(c) >= 5).unwrap_or(&record[0]);
        let line = record.position().map_or(0, |p| first_line(text, p));
        lines.push((line, unquoted(cell).to_owned()));
    }
    lines
}

/// The line a record starts on. The reader's position is where the previous record ended: the
/// line breaks it skipped after that (blank lines, the `\n` of a `\r\n`) come on top.
#[cfg(feature = "ssr")]
fn first_line(text: &str, position: &csv::Position) -> usize {
    let from = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let skipped = text
        .as_bytes()
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|&&b| b == b'\n')
        .count();
    usize::try_from(position.line())
        .unwrap_or(usize::MAX)
        .saturating_add(skipped)
}

#[cfg(feature = "ssr")]
fn csv_reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text.as_bytes())
}

/// A list's delimiter: of comma, semicolon and tab, the one that splits its first non-empty line
/// into the most cells (quoted cells count as one); comma when none splits it.
#[cfg(feature = "ssr")]
fn delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let cells = |d: u8| {
        csv_reader(first, d)
            .records()
            .next()
            .and_then(Result::ok)
            .map_or(0, |r| r.len())
    };
    // `max_by_key` keeps the last of equals: comma wins ties, then semicolon.
    [b'\t', b';', b',']
        .into_iter()
        .max_by_key(|&d| cells(d))
        .unwrap_or(b',')
}

/// CSV opens a quoted cell only at its very start, so in `Ada, "+1 415 555 2671"` the reader keeps
/// the quotes of the second cell; people type lists like that, so a wrapping pair goes.
#[cfg(feature = "ssr")]
fn unquoted(cell: &str) -> &str {
    cell.strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .map_or(cell, str::trim)
}

/// Checks a draft through intake (one pass over every recipient, a fixed number of queries):
/// what sending would do, and the messages ready to write.
#[cfg(feature = "ssr")]
async fn review_draft(
    draft: &SendDraft,
    source: &backend::outbox::Source,
) -> Result<(Review, Vec<backend::intake::Prepared>), AppError> {
    use backend::intake::{Content, RefusalCode, Submission};
    let st = state()?;
    let settings = backend::settings::sending(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?;
    let lines = recipient_lines(&draft.recipients);
    if lines.is_empty() {
        return Err(AppError::invalid("recipients", "add at least one phone number").respond());
    }
    if lines.len() > MAX_RECIPIENTS {
        return Err(AppError::invalid(
            "recipients",
            format!(
                "{} recipients: at most {MAX_RECIPIENTS} per send from the console (use the batch API for more)",
                lines.len()
            ),
        )
        .respond());
    }
    let content = match &draft.template {
        Some(key) if !key.is_empty() => Content::Template {
            key: key.clone(),
            variables: draft.variables.clone(),
        },
        _ => Content::Body(draft.body.clone()),
    };
    let submissions = lines
        .iter()
        .map(|(_, input)| Submission {
            to: input.clone(),
            content: content.clone(),
            category: draft.category,
            sender: None,
            validity_seconds: None,
        })
        .collect();
    let checked = st
        .intake
        .check(&settings, source, submissions)
        .await
        .map_err(|e| AppError::internal("checking recipients", &e))?;
    let mut review = Review {
        valid: 0,
        invalid: 0,
        opted_out: 0,
        geo_blocked: 0,
        duplicates: 0,
        problems: Vec::new(),
        message_error: None,
        sample_body: None,
        total_segments: 0,
        backlog: 0,
        last_send_after_seconds: 0,
        cost_micros: 0,
        unpriced: 0,
        budgets: Vec::new(),
    };
    let mut prepared = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for ((line, input), outcome) in lines.into_iter().zip(checked) {
        let (kind, reason) = match outcome {
            Ok(p) => {
                if !seen.insert(p.to_hash.clone()) {
                    review.duplicates += 1;
                    ("duplicate", format!("{} is already in the list", p.masked))
                } else {
                    review.sample_body.get_or_insert_with(|| p.body.clone());
                    review.valid += 1;
                    review.total_segments += u64::from(p.segments);
                    prepared.push(p);
                    continue;
                }
            }
            Err(r) => match r.code {
                RefusalCode::InvalidNumber | RefusalCode::MissingTo => {
                    review.invalid += 1;
                    ("invalid", r.message)
                }
                RefusalCode::OptedOut => {
                    review.opted_out += 1;
                    ("opted_out", r.message)
                }
                RefusalCode::CountryNotAllowed => {
                    review.geo_blocked += 1;
                    ("geo_blocked", r.message)
                }
                _ => {
                    // The message itself: the same for every recipient.
                    review.message_error = Some(r.message);
                    review.valid = 0;
                    review.total_segments = 0;
                    prepared.clear();
                    break;
                }
            },
        };
        review.problems.push(Problem {
            line,
            input,
            kind: kind.to_owned(),
            reason,
        });
    }
    review.backlog = backend::outbox::backlog(&st.db)
        .await
        .map_err(|e| AppError::internal("counting the outbox", &e))?;
    let segments: Vec<u32> = prepared.iter().map(|p| p.segments).collect();
    let micros = backend::outbox::estimate_last_send(
        &settings,
        &st.default_sender,
        u64::try_from(review.backlog).unwrap_or(0),
        &segments,
    );
    review.last_send_after_seconds = (micros + 999_999) / 1_000_000;
    review.cost_micros = prepared.iter().filter_map(|p| p.estimated_micros).sum();
    review.unpriced = prepared
        .iter()
        .filter(|p| p.estimated_micros.is_none())
        .count();
    let charges: Vec<_> = prepared
        .iter()
        .map(backend::intake::Prepared::charge)
        .collect();
    review.budgets = backend::budgets::preview(&st.db, &charges, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("reading the budgets", &e))?
        .into_iter()
        .map(|e| BudgetLine {
            name: backend::budgets::describe(&e.budget),
            amount_micros: e.budget.amount_micros,
            spent_micros: e.spent_micros,
            after_micros: e.after_micros,
            hard_stop: e.budget.hard_stop,
            refused: e.refused,
            resets_at: e.resets_at,
        })
        .collect();
    Ok((review, prepared))
}

#[cfg(feature = "ssr")]
fn source_of(user: &crate::auth::SessionUser) -> backend::outbox::Source {
    backend::outbox::Source::User(user.email.clone())
}

#[cfg(feature = "ssr")]
const SEND: &str = "send messages";

/// Checks every recipient and the message, without sending.
#[server(endpoint = "review_send", input = server_fn::codec::Json)]
pub async fn review_send(draft: SendDraft) -> Result<Review, AppError> {
    let user = require(Permission::SendMessages, SEND).await?;
    Ok(review_draft(&draft, &source_of(&user)).await?.0)
}

/// Sends to every valid recipient (all written to the outbox in one transaction).
#[server(endpoint = "send_messages", input = server_fn::codec::Json)]
pub async fn send_messages(draft: SendDraft) -> Result<Sent, AppError> {
    let user = require(Permission::SendMessages, SEND).await?;
    let source = source_of(&user);
    let (review, prepared) = review_draft(&draft, &source).await?;
    if let Some(e) = &review.message_error {
        return Err(AppError::invalid("body", e.clone()).respond());
    }
    if prepared.is_empty() {
        return Err(AppError::invalid("recipients", "no valid recipient to send to").respond());
    }
    if let Some(e) = review.budget_error() {
        return Err(AppError::invalid("budget", e).respond());
    }
    let written = state()?
        .intake
        .write(prepared, &source, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("writing the messages", e.as_ref()))?;
    let mut sids = Vec::with_capacity(written.len());
    let mut over_budget = None;
    for w in written {
        match w {
            Ok(m) => sids.push(m.sid),
            // Another send took the budget between the review and this one's transaction.
            Err(r) => over_budget = Some(r.message),
        }
    }
    tracing::info!(
        user_id = user.id,
        count = sids.len(),
        "messages sent from the console"
    );
    Ok(Sent {
        refused: over_budget,
        sids,
        review,
    })
}

/// Where the messages of a send stand.
#[server(endpoint = "send_progress", input = server_fn::codec::Json)]
pub async fn send_progress(sids: Vec<String>) -> Result<ProgressCounts, AppError> {
    require(Permission::SendMessages, SEND).await?;
    let p = backend::outbox::progress(&state()?.db, &sids)
        .await
        .map_err(|e| AppError::internal("reading progress", &e))?;
    Ok(ProgressCounts {
        total: p.total,
        waiting: p.waiting,
        in_flight: p.in_flight,
        delivered: p.delivered,
        failed: p.failed,
    })
}

/// Where a send's messages stand (the backend's counts; the browser build cannot use its type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressCounts {
    pub total: i64,
    /// In smsdesk's outbox (or waiting for a retry).
    pub waiting: i64,
    /// Handed to Twilio, no final status yet.
    pub in_flight: i64,
    pub delivered: i64,
    pub failed: i64,
}

impl ProgressCounts {
    pub fn finished(&self) -> bool {
        self.total > 0 && self.waiting == 0 && self.in_flight == 0
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    fn lines(items: &[(usize, &str)]) -> Vec<(usize, String)> {
        items.iter().map(|&(n, c)| (n, c.to_owned())).collect()
    }

    #[test]
    fn csv_rows_give_the_cell_with_the_number_after_a_header() {
        let text = "name,phone\nAda,+1 415 555 2671\n\n\"Bo\",0412 345 678\n+14155552672";
        assert_eq!(
            recipient_lines(text),
            lines(&[
                (2, "+1 415 555 2671"),
                (4, "0412 345 678"),
                (5, "+14155552672")
            ])
        );
    }

    #[test]
    fn a_list_of_numbers_one_per_line_is_read_as_it_is() {
        let text = "+61 412 345 678\n  0412 345 679  \n\n   \n+14155552671\n";
        assert_eq!(
            recipient_lines(text),
            lines(&[
                (1, "+61 412 345 678"),
                (2, "0412 345 679"),
                (5, "+14155552671")
            ])
        );
    }

    #[test]
    fn quoted_cells_may_hold_the_delimiter_and_doubled_quotes() {
        let text = "name,phone\n\"Müller, Zoë\",+61 412 345 678\n\"Bo \"\"the boss\"\", Ltd\",\"0412 345 679\"";
        assert_eq!(
            recipient_lines(text),
            lines(&[(2, "+61 412 345 678"), (3, "0412 345 679")])
        );
        // Without a number, the first cell is the one reported, unquoted.
        assert_eq!(
            recipient_lines("+61 412 345 678\n\"Bo \"\"the boss\"\", Ltd\",nobody"),
            lines(&[(1, "+61 412 345 678"), (2, "Bo \"the boss\", Ltd")])
        );
    }

    #[test]
    fn line_numbers_count_blank_lines_windows_breaks_and_quoted_breaks() {
        let text = "\r\nphone\r\n\r\n+61 412 345 678\r\n\"Ada\nLovelace\",0412 345 679\n\n\nnobody";
        assert_eq!(
            recipient_lines(text),
            lines(&[(4, "+61 412 345 678"), (5, "0412 345 679"), (9, "nobody")])
        );
    }

    #[test]
    fn the_first_line_decides_the_delimiter() {
        let semicolons = "Name;Phone\n\"Müller; Zoë\";+61 412 345 678\nAda, Bo;0412 345 679";
        assert_eq!(
            recipient_lines(semicolons),
            lines(&[(2, "+61 412 345 678"), (3, "0412 345 679")])
        );
        let tabs = "Name\tPhone\nMüller, Zoë\t+61 412 345 678";
        assert_eq!(recipient_lines(tabs), lines(&[(2, "+61 412 345 678")]));
        // A comma inside quotes does not count for the first line.
        let quoted = "\"Müller, Zoë\";+61 412 345 678";
        assert_eq!(recipient_lines(quoted), lines(&[(1, "+61 412 345 678")]));
    }

    #[test]
    fn a_quote_after_a_space_still_wraps_the_cell() {
        assert_eq!(
            recipient_lines("Ada, \"+1 415 555 2671\"\r\nBo,  \" 0412 345 678 \"\r\n"),
            lines(&[(1, "+1 415 555 2671"), (2, "0412 345 678")])
        );
    }
}
