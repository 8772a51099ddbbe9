//! How long parsing a phone number takes: every message's recipient is parsed at intake, and
//! every incoming message's sender at the webhook. A US number in E.164 (the common case), one
//! typed with spaces and a national prefix in its region (UK), and one refused.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::phone::PhoneNumber;

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("phone");
    group.bench_function("parse_us_e164", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+14155552671"), None))
    });
    group.bench_function("parse_gb_national", |b| {
        b.iter(|| PhoneNumber::parse(black_box("07400 123456"), Some("GB")))
    });
    group.bench_function("parse_refused", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+1415555"), None))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
