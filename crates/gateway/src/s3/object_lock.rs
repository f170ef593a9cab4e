//! Object lock (docs/s3-compatibility.md, "Object lock"): a bucket created with object lock,
//! its default retention (Put/GetObjectLockConfiguration), a version's retention and legal hold
//! (Put/GetObjectRetention, Put/GetObjectLegalHold, the lock headers of a write), and the rule
//! that no version a lock holds is removed.
//!
//! Every version written to a bucket with object lock gets a lock record (possibly unlocked)
//! before it becomes visible; the record is sealed by the trustee and bound to its tenant,
//! bucket, name and version id, and whether a retention has passed is judged on the trustee's
//! clock. A version of such a bucket without a record, or whose record does not open, is an
//! integrity failure: it is not removed, and the trustee's log records the alarm.
//!
//! This module sees lock records, bucket configurations and request headers; never object
//! content or keys.

use super::convert::{now_ms, timestamp};
use super::versions::parse_version_id;
use crate::access::ReqCtx;
use crate::keys::Binding;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, Versioning, config_kind};
use obhut_trustee_client::TrusteeError;
use obhut_trustee_client::object_lock::{
    BODY_NOT_SIGNED, DEFAULT_NOT_KNOWN, LockAnswer, LockChange, LockMode, LockOpen, LockSeal,
    LockState, LockTarget, RETENTION_TOO_LONG, UploadLock,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// S3's year of a default retention: 365 days.
const YEAR_MS: i64 = 365 * DAY_MS;
/// The longest default retention S3 allows (100 years).
const MAX_DEFAULT_DAYS: i64 = 36_500;

pub const LOCKED: &str = "Access Denied because object protected by object lock.";
pub const NO_LOCK_CONFIGURATION: &str = "Bucket is missing Object Lock Configuration";
pub const CHECKSUM_REQUIRED: &str = "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters";

/// A bucket's object lock configuration as stored (`config_kind::OBJECT_LOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketLock {
    pub v: u32,
    /// The bucket's default retention, applied to a version written without lock headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultLock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultLock {
    pub mode: LockMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<i32>,
}

impl DefaultLock {
    fn retain_until(&self, now_ms: i64) -> i64 {
        let span = self.days.map_or(0, |d| i64::from(d) * DAY_MS)
            + self.years.map_or(0, |y| i64::from(y) * YEAR_MS);
        now_ms.saturating_add(span)
    }
}

/// The lock headers of a write (PutObject, CopyObject, CreateMultipartUpload).
pub struct LockHeaders<'a> {
    pub mode: Option<&'a ObjectLockMode>,
    pub retain_until: Option<&'a Timestamp>,
    pub legal_hold: Option<&'a ObjectLockLegalHoldStatus>,
}

impl LockHeaders<'_> {
    /// A write without lock headers.
    pub const NONE: LockHeaders<'static> = LockHeaders {
        mode: None,
        retain_until: None,
        legal_hold: None,
    };

    pub fn any(&self) -> bool {
        self.mode.is_some() || self.retain_until.is_some() || self.legal_hold.is_some()
    }

    /// Whether the caller may set what these headers ask for `key` of the request's bucket:
    /// a retention needs `s3:PutObjectRetention`, a legal hold `s3:PutObjectLegalHold` (as S3
    /// asks), beside the write's own action; under a grant never (a lock set there would
    /// outlive the grant and could stop the tenant's shred). The bucket's default retention
    /// needs neither.
    pub fn check_allowed(&self, ctx: &crate::access::ReqCtx, key: &str) -> S3Result<()> {
        if self.mode.is_some() || self.retain_until.is_some() {
            ctx.may_set_lock(key, "s3:PutObjectRetention")?;
        }
        if self.legal_hold.is_some() {
            ctx.may_set_lock(key, "s3:PutObjectLegalHold")?;
        }
        Ok(())
    }
}

fn ms_of(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

fn mode_of(s: &str) -> S3Result<LockMode> {
    LockMode::parse(s).ok_or_else(|| s3_error!(InvalidArgument, "Unknown wormMode directive."))
}

fn legal_hold_of(s: &str) -> S3Result<bool> {
    match s {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(s3_error!(
            InvalidArgument,
            "Legal Hold must be either of 'ON' or 'OFF'"
        )),
    }
}

fn hold_status(on: bool) -> ObjectLockLegalHoldStatus {
    ObjectLockLegalHoldStatus::from_static(if on {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    })
}

/// Whether a request carries the integrity check S3 requires of object lock requests:
/// `Content-MD5` or an `x-amz-checksum-*` header (or one announced as a trailer).
pub fn has_content_check(headers: &http::HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.contains_key("x-amz-sdk-checksum-algorithm")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-"))
        || headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("x-amz-checksum-"))
}

/// S3 requires `Content-MD5` or a checksum header of a PutObject with lock headers, and of the
/// object lock configuration, retention and legal hold requests (which boto3 and aws-cli send
/// with one): `InvalidRequest` without.
pub(super) fn require_content_check(headers: &http::HeaderMap) -> S3Result<()> {
    if has_content_check(headers) {
        Ok(())
    } else {
        Err(error::with(S3ErrorCode::InvalidRequest, CHECKSUM_REQUIRED))
    }
}

/// A version removed, shortened or unheld against its lock: AccessDenied, as S3 answers.
fn locked() -> S3Error {
    error::with(S3ErrorCode::AccessDenied, LOCKED)
}

/// A refusal of the trustee about a lock change: AccessDenied naming the rule, a retention
/// beyond the trustee's longest InvalidArgument (as S3 answers a retention beyond its limits);
/// anything else as every trustee error.
fn lock_refused(e: TrusteeError) -> S3Error {
    match e {
        TrusteeError::Invalid(why)
            if why.starts_with(BODY_NOT_SIGNED) || why.starts_with(DEFAULT_NOT_KNOWN) =>
        {
            S3Error::with_message(S3ErrorCode::InvalidRequest, why)
        }
        TrusteeError::Denied(why) => S3Error::with_message(S3ErrorCode::AccessDenied, why),
        TrusteeError::Invalid(why) if why.starts_with(RETENTION_TOO_LONG) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, why)
        }
        other => error::trustee(other),
    }
}

/// The body of a retention or legal hold request as received ([`crate::authn::LockBody`]),
/// for the trustee, which reads it itself: XML is text.
fn lock_body(extensions: &http::Extensions) -> S3Result<Option<String>> {
    extensions
        .get::<crate::authn::LockBody>()
        .map(|b| {
            String::from_utf8(b.0.to_vec())
                .map_err(|_| error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML))
        })
        .transpose()
}

fn target(bucket: &Bucket, key: &str, version_id: &str) -> LockTarget {
    LockTarget {
        tenant: bucket.tenant.clone(),
        bucket: bucket.name.clone(),
        key: key.to_owned(),
        version_id: version_id.to_owned(),
    }
}

impl Gateway {
    /// The bucket's object lock configuration; `None`: the bucket has no object lock.
    pub(crate) async fn bucket_lock(&self, bucket: &Bucket) -> S3Result<Option<BucketLock>> {
        let Some(raw) = self
            .catalog
            .get_bucket_config(bucket, config_kind::OBJECT_LOCK)
            .await
            .map_err(error::catalog)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| error::corrupt_record("object lock configuration", &e))
    }

    /// The lock state a version written now starts with: from its lock headers, else from the
    /// bucket's default retention. `None` for a bucket without object lock (where lock headers
    /// are InvalidRequest, as S3 answers).
    pub(super) async fn new_version_lock(
        &self,
        bucket: &Bucket,
        h: &LockHeaders<'_>,
    ) -> S3Result<Option<LockState>> {
        let Some(config) = self.bucket_lock(bucket).await? else {
            if h.any() {
                return Err(error::with(
                    S3ErrorCode::InvalidRequest,
                    NO_LOCK_CONFIGURATION,
                ));
            }
            return Ok(None);
        };
        let now = now_ms();
        let retention = match (h.mode, h.retain_until) {
            (Some(mode), Some(until)) => {
                let until = ms_of(until);
                if until <= now {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The retain until date must be in the future!"
                    ));
                }
                Some((mode_of(mode.as_str())?, until))
            }
            (None, None) => config.default.map(|d| (d.mode, d.retain_until(now))),
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                ));
            }
        };
        let legal_hold = h
            .legal_hold
            .map(|s| legal_hold_of(s.as_str()))
            .transpose()?
            .unwrap_or(false);
        Ok(Some(LockState {
            retention,
            legal_hold,
        }))
    }

    /// Seals and stores the first lock record of a version about to be committed: written
    /// before the version, so that no version of a bucket with object lock is ever visible
    /// without one. The trustee seals it only against the ticket of the request that writes
    /// the version (and, for a completion, with what it sealed for the upload at its
    /// creation). Should the commit then fail, the record stays sealed and counted: the
    /// trustee abandons no seal (only the provider holds the ticket, so an abandonment could
    /// not be told from the provider unlocking a committed version), and a lock the tenant
    /// signed that blocks a shred until its date is the safe side of the error.
    pub(super) async fn write_new_lock(
        &self,
        ctx: &ReqCtx,
        key: &str,
        version_id: Option<&str>,
        state: LockState,
        upload: Option<UploadLock>,
    ) -> S3Result<()> {
        let bucket = ctx.bucket()?;
        let Some(version_id) = version_id else {
            // A bucket with object lock is always versioned.
            return Err(error::with(
                S3ErrorCode::InvalidBucketState,
                "a bucket with object lock must have versioning enabled",
            ));
        };
        let target = target(bucket, key, version_id);
        let answer = self
            .trustee
            .seal_lock(&LockSeal {
                target: target.clone(),
                state,
                change: LockChange::Written,
                previous: None,
                bypass_governance: false,
                request: ctx.ticket.clone(),
                upload,
                body: None,
            })
            .await
            .map_err(lock_refused)?;
        self.catalog
            .put_object_lock(bucket, key, version_id, answer.sealed.as_bytes(), now_ms())
            .await
            .map_err(error::catalog)
    }

    /// What a CreateMultipartUpload's lock headers ask for, sealed by the trustee for the
    /// upload's completion (kept in the upload's metadata).
    pub(super) async fn seal_upload_lock(
        &self,
        ctx: &ReqCtx,
        key: &str,
        upload_id: &str,
        state: LockState,
    ) -> S3Result<String> {
        let answer = self
            .trustee
            .seal_lock(&LockSeal {
                target: target(ctx.bucket()?, key, upload_id),
                state,
                change: LockChange::Upload,
                previous: None,
                bypass_governance: false,
                request: ctx.ticket.clone(),
                upload: None,
                body: None,
            })
            .await
            .map_err(lock_refused)?;
        Ok(answer.sealed)
    }

    /// A version's lock record, opened by the trustee (with its clock); `None` if it has none.
    /// A record that does not open is an integrity failure.
    pub(crate) async fn version_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> S3Result<Option<LockAnswer>> {
        let Some(raw) = self
            .catalog
            .get_object_lock(bucket, key, version_id)
            .await
            .map_err(error::catalog)?
        else {
            return Ok(None);
        };
        let sealed = String::from_utf8(raw).unwrap_or_default();
        match self
            .trustee
            .open_lock(&LockOpen {
                target: target(bucket, key, version_id),
                sealed,
            })
            .await
        {
            Ok(answer) => Ok(Some(answer)),
            Err(TrusteeError::Integrity(e)) => Err(self.integrity_failure(
                &Binding::object(&bucket.tenant, &bucket.name, key),
                &format!("the object lock record of version {version_id} does not open: {e}"),
            )),
            Err(e) => Err(error::trustee(e)),
        }
    }

    /// A version's lock record where it must have one (a data version of a bucket with object
    /// lock): a missing record is an integrity failure.
    async fn required_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> S3Result<Option<LockAnswer>> {
        if let Some(found) = self.version_lock(bucket, key, version_id).await? {
            return Ok(Some(found));
        }
        if self.bucket_lock(bucket).await?.is_none() {
            return Ok(None);
        }
        let entry = self
            .catalog
            .get_object_version(&bucket.name, key, Some(version_id))
            .await
            .map_err(error::catalog)?;
        match entry {
            Some(v) if !v.delete_marker => Err(self.integrity_failure(
                &Binding::object(&bucket.tenant, &bucket.name, key),
                &format!("version {version_id} of a bucket with object lock has no lock record"),
            )),
            _ => Ok(None),
        }
    }

    /// Refuses removing version `version_id` of `key` while a lock holds it: a legal hold or a
    /// COMPLIANCE retention always; a GOVERNANCE retention unless `bypass` (the request asked
    /// for it and its principal may). Judged on the trustee's clock.
    pub(crate) async fn check_removable(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        bypass: bool,
    ) -> S3Result<()> {
        let Some(version_id) = version_id else {
            // The `null` version: never written to a bucket with object lock.
            return Ok(());
        };
        let Some(lock) = self.required_lock(bucket, key, version_id).await? else {
            return Ok(());
        };
        if lock.state.legal_hold {
            return Err(locked());
        }
        match lock.state.retention_in_force(lock.now_ms) {
            None => Ok(()),
            Some((LockMode::Governance, _)) if bypass => Ok(()),
            Some(_) => Err(locked()),
        }
    }

    /// Whether a lock holds version `version_id` of `key` (lifecycle's question): a record
    /// that does not open, or one missing where it must exist, holds too.
    pub(crate) async fn lock_holds(&self, bucket: &Bucket, key: &str, version_id: &str) -> bool {
        match self.required_lock(bucket, key, version_id).await {
            Ok(Some(lock)) => lock.state.holds(lock.now_ms),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The lock headers a GET or HEAD answers for a version (none without a record). A lock
    /// record that fails its check fails the read too, as every record that does.
    pub(super) async fn lock_headers(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Option<LockState>> {
        let Some(version_id) = version_id else {
            return Ok(None);
        };
        Ok(self
            .required_lock(bucket, key, version_id)
            .await?
            .map(|l| l.state))
    }

    /// Changes a version's lock record, the trustee judging the change against the record it
    /// replaces, for the tenant's signed request (its ticket) and its body (`body`), which
    /// the trustee reads itself.
    #[allow(clippy::too_many_arguments)]
    async fn change_lock(
        &self,
        ctx: &ReqCtx,
        key: &str,
        version_id: Option<&str>,
        change: LockChange,
        bypass: bool,
        body: Option<String>,
        apply: impl FnOnce(LockState) -> LockState,
    ) -> S3Result<LockState> {
        let bucket = ctx.bucket()?;
        if self.bucket_lock(bucket).await?.is_none() {
            return Err(error::with(
                S3ErrorCode::InvalidRequest,
                NO_LOCK_CONFIGURATION,
            ));
        }
        let version_id = self.resolve_version(bucket, key, version_id).await?;
        let Some(current) = self.required_lock(bucket, key, &version_id).await? else {
            return Err(error::with(
                S3ErrorCode::InvalidRequest,
                "a delete marker has no retention or legal hold",
            ));
        };
        let next = apply(current.state);
        let answer = self
            .trustee
            .seal_lock(&LockSeal {
                target: target(bucket, key, &version_id),
                state: next,
                change,
                previous: Some(current.sealed),
                bypass_governance: bypass,
                // The trustee changes a lock only for the tenant's signed request of this
                // change, and honours the bypass only if that request signed it.
                request: ctx.ticket.clone(),
                upload: None,
                body,
            })
            .await
            .map_err(lock_refused)?;
        self.catalog
            .put_object_lock(bucket, key, &version_id, answer.sealed.as_bytes(), now_ms())
            .await
            .map_err(error::catalog)?;
        Ok(answer.state)
    }

    /// The id of the version a retention or legal hold request names: the one given, else the
    /// key's current version. Missing: NoSuchKey / NoSuchVersion.
    async fn resolve_version(
        &self,
        bucket: &Bucket,
        key: &str,
        given: Option<&str>,
    ) -> S3Result<String> {
        let wanted = given.map(parse_version_id).transpose()?;
        let found = match &wanted {
            Some(v) => self
                .catalog
                .get_object_version(&bucket.name, key, v.as_deref())
                .await
                .map_err(error::catalog)?,
            None => self
                .catalog
                .latest_version(&bucket.name, key)
                .await
                .map_err(error::catalog)?,
        };
        match found {
            Some(v) if !v.delete_marker => v
                .object
                .version_id
                .ok_or_else(|| error::with(S3ErrorCode::InvalidRequest, NO_LOCK_CONFIGURATION)),
            Some(_) if wanted.is_some() => Err(error::with(
                S3ErrorCode::MethodNotAllowed,
                "a delete marker has no retention or legal hold",
            )),
            _ if wanted.is_some() => Err(error::with(
                S3ErrorCode::NoSuchVersion,
                error::NO_SUCH_VERSION,
            )),
            _ => Err(error::with(S3ErrorCode::NoSuchKey, error::NO_SUCH_KEY)),
        }
    }
}

/// CreateBucket's `x-amz-bucket-object-lock-enabled`, told to the trustee with the request's
/// ticket: the new bucket has no default retention.
pub(super) async fn note_new_bucket(
    gw: &Gateway,
    bucket: &Bucket,
    ticket: Option<obhut_trustee_client::auth::RequestTicket>,
) -> S3Result<()> {
    gw.trustee
        .seal_lock(&bucket_default(bucket, ticket, None))
        .await
        .map_err(lock_refused)?;
    Ok(())
}

/// A bucket's default retention for the trustee: from the tenant's signed request (its
/// ticket) and its body, which the trustee reads itself.
fn bucket_default(
    bucket: &Bucket,
    request: Option<obhut_trustee_client::auth::RequestTicket>,
    body: Option<String>,
) -> LockSeal {
    LockSeal {
        target: LockTarget {
            tenant: bucket.tenant.clone(),
            bucket: bucket.name.clone(),
            key: String::new(),
            version_id: String::new(),
        },
        state: LockState::default(),
        change: LockChange::BucketDefault,
        previous: None,
        bypass_governance: false,
        request,
        upload: None,
        body,
    }
}

/// CreateBucket's `x-amz-bucket-object-lock-enabled`: versioning on, and the configuration
/// stored (without a default retention).
pub(super) async fn enable_on_new_bucket(gw: &Gateway, bucket: &Bucket) -> S3Result<()> {
    let config = serde_json::to_vec(&BucketLock {
        v: 1,
        default: None,
    })
    .map_err(|e| error::corrupt_record("object lock configuration", &e))?;
    gw.catalog
        .put_bucket_config(bucket, config_kind::OBJECT_LOCK, Some(&config), now_ms())
        .await
        .map_err(error::catalog)?;
    gw.catalog
        .set_bucket_versioning(bucket, Versioning::Enabled)
        .await
        .map_err(error::catalog)
}

pub async fn put_configuration(
    gw: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    require_content_check(&req.headers)?;
    let Some(_) = gw.bucket_lock(bucket).await? else {
        return Err(error::with(
            S3ErrorCode::InvalidBucketState,
            "Object Lock configuration cannot be enabled on existing buckets",
        ));
    };
    let config = req.input.object_lock_configuration.unwrap_or_default();
    if config
        .object_lock_enabled
        .as_ref()
        .is_none_or(|e| e.as_str() != ObjectLockEnabled::ENABLED)
    {
        return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
    }
    let default = match config.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = d
                .mode
                .as_ref()
                .ok_or_else(|| error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML))?;
            let mode = mode_of(mode.as_str())?;
            match (d.days, d.years) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
                }
                (Some(n), None) | (None, Some(n)) if n <= 0 => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period must be a positive integer value"
                    ));
                }
                (Some(days), None) if i64::from(days) > MAX_DEFAULT_DAYS => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period is too large."
                    ));
                }
                (None, Some(years)) if i64::from(years) * 365 > MAX_DEFAULT_DAYS => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period is too large."
                    ));
                }
                (days, years) => Some(DefaultLock { mode, days, years }),
            }
        }
    };
    let stored = serde_json::to_vec(&BucketLock { v: 1, default })
        .map_err(|e| error::corrupt_record("object lock configuration", &e))?;
    // The trustee keeps the default from the tenant's signed request (its body, which it
    // reads itself): the only retention it seals for a write without lock headers. Before
    // the catalog, so that the catalog never names a default the trustee would refuse.
    gw.trustee
        .seal_lock(&bucket_default(
            bucket,
            ctx.ticket.clone(),
            lock_body(&req.extensions)?,
        ))
        .await
        .map_err(lock_refused)?;
    gw.catalog
        .put_bucket_config(bucket, config_kind::OBJECT_LOCK, Some(&stored), now_ms())
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_configuration(
    gw: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let Some(config) = gw.bucket_lock(ctx.bucket()?).await? else {
        return Err(error::with(
            S3ErrorCode::ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket",
        ));
    };
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule: config.default.map(|d| ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
                    days: d.days,
                    years: d.years,
                }),
            }),
        }),
    }))
}

pub async fn put_retention(
    gw: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let ctx = ReqCtx::of(&req)?;
    require_content_check(&req.headers)?;
    let input = req.input;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    if bypass {
        ctx.may_bypass_governance(&input.key)?;
    }
    let retention = input.retention.unwrap_or_default();
    let next = match (retention.mode, retention.retain_until_date) {
        (Some(mode), Some(until)) => {
            let until = ms_of(&until);
            if until <= now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some((mode_of(mode.as_str())?, until))
        }
        (None, None) => None,
        _ => return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML)),
    };
    gw.change_lock(
        &ctx,
        &input.key,
        input.version_id.as_deref(),
        LockChange::Retention,
        bypass,
        lock_body(&req.extensions)?,
        |s| LockState {
            retention: next,
            ..s
        },
    )
    .await?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

/// The lock state of `key` (its `version_id`, else its current version) in the request's
/// bucket, as GetObjectRetention and GetObjectLegalHold answer it: `InvalidRequest` for a
/// bucket without object lock.
async fn read_lock_state(
    gw: &Gateway,
    ctx: &ReqCtx,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<LockState> {
    let bucket = ctx.bucket()?;
    if gw.bucket_lock(bucket).await?.is_none() {
        return Err(error::with(
            S3ErrorCode::InvalidRequest,
            NO_LOCK_CONFIGURATION,
        ));
    }
    let version_id = gw.resolve_version(bucket, key, version_id).await?;
    Ok(gw
        .required_lock(bucket, key, &version_id)
        .await?
        .map(|l| l.state)
        .unwrap_or_default())
}

pub async fn get_retention(
    gw: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let state = read_lock_state(gw, &ctx, &i.key, i.version_id.as_deref()).await?;
    let Some((mode, until)) = state.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_owned())),
            retain_until_date: Some(timestamp(until)),
        }),
    }))
}

pub async fn put_legal_hold(
    gw: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let ctx = ReqCtx::of(&req)?;
    require_content_check(&req.headers)?;
    let input = req.input;
    let on = match input.legal_hold.and_then(|h| h.status) {
        Some(s) => legal_hold_of(s.as_str())?,
        None => return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML)),
    };
    gw.change_lock(
        &ctx,
        &input.key,
        input.version_id.as_deref(),
        LockChange::LegalHold,
        false,
        lock_body(&req.extensions)?,
        |s| LockState {
            legal_hold: on,
            ..s
        },
    )
    .await?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_legal_hold(
    gw: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let state = read_lock_state(gw, &ctx, &i.key, i.version_id.as_deref()).await?;
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(hold_status(state.legal_hold)),
        }),
    }))
}

/// The three lock fields of a GET or HEAD answer.
pub(super) fn answer_fields(
    state: Option<LockState>,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let Some(state) = state else {
        return (None, None, None);
    };
    let (mode, until) = match state.retention {
        Some((m, u)) => (
            Some(ObjectLockMode::from(m.as_str().to_owned())),
            Some(timestamp(u)),
        ),
        None => (None, None),
    };
    (mode, until, Some(hold_status(state.legal_hold)))
}
