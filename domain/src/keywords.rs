//! Opt-out, opt-in and help keywords in inbound messages, as Twilio's default handling sees them.
//!
//! Twilio acts on these words itself (after `STOP` it refuses to send to that number, error 21610),
//! so smsdesk must classify a body exactly as Twilio does, no more and no less: recording an
//! opt-out Twilio did not would silence a customer who still wants messages, and missing one would
//! show a consent state that Twilio contradicts.
//!
//! The rule: a body is a keyword only when, once surrounding white space is removed, it is exactly
//! one of the words below, in any letter case.
//! - "STOP please", "stop." and "STOP STOP" are [`Keyword::Other`]: any other character, punctuation
//!   included, means the sender wrote a sentence rather than a command.
//! - White space is every Unicode `White_Space` character (spaces, tabs, newlines, no-break space,
//!   ideographic space); invisible format characters such as a zero-width space are not white
//!   space and make the body `Other`.
//! - Letter case is compared on ASCII letters only: the keywords are ASCII, and Unicode case
//!   folding would make look-alikes such as the long s in "ſtop" or full-width "ＳＴＯＰ" count,
//!   which Twilio's matching is not documented to do.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    /// Stop sending to this number.
    OptOut,
    /// Start sending again after an opt-out.
    OptIn,
    /// Asks for help; Twilio answers with the help message.
    Help,
    /// An ordinary message.
    Other,
}

impl Keyword {
    /// The name stored with an incoming message: `opt_out`, `opt_in`, `help`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::OptOut => "opt_out",
            Keyword::OptIn => "opt_in",
            Keyword::Help => "help",
            Keyword::Other => "other",
        }
    }
}

/// One of Twilio's default keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeywordWord {
    /// `STOP` (opt-out).
    Stop,
    /// `STOPALL` (opt-out).
    StopAll,
    /// `UNSUBSCRIBE` (opt-out).
    Unsubscribe,
    /// `CANCEL` (opt-out).
    Cancel,
    /// `END` (opt-out).
    End,
    /// `QUIT` (opt-out).
    Quit,
    /// `REVOKE` (opt-out).
    Revoke,
    /// `OPTOUT` (opt-out).
    OptOut,
    /// `START` (opt-in).
    Start,
    /// `YES` (opt-in).
    Yes,
    /// `UNSTOP` (opt-in).
    Unstop,
    /// `HELP` (help).
    Help,
    /// `INFO` (help).
    Info,
}

impl KeywordWord {
    /// Every default keyword: opt-out words, then opt-in, then help.
    pub const ALL: [KeywordWord; 13] = [
        KeywordWord::Stop,
        KeywordWord::StopAll,
        KeywordWord::Unsubscribe,
        KeywordWord::Cancel,
        KeywordWord::End,
        KeywordWord::Quit,
        KeywordWord::Revoke,
        KeywordWord::OptOut,
        KeywordWord::Start,
        KeywordWord::Yes,
        KeywordWord::Unstop,
        KeywordWord::Help,
        KeywordWord::Info,
    ];

    /// The word in capitals, as Twilio lists it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordWord::Stop => "STOP",
            KeywordWord::StopAll => "STOPALL",
            KeywordWord::Unsubscribe => "UNSUBSCRIBE",
            KeywordWord::Cancel => "CANCEL",
            KeywordWord::End => "END",
            KeywordWord::Quit => "QUIT",
            KeywordWord::Revoke => "REVOKE",
            KeywordWord::OptOut => "OPTOUT",
            KeywordWord::Start => "START",
            KeywordWord::Yes => "YES",
            KeywordWord::Unstop => "UNSTOP",
            KeywordWord::Help => "HELP",
            KeywordWord::Info => "INFO",
        }
    }

    /// What the word asks for.
    pub fn keyword(self) -> Keyword {
        match self {
            KeywordWord::Stop
            | KeywordWord::StopAll
            | KeywordWord::Unsubscribe
            | KeywordWord::Cancel
            | KeywordWord::End
            | KeywordWord::Quit
            | KeywordWord::Revoke
            | KeywordWord::OptOut => Keyword::OptOut,
            KeywordWord::Start | KeywordWord::Yes | KeywordWord::Unstop => Keyword::OptIn,
            KeywordWord::Help | KeywordWord::Info => Keyword::Help,
        }
    }
}

impl fmt::Display for KeywordWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one inbound body: what it asks for and which word said so.
///
/// Built by [`classify`]; serialized as `{"keyword": "opt_out", "word": "STOP"}` (`"word": null`
/// for [`Keyword::Other`]). Deserializing checks that the two agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "ClassificationRepr", try_from = "ClassificationRepr")]
pub struct Classification {
    // The keyword follows from the word, so only the word is stored.
    word: Option<KeywordWord>,
}

impl Classification {
    /// What the body asks for.
    pub fn keyword(self) -> Keyword {
        self.word.map_or(Keyword::Other, KeywordWord::keyword)
    }

    /// The keyword the body consists of, or `None` for [`Keyword::Other`].
    pub fn word(self) -> Option<KeywordWord> {
        self.word
    }
}

/// The wire form of a [`Classification`], with the keyword spelled out for readers of the JSON.
#[derive(Serialize, Deserialize)]
struct ClassificationRepr {
    keyword: Keyword,
    word: Option<KeywordWord>,
}

/// A serialized classification whose keyword does not match its word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "keyword {keyword:?} does not match word {word:?}: the keyword must be the word's kind, or \"other\" with no word"
)]
pub struct InconsistentClassification {
    keyword: Keyword,
    word: Option<KeywordWord>,
}

impl From<Classification> for ClassificationRepr {
    fn from(classification: Classification) -> Self {
        ClassificationRepr {
            keyword: classification.keyword(),
            word: classification.word,
        }
    }
}

impl TryFrom<ClassificationRepr> for Classification {
    type Error = InconsistentClassification;

    fn try_from(repr: ClassificationRepr) -> Result<Self, Self::Error> {
        let classification = Classification { word: repr.word };
        if classification.keyword() == repr.keyword {
            Ok(classification)
        } else {
            Err(InconsistentClassification {
                keyword: repr.keyword,
                word: repr.word,
            })
        }
    }
}

/// Classifies an inbound message body (see the module documentation for the exact rule).
pub fn classify(body: &str) -> Classification {
    let trimmed = body.trim();
    let word = KeywordWord::ALL
        .into_iter()
        .find(|word| trimmed.eq_ignore_ascii_case(word.as_str()));
    Classification { word }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keyword(body: &str) -> Keyword {
        classify(body).keyword()
    }

    #[test]
    fn twilio_default_lists_map_to_their_keywords() {
        let opt_out = [
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
        ];
        for body in opt_out {
            assert_eq!(keyword(body), Keyword::OptOut, "{body}");
        }
        for body in ["START", "YES", "UNSTOP"] {
            assert_eq!(keyword(body), Keyword::OptIn, "{body}");
        }
        for body in ["HELP", "INFO"] {
            assert_eq!(keyword(body), Keyword::Help, "{body}");
        }
    }

    #[test]
    fn the_matched_word_is_reported() {
        assert_eq!(
            classify("unsubscribe").word(),
            Some(KeywordWord::Unsubscribe)
        );
        assert_eq!(classify("Info").word(), Some(KeywordWord::Info));
        assert_eq!(classify("hello").word(), None);
    }

    #[test]
    fn letter_case_does_not_matter() {
        for body in ["stop", "Stop", "sToP", "STOP"] {
            assert_eq!(classify(body).word(), Some(KeywordWord::Stop), "{body}");
        }
    }

    #[test]
    fn surrounding_white_space_is_ignored_including_newlines_and_unicode_spaces() {
        for body in [
            "  stop",
            "stop\n",
            "\r\n\tSTOP \r\n",
            "\u{a0}stop\u{3000}",
            "\u{2028}Stop\u{85}",
        ] {
            assert_eq!(classify(body).word(), Some(KeywordWord::Stop), "{body:?}");
        }
    }

    #[test]
    fn stop_followed_by_more_words_is_not_an_opt_out() {
        assert_eq!(keyword("STOP please"), Keyword::Other);
        assert_eq!(keyword("please stop"), Keyword::Other);
        assert_eq!(keyword("STOP STOP"), Keyword::Other);
        assert_eq!(keyword("stop\nstop"), Keyword::Other);
    }

    #[test]
    fn punctuation_makes_a_keyword_an_ordinary_message() {
        assert_eq!(keyword("stop."), Keyword::Other);
        assert_eq!(keyword("STOP!"), Keyword::Other);
        assert_eq!(keyword("\"stop\""), Keyword::Other);
        assert_eq!(keyword("help?"), Keyword::Other);
    }

    #[test]
    fn a_space_inside_a_keyword_makes_it_an_ordinary_message() {
        assert_eq!(keyword("OPT OUT"), Keyword::Other);
        assert_eq!(keyword("STOP ALL"), Keyword::Other);
        assert_eq!(keyword("S TOP"), Keyword::Other);
    }

    #[test]
    fn look_alike_letters_and_invisible_characters_do_not_match() {
        assert_eq!(keyword("ſtop"), Keyword::Other); // long s
        assert_eq!(keyword("ＳＴＯＰ"), Keyword::Other); // full width
        assert_eq!(keyword("ЅТОР"), Keyword::Other); // Cyrillic
        assert_eq!(keyword("stop\u{200b}"), Keyword::Other); // zero-width space
    }

    #[test]
    fn empty_and_blank_bodies_are_ordinary_messages() {
        assert_eq!(classify("").word(), None);
        assert_eq!(keyword(" \n "), Keyword::Other);
    }

    #[test]
    fn words_that_merely_contain_a_keyword_are_ordinary_messages() {
        for body in [
            "STOPPED",
            "yesterday",
            "ending",
            "helpful",
            "STOPALLL",
            "unstoppable",
        ] {
            assert_eq!(keyword(body), Keyword::Other, "{body}");
        }
    }

    #[test]
    fn classification_serializes_with_keyword_and_word() {
        let json = serde_json::to_string(&classify(" Stop ")).unwrap();
        assert_eq!(json, r#"{"keyword":"opt_out","word":"STOP"}"#);
        let json = serde_json::to_string(&classify("hi")).unwrap();
        assert_eq!(json, r#"{"keyword":"other","word":null}"#);
        let back: Classification =
            serde_json::from_str(r#"{"keyword":"help","word":"INFO"}"#).unwrap();
        assert_eq!(back, classify("info"));
    }

    #[test]
    fn classification_whose_keyword_contradicts_its_word_is_rejected() {
        let error = serde_json::from_str::<Classification>(r#"{"keyword":"help","word":"STOP"}"#)
            .unwrap_err();
        assert!(error.to_string().contains("does not match"), "{error}");
        assert!(
            serde_json::from_str::<Classification>(r#"{"keyword":"opt_out","word":null}"#).is_err()
        );
    }

    /// A keyword spelled in random letter case.
    fn any_case_word() -> impl Strategy<Value = (KeywordWord, String)> {
        (
            proptest::sample::select(KeywordWord::ALL.to_vec()),
            any::<u64>(),
        )
            .prop_map(|(word, bits)| {
                let spelled = word
                    .as_str()
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if bits >> (i % 64) & 1 == 1 {
                            c.to_ascii_lowercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                (word, spelled)
            })
    }

    fn white_space() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec![
                ' ', '\t', '\n', '\r', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2029}',
            ]),
            0..4,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn a_keyword_in_any_case_surrounded_by_white_space_is_recognised(
            (word, spelled) in any_case_word(),
            before in white_space(),
            after in white_space(),
        ) {
            let result = classify(&format!("{before}{spelled}{after}"));
            prop_assert_eq!(result.word(), Some(word));
            prop_assert_eq!(result.keyword(), word.keyword());
        }

        #[test]
        fn a_keyword_with_anything_else_attached_is_other(
            (_, spelled) in any_case_word(),
            extra in "[^\\s]{1,5}",
            in_front in any::<bool>(),
        ) {
            let body = if in_front { format!("{extra}{spelled}") } else { format!("{spelled}{extra}") };
            let mut words = KeywordWord::ALL.iter().map(|w| w.as_str());
            prop_assume!(!words.any(|w| body.eq_ignore_ascii_case(w)));
            prop_assert_eq!(keyword(&body), Keyword::Other);
        }

        #[test]
        fn keyword_and_word_always_agree(body in "\\PC{0,20}") {
            let result = classify(&body);
            prop_assert_eq!(result.keyword(), result.word().map_or(Keyword::Other, KeywordWord::keyword));
        }

        #[test]
        fn classification_survives_a_serde_round_trip(body in "(?i)(stop|yes|help|info|hello)?\\s{0,2}") {
            let result = classify(&body);
            let json = serde_json::to_string(&result).unwrap();
            prop_assert_eq!(serde_json::from_str::<Classification>(&json).unwrap(), result);
        }
    }
}
