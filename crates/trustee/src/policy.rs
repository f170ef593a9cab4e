//! Release policy: which justifications permit which key operations.
//!
//! - A customer-initiated request may create or use keys of its own tenant only.
//! - Grant-justified access needs approved, verifiable grants; until grants exist, it is denied.
//! - obhut itself never needs a bucket key: repair and resync copy ciphertext.

use obhut_trustee_client::{Justification, TrusteeError};

fn customer_of(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    match why {
        Justification::Customer {
            tenant: t,
            principal,
            operation,
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
        Justification::Grant { grant_id } => Err(TrusteeError::Denied(format!(
            "grant {grant_id} cannot be verified: grant-justified access is not enabled"
        ))),
        Justification::System { reason } => Err(TrusteeError::Denied(format!(
            "system operations ({reason}) never need a bucket key"
        ))),
    }
}

pub fn may_create_bucket_key(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    customer_of(tenant, why)
}

pub fn may_release_bucket_key(tenant: &str, why: &Justification) -> Result<(), TrusteeError> {
    customer_of(tenant, why)
}
