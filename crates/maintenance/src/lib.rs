//! Keyless upkeep of obhut's sites: repair and drain (replica moves), scrubbing, site health
//! probes, replicas found bad on read, orphan collection, residency reports, the site registry's
//! backends, and the background workers that run all of it.
//!
//! Everything here copies, checks and deletes ciphertext as the sites hold it, against the
//! CRC32C the catalog records: it depends on the catalog and the sites only, and never sees a
//! key, a keystore or the trustee (scripts/test checks the dependency graph): the residency
//! policies it enforces, which the trustee owns, reach it through [`PolicySource`]. The data path
//! reaches it through [`RepairRequests`]; the admin API through [`Maintenance`].

pub mod gateways;
pub mod lease;
mod metered;
mod orphans;
pub mod policy;
pub mod registry;
mod repair;
#[cfg(test)]
mod repair_tests;
mod replica;
mod report;
pub mod sites;
pub mod worker;

pub use gateways::{GatewayStatus, ReadinessProbe, ReadinessSummary, WorkerBeat, spawn_heartbeat};
pub use lease::{BACKGROUND_LEASE, Leadership, LeaseTiming};
pub use orphans::{DEFAULT_RETENTION, Fence, OrphanCollection, collect_orphans};
pub use policy::{Policy, PolicyError, PolicySource, project, project_all, residency_policy};
pub use repair::{Maintenance, Outcome, RepairRequests, RepairState, RepairStatus, ScrubRate};
pub use replica::{ReplicaProblem, discard_blobs, verify_replica};
pub use report::{
    BucketResidency, LockedCheck, ReplicaCheck, ReportPage, ReportPolicy, ReportSite,
    ResidencyReport, ResidencyTotals, TenantResidency, replicas_outside, uploads_outside,
};
pub use sites::SiteSet;
pub use worker::{Duty, WorkerState, WorkerStatus, Workers};

use obhut_catalog::CatalogError;
use obhut_sites::SiteError;
use thiserror::Error;

impl From<PolicyError> for MaintenanceError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Catalog(e) => Self::Catalog(e),
            // Logged and shown to operators by the repair status: the tenant as the log
            // names it.
            other @ PolicyError::Unavailable { .. } => Self::Policy(other.logged()),
        }
    }
}

/// Why a piece of maintenance could not be done.
#[derive(Debug, Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The residency policy could not be had from its owner, the trustee.
    #[error("{0}")]
    Policy(String),
    #[error("site {site}: {source}")]
    Site {
        site: String,
        #[source]
        source: SiteError,
    },
    /// No good replica could be copied where one was needed.
    #[error("{0}")]
    Copy(String),
    /// The policy cannot be met with the sites there are.
    #[error("{0}")]
    NoPlace(String),
    /// The worker was told to stop.
    #[error("stopped")]
    Stopped,
    /// Another process holds the lease on background work: this one stands by.
    #[error("another gateway holds the lease on background work and does it")]
    Standby,
}

impl MaintenanceError {
    /// A fixed word for the kind of error, for what names no bucket or object (the workers'
    /// last error in the gateway registry).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Catalog(_) => "catalog",
            Self::Policy(_) => "policy",
            Self::Site { .. } => "site",
            Self::Copy(_) => "copy",
            Self::NoPlace(_) => "no-place",
            Self::Stopped => "stopped",
            Self::Standby => "standby",
        }
    }
}
