//! Segment counting speed on the benchmark bodies shared with Twilio's JS calculator
//! (tools/bench/bodies.json): `make bench` prints both and their ratio.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::segments::SegmentedMessage;

fn bodies() -> Vec<(String, String)> {
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(include_str!("../../tools/bench/bodies.json")).expect("bodies JSON");
    json.into_iter()
        .map(|(name, text)| (name, text.as_str().expect("a string").to_owned()))
        .collect()
}

fn segments(c: &mut Criterion) {
    let mut group = c.benchmark_group("segments");
    for (name, text) in bodies() {
        group.bench_function(&name, |b| {
            b.iter(|| SegmentedMessage::analyze(black_box(&text), false).expect("valid body"))
        });
    }
    group.finish();
}

criterion_group!(benches, segments);
criterion_main!(benches);
