//! The S3 XML that rusty-s3 does not parse for us: the `ListMultipartUploads` result (the one
//! action of an S3 site that rusty-s3 has no type for) and S3 error documents.
//!
//! Owns parsing only, no I/O. It sees listing metadata (keys under `blobs/`, upload ids) and
//! servers' error codes and messages; never blob bytes, never credentials.

use instant_xml::FromXml;

const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// One page of `GET /<bucket>?uploads`.
#[derive(Debug, FromXml)]
#[xml(rename = "ListMultipartUploadsResult", ns(S3_XML_NS))]
pub(super) struct UploadsPage {
    #[xml(rename = "IsTruncated")]
    pub is_truncated: Option<bool>,
    #[xml(rename = "NextKeyMarker")]
    pub next_key_marker: Option<String>,
    #[xml(rename = "NextUploadIdMarker")]
    pub next_upload_id_marker: Option<String>,
    pub uploads: Vec<PendingUpload>,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, FromXml)]
#[xml(rename = "Upload", ns(S3_XML_NS))]
pub(super) struct PendingUpload {
    #[xml(rename = "Key")]
    pub key: String,
    #[xml(rename = "UploadId")]
    pub upload_id: String,
    /// When it was started, RFC 3339 in the server's clock.
    #[xml(rename = "Initiated")]
    pub initiated: Option<String>,
}

impl UploadsPage {
    pub(super) fn parse(body: &str) -> Result<Self, instant_xml::Error> {
        instant_xml::from_str(body)
    }

    /// Where the next page starts, if this one is truncated. An empty marker is no marker.
    pub(super) fn next_markers(&self) -> Option<(String, String)> {
        if self.is_truncated != Some(true) {
            return None;
        }
        let key = self.next_key_marker.clone().filter(|k| !k.is_empty())?;
        Some((key, self.next_upload_id_marker.clone().unwrap_or_default()))
    }
}

/// An S3 error document: `<Error><Code>NoSuchKey</Code><Message>…</Message>…</Error>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ErrorDoc {
    pub code: String,
    pub message: String,
}

#[derive(FromXml)]
#[xml(rename = "Error")]
struct RawErrorDoc {
    #[xml(rename = "Code")]
    code: Option<String>,
    #[xml(rename = "Message")]
    message: Option<String>,
}

#[derive(FromXml)]
#[xml(rename = "Error", ns(S3_XML_NS))]
struct NamespacedErrorDoc {
    #[xml(rename = "Code")]
    code: Option<String>,
    #[xml(rename = "Message")]
    message: Option<String>,
}

impl ErrorDoc {
    /// The code and message of an error body, if it is one (with or without S3's namespace).
    pub(super) fn parse(body: &str) -> Option<Self> {
        let (code, message) = match instant_xml::from_str::<RawErrorDoc>(body) {
            Ok(doc) => (doc.code, doc.message),
            Err(_) => {
                let doc = instant_xml::from_str::<NamespacedErrorDoc>(body).ok()?;
                (doc.code, doc.message)
            }
        };
        Some(Self {
            code: code.unwrap_or_default(),
            message: message.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uploads_listing_parses_with_its_markers() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker/>
  <NextKeyMarker>blobs/bb</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <Prefix>blobs/</Prefix><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>blobs/aa</Key><UploadId>u1</UploadId>
    <Initiator><ID>x</ID><DisplayName>x</DisplayName></Initiator>
    <Owner><ID>x</ID><DisplayName>x</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass><Initiated>2026-01-02T03:04:05.000Z</Initiated></Upload>
  <Upload><Key>blobs/bb</Key><UploadId>u2</UploadId></Upload>
</ListMultipartUploadsResult>"#;
        let page = UploadsPage::parse(body).expect("parse");
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "blobs/aa");
        assert_eq!(page.uploads[0].upload_id, "u1");
        assert_eq!(
            page.uploads[0].initiated.as_deref(),
            Some("2026-01-02T03:04:05.000Z")
        );
        assert_eq!(page.uploads[1].initiated, None);
        assert_eq!(
            page.next_markers(),
            Some(("blobs/bb".to_owned(), "u2".to_owned()))
        );
    }

    #[test]
    fn a_complete_uploads_listing_has_no_next_page() {
        let body = r#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated><NextKeyMarker>k</NextKeyMarker></ListMultipartUploadsResult>"#;
        let page = UploadsPage::parse(body).expect("parse");
        assert!(page.uploads.is_empty());
        assert_eq!(page.next_markers(), None);
    }

    #[test]
    fn error_documents_parse_with_or_without_namespace() {
        let plain = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The key &amp; all</Message><Resource>/b/k</Resource></Error>"#;
        assert_eq!(
            ErrorDoc::parse(plain),
            Some(ErrorDoc {
                code: "NoSuchKey".into(),
                message: "The key & all".into()
            })
        );
        let ns = r#"<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>NoSuchBucket</Code></Error>"#;
        assert_eq!(
            ErrorDoc::parse(ns).map(|d| d.code),
            Some("NoSuchBucket".into())
        );
        assert_eq!(ErrorDoc::parse("<html>bad gateway</html>"), None);
        assert_eq!(ErrorDoc::parse(""), None);
    }
}

/// Fuzz targets (bolero: 2,000 random cases under `cargo test`): what an S3 cluster answers is
/// parsed without trusting it, so any body is a page, an error document or a refusal, never a
/// panic, and a page never yields a marker that is not in the body.
#[cfg(test)]
mod fuzz {
    use super::*;
    use bolero::check;

    const CASES: usize = 2_000;

    const PAGE: &str = r#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated><NextKeyMarker>blobs/bb</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><Upload><Key>blobs/aa</Key><UploadId>u1</UploadId></Upload></ListMultipartUploadsResult>"#;

    fn check_body(body: &str) {
        if let Ok(page) = UploadsPage::parse(body)
            && let Some((key, _)) = page.next_markers()
        {
            assert!(!key.is_empty());
        }
        let _ = ErrorDoc::parse(body);
    }

    #[test]
    fn any_body_parses_or_is_refused() {
        check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
            if let Ok(body) = std::str::from_utf8(bytes) {
                check_body(body);
            }
        });
    }

    #[test]
    fn a_page_with_any_byte_altered_parses_or_is_refused() {
        assert!(UploadsPage::parse(PAGE).is_ok());
        check!()
            .with_iterations(CASES)
            .with_type::<(u16, u8, u16)>()
            .for_each(|&(at, byte, cut)| {
                let mut bytes = PAGE.as_bytes().to_vec();
                let at = usize::from(at) % bytes.len();
                // Printable ASCII, so the body stays text and reaches the XML parser.
                bytes[at] = b' ' + byte % 95;
                bytes.truncate(usize::from(cut).max(at + 1));
                if let Ok(body) = std::str::from_utf8(&bytes) {
                    check_body(body);
                }
            });
    }
}
