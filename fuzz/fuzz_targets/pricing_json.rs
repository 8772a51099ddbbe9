//! Twilio's Pricing API answer (`/v1/Messaging/Countries/{IsoCountry}`) as any bytes, and any
//! text as a dollar amount or a Twilio price string: read or refused with a reason, never a
//! panic.
#![no_main]

use domain::money::Money;
use domain::pricing::{CountryPricing, from_twilio_pricing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = serde_json::from_slice::<CountryPricing>(data) {
        let _ = from_twilio_pricing(&answer);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Money::parse(&text) {
        let _ = (m.to_decimal(), m.to_twilio_price(), m.for_segments(10));
    }
    let _ = Money::from_twilio_price(&text);
});
