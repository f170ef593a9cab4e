//! What `/healthz` and `/readyz` answer: JSON for operators that names no tenant data.
//!
//! A process is alive while it answers. It is ready when the trustee answers and is unsealed
//! and the catalog answers: only then can it serve reads and writes. Sites are reported but do
//! not make it unready: with a site down, reads use other replicas and writes that cannot
//! reach enough sites are refused one by one.

use serde_json::json;

/// `/healthz`'s answer.
pub const LIVENESS_JSON: &str = "{\"status\":\"alive\"}";

/// The trustee as this process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrusteeState {
    Unsealed,
    Sealed,
    Unreachable,
    /// Unsealed, but officers have disconnected the provider: nothing is served.
    Disconnected,
}

impl TrusteeState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsealed => "unsealed",
            Self::Sealed => "sealed",
            Self::Unreachable => "unreachable",
            Self::Disconnected => "disconnected",
        }
    }
}

/// A site's id and its state as this process sees it (`active`, `draining`, `down`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteHealth {
    pub id: String,
    pub state: &'static str,
}

/// `/readyz`'s findings.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub trustee: TrusteeState,
    pub catalog_ok: bool,
    pub sites: Vec<SiteHealth>,
    /// Where gateways share a catalog: whether this one does the background work (`leader`,
    /// it holds the lease) or waits (`standby`). `None` where there is no lease to hold.
    pub background: Option<&'static str>,
}

impl Readiness {
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.trustee == TrusteeState::Unsealed && self.catalog_ok
    }

    /// The HTTP status to answer: 200 when ready, else 503.
    #[must_use]
    pub fn status(&self) -> u16 {
        if self.is_ready() { 200 } else { 503 }
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        let sites: Vec<_> = self
            .sites
            .iter()
            .map(|s| json!({"id": s.id, "state": s.state}))
            .collect();
        let mut body = json!({
            "status": if self.is_ready() { "ready" } else { "unready" },
            "trustee": self.trustee.as_str(),
            "catalog": if self.catalog_ok { "ok" } else { "unavailable" },
            "sites": sites,
        });
        if let Some(role) = self.background {
            body["background"] = json!(role);
        }
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_the_trustee_unsealed_and_the_catalog_answering() {
        let site = SiteHealth {
            id: "de-fra".into(),
            state: "down",
        };
        let r = Readiness {
            trustee: TrusteeState::Unsealed,
            catalog_ok: true,
            sites: vec![site],
            background: Some("standby"),
        };
        assert!(
            r.is_ready(),
            "a site down does not make the process unready"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("JSON");
        assert_eq!(v["status"], "ready");
        assert_eq!(v["sites"][0]["state"], "down");
        assert_eq!(
            v["background"], "standby",
            "a standby is ready: it serves S3"
        );
        for (trustee, catalog_ok) in [
            (TrusteeState::Sealed, true),
            (TrusteeState::Unreachable, true),
            (TrusteeState::Disconnected, true),
            (TrusteeState::Unsealed, false),
        ] {
            let r = Readiness {
                trustee,
                catalog_ok,
                sites: vec![],
                background: None,
            };
            assert_eq!(r.status(), 503);
        }
    }
}
