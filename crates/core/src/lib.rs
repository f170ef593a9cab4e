//! obhut's domain types: tenants, buckets, object keys, blob ids, sites, placement and
//! residency policies.
//!
//! This crate owns the rules that every other crate relies on (what a valid bucket name or
//! object key is, how replicas are placed) and performs no I/O. It never sees object data.

pub mod iam;
pub mod ids;
pub mod logname;
pub mod names;
pub mod placement;
pub mod residency;

pub use ids::{BlobId, random_token};
pub use logname::logged;
pub use names::{NameError, validate_bucket_name, validate_object_key, validate_tenant_name};
pub use placement::{PlacementError, SiteInfo, SiteState, place, place_or_degrade};
pub use residency::{BucketNarrowing, Policy, PolicyScope, TenantResidency};

/// The jurisdiction code of a site or a tenant's policy, e.g. `DE` (ISO 3166-1 alpha-2).
pub fn validate_jurisdiction(code: &str) -> Result<(), NameError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(NameError::Jurisdiction(code.to_owned()))
    }
}
