//! The upgrade of records written by the release before, against an in-memory catalog and a
//! stand-in trustee that releases bucket keys (or is sealed) and records what it is told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::GatewayConfig;
use crate::keys::Binding;
use crate::meta::{Checksums, ObjectMeta};
use crate::s3::KeyMemo;
use async_trait::async_trait;
use obhut_catalog::{
    Bucket, BucketKey, Catalog, Chunk, ObjectRecord, Part, PutCondition, SqliteCatalog, Tenant,
};
use obhut_core::{BlobId, TenantResidency};
use obhut_maintenance::{Maintenance, PolicyError, PolicySource, SiteSet, Workers};
use obhut_trustee_client::{
    GrantAccess, GrantScope, IntegrityAlarm, LogRead, PrincipalInfo, Query, Revocation, SealStatus,
    SignedStatement, TenantKeyStatus, TrusteeClient,
};
use s3s::S3ErrorCode;
use std::sync::{Arc, Mutex};

/// Bucket keys "wrapped" as themselves: enough to release them; sealed until told otherwise.
struct StandIn {
    sealed: AtomicBool,
    /// The tenant key is disabled (a shred in its grace period).
    disabled: AtomicBool,
    attested: Mutex<Vec<(String, Option<String>)>>,
    alarms: Mutex<Vec<IntegrityAlarm>>,
    revocations: tokio::sync::broadcast::Sender<Revocation>,
}

fn no<T>() -> Result<T, TrusteeError> {
    Err(TrusteeError::Invalid("not in this test".into()))
}

#[async_trait]
impl TrusteeClient for StandIn {
    async fn ensure_tenant_key(&self, _: &str) -> Result<(), TrusteeError> {
        Ok(())
    }
    async fn create_bucket_key(
        &self,
        _: &str,
        _: &str,
        version: u32,
        _: &Justification,
    ) -> Result<WrappedKey, TrusteeError> {
        let k = Key::random().unwrap();
        Ok(WrappedKey {
            version,
            kcv: obhut_crypto::key_check_value(&k),
            wrapped: k.expose().to_vec(),
        })
    }
    async fn release_bucket_key(
        &self,
        _: &str,
        _: &str,
        key: &WrappedKey,
        _: &Justification,
    ) -> Result<Key, TrusteeError> {
        if self.sealed.load(Ordering::SeqCst) {
            return Err(TrusteeError::Sealed(0, 2));
        }
        if self.disabled.load(Ordering::SeqCst) {
            return Err(TrusteeError::TenantKeyDisabled("t".into()));
        }
        Ok(Key::from_slice(&key.wrapped).unwrap())
    }
    async fn object_keys(
        &self,
        _: &str,
        _: &str,
        _: &WrappedKey,
        _: &Justification,
        _: Vec<obhut_trustee_client::object_keys::ObjectKeyOp>,
    ) -> Result<Vec<obhut_trustee_client::object_keys::ObjectKeyOutcome>, TrusteeError> {
        // The upgrade runs on bucket keys; per-object release is the trustee's own tests'.
        no()
    }
    async fn rewrap_object_keys(
        &self,
        _: &str,
        _: &str,
        _: &WrappedKey,
        _: &WrappedKey,
        _: &Justification,
        _: Vec<obhut_trustee_client::object_keys::SealedObjectKey>,
    ) -> Result<Vec<obhut_trustee_client::object_keys::ObjectKeyOutcome>, TrusteeError> {
        no()
    }
    async fn seal_status(&self) -> Result<SealStatus, TrusteeError> {
        no()
    }
    async fn unseal(&self, _: &str) -> Result<SealStatus, TrusteeError> {
        no()
    }
    async fn seal(&self) -> Result<SealStatus, TrusteeError> {
        no()
    }
    fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }
    async fn tenant_key_status(&self, _: &str) -> Result<TenantKeyStatus, TrusteeError> {
        no()
    }
    async fn residency(&self, _: &str) -> Result<TenantResidency, TrusteeError> {
        no()
    }
    async fn authenticate(&self, _: &str) -> Result<Option<PrincipalInfo>, TrusteeError> {
        no()
    }
    async fn act(&self, _: &SignedStatement) -> Result<serde_json::Value, TrusteeError> {
        no()
    }
    async fn query(&self, _: &str, _: &Query) -> Result<serde_json::Value, TrusteeError> {
        no()
    }
    async fn log_read(&self, _: &LogRead) -> Result<Option<Vec<u8>>, TrusteeError> {
        no()
    }
    async fn verify_request(
        &self,
        _: &obhut_trustee_client::auth::SignedRequest,
    ) -> Result<obhut_trustee_client::auth::Verified, TrusteeError> {
        no()
    }
    async fn verify_post(
        &self,
        _: &obhut_trustee_client::auth::SignedPost,
    ) -> Result<obhut_trustee_client::auth::Verified, TrusteeError> {
        no()
    }
    async fn verify_chunks(
        &self,
        _: &obhut_trustee_client::auth::ChunkBatch,
    ) -> Result<obhut_trustee_client::auth::ChainToken, TrusteeError> {
        no()
    }
    async fn unseal_key(&self) -> Result<obhut_trustee_client::UnsealKey, TrusteeError> {
        no()
    }
    async fn unseal_sealed(
        &self,
        _: &obhut_trustee_client::SealedShare,
    ) -> Result<SealStatus, TrusteeError> {
        no()
    }
    async fn seal_site_secret(&self, _: &str, _: &str) -> Result<String, TrusteeError> {
        no()
    }
    async fn open_site_secret(&self, _: &str, _: &str) -> Result<String, TrusteeError> {
        no()
    }
    async fn attest(
        &self,
        kind: &str,
        tenant: Option<&str>,
        _: &str,
    ) -> Result<serde_json::Value, TrusteeError> {
        self.attested
            .lock()
            .unwrap()
            .push((kind.to_owned(), tenant.map(str::to_owned)));
        Ok(serde_json::json!({"log_index": 1}))
    }
    async fn authorize_grant_access(&self, _: &GrantAccess) -> Result<GrantScope, TrusteeError> {
        no()
    }
    async fn report_integrity(&self, alarm: &IntegrityAlarm) -> Result<u64, TrusteeError> {
        self.alarms.lock().unwrap().push(alarm.clone());
        Ok(2)
    }
    async fn seal_lock(
        &self,
        _: &obhut_trustee_client::object_lock::LockSeal,
    ) -> Result<obhut_trustee_client::object_lock::LockAnswer, TrusteeError> {
        no()
    }
    async fn open_lock(
        &self,
        _: &obhut_trustee_client::object_lock::LockOpen,
    ) -> Result<obhut_trustee_client::object_lock::LockAnswer, TrusteeError> {
        no()
    }
}

struct NoPolicies;

#[async_trait]
impl PolicySource for NoPolicies {
    async fn tenant_residency(&self, tenant: &str) -> Result<TenantResidency, PolicyError> {
        Err(PolicyError::Unavailable {
            tenant: tenant.to_owned(),
            reason: "not in this test".into(),
        })
    }
    fn invalidate(&self, _: Option<&str>) {}
}

const MD5: &str = "9e107d9d372bb6826bd81d3542a419d6";
const PART_MD5: &str = "e4d909c290d0fb1ca068ffaddf22cbd0";

fn chunk(part: u32) -> Chunk {
    Chunk {
        blob: BlobId::random(),
        size: 10,
        part,
        crc32c: None,
    }
}

/// A catalog as the release before left it: one object and one upload with a part, in the
/// unbound format with ETags and checksums in clear.
async fn legacy_catalog(trustee: &StandIn) -> (Arc<dyn Catalog>, Key, ObjectCipher) {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
    catalog
        .create_tenant(&Tenant {
            name: "t".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        })
        .await
        .unwrap();
    let wrapped = trustee
        .create_bucket_key("t", "b", 1, &Justification::System { reason: "t".into() })
        .await
        .unwrap();
    let bk = Key::from_slice(&wrapped.wrapped).unwrap();
    catalog
        .create_bucket(
            &Bucket {
                name: "b".into(),
                tenant: "t".into(),
                created_ms: 1,
                versioning: Default::default(),
            },
            &BucketKey {
                bucket: "b".into(),
                version: 1,
                wrapped: wrapped.wrapped.clone(),
                kcv: wrapped.kcv.to_vec(),
                created_ms: 1,
            },
        )
        .await
        .unwrap();
    let any = Binding::object("t", "b", "x");
    let (object, _) = ObjectCipher::generate(&any, &bk, 1).unwrap();
    let envelope = object.legacy_envelope("b", &bk, 1);
    let b = catalog.get_bucket("b").await.unwrap().unwrap();
    catalog
        .put_object(
            &b,
            &ObjectRecord {
                bucket: "b".into(),
                key: "a".into(),
                size: 10,
                etag: MD5.into(),
                last_modified_ms: 1,
                envelope,
                meta: object.seal_meta(&ObjectMeta::default()).unwrap(),
                sites: vec!["s".into()],
                chunks: vec![chunk(1)],
                version_id: None,
            },
            PutCondition::None,
        )
        .await
        .unwrap();
    let (upload, _) = ObjectCipher::generate(&any, &bk, 1).unwrap();
    catalog
        .create_upload(
            &b,
            &obhut_catalog::Upload {
                upload_id: "u1".into(),
                bucket: "b".into(),
                key: "big".into(),
                initiated_ms: 1,
                envelope: upload.legacy_envelope("b", &bk, 1),
                meta: upload.seal_meta(&ObjectMeta::default()).unwrap(),
                sites: vec!["s".into()],
            },
        )
        .await
        .unwrap();
    let sums = Checksums {
        crc32: Some("AAAAAA==".into()),
        ..Checksums::default()
    };
    catalog
        .put_part(
            &b,
            &Part {
                upload_id: "u1".into(),
                part_number: 1,
                chunk: chunk(1),
                etag: PART_MD5.into(),
                checksums: sums.encode(),
                sites: vec!["s".into()],
                last_modified_ms: 1,
            },
        )
        .await
        .unwrap();
    (catalog, bk, object)
}

fn gateway(catalog: &Arc<dyn Catalog>, trustee: &Arc<StandIn>) -> Gateway {
    let workers = Workers::new();
    let policies: Arc<dyn PolicySource> = Arc::new(NoPolicies);
    let maintenance = Maintenance::new(
        Arc::clone(catalog),
        SiteSet::default(),
        Arc::clone(&policies),
        workers.clone(),
        Duration::ZERO,
    );
    let trustee: Arc<dyn TrusteeClient> = Arc::clone(trustee) as Arc<dyn TrusteeClient>;
    Gateway::new(
        Arc::clone(catalog),
        SiteSet::default(),
        trustee,
        GatewayConfig {
            region: "r".into(),
            key_cache_ttl: Duration::from_secs(60),
            lifecycle: crate::lifecycle::LifecycleTiming::default(),
            blob_retention: Duration::ZERO,
        },
        maintenance.requests(),
        policies,
        &workers,
    )
}

fn why() -> Justification {
    Justification::System {
        reason: "test".into(),
    }
}

async fn wait_done(gw: &Gateway) {
    // Longer than the worker's pause between two runs.
    for _ in 0..600 {
        if gw.upgrade.is_done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upgrade did not finish");
}

#[tokio::test]
async fn records_of_the_previous_release_are_bound_to_their_names_and_their_etags_sealed() {
    let trustee = Arc::new(StandIn {
        sealed: AtomicBool::new(true),
        disabled: AtomicBool::new(false),
        attested: Mutex::default(),
        alarms: Mutex::default(),
        revocations: tokio::sync::broadcast::channel(4).0,
    });
    let (catalog, bk, object) = legacy_catalog(&trustee).await;
    let gw = gateway(&catalog, &trustee);

    // While the trustee is sealed the upgrade cannot run, and the old records answer 503.
    let old = catalog.get_object("b", "a").await.unwrap().unwrap();
    let e = gw
        .open_object("t", &old, &why(), &KeyMemo::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(*e.code(), S3ErrorCode::ServiceUnavailable);
    assert!(!gw.upgrade.is_done());
    assert_eq!(catalog.upgrade_done(BINDING_UPGRADE).await.unwrap(), None);

    trustee.sealed.store(false, Ordering::SeqCst);
    wait_done(&gw).await;
    assert!(
        catalog
            .upgrade_done(BINDING_UPGRADE)
            .await
            .unwrap()
            .is_some()
    );

    let o = catalog.get_object("b", "a").await.unwrap().unwrap();
    assert!(
        ObjectCipher::parse_envelope(&o.envelope)
            .unwrap()
            .is_bound()
    );
    assert!(!o.etag.contains(MD5), "the ETag is sealed");
    let opened = gw
        .open_object("t", &o, &why(), &KeyMemo::default())
        .await
        .expect("opens");
    assert_eq!(opened.etag, MD5);
    assert_eq!(
        opened.cipher.key.expose(),
        object.key.expose(),
        "the same key"
    );
    let u = catalog.get_upload("u1").await.unwrap().unwrap();
    let cipher = gw
        .open_upload("t", &u, &why(), &KeyMemo::default())
        .await
        .expect("upload opens");
    let parts = catalog.list_parts("u1", 0, 10).await.unwrap();
    let (etag, sums) = gw
        .open_part("t", &u, &cipher, &parts[0])
        .expect("part opens");
    assert_eq!(etag, PART_MD5);
    assert_eq!(sums.crc32.as_deref(), Some("AAAAAA=="));
    assert!(!String::from_utf8_lossy(&parts[0].checksums).contains("AAAAAA"));
    assert_eq!(
        *trustee.attested.lock().unwrap(),
        vec![("format-upgrade".to_owned(), Some("t".to_owned()))],
        "what was rebound is attested in the log"
    );

    // After the upgrade an unbound record is never served, whatever it claims: here an old
    // record filed (again) under another name.
    let mut replayed = o.clone();
    replayed.key = "elsewhere".into();
    replayed.envelope = object.legacy_envelope("b", &bk, 1);
    replayed.etag = MD5.into();
    let b = catalog.get_bucket("b").await.unwrap().unwrap();
    catalog
        .put_object(&b, &replayed, PutCondition::None)
        .await
        .unwrap();
    let e = gw
        .open_object("t", &replayed, &why(), &KeyMemo::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(*e.code(), S3ErrorCode::InvalidObjectState);
    // And a second start does not rebind it: the catalog says the upgrade is done.
    let again = gw.upgrade_records().await.unwrap();
    assert!(again.already);
    let still = catalog.get_object("b", "elsewhere").await.unwrap().unwrap();
    assert!(
        !ObjectCipher::parse_envelope(&still.envelope)
            .unwrap()
            .is_bound()
    );
    for _ in 0..100 {
        if !trustee.alarms.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alarms = trustee.alarms.lock().unwrap().clone();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(
        (alarms[0].bucket.as_str(), alarms[0].key.as_str()),
        ("b", "elsewhere")
    );
}

#[tokio::test]
async fn a_tenant_whose_key_is_disabled_keeps_the_upgrade_unfinished_not_its_records_lost() {
    let trustee = Arc::new(StandIn {
        sealed: AtomicBool::new(false),
        disabled: AtomicBool::new(true),
        attested: Mutex::default(),
        alarms: Mutex::default(),
        revocations: tokio::sync::broadcast::channel(4).0,
    });
    let (catalog, _, _) = legacy_catalog(&trustee).await;
    let gw = gateway(&catalog, &trustee);
    let err = gw.upgrade_records().await.expect_err("not finished");
    assert!(
        err.to_string().contains("could not be upgraded yet"),
        "{err}"
    );
    assert!(!gw.upgrade.is_done());
    assert_eq!(catalog.upgrade_done(BINDING_UPGRADE).await.unwrap(), None);
    let o = catalog.get_object("b", "a").await.unwrap().unwrap();
    let e = gw
        .open_object("t", &o, &why(), &KeyMemo::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        *e.code(),
        S3ErrorCode::ServiceUnavailable,
        "an old record waits for the upgrade; it is not taken for a forgery"
    );
    // The shred is cancelled: the next run upgrades the tenant's records.
    trustee.disabled.store(false, Ordering::SeqCst);
    gw.upgrade_records().await.expect("finished");
    assert!(gw.upgrade.is_done());
    let o = catalog.get_object("b", "a").await.unwrap().unwrap();
    assert_eq!(
        gw.open_object("t", &o, &why(), &KeyMemo::default())
            .await
            .expect("opens")
            .etag,
        MD5
    );
}
