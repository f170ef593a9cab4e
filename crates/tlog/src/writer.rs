//! The writer: obhut's transparency log, stored durably in one directory.
//!
//! It owns the log's storage, appending entries, the tree hashes, serving tiles and entry bundles
//! in the C2SP layout, and signing checkpoints with the log key. It must never see the network,
//! tenants' data or any other key than the log's own signing seed; it trusts nothing it reads
//! back from disk beyond "what this code wrote" and reports anything else as corrupt.
//!
//! # Storage layout (format `obhut-tlog-1`)
//!
//! One SQLite database, `<dir>/tlog.sqlite3` ([`DB_FILE`]), in WAL mode with
//! `synchronous=FULL`, so each append is one fsynced transaction: after a crash the log is at
//! the size of the last committed append, never in between.
//!
//! - `meta(key TEXT PRIMARY KEY, value TEXT)`: `format` = `obhut-tlog-1`, `origin`, `vkey`.
//! - `entries(idx INTEGER PRIMARY KEY, data BLOB)`: entry `idx` (0-based) as appended.
//! - `hashes(level INTEGER, idx INTEGER, hash BLOB, PRIMARY KEY (level, idx))`: every complete
//!   RFC 6962 node; `level` 0 holds leaf hashes (`hashes(0, i)` is `SHA-256(0x00 || entry i)`),
//!   `level` k the node over entries `[idx * 2^k, (idx + 1) * 2^k)`. Hash tile `L` is read from
//!   `level = 8 * L`, so tiles are served without recomputation.
//!
//! A test can tamper with an entry (`UPDATE entries SET data = ... WHERE idx = ?`) or a hash
//! (`UPDATE hashes SET hash = ... WHERE level = 0 AND idx = ?`); the verifier then fails with
//! [`TlogError::EntryMismatch`] or [`TlogError::RootMismatch`] respectively.
//!
//! All methods block (SQLite and fsync); async callers should use `spawn_blocking`.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::TlogError;
use crate::merkle::{HASH_SIZE, Hash, complete_subtrees, fold_root, leaf_hash, node_hash};
use crate::note::{Checkpoint, NoteSigner};
use crate::tiles::{
    FULL_TILE_WIDTH, MAX_ENTRY_SIZE, TILE_HEIGHT, TileRef, encode_entry_bundle,
    nodes_at_tile_level, parse_tile_path,
};
use crate::verify::TileSource;

/// The database file inside the log directory.
pub const DB_FILE: &str = "tlog.sqlite3";

const FORMAT: &str = "obhut-tlog-1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
";

/// A C2SP tlog-tiles log stored in a directory. Thread-safe: all methods take `&self`.
pub struct Log {
    dir: PathBuf,
    origin: String,
    signer: NoteSigner,
    vkey: String,
    state: Mutex<State>,
}

struct State {
    conn: Connection,
    size: u64,
    /// The complete subtrees of the current tree, left to right: `(level, hash)`.
    frontier: Vec<(u32, Hash)>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("vkey", &self.vkey)
            .finish_non_exhaustive()
    }
}

fn sql_index(value: u64) -> Result<i64, TlogError> {
    i64::try_from(value)
        .map_err(|_| TlogError::Corrupt(format!("index {value} beyond SQLite range")))
}

fn to_hash(bytes: &[u8], what: &str) -> Result<Hash, TlogError> {
    Hash::try_from(bytes).map_err(|_| {
        TlogError::Corrupt(format!("{what} is {} bytes, not {HASH_SIZE}", bytes.len()))
    })
}

fn fsync_dir(dir: &Path) -> Result<(), TlogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TlogError::Io {
            action: "fsync directory",
            path: dir.display().to_string(),
            source,
        })
}

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if absent. The log key
    /// is the Ed25519 key whose private key is `signing_seed`; its name is `origin`, which is
    /// also the checkpoint origin line.
    ///
    /// # Errors
    /// [`TlogError::BadOrigin`]; [`TlogError::OriginChanged`] or [`TlogError::KeyChanged`] if
    /// `dir` holds a log with another origin or key; storage errors; [`TlogError::Corrupt`] if
    /// the stored hashes do not cover the stored entries.
    pub fn open(dir: &Path, origin: &str, signing_seed: [u8; 32]) -> Result<Log, TlogError> {
        let signer = NoteSigner::from_seed(origin, &signing_seed)?;
        let vkey = signer.verifier_key();
        std::fs::create_dir_all(dir).map_err(|source| TlogError::Io {
            action: "create directory",
            path: dir.display().to_string(),
            source,
        })?;
        let mut conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            let get = |key: &str| -> Result<Option<String>, TlogError> {
                Ok(tx
                    .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()?)
            };
            let shown = dir.display().to_string();
            match get("format")? {
                None => {
                    for (key, value) in [("format", FORMAT), ("origin", origin), ("vkey", &vkey)] {
                        tx.execute(
                            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                            [key, value],
                        )?;
                    }
                }
                Some(format) if format == FORMAT => {
                    let stored = get("origin")?.unwrap_or_default();
                    if stored != origin {
                        return Err(TlogError::OriginChanged {
                            dir: shown,
                            stored,
                            requested: origin.to_owned(),
                        });
                    }
                    let stored = get("vkey")?.unwrap_or_default();
                    if stored != vkey {
                        return Err(TlogError::KeyChanged {
                            dir: shown,
                            stored,
                            requested: vkey,
                        });
                    }
                }
                Some(other) => {
                    return Err(TlogError::Corrupt(format!(
                        "{shown}: unknown log format {other:?}"
                    )));
                }
            }
            tx.commit()?;
        }
        fsync_dir(dir)?;

        let size = Self::load_size(&conn)?;
        let frontier = Self::load_frontier(&conn, size)?;
        Ok(Log {
            dir: dir.to_owned(),
            origin: origin.to_owned(),
            signer,
            vkey,
            state: Mutex::new(State {
                conn,
                size,
                frontier,
            }),
        })
    }

    fn load_size(conn: &Connection) -> Result<u64, TlogError> {
        let max_entry: Option<i64> =
            conn.query_row("SELECT MAX(idx) FROM entries", [], |r| r.get(0))?;
        let max_leaf: Option<i64> =
            conn.query_row("SELECT MAX(idx) FROM hashes WHERE level = 0", [], |r| {
                r.get(0)
            })?;
        if max_entry != max_leaf {
            return Err(TlogError::Corrupt(format!(
                "last entry index {max_entry:?} but last leaf hash index {max_leaf:?}"
            )));
        }
        match max_entry {
            None => Ok(0),
            Some(last) => u64::try_from(last)
                .ok()
                .and_then(|l| l.checked_add(1))
                .ok_or_else(|| TlogError::Corrupt(format!("entry index {last}"))),
        }
    }

    fn load_frontier(conn: &Connection, size: u64) -> Result<Vec<(u32, Hash)>, TlogError> {
        let mut stmt = conn.prepare("SELECT hash FROM hashes WHERE level = ?1 AND idx = ?2")?;
        complete_subtrees(size)
            .into_iter()
            .map(|(level, index)| {
                let bytes: Option<Vec<u8>> = stmt
                    .query_row(params![level, sql_index(index)?], |r| r.get(0))
                    .optional()?;
                let bytes = bytes.ok_or_else(|| {
                    TlogError::Corrupt(format!("missing hash at level {level} index {index}"))
                })?;
                Ok((level, to_hash(&bytes, "stored hash")?))
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state changes only by plain assignments after a committed transaction, so a
        // panicking holder cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SQLite database file (see the module docs for its tables).
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The origin line, which is also the key name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's verifier key, `<origin>+<hex key id>+<base64(0x01 || Ed25519 public key)>`.
    pub fn verifier_key(&self) -> String {
        self.vkey.clone()
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.lock().size
    }

    /// The RFC 6962 root hash of the current tree.
    pub fn root(&self) -> Hash {
        let state = self.lock();
        Self::root_of(&state)
    }

    fn root_of(state: &State) -> Hash {
        let hashes: Vec<Hash> = state.frontier.iter().map(|(_, h)| *h).collect();
        fold_root(&hashes)
    }

    /// Appends one entry and returns its index. Durable (fsynced) when this returns.
    ///
    /// # Errors
    /// [`TlogError::EntryTooLarge`] over 65535 bytes; storage errors (the log is then unchanged).
    pub fn append(&self, entry: &[u8]) -> Result<u64, TlogError> {
        self.append_all(&[entry]).map(|range| range.start)
    }

    /// Appends entries in one transaction and returns their index range. Durable when this
    /// returns; all or none of them are appended.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn append_batch(&self, entries: &[Vec<u8>]) -> Result<Range<u64>, TlogError> {
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        self.append_all(&refs)
    }

    fn append_all(&self, entries: &[&[u8]]) -> Result<Range<u64>, TlogError> {
        if let Some(big) = entries.iter().find(|e| e.len() > MAX_ENTRY_SIZE) {
            return Err(TlogError::EntryTooLarge { len: big.len() });
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        let start = state.size;
        let mut size = state.size;
        let mut frontier = state.frontier.clone();
        let tx = state
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put_entry =
                tx.prepare_cached("INSERT INTO entries (idx, data) VALUES (?1, ?2)")?;
            let mut put_hash =
                tx.prepare_cached("INSERT INTO hashes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
            for entry in entries {
                let index = size;
                let leaf = leaf_hash(entry);
                put_entry.execute(params![sql_index(index)?, entry])?;
                put_hash.execute(params![0u32, sql_index(index)?, &leaf[..]])?;
                frontier.push((0, leaf));
                // Merge equal-height subtrees on the right edge: each is a new complete node.
                while let [.., (left_level, left), (right_level, right)] = frontier[..] {
                    if left_level != right_level {
                        break;
                    }
                    let level = left_level + 1;
                    let node = node_hash(&left, &right);
                    frontier.truncate(frontier.len() - 2);
                    frontier.push((level, node));
                    put_hash.execute(params![level, sql_index(index >> level)?, &node[..]])?;
                }
                size = size
                    .checked_add(1)
                    .ok_or_else(|| TlogError::Corrupt("log size overflow".to_owned()))?;
            }
        }
        tx.commit()?;
        state.size = size;
        state.frontier = frontier;
        Ok(start..size)
    }

    /// Entry `index` as appended.
    ///
    /// # Errors
    /// [`TlogError::IndexOutOfRange`], storage errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, TlogError> {
        let state = self.lock();
        if index >= state.size {
            return Err(TlogError::IndexOutOfRange {
                index,
                size: state.size,
            });
        }
        state
            .conn
            .query_row(
                "SELECT data FROM entries WHERE idx = ?1",
                [sql_index(index)?],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| TlogError::Corrupt(format!("entry {index} is missing")))
    }

    /// The current checkpoint as a C2SP signed note signed by the log key:
    /// `<origin>\n<size>\n<base64 root>\n\n— <origin> <base64(key id || signature)>\n`.
    /// Ed25519 is deterministic, so one size always gives the same note.
    ///
    /// # Errors
    /// Only if the origin cannot be note text (refused by [`Log::open`] already).
    /// Signs `text` (which must end in a newline) as a signed note with the log's key: for
    /// statements the log's operator attests, such as residency reports, that readers verify
    /// with the same verifier key as checkpoints. The text must not look like a checkpoint
    /// (callers start it with their own first line).
    ///
    /// # Errors
    /// [`TlogError`] when the text is not a valid note body.
    pub fn sign_note(&self, text: &str) -> Result<String, TlogError> {
        self.signer.sign(text)
    }

    pub fn checkpoint(&self) -> Result<String, TlogError> {
        let checkpoint = self.current();
        self.signer.sign_checkpoint(&checkpoint)
    }

    /// The current (unsigned) checkpoint.
    pub fn current(&self) -> Checkpoint {
        let state = self.lock();
        Checkpoint {
            origin: self.origin.clone(),
            size: state.size,
            root: Self::root_of(&state),
        }
    }

    /// The items `[start, start + width)` of a tile that exists at `count` items, or `None`.
    fn tile_range(
        count: u64,
        index: u64,
        partial_width: Option<u16>,
    ) -> Result<Option<Range<u64>>, TlogError> {
        let width = match partial_width {
            None => FULL_TILE_WIDTH,
            Some(w) if (1..FULL_TILE_WIDTH).contains(&w) => w,
            Some(w) => return Err(TlogError::BadTileWidth(w)),
        };
        let Some(start) = index.checked_mul(u64::from(FULL_TILE_WIDTH)) else {
            return Ok(None);
        };
        let Some(end) = start.checked_add(u64::from(width)) else {
            return Ok(None);
        };
        Ok((end <= count).then_some(start..end))
    }

    /// Hash tile `level`/`index`: the 32-byte hashes at tree level `8 * level`, 256 for a full
    /// tile or `partial_width` (1..=255). `None` if the tile does not exist at the current size:
    /// a full tile only once all its 256 hashes exist; a partial tile of width `W` whenever its
    /// `W` hashes exist (so partial tiles of older checkpoints stay available).
    ///
    /// # Errors
    /// [`TlogError::BadTileWidth`], storage errors, [`TlogError::Corrupt`].
    pub fn tile(
        &self,
        level: u8,
        index: u64,
        partial_width: Option<u16>,
    ) -> Result<Option<Vec<u8>>, TlogError> {
        let state = self.lock();
        let count = nodes_at_tile_level(state.size, level);
        let Some(range) = Self::tile_range(count, index, partial_width)? else {
            return Ok(None);
        };
        let tree_level = u32::from(level) * TILE_HEIGHT;
        let mut stmt = state.conn.prepare_cached(
            "SELECT hash FROM hashes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
        )?;
        let mut out = Vec::with_capacity((range.end - range.start) as usize * HASH_SIZE);
        let mut rows = stmt.query(params![
            tree_level,
            sql_index(range.start)?,
            sql_index(range.end)?
        ])?;
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            out.extend_from_slice(&to_hash(&bytes, "stored hash")?);
            n += 1;
        }
        if n != range.end - range.start {
            return Err(TlogError::Corrupt(format!(
                "hash tile {}/{index}: {n} of {} hashes stored",
                level,
                range.end - range.start
            )));
        }
        Ok(Some(out))
    }

    /// Entry bundle `index`: entries `[index * 256, index * 256 + width)`, each as big-endian
    /// uint16 length + bytes. `None` if the bundle does not exist at the current size (same rule
    /// as [`Log::tile`]).
    ///
    /// # Errors
    /// [`TlogError::BadTileWidth`], storage errors, [`TlogError::Corrupt`].
    pub fn entry_bundle(
        &self,
        index: u64,
        partial_width: Option<u16>,
    ) -> Result<Option<Vec<u8>>, TlogError> {
        let state = self.lock();
        let Some(range) = Self::tile_range(state.size, index, partial_width)? else {
            return Ok(None);
        };
        let mut stmt = state
            .conn
            .prepare_cached("SELECT data FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?;
        let entries = stmt
            .query_map(
                params![sql_index(range.start)?, sql_index(range.end)?],
                |r| r.get::<_, Vec<u8>>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if entries.len() as u64 != range.end - range.start {
            return Err(TlogError::Corrupt(format!(
                "entry bundle {index}: {} of {} entries stored",
                entries.len(),
                range.end - range.start
            )));
        }
        encode_entry_bundle(entries.iter().map(Vec::as_slice)).map(Some)
    }

    /// Serves a path relative to the log prefix (what follows `/log/`): `checkpoint`, a hash
    /// tile or an entry bundle. `None` for a tile that does not exist at the current size.
    ///
    /// # Errors
    /// [`TlogError::BadTilePath`] for any other path (serve it as 404 or 400), storage errors.
    pub fn read_path(&self, path: &str) -> Result<Option<Vec<u8>>, TlogError> {
        if path == "checkpoint" {
            return self.checkpoint().map(|c| Some(c.into_bytes()));
        }
        match parse_tile_path(path)? {
            TileRef::Hash {
                level,
                index,
                partial_width,
            } => self.tile(level, index, partial_width),
            TileRef::Entries {
                index,
                partial_width,
            } => self.entry_bundle(index, partial_width),
        }
    }
}

impl TileSource for Log {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, TlogError> {
        self.read_path(path)
    }
}

impl TileSource for &Log {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, TlogError> {
        self.read_path(path)
    }
}
