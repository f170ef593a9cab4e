//! The verifier: checks a log served in the C2SP tlog-tiles layout against a signed checkpoint.
//!
//! It owns fetching through a [`TileSource`] (the CLI wraps blocking HTTP; tests read a directory
//! or a [`crate::Log`]), recomputing the tree from its tiles, checking entries against their leaf
//! hashes, and inclusion and consistency checks between checkpoints. Proof paths are built with
//! `tlog_tiles`' tile hash reader, which verifies every tile it reads against the checkpoint
//! root. It must never see the log's signing key or its storage: everything it trusts comes from
//! a checkpoint verified with the log's public key ([`crate::verify_checkpoint`]).
//!
//! Sizes and paths come from untrusted input, so nothing here panics on them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::error::TlogError;
use crate::merkle::{
    EMPTY_ROOT, HASH_SIZE, Hash, Levels, hash_to_base64, leaf_hash, verify_consistency_proof,
    verify_inclusion_proof,
};
use crate::note::{Checkpoint, verify_checkpoint};
use crate::tiles::{
    FULL_TILE_WIDTH, TILE_HEIGHT, TileRef, decode_entry_bundle, entry_bundles_for_size,
    hash_tiles_at_level, nodes_at_tile_level, split_hashes,
};

/// Where the verifier reads the log from. Paths are relative to the log prefix: `checkpoint`,
/// `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]` (for obhut: `<admin-url>/log/<path>`).
pub trait TileSource {
    /// Fetches one resource: `Ok(None)` if it does not exist (HTTP 404), an error for transport
    /// failures (use [`TlogError::fetch`]).
    ///
    /// # Errors
    /// Transport or I/O failures.
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, TlogError>;
}

impl<T: TileSource + ?Sized> TileSource for &mut T {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, TlogError> {
        (**self).get(path)
    }
}

/// A log mirrored in a local directory (`<dir>/checkpoint`, `<dir>/tile/...`).
#[derive(Debug, Clone)]
pub struct DirTileSource {
    root: PathBuf,
}

impl DirTileSource {
    /// Reads the log under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTileSource { root: root.into() }
    }
}

impl TileSource for DirTileSource {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, TlogError> {
        let rel = Path::new(path);
        if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(TlogError::fetch(path, "not a relative log path"));
        }
        let full = self.root.join(rel);
        match std::fs::read(&full) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TlogError::Io {
                action: "read",
                path: full.display().to_string(),
                source: e,
            }),
        }
    }
}

/// Fetches `checkpoint` from `src` and verifies it with `vkey` ([`verify_checkpoint`]).
///
/// # Errors
/// [`TlogError::Fetch`] if there is none, or any error of [`verify_checkpoint`].
pub fn fetch_checkpoint(src: &mut dyn TileSource, vkey: &str) -> Result<Checkpoint, TlogError> {
    let data = src
        .get("checkpoint")?
        .ok_or_else(|| TlogError::fetch("checkpoint", "not found"))?;
    let text = String::from_utf8(data)
        .map_err(|_| TlogError::MalformedNote("checkpoint is not UTF-8".to_owned()))?;
    verify_checkpoint(&text, vkey)
}

/// The largest tree size the verifier accepts: beyond it the stored-hash index arithmetic of
/// `tlog_tiles` would overflow (and no log is anywhere near it).
pub const MAX_VERIFIABLE_SIZE: u64 = 1 << 62;

fn check_size(size: u64) -> Result<(), TlogError> {
    if size > MAX_VERIFIABLE_SIZE {
        return Err(TlogError::SizeTooLarge(size));
    }
    Ok(())
}

/// A fetched tile: the bytes of exactly the requested width, and the path they came from.
struct Fetched {
    path: String,
    data: Vec<u8>,
}

/// Fetches a tile; if a partial tile is gone, falls back to the full tile (C2SP allows logs to
/// delete partial tiles once the full one exists) and keeps its first `width` items.
fn fetch_hash_tile(
    src: &mut dyn TileSource,
    tile: TileRef,
    size: u64,
) -> Result<Fetched, TlogError> {
    let width = usize::from(tile.width());
    let path = tile.path();
    let (path, data, want) = match src.get(&path)? {
        Some(data) => (path, data, width),
        None if tile.partial_width().is_some() => {
            let full = tile.full().path();
            match src.get(&full)? {
                Some(data) => (full, data, usize::from(FULL_TILE_WIDTH)),
                None => return Err(TlogError::TileMissing { path, size }),
            }
        }
        None => return Err(TlogError::TileMissing { path, size }),
    };
    if data.len() != want * HASH_SIZE {
        return Err(TlogError::TileMalformed {
            reason: format!(
                "{} bytes, want {} ({want} hashes of 32 bytes)",
                data.len(),
                want * HASH_SIZE
            ),
            path,
        });
    }
    let mut data = data;
    data.truncate(width * HASH_SIZE);
    Ok(Fetched { path, data })
}

/// Fetches an entry bundle, with the same full-bundle fallback, and splits it into exactly
/// `width` entries.
fn fetch_entry_bundle(
    src: &mut dyn TileSource,
    tile: TileRef,
    size: u64,
) -> Result<(String, Vec<Vec<u8>>), TlogError> {
    let width = usize::from(tile.width());
    let path = tile.path();
    let (path, data, want) = match src.get(&path)? {
        Some(data) => (path, data, width),
        None if tile.partial_width().is_some() => {
            let full = tile.full().path();
            match src.get(&full)? {
                Some(data) => (full, data, usize::from(FULL_TILE_WIDTH)),
                None => return Err(TlogError::TileMissing { path, size }),
            }
        }
        None => return Err(TlogError::TileMissing { path, size }),
    };
    let entries = decode_entry_bundle(&data).map_err(|reason| TlogError::TileMalformed {
        path: path.clone(),
        reason,
    })?;
    if entries.len() != want {
        return Err(TlogError::TileMalformed {
            reason: format!("{} entries, want {want}", entries.len()),
            path,
        });
    }
    let entries = entries
        .into_iter()
        .take(width)
        .map(<[u8]>::to_vec)
        .collect();
    Ok((path, entries))
}

/// A tree whose hash tiles were all fetched and checked against a checkpoint.
#[derive(Debug, Clone)]
pub struct VerifiedTree {
    checkpoint: Checkpoint,
    levels: Levels,
}

impl VerifiedTree {
    /// The checkpoint the tree was verified against.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The leaf hash of entry `index`, from the verified level-0 tiles.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.levels.node(0, index).copied()
    }

    /// The root of the tree's first `size` entries (for checking an older checkpoint).
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        self.levels.root_at(size)
    }

    /// Fetches every entry bundle and checks each entry's RFC 6962 leaf hash against the
    /// verified level-0 tiles. Returns the number of entries checked.
    ///
    /// # Errors
    /// [`TlogError::EntryMismatch`] naming the first altered entry, or fetch/format errors.
    pub fn verify_entries(&self, src: &mut dyn TileSource) -> Result<u64, TlogError> {
        let size = self.checkpoint.size;
        let mut checked = 0u64;
        for bundle in entry_bundles_for_size(size) {
            let (path, entries) = fetch_entry_bundle(src, bundle, size)?;
            let base = bundle.index() * u64::from(FULL_TILE_WIDTH);
            for (offset, entry) in (0u64..).zip(entries.iter()) {
                let index = base + offset;
                if self.leaf_hash(index) != Some(leaf_hash(entry)) {
                    return Err(TlogError::EntryMismatch { index, path });
                }
                checked += 1;
            }
        }
        Ok(checked)
    }
}

/// Fetches every hash tile a tree of `checkpoint.size` consists of, recomputes the root from the
/// level-0 tiles, compares it with the checkpoint's, and checks every hash in the tiles of level
/// 1 and above against the recomputed tree.
///
/// # Errors
/// [`TlogError::RootMismatch`] (with a hint naming the level-0 tile that disagrees with its
/// parent, if one does), [`TlogError::TileMismatch`], [`TlogError::TileMissing`],
/// [`TlogError::TileMalformed`] or fetch errors.
pub fn verify_tree(
    src: &mut dyn TileSource,
    checkpoint: &Checkpoint,
) -> Result<VerifiedTree, TlogError> {
    let size = checkpoint.size;
    check_size(size)?;
    // Do not trust the size for an allocation; grow as tiles actually arrive.
    let mut leaves: Vec<Hash> = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
    for tile in hash_tiles_at_level(size, 0) {
        let fetched = fetch_hash_tile(src, tile, size)?;
        let hashes = split_hashes(&fetched.data).ok_or_else(|| TlogError::TileMalformed {
            path: fetched.path.clone(),
            reason: "length is not a multiple of 32".to_owned(),
        })?;
        leaves.extend(hashes);
    }
    let levels = Levels::from_leaves(leaves);
    let computed = levels.root_at(size).ok_or_else(|| {
        TlogError::Corrupt(format!("level-0 tiles do not cover tree size {size}"))
    })?;

    // Tiles of level >= 1: each hash must be the recomputed node at tree level 8 * level.
    let mut mismatch: Option<(TlogError, String)> = None;
    let mut level = 1u8;
    while mismatch.is_none() && nodes_at_tile_level(size, level) > 0 {
        for tile in hash_tiles_at_level(size, level) {
            let fetched = fetch_hash_tile(src, tile, size)?;
            let hashes = split_hashes(&fetched.data).ok_or_else(|| TlogError::TileMalformed {
                path: fetched.path.clone(),
                reason: "length is not a multiple of 32".to_owned(),
            })?;
            let base = tile.index() * u64::from(FULL_TILE_WIDTH);
            let tree_level = u32::from(level) * TILE_HEIGHT;
            let bad = (0u64..)
                .zip(hashes.iter())
                .find(|(i, h)| levels.node(tree_level, base + i) != Some(*h));
            if let Some((position, _)) = bad {
                let expected = levels
                    .node(tree_level, base + position)
                    .map_or_else(|| "absent".to_owned(), hash_to_base64);
                let child = TileRef::Hash {
                    level: level - 1,
                    index: base + position,
                    partial_width: None,
                };
                let hint = format!(
                    "; {child} does not hash to hash {position} of {}",
                    fetched.path
                );
                mismatch = Some((
                    TlogError::TileMismatch {
                        path: fetched.path,
                        position,
                        expected,
                    },
                    hint,
                ));
                break;
            }
        }
        level += 1;
    }

    if computed != checkpoint.root {
        return Err(TlogError::RootMismatch {
            size,
            checkpoint: hash_to_base64(&checkpoint.root),
            computed: hash_to_base64(&computed),
            hint: mismatch.map(|(_, hint)| hint).unwrap_or_default(),
        });
    }
    if let Some((err, _)) = mismatch {
        return Err(err);
    }
    Ok(VerifiedTree {
        checkpoint: checkpoint.clone(),
        levels,
    })
}

/// [`verify_tree`], then checks every entry against its leaf hash
/// ([`VerifiedTree::verify_entries`]). This is what detects an altered stored entry.
///
/// # Errors
/// Any error of [`verify_tree`], or [`TlogError::EntryMismatch`] naming the altered entry.
pub fn verify_entries(
    src: &mut dyn TileSource,
    checkpoint: &Checkpoint,
) -> Result<VerifiedTree, TlogError> {
    let tree = verify_tree(src, checkpoint)?;
    tree.verify_entries(src)?;
    Ok(tree)
}

/// Adapts a [`TileSource`] to `tlog_tiles`' tile reader (height 8, C2SP paths), caching tiles
/// and keeping the first fetch error so it is reported as it happened.
struct TileReaderAdapter<'a> {
    src: RefCell<&'a mut dyn TileSource>,
    size: u64,
    cache: RefCell<HashMap<TileRef, Vec<u8>>>,
    error: RefCell<Option<TlogError>>,
}

impl<'a> TileReaderAdapter<'a> {
    fn new(src: &'a mut dyn TileSource, size: u64) -> Self {
        TileReaderAdapter {
            src: RefCell::new(src),
            size,
            cache: RefCell::new(HashMap::new()),
            error: RefCell::new(None),
        }
    }

    fn read(&self, tile: &tlog_tiles::Tile) -> Result<Vec<u8>, TlogError> {
        let partial_width = if tile.width() >= u32::from(FULL_TILE_WIDTH) {
            None
        } else {
            Some(u16::try_from(tile.width()).map_err(|_| {
                TlogError::Corrupt(format!("tile width {} out of range", tile.width()))
            })?)
        };
        let tile = TileRef::Hash {
            level: tile.level(),
            index: tile.level_index(),
            partial_width,
        };
        if let Some(data) = self.cache.borrow().get(&tile) {
            return Ok(data.clone());
        }
        let fetched = fetch_hash_tile(&mut **self.src.borrow_mut(), tile, self.size)?;
        self.cache.borrow_mut().insert(tile, fetched.data.clone());
        Ok(fetched.data)
    }

    /// Turns a `tlog_tiles` error into ours, preferring the fetch error behind it.
    fn error(&self, e: tlog_tiles::Error) -> TlogError {
        if let Some(err) = self.error.borrow_mut().take() {
            return err;
        }
        TlogError::InvalidProof {
            kind: "tile",
            reason: e.to_string(),
        }
    }
}

impl tlog_tiles::TileReader for TileReaderAdapter<'_> {
    fn height(&self) -> u8 {
        // TILE_HEIGHT is 8.
        8
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.read(t).map_err(|e| {
                    *self.error.borrow_mut() = Some(e);
                    tlog_tiles::Error::InvalidTile
                })
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

/// Checks that `entry` is entry `index` of the tree in `checkpoint`: the RFC 6962 inclusion
/// proof, built from the tiles on the entry's path, leads from the entry's leaf hash to the
/// checkpoint's root. Fetches only the tiles on the path. If it fails, all tiles are fetched
/// ([`verify_tree`]) to say whether the tiles or the entry are wrong.
///
/// (`tlog_tiles`' tile hash reader, like Go's, does not authenticate every child tile it
/// reads, so its hashes are never trusted alone: the final proof check against the root is
/// what decides.)
///
/// # Errors
/// [`TlogError::IndexOutOfRange`], [`TlogError::InclusionFailed`], the errors of
/// [`verify_tree`] if the tiles are wrong, or fetch errors.
pub fn verify_inclusion(
    src: &mut dyn TileSource,
    checkpoint: &Checkpoint,
    index: u64,
    entry: &[u8],
) -> Result<(), TlogError> {
    let size = checkpoint.size;
    check_size(size)?;
    if index >= size {
        return Err(TlogError::IndexOutOfRange { index, size });
    }
    let want = leaf_hash(entry);
    let proof = {
        let adapter = TileReaderAdapter::new(&mut *src, size);
        let reader =
            tlog_tiles::TileHashReader::new(size, tlog_tiles::Hash(checkpoint.root), &adapter);
        match tlog_tiles::prove_record(size, index, &reader) {
            Ok(proof) => Ok(proof.iter().map(|h| h.0).collect::<Vec<Hash>>()),
            Err(e) => Err(adapter.error(e)),
        }
    };
    let proved = match proof {
        Ok(proof) => verify_inclusion_proof(&want, index, size, &proof, &checkpoint.root).is_ok(),
        // Missing or malformed tiles and transport errors are reported as they are.
        Err(e) if e.is_source_failure() => return Err(e),
        Err(_) => false,
    };
    if proved {
        return Ok(());
    }
    // Diagnose: are the tiles wrong (they do not hash to the root), or is it the entry?
    let tree = verify_tree(src, checkpoint)?;
    let stored = tree.leaf_hash(index);
    Err(TlogError::InclusionFailed {
        index,
        size,
        reason: match stored {
            Some(stored) if stored != want => format!(
                "the log's leaf hash at {index} is {}, the entry hashes to {}",
                hash_to_base64(&stored),
                hash_to_base64(&want)
            ),
            _ => "the inclusion proof built from the tiles does not lead to the root".to_owned(),
        },
    })
}

/// Checks that the log only grew between two checkpoints of the same log: `new` is at least as
/// large as `old`, and `old`'s tree is a prefix of `new`'s (RFC 6962 consistency proof built from
/// `new`'s tiles and checked against both roots). If the proof fails, all of `new`'s tiles are
/// fetched ([`verify_tree`]) to tell bad tiles from a real inconsistency.
///
/// # Errors
/// [`TlogError::OriginMismatch`], [`TlogError::RolledBack`], [`TlogError::Forked`],
/// [`TlogError::Inconsistent`], the errors of [`verify_tree`] if `new`'s tiles are wrong, or
/// fetch errors.
pub fn verify_consistency(
    src: &mut dyn TileSource,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<(), TlogError> {
    if old.origin != new.origin {
        return Err(TlogError::OriginMismatch {
            expected: old.origin.clone(),
            found: new.origin.clone(),
        });
    }
    check_size(new.size)?;
    if new.size < old.size {
        return Err(TlogError::RolledBack {
            from: old.size,
            to: new.size,
        });
    }
    if old.size == new.size || old.size == 0 {
        let expected = if old.size == 0 { EMPTY_ROOT } else { new.root };
        if old.root != expected {
            return Err(TlogError::Forked {
                size: old.size,
                first: hash_to_base64(&old.root),
                second: hash_to_base64(&expected),
            });
        }
        return Ok(());
    }
    let proof = {
        let adapter = TileReaderAdapter::new(&mut *src, new.size);
        let reader =
            tlog_tiles::TileHashReader::new(new.size, tlog_tiles::Hash(new.root), &adapter);
        match tlog_tiles::prove_tree(new.size, old.size, &reader) {
            Ok(proof) => Ok(proof.iter().map(|h| h.0).collect::<Vec<Hash>>()),
            Err(e) => Err(adapter.error(e)),
        }
    };
    let proved = match proof {
        Ok(proof) => {
            verify_consistency_proof(old.size, new.size, &proof, &old.root, &new.root).is_ok()
        }
        Err(e) if e.is_source_failure() => return Err(e),
        Err(_) => false,
    };
    if proved {
        return Ok(());
    }
    let tree = verify_tree(src, new)?;
    if tree.root_at(old.size) == Some(old.root) {
        // Cannot happen with sound tiles; report it rather than pass.
        return Err(TlogError::InvalidProof {
            kind: "consistency",
            reason: format!(
                "tiles of size {} prove size {} inconsistent, yet contain its root",
                new.size, old.size
            ),
        });
    }
    Err(TlogError::Inconsistent {
        old_size: old.size,
        new_size: new.size,
    })
}
