//! Random identifiers: opaque blob names and secret tokens.
//!
//! Blob ids are what sites see instead of object names, so they carry no information at all:
//! 128 random bits, hex-encoded.

use rand::RngExt;
use std::fmt;

/// The opaque name of a blob on a site: 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId([u8; 16]);

impl BlobId {
    /// A fresh random blob id.
    #[must_use]
    pub fn random() -> Self {
        Self(rand::rng().random())
    }

    /// Parses the 32-character lowercase hex form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = hex_val(chunk[0])?;
            let lo = hex_val(chunk[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

/// A random secret of `len` characters from an alphabet safe in URLs, env files and shells.
#[must_use]
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_round_trips_through_hex() {
        let id = BlobId::random();
        assert_eq!(BlobId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn blob_id_rejects_non_hex_and_wrong_length() {
        assert_eq!(BlobId::parse("zz"), None);
        assert_eq!(BlobId::parse(&"A".repeat(32)), None);
        assert_eq!(BlobId::parse(&"a".repeat(31)), None);
    }

    #[test]
    fn tokens_differ_and_have_the_requested_length() {
        let a = random_token(40);
        assert_eq!(a.len(), 40);
        assert_ne!(a, random_token(40));
    }
}
