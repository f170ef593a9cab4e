//! Naming rules for buckets, object keys and tenants, following AWS S3 where S3 has a rule.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid bucket name {0:?}: {1}")]
    Bucket(String, &'static str),
    #[error("object key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("object key is empty")]
    KeyEmpty,
    #[error("invalid tenant name {0:?}: use 1-63 characters a-z, 0-9 and '-'")]
    Tenant(String),
    #[error("invalid jurisdiction {0:?}: use an ISO 3166-1 alpha-2 code such as DE")]
    Jurisdiction(String),
}

/// Paths of the S3 listener that are not buckets: its liveness and readiness checks.
pub const RESERVED_BUCKET_NAMES: [&str; 2] = ["healthz", "readyz"];

/// AWS's rules for general purpose bucket names, and obhut's [`RESERVED_BUCKET_NAMES`].
pub fn validate_bucket_name(name: &str) -> Result<(), NameError> {
    let err = |why| Err(NameError::Bucket(name.to_owned(), why));
    if !(3..=63).contains(&name.len()) {
        return err("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return err("may contain only lowercase letters, digits, '.' and '-'");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return err("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return err("must not contain adjacent periods or a period next to a hyphen");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return err("must not be formatted as an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.starts_with("amzn-s3-demo-")
    {
        return err("must not start with a reserved prefix");
    }
    if name.ends_with("-s3alias") || name.ends_with("--ol-s3") || name.ends_with("--x-s3") {
        return err("must not end with a reserved suffix");
    }
    if RESERVED_BUCKET_NAMES.contains(&name) {
        return err("is reserved: the S3 listener answers health checks at this path");
    }
    Ok(())
}

/// S3 object keys: 1 to 1024 bytes of UTF-8 (guaranteed by `&str`).
pub fn validate_object_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() {
        return Err(NameError::KeyEmpty);
    }
    if key.len() > 1024 {
        return Err(NameError::KeyTooLong);
    }
    Ok(())
}

/// Tenant names appear in paths, tokens and logs, so they are kept to a DNS-label alphabet.
pub fn validate_tenant_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Tenant(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_bucket_names() {
        for n in ["photos", "my-bucket.2024", "abc", &"a".repeat(63)] {
            assert_eq!(validate_bucket_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn rejects_bucket_names_aws_rejects() {
        for n in [
            "ab",
            &"a".repeat(64),
            "Photos",
            "under_score",
            "-start",
            "end-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "bucket-s3alias",
        ] {
            assert!(validate_bucket_name(n).is_err(), "{n}");
        }
    }

    #[test]
    fn health_paths_are_no_bucket_names() {
        for name in RESERVED_BUCKET_NAMES {
            assert!(validate_bucket_name(name).is_err(), "{name}");
        }
        assert!(validate_bucket_name("healthz-data").is_ok());
    }

    #[test]
    fn object_keys_are_limited_to_1024_bytes() {
        assert!(validate_object_key(&"k".repeat(1024)).is_ok());
        assert_eq!(
            validate_object_key(&"k".repeat(1025)),
            Err(NameError::KeyTooLong)
        );
        assert_eq!(validate_object_key(""), Err(NameError::KeyEmpty));
    }

    #[test]
    fn tenant_names_are_dns_labels() {
        assert!(validate_tenant_name("demo").is_ok());
        assert!(validate_tenant_name("acme-2").is_ok());
        assert!(validate_tenant_name("Acme").is_err());
        assert!(validate_tenant_name("-x").is_err());
        assert!(validate_tenant_name("").is_err());
    }
}
