//! A price list's CSV (`country,sender_kind,price_per_segment`) as any bytes: each record read
//! or refused with its line named, never a panic.
#![no_main]

use domain::pricing::from_csv_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(data);
    for (i, record) in reader.records().enumerate() {
        let Ok(record) = record else {
            continue;
        };
        let fields: Vec<&str> = record.iter().collect();
        if let Err(e) = from_csv_record(i + 2, &fields) {
            assert!(!e.to_string().is_empty());
        }
    }
});
