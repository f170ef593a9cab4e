//! Bucket CORS: PutBucketCors, GetBucketCors and DeleteBucketCors, the answer to a browser's
//! preflight `OPTIONS` request, and the `Access-Control-*` headers of actual responses.
//!
//! A preflight is unauthenticated in S3, so it is answered from the bucket's CORS rules alone,
//! kept in clear in the catalog (`bucket_configs`, kind `cors`): they name web origins, and
//! grant nothing (every request that reaches data is still signed by a tenant's or a grant's
//! key). A preflight answers the same refusal for a bucket that does not exist and for one
//! without CORS rules, so that it tells nobody which names are taken; only a bucket whose
//! tenant published rules answers more, and only what the rules say. Never sees keys, object
//! names or content.

use crate::access::ReqCtx;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, Catalog, config_kind};
use s3s::dto::*;
use s3s::{HttpResponse, S3ErrorCode, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

/// S3's limit on the rules of one configuration.
const MAX_RULES: usize = 100;
/// The methods a rule may allow.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// The format of the stored configuration (a field of its own, so that a later release can
/// tell and convert it).
const FORMAT: u32 = 1;

/// One CORS rule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// A bucket's CORS configuration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub format: u32,
    pub rules: Vec<Rule>,
}

impl Rules {
    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|r| r.format == FORMAT)
    }
}

fn invalid_request(message: String) -> s3s::S3Error {
    s3s::S3Error::with_message(S3ErrorCode::InvalidRequest, message)
}

/// `*` matches any run of characters; at most one is allowed (checked when stored).
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// Checks a configuration as S3 does: 1 to 100 rules, each with origins and methods; methods
/// among GET, PUT, POST, DELETE, HEAD; at most one `*` in an origin or allowed header; none in
/// an exposed header.
fn checked(config: CORSConfiguration) -> S3Result<Rules> {
    let malformed = || error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML);
    if config.cors_rules.is_empty() || config.cors_rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for r in config.cors_rules {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(malformed());
        }
        for m in &r.allowed_methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(invalid_request(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )));
            }
        }
        for o in &r.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(invalid_request(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                )));
            }
        }
        let allowed_headers = r.allowed_headers.unwrap_or_default();
        for h in &allowed_headers {
            if h.matches('*').count() > 1 {
                return Err(invalid_request(format!(
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                )));
            }
        }
        let expose_headers = r.expose_headers.unwrap_or_default();
        for h in &expose_headers {
            if h.contains('*') {
                return Err(invalid_request(format!(
                    "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
                )));
            }
        }
        if r.max_age_seconds.is_some_and(|s| s < 0) {
            return Err(malformed());
        }
        rules.push(Rule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers,
            max_age_seconds: r.max_age_seconds,
        });
    }
    Ok(Rules {
        format: FORMAT,
        rules,
    })
}

fn no_configuration() -> s3s::S3Error {
    error::with(
        S3ErrorCode::NoSuchCORSConfiguration,
        "The CORS configuration does not exist",
    )
}

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let rules = checked(req.input.cors_configuration)?;
    let bytes = serde_json::to_vec(&rules).map_err(|e| error::corrupt_record("CORS rules", &e))?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::CORS,
            Some(&bytes),
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let rules = stored_rules(gw.catalog.as_ref(), ctx.bucket()?)
        .await
        .map_err(error::catalog)?
        .ok_or_else(no_configuration)?;
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(
            rules
                .rules
                .into_iter()
                .map(|r| CORSRule {
                    id: r.id,
                    allowed_origins: r.allowed_origins,
                    allowed_methods: r.allowed_methods,
                    allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                    expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        ),
    }))
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::CORS,
            None,
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}

/// The rules stored for `bucket`; a record this release cannot read counts as none.
async fn stored_rules(
    catalog: &dyn Catalog,
    bucket: &Bucket,
) -> obhut_catalog::Result<Option<Rules>> {
    Ok(catalog
        .get_bucket_config(bucket, config_kind::CORS)
        .await?
        .and_then(|b| Rules::decode(&b)))
}

/// The bucket a request's path names (path-style addressing), if any.
fn bucket_of(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|b| !b.is_empty())
}

/// The rules of the bucket named in `path`, if it exists and has any.
async fn rules_of(catalog: &dyn Catalog, path: &str) -> Option<Rules> {
    let name = bucket_of(path)?;
    let bucket = catalog.get_bucket(name).await.ok()??;
    stored_rules(catalog, &bucket).await.ok()?
}

/// The first rule that allows `origin` to use `method` with the request headers `headers`
/// (lower case), as S3 evaluates them: in order, the first match wins.
fn matching<'r>(
    rules: &'r Rules,
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'r Rule> {
    rules.rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| r.allowed_headers.iter().any(|a| wildcard_match(a, h)))
    })
}

fn set(resp: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(v) = http::HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The `Access-Control-*` headers of an answer under `rule` to `origin`.
fn allow(resp: &mut HttpResponse, rule: &Rule, origin: &str) {
    if rule.allowed_origins.iter().any(|o| o == "*") {
        set(resp, "access-control-allow-origin", "*");
    } else {
        set(resp, "access-control-allow-origin", origin);
        set(resp, "access-control-allow-credentials", "true");
    }
    if !rule.expose_headers.is_empty() {
        set(
            resp,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    set(
        resp,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

fn forbidden(message: &str) -> HttpResponse {
    crate::front::s3_error_response(http::StatusCode::FORBIDDEN, "AccessForbidden", message)
}

/// Answers a preflight `OPTIONS` request to `path`: 200 with the `Access-Control-*` headers of
/// the first rule that allows it, else 403. Unauthenticated, as in S3; a bucket that does
/// not exist and one without rules get the same answer.
pub async fn preflight(
    catalog: &dyn Catalog,
    path: &str,
    headers: &http::HeaderMap,
) -> HttpResponse {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = text("origin").filter(|o| !o.is_empty()) else {
        return crate::front::s3_error_response(
            http::StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = text("access-control-request-method").filter(|m| METHODS.contains(m)) else {
        return crate::front::s3_error_response(
            http::StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method",
        );
    };
    let requested: Vec<String> = text("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let Some(rules) = rules_of(catalog, path).await else {
        return forbidden("CORSResponse: CORS is not enabled for this bucket.");
    };
    let Some(rule) = matching(&rules, origin, method, &requested) else {
        return forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut resp = HttpResponse::new(s3s::Body::empty());
    allow(&mut resp, rule, origin);
    set(
        &mut resp,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !requested.is_empty() {
        set(
            &mut resp,
            "access-control-allow-headers",
            &requested.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(&mut resp, "access-control-max-age", &age.to_string());
    }
    resp
}

/// Adds the `Access-Control-*` headers of the first matching rule to a successful answer to
/// a request from a web `origin`. Only successful answers carry them: the request was signed
/// and allowed, so they tell the caller nothing it could not read.
pub async fn decorate(
    catalog: &dyn Catalog,
    path: &str,
    method: &http::Method,
    origin: &str,
    resp: &mut HttpResponse,
) {
    if !(resp.status().is_success() || resp.status() == http::StatusCode::NOT_MODIFIED) {
        return;
    }
    let Some(rules) = rules_of(catalog, path).await else {
        return;
    };
    if let Some(rule) = matching(&rules, origin, method.as_str(), &[]) {
        allow(resp, rule, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wildcard_matches_any_run_of_characters() {
        assert!(wildcard_match("*", "https://a.example"));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "http://app.example.com"
        ));
        assert!(wildcard_match("x-amz-*", "x-amz-date"));
        assert!(!wildcard_match("a*a", "a"), "the two ends may not overlap");
        assert!(wildcard_match("exact", "exact") && !wildcard_match("exact", "exactly"));
    }

    #[test]
    fn the_first_rule_that_allows_everything_asked_wins() {
        let rules = Rules {
            format: FORMAT,
            rules: vec![
                Rule {
                    id: Some("one".into()),
                    allowed_origins: vec!["https://a.example".into()],
                    allowed_methods: vec!["GET".into()],
                    allowed_headers: vec![],
                    expose_headers: vec![],
                    max_age_seconds: None,
                },
                Rule {
                    id: Some("two".into()),
                    allowed_origins: vec!["*".into()],
                    allowed_methods: vec!["GET".into(), "PUT".into()],
                    allowed_headers: vec!["x-amz-*".into(), "content-type".into()],
                    expose_headers: vec!["ETag".into()],
                    max_age_seconds: Some(60),
                },
            ],
        };
        let id = |o, m, h: &[&str]| {
            let h: Vec<String> = h.iter().map(|s| (*s).to_owned()).collect();
            matching(&rules, o, m, &h).and_then(|r| r.id.clone())
        };
        assert_eq!(id("https://a.example", "GET", &[]), Some("one".into()));
        assert_eq!(
            id("https://a.example", "GET", &["x-amz-date"]),
            Some("two".into())
        );
        assert_eq!(
            id("https://b.example", "PUT", &["content-type"]),
            Some("two".into())
        );
        assert_eq!(id("https://b.example", "PUT", &["authorization"]), None);
        assert_eq!(id("https://b.example", "DELETE", &[]), None);
    }
}
