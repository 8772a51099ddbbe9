//! A consent import file (`backend::consent::import::read`) as any bytes: every row checked or
//! the file refused with its bad lines named, never a panic. What it accepts is what the
//! ledger may hold: an E.164 number, a time not in the future, evidence that is not empty and
//! holds no unmasked phone number.
#![no_main]

use backend::consent::import::{MAX_ROWS, Refused, read};
use libfuzzer_sys::fuzz_target;

/// 2026-06-30T00:00:00Z, in microseconds.
const NOW: i64 = 1_782_777_600_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match read(&text, "US", NOW) {
        Ok(rows) => {
            assert!(!rows.is_empty() && rows.len() <= MAX_ROWS);
            for row in rows {
                assert!(row.line >= 2);
                assert!(row.e164.starts_with('+'), "{:?}", row.e164);
                assert!(row.at <= NOW);
                assert!(!row.evidence.is_empty());
                assert_eq!(domain::redact::mask_numbers(&row.evidence), row.evidence);
            }
        }
        Err(Refused::BadRows(lines)) => {
            assert!(!lines.is_empty() && lines.len() <= 20);
            assert!(
                lines
                    .iter()
                    .all(|(line, why)| *line >= 2 && !why.is_empty())
            );
        }
        Err(refused) => assert!(!refused.to_string().is_empty()),
    }
});
