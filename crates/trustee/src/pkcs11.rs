//! Tenant keys held in a PKCS#11 token (an HSM, or SoftHSM2 for development and tests).
//!
//! This module owns the tenant keys of the PKCS#11 keystore. Each tenant key is an AES-256 secret
//! key generated inside the token (`CKM_AES_KEY_GEN`), labelled `obhut-tenant-<tenant>`, stored on
//! the token, private, sensitive and non-extractable. Its bytes never reach this process: every use
//! is a call into the token. It must never see object data, object names, or a tenant key's value.
//!
//! # Key attributes
//! SoftHSM (and other tokens) allow every use that is not explicitly forbidden, so every attribute
//! is set explicitly at generation: `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, `CKA_ENCRYPT`,
//! `CKA_DECRYPT`, `CKA_DESTROYABLE` true; `CKA_EXTRACTABLE`, `CKA_WRAP`, `CKA_UNWRAP`, `CKA_SIGN`,
//! `CKA_VERIFY`, `CKA_DERIVE`, `CKA_MODIFIABLE`, `CKA_COPYABLE` false. Every lookup reads the
//! attributes back and refuses ([`TrusteeError::Integrity`]) a key labelled as a tenant key that
//! does not have exactly this policy, or that was not generated inside the token and kept
//! sensitive and non-extractable all its life (`CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`,
//! `CKA_NEVER_EXTRACTABLE` true). So a key imported or weakened by someone else under a tenant's
//! label is never used.
//!
//! # Sealed values
//! [`Pkcs11TenantKeys::seal_value`] and [`Pkcs11TenantKeys::open_value`] use `CKM_AES_GCM` inside
//! the token and produce and accept exactly the layout of [`obhut_crypto::seal_value`]:
//! `version (1) = 1 | nonce (12) | ciphertext | tag (16)`, the caller's associated data passed to
//! the mechanism, a 128-bit tag. The nonce comes from the token's random number generator
//! (`C_GenerateRandom`); if a token writes back an IV of its own choosing, that IV is the one
//! stored. A value sealed by either backend therefore has the same format; only the key differs.
//! (They are named after `obhut_crypto`'s functions; `open` is the constructor, as elsewhere in
//! the trustee.) A failed tag check is [`TrusteeError::Integrity`]; SoftHSM 2.6 reports it as
//! `CKR_GENERAL_ERROR`, so that code, returned by `C_Decrypt` for a key that has just been found
//! and checked, is read as a failed check too.
//!
//! # Key-check values
//! A software key's check value is an HMAC computed with the key's bytes, which an HSM key never
//! exposes. An HSM tenant key's check value is computed inside the token instead: the first
//! 8 bytes of the AES-256-GCM encryption of 16 zero bytes under an all-zero 12-byte nonce with
//! associated data `"obhut kcv v1"` (that is, of the ciphertext, which is one AES block of the
//! key's counter-mode keystream, in the manner of a classic encrypt-zeros KCV). It identifies the
//! key and reveals nothing else of it. The fixed nonce is used only for this fixed input, so
//! repeating it only repeats the same output; sealed values use random nonces. The two kinds of
//! check value are not comparable with each other.
//!
//! # Sessions and threads
//! A PKCS#11 module is loaded and `C_Initialize`d once per process and path (cached in a
//! process-wide table, never finalized), since a second `C_Initialize` in the same process fails
//! and a `C_Finalize` would pull the module away from every other user. Each
//! [`Pkcs11TenantKeys`] keeps one read-write session logged in as the user, behind a [`Mutex`]
//! (cryptoki sessions are `Send` but not `Sync`), so calls through one instance are serialised.
//! Before each call the session's state is checked; a session that was closed (token removed and
//! re-inserted) is reopened, and one that was logged out (login state belongs to the process, so a
//! logout through another handle counts) is logged in again, with the PIN given to
//! [`Pkcs11TenantKeys::open`], which is kept in memory (zeroed on drop) for that.
//!
//! Key creation is idempotent within one process; two processes creating the same tenant's key at
//! the same instant could each create one, and lookups then refuse the ambiguous label.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use obhut_crypto::KCV_LEN;
use obhut_trustee_client::TrusteeError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Label prefix of tenant keys on the token.
pub const TENANT_LABEL_PREFIX: &str = "obhut-tenant-";

const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KCV_AAD: &[u8] = b"obhut kcv v1";

/// Tenant keys generated and used inside a PKCS#11 token.
pub struct Pkcs11TenantKeys {
    pkcs11: Pkcs11,
    module: PathBuf,
    token_label: String,
    pin: AuthPin,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Pkcs11TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11TenantKeys")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

/// A short description of a cryptoki error (its `Display` carries a paragraph of spec text).
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

fn storage(what: &str, e: &CkError) -> TrusteeError {
    TrusteeError::Storage(format!("PKCS#11 {what}: {}", describe(e)))
}

fn tenant_label(tenant: &str) -> String {
    format!("{TENANT_LABEL_PREFIX}{tenant}")
}

/// The module at `path`, loaded and initialised once per process.
fn context(path: &Path) -> Result<Pkcs11, TrusteeError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let canonical = path
        .canonicalize()
        .map_err(|e| TrusteeError::Storage(format!("PKCS#11 module {}: {e}", path.display())))?;
    let mut contexts = CONTEXTS
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| TrusteeError::Storage("PKCS#11 module table lock poisoned".into()))?;
    if let Some(ctx) = contexts.get(&canonical) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&canonical)
        .map_err(|e| storage(&format!("loading module {}", canonical.display()), &e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialised by another user of the same module in this process.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(storage("initialising the module", &e)),
    }
    contexts.insert(canonical, ctx.clone());
    Ok(ctx)
}

/// The one slot holding an initialised token labelled `label`.
fn find_slot(pkcs11: &Pkcs11, label: &str) -> Result<Slot, TrusteeError> {
    let slots = pkcs11
        .get_slots_with_initialized_token()
        .map_err(|e| storage("listing slots", &e))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = pkcs11
            .get_token_info(slot)
            .map_err(|e| storage("reading token information", &e))?;
        if info.label().trim_end() == label {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(TrusteeError::Storage(format!(
            "no initialised PKCS#11 token labelled {label:?}"
        ))),
        _ => Err(TrusteeError::Storage(format!(
            "{} PKCS#11 tokens are labelled {label:?}; token labels must be unique",
            found.len()
        ))),
    }
}

fn login(session: &Session, pin: &AuthPin) -> Result<(), TrusteeError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(storage("user login", &e)),
    }
}

fn open_session(pkcs11: &Pkcs11, label: &str, pin: &AuthPin) -> Result<Session, TrusteeError> {
    let slot = find_slot(pkcs11, label)?;
    let session = pkcs11
        .open_rw_session(slot)
        .map_err(|e| storage("opening a session", &e))?;
    login(&session, pin)?;
    Ok(session)
}

/// The attributes of a tenant key, set at generation and required of every key used as one.
fn tenant_key_policy() -> [Attribute; 15] {
    [
        // AES-256 (32 bytes)
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Destroyable(true),
    ]
}

/// Attributes only the token sets: the key was generated inside it and never left it.
fn tenant_key_provenance() -> [Attribute; 3] {
    [
        Attribute::Local(true),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
    ]
}

/// Handles of every AES secret key labelled as `tenant`'s key, whatever its attributes.
fn find_labelled(session: &Session, tenant: &str) -> Result<Vec<ObjectHandle>, TrusteeError> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Label(tenant_label(tenant).into_bytes()),
        ])
        .map_err(|e| storage("finding the tenant key", &e))
}

/// `tenant`'s key, checked against the tenant key policy.
fn find_tenant_key(session: &Session, tenant: &str) -> Result<ObjectHandle, TrusteeError> {
    let key = match find_labelled(session, tenant)?.as_slice() {
        [key] => *key,
        [] => return Err(TrusteeError::NoTenantKey(tenant.to_owned())),
        many => {
            return Err(TrusteeError::Integrity(format!(
                "{} keys on the token are labelled {:?}",
                many.len(),
                tenant_label(tenant)
            )));
        }
    };
    let required: Vec<Attribute> = tenant_key_policy()
        .into_iter()
        .chain(tenant_key_provenance())
        .collect();
    let types: Vec<AttributeType> = required.iter().map(Attribute::attribute_type).collect();
    let actual = session
        .get_attributes(key, &types)
        .map_err(|e| storage("reading the tenant key's attributes", &e))?;
    let violations: Vec<String> = required
        .iter()
        .filter(|want| !actual.contains(want))
        .map(|want| format!("{want:?}"))
        .collect();
    if !violations.is_empty() {
        return Err(TrusteeError::Integrity(format!(
            "the key labelled {:?} does not meet the tenant key policy (expected {}); \
             refusing to use it",
            tenant_label(tenant),
            violations.join(", ")
        )));
    }
    Ok(key)
}

/// AES-256-GCM encryption inside the token, in the layout of [`obhut_crypto::seal_value`].
fn seal_with(
    session: &Session,
    key: ObjectHandle,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, TrusteeError> {
    let mut nonce = [0u8; NONCE_LEN];
    session
        .generate_random_slice(&mut nonce)
        .map_err(|e| storage("generating a nonce", &e))?;
    let params =
        GcmParams::new(&mut nonce, aad, 128.into()).map_err(|e| storage("GCM parameters", &e))?;
    let body = session
        .encrypt(&Mechanism::AesGcm(params), key, plaintext)
        .map_err(|e| storage("AES-GCM encryption", &e))?;
    if body.len() != plaintext.len() + TAG_LEN {
        return Err(TrusteeError::Integrity(format!(
            "the token returned {} bytes of AES-GCM output for {} bytes of input",
            body.len(),
            plaintext.len()
        )));
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decryption inside the token of a value in the layout of [`obhut_crypto::seal_value`].
fn open_with(
    session: &Session,
    key: ObjectHandle,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, TrusteeError> {
    let (&version, rest) = sealed
        .split_first()
        .ok_or_else(|| TrusteeError::Integrity("empty sealed value".into()))?;
    if version != SEALED_VERSION {
        return Err(TrusteeError::Integrity(format!(
            "unsupported sealed value version {version}"
        )));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(TrusteeError::Integrity(
            "sealed value too short for a nonce and a tag".into(),
        ));
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let mut nonce = nonce.to_vec();
    let params =
        GcmParams::new(&mut nonce, aad, 128.into()).map_err(|e| storage("GCM parameters", &e))?;
    let plain = session
        .decrypt(&Mechanism::AesGcm(params), key, body)
        .map_err(|e| match e {
            // How tokens report a failed tag check. SoftHSM 2.6 reports it as
            // CKR_GENERAL_ERROR; the key has been checked just before, so that is what it means.
            CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::GeneralError
                | RvError::FunctionFailed,
                _,
            ) => TrusteeError::Integrity(format!(
                "sealed value failed authentication ({}): altered, or sealed under another key or \
                 associated data",
                describe(&e)
            )),
            other => storage("AES-GCM decryption", &other),
        })?;
    if plain.len() + TAG_LEN != body.len() {
        return Err(TrusteeError::Integrity(format!(
            "the token returned {} bytes of plaintext for {} bytes of ciphertext",
            plain.len(),
            body.len()
        )));
    }
    Ok(plain)
}

/// The key-check value computed inside the token (see the module documentation).
fn kcv_with(session: &Session, key: ObjectHandle) -> Result<[u8; KCV_LEN], TrusteeError> {
    let mut nonce = [0u8; NONCE_LEN];
    let params = GcmParams::new(&mut nonce, KCV_AAD, 128.into())
        .map_err(|e| storage("GCM parameters", &e))?;
    let out = session
        .encrypt(&Mechanism::AesGcm(params), key, &[0u8; 16])
        .map_err(|e| storage("computing the key-check value", &e))?;
    out.get(..KCV_LEN)
        .and_then(|kcv| kcv.try_into().ok())
        .ok_or_else(|| {
            TrusteeError::Integrity("the token returned a short key-check computation".into())
        })
}

impl Pkcs11TenantKeys {
    /// Loads the PKCS#11 module at `module_path`, finds the token labelled `token_label` and
    /// logs in to it as the user.
    ///
    /// PKCS#11 login state belongs to the process, not the session: while this process is
    /// already logged in to the token (through another handle), the token does not check
    /// `user_pin` again.
    pub fn open(
        module_path: impl AsRef<Path>,
        token_label: &str,
        user_pin: &str,
    ) -> Result<Self, TrusteeError> {
        let module = module_path.as_ref().to_path_buf();
        let pkcs11 = context(&module)?;
        let pin = AuthPin::from(user_pin.to_owned());
        let session = open_session(&pkcs11, token_label, &pin)?;
        Ok(Self {
            pkcs11,
            module,
            token_label: token_label.to_owned(),
            pin,
            session: Mutex::new(session),
        })
    }

    /// Runs `f` with the session, logged in as the user (reopened if it was lost).
    fn with_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, TrusteeError>,
    ) -> Result<T, TrusteeError> {
        let mut session = self
            .session
            .lock()
            .map_err(|_| TrusteeError::Storage("PKCS#11 session lock poisoned".into()))?;
        match session.get_session_info() {
            Ok(info) if info.session_state() == SessionState::RwUser => {}
            Ok(_) => login(&session, &self.pin)?,
            Err(e) => {
                tracing::warn!(
                    error = %describe(&e),
                    token = %self.token_label,
                    "PKCS#11 session lost; reopening"
                );
                *session = open_session(&self.pkcs11, &self.token_label, &self.pin)?;
            }
        }
        f(&session)
    }

    /// Generates `tenant`'s key inside the token, unless it has one already.
    ///
    /// An existing key that does not meet the tenant key policy is an error, not a success.
    /// Checks `pin` against the token itself. A PKCS#11 login belongs to the whole process, so
    /// opening a handle while logged in accepts any PIN; this logs out and in again with `pin`
    /// (and restores the login with this handle's own PIN if `pin` is wrong).
    pub fn verify_pin(&self, pin: &str) -> Result<(), TrusteeError> {
        let session = self
            .session
            .lock()
            .map_err(|_| TrusteeError::Storage("PKCS#11 session lock poisoned".into()))?;
        let _ = session.logout();
        let result = session.login(UserType::User, Some(&AuthPin::from(pin.to_owned())));
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                login(&session, &self.pin)?;
                Err(storage("user login", &e))
            }
        }
    }

    pub fn create_tenant_key(&self, tenant: &str) -> Result<(), TrusteeError> {
        self.with_session(|session| {
            match find_tenant_key(session, tenant) {
                Ok(_) => return Ok(()),
                Err(TrusteeError::NoTenantKey(_)) => {}
                Err(e) => return Err(e),
            }
            let mut template = vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(tenant_label(tenant).into_bytes()),
            ];
            template.extend(tenant_key_policy());
            session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| storage("generating the tenant key", &e))?;
            // Read the attributes back: the token must have honoured every one of them.
            find_tenant_key(session, tenant)?;
            tracing::info!(
                tenant = %obhut_core::logged(tenant),
                token = %self.token_label,
                "tenant key generated in the PKCS#11 token"
            );
            Ok(())
        })
    }

    /// Seals `plaintext` under `tenant`'s key, bound to `aad`, in the layout of
    /// [`obhut_crypto::seal_value`].
    pub fn seal_value(
        &self,
        tenant: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, TrusteeError> {
        self.with_session(|session| {
            let key = find_tenant_key(session, tenant)?;
            seal_with(session, key, aad, plaintext)
        })
    }

    /// Opens a value sealed under `tenant`'s key with `aad`; a wrong `aad`, another key or altered
    /// bytes give [`TrusteeError::Integrity`].
    pub fn open_value(
        &self,
        tenant: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, TrusteeError> {
        self.with_session(|session| {
            let key = find_tenant_key(session, tenant)?;
            open_with(session, key, aad, sealed)
        })
    }

    /// The key-check value of `tenant`'s key, computed inside the token.
    pub fn key_check_value(&self, tenant: &str) -> Result<[u8; KCV_LEN], TrusteeError> {
        self.with_session(|session| {
            let key = find_tenant_key(session, tenant)?;
            kcv_with(session, key)
        })
    }

    /// Destroys `tenant`'s key in the token (crypto-shred): everything sealed under it becomes
    /// unreadable. Every key carrying the tenant's label is destroyed, whatever its attributes.
    /// [`TrusteeError::NoTenantKey`] if there is none.
    pub fn destroy_tenant_key(&self, tenant: &str) -> Result<(), TrusteeError> {
        self.with_session(|session| {
            let keys = find_labelled(session, tenant)?;
            if keys.is_empty() {
                return Err(TrusteeError::NoTenantKey(tenant.to_owned()));
            }
            for key in keys {
                session
                    .destroy_object(key)
                    .map_err(|e| storage("destroying the tenant key", &e))?;
            }
            tracing::info!(
                tenant = %obhut_core::logged(tenant),
                token = %self.token_label,
                "tenant key destroyed in the PKCS#11 token"
            );
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    //! These tests run against a real SoftHSM2 token. SoftHSM reads its configuration from
    //! `SOFTHSM2_CONF` when the module is initialised, and the environment is process-wide (and
    //! changing it is `unsafe`, which this workspace forbids), so each test re-runs itself in a
    //! child process of this test binary, with `SOFTHSM2_CONF` pointing at a fresh token
    //! directory in a temporary directory that is removed afterwards.

    use super::*;
    use obhut_crypto::Key;
    use std::process::Command;
    use std::sync::Arc;

    const MODULES: [&str; 2] = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ];
    /// Set in the child process that runs a test body against its own token.
    const CHILD: &str = "OBHUT_PKCS11_TEST_CHILD";
    const TOKEN: &str = "obhut-test";
    const SO_PIN: &str = "so-pin-1234";
    const USER_PIN: &str = "user-pin-5678";

    fn softhsm_module() -> PathBuf {
        MODULES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "the SoftHSM2 PKCS#11 module is not installed (looked for {MODULES:?}); \
                     install Debian's `softhsm2` package: apt-get install softhsm2"
                )
            })
    }

    /// Runs `body` with a freshly initialised token (in a child process; see the module doc).
    fn with_token(test: &str, body: impl FnOnce(&Pkcs11TenantKeys)) {
        let module = softhsm_module();
        if std::env::var_os(CHILD).is_some() {
            let pkcs11 = context(&module).unwrap();
            let slot = pkcs11.get_slots_with_token().unwrap()[0];
            let so_pin = AuthPin::from(SO_PIN.to_owned());
            pkcs11.init_token(slot, &so_pin, TOKEN).unwrap();
            {
                let so = pkcs11.open_rw_session(slot).unwrap();
                so.login(UserType::So, Some(&so_pin)).unwrap();
                so.init_pin(&AuthPin::from(USER_PIN.to_owned())).unwrap();
                so.logout().unwrap();
            }
            body(&Pkcs11TenantKeys::open(&module, TOKEN, USER_PIN).unwrap());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let module_path = module_path!();
        let path = module_path
            .split_once("::")
            .map_or(module_path, |(_crate, rest)| rest);
        let name = format!("{path}::{test}");
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env("SOFTHSM2_CONF", &conf)
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name} failed against SoftHSM2:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("1 passed"),
            "{name} did not run in the child process:\n{stdout}\n{stderr}"
        );
    }

    fn is_integrity<T: std::fmt::Debug>(r: &Result<T, TrusteeError>) -> bool {
        matches!(r, Err(TrusteeError::Integrity(_)))
    }

    /// A session key with a known value, for tests that compare the token with software.
    fn known_key(session: &Session, value: &[u8; 32], extra: &[Attribute]) -> ObjectHandle {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(value.to_vec()),
        ];
        template.extend_from_slice(extra);
        session.create_object(&template).unwrap()
    }

    #[test]
    fn tenant_keys_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pkcs11TenantKeys>();
    }

    #[test]
    fn sealed_values_round_trip_in_the_software_layout() {
        with_token("sealed_values_round_trip_in_the_software_layout", |keys| {
            keys.create_tenant_key("acme").unwrap();
            let aad = b"obhut bucket key v1\0acme\0photos\0\0\0\0\x01";
            let secret = [0x5a; 32];
            let sealed = keys.seal_value("acme", aad, &secret).unwrap();
            assert_eq!(sealed[0], 1, "version byte");
            assert_eq!(sealed.len(), 1 + 12 + secret.len() + 16);
            assert_eq!(keys.open_value("acme", aad, &sealed).unwrap(), secret);
            let again = keys.seal_value("acme", aad, &secret).unwrap();
            assert_ne!(
                sealed[1..13],
                again[1..13],
                "every seal takes a fresh nonce"
            );
            assert_ne!(sealed, again);
            // empty plaintext and empty associated data are values like any other
            let empty = keys.seal_value("acme", b"", b"").unwrap();
            assert_eq!(empty.len(), 1 + 12 + 16);
            assert_eq!(keys.open_value("acme", b"", &empty).unwrap(), b"");
            assert!(is_integrity(&keys.open_value("acme", b"x", &empty)));
        });
    }

    #[test]
    fn the_layout_is_byte_compatible_with_obhut_crypto() {
        with_token("the_layout_is_byte_compatible_with_obhut_crypto", |keys| {
            // The tenant-key path refuses imported keys, so compare the mechanism code on a
            // session key with a known value against obhut_crypto with the same value.
            let value = [0x42; 32];
            let software = Key::from_bytes(value);
            keys.with_session(|s| {
                let key = known_key(
                    s,
                    &value,
                    &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
                );
                let by_token = seal_with(s, key, b"ctx", b"bucket key bytes").unwrap();
                assert_eq!(
                    obhut_crypto::open_value(&software, b"ctx", &by_token).unwrap(),
                    b"bucket key bytes"
                );
                let by_software =
                    obhut_crypto::seal_value(&software, b"ctx", b"other bytes").unwrap();
                assert_eq!(
                    open_with(s, key, b"ctx", &by_software).unwrap(),
                    b"other bytes"
                );
                assert!(is_integrity(&open_with(s, key, b"ctx2", &by_software)));
                Ok(())
            })
            .unwrap();
            // A tenant key is not the software key: each side authenticates, then refuses.
            keys.create_tenant_key("acme").unwrap();
            let hsm_sealed = keys.seal_value("acme", b"ctx", b"v").unwrap();
            assert_eq!(
                obhut_crypto::open_value(&software, b"ctx", &hsm_sealed),
                Err(obhut_crypto::CryptoError::Authentication),
                "the software parser accepts the layout and fails only on the key"
            );
            let sw_sealed = obhut_crypto::seal_value(&software, b"ctx", b"v").unwrap();
            assert!(is_integrity(&keys.open_value("acme", b"ctx", &sw_sealed)));
        });
    }

    #[test]
    fn altered_values_and_wrong_associated_data_fail_integrity() {
        with_token(
            "altered_values_and_wrong_associated_data_fail_integrity",
            |keys| {
                keys.create_tenant_key("acme").unwrap();
                let sealed = keys
                    .seal_value("acme", b"acme/photos/1", b"0123456789abcdef")
                    .unwrap();
                assert!(is_integrity(&keys.open_value(
                    "acme",
                    b"acme/photos/2",
                    &sealed
                )));
                assert!(is_integrity(&keys.open_value("acme", b"", &sealed)));
                // a flipped bit anywhere: version, nonce, ciphertext, tag
                for i in [0, 1, 12, 13, 20, sealed.len() - 1] {
                    let mut flipped = sealed.clone();
                    flipped[i] ^= 0x01;
                    assert!(
                        is_integrity(&keys.open_value("acme", b"acme/photos/1", &flipped)),
                        "byte {i} flipped"
                    );
                }
                for len in [0, 1, 13, 28, sealed.len() - 1] {
                    assert!(
                        is_integrity(&keys.open_value("acme", b"acme/photos/1", &sealed[..len])),
                        "truncated to {len}"
                    );
                }
                let mut extended = sealed.clone();
                extended.push(0);
                assert!(is_integrity(&keys.open_value(
                    "acme",
                    b"acme/photos/1",
                    &extended
                )));
                // and the original still opens: nothing above disturbed the session
                assert_eq!(
                    keys.open_value("acme", b"acme/photos/1", &sealed).unwrap(),
                    b"0123456789abcdef"
                );
            },
        );
    }

    #[test]
    fn a_value_sealed_for_one_tenant_does_not_open_for_another() {
        with_token(
            "a_value_sealed_for_one_tenant_does_not_open_for_another",
            |keys| {
                keys.create_tenant_key("a").unwrap();
                keys.create_tenant_key("b").unwrap();
                let sealed = keys.seal_value("a", b"aad", b"secret").unwrap();
                assert!(is_integrity(&keys.open_value("b", b"aad", &sealed)));
                assert!(matches!(
                    keys.open_value("c", b"aad", &sealed),
                    Err(TrusteeError::NoTenantKey(t)) if t == "c"
                ));
                let kcv_a = keys.key_check_value("a").unwrap();
                assert_ne!(kcv_a, keys.key_check_value("b").unwrap());
                assert_eq!(kcv_a, keys.key_check_value("a").unwrap(), "stable");
                assert_ne!(kcv_a, [0; 8]);
            },
        );
    }

    #[test]
    fn tenant_keys_never_leave_the_token() {
        with_token("tenant_keys_never_leave_the_token", |keys| {
            keys.create_tenant_key("acme").unwrap();
            keys.with_session(|s| {
                let key = find_tenant_key(s, "acme").unwrap();
                let info = s.get_attribute_info(key, &[AttributeType::Value]).unwrap();
                assert!(
                    matches!(
                        info.as_slice(),
                        [cryptoki::object::AttributeInfo::Sensitive]
                    ),
                    "CKA_VALUE: {info:?}"
                );
                let read = s.get_attributes(key, &[AttributeType::Value]).unwrap();
                assert!(read.is_empty(), "CKA_VALUE was readable: {read:?}");
                // a key allowed to wrap, and an extractable key it can wrap (the control)
                let wrapping = known_key(
                    s,
                    &[7; 32],
                    &[Attribute::Wrap(true), Attribute::Encrypt(true)],
                );
                let extractable = known_key(s, &[9; 32], &[Attribute::Extractable(true)]);
                for mechanism in [Mechanism::AesKeyWrap, Mechanism::AesKeyWrapPad] {
                    let control = s.wrap_key(&mechanism, wrapping, extractable);
                    assert!(control.is_ok(), "{mechanism:?} control: {control:?}");
                    let r = s.wrap_key(&mechanism, wrapping, key);
                    assert!(
                        matches!(r, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))),
                        "{mechanism:?} wrapped the tenant key: {r:?}"
                    );
                }
                // the token itself vouches that the key never existed outside it
                for attr in tenant_key_provenance() {
                    let got = s.get_attributes(key, &[attr.attribute_type()]).unwrap();
                    assert_eq!(got, vec![attr]);
                }
                Ok(())
            })
            .unwrap();
        });
    }

    #[test]
    fn tenant_keys_serve_only_encryption_and_cannot_be_changed() {
        with_token(
            "tenant_keys_serve_only_encryption_and_cannot_be_changed",
            |keys| {
                keys.create_tenant_key("acme").unwrap();
                keys.with_session(|s| {
                    let key = find_tenant_key(s, "acme").unwrap();
                    let extractable = known_key(s, &[9; 32], &[Attribute::Extractable(true)]);
                    let refused = |what: &str, r: Result<Vec<u8>, CkError>| {
                        assert!(r.is_err(), "{what} with the tenant key succeeded: {r:?}");
                    };
                    refused(
                        "C_WrapKey (AES key wrap)",
                        s.wrap_key(&Mechanism::AesKeyWrap, key, extractable),
                    );
                    refused(
                        "C_WrapKey (AES key wrap, padded)",
                        s.wrap_key(&Mechanism::AesKeyWrapPad, key, extractable),
                    );
                    refused(
                        "C_Sign (AES-CMAC)",
                        s.sign(&Mechanism::AesCMac, key, b"data"),
                    );
                    assert!(
                        s.verify(&Mechanism::AesCMac, key, b"data", &[0; 16])
                            .is_err(),
                        "C_Verify with the tenant key was allowed"
                    );
                    let unwrapped = s.unwrap_key(
                        &Mechanism::AesKeyWrap,
                        key,
                        &[0u8; 40],
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::Token(false),
                        ],
                    );
                    assert!(
                        matches!(
                            unwrapped,
                            Err(CkError::Pkcs11(RvError::KeyFunctionNotPermitted, _))
                        ),
                        "C_UnwrapKey with the tenant key: {unwrapped:?}"
                    );
                    let data = [0u8; 32];
                    let derived = s.derive_key(
                        &Mechanism::AesCbcEncryptData(
                            cryptoki::mechanism::ekdf::AesCbcDeriveParams::new([0; 16], &data),
                        ),
                        key,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::Token(false),
                            Attribute::Extractable(true),
                            Attribute::Sensitive(false),
                        ],
                    );
                    assert!(
                        derived.is_err(),
                        "C_DeriveKey from the tenant key: {derived:?}"
                    );
                    // the policy cannot be loosened afterwards, in place or on a copy
                    for loosen in [
                        Attribute::Extractable(true),
                        Attribute::Sensitive(false),
                        Attribute::Wrap(true),
                        Attribute::Sign(true),
                        Attribute::Label(b"renamed".to_vec()),
                    ] {
                        let r = s.update_attributes(key, std::slice::from_ref(&loosen));
                        assert!(r.is_err(), "C_SetAttributeValue {loosen:?} succeeded");
                    }
                    let copy = s.copy_object(key, &[Attribute::Token(false)]);
                    assert!(copy.is_err(), "C_CopyObject of the tenant key: {copy:?}");
                    Ok(())
                })
                .unwrap();
                // and it still works for what it is for
                let sealed = keys.seal_value("acme", b"", b"x").unwrap();
                assert_eq!(keys.open_value("acme", b"", &sealed).unwrap(), b"x");
            },
        );
    }

    #[test]
    fn create_is_idempotent() {
        with_token("create_is_idempotent", |keys| {
            keys.create_tenant_key("acme").unwrap();
            let kcv = keys.key_check_value("acme").unwrap();
            let sealed = keys.seal_value("acme", b"", b"v").unwrap();
            keys.create_tenant_key("acme").unwrap();
            assert_eq!(keys.key_check_value("acme").unwrap(), kcv);
            assert_eq!(keys.open_value("acme", b"", &sealed).unwrap(), b"v");
            let count = keys
                .with_session(|s| find_labelled(s, "acme"))
                .unwrap()
                .len();
            assert_eq!(count, 1);
        });
    }

    #[test]
    fn a_labelled_key_that_breaks_the_policy_is_refused() {
        with_token("a_labelled_key_that_breaks_the_policy_is_refused", |keys| {
            // someone imports a known, extractable key under a tenant's label
            keys.with_session(|s| {
                let mut template = vec![
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Label(tenant_label("mallory").into_bytes()),
                    Attribute::Value(vec![1; 32]),
                ];
                // every other attribute as policy demands (CKA_VALUE_LEN follows from CKA_VALUE)
                template.extend(tenant_key_policy().into_iter().filter_map(|a| match a {
                    Attribute::ValueLen(_) => None,
                    Attribute::Extractable(_) => Some(Attribute::Extractable(true)),
                    other => Some(other),
                }));
                s.create_object(&template)
                    .map_err(|e| storage("test import", &e))
            })
            .unwrap();
            assert!(is_integrity(&keys.create_tenant_key("mallory")));
            assert!(is_integrity(&keys.seal_value("mallory", b"", b"x")));
            assert!(is_integrity(&keys.key_check_value("mallory")));
            // crypto-shred still removes it, and a proper key can then be made
            keys.destroy_tenant_key("mallory").unwrap();
            keys.create_tenant_key("mallory").unwrap();
            keys.seal_value("mallory", b"", b"x").unwrap();
        });
    }

    #[test]
    fn destroying_a_tenant_key_shreds_what_it_sealed() {
        with_token("destroying_a_tenant_key_shreds_what_it_sealed", |keys| {
            keys.create_tenant_key("acme").unwrap();
            let kcv = keys.key_check_value("acme").unwrap();
            let sealed = keys.seal_value("acme", b"aad", b"bucket key").unwrap();
            keys.destroy_tenant_key("acme").unwrap();
            let no_key = |r: Result<Vec<u8>, TrusteeError>| {
                assert!(
                    matches!(&r, Err(TrusteeError::NoTenantKey(t)) if t == "acme"),
                    "{r:?}"
                );
            };
            no_key(keys.seal_value("acme", b"aad", b"bucket key"));
            no_key(keys.open_value("acme", b"aad", &sealed));
            assert!(matches!(
                keys.key_check_value("acme"),
                Err(TrusteeError::NoTenantKey(_))
            ));
            assert!(matches!(
                keys.destroy_tenant_key("acme"),
                Err(TrusteeError::NoTenantKey(_))
            ));
            // a new key under the same name is a different key
            keys.create_tenant_key("acme").unwrap();
            assert_ne!(keys.key_check_value("acme").unwrap(), kcv);
            assert!(is_integrity(&keys.open_value("acme", b"aad", &sealed)));
        });
    }

    #[test]
    fn keys_persist_and_lost_logins_are_restored() {
        with_token("keys_persist_and_lost_logins_are_restored", |keys| {
            keys.create_tenant_key("acme").unwrap();
            let sealed = keys.seal_value("acme", b"aad", b"v").unwrap();
            // a logout (by anyone in this process) must not read as "no key"
            keys.with_session(|s| s.logout().map_err(|e| storage("test logout", &e)))
                .unwrap();
            assert_eq!(keys.open_value("acme", b"aad", &sealed).unwrap(), b"v");
            // a second handle on the same token sees the same key
            let other = Pkcs11TenantKeys::open(softhsm_module(), TOKEN, USER_PIN).unwrap();
            assert_eq!(other.open_value("acme", b"aad", &sealed).unwrap(), b"v");
            assert_eq!(
                other.key_check_value("acme").unwrap(),
                keys.key_check_value("acme").unwrap()
            );
            // many threads share one handle
            let shared = Arc::new(other);
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let keys = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        for j in 0..25 {
                            let aad = format!("{i}/{j}");
                            let s = keys.seal_value("acme", aad.as_bytes(), &[i; 32]).unwrap();
                            assert_eq!(
                                keys.open_value("acme", aad.as_bytes(), &s).unwrap(),
                                [i; 32]
                            );
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        });
    }

    #[test]
    fn wrong_pin_or_unknown_token_is_refused() {
        with_token("wrong_pin_or_unknown_token_is_refused", |keys| {
            let module = softhsm_module();
            // PKCS#11 login state is per process and token: log out so the PIN is checked
            keys.with_session(|s| s.logout().map_err(|e| storage("test logout", &e)))
                .unwrap();
            let r = Pkcs11TenantKeys::open(&module, TOKEN, "not-the-pin");
            assert!(
                matches!(&r, Err(TrusteeError::Storage(m)) if m.contains("PinIncorrect")),
                "{r:?}"
            );
            let r = Pkcs11TenantKeys::open(&module, "no-such-token", USER_PIN);
            assert!(
                matches!(&r, Err(TrusteeError::Storage(m)) if m.contains("no-such-token")),
                "{r:?}"
            );
            let r = Pkcs11TenantKeys::open("/nonexistent/libpkcs11.so", TOKEN, USER_PIN);
            assert!(matches!(r, Err(TrusteeError::Storage(_))), "{r:?}");
        });
    }

    #[test]
    fn a_trustee_with_pkcs11_custody_logs_in_releases_and_shreds() {
        with_token(
            "a_trustee_with_pkcs11_custody_logs_in_releases_and_shreds",
            |token| {
                use crate::{Pkcs11Location, SealedKeystore, Trustee};
                use obhut_trustee_client::TrusteeClient;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let dir = tempfile::tempdir().unwrap();
                SealedKeystore::init_pkcs11(
                    dir.path(),
                    Pkcs11Location {
                        module: softhsm_module(),
                        token: TOKEN.into(),
                    },
                )
                .unwrap();
                rt.block_on(async {
                    let t = Trustee::open(dir.path()).unwrap();
                    let why = t.test_customer("a");
                    assert!(t.seal_status().await.unwrap().sealed, "starts logged out");
                    assert!(matches!(
                        t.unseal("not-the-pin").await,
                        Err(TrusteeError::BadShare(_))
                    ));
                    assert!(!t.unseal(USER_PIN).await.unwrap().sealed);
                    t.ensure_tenant_key("a").await.unwrap();
                    let wk = t.create_bucket_key("a", "b", 1, &why).await.unwrap();
                    let k1 = t.release_bucket_key("a", "b", &wk, &why).await.unwrap();
                    // The tenant key is in the token: nothing in the keystore file can open it.
                    let text = std::fs::read_to_string(dir.path().join("keystore.json")).unwrap();
                    assert!(text.contains("\"wrapped\": \"\""), "{text}");
                    let other = t.test_customer("x");
                    assert!(matches!(
                        t.release_bucket_key("a", "b", &wk, &other).await,
                        Err(TrusteeError::Denied(_))
                    ));
                    t.seal().await.unwrap();
                    assert!(matches!(
                        t.release_bucket_key("a", "b", &wk, &why).await,
                        Err(TrusteeError::Sealed(..))
                    ));
                    t.unseal(USER_PIN).await.unwrap();
                    let k2 = t.release_bucket_key("a", "b", &wk, &why).await.unwrap();
                    assert_eq!(k1.expose(), k2.expose());
                    t.destroy_tenant_key("a").unwrap();
                    assert!(matches!(
                        t.release_bucket_key("a", "b", &wk, &why).await,
                        Err(TrusteeError::TenantKeyDestroyed(_))
                    ));
                });
                // Gone from the token itself, not only marked in the file.
                assert!(matches!(
                    token.seal_value("a", b"x", b"y"),
                    Err(TrusteeError::NoTenantKey(_))
                ));
            },
        );
    }
}
