//! The admin API: how officers, operators, auditors and tenant admins manage obhut.
//!
//! It owns bearer-token authentication of principals (tokens are stored only as SHA-256
//! hashes), the role checks for every endpoint, and JSON errors. It must never return object
//! data, object names or plaintext metadata: operators in particular see only the state of the
//! system, never its contents.

mod api;
pub mod console_sessions;
mod ops;
pub mod provision;
mod quota;
mod residency;
pub mod wire;

pub use api::{AdminState, BucketKeyRotation, Jobs, RotationOutcome, RotationProgress, router};
pub use residency::TrusteeSiteSecrets;
