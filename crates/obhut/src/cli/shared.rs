//! What every admin command shares: the admin API client (the caller's token turned into a
//! bearer and a signing key; the token itself is never sent), the progress bar of long jobs,
//! and how times, durations and lists are read and printed.
//!
//! It holds the caller's derived secrets in memory only; it never writes them anywhere.

use crate::AdminArgs;
use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use obhut_admin::wire::WhoAmI;
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::{Action, Role, Statement};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// This machine's clock, in ms since the epoch (statements carry it; the trustee checks it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The admin API, as the caller: JSON requests with the caller's bearer, statements signed
/// with the caller's key.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    /// The secrets the token stands for; the token itself is never sent. Public log reads
    /// need none.
    credential: Option<PrincipalCredential>,
    /// The caller's principal name, once asked for.
    name: tokio::sync::OnceCell<String>,
}

/// The HTTP client of the admin API: for an https:// URL, trusting the system's CAs and those
/// of `ca_bundle` (`--ca-bundle`, `OBHUT_CA_BUNDLE`).
pub(crate) fn http_client(
    base: &str,
    ca_bundle: Option<&std::path::Path>,
) -> Result<reqwest::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if !base.starts_with("https://") {
        return Ok(reqwest::Client::new());
    }
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the bundle may be all that is needed.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                anyhow!(
                    "the CA bundle {} is not a PEM certificate file ({e})",
                    path.display()
                )
            })?;
            roots.add(cert).map_err(|e| {
                anyhow!(
                    "the CA bundle {} holds an unusable certificate: {e}",
                    path.display()
                )
            })?;
            added += 1;
        }
        if added == 0 {
            bail!("the CA bundle {} holds no certificate", path.display());
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow!("TLS settings: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .context("cannot set up the HTTPS client")
}

impl Client {
    pub(crate) fn new(args: &AdminArgs) -> Result<Self> {
        if args.token.as_deref().is_none_or(str::is_empty) {
            bail!("no token: pass --token or set OBHUT_TOKEN");
        }
        Self::new_optional(args)
    }

    /// A client that may have no token (for the log's public parts).
    pub(crate) fn new_optional(args: &AdminArgs) -> Result<Self> {
        let credential = args
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(PrincipalCredential::from_token)
            .transpose()
            .map_err(|e| anyhow!("cannot derive keys from the token: {e}"))?;
        let base = args.admin_url.trim_end_matches('/').to_owned();
        Ok(Self {
            http: http_client(&base, args.ca_bundle.as_deref())?,
            base,
            credential,
            name: tokio::sync::OnceCell::new(),
        })
    }

    pub(crate) fn has_token(&self) -> bool {
        self.credential.is_some()
    }

    /// Whether the caller may read every entry (officers and auditors).
    pub(crate) async fn can_read_entries(&self) -> bool {
        match self.get::<WhoAmI>("/v1/whoami").await {
            Ok(me) => matches!(me.role, Role::Officer | Role::Auditor),
            Err(_) => false,
        }
    }

    fn credential(&self) -> Result<&PrincipalCredential> {
        self.credential
            .as_ref()
            .ok_or_else(|| anyhow!("no token: pass --token or set OBHUT_TOKEN"))
    }

    /// The caller's principal name, as the admin API knows it.
    pub(crate) async fn principal_name(&self) -> Result<&str> {
        self.name
            .get_or_try_init(|| async {
                let me: WhoAmI = self.get("/v1/whoami").await?;
                Ok::<_, anyhow::Error>(me.name)
            })
            .await
            .map(String::as_str)
    }

    /// Signs `action` as the caller and has the trustee carry it out.
    pub(crate) async fn act(&self, action: Action) -> Result<Value> {
        self.act_with(action, None).await
    }

    /// Like [`Self::act`], reading the answer as `T`.
    pub(crate) async fn act_as<T: DeserializeOwned>(&self, action: Action) -> Result<T> {
        decode("/v1/act", self.act(action).await?)
    }

    /// Like [`Self::act`], with a new site's backend beside the statement (it may hold a
    /// secret, which the statement, recorded in the log, must not).
    pub(crate) async fn act_with(&self, action: Action, site: Option<Value>) -> Result<Value> {
        let statement = Statement {
            principal: self.principal_name().await?.to_owned(),
            at_ms: now_ms(),
            nonce: obhut_core::random_token(16),
            action,
        };
        let text = serde_json::to_string(&statement).context("encoding the statement")?;
        let signature =
            base64_simd::STANDARD.encode_to_string(self.credential()?.sign_statement(&text));
        let mut body = json!({"statement": text, "signature": signature});
        if let Some(site) = site {
            body["site"] = site;
        }
        self.call(reqwest::Method::POST, "/v1/act", Some(body))
            .await
    }

    /// GET of a path that answers bytes (the log), `None` on 404.
    pub(crate) async fn get_bytes(&self, path: &str, auth: bool) -> Result<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if auth {
            req = req.bearer_auth(self.credential()?.bearer());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = resp
            .bytes()
            .await
            .context("reading the admin API's answer")?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.into_owned());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(Some(body.to_vec()))
    }

    /// GET of a JSON resource, read as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        decode(path, self.call(reqwest::Method::GET, path, None).await?)
    }

    /// POST of `body` (JSON) to `path`, the answer read as `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .context("encoding the request")?;
        decode(path, self.call(reqwest::Method::POST, path, body).await?)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(c) = &self.credential {
            req = req.bearer_auth(c.bearer());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .context("reading the admin API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_owned);
            bail!("{msg} (HTTP {})", status.as_u16())
        }
    }
}

/// An admin API answer read as the type obhut expects of `path`.
fn decode<T: DeserializeOwned>(path: &str, v: Value) -> Result<T> {
    serde_json::from_value(v)
        .with_context(|| format!("the admin API's answer to {path} is not what obhut expects"))
}

/// The runtime of one admin command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The progress bar of the CLI's long jobs (rotation, repair).
pub(crate) fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// `90d`, `12h`, `30m`, `45s` as milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration (like 30m, 2h, 7d)"))?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{s:?} is not a duration (like 30m, 2h, 7d)"),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| anyhow!("{s:?} is too long"))
}

/// Milliseconds as the largest whole unit: `2h`, `90m`, `45s`.
pub(crate) fn duration_text(ms: i64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

/// Milliseconds since the epoch as RFC 3339 (to the second), `-` for none.
pub(crate) fn when_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// `DE, AT` → `["DE", "AT"]`.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}
