//! A secret the trustee answers to the principal who asked for it (a new S3 access key's
//! secret), encrypted to a one-time X25519 key that the principal's CLI made and named in its
//! signed statement, so that the admin API and gateways in between relay only ciphertext.
//!
//! HPKE (RFC 9180) as for unseal shares ([`crate::unseal`]): mode base, DHKEM(X25519,
//! HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; `info` names the purpose (`obhut access key
//! secret v1`) and the AAD the access key id and its tenant, so a ciphertext opens only as the
//! secret of that key. The one-time private key never leaves the CLI's memory.

use crate::{CryptoError, hpke_suite, random_bytes};
use zeroize::Zeroizing;

const INFO: &[u8] = b"obhut access key secret v1";

fn aad(access_key_id: &str, tenant: &str) -> Vec<u8> {
    format!("{access_key_id}\n{tenant}").into_bytes()
}

/// A one-time recipient key: its seed (kept by the CLI until the answer is opened) and its
/// public half (sent in the statement).
///
/// # Errors
/// [`CryptoError::Random`] if the system's random number generator fails.
pub fn recipient() -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), CryptoError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    random_bytes(seed.as_mut())?;
    let public = hpke_suite::public_key(&seed);
    Ok((seed, public))
}

/// Encrypts the secret of `access_key_id` of `tenant` to `public_key`. Returns (encapsulated
/// key, ciphertext).
///
/// # Errors
/// [`CryptoError::Malformed`] for a public key that is not one.
pub fn seal(
    public_key: &[u8],
    access_key_id: &str,
    tenant: &str,
    secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    hpke_suite::seal(
        public_key,
        "recipient public key",
        INFO,
        &aad(access_key_id, tenant),
        secret,
    )
}

/// Opens what [`seal`] made, with the recipient's seed.
///
/// # Errors
/// [`CryptoError::Authentication`] if it was made for another key, access key or tenant, or
/// altered; [`CryptoError::Malformed`] for an encapsulated key that is not one.
pub fn open(
    seed: &[u8; 32],
    access_key_id: &str,
    tenant: &str,
    enc: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    hpke_suite::open(seed, INFO, &aad(access_key_id, tenant), enc, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_secret_opens_only_for_its_recipient_key_and_access_key() {
        let (seed, public) = recipient().unwrap();
        let (enc, ct) = seal(&public, "OBKA", "t", b"the-secret").unwrap();
        assert!(!ct.windows(10).any(|w| w == b"the-secret"));
        assert_eq!(
            open(&seed, "OBKA", "t", &enc, &ct).unwrap().as_slice(),
            b"the-secret"
        );
        assert!(open(&seed, "OBKB", "t", &enc, &ct).is_err());
        assert!(open(&seed, "OBKA", "u", &enc, &ct).is_err());
        let (other, _) = recipient().unwrap();
        assert!(open(&other, "OBKA", "t", &enc, &ct).is_err());
        assert!(seal(b"short", "OBKA", "t", b"s").is_err());
    }
}
