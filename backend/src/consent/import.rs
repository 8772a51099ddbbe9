//! Earlier consent records brought into the ledger from CSV (a spreadsheet kept before smsdesk),
//! each with its evidence, audited as one import.
//!
//! The file has a header naming the columns `number`, `action`, `at` and `evidence` (any order,
//! any case; other columns are ignored). `action` is `opt_out` or `opt_in` (also `opt-out`,
//! `STOP`, `opt-in`, `START`); `at` is an RFC 3339 time or a UTC day (`2025-06-30`), not in the
//! future; `evidence` says what shows it and may not be empty. Every row is checked before
//! anything is written: one bad row imports nothing, and the answer names each bad line.
//!
//! A number's state is its latest entry, so a record may not reorder a number's history: a row
//! no later than an entry the ledger already holds for that number is skipped (and named), which
//! also makes importing the same file twice add nothing. The rest are appended in time order,
//! chained like every entry, with the source `import:<who imported>`.

use std::collections::HashMap;

use crate::audit::{self, Actor};
use crate::crypto::DataKey;
use crate::db::{Db, DbError};
use crate::on_tx;

use super::{Action, record};

/// Most rows one import takes.
pub const MAX_ROWS: usize = 5_000;
/// Most problems an answer lists.
const MAX_PROBLEMS: usize = 20;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub imported: usize,
    /// Lines (1 is the header) skipped because the ledger already holds a later entry for the
    /// number, with why.
    pub skipped: Vec<(usize, String)>,
}

/// Why nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the file has no {0:?} column: the header must name number, action, at and evidence")]
    MissingColumn(&'static str),
    #[error("the file has no records")]
    Empty,
    #[error("the file has more than {MAX_ROWS} records: split it")]
    TooMany,
    /// Each bad line with what is wrong (the first 20).
    #[error("nothing was imported: {}", .0.iter().map(|(line, why)| format!("line {line}: {why}")).collect::<Vec<_>>().join("; "))]
    BadRows(Vec<(usize, String)>),
}

/// One checked record of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its line in the file (1 is the header).
    pub line: usize,
    pub e164: String,
    pub action: Action,
    /// Microseconds since the epoch, UTC.
    pub at: i64,
    /// As given, with any phone number in it masked.
    pub evidence: String,
}

fn action(text: &str) -> Option<Action> {
    match text.trim().to_ascii_lowercase().as_str() {
        "opt_out" | "opt-out" | "optout" | "stop" => Some(Action::OptOut),
        "opt_in" | "opt-in" | "optin" | "start" => Some(Action::OptIn),
        _ => None,
    }
}

fn time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Reads and checks every row of `csv_text` (numbers without a country code are read in
/// `default_region`, times must not be after `now`): the rows, or why nothing can be imported.
/// Touches no storage.
pub fn read(csv_text: &str, default_region: &str, now: i64) -> Result<Vec<Row>, Refused> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|_| Refused::MissingColumn("number"))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let column = |name: &'static str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(Refused::MissingColumn(name))
    };
    let (number, act, at, evidence) = (
        column("number")?,
        column("action")?,
        column("at")?,
        column("evidence")?,
    );
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        if rows.len() + problems.len() >= MAX_ROWS {
            return Err(Refused::TooMany);
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push((line, format!("not readable as CSV ({e})")));
                continue;
            }
        };
        let cell = |i: usize| record.get(i).unwrap_or("");
        let checked = (|| {
            let e164 = domain::phone::PhoneNumber::parse(cell(number), Some(default_region))
                .map_err(|e| format!("the number is not a phone number ({e})"))?
                .e164()
                .to_owned();
            let action = action(cell(act))
                .ok_or_else(|| format!("action {:?} is not opt_out or opt_in", cell(act)))?;
            let at = time(cell(at)).ok_or_else(|| {
                format!(
                    "at {:?} is not a time such as 2025-06-30T14:05:00Z or a day such as 2025-06-30",
                    cell(at)
                )
            })?;
            if at > now {
                return Err("at is in the future".to_owned());
            }
            let evidence = cell(evidence);
            if evidence.is_empty() {
                return Err("the evidence is empty: say what shows it".to_owned());
            }
            Ok(Row {
                line,
                e164,
                action,
                at,
                evidence: domain::redact::mask_numbers(evidence),
            })
        })();
        match checked {
            Ok(row) => rows.push(row),
            Err(why) => problems.push((line, why)),
        }
    }
    if !problems.is_empty() {
        problems.truncate(MAX_PROBLEMS);
        return Err(Refused::BadRows(problems));
    }
    if rows.is_empty() {
        return Err(Refused::Empty);
    }
    Ok(rows)
}

/// Imports `csv_text` (see the module's documentation) for `actor`, in one transaction with its
/// audit entry: every row is checked first, rows the ledger already holds later entries for are
/// skipped, the rest appended in time order.
pub async fn import(
    db: &Db,
    key: &DataKey,
    csv_text: &str,
    default_region: &str,
    actor: &Actor,
    now: i64,
) -> Result<Result<Report, Refused>, DbError> {
    let mut rows = match read(csv_text, default_region, now) {
        Ok(rows) => rows,
        Err(refused) => return Ok(Err(refused)),
    };
    rows.sort_by_key(|r| (r.at, r.line));
    let source = format!("import:{}", actor.label);
    let mut tx = db.begin().await?;
    // Before reading what the ledger holds: a STOP arriving meanwhile waits, and is then later
    // than every imported record.
    super::lock_ledger(&mut tx).await?;
    let mut latest: HashMap<String, Option<i64>> = HashMap::new();
    let mut report = Report::default();
    for row in &rows {
        let hash = key.lookup_hash(&row.e164);
        let newest = match latest.get(&hash) {
            Some(at) => *at,
            None => {
                let at: Option<i64> = on_tx!(&mut tx, |conn| sqlx::query_scalar(
                    "SELECT MAX(at) FROM consent_events WHERE phone_hash = $1"
                )
                .bind(&hash)
                .fetch_one(conn)
                .await?);
                latest.insert(hash.clone(), at);
                at
            }
        };
        if let Some(newest) = newest
            && newest >= row.at
        {
            let day = chrono::DateTime::from_timestamp_micros(newest)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            report.skipped.push((
                row.line,
                format!("the ledger already holds an entry for this number at {day} or later: kept as it is"),
            ));
            continue;
        }
        record(
            &mut tx,
            key,
            &row.e164,
            row.action,
            &source,
            &row.evidence,
            row.at,
        )
        .await?;
        latest.insert(hash, Some(row.at));
        report.imported += 1;
    }
    audit::record(
        &mut tx,
        actor,
        "consent.import",
        "consent ledger",
        None,
        Some(serde_json::json!({
            "imported": report.imported,
            "skipped": report.skipped.len(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_547_200_000_000; // 2025-12-01T00:00:00Z

    #[test]
    fn rows_are_read_by_their_header_in_any_order_and_case() {
        let csv = "Evidence,AT,number,Action,ignored\n\
                   Signed form 12,2025-06-30,+1 415 555 2671,STOP,x\n\
                   \"Called, ticket 9\",2025-07-01T10:00:00+02:00,(415) 555-2672,opt-in,\n";
        let rows = read(csv, "US", NOW).expect("read");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].e164, "+14155552671");
        assert_eq!(rows[0].action, Action::OptOut);
        assert_eq!(rows[0].at, 1_751_241_600_000_000);
        assert_eq!(rows[1].e164, "+14155552672");
        assert_eq!(rows[1].action, Action::OptIn);
        assert_eq!(rows[1].at, 1_751_356_800_000_000);
        assert_eq!(rows[1].evidence, "Called, ticket 9");
        assert_eq!(rows[1].line, 3);
    }

    #[test]
    fn one_bad_row_imports_nothing_and_each_bad_line_is_named() {
        let csv = "number,action,at,evidence\n\
                   +14155552671,opt_out,2025-06-30,form\n\
                   not a number,opt_out,2025-06-30,form\n\
                   +14155552672,maybe,2025-06-30,form\n\
                   +14155552673,opt_in,30/06/2025,form\n\
                   +14155552674,opt_in,2030-01-01,form\n\
                   +14155552675,opt_in,2025-06-30,\n";
        let Err(Refused::BadRows(problems)) = read(csv, "US", NOW) else {
            panic!("refused");
        };
        let lines: Vec<usize> = problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert!(problems[0].1.contains("not a phone number"));
        assert!(problems[1].1.contains("\"maybe\""));
        assert!(problems[2].1.contains("30/06/2025"));
        assert!(problems[3].1.contains("future"));
        assert!(problems[4].1.contains("evidence"));
    }

    #[test]
    fn a_file_without_the_columns_or_records_is_refused() {
        assert_eq!(
            read("number,action,evidence\n", "US", NOW).err(),
            Some(Refused::MissingColumn("at"))
        );
        assert_eq!(
            read("number,action,at,evidence\n", "US", NOW).err(),
            Some(Refused::Empty)
        );
        assert_eq!(
            read("", "US", NOW).err(),
            Some(Refused::MissingColumn("number"))
        );
    }

    #[test]
    fn numbers_in_the_evidence_are_masked() {
        let csv = "number,action,at,evidence\n+14155552671,opt_out,2025-06-30,Called from +1 415 555 2671\n";
        let rows = read(csv, "US", NOW).expect("read");
        assert!(
            !rows[0].evidence.contains("5552671"),
            "{}",
            rows[0].evidence
        );
    }
}
