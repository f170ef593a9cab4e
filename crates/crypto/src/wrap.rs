//! Sealing small values (wrapped keys, object metadata) with AES-256-GCM, and key-check values.
//!
//! Sealed value layout: `version (1) = 1 | nonce (12) | ciphertext | tag (16)`. The caller's
//! associated data binds the value to where it belongs (tenant, bucket, object version), so a
//! value copied to another place fails to open.

use crate::{CryptoError, KEY_LEN, Key, random_bytes};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;

const SEALED_VERSION: u8 = 1;
/// Length of a key-check value.
pub const KCV_LEN: usize = 8;

fn aead(key: &Key) -> LessSafeKey {
    // AES-256 accepts any 32-byte key, so this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).unwrap_or_else(|_| unreachable!()))
}

/// Encrypts `plaintext` under `key`, bound to `aad`.
pub fn seal_value(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    seal_value_with_nonce(key, nonce, aad, plaintext)
}

/// [`seal_value`] with a given nonce, which must never have sealed anything under `key`
/// before: only known-answer tests choose one.
pub(crate) fn seal_value_with_nonce(
    key: &Key,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
    out.push(SEALED_VERSION);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    aead(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| CryptoError::Authentication)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a value made by [`seal_value`] with the same key and `aad`.
pub fn open_value(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (&version, rest) = sealed
        .split_first()
        .ok_or(CryptoError::Malformed("sealed value"))?;
    if version != SEALED_VERSION {
        return Err(CryptoError::Version(version));
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed("sealed value"));
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::Malformed("nonce"))?;
    let mut buf = ct.to_vec();
    let plain = aead(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptoError::Authentication)?;
    Ok(plain.to_vec())
}

/// A short public fingerprint of a key: HMAC-SHA256(key, label) truncated to 8 bytes.
///
/// Stored beside every wrapped key so that unwrapping with the wrong key-encryption key, or a
/// wrapped key filed under the wrong name, is detected when it is written, not when data is lost.
#[must_use]
pub fn key_check_value(key: &Key) -> [u8; KCV_LEN] {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        b"obhut key-check value v1",
    );
    let mut out = [0u8; KCV_LEN];
    out.copy_from_slice(&tag.as_ref()[..KCV_LEN]);
    out
}

/// Wraps `key` under `kek`, bound to `aad`. Returns the sealed key and its key-check value.
pub fn wrap_key(kek: &Key, key: &Key, aad: &[u8]) -> Result<(Vec<u8>, [u8; KCV_LEN]), CryptoError> {
    let wrapped = seal_value(kek, aad, key.expose())?;
    // Check the round trip before anything is stored.
    let back = unwrap_key(kek, &wrapped, aad, &key_check_value(key))?;
    if back.expose() != key.expose() {
        return Err(CryptoError::KeyCheck);
    }
    Ok((wrapped, key_check_value(key)))
}

/// Unwraps a key made by [`wrap_key`] and checks it against its key-check value.
pub fn unwrap_key(
    kek: &Key,
    wrapped: &[u8],
    aad: &[u8],
    kcv: &[u8; KCV_LEN],
) -> Result<Key, CryptoError> {
    let raw = zeroize::Zeroizing::new(open_value(kek, aad, wrapped)?);
    if raw.len() != KEY_LEN {
        return Err(CryptoError::Malformed("wrapped key"));
    }
    let key = Key::from_slice(&raw)?;
    if !subtle_eq(&key_check_value(&key), kcv) {
        return Err(CryptoError::KeyCheck);
    }
    Ok(key)
}

fn subtle_eq(a: &[u8; KCV_LEN], b: &[u8; KCV_LEN]) -> bool {
    constant_time_eq(a, b)
}

/// Compares secrets (or values derived from them) in time independent of where they differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_aad() {
        let k = Key::random().unwrap();
        let s = seal_value(&k, b"ctx", b"metadata marker").unwrap();
        assert_eq!(open_value(&k, b"ctx", &s).unwrap(), b"metadata marker");
        assert_eq!(
            open_value(&k, b"other", &s),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            open_value(&Key::random().unwrap(), b"ctx", &s),
            Err(CryptoError::Authentication)
        );
        let mut flipped = s.clone();
        flipped[20] ^= 1;
        assert_eq!(
            open_value(&k, b"ctx", &flipped),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            open_value(&k, b"ctx", &s[..10]),
            Err(CryptoError::Malformed("sealed value"))
        );
    }

    #[test]
    fn wrapped_keys_carry_a_key_check_value() {
        let kek = Key::random().unwrap();
        let key = Key::random().unwrap();
        let (wrapped, kcv) = wrap_key(&kek, &key, b"tenant/bucket/1").unwrap();
        let back = unwrap_key(&kek, &wrapped, b"tenant/bucket/1", &kcv).unwrap();
        assert_eq!(back.expose(), key.expose());
        let other_kcv = key_check_value(&Key::random().unwrap());
        assert_eq!(
            unwrap_key(&kek, &wrapped, b"tenant/bucket/1", &other_kcv).unwrap_err(),
            CryptoError::KeyCheck
        );
        assert_eq!(
            unwrap_key(&kek, &wrapped, b"tenant/bucket/2", &kcv).unwrap_err(),
            CryptoError::Authentication
        );
    }

    #[test]
    fn keys_do_not_print_their_bytes() {
        let k = Key::from_bytes([7; KEY_LEN]);
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
    }
}
