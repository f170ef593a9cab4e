//! Conditional requests: If-Match, If-None-Match and the date conditions of reads and copy
//! sources (RFC 7232 as S3 applies it), and the conditions S3 accepts on writes.
//!
//! Decides from an object's catalog record and its ETag, opened by the caller (the catalog
//! holds it sealed); never sees its content or keys.

use super::convert::seconds;
use crate::error;
use obhut_catalog::{ObjectRecord, PutCondition};
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The conditions of a read, or of a copy's source.
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

pub fn precondition_failed() -> S3Error {
    error::with(S3ErrorCode::PreconditionFailed, error::PRECONDITION_FAILED)
}

impl Conditions<'_> {
    /// RFC 7232 evaluation order, as S3 applies it, for object `o` whose ETag is `etag`.
    /// `for_copy` turns 304 into 412.
    pub fn check(&self, o: &ObjectRecord, etag: &str, for_copy: bool) -> S3Result<()> {
        let modified = o.last_modified_ms / 1000;
        if let Some(m) = self.if_match {
            if !etag_matches(m, etag) {
                return Err(precondition_failed());
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > seconds(t)
        {
            return Err(precondition_failed());
        }
        let not_modified = if let Some(n) = self.if_none_match {
            etag_matches(n, etag)
        } else {
            self.if_modified_since
                .is_some_and(|t| modified <= seconds(t))
        };
        if not_modified {
            return Err(if for_copy {
                precondition_failed()
            } else {
                S3Error::new(S3ErrorCode::NotModified)
            });
        }
        Ok(())
    }
}

/// The condition of a write (PutObject, CompleteMultipartUpload): S3 accepts `If-None-Match: *`
/// and `If-Match: <etag>`, not both. An `If-Match` condition names the ETag the client wants;
/// before it reaches the catalog, which holds ETags sealed, `Gateway::write_condition` turns
/// it into the stored form of the current object's ETag.
pub fn put_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<PutCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(PutCondition::None),
        (None, Some(c)) if c.is_any() => Ok(PutCondition::Absent),
        (None, Some(_)) => Err(error::with(
            S3ErrorCode::NotImplemented,
            error::IF_NONE_MATCH_ONLY_ANY,
        )),
        (Some(ETagCondition::ETag(e)), None) => Ok(PutCondition::ETagMatches(e.value().to_owned())),
        (Some(ETagCondition::Any), None) => Err(error::with(
            S3ErrorCode::NotImplemented,
            error::IF_MATCH_NEEDS_ETAG,
        )),
        (Some(_), Some(_)) => Err(error::with(
            S3ErrorCode::InvalidRequest,
            error::IF_MATCH_AND_IF_NONE_MATCH,
        )),
    }
}
