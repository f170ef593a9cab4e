//! Bucket tagging: PutBucketTagging, GetBucketTagging and DeleteBucketTagging.
//!
//! A bucket's tags are configuration of the bucket, like its name and its CORS rules: they are
//! kept in clear in the catalog (`bucket_configs`, kind `tagging`), so that they can serve as
//! cost-allocation labels without a key release, and docs/s3-compatibility.md tells tenants not
//! to put secrets in them. Object tags, which are tenant data, stay sealed (`super::tagging`).
//! Never sees object content or any key.

use super::tagging::{MAX_BUCKET_TAGS, body_tag_list, check_each_tag, tag_set};
use crate::access::ReqCtx;
use crate::{Gateway, error};
use obhut_catalog::config_kind;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

/// The stored form: versioned so that a later release can read what this one wrote.
#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    tags: Vec<(String, String)>,
}

const STORED_VERSION: u32 = 1;

/// Checks a bucket's tag set: at most 50 tags, each as an object's tag must be.
fn checked(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(error::with(
            S3ErrorCode::InvalidTag,
            "Bucket tag count cannot be greater than 50",
        ));
    }
    check_each_tag(&tags)?;
    Ok(tags)
}

fn no_tag_set() -> s3s::S3Error {
    error::with(S3ErrorCode::NoSuchTagSet, "The TagSet does not exist")
}

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let tags = checked(body_tag_list(req.input.tagging)?)?;
    let bytes = serde_json::to_vec(&Stored {
        v: STORED_VERSION,
        tags,
    })
    .map_err(|e| error::corrupt_record("bucket tags", &e))?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::TAGGING,
            Some(&bytes),
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let stored = gw
        .catalog
        .get_bucket_config(ctx.bucket()?, config_kind::TAGGING)
        .await
        .map_err(error::catalog)?
        .ok_or_else(no_tag_set)?;
    let stored: Stored = serde_json::from_slice(&stored)
        .ok()
        .filter(|s: &Stored| s.v == STORED_VERSION)
        .ok_or_else(|| error::corrupt_record("bucket tags", &"unreadable record"))?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tag_set(&stored.tags),
    }))
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let ctx = ReqCtx::of(&req)?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::TAGGING,
            None,
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    #[test]
    fn a_bucket_takes_fifty_tags_each_within_an_objects_limits() {
        assert!(checked(tags(50)).is_ok());
        assert_eq!(checked(tags(51)).unwrap_err().code().as_str(), "InvalidTag");
        for bad in [
            vec![("aws:cost".into(), "x".into())],
            vec![("k".into(), "1".into()), ("k".into(), "2".into())],
            vec![("k".repeat(129), String::new())],
        ] {
            assert_eq!(
                checked(bad.clone()).unwrap_err().code().as_str(),
                "InvalidTag",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_stored_form_reads_back_and_names_its_version() {
        let bytes = serde_json::to_vec(&Stored {
            v: STORED_VERSION,
            tags: tags(2),
        })
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"tags":[["k0","v0"],["k1","v1"]]}"#
        );
        let back: Stored = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.tags, tags(2));
    }
}
