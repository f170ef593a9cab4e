//! The admin commands, one module per resource (`obhut <noun> <verb>`): thin clients of the
//! admin API that sign statements on this machine and print results as plain lines. What they
//! share (the HTTP client, the progress bar, time and duration text) is in [`shared`].
//! [`rollback`] alone is a client of the S3 endpoint instead, signed with the tenant's S3 key.
//!
//! The caller's token never leaves this machine: only the bearer and signatures derived from
//! it do.

pub mod access;
pub mod bucket;
pub mod catalog;
pub mod disclosure;
pub mod log;
pub mod principal;
pub mod quota;
pub mod repair;
pub mod residency;
pub mod rollback;
pub mod shared;
pub mod signing_key;
pub mod site;
pub mod tenant;
pub mod token;
pub mod trustee;
