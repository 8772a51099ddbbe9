//! Phone numbers at rest: encrypted with AES-256-GCM, and looked up by a keyed hash (HMAC-SHA256)
//! so that "has this number opted out?" needs no decryption and the table reveals nothing.
//!
//! Both keys are derived from `SMSDESK_DATA_KEY` with HMAC-SHA256 and distinct labels, so one
//! setting serves both purposes without reusing a key for two algorithms. Stored form:
//! `v1:` + base64(nonce ‖ ciphertext ‖ tag), a fresh random 96-bit nonce per value.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The keys derived from the data key. `Debug` shows nothing of them.
#[derive(Clone)]
pub struct DataKey {
    cipher: Aes256Gcm,
    lookup: Hmac<Sha256>,
    /// Derives each verification's code from its sid (see [`DataKey::verification_code`]).
    codes: Hmac<Sha256>,
    /// Hashes a verification's code for storage.
    code_hashes: Hmac<Sha256>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the stored value is not in smsdesk's encrypted format (v1)")]
    Format,
    #[error(
        "the stored value does not decrypt with this SMSDESK_DATA_KEY: the key changed, or the value was altered"
    )]
    Decrypt,
}

fn derive(data_key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(data_key).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl DataKey {
    pub fn new(data_key: &[u8; 32]) -> DataKey {
        let encryption = derive(data_key, b"smsdesk phone encryption v1");
        let lookup = derive(data_key, b"smsdesk phone lookup v1");
        let hmac = |label: &[u8]| {
            <Hmac<Sha256> as Mac>::new_from_slice(&derive(data_key, label))
                .expect("HMAC takes any key length")
        };
        DataKey {
            cipher: Aes256Gcm::new_from_slice(&encryption).expect("a 32-byte key"),
            lookup: <Hmac<Sha256> as Mac>::new_from_slice(&lookup)
                .expect("HMAC takes any key length"),
            codes: hmac(b"smsdesk verification code v1"),
            code_hashes: hmac(b"smsdesk verification code hash v1"),
        }
    }

    /// Encrypts a value for storage.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    /// Decrypts a stored value; fails when it was altered or the key is not the one it was
    /// stored with.
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let encoded = stored.strip_prefix(VERSION).ok_or(CryptoError::Format)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| CryptoError::Format)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Format);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// The lookup key of a value (an E.164 number): the same for the same number and data key,
    /// unrelated across keys; hex.
    pub fn lookup_hash(&self, value: &str) -> String {
        let mut mac = self.lookup.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The code of the verification `sid`, `length` digits: HMAC-SHA256 of the sid under a key
    /// derived from the data key, read as digits ([`domain::verify::code_from`]). The sid's 128
    /// bits come from the operating system's random source, so the code is as unpredictable,
    /// and a new start of the same verification sends the same code (as Twilio does) although
    /// the database holds only the code's hash.
    pub fn verification_code(&self, sid: &str, length: u8) -> String {
        let mut mac = self.codes.clone();
        mac.update(sid.as_bytes());
        domain::verify::code_from(&mac.finalize().into_bytes().into(), length)
    }

    /// What is stored of a verification's code: HMAC-SHA256 of sid and code under a key derived
    /// from the data key (a database alone cannot try the million six-digit codes); hex.
    pub fn code_hash(&self, sid: &str, code: &str) -> String {
        let mut mac = self.code_hashes.clone();
        mac.update(sid.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `code` is the one whose hash is `stored`, compared in constant time.
    pub fn code_matches(&self, sid: &str, code: &str, stored: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.code_hash(sid, code)
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::new(&[byte; 32])
    }

    #[test]
    fn a_number_round_trips_and_never_appears_in_the_stored_form() {
        let k = key(1);
        let stored = k.encrypt("+14155552671");
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("4155552671"));
        assert_eq!(k.decrypt(&stored).unwrap(), "+14155552671");
    }

    #[test]
    fn the_same_number_encrypts_differently_each_time() {
        let k = key(1);
        assert_ne!(k.encrypt("+14155552671"), k.encrypt("+14155552671"));
    }

    #[test]
    fn an_altered_value_or_another_key_is_refused() {
        let stored = key(1).encrypt("+14155552671");
        assert_eq!(key(2).decrypt(&stored), Err(CryptoError::Decrypt));
        let mut bytes = STANDARD.decode(&stored[3..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(bytes));
        assert_eq!(key(1).decrypt(&tampered), Err(CryptoError::Decrypt));
        assert_eq!(key(1).decrypt("+14155552671"), Err(CryptoError::Format));
        assert_eq!(key(1).decrypt("v1:AAAA"), Err(CryptoError::Format));
    }

    #[test]
    fn lookup_hashes_are_stable_per_key_and_differ_across_keys() {
        let a = key(1).lookup_hash("+14155552671");
        assert_eq!(a, key(1).lookup_hash("+14155552671"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, key(2).lookup_hash("+14155552671"));
        assert_ne!(a, key(1).lookup_hash("+14155552672"));
    }

    #[test]
    fn debug_shows_no_key_material() {
        assert_eq!(format!("{:?}", key(1)), "DataKey([redacted])");
    }
}
