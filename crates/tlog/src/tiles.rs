//! C2SP tlog-tiles addressing and encodings.
//!
//! It owns the tile paths served under `/log/` (`tile/<L>/<N>[.p/<W>]`,
//! `tile/entries/<N>[.p/<W>]`, with `<N>` in the `x001/x234/067` encoding), the set of tiles a
//! tree size requires, and the entry bundle encoding (big-endian uint16 length + bytes per
//! entry). Tiles have height 8: a full tile holds 256 hashes (8,192 bytes) or 256 entries.
//! It must never see storage, keys or the network.
//!
//! (`tlog_tiles` 0.2.0 formats Go-sumdb paths, `tile/8/<L>/<N>`, so the C2SP paths are here.)

use std::fmt;

use crate::error::TlogError;
use crate::merkle::HASH_SIZE;

/// Tile height: each tile spans 8 tree levels.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub const FULL_TILE_WIDTH: u16 = 256;
/// The largest entry an entry bundle can carry.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;
/// Highest tile level a path may name (C2SP: 0 to 63).
pub const MAX_TILE_LEVEL: u8 = 63;

/// One tile resource: a hash tile or an entry bundle, full (`partial_width: None`) or partial
/// (`Some(1..=255)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileRef {
    /// `tile/<level>/<index>[.p/<width>]`: 32-byte hashes at tree level `8 * level`.
    Hash {
        level: u8,
        index: u64,
        partial_width: Option<u16>,
    },
    /// `tile/entries/<index>[.p/<width>]`: the entries of level-0 tile `index`.
    Entries {
        index: u64,
        partial_width: Option<u16>,
    },
}

impl TileRef {
    /// The tile's index within its level (`<N>`).
    pub fn index(&self) -> u64 {
        match *self {
            TileRef::Hash { index, .. } | TileRef::Entries { index, .. } => index,
        }
    }

    /// `Some(W)` for a partial tile, `None` for a full one.
    pub fn partial_width(&self) -> Option<u16> {
        match *self {
            TileRef::Hash { partial_width, .. } | TileRef::Entries { partial_width, .. } => {
                partial_width
            }
        }
    }

    /// Number of hashes (or entries) in the tile: 256 for a full tile.
    pub fn width(&self) -> u16 {
        self.partial_width().unwrap_or(FULL_TILE_WIDTH)
    }

    /// The same tile, full.
    pub fn full(&self) -> TileRef {
        match *self {
            TileRef::Hash { level, index, .. } => TileRef::Hash {
                level,
                index,
                partial_width: None,
            },
            TileRef::Entries { index, .. } => TileRef::Entries {
                index,
                partial_width: None,
            },
        }
    }

    /// The C2SP path, relative to the log prefix: see [`tile_path`].
    pub fn path(&self) -> String {
        tile_path(self)
    }
}

impl fmt::Display for TileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&tile_path(self))
    }
}

/// Encodes a tile index as C2SP path elements: 1234067 -> `x001/x234/067`.
pub fn encode_tile_index(index: u64) -> String {
    let mut parts = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        parts.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// The C2SP path of a tile relative to the log prefix, e.g. `tile/0/x001/234.p/17` or
/// `tile/entries/000`.
pub fn tile_path(tile: &TileRef) -> String {
    let suffix = match tile.partial_width() {
        Some(w) => format!(".p/{w}"),
        None => String::new(),
    };
    match *tile {
        TileRef::Hash { level, index, .. } => {
            format!("tile/{level}/{}{suffix}", encode_tile_index(index))
        }
        TileRef::Entries { index, .. } => {
            format!("tile/entries/{}{suffix}", encode_tile_index(index))
        }
    }
}

/// A decimal number with no sign and no leading zeros.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > 20
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// Parses a C2SP tile path relative to the log prefix (what follows `/log/`):
/// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`. Only the canonical encoding is accepted
/// (no leading zeros in `<L>` and `<W>`, `<W>` in 1..=255, `<N>` in 3-digit groups with all but the
/// last prefixed by `x` and no leading `x000` group), so one tile has exactly one path.
///
/// # Errors
/// [`TlogError::BadTilePath`] naming what is wrong.
pub fn parse_tile_path(path: &str) -> Result<TileRef, TlogError> {
    let bad = |reason: &'static str| TlogError::BadTilePath {
        path: path.chars().take(120).collect(),
        reason,
    };
    if path.len() > 100 {
        return Err(bad("too long"));
    }
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| bad("must start with tile/"))?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    if parts.len() < 2 {
        return Err(bad("missing tile index"));
    }
    let kind = parts.remove(0);

    // The `.p/<W>` suffix: the second-to-last element ends in ".p".
    let mut partial_width = None;
    if parts.len() >= 2 {
        let at = parts.len() - 2;
        if let Some(stem) = parts[at].strip_suffix(".p") {
            let w = parts
                .last()
                .and_then(|w| parse_decimal(w))
                .ok_or_else(|| bad("partial width is not a decimal number"))?;
            if !(1..u64::from(FULL_TILE_WIDTH)).contains(&w) {
                return Err(bad("partial width must be 1..=255"));
            }
            partial_width = Some(u16::try_from(w).map_err(|_| bad("partial width too large"))?);
            parts.pop();
            parts[at] = stem;
        }
    }

    let last = parts.len() - 1;
    let mut index = 0u64;
    for (i, group) in parts.iter().enumerate() {
        let digits = if i < last {
            group
                .strip_prefix('x')
                .ok_or_else(|| bad("index groups before the last must start with x"))?
        } else {
            group
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("index groups must be three digits"));
        }
        let value: u64 = digits.parse().map_err(|_| bad("index is not a number"))?;
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or_else(|| bad("index too large"))?;
    }
    if encode_tile_index(index) != parts.join("/") {
        return Err(bad("index is not in canonical form"));
    }

    if kind == "entries" {
        return Ok(TileRef::Entries {
            index,
            partial_width,
        });
    }
    let level =
        parse_decimal(kind).ok_or_else(|| bad("level is not entries or a decimal number"))?;
    if level > u64::from(MAX_TILE_LEVEL) {
        return Err(bad("level must be 0..=63"));
    }
    Ok(TileRef::Hash {
        level: u8::try_from(level).map_err(|_| bad("level must be 0..=63"))?,
        index,
        partial_width,
    })
}

/// Number of complete nodes at tile level `level` (tree level `8 * level`) in a tree of `size`.
pub(crate) fn nodes_at_tile_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * TILE_HEIGHT)
        .unwrap_or(0)
}

/// The tiles covering `count` items at one level: full tiles, then a partial one if any remain.
/// Lazy, so an absurd (untrusted) size costs nothing until tiles actually arrive.
fn tiles_covering(
    count: u64,
    make: impl Fn(u64, Option<u16>) -> TileRef + Copy,
) -> impl Iterator<Item = TileRef> {
    let width = u64::from(FULL_TILE_WIDTH);
    let full = count / width;
    // count % 256 < 256, so the conversion cannot fail.
    let rest = u16::try_from(count % width).ok().filter(|w| *w > 0);
    (0..full)
        .map(move |index| make(index, None))
        .chain(rest.map(|w| make(full, Some(w))))
}

/// The hash tiles of tile level `level` for a tree of `size`, in order (C2SP: full tiles, then
/// the partial tile of width `floor(size / 256^level) mod 256` if that is not zero).
pub fn hash_tiles_at_level(size: u64, level: u8) -> impl Iterator<Item = TileRef> {
    tiles_covering(
        nodes_at_tile_level(size, level),
        move |index, partial_width| TileRef::Hash {
            level,
            index,
            partial_width,
        },
    )
}

/// Every hash tile a tree of `size` consists of, level 0 first.
pub fn hash_tiles_for_size(size: u64) -> impl Iterator<Item = TileRef> {
    (0..=MAX_TILE_LEVEL)
        .take_while(move |level| nodes_at_tile_level(size, *level) > 0)
        .flat_map(move |level| hash_tiles_at_level(size, level))
}

/// The entry bundles of a tree of `size`, in order.
pub fn entry_bundles_for_size(size: u64) -> impl Iterator<Item = TileRef> {
    tiles_covering(size, |index, partial_width| TileRef::Entries {
        index,
        partial_width,
    })
}

/// Encodes entries as a C2SP entry bundle: each as big-endian uint16 length, then its bytes.
///
/// # Errors
/// [`TlogError::EntryTooLarge`] for an entry over 65535 bytes.
pub fn encode_entry_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len())
            .map_err(|_| TlogError::EntryTooLarge { len: entry.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits a C2SP entry bundle into its entries. Returns a reason if it is truncated.
pub fn decode_entry_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return Err(format!("entry {} has a truncated length prefix", out.len()));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(format!(
                "entry {} claims {len} bytes but only {} remain",
                out.len(),
                tail.len()
            ));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    Ok(out)
}

/// Splits hash tile bytes into hashes; `None` if the length is not a multiple of 32.
pub(crate) fn split_hashes(data: &[u8]) -> Option<Vec<[u8; HASH_SIZE]>> {
    if !data.len().is_multiple_of(HASH_SIZE) {
        return None;
    }
    data.chunks_exact(HASH_SIZE)
        .map(|c| <[u8; HASH_SIZE]>::try_from(c).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let cases = [
            (
                "tile/0/000",
                TileRef::Hash {
                    level: 0,
                    index: 0,
                    partial_width: None,
                },
            ),
            (
                "tile/1/000.p/2",
                TileRef::Hash {
                    level: 1,
                    index: 0,
                    partial_width: Some(2),
                },
            ),
            (
                "tile/63/x001/x234/067.p/255",
                TileRef::Hash {
                    level: 63,
                    index: 1_234_067,
                    partial_width: Some(255),
                },
            ),
            (
                "tile/entries/x001/000",
                TileRef::Entries {
                    index: 1000,
                    partial_width: None,
                },
            ),
            (
                "tile/entries/002.p/88",
                TileRef::Entries {
                    index: 2,
                    partial_width: Some(88),
                },
            ),
        ];
        for (path, tile) in cases {
            assert_eq!(parse_tile_path(path).ok(), Some(tile), "{path}");
            assert_eq!(tile_path(&tile), path);
        }
        let max = TileRef::Hash {
            level: 0,
            index: u64::MAX,
            partial_width: None,
        };
        assert_eq!(parse_tile_path(&max.path()).ok(), Some(max));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for path in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tile/0/0",
            "tile/0/1",
            "tile/0/0000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x1/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/01",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000/",
            "tile/data/000",
            "tile/entries/000.p/300",
            "tile/0/x001/x234/067.p/5/6",
            "tile/0/x99999999999999999999/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/abc",
            "tile/0/0a0",
            "tile/0/000.x/5",
            "tile/0/000.p/5.p/5",
        ] {
            assert!(parse_tile_path(path).is_err(), "{path:?} must be refused");
        }
    }

    #[test]
    fn bundle_round_trip_and_truncation() -> Result<(), TlogError> {
        let entries: [&[u8]; 3] = [b"", b"a", &[7u8; 300]];
        let bundle = encode_entry_bundle(entries)?;
        assert_eq!(decode_entry_bundle(&bundle).ok(), Some(entries.to_vec()));
        assert!(decode_entry_bundle(&bundle[..bundle.len() - 1]).is_err());
        assert!(decode_entry_bundle(&[0]).is_err());
        assert!(encode_entry_bundle([&[0u8; 65536][..]]).is_err());
        Ok(())
    }
}
