//! Placement: which sites receive a new object's replicas.
//!
//! Placement is where residency (guarantee 1) and redundancy (guarantee 2) become one decision:
//! only active sites in an allowed jurisdiction qualify, and fewer than `min_sites` qualifying
//! sites is a refusal, never a best-effort write.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    Active,
    Draining,
    Down,
}

impl SiteState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Down => "down",
        }
    }
}

/// What placement needs to know about a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub id: String,
    pub jurisdiction: String,
    pub location: String,
    pub state: SiteState,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error(
        "only {available} active site(s) in jurisdiction(s) {allowed} are available, but the policy requires {required} distinct sites{not_active}"
    )]
    NotEnoughSites {
        available: usize,
        required: usize,
        allowed: String,
        /// The allowed jurisdictions' sites that are not active, as `; not active: de-ber (down)`,
        /// so that an operator reading the refusal knows which site to look at.
        not_active: String,
    },
}

/// Chooses `min_sites` distinct active sites whose jurisdiction is in `allowed`.
///
/// The choice is deterministic (registry order) so that placement is explainable; spreading load
/// across more sites than `min_sites` is a later concern.
pub fn place<'a>(
    sites: &'a [SiteInfo],
    allowed: &[String],
    min_sites: usize,
) -> Result<Vec<&'a SiteInfo>, PlacementError> {
    let eligible: Vec<&SiteInfo> = sites
        .iter()
        .filter(|s| s.state == SiteState::Active && allowed.contains(&s.jurisdiction))
        .collect();
    if eligible.len() < min_sites.max(1) {
        return Err(PlacementError::NotEnoughSites {
            available: eligible.len(),
            required: min_sites,
            allowed: allowed.join(","),
            not_active: not_active_sites(sites, allowed),
        });
    }
    Ok(eligible.into_iter().take(min_sites.max(1)).collect())
}

fn not_active_sites(sites: &[SiteInfo], allowed: &[String]) -> String {
    let listed: Vec<String> = sites
        .iter()
        .filter(|s| s.state != SiteState::Active && allowed.contains(&s.jurisdiction))
        .map(|s| format!("{} ({})", s.id, s.state.as_str()))
        .collect();
    if listed.is_empty() {
        String::new()
    } else {
        format!("; not active: {}", listed.join(", "))
    }
}

/// Like [`place`], but when fewer than `min_sites` qualify and `accept_degraded` is set, places
/// on every qualifying site there is (at least one); the flag says the placement is short.
pub fn place_or_degrade<'a>(
    sites: &'a [SiteInfo],
    allowed: &[String],
    min_sites: usize,
    accept_degraded: bool,
) -> Result<(Vec<&'a SiteInfo>, bool), PlacementError> {
    match place(sites, allowed, min_sites) {
        Ok(chosen) => Ok((chosen, false)),
        Err(e) if !accept_degraded => Err(e),
        Err(e) => {
            let eligible: Vec<&SiteInfo> = sites
                .iter()
                .filter(|s| s.state == SiteState::Active && allowed.contains(&s.jurisdiction))
                .collect();
            if eligible.is_empty() {
                Err(e)
            } else {
                Ok((eligible, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, j: &str, state: SiteState) -> SiteInfo {
        SiteInfo {
            id: id.into(),
            jurisdiction: j.into(),
            location: String::new(),
            state,
        }
    }

    #[test]
    fn places_on_distinct_allowed_active_sites() {
        let sites = [
            site("us-east", "US", SiteState::Active),
            site("de-fra", "DE", SiteState::Active),
            site("de-ber", "DE", SiteState::Down),
            site("de-mgd", "DE", SiteState::Active),
        ];
        let chosen = place(&sites, &["DE".into()], 2).expect("two DE sites are active");
        let ids: Vec<_> = chosen.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["de-fra", "de-mgd"]);
    }

    #[test]
    fn degraded_placement_uses_what_there_is_but_never_another_jurisdiction() {
        let sites = [
            site("us-east", "US", SiteState::Active),
            site("de-fra", "DE", SiteState::Active),
            site("de-mgd", "DE", SiteState::Down),
        ];
        assert!(place_or_degrade(&sites, &["DE".into()], 2, false).is_err());
        let (chosen, short) = place_or_degrade(&sites, &["DE".into()], 2, true).unwrap();
        assert!(short);
        assert_eq!(
            chosen.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["de-fra"]
        );
        assert!(place_or_degrade(&sites, &["AT".into()], 2, true).is_err());
        let (chosen, short) = place_or_degrade(&sites, &["DE".into()], 1, true).unwrap();
        assert!(!short && chosen.len() == 1);
    }

    #[test]
    fn refuses_rather_than_placing_outside_the_jurisdiction() {
        let sites = [
            site("us-east", "US", SiteState::Active),
            site("de-fra", "DE", SiteState::Active),
        ];
        let err = place(&sites, &["DE".into()], 2).unwrap_err();
        assert_eq!(
            err,
            PlacementError::NotEnoughSites {
                available: 1,
                required: 2,
                allowed: "DE".into(),
                not_active: String::new(),
            }
        );
    }

    #[test]
    fn a_refusal_names_the_sites_that_are_not_active() {
        let sites = [
            site("de-fra", "DE", SiteState::Active),
            site("de-ber", "DE", SiteState::Down),
            site("de-ham", "DE", SiteState::Draining),
            site("us-east", "US", SiteState::Down),
        ];
        let msg = place(&sites, &["DE".into()], 3).unwrap_err().to_string();
        assert!(
            msg.ends_with("; not active: de-ber (down), de-ham (draining)"),
            "{msg}"
        );
        assert!(!msg.contains("us-east"), "{msg}");
    }
}
