//! Listing with S3's semantics: prefix, delimiter roll-up into common prefixes, markers that may
//! be keys or common prefixes, and URL encoding of names on request; for objects and for
//! multipart uploads alike.
//!
//! Works on catalog records only; never sees object content or keys.

use obhut_catalog::{
    Bucket, Catalog, CatalogError, ListFrom, ObjectRecord, ObjectVersion, Upload, VersionsFrom,
};
use s3s::S3Result;

/// The common prefix `key` rolls up into: the part of it after `prefix` up to and including
/// the first `delimiter`, if there is one.
pub fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    rest.find(d)
        .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
}

/// One page of a listing.
#[derive(Default)]
pub struct Page {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned, from which the next page continues.
    pub last: Option<String>,
}

/// Lists up to `max` entries (objects plus common prefixes) after `after`.
///
/// A common prefix that sorts at or before `after` was returned on an earlier page and is
/// skipped, which is how S3 treats a marker that is itself a common prefix.
pub async fn list_page(
    catalog: &dyn Catalog,
    bucket: &Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<Page> {
    let mut page = Page::default();
    if max == 0 {
        return Ok(page);
    }
    let mut cursor: Option<(bool, String)> = after.map(|a| (false, a.to_owned()));
    let batch = (max + 1).min(1001);
    loop {
        let from = match &cursor {
            None => ListFrom::Start,
            Some((false, k)) => ListFrom::After(k),
            Some((true, p)) => ListFrom::PastPrefix(p),
        };
        let objects = catalog
            .list_objects(bucket, prefix, from, batch)
            .await
            .map_err(crate::error::catalog)?;
        if objects.is_empty() {
            return Ok(page);
        }
        let full_batch = objects.len() == batch;
        for o in objects {
            let common = common_prefix(&o.key, prefix, delimiter);
            let entry = common.as_deref().unwrap_or(&o.key).to_owned();
            if let Some(cp) = common {
                if after.is_some_and(|a| cp.as_str() <= a) {
                    cursor = Some((true, cp));
                    break;
                }
                if page.objects.len() + page.common_prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.common_prefixes.push(cp.clone());
                page.last = Some(entry);
                cursor = Some((true, cp));
                // Everything else under this prefix is skipped by the next query.
                break;
            }
            if page.objects.len() + page.common_prefixes.len() == max {
                page.truncated = true;
                return Ok(page);
            }
            cursor = Some((false, o.key.clone()));
            page.last = Some(entry);
            page.objects.push(o);
        }
        if !full_batch && !matches!(cursor, Some((true, _))) {
            return Ok(page);
        }
    }
}

/// One page of a listing of versions.
#[derive(Default)]
pub struct VersionPage {
    /// Versions and delete markers, by key, newest first within a key.
    pub entries: Vec<ObjectVersion>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page continues: the last key (or common prefix) returned and, for an
    /// entry, its version id (`None` inside: the null version).
    pub next: Option<(String, Option<Option<String>>)>,
}

/// Where a version listing stands.
enum VersionCursor {
    Start,
    Key(String),
    Version(String, Option<String>),
    Prefix(String),
}

/// Lists up to `max` entries (versions, delete markers and common prefixes) after the key
/// marker `after` (and, within its key, after the version `after_version`), as
/// [`list_page`] does for objects.
pub async fn list_versions_page(
    catalog: &dyn Catalog,
    bucket: &Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    after_version: Option<Option<&str>>,
    max: usize,
) -> S3Result<VersionPage> {
    let mut page = VersionPage::default();
    if max == 0 {
        return Ok(page);
    }
    let mut cursor = match (after, after_version) {
        (None, _) => VersionCursor::Start,
        (Some(k), None) => VersionCursor::Key(k.to_owned()),
        (Some(k), Some(v)) => VersionCursor::Version(k.to_owned(), v.map(str::to_owned)),
    };
    let batch = (max + 1).min(1001);
    loop {
        let from = match &cursor {
            VersionCursor::Start => VersionsFrom::Start,
            VersionCursor::Key(k) => VersionsFrom::AfterKey(k),
            VersionCursor::Version(k, v) => VersionsFrom::AfterVersion(k, v.as_deref()),
            VersionCursor::Prefix(p) => VersionsFrom::PastPrefix(p),
        };
        let entries = catalog
            .list_object_versions(bucket, prefix, from, batch)
            .await
            .map_err(|e| match e {
                CatalogError::NotFound {
                    kind: "version", ..
                } => crate::error::with(
                    s3s::S3ErrorCode::InvalidArgument,
                    crate::error::INVALID_VERSION_ID_MARKER,
                ),
                other => crate::error::catalog(other),
            })?;
        if entries.is_empty() {
            return Ok(page);
        }
        let full_batch = entries.len() == batch;
        let mut rolled_up = false;
        for v in entries {
            if let Some(cp) = common_prefix(&v.object.key, prefix, delimiter) {
                rolled_up = true;
                if after.is_some_and(|a| cp.as_str() <= a) {
                    cursor = VersionCursor::Prefix(cp);
                    break;
                }
                if page.entries.len() + page.common_prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.common_prefixes.push(cp.clone());
                page.next = Some((cp.clone(), None));
                cursor = VersionCursor::Prefix(cp);
                break;
            }
            if page.entries.len() + page.common_prefixes.len() == max {
                page.truncated = true;
                return Ok(page);
            }
            let (key, id) = (v.object.key.clone(), v.object.version_id.clone());
            page.next = Some((key.clone(), Some(id.clone())));
            cursor = VersionCursor::Version(key, id);
            page.entries.push(v);
        }
        if !full_batch && !rolled_up {
            return Ok(page);
        }
    }
}

/// One page of a multipart upload listing.
#[derive(Default)]
pub struct UploadPage {
    pub uploads: Vec<Upload>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts: a key (with the upload id after which it continues) or a
    /// common prefix (without one). Set only when truncated.
    pub next_key: Option<String>,
    pub next_upload_id: Option<String>,
}

/// Lists up to `max` uploads and common prefixes after `after` (key marker and upload-id
/// marker), in key and then upload-id order.
pub async fn list_uploads_page(
    catalog: &dyn Catalog,
    bucket: &Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<(&str, &str)>,
    max: usize,
) -> S3Result<UploadPage> {
    let mut page = UploadPage::default();
    // Without an upload-id marker, S3 starts after every upload of the key marker.
    let mut cursor = after.map(|(k, u)| {
        (
            k.to_owned(),
            if u.is_empty() {
                "\u{10ffff}".to_owned()
            } else {
                u.to_owned()
            },
        )
    });
    'pages: loop {
        let batch = catalog
            .list_uploads(
                bucket,
                prefix,
                cursor.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                max + 1,
            )
            .await
            .map_err(crate::error::catalog)?;
        let full = batch.len() == max + 1;
        for u in batch {
            cursor = Some((u.key.clone(), u.upload_id.clone()));
            let common = common_prefix(&u.key, prefix, delimiter);
            if let Some(cp) = &common {
                let seen = page.common_prefixes.last() == Some(cp)
                    || after.is_some_and(|(k, _)| cp.as_str() <= k);
                if seen {
                    continue;
                }
            }
            if page.uploads.len() + page.common_prefixes.len() == max {
                page.truncated = true;
                break 'pages;
            }
            match common {
                Some(cp) => page.common_prefixes.push(cp),
                None => page.uploads.push(u),
            }
        }
        if !full {
            break;
        }
    }
    if page.truncated {
        // The next page starts after the last upload or common prefix returned.
        let last_upload = page.uploads.last().map(|u| (&u.key, &u.upload_id));
        let last_prefix = page.common_prefixes.last();
        (page.next_key, page.next_upload_id) = match (last_upload, last_prefix) {
            (Some((k, _)), Some(p)) if p > k => (Some(p.clone()), None),
            (Some((k, id)), _) => (Some(k.clone()), Some(id.clone())),
            (None, Some(p)) => (Some(p.clone()), None),
            (None, None) => (None, None),
        };
    }
    Ok(page)
}

/// S3's `encoding-type=url`: percent-encode everything but unreserved characters and '/'.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use obhut_catalog::{BucketKey, Chunk, PutCondition, SqliteCatalog, Tenant};

    fn bucket_b() -> Bucket {
        Bucket {
            name: "b".into(),
            tenant: "t".into(),
            created_ms: 0,
            versioning: Default::default(),
        }
    }

    async fn catalog_with(keys: &[&str]) -> SqliteCatalog {
        let cat = SqliteCatalog::in_memory().expect("catalog");
        cat.create_tenant(&Tenant {
            name: "t".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 0,
        })
        .await
        .expect("tenant");
        cat.create_bucket(
            &bucket_b(),
            &BucketKey {
                bucket: "b".into(),
                version: 1,
                wrapped: Vec::new(),
                kcv: Vec::new(),
                created_ms: 0,
            },
        )
        .await
        .expect("bucket");
        for k in keys {
            let o = ObjectRecord {
                bucket: "b".into(),
                key: (*k).into(),
                size: 0,
                etag: String::new(),
                last_modified_ms: 0,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: Vec::new(),
                chunks: vec![Chunk {
                    blob: obhut_core::BlobId::random(),
                    size: 0,
                    part: 1,
                    crc32c: None,
                }],
                version_id: None,
            };
            cat.put_object(&bucket_b(), &o, PutCondition::None)
                .await
                .expect("put");
        }
        cat
    }

    fn names(p: &Page) -> (Vec<&str>, Vec<&str>) {
        (
            p.objects.iter().map(|o| o.key.as_str()).collect(),
            p.common_prefixes.iter().map(String::as_str).collect(),
        )
    }

    #[tokio::test]
    async fn delimiter_rolls_up_and_pages_resume_after_common_prefixes() {
        let cat = catalog_with(&["a/1", "a/2", "a/3", "b", "c/1", "d"]).await;
        let p1 = list_page(&cat, &bucket_b(), "", Some("/"), None, 2)
            .await
            .expect("p1");
        assert_eq!(names(&p1), (vec!["b"], vec!["a/"]));
        assert!(p1.truncated);
        let p2 = list_page(&cat, &bucket_b(), "", Some("/"), p1.last.as_deref(), 2)
            .await
            .expect("p2");
        assert_eq!(names(&p2), (vec!["d"], vec!["c/"]));
        assert!(!p2.truncated);
    }

    #[tokio::test]
    async fn prefix_and_max_keys_without_delimiter() {
        let keys: Vec<String> = (0..25).map(|i| format!("k{i:03}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let cat = catalog_with(&refs).await;
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = list_page(&cat, &bucket_b(), "k", None, after.as_deref(), 10)
                .await
                .expect("page");
            seen.extend(p.objects.iter().map(|o| o.key.clone()));
            if !p.truncated {
                break;
            }
            after = p.last;
        }
        assert_eq!(seen, keys);
        let none = list_page(&cat, &bucket_b(), "k", None, None, 0)
            .await
            .expect("zero");
        assert!(none.objects.is_empty() && !none.truncated);
    }

    #[tokio::test]
    async fn uploads_roll_up_like_objects_and_pages_resume_after_the_last_entry() {
        let cat = catalog_with(&[]).await;
        for (id, key) in [("u1", "a/1"), ("u2", "a/2"), ("u3", "b"), ("u4", "c/1")] {
            cat.create_upload(
                &bucket_b(),
                &Upload {
                    upload_id: id.into(),
                    bucket: "b".into(),
                    key: key.into(),
                    initiated_ms: 0,
                    envelope: Vec::new(),
                    meta: Vec::new(),
                    sites: Vec::new(),
                },
            )
            .await
            .expect("upload");
        }
        let p1 = list_uploads_page(&cat, &bucket_b(), "", Some("/"), None, 2)
            .await
            .expect("p1");
        let keys =
            |p: &UploadPage| -> Vec<String> { p.uploads.iter().map(|u| u.key.clone()).collect() };
        assert_eq!(
            (keys(&p1), p1.common_prefixes.clone()),
            (vec!["b".to_owned()], vec!["a/".to_owned()])
        );
        assert!(p1.truncated);
        assert_eq!(
            (p1.next_key.as_deref(), p1.next_upload_id.as_deref()),
            (Some("b"), Some("u3"))
        );
        let after = Some(("b", "u3"));
        let p2 = list_uploads_page(&cat, &bucket_b(), "", Some("/"), after, 2)
            .await
            .expect("p2");
        assert_eq!(
            (keys(&p2), p2.common_prefixes.clone()),
            (vec![], vec!["c/".to_owned()])
        );
        assert!(!p2.truncated && p2.next_key.is_none());
    }

    #[test]
    fn common_prefix_rolls_up_to_the_first_delimiter_after_the_prefix() {
        assert_eq!(
            common_prefix("photos/2024/a.jpg", "photos/", Some("/")),
            Some("photos/2024/".to_owned())
        );
        assert_eq!(common_prefix("photos/a.jpg", "photos/", Some("/")), None);
        assert_eq!(common_prefix("a--b--c", "", Some("--")), Some("a--".into()));
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
        assert_eq!(common_prefix("other/b", "photos/", Some("/")), None);
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d\u{e9}"), "a%20b/c%2Bd%C3%A9");
    }
}

/// Fuzz target (bolero: 2,000 random cases under `cargo test`): a common prefix is always the
/// listing prefix plus the key's text up to and including its first delimiter after it.
#[cfg(test)]
mod fuzz {
    use super::common_prefix;
    use bolero::check;

    #[test]
    fn common_prefixes_end_at_the_first_delimiter() {
        check!()
            .with_iterations(2_000)
            .with_type::<(String, String, String)>()
            .for_each(|(key, prefix, delimiter)| {
                let Some(p) = common_prefix(key, prefix, Some(delimiter)) else {
                    return;
                };
                assert!(key.starts_with(&p) && p.starts_with(prefix.as_str()));
                assert!(!delimiter.is_empty() && p.ends_with(delimiter.as_str()));
                let between = &p[prefix.len()..p.len() - delimiter.len()];
                assert!(
                    !between.contains(delimiter.as_str()),
                    "{key:?} {prefix:?} {delimiter:?}"
                );
            });
    }
}
