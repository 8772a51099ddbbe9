//! The segment counter on any text, with and without smart encoding: it answers (a count or a
//! reason) and never panics; smart encoding is stable (encoding its own output changes nothing).
#![no_main]

use domain::segments::{SegmentedMessage, smart_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for smart in [false, true] {
        if let Ok(m) = SegmentedMessage::analyze(&text, smart) {
            assert!(m.segment_count() >= 1);
        }
    }
    let once = smart_encode(&text);
    assert_eq!(smart_encode(&once), once);
});
