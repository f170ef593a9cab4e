//! IAM policy documents as S3 reads them, for the two places obhut uses them: a scoped access
//! key's own policy (an identity policy: no `Principal`) and a bucket policy (a resource
//! policy: each statement names its principals, the tenant's own access keys). It owns the
//! parsing (every refusal is a reason for S3's `MalformedPolicy`), the evaluation of one
//! request against one document, and the presets the CLI offers for scoped keys.
//!
//! A policy here only ever narrows what a tenant's own key may do inside its own tenant:
//! tenant isolation and grants are decided before any policy is read, and never by one. It
//! performs no I/O and never sees keys, secrets or object data.

use serde_json::Value;
use std::net::IpAddr;

/// S3's limit on a bucket policy's size; scoped keys' policies are held to it too.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a document is not a policy obhut accepts (S3's `MalformedPolicy` message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn malformed(m: impl Into<String>) -> PolicyError {
    PolicyError(m.into())
}

/// What a document is the policy of: it decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A scoped access key's own policy: no `Principal`; resources anywhere in `arn:aws:s3:::`.
    Key,
    /// The policy of this bucket: each statement names a `Principal`, and every resource is
    /// the bucket or objects in it.
    Bucket(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Whom a bucket policy's statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    /// `"*"`: every key of the bucket's tenant (nobody else ever reaches a policy).
    Any,
    /// These access key ids of the tenant.
    Keys(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "IpAddress" => Self::IpAddress,
            "NotIpAddress" => Self::NotIpAddress,
            "Bool" => Self::Bool,
            _ => return None,
        })
    }

    /// Whether the operator is a negation (true for a key the request does not have).
    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals | Self::StringNotLike | Self::NotIpAddress
        )
    }
}

/// The condition keys obhut knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CondKey {
    SecureTransport,
    SourceIp,
    Prefix,
    Delimiter,
}

impl CondKey {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "aws:securetransport" => Self::SecureTransport,
            "aws:sourceip" => Self::SourceIp,
            "s3:prefix" => Self::Prefix,
            "s3:delimiter" => Self::Delimiter,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    op: Op,
    if_exists: bool,
    key: CondKey,
    values: Vec<String>,
    /// For `IpAddress`/`NotIpAddress`: the values as networks.
    nets: Vec<(IpAddr, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// `None` in a key's own policy.
    principal: Option<Principal>,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

/// A parsed, checked policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What the evaluation knows of one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The access key id that signed it.
    pub principal: &'a str,
    /// The action, e.g. `s3:GetObject`.
    pub action: &'a str,
    /// The resource, e.g. `arn:aws:s3:::bucket/key` or `arn:aws:s3:::bucket`.
    pub resource: &'a str,
    pub secure_transport: Option<bool>,
    pub source_ip: Option<IpAddr>,
    /// `s3:prefix` and `s3:delimiter` of a listing.
    pub prefix: Option<&'a str>,
    pub delimiter: Option<&'a str>,
    /// Context the caller cannot know (the trustee does not see the connection): a condition
    /// on a key the request lacks is then unknown, and an unknown condition lets an `Allow`
    /// apply and a `Deny` not; the answer is what the request could at most be allowed.
    pub partial: bool,
}

/// The outcome of one policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement denies it (this wins over everything).
    Deny,
    /// A statement allows it and none denies it.
    Allow,
    /// No statement applies.
    None,
}

/// Every S3 action obhut names in authorisation (and policies may name): those of the
/// operations it serves, and a few more that S3 defines for policies to mention.
pub const ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:BypassGovernanceRetention",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketOwnershipControls",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectLegalHold",
    "s3:GetObjectRetention",
    "s3:GetObjectTagging",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectVersionTagging",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
];

const ARN_PREFIX: &str = "arn:aws:s3:::";

/// `*` matches any run of characters, `?` any one; `fold` compares ASCII case-insensitively.
#[must_use]
pub fn wildcard_match(pattern: &str, value: &str, fold: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.chars().map(|c| c.to_ascii_lowercase()).collect(),
            value.chars().map(|c| c.to_ascii_lowercase()).collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && p[i] == v[j])) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Whether `id` has the shape of a tenant's access key id (`OBK` and 17 of `A-Z0-9`).
#[must_use]
pub fn is_tenant_key_id(id: &str) -> bool {
    id.strip_prefix("OBK").is_some_and(|r| {
        r.len() == 17
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

/// One value or a list of them, as strings.
fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(malformed(format!(
            "{what} must be a string or a list of strings"
        ))),
    };
    let out = match v {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        other => vec![one(other)?],
    };
    if out.is_empty() {
        return Err(malformed(format!("{what} must not be empty")));
    }
    Ok(out)
}

fn parse_net(text: &str) -> Result<(IpAddr, u8), PolicyError> {
    let bad = || malformed(format!("Invalid IP address or range in condition: {text}"));
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(bad());
    }
    Ok((addr, len))
}

fn in_net(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    let (a, b, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(b)) << 96,
            len,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), len),
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(a4) => return in_net(IpAddr::V4(a4), (net, len)),
            None => return false,
        },
        (IpAddr::V4(a), IpAddr::V6(_)) => {
            return in_net(IpAddr::V6(a.to_ipv6_mapped()), (net, len));
        }
    };
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(bits));
    a & mask == b & mask
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(malformed("Condition must be an object"));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let (base, if_exists) = match op_name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op_name.as_str(), false),
        };
        let op = Op::parse(base)
            .ok_or_else(|| malformed(format!("Invalid Condition type : {op_name}")))?;
        let Value::Object(keys) = keys else {
            return Err(malformed(format!("Condition {op_name} must be an object")));
        };
        for (key_name, values) in keys {
            let key = CondKey::parse(key_name).ok_or_else(|| {
                malformed(format!(
                    "Policy has an invalid condition key: {key_name} (obhut knows aws:SecureTransport, aws:SourceIp, s3:prefix, s3:delimiter)"
                ))
            })?;
            let values = strings(values, "a condition's value")?;
            let mut nets = Vec::new();
            match op {
                Op::IpAddress | Op::NotIpAddress => {
                    if key != CondKey::SourceIp {
                        return Err(malformed(format!(
                            "{op_name} applies to aws:SourceIp only, not {key_name}"
                        )));
                    }
                    for v in &values {
                        nets.push(parse_net(v)?);
                    }
                }
                Op::Bool => {
                    if key != CondKey::SecureTransport {
                        return Err(malformed(format!(
                            "Bool applies to aws:SecureTransport only, not {key_name}"
                        )));
                    }
                    if values.iter().any(|v| v != "true" && v != "false") {
                        return Err(malformed("Bool takes true or false"));
                    }
                }
                _ => {}
            }
            out.push(Condition {
                op,
                if_exists,
                key,
                values,
                nets,
            });
        }
    }
    Ok(out)
}

fn parse_principal(v: &Value) -> Result<Principal, PolicyError> {
    let invalid = || malformed("Invalid principal in policy");
    let values = match v {
        Value::String(s) if s == "*" => return Ok(Principal::Any),
        Value::Object(m) => {
            if m.len() != 1 {
                return Err(invalid());
            }
            let aws = m.get("AWS").ok_or_else(invalid)?;
            strings(aws, "Principal")?
        }
        _ => return Err(invalid()),
    };
    if values.iter().any(|v| v == "*") {
        return if values.len() == 1 {
            Ok(Principal::Any)
        } else {
            Err(invalid())
        };
    }
    if !values.iter().all(|v| is_tenant_key_id(v)) {
        return Err(malformed(
            "Invalid principal in policy: name access key ids of the bucket's tenant (OBK…), or \"*\"",
        ));
    }
    Ok(Principal::Keys(values))
}

fn check_action(a: &str) -> Result<String, PolicyError> {
    if a == "*" {
        return Ok(a.to_owned());
    }
    let known = if a.contains(['*', '?']) {
        ACTIONS.iter().any(|k| wildcard_match(a, k, true))
    } else {
        ACTIONS.iter().any(|k| k.eq_ignore_ascii_case(a))
    };
    if known {
        Ok(a.to_owned())
    } else {
        Err(malformed(format!("Policy has invalid action: {a}")))
    }
}

fn check_resource(r: &str, kind: Kind<'_>) -> Result<String, PolicyError> {
    let invalid = || malformed(format!("Policy has invalid resource: {r}"));
    if r == "*" {
        return match kind {
            Kind::Key => Ok(r.to_owned()),
            Kind::Bucket(_) => Err(invalid()),
        };
    }
    let rest = r.strip_prefix(ARN_PREFIX).ok_or_else(invalid)?;
    if rest.is_empty() {
        return Err(invalid());
    }
    if let Kind::Bucket(bucket) = kind {
        // The bucket itself, or objects in it: a pattern may not reach another bucket.
        let (b, _) = rest.split_once('/').unwrap_or((rest, ""));
        if b != bucket {
            return Err(invalid());
        }
    }
    Ok(r.to_owned())
}

impl Policy {
    /// Parses and checks `text` as a policy of `kind`.
    pub fn parse(text: &str, kind: Kind<'_>) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed("Policies must be no more than 20 KB"));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| malformed(format!("This policy contains invalid Json: {e}")))?;
        let Value::Object(doc) = doc else {
            return Err(malformed("This policy contains invalid Json"));
        };
        for k in doc.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("Unknown field {k}")));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => return Err(malformed("The policy's Version must be 2012-10-17")),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(s)) if !s.is_empty() => s.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return Err(malformed("Missing required field Statement")),
        };
        let statements = statements
            .iter()
            .map(|s| Self::statement(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    fn statement(v: &Value, kind: Kind<'_>) -> Result<Statement, PolicyError> {
        let Value::Object(s) = v else {
            return Err(malformed("Each Statement must be an object"));
        };
        for k in s.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(malformed(format!(
                    "Unknown field {k}{}",
                    if k == "NotPrincipal" {
                        " (NotPrincipal is not supported)"
                    } else {
                        ""
                    }
                )));
            }
        }
        if let Some(sid) = s.get("Sid")
            && !sid.is_string()
        {
            return Err(malformed("Sid must be a string"));
        }
        let effect = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(malformed("Invalid effect: Effect must be Allow or Deny")),
        };
        let principal = match (kind, s.get("Principal")) {
            (Kind::Key, None) => None,
            (Kind::Key, Some(_)) => {
                return Err(malformed(
                    "A scoped key's policy names no Principal: it is the key's own",
                ));
            }
            (Kind::Bucket(_), Some(p)) => Some(parse_principal(p)?),
            (Kind::Bucket(_), None) => return Err(malformed("Missing required field Principal")),
        };
        let (actions, not_action) = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => (strings(a, "Action")?, false),
            (None, Some(a)) => (strings(a, "NotAction")?, true),
            _ => return Err(malformed("Missing required field Action")),
        };
        let actions = actions
            .iter()
            .map(|a| check_action(a))
            .collect::<Result<Vec<_>, _>>()?;
        let (resources, not_resource) = match (s.get("Resource"), s.get("NotResource")) {
            (Some(r), None) => (strings(r, "Resource")?, false),
            (None, Some(r)) => (strings(r, "NotResource")?, true),
            _ => return Err(malformed("Missing required field Resource")),
        };
        let resources = resources
            .iter()
            .map(|r| check_resource(r, kind))
            .collect::<Result<Vec<_>, _>>()?;
        let conditions = match s.get("Condition") {
            Some(c) => parse_conditions(c)?,
            None => Vec::new(),
        };
        Ok(Statement {
            effect,
            principal,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    /// The decision of this policy on `r`: an applicable `Deny` wins, then an `Allow`.
    #[must_use]
    pub fn evaluate(&self, r: &Request<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if !s.applies_to(r) {
                continue;
            }
            match (s.effect, s.conditions_hold(r)) {
                (Effect::Deny, Some(true)) => return Decision::Deny,
                (Effect::Allow, Some(true) | None) => allowed = true,
                // An unknown condition (`partial`) never makes a Deny apply.
                (Effect::Deny, None) | (_, Some(false)) => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::None
        }
    }

    /// Whether some `Allow` statement could apply to `bucket` or an object in it, whatever the
    /// action and conditions: an over-approximation, for the trustee to leave out of a
    /// scoped key's ticket the buckets its policy never reaches.
    #[must_use]
    pub fn may_reach_bucket(&self, bucket: &str) -> bool {
        let arn = bucket_arn(bucket);
        let objects = format!("{arn}/");
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && (s.not_resource
                    || s.resources.iter().any(|p| {
                        let literal = p.split(['*', '?']).next().unwrap_or_default();
                        let wild = literal.len() < p.len();
                        wildcard_match(p, &arn, false)
                            || literal.starts_with(&objects)
                            || (wild && (objects.starts_with(literal) || arn.starts_with(literal)))
                    }))
        })
    }

    /// Whether a statement allows something to everybody (`Principal: "*"`) without an
    /// `aws:SourceIp` range narrowing it: S3's "public" policy. In obhut such a statement
    /// still reaches only the tenant's own keys (no policy is read for anyone else), but
    /// Block Public Access refuses it as S3 would.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.principal == Some(Principal::Any)
                && !s.conditions.iter().any(|c| {
                    c.op == Op::IpAddress
                        && c.key == CondKey::SourceIp
                        && c.nets.iter().all(|&(_, len)| len > 0)
                })
        })
    }
}

impl Statement {
    fn applies_to(&self, r: &Request<'_>) -> bool {
        let principal = match &self.principal {
            None | Some(Principal::Any) => true,
            Some(Principal::Keys(keys)) => keys.iter().any(|k| k == r.principal),
        };
        let action = self
            .actions
            .iter()
            .any(|a| wildcard_match(a, r.action, true))
            != self.not_action;
        let resource = self
            .resources
            .iter()
            .any(|p| wildcard_match(p, r.resource, false))
            != self.not_resource;
        principal && action && resource
    }

    /// `Some(true)` if every condition holds, `Some(false)` if one fails, `None` if none
    /// fails but one is unknown (`partial` requests only).
    fn conditions_hold(&self, r: &Request<'_>) -> Option<bool> {
        let mut unknown = false;
        for c in &self.conditions {
            match c.holds(r) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => unknown = true,
            }
        }
        if unknown { None } else { Some(true) }
    }
}

impl Condition {
    fn holds(&self, r: &Request<'_>) -> Option<bool> {
        let value: Option<String> = match self.key {
            CondKey::SecureTransport => r.secure_transport.map(|b| b.to_string()),
            CondKey::SourceIp => r.source_ip.map(|ip| ip.to_string()),
            CondKey::Prefix => r.prefix.map(str::to_owned),
            CondKey::Delimiter => r.delimiter.map(str::to_owned),
        };
        let Some(value) = value else {
            if r.partial && matches!(self.key, CondKey::SecureTransport | CondKey::SourceIp) {
                return None;
            }
            return Some(self.if_exists || self.op.negated());
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|v| f(v));
        Some(match self.op {
            Op::StringEquals | Op::Bool => any(&|v| v == value),
            Op::StringNotEquals => !any(&|v| v == value),
            Op::StringLike => any(&|v| wildcard_match(v, &value, false)),
            Op::StringNotLike => !any(&|v| wildcard_match(v, &value, false)),
            Op::IpAddress | Op::NotIpAddress => {
                let ip = r.source_ip?;
                let inside = self.nets.iter().any(|&n| in_net(ip, n));
                inside == (self.op == Op::IpAddress)
            }
        })
    }
}

/// What a scoped key's preset allows (`obhut tenant key-create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Everything, within the buckets and prefix named.
    Full,
    /// Reading and listing objects only.
    ReadOnly,
    /// Writing objects only (no reading, no deleting, no listing of contents).
    WriteOnly,
    /// Everything except deleting (objects, versions, buckets, configurations) and except the
    /// bucket settings that delete or expose data by themselves: lifecycle rules, versioning,
    /// the bucket policy.
    NoDelete,
    /// A backup client's key: read, list, write and delete objects (a delete of a versioned
    /// bucket's object only adds a delete marker), but never delete a version for good, bypass
    /// a retention, or change the bucket's configuration.
    Backup,
}

impl Preset {
    /// The preset's name, the `Sid` of its first statement.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "Full",
            Self::ReadOnly => "ReadOnly",
            Self::WriteOnly => "WriteOnly",
            Self::NoDelete => "NoDelete",
            Self::Backup => "Backup",
        }
    }

    fn statement_actions(self) -> (Vec<&'static str>, Vec<&'static str>) {
        let read = vec![
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:GetObjectAttributes",
            "s3:GetObjectVersionAttributes",
            "s3:GetObjectTagging",
            "s3:GetObjectVersionTagging",
            "s3:GetObjectAcl",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:GetBucketLocation",
        ];
        let write = vec![
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
            "s3:GetBucketLocation",
        ];
        match self {
            Self::Full => (vec!["s3:*"], vec![]),
            Self::ReadOnly => (read, vec![]),
            Self::WriteOnly => (write, vec![]),
            Self::NoDelete => (
                vec!["s3:*"],
                vec![
                    "s3:Delete*",
                    "s3:BypassGovernanceRetention",
                    // Lifecycle rules expire versions, suspending versioning makes the next
                    // overwrite final, a policy could open the bucket to other keys: each is a
                    // delete by other means.
                    "s3:PutLifecycleConfiguration",
                    "s3:PutBucketVersioning",
                    "s3:PutBucketPolicy",
                ],
            ),
            Self::Backup => {
                let mut a = vec![
                    "s3:GetObject",
                    "s3:GetObjectAttributes",
                    "s3:GetObjectTagging",
                    "s3:PutObject",
                    "s3:PutObjectTagging",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListBucket",
                    "s3:ListMultipartUploadParts",
                    "s3:ListBucketMultipartUploads",
                    "s3:GetBucketLocation",
                    "s3:GetBucketVersioning",
                    "s3:GetBucketObjectLockConfiguration",
                ];
                a.sort_unstable();
                (
                    a,
                    vec!["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
                )
            }
        }
    }

    /// The policy document of this preset for `buckets` (none: every bucket of the tenant)
    /// and an optional key `prefix` (listings are limited to it too). A prefix needs named
    /// buckets: in `arn:aws:s3:::*/P*` the bucket's `*` also matches `/`, so the prefix would
    /// limit nothing. With a prefix, the buckets themselves allow only reading their listing
    /// and settings: a key for `home/alice/` never changes what holds for the whole bucket.
    pub fn document(self, buckets: &[String], prefix: Option<&str>) -> Result<String, PolicyError> {
        let prefix = prefix.unwrap_or("");
        if !prefix.is_empty() && buckets.is_empty() {
            return Err(PolicyError(
                "a key limited to a prefix must name its buckets (--bucket)".into(),
            ));
        }
        let names: Vec<String> = if buckets.is_empty() {
            vec!["*".into()]
        } else {
            buckets.to_vec()
        };
        let (allow, deny) = self.statement_actions();
        let mut statements = vec![];
        let bucket_arns: Vec<String> = names.iter().map(|b| format!("{ARN_PREFIX}{b}")).collect();
        let object_arns: Vec<String> = names
            .iter()
            .map(|b| format!("{ARN_PREFIX}{b}/{prefix}*"))
            .collect();
        let mut allow_stmt = if prefix.is_empty() {
            let resources: Vec<&String> = bucket_arns.iter().chain(&object_arns).collect();
            serde_json::json!({
                "Sid": self.name(),
                "Effect": "Allow",
                "Action": allow,
                "Resource": resources,
            })
        } else {
            let on_buckets: Vec<&str> = BUCKET_READ_ACTIONS
                .iter()
                .copied()
                .filter(|a| allow.contains(&"s3:*") || allow.contains(a))
                .collect();
            if !on_buckets.is_empty() {
                statements.push(serde_json::json!({
                    "Sid": "TheBucketsThemselves",
                    "Effect": "Allow",
                    "Action": on_buckets,
                    "Resource": bucket_arns,
                }));
            }
            serde_json::json!({
                "Sid": self.name(),
                "Effect": "Allow",
                "Action": allow,
                "Resource": object_arns,
            })
        };
        if !prefix.is_empty() {
            // Listing the bucket only under the prefix; everything else the scope allows on
            // the bucket itself (its location, say) stays allowed.
            statements.push(serde_json::json!({
                "Sid": "ListOnlyThePrefix",
                "Effect": "Deny",
                "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"],
                "Resource": bucket_arns,
                "Condition": {"StringNotLike": {"s3:prefix": [format!("{prefix}*")]}},
            }));
        }
        if buckets.is_empty() && self == Self::ReadOnly {
            if let Some(a) = allow_stmt["Action"].as_array_mut() {
                a.push("s3:ListAllMyBuckets".into());
            }
            if let Some(r) = allow_stmt["Resource"].as_array_mut() {
                r.push("*".into());
            }
        }
        statements.insert(0, allow_stmt);
        if !deny.is_empty() {
            statements.push(serde_json::json!({
                "Sid": "NeverThese",
                "Effect": "Deny",
                "Action": deny,
                "Resource": "*",
            }));
        }
        Ok(serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string())
    }
}

/// What a preset limited to a prefix may do on its buckets themselves (of what the preset
/// allows at all): read their listings and settings, never change them.
const BUCKET_READ_ACTIONS: [&str; 6] = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetBucketObjectLockConfiguration",
];

/// A one-line account of a policy, for listings: each statement as `Effect actions on
/// resources`, a condition as `(if …)`, a statement's `Sid` in brackets.
#[must_use]
pub fn summary(text: &str) -> String {
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
        return "(a policy that does not parse)".to_owned();
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(s)) => s.clone(),
        Some(s) => vec![s.clone()],
        None => vec![],
    };
    let list = |v: Option<&Value>| -> String {
        v.and_then(|v| strings(v, "").ok())
            .map(|v| v.join(","))
            .unwrap_or_default()
    };
    statements
        .iter()
        .map(|s| {
            let mut out = String::new();
            if let Some(sid) = s.get("Sid").and_then(Value::as_str) {
                out.push_str(&format!("[{sid}] "));
            }
            out.push_str(s.get("Effect").and_then(Value::as_str).unwrap_or("?"));
            match (s.get("Action"), s.get("NotAction")) {
                (Some(a), _) => out.push_str(&format!(" {}", list(Some(a)))),
                (None, Some(a)) => out.push_str(&format!(" all but {}", list(Some(a)))),
                _ => {}
            }
            match (s.get("Resource"), s.get("NotResource")) {
                (Some(r), _) => out.push_str(&format!(" on {}", list(Some(r)))),
                (None, Some(r)) => out.push_str(&format!(" on all but {}", list(Some(r)))),
                _ => {}
            }
            if let Some(c) = s.get("Condition") {
                out.push_str(&format!(" (if {c})"));
            }
            out
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bucket's ARN, and an object's.
#[must_use]
pub fn bucket_arn(bucket: &str) -> String {
    format!("{ARN_PREFIX}{bucket}")
}

#[must_use]
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("{ARN_PREFIX}{bucket}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "OBKAAAAAAAAAAAAAAAAA";
    const K2: &str = "OBKBBBBBBBBBBBBBBBBB";

    fn req<'a>(action: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            principal: K1,
            action,
            resource,
            secure_transport: Some(false),
            source_ip: Some("127.0.0.1".parse().unwrap()),
            prefix: None,
            delimiter: None,
            partial: false,
        }
    }

    fn bucket_policy(text: &str) -> Policy {
        Policy::parse(text, Kind::Bucket("b")).unwrap()
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard_match("s3:Get*", "s3:GetObject", true));
        assert!(wildcard_match("S3:GETOBJECT", "s3:GetObject", true));
        assert!(!wildcard_match("S3:GETOBJECT", "s3:GetObject", false));
        assert!(wildcard_match(
            "arn:aws:s3:::b/a?c/*",
            "arn:aws:s3:::b/abc/d/e",
            false
        ));
        assert!(!wildcard_match(
            "arn:aws:s3:::b/a?c/*",
            "arn:aws:s3:::b/ac/d",
            false
        ));
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("a*b*c", "axxbyyc", false));
        assert!(!wildcard_match("a*b*c", "axxbyy", false));
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        let bad = [
            "not json",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Frobnicate","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:UserAgent":"x"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"NumericEquals":{"s3:prefix":"1"}}}]}"#,
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
        ];
        for text in bad {
            assert!(
                Policy::parse(text, Kind::Bucket("b")).is_err(),
                "accepted: {text}"
            );
        }
        // A key's own policy names no principal.
        assert!(
            Policy::parse(
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
                Kind::Key
            )
            .is_err()
        );
        assert!(Policy::parse(&"x".repeat(MAX_POLICY_BYTES + 1), Kind::Key).is_err());
    }

    #[test]
    fn an_explicit_deny_wins_and_nothing_applicable_is_no_decision() {
        let p = bucket_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[
              {{"Sid":"all","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}},
              {{"Sid":"no","Effect":"Deny","Principal":{{"AWS":["{K1}"]}},"Action":"s3:Delete*","Resource":"arn:aws:s3:::b/*"}}]}}"#
        ));
        assert_eq!(
            p.evaluate(&req("s3:DeleteObject", "arn:aws:s3:::b/k")),
            Decision::Deny
        );
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/k")),
            Decision::Allow
        );
        let other = Request {
            principal: K2,
            ..req("s3:DeleteObject", "arn:aws:s3:::b/k")
        };
        assert_eq!(p.evaluate(&other), Decision::Allow);
        let only_k2 = bucket_policy(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"{K2}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
        ));
        assert_eq!(
            only_k2.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/k")),
            Decision::None
        );
        let not_action = bucket_policy(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","NotAction":"s3:Get*","Resource":"arn:aws:s3:::b/*"}}"#,
        );
        assert_eq!(
            not_action.evaluate(&req("s3:PutObject", "arn:aws:s3:::b/k")),
            Decision::Deny
        );
        assert_eq!(
            not_action.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/k")),
            Decision::None
        );
    }

    #[test]
    fn conditions_on_transport_address_and_prefix_decide_both_ways() {
        let p = bucket_policy(
            r#"{"Statement":[
              {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},
              {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["home/*"]}}}]}"#,
        );
        let tls = |ip: &str| Request {
            secure_transport: Some(true),
            source_ip: Some(ip.parse().unwrap()),
            ..req("s3:GetObject", "arn:aws:s3:::b/k")
        };
        assert_eq!(
            p.evaluate(&req("s3:PutObject", "arn:aws:s3:::b/k")),
            Decision::Deny
        );
        assert_eq!(p.evaluate(&tls("10.1.2.3")), Decision::None);
        assert_eq!(p.evaluate(&tls("::ffff:10.1.2.3")), Decision::None);
        assert_eq!(p.evaluate(&tls("::1")), Decision::None);
        assert_eq!(p.evaluate(&tls("192.168.1.1")), Decision::Deny);
        let list = |prefix: Option<&'static str>| Request {
            prefix,
            ..req("s3:ListBucket", "arn:aws:s3:::b")
        };
        assert_eq!(p.evaluate(&list(Some("home/me/"))), Decision::Allow);
        assert_eq!(p.evaluate(&list(Some("etc/"))), Decision::None);
        assert_eq!(p.evaluate(&list(None)), Decision::None);
    }

    #[test]
    fn unknown_context_lets_an_allow_apply_and_never_a_deny() {
        let p = Policy::parse(
            r#"{"Statement":[
              {"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
              {"Effect":"Deny","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            Kind::Key,
        )
        .unwrap();
        let partial = Request {
            secure_transport: None,
            source_ip: None,
            partial: true,
            ..req("s3:GetObject", "arn:aws:s3:::b/k")
        };
        assert_eq!(p.evaluate(&partial), Decision::Allow);
        // Known context: from 127.0.0.1 over plain HTTP it is denied.
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/k")),
            Decision::Deny
        );
    }

    #[test]
    fn a_policy_reaches_only_the_buckets_its_allows_name() {
        let p = Policy::parse(
            r#"{"Statement":[
              {"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::logs-*/x","arn:aws:s3:::data/home/a"]},
              {"Effect":"Deny","Action":"*","Resource":"arn:aws:s3:::secret/*"}]}"#,
            Kind::Key,
        )
        .unwrap();
        assert!(p.may_reach_bucket("data"));
        assert!(p.may_reach_bucket("logs-2026"));
        assert!(!p.may_reach_bucket("dat"));
        assert!(!p.may_reach_bucket("secret"));
        assert!(!p.may_reach_bucket("other"));
        let all = Policy::parse(&Preset::Full.document(&[], None).unwrap(), Kind::Key).unwrap();
        assert!(all.may_reach_bucket("anything"));
        let one = Policy::parse(
            &Preset::Full.document(&["bk".into()], Some("p/")).unwrap(),
            Kind::Key,
        )
        .unwrap();
        assert!(one.may_reach_bucket("bk"));
        assert!(!one.may_reach_bucket("bk2"));
    }

    #[test]
    fn public_means_everybody_without_an_address_range() {
        let public = bucket_policy(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        );
        assert!(public.is_public());
        let aws_star = bucket_policy(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        );
        assert!(aws_star.is_public());
        let ranged = bucket_policy(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}"#,
        );
        assert!(!ranged.is_public());
        let deny = bucket_policy(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        );
        assert!(!deny.is_public());
        let named = bucket_policy(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"{K1}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
        ));
        assert!(!named.is_public());
    }

    fn allows(p: &Policy, action: &str, resource: &str, prefix: Option<&str>) -> bool {
        let r = Request {
            prefix,
            ..req(action, resource)
        };
        p.evaluate(&r) == Decision::Allow
    }

    #[test]
    fn a_summary_names_each_statement() {
        let text = Preset::ReadOnly.document(&["bk".to_owned()], None).unwrap();
        let s = summary(&text);
        assert!(s.starts_with("[ReadOnly] Allow s3:GetObject,"), "{s}");
        assert!(s.contains(" on arn:aws:s3:::bk,arn:aws:s3:::bk/*"), "{s}");
        assert_eq!(summary("nope"), "(a policy that does not parse)");
    }

    #[test]
    fn a_prefix_without_buckets_is_refused_since_it_would_limit_nothing() {
        for preset in [
            Preset::Full,
            Preset::ReadOnly,
            Preset::WriteOnly,
            Preset::NoDelete,
            Preset::Backup,
        ] {
            let e = preset.document(&[], Some("home/alice/")).unwrap_err();
            assert!(e.0.contains("--bucket"), "{e}");
        }
    }

    #[test]
    fn a_key_limited_to_a_prefix_changes_nothing_of_the_whole_bucket() {
        let b = vec!["bk".to_owned()];
        for preset in [Preset::Full, Preset::NoDelete, Preset::ReadOnly] {
            let p = Policy::parse(&preset.document(&b, Some("home/")).unwrap(), Kind::Key).unwrap();
            for action in [
                "s3:PutLifecycleConfiguration",
                "s3:PutBucketVersioning",
                "s3:PutBucketPolicy",
                "s3:PutBucketCORS",
                "s3:DeleteBucket",
            ] {
                assert!(
                    !allows(&p, action, "arn:aws:s3:::bk", None),
                    "{preset:?} {action}"
                );
            }
            assert!(allows(
                &p,
                "s3:ListBucket",
                "arn:aws:s3:::bk",
                Some("home/x")
            ));
            assert!(!allows(
                &p,
                "s3:ListBucket",
                "arn:aws:s3:::bk",
                Some("etc/")
            ));
            assert!(allows(&p, "s3:GetObject", "arn:aws:s3:::bk/home/x", None));
            assert!(!allows(
                &p,
                "s3:GetObject",
                "arn:aws:s3:::bk/etc/home/x",
                None
            ));
        }
        let write = Policy::parse(
            &Preset::WriteOnly.document(&b, Some("in/")).unwrap(),
            Kind::Key,
        )
        .unwrap();
        assert!(!allows(
            &write,
            "s3:ListBucket",
            "arn:aws:s3:::bk",
            Some("in/")
        ));
        assert!(allows(&write, "s3:PutObject", "arn:aws:s3:::bk/in/x", None));
    }

    #[test]
    fn no_delete_keeps_off_the_settings_that_delete_by_other_means() {
        let p = Policy::parse(&Preset::NoDelete.document(&[], None).unwrap(), Kind::Key).unwrap();
        for action in [
            "s3:PutLifecycleConfiguration",
            "s3:PutBucketVersioning",
            "s3:PutBucketPolicy",
        ] {
            assert!(!allows(&p, action, "arn:aws:s3:::any", None), "{action}");
        }
        assert!(allows(&p, "s3:PutBucketCORS", "arn:aws:s3:::any", None));
    }

    #[test]
    fn presets_allow_what_they_name_and_nothing_else() {
        let b = vec!["bk".to_owned()];
        let read = Policy::parse(&Preset::ReadOnly.document(&b, None).unwrap(), Kind::Key).unwrap();
        assert!(allows(&read, "s3:GetObject", "arn:aws:s3:::bk/x", None));
        assert!(allows(&read, "s3:ListBucket", "arn:aws:s3:::bk", None));
        assert!(!allows(&read, "s3:PutObject", "arn:aws:s3:::bk/x", None));
        assert!(!allows(&read, "s3:GetObject", "arn:aws:s3:::other/x", None));
        let write =
            Policy::parse(&Preset::WriteOnly.document(&b, None).unwrap(), Kind::Key).unwrap();
        assert!(allows(&write, "s3:PutObject", "arn:aws:s3:::bk/x", None));
        assert!(!allows(&write, "s3:GetObject", "arn:aws:s3:::bk/x", None));
        assert!(!allows(
            &write,
            "s3:DeleteObject",
            "arn:aws:s3:::bk/x",
            None
        ));
        let no_delete =
            Policy::parse(&Preset::NoDelete.document(&[], None).unwrap(), Kind::Key).unwrap();
        assert!(allows(
            &no_delete,
            "s3:PutObject",
            "arn:aws:s3:::any/x",
            None
        ));
        assert!(allows(
            &no_delete,
            "s3:GetObject",
            "arn:aws:s3:::any/x",
            None
        ));
        assert!(!allows(
            &no_delete,
            "s3:DeleteObject",
            "arn:aws:s3:::any/x",
            None
        ));
        assert!(!allows(
            &no_delete,
            "s3:DeleteBucket",
            "arn:aws:s3:::any",
            None
        ));
        let backup = Policy::parse(&Preset::Backup.document(&b, None).unwrap(), Kind::Key).unwrap();
        assert!(allows(&backup, "s3:PutObject", "arn:aws:s3:::bk/x", None));
        assert!(allows(
            &backup,
            "s3:DeleteObject",
            "arn:aws:s3:::bk/x",
            None
        ));
        assert!(!allows(
            &backup,
            "s3:DeleteObjectVersion",
            "arn:aws:s3:::bk/x",
            None
        ));
        assert!(!allows(
            &backup,
            "s3:BypassGovernanceRetention",
            "arn:aws:s3:::bk/x",
            None
        ));
        assert!(!allows(
            &backup,
            "s3:PutBucketVersioning",
            "arn:aws:s3:::bk",
            None
        ));
        assert!(!allows(
            &backup,
            "s3:PutBucketPolicy",
            "arn:aws:s3:::bk",
            None
        ));
        let scoped = Policy::parse(
            &Preset::Full.document(&b, Some("home/")).unwrap(),
            Kind::Key,
        )
        .unwrap();
        assert!(allows(
            &scoped,
            "s3:PutObject",
            "arn:aws:s3:::bk/home/x",
            None
        ));
        assert!(!allows(
            &scoped,
            "s3:PutObject",
            "arn:aws:s3:::bk/etc/x",
            None
        ));
        assert!(allows(
            &scoped,
            "s3:ListBucket",
            "arn:aws:s3:::bk",
            Some("home/a")
        ));
        assert!(!allows(
            &scoped,
            "s3:ListBucket",
            "arn:aws:s3:::bk",
            Some("etc/")
        ));
        assert!(!allows(&scoped, "s3:ListBucket", "arn:aws:s3:::bk", None));
        assert!(allows(
            &scoped,
            "s3:GetBucketLocation",
            "arn:aws:s3:::bk",
            None
        ));
    }
}
