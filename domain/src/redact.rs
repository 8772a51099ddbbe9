//! Phone numbers inside free text (Twilio's error messages name the recipient: "The 'To' number
//! +14155552671 is not a valid phone number"): such texts are stored and logged with the
//! numbers masked, as everything outside the encrypted column.

/// Fewest digits in a run that is taken for a phone number (shorter runs are codes, counts,
/// error numbers: `21211`, `30003`).
pub const MIN_NUMBER_DIGITS: usize = 7;

/// `text` with every phone-number-like run (7 or more digits, optionally led by `+` and broken
/// by spaces, `-`, `.`, `(`, `)`) masked except its last two digits:
/// `+14155552671` → `+*********71`.
pub fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i].is_ascii_digit() || (chars[i] == '+' && next_is_digit(&chars, i))) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits and separators, ending on a digit.
        let start = i;
        let mut end = i + 1;
        let mut last_digit = if chars[i].is_ascii_digit() { i } else { i + 1 };
        let mut j = i + 1;
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                last_digit = j;
                end = j + 1;
            } else if !matches!(c, ' ' | '-' | '.' | '(' | ')') {
                break;
            }
            j += 1;
        }
        end = end.max(last_digit + 1);
        let run = &chars[start..end];
        let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
        if digits >= MIN_NUMBER_DIGITS {
            let mut seen = 0;
            for &c in run {
                if c.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen > digits - 2 { c } else { '*' });
                } else {
                    out.push(c);
                }
            }
        } else {
            out.extend(run);
        }
        i = end;
    }
    out
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn twilio_error_texts_keep_their_codes_and_lose_the_numbers() {
        assert_eq!(
            mask_numbers("The 'To' number +14155552671 is not a valid phone number."),
            "The 'To' number +*********71 is not a valid phone number."
        );
        assert_eq!(
            mask_numbers("Attempt to send to unsubscribed recipient (21610) +1 (415) 555-2671"),
            "Attempt to send to unsubscribed recipient (21610) +* (***) ***-**71"
        );
        assert_eq!(
            mask_numbers("error 30003 after 2 tries"),
            "error 30003 after 2 tries"
        );
        assert_eq!(mask_numbers("0412 345 678."), "**** *** *78.");
        assert_eq!(mask_numbers("+ and 1234567"), "+ and *****67");
        assert_eq!(mask_numbers(""), "");
    }

    proptest! {
        #[test]
        fn no_run_of_seven_digits_survives(text in "[0-9 +()a-z.-]{0,60}") {
            let masked = mask_numbers(&text);
            prop_assert_eq!(masked.chars().count(), text.chars().count());
            let digits_in_a_row = masked
                .split(|c: char| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')')))
                .map(|run| run.chars().filter(char::is_ascii_digit).count())
                .max()
                .unwrap_or(0);
            prop_assert!(digits_in_a_row < MIN_NUMBER_DIGITS, "{masked}");
        }
    }
}
