//! What the load generator shares with its benchmarks: the SigV4 signer (the criterion suite
//! signs the requests whose verification it measures with it).

pub mod sigv4;
