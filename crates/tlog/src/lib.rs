//! obhut's transparency log: a Merkle tree log in the C2SP tlog-tiles layout, with checkpoints
//! as C2SP signed notes (DESIGN.md, "Interface contract": the log served at `<admin-url>/log/`).
//!
//! - Writer (the trustee): [`Log`] appends entries durably to one directory, serves
//!   `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]` ([`Log::read_path`]) and
//!   gives its verifier key ([`Log::verifier_key`]) for `/log/key`.
//! - Verifier (the CLI, auditors): [`verify_checkpoint`], then [`verify_tree`],
//!   [`verify_entries`], [`verify_consistency`] and [`verify_inclusion`] over any [`TileSource`].
//!
//! RFC 6962 hashing and proofs come from `tlog_tiles`, signed notes from `signed_note` (both
//! 0.2.0, Cloudflare's ports of Go's sumdb code); the C2SP paths, the storage and the
//! whole-tree checks are here. This crate must never see tenants' object data, other keys than
//! the log's own, or the network (fetching is the caller's [`TileSource`]).

mod error;
mod merkle;
mod note;
mod tiles;
mod verify;
mod writer;

pub use error::TlogError;
pub use merkle::{
    EMPTY_ROOT, HASH_SIZE, Hash, hash_from_base64, hash_to_base64, leaf_hash, node_hash,
    verify_consistency_proof, verify_inclusion_proof,
};
pub use note::{
    Checkpoint, NoteSigner, OpenedNote, VerifierKey, is_valid_key_name, open_note,
    verify_checkpoint,
};
pub use tiles::{
    FULL_TILE_WIDTH, MAX_ENTRY_SIZE, MAX_TILE_LEVEL, TILE_HEIGHT, TileRef, decode_entry_bundle,
    encode_entry_bundle, encode_tile_index, entry_bundles_for_size, hash_tiles_at_level,
    hash_tiles_for_size, parse_tile_path, tile_path,
};
pub use verify::{
    DirTileSource, MAX_VERIFIABLE_SIZE, TileSource, VerifiedTree, fetch_checkpoint,
    verify_consistency, verify_entries, verify_inclusion, verify_tree,
};
pub use writer::{DB_FILE, Log};
