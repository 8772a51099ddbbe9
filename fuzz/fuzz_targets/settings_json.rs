//! Sending settings as an import file (JSON, `domain::sending::SendingSettings`) as any bytes:
//! read and validated (`backend::settings::validate`) or refused with a reason, never a panic;
//! settings that pass survive being exported and imported again unchanged.
#![no_main]

use backend::settings::{SendingSettings, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(settings) = serde_json::from_slice::<SendingSettings>(data) else {
        return;
    };
    match validate(&settings) {
        Ok(()) => {
            let exported = serde_json::to_string(&settings).expect("settings serialize");
            let again: SendingSettings =
                serde_json::from_str(&exported).expect("an export reads back");
            assert_eq!(again, settings);
            assert!(validate(&again).is_ok());
        }
        Err(refused) => assert!(!refused.to_string().is_empty()),
    }
});
