//! The one HPKE suite obhut uses (RFC 9180: mode base, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305), for secrets sent to one recipient through hosts that must
//! not read them. Each use names its purpose in `info` and binds its context in the AAD
//! ([`crate::unseal`], [`crate::delivery`]); this module owns only the suite.

use crate::CryptoError;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

/// The public key of the recipient whose private key derives from `seed`.
pub(crate) fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    let (_, pk) = X25519HkdfSha256::derive_keypair(seed);
    let mut out = [0u8; 32];
    out.copy_from_slice(&pk.to_bytes());
    out
}

/// Encrypts `plaintext` to `public_key`; returns (encapsulated key, ciphertext).
/// `what` names the key in the error for one that is not one.
pub(crate) fn seal(
    public_key: &[u8],
    what: &'static str,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(public_key)
        .map_err(|_| CryptoError::Malformed(what))?;
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
    )
    .map_err(|_| CryptoError::Malformed(what))?;
    Ok((enc.to_bytes().to_vec(), ct))
}

/// Opens what [`seal`] made, with the recipient's seed and the same `info` and `aad`.
pub(crate) fn open(
    seed: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    enc: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (sk, _) = X25519HkdfSha256::derive_keypair(seed);
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| CryptoError::Malformed("encapsulated key"))?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::Authentication)
}
