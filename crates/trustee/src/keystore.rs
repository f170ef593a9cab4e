//! The keystore: custody of tenant keys, and their life cycle (active, disabled, destroyed).
//!
//! Two kinds of custody share one registry file, `DIR/keystore.json` (mode 0600):
//! - **sealed file**: tenant keys are stored wrapped under the master key, which is never
//!   stored; it exists only in memory after `threshold` distinct Shamir shares were given.
//! - **PKCS#11**: tenant keys are generated and used inside a token ([`crate::pkcs11`]) and never
//!   leave it; the file only records their state and check values. "Unsealing" is logging in to
//!   the token with its user PIN; sealing drops the session.
//!
//! File layout (JSON, `version: 1`): `threshold`, `shares`, `master_kcv` (hex; empty for
//! PKCS#11), optional `pkcs11` (`module`, `token`) and, per tenant, `wrapped` (base64 sealed
//! value, associated data `"obhut tenant key v1\0" + tenant`; empty for PKCS#11 and once
//! destroyed), `kcv` (hex) and `state` (`active`, `disabled`, `destroyed`).

use crate::pkcs11::Pkcs11TenantKeys;
use blahaj::{Share, Sharks};
use obhut_crypto::{KCV_LEN, Key, key_check_value};
use obhut_trustee_client::{SealStatus, TrusteeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const FILE: &str = "keystore.json";
const SHARE_PREFIX: &str = "obhut-share-v1-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantKeyState {
    Active,
    Disabled,
    Destroyed,
}

#[derive(Serialize, Deserialize)]
struct TenantEntry {
    /// Empty once destroyed.
    wrapped: String,
    kcv: String,
    state: TenantKeyState,
    /// When a disabled key is due for destruction (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destroy_after_ms: Option<i64>,
}

/// Where a PKCS#11 keystore's keys live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pkcs11Location {
    /// Path of the PKCS#11 module (e.g. SoftHSM2's `libsofthsm2.so`).
    pub module: PathBuf,
    /// Label of the token.
    pub token: String,
}

#[derive(Serialize, Deserialize)]
struct KeystoreFile {
    version: u32,
    threshold: u8,
    shares: u8,
    master_kcv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs11: Option<Pkcs11Location>,
    tenants: BTreeMap<String, TenantEntry>,
}

enum Custody {
    File {
        master: Option<Key>,
        /// Distinct shares given while sealed, by their x coordinate.
        given: BTreeMap<u8, Share>,
    },
    Pkcs11 {
        location: Pkcs11Location,
        /// Present while logged in.
        keys: Option<Pkcs11TenantKeys>,
    },
}

pub struct SealedKeystore {
    path: PathBuf,
    file: KeystoreFile,
    custody: Custody,
    /// Held while open: one process at a time owns a keystore.
    _lock: File,
}

fn lock_keystore(dir: &Path) -> Result<File, TrusteeError> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("keystore.lock"))
        .map_err(storage)?;
    // A lock held for a moment is not a running trustee: a child process forked (by any
    // thread) between its fork and its exec briefly shares every open file, this lock's too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(storage(format!(
                    "the keystore in {} is in use by a running trustee; stop it first",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(storage(e)),
        }
    }
}

fn storage(e: impl std::fmt::Display) -> TrusteeError {
    TrusteeError::Storage(e.to_string())
}

fn hex(b: &[u8]) -> String {
    hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower)
}

fn kcv_from_hex(s: &str) -> Result<[u8; KCV_LEN], TrusteeError> {
    hex_simd::decode_to_vec(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| storage("malformed key-check value in keystore"))
}

fn tenant_aad(tenant: &str) -> Vec<u8> {
    let mut aad = b"obhut tenant key v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

/// Replaces `path` with `contents` atomically and durably, created with `mode`: written to a
/// temporary name, fsynced, renamed, and its directory fsynced. Every secret file obhut writes
/// (keystore, shares, credentials, TLS keys) goes through here.
pub fn write_private_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn write_file(path: &Path, file: &KeystoreFile) -> Result<(), TrusteeError> {
    let json = serde_json::to_vec_pretty(file).map_err(storage)?;
    write_private_file(path, &json, 0o600).map_err(storage)
}

/// Splits `master` into `shares` Shamir shares of which `threshold` reconstruct it.
fn deal_shares(master: &Key, shares: u8, threshold: u8) -> Vec<String> {
    Sharks(threshold)
        .dealer(master.expose())
        .take(usize::from(shares))
        .map(|s| {
            let raw = Zeroizing::new(Vec::<u8>::from(&s));
            format!(
                "{SHARE_PREFIX}{}",
                base64_simd::URL_SAFE_NO_PAD.encode_to_string(raw.as_slice())
            )
        })
        .collect()
}

/// Records a share; at the threshold, reconstructs the master key and checks it.
fn add_share(
    given: &mut BTreeMap<u8, Share>,
    threshold: u8,
    master_kcv: &str,
    share: &str,
) -> Result<Option<Key>, TrusteeError> {
    let raw = share
        .trim()
        .strip_prefix(SHARE_PREFIX)
        .and_then(|b| base64_simd::URL_SAFE_NO_PAD.decode_to_vec(b).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| TrusteeError::BadShare("not an obhut unseal share".into()))?;
    let parsed =
        Share::try_from(raw.as_slice()).map_err(|e| TrusteeError::BadShare(e.to_string()))?;
    if parsed.y.len() != obhut_crypto::KEY_LEN {
        return Err(TrusteeError::BadShare("share has the wrong length".into()));
    }
    given.insert(raw[0], parsed);
    if given.len() < usize::from(threshold) {
        return Ok(None);
    }
    let shares: Vec<Share> = given.values().cloned().collect();
    given.clear();
    let secret = Zeroizing::new(
        Sharks(threshold)
            .recover(shares.iter())
            .map_err(|e| TrusteeError::BadShare(e.to_string()))?,
    );
    let master = Key::from_slice(&secret).map_err(|e| TrusteeError::BadShare(e.to_string()))?;
    if hex(&key_check_value(&master)) != master_kcv {
        return Err(TrusteeError::BadShare(
            "these shares do not reconstruct this keystore's master key; give shares again".into(),
        ));
    }
    Ok(Some(master))
}

impl SealedKeystore {
    /// Creates a keystore with a new master key split into `shares` Shamir shares of which
    /// `threshold` unseal it. Returns the shares; they are not stored anywhere.
    pub fn init(dir: &Path, shares: u8, threshold: u8) -> Result<Vec<String>, TrusteeError> {
        if threshold == 0 || shares < threshold {
            return Err(TrusteeError::BadShare(format!(
                "need 1 <= threshold <= shares, got threshold {threshold} of {shares}"
            )));
        }
        let path = dir.join(FILE);
        if path.exists() {
            return Err(storage(format!(
                "a keystore already exists at {}",
                path.display()
            )));
        }
        fs::create_dir_all(dir).map_err(storage)?;
        let master = Key::random().map_err(storage)?;
        let dealt = deal_shares(&master, shares, threshold);
        let file = KeystoreFile {
            version: 1,
            threshold,
            shares,
            master_kcv: hex(&key_check_value(&master)),
            pkcs11: None,
            tenants: BTreeMap::new(),
        };
        write_file(&path, &file)?;
        Ok(dealt)
    }

    /// Creates a keystore whose tenant keys live in a PKCS#11 token.
    pub fn init_pkcs11(dir: &Path, location: Pkcs11Location) -> Result<(), TrusteeError> {
        let path = dir.join(FILE);
        if path.exists() {
            return Err(storage(format!(
                "a keystore already exists at {}",
                path.display()
            )));
        }
        fs::create_dir_all(dir).map_err(storage)?;
        write_file(
            &path,
            &KeystoreFile {
                version: 1,
                threshold: 1,
                shares: 0,
                master_kcv: String::new(),
                pkcs11: Some(location),
                tenants: BTreeMap::new(),
            },
        )
    }

    /// Replaces the master key of a sealed-file keystore: reconstructs the current master from
    /// `current_shares`, rewraps every tenant key under a new master split into `shares` of
    /// which `threshold` unseal it, and returns the new shares. The keystore file is replaced
    /// atomically, so a crash leaves either the old or the new master in force. `progress`
    /// is called with (rewrapped, total) as tenant keys are rewrapped.
    pub fn rotate_master(
        dir: &Path,
        current_shares: &[String],
        shares: u8,
        threshold: u8,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<String>, TrusteeError> {
        if threshold == 0 || shares < threshold {
            return Err(TrusteeError::BadShare(format!(
                "need 1 <= threshold <= shares, got threshold {threshold} of {shares}"
            )));
        }
        let mut ks = Self::open(dir)?;
        if ks.file.pkcs11.is_some() {
            return Err(TrusteeError::BadShare(
                "this keystore keeps its tenant keys in a PKCS#11 token; it has no master key"
                    .into(),
            ));
        }
        for share in current_shares {
            ks.unseal(share)?;
        }
        let old = ks.master()?.clone();
        let new = Key::random().map_err(storage)?;
        let total = ks.file.tenants.len();
        let mut done = 0;
        for (tenant, entry) in &mut ks.file.tenants {
            if !entry.wrapped.is_empty() {
                let wrapped = base64_simd::STANDARD
                    .decode_to_vec(&entry.wrapped)
                    .map_err(storage)?;
                let aad = tenant_aad(tenant);
                let key =
                    obhut_crypto::unwrap_key(&old, &wrapped, &aad, &kcv_from_hex(&entry.kcv)?)
                        .map_err(|e| {
                            TrusteeError::Integrity(format!("tenant key of {tenant}: {e}"))
                        })?;
                let (rewrapped, kcv) = obhut_crypto::wrap_key(&new, &key, &aad)
                    .map_err(|e| TrusteeError::Integrity(e.to_string()))?;
                entry.wrapped = base64_simd::STANDARD.encode_to_string(&rewrapped);
                entry.kcv = hex(&kcv);
            }
            done += 1;
            progress(done, total);
        }
        let dealt = deal_shares(&new, shares, threshold);
        ks.file.threshold = threshold;
        ks.file.shares = shares;
        ks.file.master_kcv = hex(&key_check_value(&new));
        write_file(&ks.path, &ks.file)?;
        Ok(dealt)
    }

    /// Opens an existing keystore, sealed.
    pub fn open(dir: &Path) -> Result<Self, TrusteeError> {
        let path = dir.join(FILE);
        let bytes = fs::read(&path).map_err(|e| {
            storage(format!(
                "cannot read keystore {}: {e} (create one with `obhut trustee init`)",
                path.display()
            ))
        })?;
        let file: KeystoreFile = serde_json::from_slice(&bytes).map_err(storage)?;
        if file.version != 1 {
            return Err(storage(format!(
                "unsupported keystore version {}",
                file.version
            )));
        }
        let custody = match &file.pkcs11 {
            Some(location) => Custody::Pkcs11 {
                location: location.clone(),
                keys: None,
            },
            None => Custody::File {
                master: None,
                given: BTreeMap::new(),
            },
        };
        Ok(Self {
            path,
            file,
            custody,
            _lock: lock_keystore(dir)?,
        })
    }

    #[must_use]
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).exists()
    }

    #[must_use]
    pub fn status(&self) -> SealStatus {
        match &self.custody {
            Custody::File { master, given } => SealStatus {
                sealed: master.is_none(),
                shares_given: u8::try_from(given.len()).unwrap_or(u8::MAX),
                threshold: self.file.threshold,
                disconnected: false,
            },
            Custody::Pkcs11 { keys, .. } => SealStatus {
                sealed: keys.is_none(),
                shares_given: 0,
                threshold: 1,
                disconnected: false,
            },
        }
    }

    fn sealed_error(&self) -> TrusteeError {
        let s = self.status();
        TrusteeError::Sealed(s.shares_given, s.threshold)
    }

    /// Adds one share; at the threshold the master key is reconstructed and checked. For a
    /// PKCS#11 keystore the "share" is the token's user PIN.
    pub fn unseal(&mut self, share: &str) -> Result<SealStatus, TrusteeError> {
        let threshold = self.file.threshold;
        let master_kcv = self.file.master_kcv.clone();
        match &mut self.custody {
            Custody::Pkcs11 { location, keys } => {
                if keys.is_none() {
                    let pin = share.trim();
                    let bad = |e: TrusteeError| {
                        TrusteeError::BadShare(format!("cannot log in to the token: {e}"))
                    };
                    let opened = Pkcs11TenantKeys::open(&location.module, &location.token, pin)
                        .map_err(bad)?;
                    opened.verify_pin(pin).map_err(bad)?;
                    *keys = Some(opened);
                }
            }
            Custody::File { master, given } => {
                if master.is_none()
                    && let Some(key) = add_share(given, threshold, &master_kcv, share)?
                {
                    *master = Some(key);
                }
            }
        }
        Ok(self.status())
    }

    fn master(&self) -> Result<&Key, TrusteeError> {
        match &self.custody {
            Custody::File {
                master: Some(m), ..
            } => Ok(m),
            _ => Err(self.sealed_error()),
        }
    }

    fn token(&self) -> Result<&Pkcs11TenantKeys, TrusteeError> {
        match &self.custody {
            Custody::Pkcs11 { keys: Some(k), .. } => Ok(k),
            _ => Err(self.sealed_error()),
        }
    }

    #[must_use]
    pub fn tenant_state(&self, tenant: &str) -> Option<TenantKeyState> {
        self.file.tenants.get(tenant).map(|e| e.state)
    }

    /// State and scheduled destruction of a tenant's key.
    pub fn tenant_status(
        &self,
        tenant: &str,
    ) -> Result<(TenantKeyState, Option<i64>), TrusteeError> {
        self.file
            .tenants
            .get(tenant)
            .map(|e| (e.state, e.destroy_after_ms))
            .ok_or_else(|| TrusteeError::NoTenantKey(tenant.to_owned()))
    }

    /// Forgets the master key (shares must be given again) or logs out of the token.
    pub fn seal(&mut self) -> SealStatus {
        match &mut self.custody {
            Custody::File { master, given } => {
                *master = None;
                given.clear();
            }
            Custody::Pkcs11 { keys, .. } => *keys = None,
        }
        self.status()
    }

    /// Changes a tenant entry and persists it, restoring the old entry if persisting fails.
    fn update_tenant(
        &mut self,
        tenant: &str,
        f: impl FnOnce(&mut TenantEntry) -> Result<(), TrusteeError>,
    ) -> Result<(), TrusteeError> {
        let entry = self
            .file
            .tenants
            .get_mut(tenant)
            .ok_or_else(|| TrusteeError::NoTenantKey(tenant.to_owned()))?;
        let before = (
            entry.wrapped.clone(),
            entry.kcv.clone(),
            entry.state,
            entry.destroy_after_ms,
        );
        f(entry)?;
        if let Err(e) = write_file(&self.path, &self.file) {
            if let Some(entry) = self.file.tenants.get_mut(tenant) {
                (
                    entry.wrapped,
                    entry.kcv,
                    entry.state,
                    entry.destroy_after_ms,
                ) = before;
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn disable(&mut self, tenant: &str, destroy_after_ms: i64) -> Result<(), TrusteeError> {
        self.update_tenant(tenant, |e| match e.state {
            TenantKeyState::Destroyed => Err(TrusteeError::TenantKeyDestroyed(tenant.to_owned())),
            TenantKeyState::Active | TenantKeyState::Disabled => {
                e.state = TenantKeyState::Disabled;
                // A second request may bring destruction forward, never push it back.
                e.destroy_after_ms = Some(
                    e.destroy_after_ms
                        .map_or(destroy_after_ms, |d| d.min(destroy_after_ms)),
                );
                Ok(())
            }
        })
    }

    pub fn enable(&mut self, tenant: &str) -> Result<(), TrusteeError> {
        self.update_tenant(tenant, |e| match e.state {
            TenantKeyState::Destroyed => Err(TrusteeError::TenantKeyDestroyed(tenant.to_owned())),
            TenantKeyState::Active | TenantKeyState::Disabled => {
                e.state = TenantKeyState::Active;
                e.destroy_after_ms = None;
                Ok(())
            }
        })
    }

    /// Erases the tenant key: from the keystore file, and from the token for PKCS#11 (which
    /// therefore needs the trustee unsealed).
    pub fn destroy(&mut self, tenant: &str) -> Result<(), TrusteeError> {
        if let Custody::Pkcs11 { .. } = &self.custody {
            match self.token()?.destroy_tenant_key(tenant) {
                Ok(()) | Err(TrusteeError::NoTenantKey(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.update_tenant(tenant, |e| {
            e.wrapped.clear();
            e.state = TenantKeyState::Destroyed;
            e.destroy_after_ms = None;
            Ok(())
        })
    }

    /// Tenants whose disabled keys are due for destruction at `now_ms`.
    #[must_use]
    pub fn due_for_destruction(&self, now_ms: i64) -> Vec<String> {
        self.file
            .tenants
            .iter()
            .filter(|(_, e)| {
                e.state == TenantKeyState::Disabled
                    && e.destroy_after_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|(t, _)| t.clone())
            .collect()
    }

    pub fn ensure_tenant_key(&mut self, tenant: &str) -> Result<(), TrusteeError> {
        if self.file.tenants.contains_key(tenant) {
            // Sealed or not, an existing key is left alone.
            return match self.status().sealed {
                true => Err(self.sealed_error()),
                false => Ok(()),
            };
        }
        let entry = match &self.custody {
            Custody::File { .. } => {
                let master = self.master()?;
                let key = Key::random().map_err(storage)?;
                let (wrapped, kcv) = obhut_crypto::wrap_key(master, &key, &tenant_aad(tenant))
                    .map_err(|e| TrusteeError::Integrity(e.to_string()))?;
                TenantEntry {
                    wrapped: base64_simd::STANDARD.encode_to_string(&wrapped),
                    kcv: hex(&kcv),
                    state: TenantKeyState::Active,
                    destroy_after_ms: None,
                }
            }
            Custody::Pkcs11 { .. } => {
                let token = self.token()?;
                token.create_tenant_key(tenant)?;
                TenantEntry {
                    wrapped: String::new(),
                    kcv: hex(&token.key_check_value(tenant)?),
                    state: TenantKeyState::Active,
                    destroy_after_ms: None,
                }
            }
        };
        self.file.tenants.insert(tenant.to_owned(), entry);
        if let Err(e) = write_file(&self.path, &self.file) {
            self.file.tenants.remove(tenant);
            return Err(e);
        }
        tracing::info!(tenant = %obhut_core::logged(tenant), "tenant key created");
        Ok(())
    }

    /// The tenant's entry, if its key may be used now.
    fn active_entry(&self, tenant: &str) -> Result<&TenantEntry, TrusteeError> {
        if self.status().sealed {
            return Err(self.sealed_error());
        }
        let entry = self
            .file
            .tenants
            .get(tenant)
            .ok_or_else(|| TrusteeError::NoTenantKey(tenant.to_owned()))?;
        match entry.state {
            TenantKeyState::Active => Ok(entry),
            TenantKeyState::Disabled => Err(TrusteeError::TenantKeyDisabled(tenant.to_owned())),
            TenantKeyState::Destroyed => Err(TrusteeError::TenantKeyDestroyed(tenant.to_owned())),
        }
    }

    /// Seals `plaintext` under the tenant's key (a sealed value of docs/format.md).
    pub fn seal_for(
        &self,
        tenant: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, TrusteeError> {
        let entry = self.active_entry(tenant)?;
        match &self.custody {
            Custody::File { .. } => {
                obhut_crypto::seal_value(&self.tenant_key(tenant)?, aad, plaintext)
                    .map_err(|e| TrusteeError::Integrity(e.to_string()))
            }
            Custody::Pkcs11 { .. } => {
                let token = self.token()?;
                self.check_token_key(token, tenant, entry)?;
                token.seal_value(tenant, aad, plaintext)
            }
        }
    }

    /// Opens a value sealed by [`Self::seal_for`].
    pub fn open_for(
        &self,
        tenant: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TrusteeError> {
        let entry = self.active_entry(tenant)?;
        match &self.custody {
            Custody::File { .. } => {
                obhut_crypto::open_value(&self.tenant_key(tenant)?, aad, sealed)
                    .map(Zeroizing::new)
                    .map_err(|e| TrusteeError::Integrity(e.to_string()))
            }
            Custody::Pkcs11 { .. } => {
                let token = self.token()?;
                self.check_token_key(token, tenant, entry)?;
                token.open_value(tenant, aad, sealed).map(Zeroizing::new)
            }
        }
    }

    /// The token's key must be the one recorded for the tenant: a key replaced in the token
    /// under the same label is refused.
    fn check_token_key(
        &self,
        token: &Pkcs11TenantKeys,
        tenant: &str,
        entry: &TenantEntry,
    ) -> Result<(), TrusteeError> {
        if hex(&token.key_check_value(tenant)?) == entry.kcv {
            Ok(())
        } else {
            Err(TrusteeError::Integrity(format!(
                "the token's key for tenant {tenant} is not the one this keystore recorded"
            )))
        }
    }

    /// A file keystore's tenant key, if the trustee is unsealed and the key is active.
    fn tenant_key(&self, tenant: &str) -> Result<Key, TrusteeError> {
        let master = self.master()?;
        let entry = self
            .file
            .tenants
            .get(tenant)
            .ok_or_else(|| TrusteeError::NoTenantKey(tenant.to_owned()))?;
        match entry.state {
            TenantKeyState::Active => {}
            TenantKeyState::Disabled => {
                return Err(TrusteeError::TenantKeyDisabled(tenant.to_owned()));
            }
            TenantKeyState::Destroyed => {
                return Err(TrusteeError::TenantKeyDestroyed(tenant.to_owned()));
            }
        }
        let wrapped = base64_simd::STANDARD
            .decode_to_vec(&entry.wrapped)
            .map_err(storage)?;
        obhut_crypto::unwrap_key(
            master,
            &wrapped,
            &tenant_aad(tenant),
            &kcv_from_hex(&entry.kcv)?,
        )
        .map_err(|e| TrusteeError::Integrity(format!("tenant key of {tenant}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of `keystore.json` and the unseal shares: files written by a
    /// second implementation of docs/format.md (`tools/format-vectors/make_vectors.py`, which
    /// says how to write them again), with the test secrets behind them.
    mod vectors {
        use super::*;
        use serde_json::Value;

        fn dir(kind: &str) -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vectors/keystore")
                .join(kind)
        }

        fn secrets() -> Value {
            let text = fs::read_to_string(dir("secrets.json")).unwrap();
            serde_json::from_str(&text).unwrap()
        }

        fn key(v: &Value) -> Key {
            Key::from_slice(&hex_simd::decode_to_vec(v.as_str().unwrap()).unwrap()).unwrap()
        }

        /// A keystore directory holding a copy of a vector file: opening one takes a lock
        /// file beside it.
        fn copy(kind: &str) -> tempfile::TempDir {
            let tmp = tempfile::tempdir().unwrap();
            fs::copy(dir(kind).join(FILE), tmp.path().join(FILE)).unwrap();
            tmp
        }

        fn entry(wrapped: &str, tenant_key: &Value, state: TenantKeyState) -> TenantEntry {
            TenantEntry {
                wrapped: wrapped.to_owned(),
                kcv: hex(&key_check_value(&key(tenant_key))),
                state,
                destroy_after_ms: None,
            }
        }

        #[test]
        fn keystore_files_are_written_exactly_as_the_vectors() {
            let s = secrets();
            let file_text = fs::read(dir("sealed-file").join(FILE)).unwrap();
            let parsed: KeystoreFile = serde_json::from_slice(&file_text).unwrap();
            let wrapped = |t: &str| parsed.tenants[t].wrapped.clone();
            let tenants = &s["tenants"];
            let mut beta = entry(
                &wrapped("beta"),
                &tenants["beta"]["key"],
                TenantKeyState::Disabled,
            );
            beta.destroy_after_ms = Some(1_767_225_600_000);
            let file = KeystoreFile {
                version: 1,
                threshold: 2,
                shares: 3,
                master_kcv: hex(&key_check_value(&key(&s["master_key"]))),
                pkcs11: None,
                tenants: BTreeMap::from([
                    (
                        "acme".to_owned(),
                        entry(
                            &wrapped("acme"),
                            &tenants["acme"]["key"],
                            TenantKeyState::Active,
                        ),
                    ),
                    ("beta".to_owned(), beta),
                    (
                        "gamma".to_owned(),
                        entry("", &tenants["gamma"]["key"], TenantKeyState::Destroyed),
                    ),
                ]),
            };
            assert_eq!(
                String::from_utf8(serde_json::to_vec_pretty(&file).unwrap()).unwrap(),
                String::from_utf8(file_text).unwrap()
            );

            let file = KeystoreFile {
                version: 1,
                threshold: 1,
                shares: 0,
                master_kcv: String::new(),
                pkcs11: Some(Pkcs11Location {
                    module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                    token: "obhut".into(),
                }),
                tenants: BTreeMap::from([(
                    "acme".to_owned(),
                    TenantEntry {
                        wrapped: String::new(),
                        kcv: "0123456789abcdef".into(),
                        state: TenantKeyState::Active,
                        destroy_after_ms: None,
                    },
                )]),
            };
            assert_eq!(
                String::from_utf8(serde_json::to_vec_pretty(&file).unwrap()).unwrap(),
                fs::read_to_string(dir("pkcs11").join(FILE)).unwrap()
            );
        }

        #[test]
        fn a_sealed_file_keystore_of_the_vectors_unseals_and_gives_its_tenant_keys() {
            let s = secrets();
            let shares: Vec<String> = s["shares"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let master = key(&s["master_key"]);
            // Any two of the three shares, in either order.
            for (a, b) in [(0, 1), (1, 2), (2, 0)] {
                let tmp = copy("sealed-file");
                let mut ks = SealedKeystore::open(tmp.path()).unwrap();
                assert_eq!(ks.status().threshold, 2);
                assert!(
                    ks.unseal(&shares[a]).unwrap().sealed,
                    "one share is not enough"
                );
                assert!(!ks.unseal(&shares[b]).unwrap().sealed, "shares {a} and {b}");
                assert_eq!(ks.master().unwrap().expose(), master.expose());
            }
            let tmp = copy("sealed-file");
            let mut ks = SealedKeystore::open(tmp.path()).unwrap();
            ks.unseal(&shares[0]).unwrap();
            ks.unseal(&shares[1]).unwrap();
            let tenants = &s["tenants"];
            assert_eq!(
                ks.tenant_key("acme").unwrap().expose(),
                key(&tenants["acme"]["key"]).expose()
            );
            assert_eq!(
                ks.tenant_status("beta").unwrap(),
                (TenantKeyState::Disabled, Some(1_767_225_600_000))
            );
            // A disabled key is kept wrapped, under the tenant's own associated data.
            let beta = &ks.file.tenants["beta"];
            let wrapped = base64_simd::STANDARD.decode_to_vec(&beta.wrapped).unwrap();
            let unwrapped = obhut_crypto::unwrap_key(
                &master,
                &wrapped,
                &tenant_aad("beta"),
                &kcv_from_hex(&beta.kcv).unwrap(),
            )
            .unwrap();
            assert_eq!(unwrapped.expose(), key(&tenants["beta"]["key"]).expose());
            assert!(matches!(
                ks.tenant_key("beta"),
                Err(TrusteeError::TenantKeyDisabled(_))
            ));
            assert_eq!(
                ks.tenant_status("gamma").unwrap(),
                (TenantKeyState::Destroyed, None)
            );
            assert!(matches!(
                ks.tenant_key("gamma"),
                Err(TrusteeError::TenantKeyDestroyed(_))
            ));
            // What the trustee seals under a tenant key binds tenant, bucket and key version.
            let aad = &s["bucket_key_aad"];
            assert_eq!(
                hex(&obhut_trustee_client::bucket_key_aad("acme", "photos", 1)),
                aad["aad"].as_str().unwrap()
            );
            let sealed = ks.seal_for("acme", b"aad", b"bucket key").unwrap();
            assert_eq!(
                ks.open_for("acme", b"aad", &sealed).unwrap().as_slice(),
                b"bucket key"
            );
        }

        #[test]
        fn shares_of_the_vectors_carry_their_x_and_the_master_key_polynomial() {
            let s = secrets();
            for (i, share) in s["shares"].as_array().unwrap().iter().enumerate() {
                let text = share.as_str().unwrap();
                let raw = base64_simd::URL_SAFE_NO_PAD
                    .decode_to_vec(text.strip_prefix(SHARE_PREFIX).unwrap())
                    .unwrap();
                assert_eq!(raw.len(), 33, "x (1) || y (32)");
                assert_eq!(
                    usize::from(raw[0]),
                    i + 1,
                    "shares are dealt at x = 1, 2, 3"
                );
            }
            // A share of a one-share keystore is the master key itself (a constant polynomial).
            let master = key(&s["master_key"]);
            let mut raw = vec![1u8];
            raw.extend_from_slice(master.expose());
            assert_eq!(
                deal_shares(&master, 1, 1),
                [format!(
                    "{SHARE_PREFIX}{}",
                    base64_simd::URL_SAFE_NO_PAD.encode_to_string(&raw)
                )]
            );
        }

        #[test]
        fn a_pkcs11_keystore_of_the_vectors_opens_sealed() {
            let tmp = copy("pkcs11");
            let ks = SealedKeystore::open(tmp.path()).unwrap();
            let status = ks.status();
            assert!(status.sealed);
            assert_eq!(status.threshold, 1);
            assert_eq!(
                ks.file.pkcs11,
                Some(Pkcs11Location {
                    module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                    token: "obhut".into(),
                })
            );
            assert_eq!(ks.tenant_state("acme"), Some(TenantKeyState::Active));
        }

        #[test]
        fn a_keystore_of_an_unknown_version_is_refused() {
            let tmp = copy("sealed-file");
            let path = tmp.path().join(FILE);
            let text = fs::read_to_string(&path)
                .unwrap()
                .replace("\"version\": 1,", "\"version\": 2,");
            fs::write(&path, text).unwrap();
            let Err(e) = SealedKeystore::open(tmp.path()) else {
                panic!("a version 2 keystore was opened");
            };
            assert!(
                e.to_string().contains("unsupported keystore version 2"),
                "{e}"
            );
        }
    }

    #[test]
    fn keystore_file_is_private_and_holds_no_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let shares = SealedKeystore::init(dir.path(), 2, 2).unwrap();
        let mut ks = SealedKeystore::open(dir.path()).unwrap();
        ks.unseal(&shares[0]).unwrap();
        ks.unseal(&shares[1]).unwrap();
        ks.ensure_tenant_key("demo").unwrap();
        let path = dir.path().join(FILE);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let master_hex = hex(ks.master().unwrap().expose());
        assert!(!text.contains(&master_hex));
        assert!(
            SealedKeystore::init(dir.path(), 2, 2).is_err(),
            "init never overwrites"
        );
    }

    #[test]
    fn master_rotation_keeps_tenant_keys_and_retires_old_shares() {
        let dir = tempfile::tempdir().unwrap();
        let old = SealedKeystore::init(dir.path(), 3, 2).unwrap();
        let mut ks = SealedKeystore::open(dir.path()).unwrap();
        ks.unseal(&old[0]).unwrap();
        ks.unseal(&old[1]).unwrap();
        ks.ensure_tenant_key("a").unwrap();
        ks.ensure_tenant_key("b").unwrap();
        let before = ks.seal_for("a", b"aad", b"bucket key").unwrap();
        drop(ks);

        assert!(
            SealedKeystore::rotate_master(dir.path(), &old[..1], 5, 3, |_, _| {}).is_err(),
            "one share is not enough to rotate"
        );
        let mut seen = Vec::new();
        let new =
            SealedKeystore::rotate_master(dir.path(), &old[1..], 5, 3, |d, t| seen.push((d, t)))
                .unwrap();
        assert_eq!(new.len(), 5);
        assert_eq!(seen, vec![(1, 2), (2, 2)]);

        let mut ks = SealedKeystore::open(dir.path()).unwrap();
        ks.unseal(&old[0]).unwrap();
        ks.unseal(&old[1]).unwrap();
        assert!(ks.unseal(&old[2]).is_err(), "old shares no longer unseal");
        assert!(ks.status().sealed);
        for s in &new[2..5] {
            ks.unseal(s).unwrap();
        }
        assert!(!ks.status().sealed);
        assert_eq!(
            ks.open_for("a", b"aad", &before).unwrap().as_slice(),
            b"bucket key"
        );
    }

    #[test]
    fn shares_from_another_keystore_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = SealedKeystore::init(a.path(), 3, 2).unwrap();
        let sb = SealedKeystore::init(b.path(), 3, 2).unwrap();
        let mut ks = SealedKeystore::open(a.path()).unwrap();
        ks.unseal(&sb[0]).unwrap();
        assert!(matches!(ks.unseal(&sb[1]), Err(TrusteeError::BadShare(_))));
        assert!(ks.status().sealed);
        assert!(matches!(
            ks.unseal("garbage"),
            Err(TrusteeError::BadShare(_))
        ));
        ks.unseal(&sa[0]).unwrap();
        assert!(!ks.unseal(&sa[1]).unwrap().sealed);
    }
}
