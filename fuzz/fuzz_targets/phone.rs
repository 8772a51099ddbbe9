//! Phone number parsing on any input, international and national: it answers and never panics,
//! and a number it accepts is E.164 (`+`, at most 15 digits) with a masked form that hides it.
//!
//! Not asserted: that an accepted number's E.164 parses back to itself. libphonenumber's reading
//! is not a fixed point where a trunk prefix follows the country code: `+375 0 8108473666` reads
//! as `+3758108473666`, which itself reads with its `8` stripped and is refused (found by this
//! target; smsdesk reads as libphonenumber does, see `domain::phone`).
#![no_main]

use domain::phone::PhoneNumber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for region in [None, Some("US"), Some("AU"), Some("GB")] {
        if let Ok(n) = PhoneNumber::parse(input, region) {
            let digits = n.e164().strip_prefix('+').expect("E.164 starts with +");
            assert!(!digits.is_empty() && digits.len() <= 15, "{}", n.e164());
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{}", n.e164());
            assert!(!n.masked().contains(digits), "{}", n.masked());
            let _ = PhoneNumber::parse(n.e164(), None);
        }
    }
});
