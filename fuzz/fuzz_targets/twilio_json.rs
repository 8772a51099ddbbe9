//! Twilio's answers as smsdesk's client reads them (`backend::twilio`): any bytes as a Message,
//! as a page of the Messages list, and as an error body with any status. Each is read or
//! refused, never a panic; an answer that cannot be read leaves the send in doubt (looked up,
//! never sent again blindly); an error's text never holds an unmasked phone number.
#![no_main]

use backend::twilio::{TwilioError, decode_error, decode_message, decode_page};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for refused in [decode_message(&text).err(), decode_page(&text).err()]
        .into_iter()
        .flatten()
    {
        assert!(matches!(refused, TwilioError::Decode(_)), "{refused:?}");
        assert!(refused.in_doubt());
    }
    // The status from the first two bytes: every 4xx and 5xx, and some that are neither.
    let status = 400
        + u16::from_le_bytes([
            data.first().copied().unwrap_or(0),
            data.get(1).copied().unwrap_or(0),
        ]) % 200;
    let retry_after = data.get(2).map(|b| u32::from(*b));
    let error = decode_error(status, &text, retry_after);
    let TwilioError::Api { message, .. } = &error else {
        panic!("an HTTP refusal read as {error:?}");
    };
    assert!(!message.is_empty());
    assert_eq!(
        &domain::redact::mask_numbers(message),
        message,
        "a number left unmasked"
    );
    assert_eq!(error.in_doubt(), status >= 500);
    if status == 429 {
        assert!(error.rate_limited());
    }
});
