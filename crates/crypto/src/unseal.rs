//! Unseal shares and PKCS#11 PINs on their way to the trustee: encrypted on the officer's machine
//! to the trustee's unseal key with HPKE (RFC 9180: mode base, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305), so that the admin API and gateways in between relay only
//! ciphertext.
//!
//! A ciphertext is bound to its purpose and its recipient by the HPKE `info` (`obhut unseal
//! share v1`, then the trustee's identity) and to the trustee's current seal epoch by the AAD:
//! one captured in an earlier epoch does not open in a later one. This module owns that layout;
//! the trustee keeps the key's seed, the officer's CLI only the public key.

use crate::{CryptoError, hpke_suite};
use zeroize::Zeroizing;

/// Length of the seed the trustee keeps, of the public key, and of an encapsulated key.
pub const SEED_LEN: usize = 32;
pub const PUBLIC_KEY_LEN: usize = 32;

const INFO_PREFIX: &[u8] = b"obhut unseal share v1\n";

fn info(identity: &str) -> Vec<u8> {
    let mut v = INFO_PREFIX.to_vec();
    v.extend_from_slice(identity.as_bytes());
    v
}

/// The unseal key's public half, from the trustee's seed.
#[must_use]
pub fn public_key(seed: &[u8; SEED_LEN]) -> [u8; PUBLIC_KEY_LEN] {
    hpke_suite::public_key(seed)
}

/// Encrypts `secret` (a share or a PIN) to the trustee whose unseal key is `public_key`, named
/// `identity`, for seal epoch `epoch`. Returns (encapsulated key, ciphertext).
///
/// # Errors
/// [`CryptoError::Malformed`] for a public key that is not one.
pub fn seal(
    public_key: &[u8],
    identity: &str,
    epoch: &str,
    secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    hpke_suite::seal(
        public_key,
        "unseal public key",
        &info(identity),
        epoch.as_bytes(),
        secret,
    )
}

/// Opens what [`seal`] made, with the trustee's seed, for `identity` and `epoch`.
///
/// # Errors
/// [`CryptoError::Authentication`] if it was made for another key, identity or epoch, or altered;
/// [`CryptoError::Malformed`] for an encapsulated key that is not one.
pub fn open(
    seed: &[u8; SEED_LEN],
    identity: &str,
    epoch: &str,
    enc: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    hpke_suite::open(seed, &info(identity), epoch.as_bytes(), enc, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_share_opens_only_for_its_trustee_identity_and_epoch() {
        let seed = [7u8; SEED_LEN];
        let pk = public_key(&seed);
        let (enc, ct) = seal(&pk, "obhut.trustee/abc", "e1", b"obs1_share").unwrap();
        assert!(!ct.windows(10).any(|w| w == b"obs1_share"));
        let opened = open(&seed, "obhut.trustee/abc", "e1", &enc, &ct).unwrap();
        assert_eq!(opened.as_slice(), b"obs1_share");
        assert_eq!(
            open(&seed, "obhut.trustee/abc", "e2", &enc, &ct).unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            open(&seed, "obhut.trustee/xyz", "e1", &enc, &ct).unwrap_err(),
            CryptoError::Authentication
        );
        assert_eq!(
            open(&[8u8; SEED_LEN], "obhut.trustee/abc", "e1", &enc, &ct).unwrap_err(),
            CryptoError::Authentication
        );
        let mut altered = ct.clone();
        altered[0] ^= 1;
        assert!(open(&seed, "obhut.trustee/abc", "e1", &enc, &altered).is_err());
        assert!(seal(b"short", "x", "e1", b"s").is_err());
    }
}
