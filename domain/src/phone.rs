//! Phone numbers: parsed once at the edge, E.164 everywhere after.
//!
//! Validity is Google libphonenumber's (the Python port `phonenumbers` is the oracle,
//! `domain/tests/phone_oracle.rs`), with the metadata the `phonenumber` crate ships (9.0.33).
//! smsdesk uses only that crate's *metadata*: its parser silently changes numbers (see
//! `shared/CRATES.md`: `+4915123456789` read as `+495123456789`, `+78005553535` as `+7005553535`,
//! keypad letters turned into digits, prefix-only regex matches that call too-long numbers valid,
//! leading zeros dropped when typing Italian numbers). So this module ports libphonenumber's
//! parse steps (`parseHelper`, `maybeExtractCountryCode`, `maybeStripNationalPrefixAndCarrierCode`,
//! `testNumberLength`, `isValidNumber`, `getNumberType`, `getRegionCodeForNumber`) over that
//! metadata, with whole-string regex matches as libphonenumber does.
//!
//! On top of libphonenumber, smsdesk refuses anything it cannot take literally, because it must
//! never send to a number other than the one it was given:
//! - **Characters.** Digits, one leading `+`, and the separators space, `-`, `.`, `(`, `)`, `/`,
//!   no-break space and the Unicode hyphens/dashes/minus (U+2010..=U+2015, U+2212); surrounding
//!   whitespace is trimmed. Everything else is refused and named, including keypad letters
//!   (`1-800-FLOWERS`), extensions (`x123`), `tel:` URIs, a second `+`, tabs, non-ASCII digits.
//!   All of these separators are libphonenumber punctuation, so nothing accepted here is refused
//!   there for its characters.
//! - **`+` input** is read with no default region (the region cannot change it).
//! - **National input** needs a default region: `(415) 555-2671` in US, `07400 123456` in GB,
//!   `0412 345 678` in AU, `0151 23456789` in DE, or the region's country code typed without `+`.
//! - **Readings are libphonenumber's.** Where it strips a trunk prefix written after the country
//!   code (`+44 (0)7400 123456` is `+447400123456`, `+7 8 800 ...` is `+7800...`) or applies a
//!   region's own dialling rule (Argentina's `15` mobile form, a NANP island's 7-digit local
//!   number getting its area code), smsdesk reads the number as libphonenumber does: that is
//!   the number a person dialling those digits in that country reaches. What smsdesk refuses is
//!   the `phonenumber` crate's own misreadings, which this port does not make (the differential
//!   test holds it to libphonenumber on every accepted number).
//! - **International prefix** (`00`, `011`, ... of the default region, as libphonenumber reads
//!   it) is accepted like `+`.
//! - **Length.** E.164 allows 15 digits; libphonenumber calls a few longer toll-free and
//!   fixed numbers valid (Japan, Indonesia, Germany). Twilio cannot send to them: refused.
//! - **Default region** must be an upper-case ISO 3166 alpha-2 code libphonenumber knows
//!   (`"US"`; not `"us"`, not `"001"`), and a bad one is reported even for `+` input, where
//!   libphonenumber ignores it: it is a configuration mistake that bites on the next number.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// libphonenumber's bounds on a national significant number.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;
/// E.164: at most 15 digits, country code included.
const MAX_E164_DIGITS: usize = 15;
/// The fewest digits (country code included) of any valid number: Niue's `+683 4002` has 7,
/// Iran and Austria have shorter service numbers. Serde accepts from here on.
const MIN_E164_DIGITS: usize = 6;
/// libphonenumber refuses longer input strings outright.
const MAX_INPUT_CHARS: usize = 250;

/// What kind of line a number is, as libphonenumber classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    Mobile,
    FixedLine,
    /// The region's fixed-line and mobile ranges overlap (United States, Canada, ...).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    /// Universal access ("company") numbers.
    Uan,
    Voicemail,
    /// Only for numbers read back from storage that the current metadata no longer recognises.
    Unknown,
}

impl NumberKind {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::Mobile => "mobile",
            NumberKind::FixedLine => "fixed_line",
            NumberKind::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberKind::TollFree => "toll_free",
            NumberKind::PremiumRate => "premium_rate",
            NumberKind::SharedCost => "shared_cost",
            NumberKind::Voip => "voip",
            NumberKind::PersonalNumber => "personal_number",
            NumberKind::Pager => "pager",
            NumberKind::Uan => "uan",
            NumberKind::Voicemail => "voicemail",
            NumberKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a phone number was refused. Every message tells the person what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    /// Nothing but whitespace and separators.
    Empty,
    /// A character that is not a digit, a leading `+` or an accepted separator.
    NotANumber { character: char },
    /// National input (no `+`) and no default region to read it in.
    MissingCountry,
    /// The digits after `+` (or the international prefix) start with no country calling code.
    UnknownCountryCode { digits: String },
    /// Fewer digits than any number of the region (`region` when known; `min_digits` counts
    /// the digits after the country code).
    TooShort {
        region: Option<String>,
        min_digits: Option<u16>,
    },
    /// More digits than any number of the region, or than E.164's 15.
    TooLong {
        region: Option<String>,
        max_digits: Option<u16>,
    },
    /// A possible length, but no number range of the region matches.
    NotValidForRegion { region: String },
    /// The default region is not an upper-case ISO 3166 alpha-2 code libphonenumber knows.
    InvalidDefaultRegion { given: String },
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Empty => f.write_str(
                "no phone number given: enter one with its country code, such as +14155552671",
            ),
            PhoneError::NotANumber { character: '+' } => f.write_str(
                "a + may only appear once, at the start of the number, before the country code",
            ),
            PhoneError::NotANumber { character } if character.is_alphabetic() => write!(
                f,
                "{character:?} is a letter: type the number in digits only \
                 (keypad letters and extensions are not accepted)"
            ),
            PhoneError::NotANumber { character } => write!(
                f,
                "{character:?} cannot appear in a phone number: use digits, one leading +, \
                 and spaces, dashes, dots, slashes or parentheses"
            ),
            PhoneError::MissingCountry => f.write_str(
                "the number has no country code: start it with + and the country code \
                 (such as +44 7400 123456), or choose the country it belongs to",
            ),
            PhoneError::UnknownCountryCode { digits } if digits.starts_with('0') => write!(
                f,
                "no country code starts with 0 (+{digits}…): if you typed an international \
                 prefix such as 00 or 011, replace it with +"
            ),
            PhoneError::UnknownCountryCode { digits } => write!(
                f,
                "+{digits}… does not start with a country calling code in use: check the \
                 digits right after the +"
            ),
            PhoneError::TooShort {
                region: Some(region),
                min_digits: Some(min),
            } => write!(
                f,
                "too few digits for a number in {region}: it needs at least {min} after the \
                 country code; check for a missing digit"
            ),
            PhoneError::TooShort { .. } => {
                f.write_str("too few digits to be a phone number: check for missing digits")
            }
            PhoneError::TooLong {
                region: Some(region),
                max_digits: Some(max),
            } => write!(
                f,
                "too many digits for a number in {region}: it has at most {max} after the \
                 country code; check for an extra digit"
            ),
            PhoneError::TooLong { .. } => {
                f.write_str("too many digits to be a phone number: check for extra digits")
            }
            PhoneError::NotValidForRegion { region } => write!(
                f,
                "not a valid number in {region}: no {region} number starts with these digits \
                 at this length; check for a typo, or enter it with + and its own country code \
                 if it belongs to another country"
            ),
            PhoneError::InvalidDefaultRegion { given } => write!(
                f,
                "{given:?} is not a region smsdesk knows: use a two-letter ISO 3166 code in \
                 capitals, such as US or GB"
            ),
        }
    }
}

impl std::error::Error for PhoneError {}

/// A valid phone number, in E.164 (`+14155552671`).
///
/// Serialises as the E.164 string. Deserialising checks only its shape (`+`, a first digit
/// 1-9, 6 to 15 digits) and that it starts with a known country calling code, then recomputes
/// region and kind; a stored number the current metadata no longer calls valid still loads
/// (region from its country code, kind `unknown`), so a metadata update cannot make old rows
/// unreadable. Validation happens once, in [`PhoneNumber::parse`], when a number is entered.
///
/// `Display` shows the full number (for sending); `Debug` shows the masked form, so a number
/// that reaches a log line through `{:?}` is not exposed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    country_code: u16,
    region: &'static str,
    kind: NumberKind,
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumber").field(&self.masked()).finish()
    }
}

impl PhoneNumber {
    /// Parses a number typed by a person or received from an API.
    ///
    /// `default_region` (ISO 3166 alpha-2, upper case, e.g. `"US"`) reads national input such as
    /// `(415) 555-2671`; input starting with `+` ignores it. See the module docs for the rules.
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<PhoneNumber, PhoneError> {
        let default_meta =
            match default_region {
                None => None,
                Some(given) => Some(region_metadata(given).ok_or_else(|| {
                    PhoneError::InvalidDefaultRegion {
                        given: given.to_owned(),
                    }
                })?),
            };
        let typed = scan(input)?;
        let read = read_country_code(&typed, default_meta)?;
        let nsn = strip_national_prefix_if_possible(read.country_code, read.national, read.meta)?;
        let number = validate(read.country_code, &nsn)?;
        Ok(number)
    }

    /// The number in E.164: `+`, country code, national significant number.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The ISO 3166 alpha-2 region the number belongs to (`"US"`, `"GB"`), or `"001"` for
    /// non-geographic numbers (`+800`, `+882`, ...), as libphonenumber reports it.
    pub fn region(&self) -> &str {
        self.region
    }

    /// What kind of line it is.
    pub fn kind(&self) -> NumberKind {
        self.kind
    }

    /// The country calling code (`1`, `44`, `800`).
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The number for screens and logs: country code, first group and last two digits, the
    /// rest as `*`: `+1 415 *** **71` for `+14155552671`.
    ///
    /// Groups are those of libphonenumber's international format for the number, separated by
    /// single spaces; numbers it has no format for are one group. The first group is shown only
    /// if at least 5 digits follow it, the last two only if at least 5 digits would otherwise
    /// stay hidden, so at least 3 digits are always hidden, and short numbers (Niue's
    /// `+683 4002`) are hidden whole: `+683 ****`.
    pub fn masked(&self) -> String {
        let nsn = self.national_significant_number();
        let groups = international_groups(self.country_code, self.region, nsn);
        let total = nsn.len();
        let shown_head = match groups.first() {
            Some(first) if groups.len() >= 2 && total - first.len() >= 5 => first.len(),
            _ => 0,
        };
        let shown_tail = if total - shown_head >= 5 { 2 } else { 0 };

        let mut out = format!("+{}", self.country_code);
        let mut index = 0;
        for group in &groups {
            out.push(' ');
            for digit in group.chars() {
                let visible = index < shown_head || index >= total - shown_tail;
                out.push(if visible { digit } else { '*' });
                index += 1;
            }
        }
        out
    }

    fn national_significant_number(&self) -> &str {
        let code_len = digit_count(self.country_code);
        &self.e164[1 + code_len..]
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// `"+14155552671".parse()`: [`PhoneNumber::parse`] with no default region.
impl FromStr for PhoneNumber {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhoneNumber::parse(s, None)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.e164)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PhoneNumber::from_stored_e164(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not an E.164 phone number (+, a known country code, \
                 {MIN_E164_DIGITS} to {MAX_E164_DIGITS} digits)"
            ))
        })
    }
}

impl PhoneNumber {
    /// The shape check behind `Deserialize` (see the type's docs).
    fn from_stored_e164(text: &str) -> Option<PhoneNumber> {
        let digits = text.strip_prefix('+')?;
        let shaped = (MIN_E164_DIGITS..=MAX_E164_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !shaped {
            return None;
        }
        let (country_code, nsn) = split_country_code(digits)?;
        if let Ok(number) = PhoneNumber::parse(text, None)
            && number.e164 == text
        {
            return Some(number);
        }
        let metas = DATABASE.by_code(&country_code)?;
        let region = region_for_number(country_code, nsn)
            .or_else(|| metas.first().copied())?
            .id();
        Some(PhoneNumber {
            e164: text.to_owned(),
            country_code,
            region,
            kind: NumberKind::Unknown,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the characters.

struct Typed {
    plus: bool,
    digits: String,
}

/// Separators people type or paste between digit groups; all are libphonenumber punctuation.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '(' | ')' | '/' | '\u{00A0}' | '\u{2010}'..='\u{2015}' | '\u{2212}'
    )
}

fn scan(input: &str) -> Result<Typed, PhoneError> {
    let input = input.trim();
    if input.chars().count() > MAX_INPUT_CHARS {
        return Err(PhoneError::TooLong {
            region: None,
            max_digits: None,
        });
    }
    let mut typed = Typed {
        plus: false,
        digits: String::new(),
    };
    for c in input.chars() {
        if c.is_ascii_digit() {
            typed.digits.push(c);
        } else if c == '+' && !typed.plus && typed.digits.is_empty() {
            typed.plus = true;
        } else if !is_separator(c) {
            return Err(PhoneError::NotANumber { character: c });
        }
    }
    match typed.digits.len() {
        0 => Err(PhoneError::Empty),
        // libphonenumber needs 3 digits to call a string a number at all.
        1 | 2 => Err(PhoneError::TooShort {
            region: None,
            min_digits: None,
        }),
        // No E.164 number, even with a national or international prefix before it, gets here.
        n if n > MAX_NSN + 13 => Err(PhoneError::TooLong {
            region: None,
            max_digits: None,
        }),
        _ => Ok(typed),
    }
}

// ---------------------------------------------------------------------------------------------
// libphonenumber's parse, over the crate's metadata.

struct Read {
    country_code: u16,
    national: String,
    /// The metadata libphonenumber strips the national prefix with: the main region of the
    /// country code, or the default region for plain national input.
    meta: &'static Metadata,
}

/// `maybeExtractCountryCode`, for `+` input with no region and national input with one.
fn read_country_code(
    typed: &Typed,
    default_meta: Option<&'static Metadata>,
) -> Result<Read, PhoneError> {
    let digits = typed.digits.as_str();
    let international = |after: usize| {
        let rest = &digits[after..];
        if rest.len() <= MIN_NSN {
            return Err(PhoneError::TooShort {
                region: None,
                min_digits: None,
            });
        }
        let (country_code, national) =
            split_country_code(rest).ok_or_else(|| PhoneError::UnknownCountryCode {
                digits: rest.chars().take(3).collect(),
            })?;
        Ok(Read {
            country_code,
            national: national.to_owned(),
            meta: main_metadata(country_code),
        })
    };
    if typed.plus {
        return international(0);
    }
    let meta = default_meta.ok_or(PhoneError::MissingCountry)?;
    if let Some(idd) = meta.international_prefix()
        && let Some(end) = prefix_end(idd.as_str(), digits)
        && !digits[end..].starts_with('0')
    {
        return international(end);
    }

    let country_code = meta.country_code();
    let code = country_code.to_string();
    if let Some(rest) = digits.strip_prefix(code.as_str()) {
        // The country code without `+`: libphonenumber takes it as such when the number does
        // not fit the region as typed but does without the code, or is too long as typed.
        let mut potential = rest.to_owned();
        strip_national_prefix(&mut potential, meta);
        let general = meta.descriptors().general().national_number().as_str();
        if (!full_match(general, digits) && full_match(general, &potential))
            || test_length(digits, meta) == Length::TooLong
        {
            return Ok(Read {
                country_code,
                national: potential,
                meta: main_metadata(country_code),
            });
        }
    }
    Ok(Read {
        country_code,
        national: digits.to_owned(),
        meta,
    })
}

/// The rest of `parseHelper`: strip a national prefix if what remains can still be a number.
fn strip_national_prefix_if_possible(
    country_code: u16,
    national: String,
    meta: &'static Metadata,
) -> Result<String, PhoneError> {
    let too_short = || PhoneError::TooShort {
        region: Some(main_metadata(country_code).id().to_owned()),
        min_digits: general_lengths(main_metadata(country_code))
            .national
            .first()
            .copied(),
    };
    if national.len() < MIN_NSN {
        return Err(too_short());
    }
    let mut potential = national.clone();
    strip_national_prefix(&mut potential, meta);
    let nsn = match test_length(&potential, meta) {
        Length::TooShort | Length::LocalOnly | Length::Invalid => national,
        Length::Possible | Length::TooLong => potential,
    };
    if nsn.len() < MIN_NSN {
        return Err(too_short());
    }
    if nsn.len() > MAX_NSN {
        return Err(PhoneError::TooLong {
            region: Some(main_metadata(country_code).id().to_owned()),
            max_digits: general_lengths(main_metadata(country_code))
                .national
                .last()
                .copied(),
        });
    }
    Ok(nsn)
}

/// `isValidNumber` and `getNumberType`, and the reason when it is not valid.
fn validate(country_code: u16, nsn: &str) -> Result<PhoneNumber, PhoneError> {
    let found = region_for_number(country_code, nsn);
    let kind = found.and_then(|meta| number_kind(meta, nsn));
    let (Some(meta), Some(kind)) = (found, kind) else {
        let meta = found.unwrap_or_else(|| main_metadata(country_code));
        let region = Some(meta.id().to_owned());
        let lengths = general_lengths(meta);
        return Err(match test_length(nsn, meta) {
            Length::TooShort => PhoneError::TooShort {
                region,
                min_digits: lengths.national.first().copied(),
            },
            Length::TooLong => PhoneError::TooLong {
                region,
                max_digits: lengths.national.last().copied(),
            },
            _ => PhoneError::NotValidForRegion {
                region: meta.id().to_owned(),
            },
        });
    };
    let code_len = digit_count(country_code);
    if code_len + nsn.len() > MAX_E164_DIGITS {
        return Err(PhoneError::TooLong {
            region: Some(meta.id().to_owned()),
            max_digits: u16::try_from(MAX_E164_DIGITS - code_len).ok(),
        });
    }
    Ok(PhoneNumber {
        e164: format!("+{country_code}{nsn}"),
        country_code,
        region: meta.id(),
        kind,
    })
}

/// `extractCountryCode`: the first 1, 2 or 3 digits that are a calling code in the metadata.
fn split_country_code(digits: &str) -> Option<(u16, &str)> {
    if digits.starts_with('0') {
        return None;
    }
    (1..=3.min(digits.len())).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        DATABASE.by_code(&code)?;
        Some((code, &digits[len..]))
    })
}

/// `maybeStripNationalPrefixAndCarrierCode`; returns whether it stripped.
fn strip_national_prefix(number: &mut String, meta: &'static Metadata) -> bool {
    // libphonenumber's metadata build defaults the pattern to the national prefix; the crate's
    // does not.
    let Some(pattern) = meta
        .national_prefix_for_parsing()
        .map(|re| re.as_str())
        .or(meta.national_prefix())
        .filter(|p| !p.is_empty())
    else {
        return false;
    };
    if number.is_empty() {
        return false;
    }
    let Some(groups) = prefix_captures(pattern, number) else {
        return false;
    };
    let general = meta.descriptors().general().national_number().as_str();
    let viable = full_match(general, number);
    let end = groups.first().copied().flatten().map_or(0, |(_, end)| end);
    let last_group = groups.last().copied().flatten();
    match meta.national_prefix_transform_rule() {
        Some(rule) if !rule.is_empty() && last_group.is_some() => {
            let transformed = format!("{}{}", expand(rule, &groups, number), &number[end..]);
            if viable && !full_match(general, &transformed) {
                return false;
            }
            *number = transformed;
        }
        _ => {
            if viable && !full_match(general, &number[end..]) {
                return false;
            }
            number.drain(..end);
        }
    }
    true
}

/// `getRegionCodeForNumber`: which region of a shared calling code the number belongs to.
fn region_for_number(country_code: u16, nsn: &str) -> Option<&'static Metadata> {
    let metas = DATABASE.by_code(&country_code)?;
    if metas.len() == 1 {
        return metas.first().copied();
    }
    metas.into_iter().find(|meta| match meta.leading_digits() {
        Some(leading) => prefix_end(leading.as_str(), nsn).is_some(),
        None => number_kind(meta, nsn).is_some(),
    })
}

/// `getNumberTypeHelper`; `None` is libphonenumber's UNKNOWN, i.e. not a valid number.
fn number_kind(meta: &'static Metadata, nsn: &str) -> Option<NumberKind> {
    let d = meta.descriptors();
    let general = general_lengths(meta);
    if !general.national.contains(&length_u16(nsn))
        || !full_match(d.general().national_number().as_str(), nsn)
    {
        return None;
    }
    let special = [
        (d.premium_rate(), NumberKind::PremiumRate),
        (d.toll_free(), NumberKind::TollFree),
        (d.shared_cost(), NumberKind::SharedCost),
        (d.voip(), NumberKind::Voip),
        (d.personal_number(), NumberKind::PersonalNumber),
        (d.pager(), NumberKind::Pager),
        (d.uan(), NumberKind::Uan),
        (d.voicemail(), NumberKind::Voicemail),
    ];
    if let Some((_, kind)) = special.iter().find(|(desc, _)| matches_desc(*desc, nsn)) {
        return Some(*kind);
    }
    let same_pattern = match (d.fixed_line(), d.mobile()) {
        (Some(fixed), Some(mobile)) => {
            let (fixed, mobile) = (
                fixed.national_number().as_str(),
                mobile.national_number().as_str(),
            );
            // The same text (the US's: kilobytes) is one memory compare; only texts that
            // differ are compared again without their layout whitespace.
            fixed == mobile || without_whitespace(fixed).eq(without_whitespace(mobile))
        }
        (None, None) => true,
        _ => false,
    };
    if matches_desc(d.fixed_line(), nsn) {
        if same_pattern || matches_desc(d.mobile(), nsn) {
            return Some(NumberKind::FixedLineOrMobile);
        }
        return Some(NumberKind::FixedLine);
    }
    if !same_pattern && matches_desc(d.mobile(), nsn) {
        return Some(NumberKind::Mobile);
    }
    None
}

/// `isNumberMatchingDesc`: a possible length (when the type lists any) and a whole match.
fn matches_desc(desc: Option<&'static Descriptor>, nsn: &str) -> bool {
    desc.is_some_and(|desc| {
        (desc.possible_length().is_empty() || desc.possible_length().contains(&length_u16(nsn)))
            && full_match(desc.national_number().as_str(), nsn)
    })
}

struct Lengths {
    national: Vec<u16>,
    local: Vec<u16>,
}

/// The general description's possible lengths, which libphonenumber's metadata build derives
/// from every number type (except "no international dialling"); the crate leaves them empty.
fn general_lengths(meta: &Metadata) -> Lengths {
    let d = meta.descriptors();
    let types = [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    let mut national: Vec<u16> = types
        .iter()
        .flatten()
        .flat_map(|desc| desc.possible_length().iter().copied())
        .collect();
    national.sort_unstable();
    national.dedup();
    let mut local: Vec<u16> = types
        .iter()
        .flatten()
        .flat_map(|desc| desc.possible_local_length().iter().copied())
        .filter(|len| !national.contains(len))
        .collect();
    local.sort_unstable();
    local.dedup();
    Lengths { national, local }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    Invalid,
}

/// `testNumberLength` for the UNKNOWN type, i.e. against the general description.
fn test_length(number: &str, meta: &Metadata) -> Length {
    let lengths = general_lengths(meta);
    let (Some(&min), Some(&max)) = (lengths.national.first(), lengths.national.last()) else {
        return Length::Invalid;
    };
    let len = length_u16(number);
    if lengths.local.contains(&len) {
        Length::LocalOnly
    } else if len == min || (len > min && len <= max && lengths.national.contains(&len)) {
        Length::Possible
    } else if len < min {
        Length::TooShort
    } else if len > max {
        Length::TooLong
    } else {
        Length::Invalid
    }
}

/// Whether `code` is an upper-case ISO 3166 alpha-2 region with numbering metadata (`US`, `AU`).
pub fn is_known_region(code: &str) -> bool {
    region_metadata(code).is_some()
}

/// An upper-case region code libphonenumber accepts as a default region.
fn region_metadata(code: &str) -> Option<&'static Metadata> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    DATABASE.by_id(code)
}

/// The main region of a calling code (`US` for 1, `GB` for 44), or the non-geographic entity.
fn main_metadata(country_code: u16) -> &'static Metadata {
    DATABASE
        .by_code(&country_code)
        .and_then(|metas| metas.first().copied())
        .expect("country codes come from the metadata")
}

/// libphonenumber's international format, as digit groups; one group when it has none.
fn international_groups(country_code: u16, region: &str, nsn: &str) -> Vec<String> {
    let metas = DATABASE.by_code(&country_code).unwrap_or_default();
    let Some(meta) = metas
        .iter()
        .find(|meta| meta.id() == region)
        .or(metas.first())
    else {
        return vec![nsn.to_owned()];
    };
    let formats = if meta.international_formats().is_empty() {
        meta.formats()
    } else {
        meta.international_formats()
    };
    let chosen = formats.iter().find(|format| {
        format
            .leading_digits()
            .last()
            .is_none_or(|leading| prefix_end(leading.as_str(), nsn).is_some())
            && full_match(format.pattern().as_str(), nsn)
    });
    let Some(format) = chosen else {
        return vec![nsn.to_owned()];
    };
    let Some(groups) = whole_captures(format.pattern().as_str(), nsn) else {
        return vec![nsn.to_owned()];
    };
    let formatted = expand(format.format(), &groups, nsn);
    let split: Vec<String> = formatted
        .split(|c: char| !c.is_ascii_digit())
        .filter(|group| !group.is_empty())
        .map(str::to_owned)
        .collect();
    // A format that adds or drops digits would make the mask lie: fall back to one group.
    if split.concat() == nsn {
        split
    } else {
        vec![nsn.to_owned()]
    }
}

// ---------------------------------------------------------------------------------------------
// Regexes. The crate's own matching is prefix-only and runs every pattern through a 100-entry
// LRU behind one mutex; libphonenumber matches whole strings. We compile each metadata pattern
// once, anchored, through the crate's regex cache (the only regex engine `domain` can reach),
// and keep it here.

/// Byte ranges of a match's groups (group 0 is the whole match).
type Spans = Vec<Option<(usize, usize)>>;
type IsMatch = Box<dyn Fn(&str) -> bool + Send + Sync>;
type Captures = Box<dyn Fn(&str) -> Option<Spans> + Send + Sync>;

/// The regex type lives in a crate `domain` does not depend on, so it is kept inside closures.
struct Compiled {
    is_match: IsMatch,
    captures: Captures,
}

/// Compiled patterns by where the metadata keeps their text (patterns are `'static`, so an
/// address is never reused for another one) and whether the match is whole: finding one costs
/// no copy and no hash of a pattern's text (the US patterns run to kilobytes).
type Key = (usize, usize, bool);

static COMPILED: LazyLock<Mutex<HashMap<Key, Arc<Compiled>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn compiled(pattern: &'static str, whole: bool) -> Arc<Compiled> {
    let key = (pattern.as_ptr() as usize, pattern.len(), whole);
    let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = cache.get(&key) {
        return Arc::clone(found);
    }
    let source = anchored(pattern, whole);
    let regex = DATABASE
        .cache()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .compile(&source)
        .ok()
        .cloned();
    let entry = Arc::new(match regex {
        Some(regex) => {
            let for_captures = regex.clone();
            Compiled {
                is_match: Box::new(move |text: &str| regex.is_match(text)),
                captures: Box::new(move |text: &str| {
                    for_captures.captures(text).map(|caps| {
                        caps.iter()
                            .map(|group| group.map(|m| (m.start(), m.end())))
                            .collect()
                    })
                }),
            }
        }
        // Metadata patterns all compile; should one not, it matches nothing (refuse, never guess).
        None => Compiled {
            is_match: Box::new(|_: &str| false),
            captures: Box::new(|_: &str| None),
        },
    });
    cache.insert(key, Arc::clone(&entry));
    entry
}

/// Metadata patterns may contain layout whitespace (the crate compiles them in verbose mode).
fn anchored(pattern: &str, whole: bool) -> String {
    if whole {
        format!("^(?x:{pattern})$")
    } else {
        format!("^(?x:{pattern})")
    }
}

/// Java's `matcher.matches()`.
fn full_match(pattern: &'static str, text: &str) -> bool {
    (compiled(pattern, true).is_match)(text)
}

fn whole_captures(pattern: &'static str, text: &str) -> Option<Spans> {
    (compiled(pattern, true).captures)(text)
}

/// Java's `matcher.lookingAt()`, with its groups.
fn prefix_captures(pattern: &'static str, text: &str) -> Option<Spans> {
    (compiled(pattern, false).captures)(text)
}

/// Where a `lookingAt()` match ends.
fn prefix_end(pattern: &'static str, text: &str) -> Option<usize> {
    prefix_captures(pattern, text)?
        .first()
        .copied()
        .flatten()
        .map(|(_, end)| end)
}

/// Substitutes `$1`..`$9` in a metadata rule (`"9$1"`, `"$1 $2 $3"`) with captured groups.
fn expand(rule: &str, groups: &Spans, text: &str) -> String {
    let mut out = String::new();
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(index) = chars.peek().and_then(|d| d.to_digit(10))
        {
            chars.next();
            if let Some(Some((start, end))) = groups.get(index as usize) {
                out.push_str(&text[*start..*end]);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn without_whitespace(pattern: &str) -> impl Iterator<Item = char> + '_ {
    pattern.chars().filter(|c| !c.is_whitespace())
}

fn length_u16(digits: &str) -> u16 {
    u16::try_from(digits.len()).unwrap_or(u16::MAX)
}

fn digit_count(code: u16) -> usize {
    code.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(input: &str, region: Option<&str>) -> PhoneNumber {
        PhoneNumber::parse(input, region)
            .unwrap_or_else(|err| panic!("{input:?} in {region:?} refused: {err}"))
    }

    fn err(input: &str, region: Option<&str>) -> PhoneError {
        match PhoneNumber::parse(input, region) {
            Ok(number) => panic!("{input:?} in {region:?} accepted as {number}"),
            Err(err) => err,
        }
    }

    #[test]
    fn us_national_number_with_punctuation_parses() {
        let number = ok("(415) 555-2671", Some("US"));
        assert_eq!(number.e164(), "+14155552671");
        assert_eq!(number.region(), "US");
        assert_eq!(number.kind(), NumberKind::FixedLineOrMobile);
        assert_eq!(number.country_code(), 1);
        assert_eq!(number.to_string(), "+14155552671");
    }

    #[test]
    fn national_prefixes_are_dropped_and_the_rest_kept() {
        assert_eq!(ok("1 415 555 2671", Some("US")).e164(), "+14155552671");
        let uk = ok("07400 123456", Some("GB"));
        assert_eq!(
            (uk.e164(), uk.kind()),
            ("+447400123456", NumberKind::Mobile)
        );
        assert_eq!(ok("0412 345 678", Some("AU")).e164(), "+61412345678");
        assert_eq!(ok("0151 23456789", Some("DE")).e164(), "+4915123456789");
        assert_eq!(ok("06 12 34 56 78", Some("FR")).e164(), "+33612345678");
        assert_eq!(ok("44 7400 123456", Some("GB")).e164(), "+447400123456");
    }

    #[test]
    fn international_prefix_of_the_default_region_reads_like_plus() {
        assert_eq!(ok("011 44 7400 123456", Some("US")).e164(), "+447400123456");
        assert_eq!(
            ok("00 49 151 23456789", Some("GB")).e164(),
            "+4915123456789"
        );
    }

    #[test]
    fn plus_numbers_are_never_changed_by_the_default_region() {
        // CRATES.md: the crate reads this as +495123456789 in US.
        let number = ok("+4915123456789", Some("US"));
        assert_eq!((number.e164(), number.region()), ("+4915123456789", "DE"));
        // The crate drops the 8 here.
        let ru = ok("+78005553535", None);
        assert_eq!(
            (ru.e164(), ru.kind()),
            ("+78005553535", NumberKind::TollFree)
        );
    }

    #[test]
    fn italian_leading_zeros_are_kept() {
        let rome = ok("+39 06 1234 5678", None);
        assert_eq!((rome.e164(), rome.region()), ("+390612345678", "IT"));
        assert_eq!(rome.kind(), NumberKind::FixedLine);
        assert_eq!(ok("06 1234 5678", Some("IT")).e164(), "+390612345678");
        assert_eq!(ok("+39 312 345 6789", None).kind(), NumberKind::Mobile);
    }

    #[test]
    fn shared_calling_codes_get_the_right_region() {
        assert_eq!(ok("+1 604 555 0123", None).region(), "CA");
        assert_eq!(ok("(604) 555-0123", Some("US")).region(), "CA");
        assert_eq!(ok("+1 809 234 5678", None).region(), "DO");
        assert_eq!(ok("+44 7781 123456", None).region(), "GG");
        assert_eq!(ok("+7 701 123 4567", None).region(), "KZ");
        assert_eq!(ok("+800 1234 5678", None).region(), "001");
    }

    #[test]
    fn empty_input_is_refused() {
        assert_eq!(err("", None), PhoneError::Empty);
        assert_eq!(err("  ", Some("US")), PhoneError::Empty);
        assert_eq!(err("+ ()", None), PhoneError::Empty);
    }

    #[test]
    fn letters_and_other_characters_are_refused_by_name() {
        assert_eq!(
            err("+3367a829916", None),
            PhoneError::NotANumber { character: 'a' }
        );
        assert_eq!(
            err("1-800-FLOWERS", Some("US")),
            PhoneError::NotANumber { character: 'F' }
        );
        assert_eq!(
            err("415 555 2671 x12", Some("US")),
            PhoneError::NotANumber { character: 'x' }
        );
        assert_eq!(
            err("+44+7400123456", None),
            PhoneError::NotANumber { character: '+' }
        );
        assert_eq!(
            err("415\t555 2671", Some("US")),
            PhoneError::NotANumber { character: '\t' }
        );
        let message = err("+1 415 555 267l", None).to_string();
        assert!(
            message.contains("'l'") && message.contains("letter"),
            "{message}"
        );
    }

    #[test]
    fn national_input_without_a_region_is_refused() {
        assert_eq!(err("07400 123456", None), PhoneError::MissingCountry);
    }

    #[test]
    fn unknown_country_codes_are_refused() {
        assert_eq!(
            err("+999 1234 5678", None),
            PhoneError::UnknownCountryCode {
                digits: "999".into()
            }
        );
        let leading_zero = err("+0044 7400 123456", Some("GB"));
        assert!(leading_zero.to_string().contains("replace it with +"));
    }

    #[test]
    fn too_short_numbers_are_refused() {
        assert_eq!(
            err("+1 415 555 267", None),
            PhoneError::TooShort {
                region: Some("US".into()),
                min_digits: Some(10)
            }
        );
        assert!(matches!(err("12", Some("US")), PhoneError::TooShort { .. }));
        assert!(matches!(err("+44", None), PhoneError::TooShort { .. }));
    }

    #[test]
    fn too_long_numbers_are_refused() {
        // CRATES.md: the crate calls this valid.
        assert!(matches!(
            err("+97233142764978", None),
            PhoneError::TooLong { .. } | PhoneError::NotValidForRegion { .. }
        ));
        assert_eq!(
            err("+1 415 555 26711", None),
            PhoneError::TooLong {
                region: Some("US".into()),
                max_digits: Some(10)
            }
        );
        assert!(matches!(
            err(&"1".repeat(40), Some("US")),
            PhoneError::TooLong { .. }
        ));
    }

    #[test]
    fn numbers_outside_every_range_are_refused() {
        assert_eq!(
            err("+1 011 555 2671", None),
            PhoneError::NotValidForRegion {
                region: "US".into()
            }
        );
    }

    #[test]
    fn unknown_or_lower_case_default_regions_are_refused() {
        for given in ["XX", "us", "001", "USA", ""] {
            assert_eq!(
                err("415 555 2671", Some(given)),
                PhoneError::InvalidDefaultRegion {
                    given: given.into()
                }
            );
        }
        assert!(matches!(
            err("+14155552671", Some("ZZ")),
            PhoneError::InvalidDefaultRegion { .. }
        ));
    }

    #[test]
    fn trunk_prefixes_and_regional_rules_are_read_as_libphonenumber_reads_them() {
        let e164 = |input: &str, region: Option<&str>| {
            PhoneNumber::parse(input, region)
                .expect("a valid number")
                .e164()
                .to_owned()
        };
        assert_eq!(e164("+44 (0)7400 123456", None), "+447400123456");
        assert_eq!(e164("+7 8 800 555 35 35", None), "+78005553535");
        // Argentina's national mobile form: 15 after the area code becomes 9 before it.
        assert_eq!(e164("011 15 2345 6789", Some("AR")), "+5491123456789");
    }

    #[test]
    fn masking_keeps_country_code_first_group_and_last_two_digits() {
        assert_eq!(ok("+14155552671", None).masked(), "+1 415 *** **71");
        assert_eq!(ok("+447400123456", None).masked(), "+44 7400 ****56");
        assert_eq!(ok("+6834002", None).masked(), "+683 ****");
    }

    #[test]
    fn kinds_serialise_in_snake_case() {
        for kind in [
            NumberKind::FixedLineOrMobile,
            NumberKind::TollFree,
            NumberKind::Uan,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<NumberKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn serde_uses_the_e164_string_and_checks_its_shape() {
        let number = ok("+14155552671", None);
        assert_eq!(serde_json::to_string(&number).unwrap(), "\"+14155552671\"");
        let back: PhoneNumber = serde_json::from_str("\"+14155552671\"").unwrap();
        assert_eq!(back, number);
        for bad in [
            "\"14155552671\"",
            "\"+1 415 555 2671\"",
            "\"+0123456789\"",
            "\"+12\"",
        ] {
            assert!(serde_json::from_str::<PhoneNumber>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<PhoneNumber>("\"+9991234567\"").is_err());
        // Shape only: an unassigned range still loads, so old rows stay readable.
        let stored: PhoneNumber = serde_json::from_str("\"+10115552671\"").unwrap();
        assert_eq!(
            (stored.region(), stored.kind()),
            ("US", NumberKind::Unknown)
        );
    }

    #[test]
    fn no_region_allows_numbers_shorter_than_the_serde_minimum() {
        for meta in DATABASE.iter() {
            if let Some(&min) = general_lengths(meta).national.first() {
                let shortest = digit_count(meta.country_code()) + usize::from(min);
                assert!(
                    shortest >= MIN_E164_DIGITS,
                    "{} allows {shortest}",
                    meta.id()
                );
            }
        }
    }

    /// Valid numbers from the metadata's own examples, as (E.164, region, national prefix).
    fn examples() -> Vec<(String, String, Option<String>)> {
        let mut out: Vec<_> = DATABASE
            .iter()
            .flat_map(|meta| {
                let d = meta.descriptors();
                [d.mobile(), d.fixed_line()]
                    .into_iter()
                    .flatten()
                    .filter_map(|desc| desc.example())
                    .map(|nsn| {
                        (
                            format!("+{}{nsn}", meta.country_code()),
                            meta.id().to_owned(),
                            meta.national_prefix().map(str::to_owned),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|(e164, _, _)| PhoneNumber::parse(e164, None).is_ok())
            .collect();
        out.sort();
        out
    }

    static EXAMPLES: LazyLock<Vec<(String, String, Option<String>)>> = LazyLock::new(examples);

    #[test]
    fn nearly_every_metadata_example_is_accepted() {
        assert!(
            EXAMPLES.len() > 400,
            "only {} examples parse",
            EXAMPLES.len()
        );
    }

    fn separated(digits: &str, cuts: &[(usize, usize)]) -> String {
        const SEPARATORS: [&str; 7] = [" ", "-", ".", "/", "\u{a0}", " (", ") "];
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if let Some((_, sep)) = cuts.iter().find(|(at, _)| *at == i) {
                out.push_str(SEPARATORS[*sep % SEPARATORS.len()]);
            }
            out.push(c);
        }
        out
    }

    proptest! {
        #[test]
        fn separators_never_change_an_accepted_number(
            pick in 0usize..10_000,
            cuts in proptest::collection::vec((1usize..16, 0usize..7), 0..5),
        ) {
            let (e164, _, _) = &EXAMPLES[pick % EXAMPLES.len()];
            let typed = format!("+{}", separated(&e164[1..], &cuts));
            let number = PhoneNumber::parse(&typed, None).map_err(|e| {
                TestCaseError::fail(format!("{typed:?}: {e}"))
            })?;
            prop_assert_eq!(number.e164(), e164.as_str());
            let json = serde_json::to_string(&number).unwrap();
            prop_assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), number.clone());
            let masked = number.masked();
            let code = format!("+{} ", number.country_code());
            prop_assert!(masked.starts_with(&code), "{}", masked);
            prop_assert!(masked.chars().filter(|c| *c == '*').count() >= 3);
        }

        #[test]
        fn national_form_in_its_region_gives_the_same_number(
            pick in 0usize..10_000,
            cuts in proptest::collection::vec((1usize..14, 0usize..5), 0..4),
        ) {
            let (e164, region, prefix) = &EXAMPLES[pick % EXAMPLES.len()];
            let number = PhoneNumber::parse(e164, None).unwrap();
            let nsn = number.national_significant_number();
            let typed = separated(&format!("{}{nsn}", prefix.as_deref().unwrap_or("")), &cuts);
            // National forms can be ambiguous (a local number that looks like a prefixed one):
            // refusing is allowed, reading another number is not.
            if let Ok(national) = PhoneNumber::parse(&typed, Some(region)) {
                prop_assert_eq!(national.e164(), e164.as_str(), "{:?} in {}", typed, region);
            }
        }
    }
}
