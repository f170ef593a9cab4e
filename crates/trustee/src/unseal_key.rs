//! The trustee's unseal key: the X25519 key officers encrypt their unseal shares (and PKCS#11
//! PINs) to on their own machines ([`obhut_crypto::unseal`]), so that the admin API and any
//! gateway relaying them see only ciphertext; and the seal epoch each ciphertext is bound to.
//!
//! The key's seed is `DIR/unseal-key` (hex, 0600, made on first start). The epoch is random,
//! held in memory only, and replaced at start, whenever the trustee is sealed and whenever it
//! becomes unsealed: a ciphertext captured in one epoch opens in no later one.

use obhut_crypto::unseal::{SEED_LEN, open, public_key};
use obhut_trustee_client::{SealedShare, TrusteeError, UnsealKey};
use std::path::Path;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The seed's file inside the trustee's directory.
pub const FILE: &str = "unseal-key";

pub struct UnsealKeys {
    seed: Zeroizing<[u8; SEED_LEN]>,
    identity: String,
    epoch: Mutex<String>,
}

fn storage(e: impl std::fmt::Display) -> TrusteeError {
    TrusteeError::Storage(e.to_string())
}

fn new_epoch() -> Result<String, TrusteeError> {
    let mut b = [0u8; 16];
    obhut_crypto::random_bytes(&mut b).map_err(storage)?;
    Ok(hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower))
}

impl UnsealKeys {
    /// Loads (making on first use) the seed in `dir`; `identity` is the trustee's name.
    pub fn open(dir: &Path, identity: &str) -> Result<Self, TrusteeError> {
        let file = dir.join(FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = Zeroizing::new([0u8; SEED_LEN]);
                obhut_crypto::random_bytes(seed.as_mut()).map_err(storage)?;
                let text = Zeroizing::new(hex_simd::encode_to_string(
                    seed.as_slice(),
                    hex_simd::AsciiCase::Lower,
                ));
                crate::write_private_file(&file, text.as_bytes(), 0o600)
                    .map_err(|e| storage(format!("{}: {e}", file.display())))?;
                text
            }
            Err(e) => return Err(storage(format!("{}: {e}", file.display()))),
        };
        let bytes = Zeroizing::new(
            hex_simd::decode_to_vec(text.trim().as_bytes())
                .map_err(|_| storage(format!("{} is not hex", file.display())))?,
        );
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        if bytes.len() != SEED_LEN {
            return Err(storage(format!("{} is not a 32-byte seed", file.display())));
        }
        seed.copy_from_slice(&bytes);
        Ok(Self {
            seed,
            identity: identity.to_owned(),
            epoch: Mutex::new(new_epoch()?),
        })
    }

    fn epoch(&self) -> Result<std::sync::MutexGuard<'_, String>, TrusteeError> {
        self.epoch
            .lock()
            .map_err(|_| storage("unseal epoch lock poisoned"))
    }

    pub fn public(&self) -> Result<UnsealKey, TrusteeError> {
        Ok(UnsealKey {
            public_key: hex_simd::encode_to_string(
                public_key(&self.seed),
                hex_simd::AsciiCase::Lower,
            ),
            identity: self.identity.clone(),
            epoch: self.epoch()?.clone(),
        })
    }

    /// Starts a new epoch: what was sealed for the current one no longer opens.
    pub fn next_epoch(&self) -> Result<(), TrusteeError> {
        *self.epoch()? = new_epoch()?;
        Ok(())
    }

    /// The share (or PIN) inside `sealed`, if it was sealed to this key, this trustee and the
    /// current epoch.
    pub fn open_share(&self, sealed: &SealedShare) -> Result<Zeroizing<String>, TrusteeError> {
        let current = self.epoch()?.clone();
        if !obhut_crypto::constant_time_eq(sealed.epoch.as_bytes(), current.as_bytes()) {
            return Err(TrusteeError::Denied(
                "this share was encrypted for an earlier seal epoch of the trustee (it was sealed or unsealed since); run `obhut trustee unseal` again".into(),
            ));
        }
        let b64 = |s: &str| {
            base64_simd::STANDARD
                .decode_to_vec(s.as_bytes())
                .map_err(|_| TrusteeError::Invalid("an encrypted share is base64".into()))
        };
        let plain = open(
            &self.seed,
            &self.identity,
            &current,
            &b64(&sealed.enc)?,
            &b64(&sealed.ciphertext)?,
        )
        .map_err(|_| {
            TrusteeError::Denied(
                "this encrypted share does not open with this trustee's unseal key (sealed to another key or trustee, or altered)".into(),
            )
        })?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| TrusteeError::BadShare("not text".into()))
    }
}
