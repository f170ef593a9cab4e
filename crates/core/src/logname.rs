//! How the process log names a tenant, bucket or object: never by its name, which is the
//! customer's (a bucket or tenant name can say who the customer is or what it does), but by
//! a short SHA-256 prefix of it. The log at `info`, `warn` and `error` goes to the provider's
//! log collection, which the provider's staff read.
//!
//! Whoever knows a name can find its lines: `printf %s NAME | sha256sum | cut -c1-12`.
//! It owns no key, does no I/O and sees no object data.

use sha2::{Digest, Sha256};
use std::fmt;

/// A name as the log shows it: the first 12 hex digits of its SHA-256, e.g. `#2a97516c354b`.
#[derive(Clone, Copy)]
pub struct Logged<'a>(&'a str);

/// `name` as the process log shows it (see [`Logged`]).
#[must_use]
pub fn logged(name: &str) -> Logged<'_> {
    Logged(name)
}

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.0.as_bytes());
        f.write_str("#")?;
        for b in &digest[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::logged;

    #[test]
    fn a_logged_name_is_a_sha256_prefix_and_never_the_name() {
        // printf %s demo | sha256sum
        assert_eq!(logged("demo").to_string(), "#2a97516c354b");
        assert!(!logged("secret-tenant").to_string().contains("secret"));
    }
}
