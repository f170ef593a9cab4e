//! The one error type of `obhut-tlog`.
//!
//! It owns the wording of every failure a log operator or an auditor can see, so each variant
//! names what failed (which index, which tile path, which key, which sizes). It must never carry
//! secret material: no signing seed, no private key bytes.

use thiserror::Error;

/// Everything that can go wrong when writing, serving or verifying the log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlogError {
    // ---- writer and storage ----
    /// The log's SQLite database failed.
    #[error("log storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file-system operation failed.
    #[error("log storage: {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The stored log is not what this code wrote (missing rows, wrong lengths, gaps).
    #[error("log storage is corrupt: {0}")]
    Corrupt(String),
    /// The origin is not usable as a checkpoint origin and signed-note key name.
    #[error(
        "invalid log origin {0:?}: it must be non-empty, without spaces, control characters or '+'"
    )]
    BadOrigin(String),
    /// The directory holds a log with another origin.
    #[error("the log in {dir} has origin {stored:?}, not {requested:?}")]
    OriginChanged {
        dir: String,
        stored: String,
        requested: String,
    },
    /// The directory holds a log signed by another key.
    #[error("the log in {dir} is signed by key {stored}, but the given seed is key {requested}")]
    KeyChanged {
        dir: String,
        stored: String,
        requested: String,
    },
    /// An entry does not fit the C2SP entry bundle encoding (uint16 length).
    #[error("log entry of {len} bytes is too large (at most 65535 bytes)")]
    EntryTooLarge { len: usize },
    /// A checkpoint size beyond what the verifier handles (2^62 entries).
    #[error("tree size {0} is too large to verify")]
    SizeTooLarge(u64),
    /// An entry index at or beyond the tree size.
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A tile width outside 1..=255 was asked for as a partial tile.
    #[error("invalid partial tile width {0} (must be 1..=255)")]
    BadTileWidth(u16),

    // ---- formats ----
    /// A tile path that is not `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
    #[error("invalid tile path {path:?}: {reason}")]
    BadTilePath { path: String, reason: &'static str },
    /// A verifier key that is not `<name>+<hex id>+<base64 key>` for an Ed25519 key.
    #[error("invalid verifier key {vkey:?}: {reason}")]
    BadVerifierKey { vkey: String, reason: String },
    /// A signed note that does not follow c2sp.org/signed-note.
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    /// A note body that does not follow c2sp.org/tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),

    // ---- verification ----
    /// A signature by a known key does not verify.
    #[error("signature invalid: the note's signature by key {key} does not verify")]
    SignatureInvalid { key: String },
    /// The note carries no signature by any of the given keys.
    #[error("note is not signed by {keys}")]
    NotSigned { keys: String },
    /// The checkpoint's origin line is not the verifier key's name.
    #[error("checkpoint origin {found:?} does not match the log key name {expected:?}")]
    OriginMismatch { expected: String, found: String },
    /// A tile or the checkpoint could not be fetched (transport error).
    #[error("fetching {path}: {message}")]
    Fetch { path: String, message: String },
    /// A tile the checkpoint's size requires is not served.
    #[error("{path} is missing (required by tree size {size})")]
    TileMissing { path: String, size: u64 },
    /// A tile or entry bundle is not the length/encoding it must have.
    #[error("{path} is malformed: {reason}")]
    TileMalformed { path: String, reason: String },
    /// A hash in a level >= 1 tile is not the hash of the full tile below it.
    #[error("{path} does not match the tiles below it: hash {position} should be {expected}")]
    TileMismatch {
        path: String,
        position: u64,
        expected: String,
    },
    /// The tiles do not hash to the root in the checkpoint.
    #[error(
        "root mismatch for tree size {size}: checkpoint says {checkpoint}, tiles give {computed}{hint}"
    )]
    RootMismatch {
        size: u64,
        checkpoint: String,
        computed: String,
        hint: String,
    },
    /// A stored entry does not hash to its leaf hash in the level-0 tile.
    #[error(
        "entry {index} (in {path}) does not match its leaf hash in the level-0 tile: the entry was altered"
    )]
    EntryMismatch { index: u64, path: String },
    /// The newer checkpoint is smaller than the older one.
    #[error("log rolled back from {from} to {to}")]
    RolledBack { from: u64, to: u64 },
    /// Two checkpoints of one size with different roots.
    #[error("log forked: two different roots for tree size {size} ({first} and {second})")]
    Forked {
        size: u64,
        first: String,
        second: String,
    },
    /// The old checkpoint's tree is not a prefix of the new one.
    #[error(
        "log inconsistent: the tree of size {old_size} is not a prefix of the tree of size {new_size}"
    )]
    Inconsistent { old_size: u64, new_size: u64 },
    /// The entry is not the log's entry at that index, or its path does not reach the root.
    #[error("inclusion of entry {index} in tree size {size} failed: {reason}")]
    InclusionFailed {
        index: u64,
        size: u64,
        reason: String,
    },
    /// A Merkle proof (RFC 6962) does not verify.
    #[error("invalid {kind} proof: {reason}")]
    InvalidProof { kind: &'static str, reason: String },
}

impl TlogError {
    /// A transport failure while fetching `path`, for [`crate::TileSource`] implementations.
    pub fn fetch(path: &str, message: impl std::fmt::Display) -> Self {
        TlogError::Fetch {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    /// The tile source failed (transport, missing or malformed tiles, local I/O), as opposed
    /// to a proof that does not check: reported as it is, never as a failed proof.
    pub(crate) fn is_source_failure(&self) -> bool {
        matches!(
            self,
            TlogError::Fetch { .. }
                | TlogError::TileMissing { .. }
                | TlogError::TileMalformed { .. }
                | TlogError::Io { .. }
        )
    }
}
