//! A principal's credential: one token, two derived secrets.
//!
//! A principal (officer, operator, auditor, tenant admin) holds one token. From it the CLI
//! derives a bearer (sent to the admin API, which stores only its hash) and an Ed25519 signing
//! key (whose public half the trustee keeps). The token itself never leaves the principal's
//! machine, so the admin API, which the provider may run, can authenticate a caller but cannot
//! sign in the caller's name: approvals and other sensitive statements carry a signature the
//! trustee checks itself.
//!
//! This module owns the derivation and the signature format; it stores nothing.

use crate::CryptoError;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Domain separation of signed statements: a signature over anything else never verifies.
const STATEMENT_CONTEXT: &[u8] = b"obhut signed statement v1\n";

/// The secrets a principal's token stands for.
pub struct PrincipalCredential {
    bearer: Zeroizing<String>,
    signing: Ed25519KeyPair,
}

impl PrincipalCredential {
    /// Derives both secrets from the token.
    pub fn from_token(token: &str) -> Result<Self, CryptoError> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
        let bearer_tag = hmac::sign(&key, b"obhut admin bearer v1");
        let bearer = Zeroizing::new(format!("obb_{}", hex(bearer_tag.as_ref())));
        let seed = Zeroizing::new(
            hmac::sign(&key, b"obhut approval signing key v1")
                .as_ref()
                .to_vec(),
        );
        let signing = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| CryptoError::Malformed("signing key seed"))?;
        Ok(Self { bearer, signing })
    }

    /// What the admin API receives as `Authorization: Bearer`.
    #[must_use]
    pub fn bearer(&self) -> &str {
        &self.bearer
    }

    #[must_use]
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.signing.public_key().as_ref());
        out
    }

    /// Signs a statement (JSON text) in the statement context.
    #[must_use]
    pub fn sign_statement(&self, statement: &str) -> [u8; SIGNATURE_LEN] {
        let sig = self.signing.sign(&statement_message(statement));
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

fn statement_message(statement: &str) -> Vec<u8> {
    let mut msg = STATEMENT_CONTEXT.to_vec();
    msg.extend_from_slice(statement.as_bytes());
    msg
}

/// Whether `signature` is `public_key`'s signature of `statement`.
#[must_use]
pub fn verify_statement(public_key: &[u8], statement: &str, signature: &[u8]) -> bool {
    public_key.len() == PUBLIC_KEY_LEN
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&statement_message(statement), signature)
            .is_ok()
}

/// Hex SHA-256 of a bearer: what is stored and looked up, never the bearer itself.
#[must_use]
pub fn bearer_hash(bearer: &str) -> String {
    hex(digest::digest(&digest::SHA256, bearer.as_bytes()).as_ref())
}

/// Hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Hex HMAC-SHA256 of `message` under `key`.
#[must_use]
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_separates_tokens() {
        let a = PrincipalCredential::from_token("obt_one").expect("derive");
        let a2 = PrincipalCredential::from_token("obt_one").expect("derive");
        let b = PrincipalCredential::from_token("obt_two").expect("derive");
        assert_eq!(a.bearer(), a2.bearer());
        assert_eq!(a.public_key(), a2.public_key());
        assert_ne!(a.bearer(), b.bearer());
        assert_ne!(a.public_key(), b.public_key());
        assert!(a.bearer().starts_with("obb_"));
        assert!(!a.bearer().contains("obt_one"));
        assert_eq!(bearer_hash(a.bearer()).len(), 64);
    }

    #[test]
    fn a_statement_verifies_only_unchanged_and_under_its_signer() {
        let a = PrincipalCredential::from_token("obt_one").expect("derive");
        let b = PrincipalCredential::from_token("obt_two").expect("derive");
        let s = r#"{"action":"approve_grant","id":"g1"}"#;
        let sig = a.sign_statement(s);
        assert!(verify_statement(&a.public_key(), s, &sig));
        assert!(!verify_statement(&b.public_key(), s, &sig));
        assert!(!verify_statement(
            &a.public_key(),
            r#"{"action":"approve_grant","id":"g2"}"#,
            &sig
        ));
        assert!(!verify_statement(&a.public_key()[..31], s, &sig));
        // A bare signature over the text without the context does not verify.
        let raw = a.signing.sign(s.as_bytes());
        assert!(!verify_statement(&a.public_key(), s, raw.as_ref()));
    }
}
