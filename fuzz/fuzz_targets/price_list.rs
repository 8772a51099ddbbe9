//! A price list as finance pastes it (`backend::settings::apply_price_list`) as any bytes:
//! Twilio's Pricing API answer (one or an array) or CSV (`country,sender_kind,price_per_segment`),
//! applied or refused with the line named, never a panic; what it accepts has no negative
//! price.
#![no_main]

use backend::settings::apply_price_list;
use domain::pricing::starting_prices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match apply_price_list(&starting_prices(), &text) {
        Ok(rows) => {
            assert!(!rows.is_empty());
            for row in &rows {
                assert!(row.per_segment.micros() >= 0, "{row:?}");
            }
        }
        Err(refused) => assert!(!refused.to_string().is_empty()),
    }
});
