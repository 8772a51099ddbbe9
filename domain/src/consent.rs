//! The consent ledger's rules that need no database: the hash chain that makes an edited entry
//! findable, the replies Twilio sends by default to its keywords, and the TwiML smsdesk answers
//! the incoming-message webhook with.
//!
//! Each ledger entry stores the hash of the entry before it and its own hash over that and its
//! fields. Changing, removing or reordering an entry breaks the chain at that entry: [`verify`]
//! names the first entry that does not follow.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "";

/// What an entry's hash covers: everything it says, and the entry before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFields<'a> {
    pub phone_hash: &'a str,
    pub action: &'a str,
    pub source: &'a str,
    pub evidence: &'a str,
    pub at: i64,
}

/// The hash of an entry (lowercase hex SHA-256) following the entry hashed `prev`. Each field is
/// prefixed with its length, so no two different entries hash the same text.
pub fn entry_hash(prev: &str, e: &EntryFields<'_>) -> String {
    let mut d = Sha256::new();
    for part in [prev, e.phone_hash, e.action, e.source, e.evidence] {
        d.update((part.len() as u64).to_be_bytes());
        d.update(part.as_bytes());
    }
    d.update(e.at.to_be_bytes());
    hex::encode(d.finalize())
}

/// One stored entry as [`verify`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry<'a> {
    pub id: i64,
    pub fields: EntryFields<'a>,
    pub prev_hash: Option<&'a str>,
    pub entry_hash: Option<&'a str>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error(
        "entry {id} does not follow the entry before it (one was removed, inserted or reordered there)"
    )]
    Link { id: i64 },
    #[error("entry {id} was changed after it was written (its hash does not match its fields)")]
    Changed { id: i64 },
}

/// Checks entries in ledger order. `Ok(n)`: all `n` entries follow one another.
pub fn verify<'a>(entries: impl IntoIterator<Item = StoredEntry<'a>>) -> Result<u64, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for e in entries {
        verify_next(&prev, &e)?;
        prev = e.entry_hash.unwrap_or_default().to_owned();
        n += 1;
    }
    Ok(n)
}

/// Checks that `e` follows the entry hashed `prev` and that its hash matches its fields.
pub fn verify_next(prev: &str, e: &StoredEntry<'_>) -> Result<(), ChainBreak> {
    if e.prev_hash != Some(prev) {
        return Err(ChainBreak::Link { id: e.id });
    }
    if e.entry_hash != Some(entry_hash(prev, &e.fields).as_str()) {
        return Err(ChainBreak::Changed { id: e.id });
    }
    Ok(())
}

/// Twilio's default reply to an opt-out keyword.
pub const OPT_OUT_REPLY: &str = "You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe.";
/// Twilio's default reply to an opt-in keyword.
pub const OPT_IN_REPLY: &str = "You have successfully been re-subscribed to messages from this number. Reply STOP to unsubscribe.";
/// Twilio's default reply to a help keyword.
pub const HELP_REPLY: &str = "Reply STOP to unsubscribe. Msg&Data Rates May Apply.";

/// The TwiML answer to an incoming message: `<Response/>`, or one `<Message>` with `reply`.
pub fn twiml(reply: Option<&str>) -> String {
    const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    match reply {
        None => format!("{HEAD}<Response/>"),
        Some(text) => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&apos;"),
                    c => escaped.push(c),
                }
            }
            format!("{HEAD}<Response><Message>{escaped}</Message></Response>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keywords::Keyword;

    fn fields(evidence: &str, at: i64) -> EntryFields<'_> {
        EntryFields {
            phone_hash: "h1",
            action: "opt_out",
            source: "inbound:SM1",
            evidence,
            at,
        }
    }

    fn chain<'a>(list: &'a [EntryFields<'a>], hashes: &'a mut Vec<String>) -> Vec<StoredEntry<'a>> {
        let mut prev = GENESIS.to_owned();
        for f in list {
            let h = entry_hash(&prev, f);
            hashes.push(prev.clone());
            hashes.push(h.clone());
            prev = h;
        }
        list.iter()
            .enumerate()
            .map(|(i, f)| StoredEntry {
                id: i as i64 + 1,
                fields: *f,
                prev_hash: Some(hashes[2 * i].as_str()),
                entry_hash: Some(hashes[2 * i + 1].as_str()),
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_every_kind_of_tampering_is_named() {
        let list = [fields("STOP", 1), fields("START", 2), fields("STOP", 3)];
        let mut hashes = Vec::new();
        let entries = chain(&list, &mut hashes);
        assert_eq!(verify(entries.clone()), Ok(3));
        assert_eq!(verify(Vec::new()), Ok(0));

        let mut changed = entries.clone();
        changed[1].fields.evidence = "YES";
        assert_eq!(verify(changed), Err(ChainBreak::Changed { id: 2 }));

        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify(removed), Err(ChainBreak::Link { id: 3 }));

        let mut swapped = entries.clone();
        swapped.swap(0, 1);
        assert_eq!(verify(swapped), Err(ChainBreak::Link { id: 2 }));

        let mut unsealed = entries;
        unsealed[2].entry_hash = None;
        assert_eq!(verify(unsealed), Err(ChainBreak::Changed { id: 3 }));
    }

    #[test]
    fn fields_cannot_be_shifted_into_one_another() {
        let a = EntryFields {
            phone_hash: "ab",
            action: "c",
            ..fields("x", 1)
        };
        let b = EntryFields {
            phone_hash: "a",
            action: "bc",
            ..fields("x", 1)
        };
        assert_ne!(entry_hash(GENESIS, &a), entry_hash(GENESIS, &b));
        assert_eq!(entry_hash(GENESIS, &a).len(), 64);
    }

    #[test]
    fn twiml_escapes_the_reply_and_answers_nothing_with_an_empty_response() {
        assert_eq!(
            twiml(None),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
        );
        assert_eq!(
            twiml(Some(HELP_REPLY)),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Reply STOP to unsubscribe. Msg&amp;Data Rates May Apply.</Message></Response>"#
        );
        let replies = crate::sending::KeywordReplies::default();
        assert_eq!(replies.to(Keyword::Other), None);
        assert_eq!(replies.to(Keyword::OptOut), Some(OPT_OUT_REPLY));
        let emptied = crate::sending::KeywordReplies {
            help: " ".to_owned(),
            ..replies
        };
        assert_eq!(
            emptied.to(Keyword::Help),
            None,
            "an emptied reply answers nothing"
        );
    }
}
