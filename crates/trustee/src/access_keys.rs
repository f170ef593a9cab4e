//! Tenants' S3 access keys in the trustee's custody (`access-keys.db`).
//!
//! Each secret is stored sealed under its tenant's key, with associated data that binds it to
//! its access key id and tenant: a row copied to another id or tenant, or a secret written in
//! by hand, does not open, and is reported as an integrity failure rather than used. A revoked
//! key's sealed secret is erased, so an edit cannot revive it. Destroying a tenant's key
//! (crypto-shred) makes its access keys unusable too.
//!
//! It owns the table; sealing is the keystore's, deciding who may create or revoke is the
//! governance rules'. Secrets leave this module only to be checked against a signature inside
//! the trustee ([`crate::verify`]), or once, to the tenant admin who created the key.

use obhut_trustee_client::TrusteeError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: obhut_migrate::Schema = obhut_migrate::Schema {
    name: "access-keys.db",
    migrations: &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3],
    identifying_table: "access_keys",
};

/// `sealed` is NULL once the key is revoked.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    sealed BLOB,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    imported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS access_keys_by_tenant ON access_keys (tenant);
";

/// A scoped key's policy (IAM JSON, `obhut_core::iam`), NULL for a key of the whole tenant.
/// The policy is bound into the sealed secret's associated data ([`secret_aad`]): an edit of
/// this column leaves a secret that no longer opens.
const SCHEMA_V2: &str = "ALTER TABLE access_keys ADD COLUMN policy TEXT;";

/// When the one import of the access keys an earlier release kept in the catalog in clear was
/// done (`obhut serve`'s upgrade): after it, keys found in the catalog are not imported (they
/// can only have been written there by hand). A database of the release before has no row:
/// its next start may still import once.
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS legacy_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    done_ms INTEGER NOT NULL
);
";

/// Prefix of tenants' access key ids (grants' temporary ones start `OBG`).
pub const TENANT_KEY_PREFIX: &str = "OBK";

/// The associated data that binds a sealed secret to its key id, tenant and, for a scoped
/// key, its policy: a key of the whole tenant keeps the first form (so keys stored before
/// scoped keys existed still open), a scoped key's names its policy text, so that neither
/// dropping nor changing the policy leaves a secret that opens.
#[must_use]
pub fn secret_aad(access_key_id: &str, tenant: &str, policy: Option<&str>) -> Vec<u8> {
    let mut aad = match policy {
        None => b"obhut access key v1\0".to_vec(),
        Some(_) => b"obhut access key v2\0".to_vec(),
    };
    aad.extend_from_slice(access_key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(tenant.as_bytes());
    if let Some(policy) = policy {
        aad.push(0);
        aad.extend_from_slice(policy.as_bytes());
    }
    aad
}

/// One key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub access_key_id: String,
    pub tenant: String,
    /// `None` once revoked.
    pub sealed: Option<Vec<u8>>,
    pub state: String,
    pub created_ms: i64,
    /// A scoped key's policy; `None` for a key of the whole tenant.
    pub policy: Option<String>,
}

/// One key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub access_key_id: String,
    pub state: String,
    pub created_ms: i64,
    pub policy: Option<String>,
}

pub struct AccessKeys {
    db: Mutex<Connection>,
}

fn storage(e: impl std::fmt::Display) -> TrusteeError {
    TrusteeError::Storage(format!("access keys: {e}"))
}

impl AccessKeys {
    /// Opens (or creates, 0600) `dir/access-keys.db`.
    pub fn open(dir: &Path) -> Result<Self, TrusteeError> {
        let path = dir.join("access-keys.db");
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(storage)?;
        }
        let mut conn = Connection::open(&path).map_err(storage)?;
        // secure_delete: a revoked key's sealed secret is overwritten, not left in a free page.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;",
        )
        .map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(storage)?;
        obhut_migrate::migrate(&mut conn, &SCHEMA).map_err(storage)?;
        Ok(Self {
            db: Mutex::new(conn),
        })
    }

    fn db(&self) -> Result<std::sync::MutexGuard<'_, Connection>, TrusteeError> {
        self.db
            .lock()
            .map_err(|_| TrusteeError::Storage("access keys lock poisoned".into()))
    }

    /// When the import of the catalog's legacy access keys was done, if it was.
    pub fn legacy_import_done(&self) -> Result<Option<i64>, TrusteeError> {
        self.db()?
            .query_row("SELECT done_ms FROM legacy_import WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(storage)
    }

    /// Records that the import of the catalog's legacy access keys is done (once: a later
    /// call keeps the first time).
    pub fn set_legacy_import_done(&self, now_ms: i64) -> Result<(), TrusteeError> {
        self.db()?
            .execute(
                "INSERT INTO legacy_import (id, done_ms) VALUES (1, ?1) ON CONFLICT(id) DO NOTHING",
                params![now_ms],
            )
            .map_err(storage)?;
        Ok(())
    }

    /// Stores a new key's sealed secret.
    pub fn insert(
        &self,
        access_key_id: &str,
        tenant: &str,
        sealed: &[u8],
        policy: Option<&str>,
        now_ms: i64,
        imported: bool,
    ) -> Result<(), TrusteeError> {
        let n = self
            .db()?
            .execute(
                "INSERT INTO access_keys (access_key_id, tenant, sealed, state, created_ms, imported, policy)
                 VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6) ON CONFLICT(access_key_id) DO NOTHING",
                params![access_key_id, tenant, sealed, now_ms, i64::from(imported), policy],
            )
            .map_err(storage)?;
        if n == 0 {
            return Err(TrusteeError::Conflict(format!(
                "access key {access_key_id} exists already"
            )));
        }
        Ok(())
    }

    pub fn get(&self, access_key_id: &str) -> Result<Option<StoredKey>, TrusteeError> {
        self.db()?
            .query_row(
                "SELECT access_key_id, tenant, sealed, state, created_ms, policy FROM access_keys WHERE access_key_id = ?1",
                params![access_key_id],
                |r| {
                    Ok(StoredKey {
                        access_key_id: r.get(0)?,
                        tenant: r.get(1)?,
                        sealed: r.get(2)?,
                        state: r.get(3)?,
                        created_ms: r.get(4)?,
                        policy: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(storage)
    }

    /// Revokes a key of `tenant`: its sealed secret is erased. `false` if it has no such key.
    pub fn revoke(
        &self,
        tenant: &str,
        access_key_id: &str,
        now_ms: i64,
    ) -> Result<bool, TrusteeError> {
        let n = self
            .db()?
            .execute(
                "UPDATE access_keys SET sealed = NULL, state = 'revoked', revoked_ms = ?3
                 WHERE access_key_id = ?1 AND tenant = ?2 AND state = 'active'",
                params![access_key_id, tenant, now_ms],
            )
            .map_err(storage)?;
        Ok(n == 1)
    }

    /// The keys of a tenant, oldest first. The policy listed is the column as it is: the
    /// one a key is used with is checked against its seal each time.
    pub fn list(&self, tenant: &str) -> Result<Vec<ListedKey>, TrusteeError> {
        let db = self.db()?;
        let mut stmt = db
            .prepare(
                "SELECT access_key_id, state, created_ms, policy FROM access_keys WHERE tenant = ?1 ORDER BY created_ms, access_key_id",
            )
            .map_err(storage)?;
        stmt.query_map(params![tenant], |r| {
            Ok(ListedKey {
                access_key_id: r.get(0)?,
                state: r.get(1)?,
                created_ms: r.get(2)?,
                policy: r.get(3)?,
            })
        })
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_stored_revoked_and_listed_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AccessKeys::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("access-keys.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        keys.insert("OBKA", "t", b"sealed", None, 1, false).unwrap();
        assert!(matches!(
            keys.insert("OBKA", "u", b"x", None, 2, false),
            Err(TrusteeError::Conflict(_))
        ));
        assert_eq!(keys.get("OBKA").unwrap().unwrap().tenant, "t");
        // Another tenant cannot revoke it; its own can, once.
        assert!(!keys.revoke("u", "OBKA", 3).unwrap());
        assert!(keys.revoke("t", "OBKA", 3).unwrap());
        assert!(!keys.revoke("t", "OBKA", 4).unwrap());
        let k = keys.get("OBKA").unwrap().unwrap();
        assert_eq!((k.sealed, k.state.as_str()), (None, "revoked"));
        assert_eq!(
            keys.list("t").unwrap(),
            vec![ListedKey {
                access_key_id: "OBKA".into(),
                state: "revoked".into(),
                created_ms: 1,
                policy: None
            }]
        );
        assert!(keys.get("OBKB").unwrap().is_none());
    }

    /// A file written by the release before scoped keys (schema version 1, made here with
    /// that release's statements) opens, is migrated to version 2, and its keys read as keys
    /// of the whole tenant, their associated data unchanged.
    #[test]
    fn backward_compatibility_a_version_1_file_reads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("access-keys.db")).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch("PRAGMA user_version = 1;").unwrap();
            conn.execute(
                "INSERT INTO access_keys (access_key_id, tenant, sealed, state, created_ms, imported)
                 VALUES ('OBKOLD', 't', x'0102', 'active', 7, 0)",
                [],
            )
            .unwrap();
        }
        let keys = AccessKeys::open(dir.path()).unwrap();
        let k = keys.get("OBKOLD").unwrap().unwrap();
        assert_eq!(k.sealed.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!((k.state.as_str(), k.policy), ("active", None));
        let version: u32 = keys
            .db()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3);
        // Nothing records the legacy import yet: its next start may still do it.
        assert_eq!(keys.legacy_import_done().unwrap(), None);
        keys.set_legacy_import_done(9).unwrap();
        keys.set_legacy_import_done(10).unwrap();
        assert_eq!(
            keys.legacy_import_done().unwrap(),
            Some(9),
            "the first time is kept"
        );
        assert_eq!(
            secret_aad("OBKOLD", "t", None),
            b"obhut access key v1\0OBKOLD\0t".to_vec()
        );
        // A scoped key's seal names its policy: another policy, or none, is another seal.
        keys.insert("OBKNEW", "t", b"s", Some("{}"), 8, false)
            .unwrap();
        assert_eq!(
            keys.get("OBKNEW").unwrap().unwrap().policy.as_deref(),
            Some("{}")
        );
        assert_ne!(
            secret_aad("OBKNEW", "t", Some("{}")),
            secret_aad("OBKNEW", "t", Some("{ }"))
        );
        assert_ne!(
            secret_aad("OBKNEW", "t", Some("")),
            secret_aad("OBKNEW", "t", None)
        );
    }
}
