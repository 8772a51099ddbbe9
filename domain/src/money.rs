//! Money: exact amounts in micro-dollars, and Twilio's price strings.
//!
//! Twilio quotes prices with up to five decimals (`"-0.00830"`) and a budget is a sum of thousands of
//! them, so binary floating point would drift: smsdesk counts whole millionths of a dollar in an
//! `i64` instead (enough for ±9.2 trillion dollars) and every operation that could overflow says so.
//!
//! **Sign.** A [`Money`] is signed the way a ledger is: a cost, a spend or a budget is positive.
//! Twilio's `price` field is the opposite (a charge is negative), so it enters only through
//! [`Money::from_twilio_price`], which flips the sign once, at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Micro-dollars in one US dollar.
pub const MICROS_PER_DOLLAR: i64 = 1_000_000;

/// Decimal places a [`Money`] holds exactly.
const SCALE: usize = 6;

/// An amount of US dollars, exact to the millionth.
///
/// Serialized as the integer number of micro-dollars (`8300` for $0.0083), so the server, the
/// database and the browser never round-trip through a decimal string or a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

/// Why a string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Nothing was written.
    #[error("the amount is empty: write a number such as 0.0083")]
    Empty,
    /// A character that has no place in a plain decimal amount.
    #[error(
        "{found:?} (character {position}) is not allowed in an amount: write digits with an optional leading '-' and at most one '.', such as -0.00830"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its position, counted in characters from 1, for pointing at it in a form.
        position: usize,
    },
    /// `1e6` or `8.3E-3`: exact amounts are written out.
    #[error(
        "exponent notation is not accepted: write the amount out in full, such as 0.0083 rather than 8.3e-3"
    )]
    Exponent,
    /// `.5`, `5.` or a lone `-`.
    #[error("a digit is missing before or after the decimal point: write 0.5 rather than .5 or 5.")]
    MissingDigit,
    /// A non-zero digit past the sixth decimal, which would have to be rounded.
    #[error(
        "the amount has {decimals} decimal places and smsdesk counts money in millionths of a dollar: round it to at most 6 decimal places"
    )]
    TooPrecise {
        /// Decimal places up to the last non-zero digit.
        decimals: usize,
    },
    /// Beyond what an `i64` of micro-dollars holds.
    #[error(
        "the amount is too large: smsdesk handles amounts from -9,223,372,036,854.775808 to 9,223,372,036,854.775807 dollars"
    )]
    Overflow,
}

impl Money {
    /// No money at all.
    pub const ZERO: Money = Money(0);

    /// An amount from a count of micro-dollars (as stored and serialized).
    pub const fn from_micros(micros: i64) -> Money {
        Money(micros)
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Parses a plain decimal amount of dollars, exactly: `"12.5"`, `"-0.00830"`, `"3"`.
    ///
    /// Accepts an optional leading `-`, at least one digit before the point and, if there is a
    /// point, at least one after it. Digits past the sixth decimal are accepted only when they are
    /// zeros, because anything else would have to be rounded and money is never rounded silently.
    /// Rejects everything else (spaces, `+`, `$`, thousands separators, exponents) with a reason.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        if input.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let sign_len = input.len() - unsigned.len();

        // Check every character first, so the reason names the first offending one.
        let mut seen_point = false;
        for (index, found) in unsigned.chars().enumerate() {
            match found {
                '0'..='9' => {}
                '.' if !seen_point => seen_point = true,
                'e' | 'E' => return Err(MoneyError::Exponent),
                _ => {
                    return Err(MoneyError::InvalidCharacter {
                        found,
                        position: sign_len + index + 1,
                    });
                }
            }
        }

        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        if whole.is_empty() || (seen_point && fraction.is_empty()) {
            return Err(MoneyError::MissingDigit);
        }
        let (kept, dropped) = fraction.split_at(fraction.len().min(SCALE));
        if dropped.bytes().any(|digit| digit != b'0') {
            return Err(MoneyError::TooPrecise {
                decimals: fraction.trim_end_matches('0').len(),
            });
        }

        // Accumulate towards the sign of the result so that i64::MIN micro-dollars parses too.
        let step = |acc: i64, digit: u8| -> Option<i64> {
            let digit = i64::from(digit - b'0');
            let shifted = acc.checked_mul(10)?;
            if negative {
                shifted.checked_sub(digit)
            } else {
                shifted.checked_add(digit)
            }
        };
        let padding = std::iter::repeat_n(b'0', SCALE - kept.len());
        whole
            .bytes()
            .chain(kept.bytes())
            .chain(padding)
            .try_fold(0_i64, step)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    /// The cost of a message from Twilio's `price` field: `"-0.00830"` costs `$0.0083`.
    ///
    /// Twilio reports a charge as a negative price, smsdesk's ledger counts a cost as positive, so
    /// the sign is flipped here and nowhere else. A positive price (a credit) becomes a negative
    /// cost; `"0.00000"` is free. A `null` price means "not known yet": keep it as `None` before
    /// calling this.
    pub fn from_twilio_price(price: &str) -> Result<Money, MoneyError> {
        let price = Money::parse(price)?;
        price.0.checked_neg().map(Money).ok_or(MoneyError::Overflow)
    }

    /// A cost as Twilio writes a message's `price`: negated, at least five decimals
    /// (`$0.0083` is `"-0.00830"`; nothing is `"0.00000"`), the inverse of
    /// [`Money::from_twilio_price`].
    pub fn to_twilio_price(self) -> String {
        let magnitude = self.0.unsigned_abs();
        let per_dollar = MICROS_PER_DOLLAR.unsigned_abs();
        let digits = format!("{:06}", magnitude % per_dollar);
        let decimals = if digits.ends_with('0') {
            &digits[..5]
        } else {
            &digits[..]
        };
        let sign = if self.0 > 0 { "-" } else { "" };
        format!("{sign}{}.{decimals}", magnitude / per_dollar)
    }

    /// Dollars as a plain decimal string, as the JSON API writes them: `0.0083`, `-1.50`.
    pub fn to_decimal(self) -> String {
        self.to_string().replacen('$', "", 1)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// `self × factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }

    /// The price of a message of `segments` segments at `self` per segment: Twilio bills every
    /// segment, so a 2-segment message costs twice. `None` on overflow.
    pub fn for_segments(self, segments: u32) -> Option<Money> {
        self.checked_mul(i64::from(segments))
    }

    /// The total of `amounts`, or `None` if any partial sum overflows.
    ///
    /// (Not `std::iter::Sum`, which cannot report an overflow.)
    pub fn checked_sum<I>(amounts: I) -> Option<Money>
    where
        I: IntoIterator<Item = Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |total, amount| total.checked_add(amount))
    }

    /// Whether the amount is below zero (a credit, or an overspent budget).
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Same as [`Money::parse`].
    fn from_str(input: &str) -> Result<Money, MoneyError> {
        Money::parse(input)
    }
}

impl fmt::Display for Money {
    /// Dollars with as many decimals as the amount needs, but at least two: `$1.00`, `$0.0083`,
    /// `$12.345678`, `-$0.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // unsigned_abs, because i64::MIN has no positive i64 counterpart.
        let magnitude = self.0.unsigned_abs();
        let per_dollar = MICROS_PER_DOLLAR.unsigned_abs();
        let dollars = magnitude / per_dollar;
        let micros = magnitude % per_dollar;
        let digits = format!("{micros:06}");
        let decimals = digits.trim_end_matches('0');
        let decimals = if decimals.len() < 2 {
            &digits[..2]
        } else {
            decimals
        };
        let sign = if self.is_negative() { "-" } else { "" };
        write!(f, "{sign}${dollars}.{decimals}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(input: &str) -> Result<Money, MoneyError> {
        Money::parse(input)
    }

    #[test]
    fn twilio_prices_are_negated_with_at_least_five_decimals_and_read_back() {
        for (micros, twilio) in [
            (8_300, "-0.00830"),
            (0, "0.00000"),
            (1_500_000, "-1.50000"),
            (8_301, "-0.008301"),
            (-790, "0.00079"),
        ] {
            let money = Money::from_micros(micros);
            assert_eq!(money.to_twilio_price(), twilio);
            assert_eq!(Money::from_twilio_price(twilio), Ok(money));
        }
        assert_eq!(Money::from_micros(8_300).to_decimal(), "0.0083");
        assert_eq!(Money::from_micros(-1_500_000).to_decimal(), "-1.50");
    }

    #[test]
    fn twilio_charge_becomes_a_positive_cost() {
        assert_eq!(
            Money::from_twilio_price("-0.00830"),
            Ok(Money::from_micros(8_300))
        );
        assert_eq!(
            Money::from_twilio_price("-0.0079"),
            Ok(Money::from_micros(7_900))
        );
    }

    #[test]
    fn twilio_zero_price_is_free_and_a_positive_price_is_a_credit() {
        assert_eq!(Money::from_twilio_price("0.00000"), Ok(Money::ZERO));
        assert_eq!(Money::from_twilio_price("-0.00000"), Ok(Money::ZERO));
        assert_eq!(
            Money::from_twilio_price("0.01"),
            Ok(Money::from_micros(-10_000))
        );
    }

    #[test]
    fn twilio_price_that_cannot_be_negated_is_an_overflow() {
        assert_eq!(
            Money::from_twilio_price("-9223372036854.775808"),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse("0"), Ok(Money::ZERO));
        assert_eq!(parse("3"), Ok(Money::from_micros(3_000_000)));
        assert_eq!(parse("12.5"), Ok(Money::from_micros(12_500_000)));
        assert_eq!(parse("12.345678"), Ok(Money::from_micros(12_345_678)));
        assert_eq!(parse("-0.000001"), Ok(Money::from_micros(-1)));
        assert_eq!(parse("007.10"), Ok(Money::from_micros(7_100_000)));
    }

    #[test]
    fn zeros_past_the_sixth_decimal_are_accepted() {
        assert_eq!(parse("0.008300000"), Ok(Money::from_micros(8_300)));
    }

    #[test]
    fn the_extremes_of_i64_parse() {
        assert_eq!(
            parse("9223372036854.775807"),
            Ok(Money::from_micros(i64::MAX))
        );
        assert_eq!(
            parse("-9223372036854.775808"),
            Ok(Money::from_micros(i64::MIN))
        );
    }

    #[test]
    fn empty_amount_is_rejected() {
        assert_eq!(parse(""), Err(MoneyError::Empty));
    }

    #[test]
    fn a_seventh_significant_decimal_is_rejected_rather_than_rounded() {
        assert_eq!(
            parse("0.0000001"),
            Err(MoneyError::TooPrecise { decimals: 7 })
        );
        assert_eq!(
            parse("1.12345670"),
            Err(MoneyError::TooPrecise { decimals: 7 })
        );
    }

    #[test]
    fn exponent_notation_is_rejected() {
        assert_eq!(parse("8.3e-3"), Err(MoneyError::Exponent));
        assert_eq!(parse("1E6"), Err(MoneyError::Exponent));
    }

    #[test]
    fn garbage_is_rejected_naming_the_first_bad_character() {
        assert_eq!(
            parse("abc"),
            Err(MoneyError::InvalidCharacter {
                found: 'a',
                position: 1
            })
        );
        assert_eq!(
            parse("$1.00"),
            Err(MoneyError::InvalidCharacter {
                found: '$',
                position: 1
            })
        );
        assert_eq!(
            parse("1,000.00"),
            Err(MoneyError::InvalidCharacter {
                found: ',',
                position: 2
            })
        );
        assert_eq!(
            parse("-1.2.3"),
            Err(MoneyError::InvalidCharacter {
                found: '.',
                position: 5
            })
        );
    }

    #[test]
    fn surrounding_spaces_are_rejected() {
        assert_eq!(
            parse(" 1.00"),
            Err(MoneyError::InvalidCharacter {
                found: ' ',
                position: 1
            })
        );
        assert_eq!(
            parse("1.00\n"),
            Err(MoneyError::InvalidCharacter {
                found: '\n',
                position: 5
            })
        );
    }

    #[test]
    fn signs_other_than_one_leading_minus_are_rejected() {
        assert_eq!(
            parse("+1"),
            Err(MoneyError::InvalidCharacter {
                found: '+',
                position: 1
            })
        );
        assert_eq!(
            parse("--1"),
            Err(MoneyError::InvalidCharacter {
                found: '-',
                position: 2
            })
        );
        assert_eq!(
            parse("1-"),
            Err(MoneyError::InvalidCharacter {
                found: '-',
                position: 2
            })
        );
    }

    #[test]
    fn non_ascii_digits_are_rejected() {
        assert_eq!(
            parse("１"),
            Err(MoneyError::InvalidCharacter {
                found: '１',
                position: 1
            })
        );
    }

    #[test]
    fn a_missing_digit_around_the_point_is_rejected() {
        assert_eq!(parse(".5"), Err(MoneyError::MissingDigit));
        assert_eq!(parse("5."), Err(MoneyError::MissingDigit));
        assert_eq!(parse("-"), Err(MoneyError::MissingDigit));
        assert_eq!(parse("."), Err(MoneyError::MissingDigit));
    }

    #[test]
    fn amounts_beyond_i64_are_rejected_as_overflow() {
        assert_eq!(parse("9223372036854.775808"), Err(MoneyError::Overflow));
        assert_eq!(parse("-9223372036854.775809"), Err(MoneyError::Overflow));
        assert_eq!(parse("99999999999999999999"), Err(MoneyError::Overflow));
    }

    #[test]
    fn rejection_messages_tell_the_person_what_to_write() {
        let message = parse("8.3e-3").unwrap_err().to_string();
        assert!(message.contains("0.0083"), "{message}");
        let message = parse("0.0000001").unwrap_err().to_string();
        assert!(message.contains("6 decimal places"), "{message}");
    }

    #[test]
    fn display_keeps_two_decimals_and_trims_the_rest() {
        let shown = |micros| Money::from_micros(micros).to_string();
        assert_eq!(shown(0), "$0.00");
        assert_eq!(shown(1_000_000), "$1.00");
        assert_eq!(shown(8_300), "$0.0083");
        assert_eq!(shown(12_345_678), "$12.345678");
        assert_eq!(shown(100_000), "$0.10");
        assert_eq!(shown(-500_000), "-$0.50");
        assert_eq!(shown(-1), "-$0.000001");
        assert_eq!(shown(i64::MIN), "-$9223372036854.775808");
    }

    #[test]
    fn money_serializes_as_integer_micro_dollars() {
        let json = serde_json::to_string(&Money::from_micros(8_300)).unwrap();
        assert_eq!(json, "8300");
        let back: Money = serde_json::from_str("-500000").unwrap();
        assert_eq!(back, Money::from_micros(-500_000));
    }

    #[test]
    fn arithmetic_reports_overflow_as_none() {
        let max = Money::from_micros(i64::MAX);
        assert_eq!(max.checked_add(Money::from_micros(1)), None);
        assert_eq!(
            Money::from_micros(i64::MIN).checked_sub(Money::from_micros(1)),
            None
        );
        assert_eq!(max.checked_mul(2), None);
        assert_eq!(max.for_segments(2), None);
        assert_eq!(Money::checked_sum([max, Money::from_micros(1)]), None);
    }

    #[test]
    fn a_two_segment_message_costs_twice_the_segment_price() {
        let per_segment = Money::from_twilio_price("-0.00830").unwrap();
        assert_eq!(
            per_segment.for_segments(2),
            Some(Money::from_micros(16_600))
        );
        assert_eq!(per_segment.for_segments(0), Some(Money::ZERO));
    }

    #[test]
    fn the_sum_of_nothing_is_zero() {
        assert_eq!(Money::checked_sum([]), Some(Money::ZERO));
    }

    /// Any decimal string the parser should accept, with the micro-dollars it means.
    fn decimal() -> impl Strategy<Value = (String, i64)> {
        (any::<i64>(), 0_usize..=6, 0_usize..4).prop_map(|(micros, decimals, extra_zeros)| {
            let magnitude = micros.unsigned_abs();
            let whole = magnitude / 1_000_000;
            let fraction = format!("{:06}", magnitude % 1_000_000);
            let (kept, dropped) = fraction.split_at(decimals);
            // Only keep amounts that this many decimals can represent exactly.
            let exact = dropped.bytes().all(|digit| digit == b'0');
            let fraction = if exact { kept } else { fraction.as_str() };
            let sign = if micros < 0 { "-" } else { "" };
            let mut text = format!("{sign}{whole}");
            if !fraction.is_empty() || extra_zeros > 0 {
                text.push('.');
                text.push_str(fraction);
                text.extend(std::iter::repeat_n('0', extra_zeros));
            }
            (text, micros)
        })
    }

    proptest! {
        #[test]
        fn every_representable_decimal_parses_to_its_exact_value((text, micros) in decimal()) {
            prop_assert_eq!(parse(&text), Ok(Money::from_micros(micros)));
        }

        #[test]
        fn display_parses_back_to_the_same_amount(micros in any::<i64>()) {
            let money = Money::from_micros(micros);
            let shown = money.to_string();
            prop_assert_eq!(parse(&shown.replacen('$', "", 1)), Ok(money));
        }

        #[test]
        fn display_has_at_least_two_and_at_most_six_decimals(micros in any::<i64>()) {
            let shown = Money::from_micros(micros).to_string();
            let (_, decimals) = shown.split_once('.').unwrap();
            prop_assert!((2..=6).contains(&decimals.len()), "{}", shown);
            prop_assert!(decimals.len() == 2 || !decimals.ends_with('0'), "{}", shown);
        }

        #[test]
        fn twilio_price_is_the_negated_decimal(micros in (i64::MIN + 1)..=i64::MAX) {
            let price = Money::from_micros(micros).to_string().replacen('$', "", 1);
            prop_assert_eq!(Money::from_twilio_price(&price), Ok(Money::from_micros(-micros)));
        }

        #[test]
        fn checked_arithmetic_agrees_with_wide_integers(a in any::<i64>(), b in any::<i64>(), n in any::<u32>()) {
            let (x, y) = (Money::from_micros(a), Money::from_micros(b));
            let fits = |wide: i128| i64::try_from(wide).ok().map(Money::from_micros);
            prop_assert_eq!(x.checked_add(y), fits(i128::from(a) + i128::from(b)));
            prop_assert_eq!(x.checked_sub(y), fits(i128::from(a) - i128::from(b)));
            prop_assert_eq!(x.checked_mul(b), fits(i128::from(a) * i128::from(b)));
            prop_assert_eq!(x.for_segments(n), fits(i128::from(a) * i128::from(n)));
        }

        #[test]
        fn checked_sum_equals_the_exact_total_when_it_fits(amounts in proptest::collection::vec(-1_000_000_000_i64..1_000_000_000, 0..50)) {
            let total: i64 = amounts.iter().sum();
            let sum = Money::checked_sum(amounts.into_iter().map(Money::from_micros));
            prop_assert_eq!(sum, Some(Money::from_micros(total)));
        }

        #[test]
        fn parser_never_panics(input in "\\PC{0,30}") {
            let _ = parse(&input);
        }
    }
}
