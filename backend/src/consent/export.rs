//! The consent ledger as CSV for auditors: one number's history or a range of entries, each with
//! its link in the chain so the copy can be checked against `smsdesk consent verify`. Cells that
//! a spreadsheet would run as a formula are neutralised (`export::neutralise`).

use crate::export::neutralise;

use super::Entry;

/// The header row.
pub fn header() -> Vec<u8> {
    b"entry,at_utc,number,action,source,evidence,entry_hash\r\n".to_vec()
}

/// `entries` as CSV rows. `number`: what the number column says (the whole number an auditor
/// looked up); otherwise each entry's masked number.
pub fn rows(entries: &[Entry], number: Option<&str>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for e in entries {
        let at = chrono::DateTime::from_timestamp_micros(e.at)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let record = [
            e.id.to_string(),
            at,
            neutralise(number.unwrap_or(&e.number)).into_owned(),
            e.action.as_str().to_owned(),
            neutralise(&e.source).into_owned(),
            neutralise(&e.evidence).into_owned(),
            e.entry_hash.clone().unwrap_or_default(),
        ];
        // Writing to memory cannot fail.
        let _ = writer.write_record(&record);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Action;

    #[test]
    fn entries_are_quoted_and_formulas_neutralised() {
        let e = Entry {
            id: 7,
            at: 1_751_241_600_000_000,
            action: Action::OptOut,
            source: "console:ann@example.com".to_owned(),
            evidence: "=HYPERLINK(\"x\"), called".to_owned(),
            number: "+1415555****".to_owned(),
            entry_hash: Some("ab12".to_owned()),
        };
        let text = String::from_utf8(rows(std::slice::from_ref(&e), None)).expect("utf-8");
        assert_eq!(
            text,
            "7,2025-06-30T00:00:00.000Z,'+1415555****,opt_out,console:ann@example.com,\"'=HYPERLINK(\"\"x\"\"), called\",ab12\r\n"
        );
        let whole = String::from_utf8(rows(&[e], Some("+14155552671"))).expect("utf-8");
        assert!(whole.contains(",'+14155552671,"));
    }
}
