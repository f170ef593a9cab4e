//! Object tagging: PutObjectTagging, GetObjectTagging and DeleteObjectTagging (by version
//! too), the tags a write sets (`x-amz-tagging` on PutObject, CopyObject with
//! `x-amz-tagging-directive`, CreateMultipartUpload) and S3's limits on them.
//!
//! Tags are the tenant's data: they live in the object version's metadata, sealed under its
//! object key like user metadata (`crate::meta`), so the catalog never holds them in clear and
//! whoever may read an object's metadata (its tenant, a grant that covers it) may read them.
//! A change of tags replaces the sealed metadata of that one version only if it is still what
//! was read. Never sees object content, bucket or tenant keys.

use super::store::{KeyMemo, Opened};
use super::versions::response_version_id;
use crate::access::ReqCtx;
use crate::keys::Binding;
use crate::{Gateway, error};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// S3's limits on object tags (a bucket may have 50: [`MAX_BUCKET_TAGS`]).
const MAX_TAGS: usize = 10;
/// S3's limit on the tags of a bucket.
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;
/// How often a change of tags is tried again when the version's metadata changed under it.
const ATTEMPTS: usize = 3;

fn invalid_tag(message: &'static str) -> s3s::S3Error {
    error::with(S3ErrorCode::InvalidTag, message)
}

/// Checks an object's tag set against S3's limits: at most 10 tags, keys of 1 to 128 and
/// values of at most 256 Unicode characters, no key twice, none starting with `aws:`.
pub fn check_tags(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        let mut e = error::with(
            S3ErrorCode::Custom("BadRequest".into()),
            "Object tags cannot be greater than 10",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    check_each_tag(tags)
}

/// The limits every tag meets, of an object or of a bucket.
pub fn check_each_tag(tags: &[(String, String)]) -> S3Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (k, v) in tags {
        if k.is_empty() {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if k.chars().count() > MAX_KEY_CHARS {
            return Err(invalid_tag(
                "The TagKey you have provided is too long, max 128",
            ));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if !seen.insert(k.as_str()) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header (URL query form: `k1=v1&k2=v2`), checked.
pub fn header_tags(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let tags: Vec<(String, String)> = form_urlencoded::parse(header.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut keys = std::collections::HashSet::new();
    if tags.iter().any(|(k, _)| !keys.insert(k.as_str())) {
        return Err(error::with(
            S3ErrorCode::InvalidArgument,
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
        ));
    }
    check_tags(&tags)?;
    Ok(tags)
}

pub fn tag_set(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// The tags of a request body's `TagSet`, checked.
fn body_tags(tagging: Tagging) -> S3Result<Vec<(String, String)>> {
    let tags = body_tag_list(tagging)?;
    check_tags(&tags)?;
    Ok(tags)
}

/// The tags of a request body's `TagSet`, each `Key` present; not checked against limits.
pub fn body_tag_list(tagging: Tagging) -> S3Result<Vec<(String, String)>> {
    tagging
        .tag_set
        .into_iter()
        .map(|t| {
            Ok((
                t.key
                    .ok_or_else(|| error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML))?,
                t.value.unwrap_or_default(),
            ))
        })
        .collect()
}

/// The tag count S3 answers on GET (`x-amz-tagging-count`): none for an object without tags.
pub fn tag_count(tags: &[(String, String)]) -> Option<i32> {
    (!tags.is_empty()).then(|| i32::try_from(tags.len()).unwrap_or(i32::MAX))
}

impl Gateway {
    /// Reads (`new_tags: None`) or replaces the tags of one version of `key` (`version_id`:
    /// the current one if absent); answers the tags (as they are after the change) and the
    /// version id to report.
    async fn object_tags(
        &self,
        ctx: &ReqCtx,
        key: &str,
        version_id: Option<&str>,
        new_tags: Option<Vec<(String, String)>>,
    ) -> S3Result<(Vec<(String, String)>, Option<String>)> {
        let bucket = ctx.bucket()?;
        let tenant = &ctx.tenant.name;
        let keys = KeyMemo::default();
        // Without the trustee, not even whether the name exists is answered.
        self.require_keys(tenant, &bucket.name, &ctx.justification, &keys)
            .await?;
        for _ in 0..ATTEMPTS {
            let o = self.object_version(bucket, key, version_id).await?;
            let Opened { cipher, .. } = self
                .open_object(tenant, &o, &ctx.justification, &keys)
                .await?;
            let mut meta = cipher.open_meta(&o.meta).map_err(|e| {
                self.integrity_failure(
                    &Binding::object(tenant, &bucket.name, key),
                    &format!("the metadata does not open: {e}"),
                )
            })?;
            let shown = response_version_id(bucket, &o);
            let Some(tags) = new_tags.clone() else {
                return Ok((meta.tags, shown));
            };
            meta.tags = tags;
            let sealed = cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?;
            if self
                .catalog
                .replace_object_meta(bucket, key, o.version_id.as_deref(), &o.meta, &sealed)
                .await
                .map_err(error::catalog)?
            {
                return Ok((meta.tags, shown));
            }
            // Overwritten or retagged meanwhile: read it again.
        }
        Err(error::with(
            S3ErrorCode::OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource. Please try again.",
        ))
    }
}

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    super::input::check_key(&input.key)?;
    let tags = body_tags(input.tagging)?;
    let (_, version_id) = gw
        .object_tags(&ctx, &input.key, input.version_id.as_deref(), Some(tags))
        .await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    super::input::check_key(&input.key)?;
    let (tags, version_id) = gw
        .object_tags(&ctx, &input.key, input.version_id.as_deref(), None)
        .await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&tags),
        version_id,
    }))
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    super::input::check_key(&input.key)?;
    let (_, version_id) = gw
        .object_tags(
            &ctx,
            &input.key,
            input.version_id.as_deref(),
            Some(Vec::new()),
        )
        .await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    #[test]
    fn limits_are_s3s() {
        assert!(check_tags(&tags(10)).is_ok());
        let e = check_tags(&tags(11)).unwrap_err();
        assert_eq!(e.code().as_str(), "BadRequest");
        let long_key = vec![("ß".repeat(128), String::new())];
        assert!(check_tags(&long_key).is_ok(), "128 characters, 256 bytes");
        for bad in [
            vec![("ß".repeat(129), String::new())],
            vec![("k".into(), "ü".repeat(257))],
            vec![("aws:created".into(), "x".into())],
            vec![("k".into(), "1".into()), ("k".into(), "2".into())],
            vec![(String::new(), "x".into())],
        ] {
            assert_eq!(
                check_tags(&bad).unwrap_err().code().as_str(),
                "InvalidTag",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_tagging_header_is_a_url_query() {
        assert_eq!(
            header_tags(Some("a=1&b%20c=d%26e&empty=")).unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b c".into(), "d&e".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(header_tags(None).unwrap(), Vec::new());
        assert_eq!(
            header_tags(Some("a=1&a=2")).unwrap_err().code().as_str(),
            "InvalidArgument"
        );
        assert_eq!(
            header_tags(Some("aws:x=1")).unwrap_err().code().as_str(),
            "InvalidTag"
        );
    }
}
