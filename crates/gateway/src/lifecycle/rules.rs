//! A bucket's lifecycle rules: checked as S3 checks a `BucketLifecycleConfiguration`, stored
//! as obhut's JSON form of it (catalog `bucket_configs`, kind `lifecycle`), answered back in
//! the form they were given, and matched against object versions and uploads.
//!
//! Pure: nothing here sees the catalog, keys or object content. The worker hands it an
//! object's name, size and (when a rule filters by tag) its tags.

use s3s::S3ErrorCode;
use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, Tag, Timestamp,
};
use serde::{Deserialize, Serialize};

/// S3's limit on the rules of one configuration.
pub const MAX_RULES: usize = 1000;
/// S3's limit on a rule's ID.
const MAX_ID_LEN: usize = 255;
/// S3's limits on a tag's key and value.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
/// S3's limit on `NewerNoncurrentVersions`.
const MAX_NEWER_NONCURRENT: u32 = 100;
/// The format of the stored configuration (a field of its own, so that a later release can
/// tell and convert it).
pub const FORMAT: u32 = 1;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// How a rule's filter was written, so that it is answered back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `<Prefix>` on the rule itself (the older form).
    RulePrefix,
    /// `<Filter>` with one predicate, or none.
    Filter,
    /// `<Filter><And>…</And></Filter>`.
    And,
}

/// Which objects a rule applies to: every predicate given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub form: Form,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
}

/// What happens to a current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiration {
    /// `Days` lifecycle days after it was written.
    Days(u32),
    /// From this time on (milliseconds since the epoch; midnight UTC).
    Date(i64),
    /// Only delete markers with no version left behind them are removed.
    ExpiredObjectDeleteMarker,
}

/// What happens to noncurrent versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Lifecycle days after the version became noncurrent.
    pub days: u32,
    /// This many newer noncurrent versions are kept whatever their age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_versions: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub enabled: bool,
    pub filter: Filter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent: Option<NoncurrentExpiration>,
    /// Incomplete multipart uploads are aborted this many lifecycle days after they began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after_days: Option<u32>,
}

/// A bucket's lifecycle configuration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub format: u32,
    pub rules: Vec<Rule>,
}

impl Rules {
    /// The stored form; `None` for a record this release cannot read.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|r| r.format == FORMAT)
    }

    /// The rules that are enabled.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// Whether any enabled rule acts on object versions (rather than uploads only).
    #[must_use]
    pub fn acts_on_versions(&self) -> bool {
        self.enabled()
            .any(|r| r.expiration.is_some() || r.noncurrent.is_some())
    }

    /// Whether any enabled rule aborts uploads.
    #[must_use]
    pub fn acts_on_uploads(&self) -> bool {
        self.enabled().any(|r| r.abort_after_days.is_some())
    }
}

impl Filter {
    /// Whether the filter needs an object's tags to be decided.
    #[must_use]
    pub fn needs_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Whether an object named `key` of `size` bytes with tags `tags` matches. `tags` is
    /// asked for only when the filter has tags and the rest matched; `None` from it (the tags
    /// could not be read) is no match.
    pub fn matches(
        &self,
        key: &str,
        size: u64,
        tags: impl FnOnce() -> Option<Vec<(String, String)>>,
    ) -> bool {
        if !self.matches_name(key) {
            return false;
        }
        if self.size_greater_than.is_some_and(|n| size <= n)
            || self.size_less_than.is_some_and(|n| size >= n)
        {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        let Some(have) = tags() else {
            return false;
        };
        self.tags
            .iter()
            .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
    }

    /// Whether a name matches the prefix (the only predicate that applies to delete markers
    /// and uploads).
    #[must_use]
    pub fn matches_name(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
    }

    /// Whether the filter says anything beyond a prefix (a delete marker, which has neither
    /// size nor tags, never matches such a filter).
    #[must_use]
    pub fn beyond_prefix(&self) -> bool {
        !self.tags.is_empty() || self.size_greater_than.is_some() || self.size_less_than.is_some()
    }
}

/// Whether something written (or made noncurrent) at `since_ms` is `days` lifecycle days old
/// at `now_ms`, a lifecycle day lasting `day_ms`.
#[must_use]
pub fn older_than(since_ms: i64, days: u32, day_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(since_ms) >= day_ms.saturating_mul(i64::from(days))
}

fn malformed() -> s3s::S3Error {
    s3s::S3Error::with_message(S3ErrorCode::MalformedXML, crate::error::MALFORMED_XML)
}

fn invalid(message: &str) -> s3s::S3Error {
    s3s::S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_owned())
}

fn invalid_request(message: &str) -> s3s::S3Error {
    s3s::S3Error::with_message(S3ErrorCode::InvalidRequest, message.to_owned())
}

fn positive(n: Option<i32>, message: &str) -> s3s::S3Result<u32> {
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(message))
}

fn tag(t: Tag) -> s3s::S3Result<(String, String)> {
    let key = t.key.unwrap_or_default();
    let value = t.value.unwrap_or_default();
    if key.is_empty() || key.chars().count() > MAX_TAG_KEY {
        return Err(invalid("The TagKey you have provided is invalid"));
    }
    if value.chars().count() > MAX_TAG_VALUE {
        return Err(invalid("The TagValue you have provided is invalid"));
    }
    Ok((key, value))
}

fn size(n: Option<i64>) -> s3s::S3Result<Option<u64>> {
    n.map(|n| u64::try_from(n).map_err(|_| invalid("Object size filters must be zero or positive")))
        .transpose()
}

fn filter(rule_prefix: Option<String>, f: Option<LifecycleRuleFilter>) -> s3s::S3Result<Filter> {
    let f = match (rule_prefix, f) {
        (Some(_), Some(_)) | (None, None) => return Err(malformed()),
        (Some(prefix), None) => {
            return Ok(Filter {
                form: Form::RulePrefix,
                prefix: Some(prefix),
                tags: Vec::new(),
                size_greater_than: None,
                size_less_than: None,
            });
        }
        (None, Some(f)) => f,
    };
    let given = [
        f.and.is_some(),
        f.prefix.is_some(),
        f.tag.is_some(),
        f.object_size_greater_than.is_some(),
        f.object_size_less_than.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        return Err(malformed());
    }
    let out = if let Some(and) = f.and {
        let LifecycleRuleAndOperator {
            object_size_greater_than,
            object_size_less_than,
            prefix,
            tags,
        } = and;
        let tags = tags
            .unwrap_or_default()
            .into_iter()
            .map(tag)
            .collect::<s3s::S3Result<Vec<_>>>()?;
        let mut keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("Duplicate Tag Keys are not allowed."));
        }
        let out = Filter {
            form: Form::And,
            prefix,
            tags,
            size_greater_than: size(object_size_greater_than)?,
            size_less_than: size(object_size_less_than)?,
        };
        let predicates = usize::from(out.prefix.is_some())
            + out.tags.len()
            + usize::from(out.size_greater_than.is_some())
            + usize::from(out.size_less_than.is_some());
        if predicates == 0 {
            return Err(malformed());
        }
        out
    } else {
        Filter {
            form: Form::Filter,
            prefix: f.prefix,
            tags: f.tag.map(tag).transpose()?.into_iter().collect(),
            size_greater_than: size(f.object_size_greater_than)?,
            size_less_than: size(f.object_size_less_than)?,
        }
    };
    if let (Some(gt), Some(lt)) = (out.size_greater_than, out.size_less_than)
        && gt >= lt
    {
        return Err(invalid(
            "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
        ));
    }
    Ok(out)
}

fn expiration(e: LifecycleExpiration) -> s3s::S3Result<Expiration> {
    match (e.days, e.date, e.expired_object_delete_marker) {
        (Some(days), None, None) => Ok(Expiration::Days(positive(
            Some(days),
            "'Days' for Expiration action must be a positive integer",
        )?)),
        (None, Some(date), None) => {
            let t = time::OffsetDateTime::from(date);
            if t.time() != time::Time::MIDNIGHT || t.offset() != time::UtcOffset::UTC {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            let ms = t.unix_timestamp().saturating_mul(1000);
            Ok(Expiration::Date(ms))
        }
        (None, None, Some(true)) => Ok(Expiration::ExpiredObjectDeleteMarker),
        // `false` alone says nothing: an Expiration with no action.
        (None, None, Some(false) | None) => Err(malformed()),
        _ => Err(invalid(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy",
        )),
    }
}

fn rule(r: LifecycleRule) -> s3s::S3Result<Rule> {
    if let Some(id) = &r.id
        && id.chars().count() > MAX_ID_LEN
    {
        return Err(invalid("ID length should not exceed allowed limit of 255"));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3s::S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "obhut has one storage class: lifecycle transitions are not supported",
        ));
    }
    let filter = filter(r.prefix, r.filter)?;
    let expiration = r.expiration.map(expiration).transpose()?;
    let noncurrent = r
        .noncurrent_version_expiration
        .map(|n: NoncurrentVersionExpiration| {
            let days = positive(
                n.noncurrent_days,
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            )?;
            let newer_versions = n
                .newer_noncurrent_versions
                .map(|v| {
                    u32::try_from(v)
                        .ok()
                        .filter(|v| (1..=MAX_NEWER_NONCURRENT).contains(v))
                        .ok_or_else(|| {
                            invalid("NewerNoncurrentVersions must be between 1 and 100")
                        })
                })
                .transpose()?;
            Ok::<_, s3s::S3Error>(NoncurrentExpiration {
                days,
                newer_versions,
            })
        })
        .transpose()?;
    let abort_after_days = r
        .abort_incomplete_multipart_upload
        .map(|a: AbortIncompleteMultipartUpload| {
            positive(
                a.days_after_initiation,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )
        })
        .transpose()?;
    if expiration.is_none() && noncurrent.is_none() && abort_after_days.is_none() {
        return Err(invalid_request(
            "At least one action needs to be specified in a rule",
        ));
    }
    if abort_after_days.is_some() && filter.beyond_prefix() {
        return Err(invalid(
            "AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters",
        ));
    }
    if expiration == Some(Expiration::ExpiredObjectDeleteMarker) && filter.beyond_prefix() {
        return Err(invalid(
            "ExpiredObjectDeleteMarker cannot be specified with Tags or object size filters",
        ));
    }
    Ok(Rule {
        id: r.id,
        enabled,
        filter,
        expiration,
        noncurrent,
        abort_after_days,
    })
}

/// Checks a configuration as S3 does and gives its stored form.
pub fn checked(config: Option<BucketLifecycleConfiguration>) -> s3s::S3Result<Rules> {
    let config = config.ok_or_else(malformed)?;
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let rules = config
        .rules
        .into_iter()
        .map(rule)
        .collect::<s3s::S3Result<Vec<_>>>()?;
    let mut ids: Vec<&str> = rules.iter().filter_map(|r| r.id.as_deref()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(
            "Rule ID must be unique. Found same ID for more than one rule",
        ));
    }
    Ok(Rules {
        format: FORMAT,
        rules,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn tag_out((key, value): &(String, String)) -> Tag {
    Tag {
        key: Some(key.clone()),
        value: Some(value.clone()),
    }
}

/// A stored rule as S3 answers it, in the form it was given.
#[must_use]
pub fn answered(r: &Rule) -> LifecycleRule {
    let f = &r.filter;
    let (prefix, filter) = match f.form {
        Form::RulePrefix => (f.prefix.clone(), None),
        Form::And => (
            None,
            Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    object_size_greater_than: f.size_greater_than.map(to_i64),
                    object_size_less_than: f.size_less_than.map(to_i64),
                    prefix: f.prefix.clone(),
                    tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(tag_out).collect()),
                }),
                object_size_greater_than: None,
                object_size_less_than: None,
                prefix: None,
                tag: None,
            }),
        ),
        Form::Filter => (
            None,
            Some(LifecycleRuleFilter {
                and: None,
                object_size_greater_than: f.size_greater_than.map(to_i64),
                object_size_less_than: f.size_less_than.map(to_i64),
                prefix: f.prefix.clone(),
                tag: f.tags.first().map(tag_out),
            }),
        ),
    };
    LifecycleRule {
        abort_incomplete_multipart_upload: r.abort_after_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(to_i32(d)),
            }
        }),
        expiration: r.expiration.map(|e| match e {
            Expiration::Days(d) => LifecycleExpiration {
                days: Some(to_i32(d)),
                date: None,
                expired_object_delete_marker: None,
            },
            Expiration::Date(ms) => LifecycleExpiration {
                days: None,
                date: Some(Timestamp::from(
                    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                )),
                expired_object_delete_marker: None,
            },
            Expiration::ExpiredObjectDeleteMarker => LifecycleExpiration {
                days: None,
                date: None,
                expired_object_delete_marker: Some(true),
            },
        }),
        filter,
        id: r.id.clone(),
        noncurrent_version_expiration: r.noncurrent.map(|n| NoncurrentVersionExpiration {
            newer_noncurrent_versions: n.newer_versions.map(to_i32),
            noncurrent_days: Some(to_i32(n.days)),
        }),
        noncurrent_version_transitions: None,
        prefix,
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        transitions: None,
    }
}

/// The length of a lifecycle day in S3: 24 hours (obhut's is configurable, for tests).
pub const S3_DAY_MS: i64 = DAY_MS;

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> LifecycleRule {
        LifecycleRule {
            abort_incomplete_multipart_upload: None,
            expiration: Some(LifecycleExpiration {
                days: Some(1),
                date: None,
                expired_object_delete_marker: None,
            }),
            filter: Some(LifecycleRuleFilter {
                and: None,
                object_size_greater_than: None,
                object_size_less_than: None,
                prefix: Some("logs/".into()),
                tag: None,
            }),
            id: Some("r1".into()),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            transitions: None,
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> Option<BucketLifecycleConfiguration> {
        Some(BucketLifecycleConfiguration { rules })
    }

    fn code(r: s3s::S3Result<Rules>) -> String {
        r.expect_err("refused").code().as_str().to_owned()
    }

    #[test]
    fn a_valid_configuration_round_trips_in_the_form_it_was_given() {
        let mut and = base();
        and.id = Some("r2".into());
        and.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                object_size_greater_than: Some(10),
                object_size_less_than: Some(100),
                prefix: Some("a/".into()),
                tags: Some(vec![Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                }]),
            }),
            object_size_greater_than: None,
            object_size_less_than: None,
            prefix: None,
            tag: None,
        });
        and.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
            newer_noncurrent_versions: Some(2),
            noncurrent_days: Some(3),
        });
        let mut legacy = base();
        legacy.id = None;
        legacy.filter = None;
        legacy.prefix = Some("old/".into());
        legacy.expiration = None;
        legacy.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(7),
        });
        legacy.status = ExpirationStatus::from_static(ExpirationStatus::DISABLED);
        let given = vec![base(), and, legacy];
        let rules = checked(config(given.clone())).expect("valid");
        let stored = serde_json::to_vec(&rules).expect("json");
        let back = Rules::decode(&stored).expect("decodes");
        assert_eq!(back, rules);
        let answered: Vec<LifecycleRule> = back.rules.iter().map(answered).collect();
        assert_eq!(answered, given);
        assert!(
            back.acts_on_versions() && !back.acts_on_uploads(),
            "the abort rule is disabled"
        );
    }

    #[test]
    fn invalid_configurations_are_refused_with_s3s_codes() {
        assert_eq!(code(checked(None)), "MalformedXML");
        assert_eq!(code(checked(config(vec![]))), "MalformedXML");
        let with = |f: &dyn Fn(&mut LifecycleRule)| {
            let mut r = base();
            f(&mut r);
            code(checked(config(vec![r])))
        };
        assert_eq!(with(&|r| r.prefix = Some("x".into())), "MalformedXML");
        assert_eq!(with(&|r| r.filter = None), "MalformedXML");
        assert_eq!(
            with(&|r| r.status = ExpirationStatus::from_static("enabled")),
            "MalformedXML"
        );
        assert_eq!(with(&|r| r.expiration = None), "InvalidRequest");
        assert_eq!(
            with(&|r| r.expiration.as_mut().unwrap().days = Some(0)),
            "InvalidArgument"
        );
        assert_eq!(
            with(&|r| r.expiration.as_mut().unwrap().expired_object_delete_marker = Some(true)),
            "InvalidArgument"
        );
        assert_eq!(
            with(&|r| {
                let e = r.expiration.as_mut().unwrap();
                e.days = None;
                e.date = Some(Timestamp::from(
                    time::OffsetDateTime::from_unix_timestamp(1_700_000_001).unwrap(),
                ));
            }),
            "InvalidArgument",
            "not midnight"
        );
        assert_eq!(with(&|r| r.id = Some("x".repeat(256))), "InvalidArgument");
        assert_eq!(
            with(&|r| {
                let f = r.filter.as_mut().unwrap();
                f.tag = Some(Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                });
            }),
            "MalformedXML",
            "two predicates outside And"
        );
        assert_eq!(
            with(&|r| {
                r.filter = Some(LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        object_size_greater_than: Some(100),
                        object_size_less_than: Some(100),
                        prefix: None,
                        tags: None,
                    }),
                    object_size_greater_than: None,
                    object_size_less_than: None,
                    prefix: None,
                    tag: None,
                });
            }),
            "InvalidArgument"
        );
        assert_eq!(
            with(
                &|r| r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
                    newer_noncurrent_versions: Some(101),
                    noncurrent_days: Some(1),
                })
            ),
            "InvalidArgument"
        );
        assert_eq!(
            with(&|r| {
                r.filter.as_mut().unwrap().prefix = None;
                r.filter.as_mut().unwrap().tag = Some(Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                });
                r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
                    days_after_initiation: Some(1),
                });
            }),
            "InvalidArgument"
        );
        let twice = vec![base(), base()];
        assert_eq!(code(checked(config(twice))), "InvalidArgument");
        assert_eq!(
            with(&|r| r.transitions = Some(vec![s3s::dto::Transition::default()])),
            "NotImplemented"
        );
    }

    #[test]
    fn filters_match_by_prefix_size_and_every_tag() {
        let f = Filter {
            form: Form::And,
            prefix: Some("a/".into()),
            tags: vec![("k".into(), "v".into()), ("x".into(), String::new())],
            size_greater_than: Some(10),
            size_less_than: Some(20),
        };
        let tags = |t: &[(&str, &str)]| {
            let t: Vec<(String, String)> =
                t.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            move || Some(t)
        };
        let both = [("k", "v"), ("x", ""), ("other", "1")];
        assert!(f.matches("a/1", 15, tags(&both)));
        assert!(!f.matches("b/1", 15, tags(&both)), "prefix");
        assert!(!f.matches("a/1", 10, tags(&both)), "greater than is strict");
        assert!(!f.matches("a/1", 20, tags(&both)), "less than is strict");
        assert!(!f.matches("a/1", 15, tags(&[("k", "v")])), "every tag");
        assert!(
            !f.matches("a/1", 15, tags(&[("k", "w"), ("x", "")])),
            "values"
        );
        assert!(
            !f.matches("a/1", 15, || None),
            "unreadable tags match nothing"
        );
        let mut asked = false;
        let by_prefix = Filter {
            tags: Vec::new(),
            size_greater_than: None,
            size_less_than: None,
            ..f
        };
        assert!(by_prefix.matches("a/x", 0, || {
            asked = true;
            None
        }));
        assert!(!asked, "tags are read only for a filter with tags");
    }

    #[test]
    fn days_are_counted_in_lifecycle_days() {
        assert!(older_than(0, 2, 1000, 2000));
        assert!(!older_than(0, 2, 1000, 1999));
        assert!(older_than(0, 1, S3_DAY_MS, S3_DAY_MS));
    }
}
