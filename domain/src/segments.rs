//! Encoding and segments: how Twilio splits (and bills) a message body.
//!
//! The rules are those of Twilio's own calculator, the npm package `sms-segments-calculator` 1.3.0
//! (TwilioDevEd/message-segment-calculator), reproduced step by step:
//! - the body (after smart encoding, when asked) is split into grapheme clusters, with `"\r\n"`
//!   counted as two;
//! - the message is GSM-7 when every grapheme is a single UTF-16 unit of the GSM 03.38 table,
//!   otherwise UCS-2 for the whole message;
//! - each grapheme takes 7 bits per septet in GSM-7 (extension characters take two septets), or
//!   16 bits per UTF-16 code unit in UCS-2;
//! - a segment holds 1,120 bits; once a second segment is needed every segment carries a 48-bit
//!   user data header, and a grapheme that does not fit in the current segment moves whole to the
//!   next one (so 160/153 septets, 70/67 code units, less when a boundary falls inside a grapheme).
//!
//! **Graphemes.** The calculator splits graphemes with grapheme-splitter 1.0.4, whose rules predate
//! Unicode 11. smsdesk uses today's rules (`unicode-segmentation`, Unicode 17) instead: they are what
//! phones draw. The two differ on a few sequences: Indic conjuncts (consonant + virama + consonant is
//! one grapheme since Unicode 15.1), emoji ZWJ sequences whose parts the old rules did not glue
//! (`❤️‍🔥`), skin-tone modifiers after a non-emoji, and marks added to Unicode after version 10. On
//! those, `characters` (graphemes in UCS-2) and, when such a cluster straddles a boundary, the
//! segment count can differ from the calculator's. Everything else is identical; the differential
//! test checks both claims.

mod tables;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// Twilio's hard limit on a message body, counted in Unicode scalar values (code points).
pub const MAX_BODY_CHARS: usize = 1_600;

/// Bits in one segment: 140 octets.
const SEGMENT_BITS: usize = 1_120;
/// The user data header every part of a concatenated message carries: 6 octets.
const HEADER_BITS: usize = 48;

/// The alphabet a whole message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// The GSM 03.38 default alphabet, 7 bits a character (two for the extension set).
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// UTF-16, 16 bits a code unit.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    /// The name Twilio's calculator and documentation use.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Bits of one code unit: a septet or a UTF-16 unit.
    fn unit_bits(self) -> usize {
        match self {
            Encoding::Gsm7 => 7,
            Encoding::Ucs2 => 16,
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BodyError {
    #[error(
        "the message is {chars} characters long; Twilio accepts at most {max} (Twilio recommends at most 320): shorten it or split it into several messages",
        max = MAX_BODY_CHARS
    )]
    TooLong { chars: usize },
}

/// The GSM-7 septets of one character, or `None` when it is not in the GSM 03.38 alphabet.
/// Extension characters (`^ { } \ [ ~ ] |`, `€`, form feed) take two septets.
pub fn gsm7_septets(c: char) -> Option<&'static [u8]> {
    tables::GSM7
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .map(|i| tables::GSM7[i].1)
}

/// Septets of each ASCII character (0: not GSM-7), from the same table: the fast path for the
/// characters most messages are made of.
static ASCII_SEPTETS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < tables::GSM7.len() {
        let (c, septets) = tables::GSM7[i];
        if (c as u32) < 128 {
            table[c as usize] = septets.len() as u8;
        }
        i += 1;
    }
    table
};

/// Septets one character takes in GSM-7 (1 or 2), or `None` when it is not GSM-7.
fn septets_of(c: char) -> Option<usize> {
    if c.is_ascii() {
        match ASCII_SEPTETS[c as usize] {
            0 => None,
            n => Some(n as usize),
        }
    } else {
        gsm7_septets(c).map(<[u8]>::len)
    }
}

/// What Twilio's smart encoding turns this character into, when it is a known look-alike.
pub fn smart_replacement(c: char) -> Option<&'static str> {
    tables::SMART
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .map(|i| tables::SMART[i].1)
}

/// Every look-alike smart encoding replaces, with its replacement, in code point order.
pub fn smart_replacements() -> impl Iterator<Item = (char, &'static str)> {
    tables::SMART.iter().copied()
}

/// The body as Twilio's smart encoding would send it: look-alikes replaced one code point at a time.
pub fn smart_encode(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for c in body.chars() {
        match smart_replacement(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

/// Splits text into the graphemes the segmenter counts: extended grapheme clusters, except that a
/// `"\r\n"` pair counts as two (as in Twilio's calculator).
pub fn graphemes(text: &str) -> Graphemes<'_> {
    Graphemes {
        text,
        pos: 0,
        chunk: None,
        lf: None,
    }
}

/// The iterator of [`graphemes`].
///
/// Speed: between two ASCII characters there is always a grapheme boundary (the one exception,
/// `"\r\n"`, is split anyway), and no Unicode rule looks back past an ASCII character. So the
/// text is cut at such places into chunks: a lone ASCII character is a grapheme as it is, and only
/// chunks with non-ASCII characters (plus their ASCII neighbours) go through the Unicode rules.
pub struct Graphemes<'a> {
    text: &'a str,
    /// Start of the text not yet cut into chunks.
    pos: usize,
    /// The clusters of the current non-ASCII chunk.
    chunk: Option<unicode_segmentation::Graphemes<'a>>,
    /// The `"\n"` of a `"\r\n"` cluster, still to yield.
    lf: Option<&'a str>,
}

impl<'a> Iterator for Graphemes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if let Some(lf) = self.lf.take() {
            return Some(lf);
        }
        loop {
            if let Some(chunk) = &mut self.chunk {
                match chunk.next() {
                    Some(crlf @ "\r\n") => {
                        self.lf = Some(&crlf[1..]);
                        return Some(&crlf[..1]);
                    }
                    Some(g) => return Some(g),
                    None => self.chunk = None,
                }
            }
            let bytes = self.text.as_bytes();
            let start = self.pos;
            if start >= bytes.len() {
                return None;
            }
            // The chunk ends at the first boundary between two ASCII characters (or the end).
            let mut end = start + 1;
            while end < bytes.len() && !(bytes[end - 1].is_ascii() && bytes[end].is_ascii()) {
                end += 1;
            }
            self.pos = end;
            if end == start + 1 {
                return Some(&self.text[start..end]);
            }
            self.chunk = Some(self.text[start..end].graphemes(true));
        }
    }
}

/// A grapheme that keeps the message out of GSM-7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonGsmChar {
    /// The grapheme itself.
    pub grapheme: String,
    /// Its index among the message's graphemes.
    pub index: usize,
    /// Its byte range in the analysed text.
    pub start: usize,
    pub end: usize,
    /// What smart encoding would send instead, when that is GSM-7 (so the replacement keeps
    /// the message in GSM-7 as far as this character goes).
    pub replacement: Option<String>,
}

/// One segment (one billed SMS part) of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte range of the analysed text this segment carries.
    pub start: usize,
    pub end: usize,
    /// Grapheme index range.
    pub first_grapheme: usize,
    pub end_grapheme: usize,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) used by the text.
    pub units: usize,
    /// Units this segment can hold for text: 160/153 septets or 70/67 code units.
    pub capacity: usize,
    /// Whether it carries the user data header of a concatenated message.
    pub has_header: bool,
}

/// Everything the editor and the biller need to know about a body. Built only by
/// [`SegmentedMessage::analyze`] (serialized for display, never deserialized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentedMessage {
    encoding: Encoding,
    text: String,
    segments: Vec<Segment>,
    characters: usize,
    unicode_scalars: usize,
    graphemes: usize,
    non_gsm: Vec<NonGsmChar>,
}

impl SegmentedMessage {
    /// Analyses a body as Twilio would send it, with or without smart encoding.
    /// Rejects bodies over [`MAX_BODY_CHARS`] code points.
    pub fn analyze(body: &str, smart_encoding: bool) -> Result<Self, BodyError> {
        let chars = body.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(BodyError::TooLong { chars });
        }
        let text = if smart_encoding {
            smart_encode(body)
        } else {
            body.to_owned()
        };
        let graphemes: Vec<&str> = graphemes(&text).collect();
        let layout = Layout::of_graphemes(&graphemes);
        let mut offsets = Vec::with_capacity(graphemes.len() + 1);
        let mut at = 0;
        for g in &graphemes {
            offsets.push(at);
            at += g.len();
        }
        offsets.push(at);
        let non_gsm = graphemes
            .iter()
            .enumerate()
            .filter(|(_, g)| !is_gsm7_grapheme(g))
            .map(|(i, g)| NonGsmChar {
                grapheme: (*g).to_owned(),
                index: i,
                start: offsets[i],
                end: offsets[i + 1],
                replacement: g
                    .chars()
                    .any(|c| smart_replacement(c).is_some())
                    .then(|| smart_encode(g))
                    .filter(|replaced| graphemes_are_gsm7(replaced)),
            })
            .collect();
        let segments = layout
            .segments
            .iter()
            .map(|s| Segment {
                start: offsets[s.first_grapheme],
                end: offsets[s.end_grapheme],
                first_grapheme: s.first_grapheme,
                end_grapheme: s.end_grapheme,
                units: s.units,
                capacity: s.capacity,
                has_header: s.has_header,
            })
            .collect();
        Ok(SegmentedMessage {
            encoding: layout.encoding,
            characters: layout.characters,
            unicode_scalars: text.chars().count(),
            graphemes: graphemes.len(),
            text,
            segments,
            non_gsm,
        })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The text that is counted and sent: the body, smart-encoded when that was asked for.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of segments Twilio bills.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Characters as Twilio's calculator counts them: septets in GSM-7 (extension characters count
    /// two), graphemes in UCS-2.
    pub fn characters(&self) -> usize {
        self.characters
    }

    /// Unicode scalar values (code points) of the sent text.
    pub fn unicode_scalars(&self) -> usize {
        self.unicode_scalars
    }

    /// Grapheme clusters of the sent text (`"\r\n"` counting two).
    pub fn grapheme_count(&self) -> usize {
        self.graphemes
    }

    /// Graphemes that force UCS-2, in order; empty in GSM-7.
    pub fn non_gsm(&self) -> &[NonGsmChar] {
        &self.non_gsm
    }

    /// Units (septets or code units) used in the last segment.
    pub fn units_used_in_last_segment(&self) -> usize {
        self.segments.last().map_or(0, |s| s.units)
    }

    /// Units still free in the last segment before another one is needed.
    pub fn units_left_in_last_segment(&self) -> usize {
        self.segments
            .last()
            .map_or(0, |s| s.capacity.saturating_sub(s.units))
    }
}

/// True when every grapheme of the text is a GSM-7 character.
fn graphemes_are_gsm7(text: &str) -> bool {
    graphemes(text).all(is_gsm7_grapheme)
}

/// True when a grapheme is one GSM-7 character (the calculator's test: one UTF-16 unit in the table).
pub fn is_gsm7_grapheme(g: &str) -> bool {
    let mut chars = g.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.len_utf16() == 1 && septets_of(c).is_some(),
        _ => false,
    }
}

/// The segment layout of a body already split into graphemes: the calculator's algorithm, bit for
/// bit. Public so that a caller with another grapheme splitter (the differential test feeds the
/// calculator's own graphemes) can check that only the splitting differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub encoding: Encoding,
    /// Septets in GSM-7, graphemes in UCS-2.
    pub characters: usize,
    pub segments: Vec<Segment>,
}

impl Layout {
    pub fn of_graphemes(graphemes: &[&str]) -> Layout {
        let encoding = if graphemes.iter().all(|g| is_gsm7_grapheme(g)) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        };
        let unit_bits = encoding.unit_bits();
        // Code units of each grapheme: septets in GSM-7, UTF-16 units in UCS-2 (where GSM-7
        // extension characters are one unit like any other).
        let units: Vec<usize> = graphemes
            .iter()
            .map(|g| match encoding {
                Encoding::Gsm7 => g.chars().map(|c| septets_of(c).unwrap_or(0)).sum(),
                Encoding::Ucs2 => g.encode_utf16().count(),
            })
            .collect();
        let characters = match encoding {
            Encoding::Gsm7 => units.iter().sum(),
            Encoding::Ucs2 => graphemes.len(),
        };

        struct Part {
            header: bool,
            first: usize,
            end: usize,
            bits: usize,
        }
        let mut parts = vec![Part {
            header: false,
            first: 0,
            end: 0,
            bits: 0,
        }];
        for (i, &u) in units.iter().enumerate() {
            let size = u * unit_bits;
            let current = parts.last().expect("there is always a current segment");
            // Free space can be negative when one grapheme alone is larger than a segment.
            if (SEGMENT_BITS as isize - current.bits as isize) < size as isize {
                let mut next = Part {
                    header: true,
                    first: i,
                    end: i,
                    bits: HEADER_BITS,
                };
                let previous = parts.last_mut().expect("there is always a current segment");
                if !previous.header {
                    // The first segment learns it is part of a concatenated message: it gets its
                    // header, and what no longer fits moves to the new segment.
                    previous.header = true;
                    previous.bits += HEADER_BITS;
                    while previous.bits > SEGMENT_BITS {
                        previous.end -= 1;
                        previous.bits -= units[previous.end] * unit_bits;
                    }
                    next.first = previous.end;
                    next.bits += units[previous.end..i].iter().sum::<usize>() * unit_bits;
                }
                parts.push(next);
            }
            let current = parts.last_mut().expect("there is always a current segment");
            current.end = i + 1;
            current.bits += size;
        }

        let segments = parts
            .into_iter()
            .map(|p| {
                let header_bits = if p.header { HEADER_BITS } else { 0 };
                Segment {
                    start: 0,
                    end: 0,
                    first_grapheme: p.first,
                    end_grapheme: p.end,
                    units: (p.bits - header_bits) / unit_bits,
                    capacity: (SEGMENT_BITS - header_bits) / unit_bits,
                    has_header: p.header,
                }
            })
            .collect();
        Layout {
            encoding,
            characters,
            segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(body: &str) -> SegmentedMessage {
        SegmentedMessage::analyze(body, false).expect("a valid body")
    }

    #[test]
    fn gsm7_fits_160_septets_in_one_segment_and_153_when_concatenated() {
        assert_eq!(seg(&"a".repeat(160)).segment_count(), 1);
        assert_eq!(seg(&"a".repeat(161)).segment_count(), 2);
        assert_eq!(seg(&"a".repeat(306)).segment_count(), 2);
        assert_eq!(seg(&"a".repeat(307)).segment_count(), 3);
        let m = seg(&"a".repeat(161));
        assert_eq!(m.segments()[0].units, 153);
        assert_eq!(m.segments()[0].capacity, 153);
        assert_eq!(m.units_used_in_last_segment(), 8);
        assert_eq!(m.units_left_in_last_segment(), 145);
    }

    #[test]
    fn extension_characters_take_two_septets_and_never_split() {
        let m = seg(&"{".repeat(80));
        assert_eq!(m.encoding(), Encoding::Gsm7);
        assert_eq!(m.characters(), 160);
        assert_eq!(m.segment_count(), 1);
        // 152 plain septets, then a 2-septet character that would straddle the 153-septet boundary.
        let m = seg(&format!("{}€{}", "a".repeat(152), "a".repeat(10)));
        assert_eq!(m.segment_count(), 2);
        assert_eq!(m.segments()[0].units, 152);
        assert_eq!(m.segments()[1].units, 12);
    }

    #[test]
    fn ucs2_counts_utf16_units_and_moves_whole_graphemes() {
        let m = seg(&format!("{}😜{}", "ç".repeat(66), "ç".repeat(66)));
        assert_eq!(m.encoding(), Encoding::Ucs2);
        assert_eq!(m.segment_count(), 3);
        assert_eq!(seg(&"ç".repeat(70)).segment_count(), 1);
        assert_eq!(seg(&"ç".repeat(71)).segment_count(), 2);
        // Extension characters are a single unit in UCS-2.
        let m = seg(&format!("ç{}", "{".repeat(69)));
        assert_eq!(m.segment_count(), 1);
        assert_eq!(m.characters(), 70);
    }

    #[test]
    fn empty_body_is_one_empty_gsm7_segment() {
        let m = seg("");
        assert_eq!(m.encoding(), Encoding::Gsm7);
        assert_eq!(m.segment_count(), 1);
        assert_eq!(m.units_left_in_last_segment(), 160);
    }

    #[test]
    fn body_over_1600_code_points_is_rejected_with_its_length() {
        let err = SegmentedMessage::analyze(&"a".repeat(1601), false).unwrap_err();
        assert_eq!(err, BodyError::TooLong { chars: 1601 });
        assert!(err.to_string().contains("1601 characters"));
        assert!(SegmentedMessage::analyze(&"😜".repeat(1600), false).is_ok());
    }

    #[test]
    fn crlf_counts_as_two_characters() {
        let m = seg("a\r\nb");
        assert_eq!(m.characters(), 4);
        assert_eq!(m.grapheme_count(), 4);
    }

    #[test]
    fn non_gsm_characters_are_listed_with_position_and_replacement() {
        let m = seg("Hi “you” 😜");
        let list: Vec<_> = m
            .non_gsm()
            .iter()
            .map(|c| (c.grapheme.as_str(), c.index, c.replacement.as_deref()))
            .collect();
        assert_eq!(
            list,
            vec![("“", 3, Some("\"")), ("”", 7, Some("\"")), ("😜", 9, None)]
        );
        assert_eq!(&m.text()[m.non_gsm()[2].start..m.non_gsm()[2].end], "😜");
    }

    #[test]
    fn a_replacement_is_offered_only_when_it_is_gsm7() {
        // The zero-width non-joiner is dropped by smart encoding, but the emoji stays UCS-2.
        let m = seg("😜\u{200c}");
        assert!(m.non_gsm().iter().all(|c| c.replacement.is_none()));
        let m = seg("–");
        assert_eq!(m.non_gsm()[0].replacement.as_deref(), Some("-"));
    }

    #[test]
    fn smart_encoding_maps_look_alikes_to_gsm7() {
        let m = SegmentedMessage::analyze("“Quote” – done…\u{a0}", true).unwrap();
        assert_eq!(m.encoding(), Encoding::Gsm7);
        assert_eq!(m.text(), "\"Quote\" - done...  ");
        assert!(m.non_gsm().is_empty());
    }

    #[test]
    fn segments_cover_the_text_in_order() {
        let m = seg(&"Shipment 😜 ".repeat(40));
        let mut at = 0;
        for s in m.segments() {
            assert_eq!(s.start, at);
            at = s.end;
        }
        assert_eq!(at, m.text().len());
    }

    /// The calculator (grapheme-splitter 1.0.4) splits these where Unicode 17 does not; smsdesk
    /// follows Unicode 17 on purpose (see the module documentation).
    #[test]
    fn graphemes_follow_current_unicode_where_the_calculator_is_older() {
        // Devanagari conjunct "क्ष": one grapheme since Unicode 15.1 (the calculator: two).
        assert_eq!(graphemes("क्ष").count(), 1);
        // Heart on fire, a ZWJ sequence the old rules split after the ZWJ (the calculator: two).
        assert_eq!(graphemes("❤\u{fe0f}\u{200d}🔥").count(), 1);
        // A skin tone after a letter joins it today (the calculator: two).
        assert_eq!(graphemes("a🏽").count(), 1);
        // Where a conjunct sits next to a boundary, moving it whole can cost a segment: here
        // smsdesk counts 3 segments and 131 characters, the calculator 2 and 132.
        let body = format!("{}क्ष{}", "ç".repeat(65), "ç".repeat(65));
        let m = seg(&body);
        assert_eq!(m.characters(), 131);
        assert_eq!(m.segment_count(), 3);
        let units: Vec<usize> = m.segments().iter().map(|s| s.units).collect();
        assert_eq!(units, vec![65, 67, 1]);
    }

    #[test]
    fn one_grapheme_larger_than_a_segment_gets_a_segment_of_its_own() {
        // "e" with 80 combining marks: 81 UTF-16 units, more than one segment holds. The calculator
        // leaves an empty (header-only) first segment and overfills the second; so does smsdesk.
        let g = format!("e{}", "\u{301}".repeat(80));
        let m = seg(&g);
        assert_eq!(m.segment_count(), 2);
        assert_eq!(m.segments()[0].units, 0);
        assert_eq!(m.segments()[1].units, 81);
        assert_eq!(m.units_left_in_last_segment(), 0);
    }

    proptest::proptest! {
        /// The chunked splitter gives exactly the Unicode rules' clusters (CR LF split), on text
        /// mixing ASCII with the characters whose rules look around them.
        #[test]
        fn chunked_graphemes_equal_the_unicode_rules(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", " ", "\r", "\n", "#", "1", "\u{301}", "\u{200d}", "\u{fe0f}", "\u{20e3}",
                "\u{600}", "🇺", "🇸", "❤", "🔥", "👍", "🏽", "क", "\u{94d}", "ष", "ç", "\u{1100}", "\u{1161}",
            ]), 0..40)
        ) {
            let text: String = parts.concat();
            let reference: Vec<&str> = text
                .graphemes(true)
                .flat_map(|g| if g == "\r\n" { vec![&g[..1], &g[1..]] } else { vec![g] })
                .collect();
            proptest::prop_assert_eq!(graphemes(&text).collect::<Vec<_>>(), reference);
        }
    }
}
