//! obhut's encryption formats: segmented AES-256-GCM for blobs, sealed small values (metadata),
//! and key wrapping with key-check values.
//!
//! This crate owns the byte layouts (written down in docs/format.md) and nothing else: it stores
//! no keys and does no I/O. Callers hold keys in [`Key`], which zeroes itself when dropped.

pub mod delivery;
mod hpke_suite;
pub mod principal;
mod segmented;
pub mod unseal;
#[cfg(test)]
mod vectors;
mod wrap;

pub use segmented::{
    BlobHeader, DEFAULT_SEGMENT_SIZE, HEADER_LEN, SegmentDecryptor, SegmentEncryptor,
    StreamEncryptor, TAG_LEN, blob_len, segment_count, segment_span,
};
pub use wrap::{
    KCV_LEN, constant_time_eq, key_check_value, open_value, seal_value, unwrap_key, wrap_key,
};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of every key obhut uses (AES-256).
pub const KEY_LEN: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Authentication failed: wrong key, or the bytes were altered, truncated, reordered or swapped.
    #[error("authentication failed: the data was altered or the key is wrong")]
    Authentication,
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("key-check value mismatch: this wrapped key does not belong to the expected key")]
    KeyCheck,
    #[error("the system random number generator failed")]
    Random,
}

/// A 256-bit secret key, zeroed on drop.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn random() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| CryptoError::Random)?;
        Ok(Self(k))
    }

    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed("key"))?;
        Ok(Self::from_bytes(arr))
    }

    /// The raw key bytes. Callers must not log or persist them unwrapped.
    #[must_use]
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Fills `buf` with random bytes.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}
