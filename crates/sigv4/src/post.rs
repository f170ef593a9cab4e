//! Browser form uploads (S3's POST Object): the signed parts of a form ([`SignedPost`]), its
//! policy document ([`Policy`]) and the check of the form's fields against the policy's
//! conditions. The string a form signs is its `policy` field itself (base64 of the JSON
//! document), with the signing key of the credential's day, region and service; the verifier
//! (the trustee) checks the signature first, then the policy's expiry and conditions.
//!
//! The `content-length-range` condition is about the file's bytes, which the verifier never
//! sees: [`Policy::check`] hands its bounds back to whoever streams the file.
//!
//! This module holds no secrets and does no I/O.

use serde::{Deserialize, Serialize};

/// Most bytes of a policy document (base64) a form may carry, as S3's limit on a form's
/// fields.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Form fields that no condition needs to name: what carries the signature and the policy,
/// the file, and (by prefix) `x-ignore-`.
const EXEMPT_FIELDS: [&str; 3] = ["policy", "x-amz-signature", "file"];

/// A signed form as the verifier checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPost {
    pub access_key_id: String,
    /// `x-amz-date`, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// The credential scope's date (`YYYYMMDD`), region and service.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    /// The `policy` field as sent (base64): the string that was signed.
    pub policy: String,
    /// `x-amz-signature` (lower-case hex).
    pub signature: String,
    /// The bucket of the request's path.
    pub bucket: String,
    /// The key the upload writes, `${filename}` already replaced.
    pub key: String,
    /// The form's fields before the file, names as sent, but for `policy`, `x-amz-signature`
    /// and `file`.
    pub fields: Vec<(String, String)>,
}

impl SignedPost {
    /// The credential scope, `YYYYMMDD/region/service/aws4_request`.
    #[must_use]
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.scope_date, self.region, self.service
        )
    }

    /// A field's value (names compared without case).
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    /// SHA-256 (hex) of the policy and its signature: what names the signed form.
    #[must_use]
    pub fn digest(&self) -> String {
        crate::sha256_hex(format!("POST\n{}\n{}", self.policy, self.signature).as_bytes())
    }

    /// Checks the policy this form carries against its fields, the bucket and the key at
    /// `now_unix` (seconds); answers the `content-length-range` bounds if it has them.
    pub fn check_policy(&self, now_unix: i64) -> Result<Option<(u64, u64)>, PolicyError> {
        Policy::parse(&self.policy)?.check(now_unix, &self.bucket, &self.key, &self.fields)
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a form's policy does not let it through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not base64 of a JSON policy document with an expiration and conditions.
    #[error("Invalid Policy: {0}")]
    Malformed(String),
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    /// A condition the fields do not meet (the condition, as JSON).
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    ConditionFailed(String),
    /// A field no condition names.
    #[error("Invalid according to Policy: Extra input fields: {0}")]
    ExtraField(String),
}

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]` (field names in lower case).
    Eq { field: String, value: String },
    /// `["starts-with", "$field", "prefix"]`.
    StartsWith { field: String, prefix: String },
    /// `["content-length-range", min, max]`: the file's size in bytes, both bounds included.
    LengthRange { min: u64, max: u64 },
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = |s: &str| serde_json::Value::from(s).to_string();
        match self {
            Self::Eq { field, value } => {
                write!(
                    f,
                    "[\"eq\", {}, {}]",
                    json(&format!("${field}")),
                    json(value)
                )
            }
            Self::StartsWith { field, prefix } => write!(
                f,
                "[\"starts-with\", {}, {}]",
                json(&format!("${field}")),
                json(prefix)
            ),
            Self::LengthRange { min, max } => {
                write!(f, "[\"content-length-range\", {min}, {max}]")
            }
        }
    }
}

/// A policy document: until when it holds, and what the form must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Unix seconds.
    pub expiration: i64,
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// Reads the base64 `policy` field.
    pub fn parse(base64: &str) -> Result<Self, PolicyError> {
        let bad = |m: &str| PolicyError::Malformed(m.to_owned());
        if base64.len() > MAX_POLICY_BYTES {
            return Err(bad("the policy is too large"));
        }
        let text = base64_simd::STANDARD
            .decode_to_vec(base64.trim())
            .map_err(|_| bad("the policy is not base64"))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&text).map_err(|_| bad("the policy is not JSON"))?;
        let expiration = doc
            .get("expiration")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("the policy has no expiration"))?;
        let expiration =
            time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
                .map_err(|_| bad("the policy's expiration is not an ISO 8601 time"))?
                .unix_timestamp();
        let conditions = doc
            .get("conditions")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| bad("the policy has no conditions"))?
            .iter()
            .map(condition)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        Ok(Self {
            expiration,
            conditions,
        })
    }

    /// The `content-length-range` bounds (the narrowest, if several).
    #[must_use]
    pub fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions
            .iter()
            .filter_map(|c| match c {
                Condition::LengthRange { min, max } => Some((*min, *max)),
                _ => None,
            })
            .reduce(|(lo, hi), (min, max)| (lo.max(min), hi.min(max)))
    }

    /// Checks the form (`fields`, the path's `bucket`, the `key` it writes) at `now_unix`:
    /// not expired, every condition met, every field named by some condition. Answers the
    /// `content-length-range` bounds (the narrowest, if several).
    pub fn check(
        &self,
        now_unix: i64,
        bucket: &str,
        key: &str,
        fields: &[(String, String)],
    ) -> Result<Option<(u64, u64)>, PolicyError> {
        if now_unix >= self.expiration {
            return Err(PolicyError::Expired);
        }
        let value = |name: &str| match name {
            "bucket" => Some(bucket),
            "key" => Some(key),
            _ => field(fields, name),
        };
        for c in &self.conditions {
            let met = match c {
                Condition::Eq { field, value: want } => value(field) == Some(want.as_str()),
                Condition::StartsWith { field, prefix } => {
                    let got = value(field).unwrap_or_default();
                    if field == "content-type" {
                        got.split(',')
                            .all(|t| t.trim().starts_with(prefix.as_str()))
                    } else {
                        got.starts_with(prefix.as_str())
                    }
                }
                Condition::LengthRange { .. } => true,
            };
            if !met {
                return Err(PolicyError::ConditionFailed(c.to_string()));
            }
        }
        for (name, _) in fields {
            let lower = name.to_ascii_lowercase();
            if EXEMPT_FIELDS.contains(&lower.as_str()) || lower.starts_with("x-ignore-") {
                continue;
            }
            let named = self.conditions.iter().any(|c| match c {
                Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => {
                    *field == lower
                }
                Condition::LengthRange { .. } => false,
            });
            if !named {
                return Err(PolicyError::ExtraField(name.clone()));
            }
        }
        Ok(self.length_range())
    }
}

/// One entry of `conditions` (an object may hold several equalities).
fn condition(v: &serde_json::Value) -> Result<Vec<Condition>, PolicyError> {
    let bad = |m: String| PolicyError::Malformed(m);
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let value = v
                    .as_str()
                    .ok_or_else(|| bad(format!("the condition on {k} is not a string")))?;
                Ok(Condition::Eq {
                    field: k.trim_start_matches('$').to_ascii_lowercase(),
                    value: value.to_owned(),
                })
            })
            .collect(),
        serde_json::Value::Array(items) if items.len() == 3 => {
            let op = items[0]
                .as_str()
                .ok_or_else(|| bad("a condition's operator is not a string".into()))?
                .to_ascii_lowercase();
            if op == "content-length-range" {
                let bound = |v: &serde_json::Value| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| bad("content-length-range needs two sizes".into()))
                };
                let (min, max) = (bound(&items[1])?, bound(&items[2])?);
                if min > max {
                    return Err(bad(
                        "content-length-range's minimum is above its maximum".into()
                    ));
                }
                return Ok(vec![Condition::LengthRange { min, max }]);
            }
            let field = items[1]
                .as_str()
                .and_then(|f| f.strip_prefix('$'))
                .ok_or_else(|| bad(format!("the {op} condition does not name a $field")))?
                .to_ascii_lowercase();
            let value = items[2]
                .as_str()
                .ok_or_else(|| bad(format!("the {op} condition's value is not a string")))?
                .to_owned();
            match op.as_str() {
                "eq" => Ok(vec![Condition::Eq { field, value }]),
                "starts-with" => Ok(vec![Condition::StartsWith {
                    field,
                    prefix: value,
                }]),
                _ => Err(bad(format!("unknown condition {op}"))),
            }
        }
        _ => Err(bad(
            "a condition is neither an object nor a list of three".into()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64_simd::STANDARD.encode_to_string(json.as_bytes())
    }

    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn policy(conditions: &str) -> String {
        encode(&format!(
            r#"{{"expiration": "2027-01-15T09:00:00Z", "conditions": {conditions}}}"#
        ))
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn boto3_style_policies_pass_and_answer_the_length_range() {
        let p = Policy::parse(&policy(
            r#"[{"bucket": "b"}, ["starts-with", "$key", "up/"], ["content-length-range", 1, 100],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"success_action_status": "201"},
                ["eq", "$Content-Type", "text/plain"]]"#,
        ))
        .unwrap();
        let f = fields(&[
            ("key", "up/${filename}"),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("success_action_status", "201"),
            ("Content-Type", "text/plain"),
            ("x-ignore-me", "anything"),
        ]);
        assert_eq!(p.check(NOW, "b", "up/a.txt", &f), Ok(Some((1, 100))));
    }

    #[test]
    fn expired_unmet_and_unnamed_fields_are_refused() {
        let p = Policy::parse(&policy(
            r#"[{"bucket": "b"}, ["starts-with", "$key", "up/"]]"#,
        ))
        .unwrap();
        let f = fields(&[("key", "up/x")]);
        assert_eq!(p.check(NOW, "b", "up/x", &f), Ok(None));
        assert_eq!(
            p.check(NOW + 3600, "b", "up/x", &f),
            Err(PolicyError::Expired)
        );
        assert_eq!(
            p.check(NOW, "other", "up/x", &f),
            Err(PolicyError::ConditionFailed(
                r#"["eq", "$bucket", "b"]"#.into()
            ))
        );
        assert!(matches!(
            p.check(NOW, "b", "down/x", &f),
            Err(PolicyError::ConditionFailed(_))
        ));
        let extra = fields(&[("key", "up/x"), ("Content-Type", "text/html")]);
        assert_eq!(
            p.check(NOW, "b", "up/x", &extra),
            Err(PolicyError::ExtraField("Content-Type".into()))
        );
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            "not base64!".to_owned(),
            encode("not json"),
            encode(r#"{"conditions": []}"#),
            encode(r#"{"expiration": "tomorrow", "conditions": []}"#),
            policy(r#"[["like", "$key", "x"]]"#),
            policy(r#"[["eq", "key", "x"]]"#),
            policy(r#"[["content-length-range", 10, 1]]"#),
            policy(r#"[["eq", "$key"]]"#),
        ] {
            assert!(
                matches!(Policy::parse(&bad), Err(PolicyError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
