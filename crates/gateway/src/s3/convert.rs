//! Conversions between the catalog's values and S3's wire types: times, ETags, sizes, owners.
//!
//! Pure functions; nothing here sees the catalog, keys or object content.

use obhut_catalog::Tenant;
use s3s::dto::{ETag, Owner, Timestamp};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// Whole seconds, as HTTP dates carry them.
pub fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

pub fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

pub fn size_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The owner S3 reports for a tenant's buckets, objects and uploads.
pub fn owner(tenant: &Tenant) -> Owner {
    Owner {
        display_name: Some(tenant.name.clone()),
        id: Some(tenant.name.clone()),
    }
}
