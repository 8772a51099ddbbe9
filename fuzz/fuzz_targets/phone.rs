//! Phone number parsing on any input, international and national: it answers and never panics,
//! and a number it accepts reads back as itself from its E.164 form.
#![no_main]

use domain::phone::PhoneNumber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for region in [None, Some("US"), Some("AU"), Some("GB")] {
        if let Ok(n) = PhoneNumber::parse(input, region) {
            let again =
                PhoneNumber::parse(n.e164(), None).expect("an accepted number's E.164 parses");
            assert_eq!(again.e164(), n.e164());
            let _ = n.masked();
        }
    }
});
