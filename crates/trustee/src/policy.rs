//! Release policy: which justifications permit which key operations.
//!
//! - A customer-initiated request may create or use keys of its own tenant only.
//! - Only a customer creates bucket keys (a grant never creates buckets).
//! - Grant-justified access may use keys of the grant's tenant only; the grant itself (state,
//!   scope, expiry and its signed approvals) is checked by the governance module before any
//!   release.
//! - obhut itself needs a bucket key for two things only: the one-time upgrade of records an
//!   earlier release wrote ([`FORMAT_UPGRADE_REASON`]), which rewraps object keys and seals
//!   ETags, and reading the tags of object versions to apply a tenant's own tag-filtered
//!   lifecycle rules ([`LIFECYCLE_TAGS_REASON`]); such a release is logged like every other.
//!   Repair and resync copy ciphertext and never need one; no system reason creates a key.

use obhut_trustee_client::{
    FORMAT_UPGRADE_REASON, Justification, LIFECYCLE_TAGS_REASON, TrusteeError,
};

fn permitted(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    match why {
        Justification::Customer {
            tenant: t,
            principal,
            operation,
            ..
        } => {
            if t != tenant {
                return Err(TrusteeError::Denied(format!(
                    "a principal of tenant {t} may not use keys of tenant {tenant}"
                )));
            }
            if principal.is_empty() || operation.is_empty() {
                return Err(TrusteeError::Denied(
                    "a customer justification names its principal and operation".into(),
                ));
            }
            Ok(())
        }
        Justification::Grant { .. } => Ok(()),
        Justification::System { reason } => Err(TrusteeError::Denied(format!(
            "system operations ({reason}) never need a bucket key"
        ))),
    }
}

pub fn may_create_bucket_key(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    if let Justification::Grant { grant_id } = why {
        return Err(TrusteeError::Denied(format!(
            "grant {grant_id} cannot create bucket keys"
        )));
    }
    permitted(tenant, why)
}

pub fn may_release_bucket_key(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    match why {
        Justification::System { reason }
            if reason == FORMAT_UPGRADE_REASON || reason == LIFECYCLE_TAGS_REASON =>
        {
            Ok(())
        }
        _ => permitted(tenant, why),
    }
}
