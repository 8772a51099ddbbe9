//! Differential test against Twilio's own calculator (npm `sms-segments-calculator` 1.3.0, installed
//! by `make test` into tools/segment-calculator). A seeded generator aims at the hard places:
//! extension characters and graphemes at segment boundaries, emoji sequences, combining marks,
//! look-alikes, lengths up to 1,600. Each body is checked with smart encoding off and on.
//!
//! Where smsdesk's graphemes (Unicode 17) equal the calculator's (grapheme-splitter 1.0.4), every
//! field must be identical. Where they differ (the calculator's known flaw, see `domain::segments`),
//! smsdesk's segment layout fed with the calculator's graphemes must reproduce the calculator
//! exactly, which shows the grapheme rules are the only difference.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use domain::segments::{Layout, SegmentedMessage, graphemes, gsm7_septets, smart_replacement};
use serde::Deserialize;

const BODIES: usize = 6_000;
const SEED: u64 = 0x5AFE_5412_2026;

/// splitmix64: tiny, seedable, identical on every machine and every version of every crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const GSM_BASIC: &[&str] = &[
    "a", "b", "z", "A", "Z", "0", "9", " ", ".", ",", "!", "?", "@", "£", "$", "¥", "è", "é", "ù",
    "ì", "ò", "Ç", "\n", "\r", "Ø", "ø", "Å", "å", "Δ", "_", "Φ", "Γ", "Λ", "Ω", "Π", "Ψ", "Σ",
    "Θ", "Ξ", "Æ", "æ", "ß", "É", "¤", "¡", "Ä", "Ö", "Ñ", "Ü", "§", "¿", "ä", "ö", "ñ", "ü", "à",
    "\r\n",
];
const GSM_EXTENSION: &[&str] = &["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\u{c}"];
const NON_GSM_BMP: &[&str] = &[
    "ç", "á", "í", "ó", "ú", "Á", "`", "ā", "ł", "ő", "Ж", "д", "ب", "中", "文", "한", "\u{fffd}",
];
const LOOK_ALIKES: &[&str] = &[
    "“", "”", "‘", "’", "–", "—", "…", "\u{a0}", "\u{2009}", "\u{200b}", "\u{2060}", "\t", "«",
    "»", "＂", "１", "Ａ", "ｚ", "\u{302}", "\u{303}", "\u{332}", "\u{3000}", "¼", "½", "÷", "‹",
    "›", "‼", "\u{2028}", "\u{2029}", "\u{feff}", "\u{ff5e}", "\u{ff3c}",
];
const EMOJI: &[&str] = &[
    "😜",
    "🚚",
    "⚠\u{fe0f}",
    "☢",
    "🔥",
    "👍🏽",
    "👩🏿",
    "🇮🇹",
    "🇺🇸",
    "🇦🇺",
    "🏳\u{fe0f}\u{200d}🌈",
    "👨\u{200d}👩\u{200d}👧\u{200d}👦",
    "🧑\u{200d}🚒",
    "1\u{fe0f}\u{20e3}",
    "#\u{fe0f}\u{20e3}",
    "❤\u{fe0f}",
    "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
];
const COMBINING: &[&str] = &[
    "e\u{301}",
    "a\u{308}",
    "o\u{302}\u{323}",
    "n\u{303}",
    "\u{301}",
    "A\u{30a}",
    "z\u{335}\u{336}\u{337}",
    "ก\u{e49}",
    "각",
    "\u{1100}\u{1161}\u{11a8}",
];
/// Sequences the calculator's old grapheme rules split differently from Unicode 17.
const FLAW_PRONE: &[&str] = &[
    "क्ष",
    "न्त्र",
    "❤\u{fe0f}\u{200d}🔥",
    "a🏽",
    "🙂\u{200d}↔\u{fe0f}",
    "\u{a8fb}",
];

/// One body, built towards a target length in code points with tokens drawn from a flavour.
fn body(rng: &mut Rng) -> String {
    // Lengths near every boundary of both encodings, and anywhere up to the limit.
    const BOUNDARIES: &[usize] = &[
        70, 67, 134, 201, 268, 335, 160, 153, 306, 459, 612, 765, 918, 1071, 1224, 1377, 1530,
    ];
    let target = match rng.below(3) {
        0 => rng.below(1_600) + 1,
        _ => {
            let b = BOUNDARIES[rng.below(BOUNDARIES.len())];
            (b + rng.below(9)).saturating_sub(4).max(1)
        }
    };
    let flavour = rng.below(6);
    let mut text = String::new();
    let mut scalars = 0;
    // Sometimes put one hard token exactly around a boundary, after a plain filler.
    if rng.below(2) == 0 {
        let filler = if rng.below(2) == 0 { "a" } else { "ç" };
        let n = target.saturating_sub(rng.below(4) + 1);
        text.push_str(&filler.repeat(n));
        scalars += n;
    }
    while scalars < target {
        let roll = rng.below(100);
        let token = match flavour {
            // GSM-7 with extension characters.
            0 => {
                if roll < 80 {
                    rng.pick(GSM_BASIC)
                } else {
                    rng.pick(GSM_EXTENSION)
                }
            }
            // GSM-7 with a rare character that tips it into UCS-2.
            1 => match roll {
                0 => rng.pick(NON_GSM_BMP),
                1 => rng.pick(EMOJI),
                2..=12 => rng.pick(GSM_EXTENSION),
                _ => rng.pick(GSM_BASIC),
            },
            // Look-alikes: what smart encoding is for.
            2 => match roll {
                0..=29 => rng.pick(LOOK_ALIKES),
                30..=34 => rng.pick(GSM_EXTENSION),
                _ => rng.pick(GSM_BASIC),
            },
            // Emoji-heavy.
            3 => match roll {
                0..=39 => rng.pick(EMOJI),
                40..=44 => rng.pick(FLAW_PRONE),
                _ => rng.pick(GSM_BASIC),
            },
            // Combining marks and scripts.
            4 => match roll {
                0..=29 => rng.pick(COMBINING),
                30..=49 => rng.pick(NON_GSM_BMP),
                50..=52 => rng.pick(FLAW_PRONE),
                _ => rng.pick(GSM_BASIC),
            },
            // Everything.
            _ => match roll {
                0..=9 => rng.pick(EMOJI),
                10..=19 => rng.pick(COMBINING),
                20..=29 => rng.pick(LOOK_ALIKES),
                30..=39 => rng.pick(GSM_EXTENSION),
                40..=44 => rng.pick(NON_GSM_BMP),
                45 => rng.pick(FLAW_PRONE),
                _ => rng.pick(GSM_BASIC),
            },
        };
        let n = token.chars().count();
        if scalars + n > 1_600 {
            break;
        }
        text.push_str(token);
        scalars += n;
    }
    text
}

#[derive(Deserialize)]
struct Oracle {
    encoding: String,
    segments: usize,
    characters: usize,
    unicode_scalars: usize,
    non_gsm: Vec<String>,
    graphemes: Vec<String>,
    segment_graphemes: Vec<usize>,
}

fn tool_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/segment-calculator")
}

/// Runs the calculator over JSON lines and returns one answer per input.
fn run_calculator(script: &str, input: &str) -> String {
    let dir = tool_dir();
    assert!(
        dir.join("node_modules/sms-segments-calculator").is_dir(),
        "Twilio's calculator is not installed: run `npm ci --prefix tools/segment-calculator` (make test does)"
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node must be on PATH to run Twilio's calculator");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("calculator ran");
    writer.join().expect("writer thread").expect("wrote input");
    assert!(output.status.success(), "calculator failed");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn smsdesk_agrees_with_twilios_calculator_on_generated_bodies() {
    let mut rng = Rng(SEED);
    let mut cases = Vec::with_capacity(BODIES * 2);
    for _ in 0..BODIES {
        let text = body(&mut rng);
        cases.push((text.clone(), false));
        cases.push((text, true));
    }
    let input: String = cases
        .iter()
        .map(|(text, smart)| serde_json::json!({"text": text, "smart": smart}).to_string() + "\n")
        .collect();
    let answers: Vec<Oracle> = run_calculator("calc.js", &input)
        .lines()
        .map(|l| serde_json::from_str(l).expect("calculator JSON"))
        .collect();
    assert_eq!(answers.len(), cases.len());

    let mut disagreements = Vec::new();
    let mut grapheme_rule_differences = 0;
    let mut segment_count_differences = 0;
    let mut ucs2 = 0;
    let mut multi_segment = 0;
    for ((text, smart), js) in cases.iter().zip(&answers) {
        let ours =
            SegmentedMessage::analyze(text, *smart).expect("generated bodies are at most 1,600");
        ucs2 += usize::from(js.encoding == "UCS-2");
        multi_segment += usize::from(js.segments > 1);
        let our_graphemes: Vec<&str> = graphemes(ours.text()).collect();
        if our_graphemes == js.graphemes {
            let got = (
                ours.encoding().as_str().to_owned(),
                ours.segment_count(),
                ours.characters(),
                ours.unicode_scalars(),
                ours.non_gsm()
                    .iter()
                    .map(|c| c.grapheme.clone())
                    .collect::<Vec<_>>(),
                ours.segments()
                    .iter()
                    .map(|s| s.end_grapheme - s.first_grapheme)
                    .collect::<Vec<_>>(),
            );
            let want = (
                js.encoding.clone(),
                js.segments,
                js.characters,
                js.unicode_scalars,
                js.non_gsm.clone(),
                js.segment_graphemes.clone(),
            );
            if got != want {
                disagreements.push(format!(
                    "smart={smart} {text:?}\n  ours {got:?}\n  js   {want:?}"
                ));
            }
        } else {
            // The calculator's pre-Unicode-11 grapheme rules: our layout over its graphemes must be its answer.
            grapheme_rule_differences += 1;
            segment_count_differences += usize::from(ours.segment_count() != js.segments);
            let theirs: Vec<&str> = js.graphemes.iter().map(String::as_str).collect();
            let layout = Layout::of_graphemes(&theirs);
            let got = (
                layout.encoding.as_str().to_owned(),
                layout.segments.len(),
                layout.characters,
                layout
                    .segments
                    .iter()
                    .map(|s| s.end_grapheme - s.first_grapheme)
                    .collect::<Vec<_>>(),
            );
            let want = (
                js.encoding.clone(),
                js.segments,
                js.characters,
                js.segment_graphemes.clone(),
            );
            if got != want {
                disagreements.push(format!(
                    "(calculator graphemes) smart={smart} {text:?}\n  ours {got:?}\n  js   {want:?}"
                ));
            }
        }
    }
    eprintln!(
        "{} comparisons ({} UCS-2, {} multi-segment): {} disagreements; {} where the grapheme rules differ, {} of them with another segment count",
        cases.len(),
        ucs2,
        multi_segment,
        disagreements.len(),
        grapheme_rule_differences,
        segment_count_differences
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements with Twilio's calculator, first ones:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generator must reach the hard places, or this test proves little.
    assert!(ucs2 > BODIES / 2 && multi_segment > BODIES);
    assert!(
        grapheme_rule_differences > 0,
        "the generator should reach the known grapheme differences"
    );
}

#[derive(Deserialize)]
struct Tables {
    gsm: Vec<(u32, Vec<u8>)>,
    smart: Vec<(u32, usize, String)>,
}

#[test]
fn character_tables_are_the_calculators() {
    let tables: Tables =
        serde_json::from_str(&run_calculator("tables.js", "")).expect("tables JSON");
    let gsm: std::collections::HashMap<u32, Vec<u8>> = tables.gsm.into_iter().collect();
    let smart: std::collections::HashMap<u32, String> =
        tables.smart.into_iter().map(|(c, _, s)| (c, s)).collect();
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        assert_eq!(
            gsm7_septets(c).map(<[u8]>::to_vec),
            gsm.get(&(c as u32)).cloned(),
            "GSM-7 table at {c:?}"
        );
        assert_eq!(
            smart_replacement(c).map(str::to_owned),
            smart.get(&(c as u32)).cloned(),
            "smart map at {c:?}"
        );
    }
}
