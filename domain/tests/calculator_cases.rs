//! Twilio's own calculator test cases (TwilioDevEd/message-segment-calculator tests/index.test.js),
//! copied from shared/testdata so the repository checks them on its own.

use domain::segments::SegmentedMessage;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    encoding: String,
    segments: usize,
    source: String,
}

#[test]
fn all_public_calculator_cases_pass() {
    let cases: Vec<Case> = serde_json::from_str(include_str!("data/twilio-calculator-cases.json"))
        .expect("valid JSON");
    assert_eq!(cases.len(), 50);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let m = SegmentedMessage::analyze(&case.text, false).expect("cases are under 1,600");
            let got = (m.encoding().as_str(), m.segment_count());
            (got != (case.encoding.as_str(), case.segments)).then(|| {
                format!(
                    "{}: expected {} {} segments, got {} {}",
                    case.source, case.encoding, case.segments, got.0, got.1
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
