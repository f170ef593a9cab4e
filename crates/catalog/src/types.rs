//! Records the catalog stores.

use obhut_core::{BlobId, SiteState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    /// Jurisdictions where the tenant's bytes may live.
    pub jurisdictions: Vec<String>,
    pub min_sites: u32,
    pub created_ms: i64,
}

/// An S3 access key as an earlier release kept it in the catalog, secret in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub tenant: String,
    pub secret: String,
    pub created_ms: i64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("tenant", &self.tenant)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: String,
    pub jurisdiction: String,
    pub location: String,
    pub state: SiteState,
    /// Backend description, e.g. `{"fs": "/path"}`.
    pub backend: serde_json::Value,
}

/// A residency rule beyond the tenant record: for a tenant, how writes behave with too few
/// sites; for a bucket, a narrowing of its tenant's policy (never a widening).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdictions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sites: Option<u32>,
    /// With fewer than `min_sites` sites available: accept the write on those there are
    /// (`true`, the object is under-replicated until repaired) or refuse it (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_writes: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub tenant: String,
    pub created_ms: i64,
    pub versioning: Versioning,
}

/// A bucket's versioning state (S3's `PutBucketVersioning`). A bucket starts unversioned; once
/// enabled it can be suspended but never unversioned again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Every write replaces the key's one object (its version id is `null`).
    #[default]
    Unversioned,
    /// Every write adds a version with an id of its own; the previous one stays, noncurrent.
    Enabled,
    /// Writes make the `null` version, replacing the previous `null` version only; versions
    /// with ids stay.
    Suspended,
}

impl Versioning {
    /// How the catalogs store it.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            Self::Unversioned => 0,
            Self::Enabled => 1,
            Self::Suspended => 2,
        }
    }

    /// The state stored as `code`.
    pub fn from_code(code: i64) -> Result<Self, crate::CatalogError> {
        match code {
            0 => Ok(Self::Unversioned),
            1 => Ok(Self::Enabled),
            2 => Ok(Self::Suspended),
            other => Err(crate::CatalogError::Corrupt(format!(
                "bucket versioning state {other}"
            ))),
        }
    }
}

/// A version of a bucket's key, sealed under the tenant key by the trustee. The catalog stores
/// it and can never open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketKey {
    pub bucket: String,
    pub version: u32,
    pub wrapped: Vec<u8>,
    /// Key-check value of the bucket key.
    pub kcv: Vec<u8>,
    pub created_ms: i64,
}

/// One blob of an object's data, stored on every site of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    #[serde(with = "blob_id_hex")]
    pub blob: BlobId,
    /// Bytes of object data this chunk holds.
    pub size: u64,
    /// The part number this chunk was uploaded as (1 for a single PUT); part of the blob's
    /// encryption context.
    #[serde(default = "first_part")]
    pub part: u32,
    /// CRC32C of the blob's bytes as stored (ciphertext): lets repair, scrubbing and residency
    /// reports verify a replica without any key. Absent for blobs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
}

fn first_part() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    /// The object key wrapped under the bucket key, and what is needed to use it; opaque here.
    pub envelope: Vec<u8>,
    /// Opaque to the catalog (content type, user metadata, checksums), sealed by the gateway.
    pub meta: Vec<u8>,
    /// Sites holding every chunk.
    pub sites: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// The version's id; `None` is S3's `null` version (every object of a bucket that was never
    /// versioned, and what a bucket with versioning suspended writes).
    pub version_id: Option<String>,
}

/// One entry of a key's version history: an object version or a delete marker (a record with
/// no data, size 0, no chunks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub object: ObjectRecord,
    pub delete_marker: bool,
    /// Whether it is the newest entry of its key (for a delete marker: the key reads as absent).
    pub is_latest: bool,
}

/// An entry of a key's history (a version or a delete marker) as a background walk saw it:
/// a change conditioned on it ([`crate::Catalog::delete_seen_version`],
/// [`crate::Catalog::put_delete_marker_over`]) is made only if the entry is still so when the
/// change is made, so that a walk never removes or hides what a client wrote after it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVersion {
    /// Its id (`None`: the `null` version).
    pub version_id: Option<String>,
    /// Its ETag as stored (sealed, so it differs between any two versions; empty for a delete
    /// marker).
    pub etag: String,
    pub delete_marker: bool,
    /// Whether it was the newest entry of its key.
    pub latest: bool,
    /// Required besides: it is its key's only entry (a delete marker with no version left
    /// behind it).
    pub only_entry: bool,
}

impl SeenVersion {
    /// The entry `v` as listed.
    #[must_use]
    pub fn of(v: &ObjectVersion) -> Self {
        Self {
            version_id: v.object.version_id.clone(),
            etag: v.object.etag.clone(),
            delete_marker: v.delete_marker,
            latest: v.is_latest,
            only_entry: false,
        }
    }

    /// Whether `found` (the entry of this id now, with whether it is the newest, and how many
    /// entries its key has) is still the entry seen.
    #[must_use]
    pub fn matches(&self, found: Option<(&ObjectRecord, bool, bool)>, entries: u64) -> bool {
        let Some((o, delete_marker, latest)) = found else {
            return false;
        };
        o.version_id == self.version_id
            && o.etag == self.etag
            && delete_marker == self.delete_marker
            && latest == self.latest
            && (!self.only_entry || entries == 1)
    }
}

/// Where a listing of versions starts; entries are ordered by key, then newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionsFrom<'a> {
    Start,
    /// After every version of this key (S3's `key-marker` alone).
    AfterKey(&'a str),
    /// After this version of this key (`key-marker` and `version-id-marker`; `None` is the
    /// `null` version). A version that does not exist is [`crate::CatalogError::NotFound`].
    AfterVersion(&'a str, Option<&'a str>),
    /// After every key that starts with this prefix (skips a common prefix).
    PastPrefix(&'a str),
}

/// S3's conditional writes, evaluated against the object currently under the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    None,
    /// `If-None-Match: *`: only if no object exists under the key.
    Absent,
    /// `If-Match`: only if the current object's ETag equals this one.
    ETagMatches(String),
}

impl PutCondition {
    /// Whether a write under this condition may replace `current`; the error says why not.
    pub fn check(&self, current: Option<&ObjectRecord>) -> Result<(), &'static str> {
        match (self, current) {
            (Self::None, _) | (Self::Absent, None) => Ok(()),
            (Self::Absent, Some(_)) => Err("an object already exists under this key"),
            (Self::ETagMatches(_), None) => Err("no object exists under this key"),
            (Self::ETagMatches(etag), Some(cur)) if &cur.etag != etag => {
                Err("the object's ETag does not match")
            }
            (Self::ETagMatches(_), Some(_)) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub envelope: Vec<u8>,
    pub meta: Vec<u8>,
    /// The sites chosen for the upload when it was created: every part is written to them, so
    /// placement is decided once per upload. Empty for uploads created before placements were
    /// kept (catalog schema version 1), whose parts are placed one by one.
    pub sites: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub upload_id: String,
    pub part_number: u32,
    pub chunk: Chunk,
    pub etag: String,
    /// Checksums as the client named them (e.g. `CRC32` → base64 value), opaque to the catalog.
    pub checksums: Vec<u8>,
    pub sites: Vec<String>,
    pub last_modified_ms: i64,
}

/// What is remembered of a multipart upload after it completed, so that a repeated
/// `CompleteMultipartUpload` (a client retrying after a lost answer) is answered as the first
/// one was (docs/catalog.md, "Completed uploads"). Kept for
/// [`COMPLETED_UPLOAD_RETENTION_MS`] after completion, and no longer than its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub upload_id: String,
    /// The bucket's name and `created_ms`: its incarnation.
    pub bucket: String,
    pub bucket_created_ms: i64,
    pub key: String,
    /// The version the upload became (`None`: the `null` version).
    pub version_id: Option<String>,
    /// That version's ETag as stored (sealed): tells it from a later version of the same id.
    pub etag: String,
    pub completed_ms: i64,
}

/// How long a completed upload is remembered: a retry of its completion comes within
/// seconds or minutes of the lost answer; a day covers a client that backs off for long.
pub const COMPLETED_UPLOAD_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The kinds of per-bucket configuration kept in the catalog's one table for them
/// (`Catalog::put_bucket_config`).
pub mod config_kind {
    /// Bucket CORS rules, as obhut's JSON form of `CORSConfiguration`.
    pub const CORS: &str = "cors";
    /// The bucket policy (IAM JSON), as obhut's JSON record around the tenant's text.
    pub const POLICY: &str = "policy";
    /// Block Public Access settings; none stored means all on.
    pub const PUBLIC_ACCESS_BLOCK: &str = "public_access_block";
    /// Bucket lifecycle rules, as obhut's JSON form of `BucketLifecycleConfiguration`.
    pub const LIFECYCLE: &str = "lifecycle";
    /// Bucket tags, as `{"v":1,"tags":[[key,value],...]}` (kept in clear, as a bucket's name).
    pub const TAGGING: &str = "tagging";
    /// Object lock: present only for a bucket created with it, as obhut's JSON of its default
    /// retention (`{"v":1,"default":{"mode":"GOVERNANCE","days":30}}`).
    pub const OBJECT_LOCK: &str = "object_lock";
}

mod blob_id_hex {
    use obhut_core::BlobId;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(id: &BlobId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobId, D::Error> {
        let s = String::deserialize(d)?;
        BlobId::parse(&s).ok_or_else(|| D::Error::custom("invalid blob id"))
    }
}

/// Where a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFrom<'a> {
    Start,
    /// Keys strictly greater than this one.
    After(&'a str),
    /// Keys greater than every key that starts with this prefix (skips a common prefix).
    PastPrefix(&'a str),
}

/// What [`crate::Catalog::set_quota`] sets a quota on: a tenant, or a bucket as the caller was
/// authorised against it (its name, tenant and incarnation, checked when the quota is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaTarget<'a> {
    Tenant(&'a str),
    Bucket(&'a Bucket),
}

impl QuotaTarget<'_> {
    /// The scope the quota is stored under.
    #[must_use]
    pub fn scope(&self) -> obhut_core::PolicyScope {
        match self {
            Self::Tenant(t) => obhut_core::PolicyScope::Tenant((*t).to_owned()),
            Self::Bucket(b) => obhut_core::PolicyScope::Bucket(b.name.clone()),
        }
    }
}

/// The most a tenant or a bucket may hold: bytes (objects and the parts of unfinished
/// multipart uploads) and objects; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_objects: Option<u64>,
}

impl Quota {
    /// Whether the quota limits nothing.
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_objects.is_none()
    }

    /// Whether `inner` (a bucket's quota) stays within this one (its tenant's): no limit of
    /// this one is missing from or exceeded by `inner`.
    #[must_use]
    pub fn contains(&self, inner: &Quota) -> bool {
        let within = |outer: Option<u64>, inner: Option<u64>| match (outer, inner) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(o), Some(i)) => i <= o,
        };
        within(self.max_bytes, inner.max_bytes) && within(self.max_objects, inner.max_objects)
    }

    /// The highest fraction of a limit that `usage` (committed and reserved) takes; 0 without
    /// limits.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a ratio for a gauge
    pub fn fill(&self, usage: &Usage) -> f64 {
        let ratio = |max: Option<u64>, used: u64| match max {
            Some(0) => {
                if used > 0 {
                    f64::INFINITY
                } else {
                    1.0
                }
            }
            Some(m) => used as f64 / m as f64,
            None => 0.0,
        };
        ratio(self.max_bytes, usage.total_bytes())
            .max(ratio(self.max_objects, usage.total_objects()))
    }
}

/// What a tenant or bucket holds: committed (objects, and parts of unfinished uploads) and
/// reserved by writes in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
    pub reserved_bytes: u64,
    pub reserved_objects: u64,
}

impl Usage {
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.bytes.saturating_add(self.reserved_bytes)
    }

    #[must_use]
    pub fn total_objects(&self) -> u64 {
        self.objects.saturating_add(self.reserved_objects)
    }
}

/// A hold on quota by a write in flight: taken before its data is written, settled by the
/// commit that records it (which counts the real size instead), released when the write
/// fails, and ignored (then reclaimed) after `expires_ms` if its gateway died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    /// The object the write will replace if one exists under this key: its size and count are
    /// credited when the quota is checked (an overwrite adds only its growth). `None` for a
    /// part.
    pub key: Option<String>,
    pub bytes: u64,
    pub objects: u64,
    pub expires_ms: i64,
}

/// A scope that has a quota, with what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStatus {
    pub scope: obhut_core::PolicyScope,
    pub quota: Quota,
    pub usage: Usage,
}

/// What a commit found of the reservation it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The write was made without one (no quota applied when it began).
    NotGiven,
    /// It was there and had not expired: the write was checked when it was made.
    Held,
    /// It had expired, or was gone (reclaimed, or dropped with its bucket): other writes were
    /// let in meanwhile as if this one did not exist, so the commit is checked again.
    Lost,
}

/// For a commit whose reservation was lost: whether `usage` (as it is with the commit's own
/// change, `grown` bytes and objects, already counted) stays within `quota`, as
/// [`check_quota`] decided for a reservation. A dimension the commit did not grow is not
/// checked.
pub(crate) fn check_growth(
    scope: &obhut_core::PolicyScope,
    quota: &Quota,
    usage: &Usage,
    grown: (u64, u64),
) -> Result<(), crate::CatalogError> {
    let before = Usage {
        bytes: usage.bytes.saturating_sub(grown.0),
        objects: usage.objects.saturating_sub(grown.1),
        ..*usage
    };
    check_quota(scope, quota, &before, grown, (0, 0))
}

/// Whether adding `bytes` and `objects` to `usage` (less `credit_bytes`/`credit_objects`, what
/// the write replaces) stays within `quota`; the error names the limit. A dimension the write
/// does not grow is not checked, so a write that frees space is never refused.
pub(crate) fn check_quota(
    scope: &obhut_core::PolicyScope,
    quota: &Quota,
    usage: &Usage,
    add: (u64, u64),
    credit: (u64, u64),
) -> Result<(), crate::CatalogError> {
    let over = |max: Option<u64>, used: u64, add: u64, credit: u64| {
        let grow = add.saturating_sub(credit);
        match max {
            Some(m) if grow > 0 => used.saturating_add(grow) > m,
            _ => false,
        }
    };
    let (kind, name) = match scope {
        obhut_core::PolicyScope::Tenant(n) => ("tenant", n),
        obhut_core::PolicyScope::Bucket(n) => ("bucket", n),
    };
    if over(quota.max_bytes, usage.total_bytes(), add.0, credit.0) {
        return Err(crate::CatalogError::QuotaExceeded {
            kind,
            name: name.clone(),
            what: "bytes",
            limit: quota.max_bytes.unwrap_or(0),
        });
    }
    if over(quota.max_objects, usage.total_objects(), add.1, credit.1) {
        return Err(crate::CatalogError::QuotaExceeded {
            kind,
            name: name.clone(),
            what: "objects",
            limit: quota.max_objects.unwrap_or(0),
        });
    }
    Ok(())
}

/// A lease on a kind of work that one process at a time may do (the background workers of a
/// deployment whose gateways share a catalog): who holds it, until when, and its epoch.
///
/// The epoch is the fencing token: it grows each time the lease passes to a new holder (or is
/// taken again after it expired), and a destructive batch made under the lease checks it in
/// its own transaction, so a holder that lost the lease (paused, cut off) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// Who holds it: an id each process draws at start.
    pub holder: String,
    pub epoch: u64,
    /// When it lapses unless renewed (milliseconds since the epoch, the catalog's clock).
    pub expires_ms: i64,
}

impl Lease {
    /// What taking the lease `name` for `holder` at `now_ms` makes of `current` (the row as
    /// stored; an empty holder when nobody ever took it): the lease renewed or taken with the
    /// next epoch, or `None` while another holder holds it. The one rule both catalogs apply.
    pub(crate) fn taken(current: &Lease, holder: &str, ttl_ms: i64, now_ms: i64) -> Option<Lease> {
        let live = current.expires_ms > now_ms;
        let epoch = if live && current.holder == holder {
            current.epoch
        } else if live && !current.holder.is_empty() {
            return None;
        } else {
            current.epoch + 1
        };
        Some(Lease {
            name: current.name.clone(),
            holder: holder.to_owned(),
            epoch,
            expires_ms: now_ms.saturating_add(ttl_ms),
        })
    }

    /// Whether this lease, as its holder knows it, is the one stored (`current`) and live.
    pub(crate) fn is_current(&self, current: &Lease, now_ms: i64) -> bool {
        current.holder == self.holder && current.epoch == self.epoch && current.expires_ms > now_ms
    }
}

/// A web console session as the catalog keeps it (docs/console.md, "Sessions"): named by the
/// SHA-256 of its id (the cookie's value is never stored), its record sealed under the
/// console's session key (opaque here), when it began and when it was last marked used (the
/// gateways' clocks, ms since the epoch).
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub sealed: Vec<u8>,
    pub started_ms: i64,
    pub used_ms: i64,
    /// The tag of the session's principal (opaque here; the same for all of one principal's
    /// sessions), for the bound per principal. None in rows of schema 10.
    pub owner: Option<String>,
    /// The id of the session key the record is sealed under (opaque here). None in rows of
    /// schema 10.
    pub key_id: Option<String>,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("id_hash", &self.id_hash)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .field("started_ms", &self.started_ms)
            .field("used_ms", &self.used_ms)
            .field("owner", &self.owner)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// How many console sessions are kept: `max_sessions` of all owners together (a start beyond is
/// refused, ending no session of another owner), `max_per_owner` of one owner (its start
/// beyond ends its own least recently used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionBounds {
    pub max_sessions: u64,
    pub max_per_owner: u64,
}

/// Which console sessions have expired: those last marked used at or before `used_before_ms`
/// (idle too long) or started at or before `started_before_ms` (past the absolute limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCutoff {
    pub used_before_ms: i64,
    pub started_before_ms: i64,
}

/// The most rows [`crate::Catalog::list_gateways`] answers.
pub const MAX_GATEWAY_ROWS: usize = 500;
/// The longest status a gateway's heartbeat may carry (bytes); a longer one is refused.
pub const MAX_GATEWAY_STATUS: usize = 16 * 1024;
/// The longest id and release a gateway's heartbeat may carry (bytes; an id may hold a data
/// directory's path, up to Linux's `PATH_MAX`). Rows longer in any of the three (written into
/// the catalog by other means) are not listed.
pub const MAX_GATEWAY_ID: usize = 4096 + 64;
pub const MAX_GATEWAY_VERSION: usize = 64;

/// Whether a heartbeat fits the registry's bounds.
#[must_use]
pub fn gateway_beat_fits(beat: &GatewayBeat) -> bool {
    beat.id.len() <= MAX_GATEWAY_ID
        && beat.version.len() <= MAX_GATEWAY_VERSION
        && beat.status.len() <= MAX_GATEWAY_STATUS
}

/// One process's heartbeat in the registry of the gateways sharing a catalog (`obhut serve`
/// and `obhut gateway` alike): who it is and how it fares. It names no tenant, bucket or
/// object; `status` is opaque to the catalog (JSON written and read by the maintenance
/// crate, at most [`MAX_GATEWAY_STATUS`] bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBeat {
    /// The process's id (its lease holder id).
    pub id: String,
    /// The release it runs.
    pub version: String,
    /// When it started (milliseconds since the epoch, its own clock).
    pub started_ms: i64,
    /// Whether it held the lease on background work at this beat.
    pub background: bool,
    pub status: String,
}

/// A row of the gateway registry: the last beat, and when the catalog received it (its own
/// clock, as for leases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRow {
    pub beat: GatewayBeat,
    pub seen_ms: i64,
}

/// The registry as listed: its rows (most recently seen first) and the catalog's clock when
/// it was read, so that "seen N s ago" is judged by one clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayList {
    pub now_ms: i64,
    pub gateways: Vec<GatewayRow>,
}
