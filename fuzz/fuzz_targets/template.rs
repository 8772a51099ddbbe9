//! Template bodies on any text: parsing answers and never panics; an accepted body parses again
//! from its source to the same parts; any text escaped as a literal parses to that text alone.
#![no_main]

use domain::template::{Part, TemplateBody, escape_literal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(body) = TemplateBody::parse(&text) {
        let again = TemplateBody::parse(body.source()).expect("its own source parses");
        assert_eq!(again.parts(), body.parts());
    }
    let literal = TemplateBody::parse(&escape_literal(&text)).expect("an escaped literal parses");
    let joined: String = literal
        .parts()
        .iter()
        .map(|p| match p {
            Part::Text { text } => text.as_str(),
            Part::Variable { .. } => panic!("an escaped literal has no variable"),
        })
        .collect();
    assert_eq!(joined, text);
});
