//! The S3 operation of a request, from its method, path shape and subresource: the `op` label
//! of request metrics. Only the path's shape counts (whether it names a bucket, an object),
//! never the names in it.

/// The S3 operations obhut serves, and `Other` for every request that is none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    Other,
}

/// Subresources of operations obhut does not serve: such a request is `Other`.
const OTHER_SUBRESOURCES: [&str; 26] = [
    "acl",
    "tagging",
    "policy",
    "cors",
    "lifecycle",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "retention",
    "legal-hold",
    "attributes",
    "torrent",
    "restore",
    "select",
    "accelerate",
    "requestPayment",
    "ownershipControls",
    "publicAccessBlock",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "policyStatus",
];

#[derive(Default)]
struct Query {
    uploads: bool,
    upload_id: bool,
    part_number: bool,
    list_v2: bool,
    versions: bool,
    location: bool,
    versioning: bool,
    delete: bool,
    other: bool,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut q = Self::default();
        for pair in query.unwrap_or_default().split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "uploads" => q.uploads = true,
                "uploadId" => q.upload_id = true,
                "partNumber" => q.part_number = true,
                "list-type" => q.list_v2 = v == "2",
                "versions" => q.versions = true,
                "location" => q.location = true,
                "versioning" => q.versioning = true,
                "delete" => q.delete = true,
                k if OTHER_SUBRESOURCES.contains(&k) => q.other = true,
                _ => {}
            }
        }
        q
    }
}

impl S3Op {
    /// Every operation, in the order of their discriminants.
    pub const ALL: [Self; 23] = [
        Self::ListBuckets,
        Self::CreateBucket,
        Self::HeadBucket,
        Self::DeleteBucket,
        Self::GetBucketLocation,
        Self::GetBucketVersioning,
        Self::ListObjects,
        Self::ListObjectsV2,
        Self::ListObjectVersions,
        Self::ListMultipartUploads,
        Self::DeleteObjects,
        Self::PutObject,
        Self::CopyObject,
        Self::GetObject,
        Self::HeadObject,
        Self::DeleteObject,
        Self::CreateMultipartUpload,
        Self::UploadPart,
        Self::UploadPartCopy,
        Self::CompleteMultipartUpload,
        Self::AbortMultipartUpload,
        Self::ListParts,
        Self::Other,
    ];

    /// Its name, as S3's API reference spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListBuckets => "ListBuckets",
            Self::CreateBucket => "CreateBucket",
            Self::HeadBucket => "HeadBucket",
            Self::DeleteBucket => "DeleteBucket",
            Self::GetBucketLocation => "GetBucketLocation",
            Self::GetBucketVersioning => "GetBucketVersioning",
            Self::ListObjects => "ListObjects",
            Self::ListObjectsV2 => "ListObjectsV2",
            Self::ListObjectVersions => "ListObjectVersions",
            Self::ListMultipartUploads => "ListMultipartUploads",
            Self::DeleteObjects => "DeleteObjects",
            Self::PutObject => "PutObject",
            Self::CopyObject => "CopyObject",
            Self::GetObject => "GetObject",
            Self::HeadObject => "HeadObject",
            Self::DeleteObject => "DeleteObject",
            Self::CreateMultipartUpload => "CreateMultipartUpload",
            Self::UploadPart => "UploadPart",
            Self::UploadPartCopy => "UploadPartCopy",
            Self::CompleteMultipartUpload => "CompleteMultipartUpload",
            Self::AbortMultipartUpload => "AbortMultipartUpload",
            Self::ListParts => "ListParts",
            Self::Other => "Other",
        }
    }

    /// The operation of a path-style request: `method`, the URI's `path` and `query`, and
    /// whether it carries `x-amz-copy-source`.
    #[must_use]
    pub fn classify(method: &str, path: &str, query: Option<&str>, copy_source: bool) -> Self {
        let path = path.strip_prefix('/').unwrap_or(path);
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        let q = Query::parse(query);
        if q.other {
            return Self::Other;
        }
        match (bucket.is_empty(), key.is_empty()) {
            (true, _) => match method {
                "GET" => Self::ListBuckets,
                _ => Self::Other,
            },
            (false, true) => Self::bucket_op(method, &q),
            (false, false) => Self::object_op(method, &q, copy_source),
        }
    }

    fn bucket_op(method: &str, q: &Query) -> Self {
        match method {
            "GET" if q.location => Self::GetBucketLocation,
            "GET" if q.versioning => Self::GetBucketVersioning,
            "GET" if q.versions => Self::ListObjectVersions,
            "GET" if q.uploads => Self::ListMultipartUploads,
            "GET" if q.list_v2 => Self::ListObjectsV2,
            "GET" => Self::ListObjects,
            "PUT" if !(q.versioning || q.location) => Self::CreateBucket,
            "HEAD" => Self::HeadBucket,
            "DELETE" => Self::DeleteBucket,
            "POST" if q.delete => Self::DeleteObjects,
            _ => Self::Other,
        }
    }

    fn object_op(method: &str, q: &Query, copy_source: bool) -> Self {
        match method {
            "PUT" if q.upload_id && q.part_number && copy_source => Self::UploadPartCopy,
            "PUT" if q.upload_id && q.part_number => Self::UploadPart,
            "PUT" if copy_source => Self::CopyObject,
            "PUT" => Self::PutObject,
            "GET" if q.upload_id => Self::ListParts,
            "GET" => Self::GetObject,
            "HEAD" => Self::HeadObject,
            "DELETE" if q.upload_id => Self::AbortMultipartUpload,
            "DELETE" => Self::DeleteObject,
            "POST" if q.uploads => Self::CreateMultipartUpload,
            "POST" if q.upload_id => Self::CompleteMultipartUpload,
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::S3Op::{self, *};

    #[test]
    fn discriminants_follow_all() {
        for (i, op) in S3Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
    }

    #[test]
    fn classifies_path_style_requests() {
        let c = S3Op::classify;
        assert_eq!(c("GET", "/", None, false), ListBuckets);
        assert_eq!(c("PUT", "/b", None, false), CreateBucket);
        assert_eq!(c("HEAD", "/b", None, false), HeadBucket);
        assert_eq!(c("DELETE", "/b/", None, false), DeleteBucket);
        assert_eq!(c("GET", "/b", Some("location"), false), GetBucketLocation);
        assert_eq!(
            c("GET", "/b", Some("versioning"), false),
            GetBucketVersioning
        );
        assert_eq!(c("GET", "/b", Some("prefix=a"), false), ListObjects);
        assert_eq!(
            c("GET", "/b", Some("list-type=2&prefix=a"), false),
            ListObjectsV2
        );
        assert_eq!(c("GET", "/b", Some("versions"), false), ListObjectVersions);
        assert_eq!(c("GET", "/b", Some("uploads"), false), ListMultipartUploads);
        assert_eq!(c("POST", "/b", Some("delete"), false), DeleteObjects);
        assert_eq!(c("PUT", "/b/k/x", None, false), PutObject);
        assert_eq!(c("PUT", "/b/k", Some("x-id=PutObject"), true), CopyObject);
        assert_eq!(c("GET", "/b/k", None, false), GetObject);
        assert_eq!(c("HEAD", "/b/k", Some("partNumber=1"), false), HeadObject);
        assert_eq!(c("DELETE", "/b/k", None, false), DeleteObject);
        assert_eq!(
            c("POST", "/b/k", Some("uploads"), false),
            CreateMultipartUpload
        );
        assert_eq!(
            c("PUT", "/b/k", Some("partNumber=2&uploadId=u"), false),
            UploadPart
        );
        assert_eq!(
            c("PUT", "/b/k", Some("partNumber=2&uploadId=u"), true),
            UploadPartCopy
        );
        assert_eq!(
            c("POST", "/b/k", Some("uploadId=u"), false),
            CompleteMultipartUpload
        );
        assert_eq!(
            c("DELETE", "/b/k", Some("uploadId=u"), false),
            AbortMultipartUpload
        );
        assert_eq!(c("GET", "/b/k", Some("uploadId=u"), false), ListParts);
        assert_eq!(c("GET", "/b", Some("acl"), false), Other);
        assert_eq!(c("PUT", "/b/k", Some("tagging"), false), Other);
        assert_eq!(c("PATCH", "/b/k", None, false), Other);
    }
}
