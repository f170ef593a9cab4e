//! RFC 6962 Merkle tree hashing and proof checking.
//!
//! It owns the hash functions (leaf `SHA-256(0x00 || entry)`, node `SHA-256(0x01 || l || r)`), the
//! decomposition of a tree into its complete subtrees, and the inclusion/consistency proof
//! checks, which are `tlog_tiles`' ports of Go's sumdb/tlog. It must never see storage, keys,
//! tile paths or the network: it works on hashes only.

use crate::error::TlogError;

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// Size of a [`type@Hash`] in bytes.
pub const HASH_SIZE: usize = 32;

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = tlog_tiles::EMPTY_HASH.0;

/// The RFC 6962 leaf hash of a log entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    tlog_tiles::record_hash(entry).0
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    tlog_tiles::node_hash(tlog_tiles::Hash(*left), tlog_tiles::Hash(*right)).0
}

/// Standard base64 of a hash, as checkpoints and error messages show it.
pub fn hash_to_base64(hash: &Hash) -> String {
    base64_simd::STANDARD.encode_to_string(hash)
}

/// Parses a standard-base64 hash of exactly 32 bytes.
pub fn hash_from_base64(text: &str) -> Option<Hash> {
    let bytes = base64_simd::STANDARD.decode_to_vec(text).ok()?;
    Hash::try_from(bytes.as_slice()).ok()
}

fn to_tlog(proof: &[Hash]) -> Vec<tlog_tiles::Hash> {
    proof.iter().copied().map(tlog_tiles::Hash).collect()
}

/// Checks an RFC 6962 inclusion proof: the leaf hash `leaf` is entry `index` of the tree of size
/// `size` whose root is `root`.
///
/// # Errors
/// [`TlogError::InvalidProof`] if `index >= size` or the proof does not lead to `root`.
pub fn verify_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TlogError> {
    if index >= size {
        return Err(TlogError::InvalidProof {
            kind: "inclusion",
            reason: format!("index {index} is not in a tree of size {size}"),
        });
    }
    tlog_tiles::check_record(
        &to_tlog(proof),
        size,
        tlog_tiles::Hash(*root),
        index,
        tlog_tiles::Hash(*leaf),
    )
    .map_err(|e| TlogError::InvalidProof {
        kind: "inclusion",
        reason: format!("entry {index} in tree size {size}: {e}"),
    })
}

/// Checks an RFC 6962 consistency proof: the tree of size `old_size` with root `old_root` is a
/// prefix of the tree of size `new_size` with root `new_root`.
///
/// As in Go's sumdb/tlog (and the transparency-dev test vectors), `old_size` must be at least 1:
/// a proof from the empty tree proves nothing and is refused.
///
/// # Errors
/// [`TlogError::InvalidProof`] if the sizes are out of order or zero, or the proof fails.
pub fn verify_consistency_proof(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), TlogError> {
    if old_size == 0 || old_size > new_size {
        return Err(TlogError::InvalidProof {
            kind: "consistency",
            reason: format!("sizes {old_size} -> {new_size} (need 1 <= old size <= new size)"),
        });
    }
    tlog_tiles::check_tree(
        &to_tlog(proof),
        new_size,
        tlog_tiles::Hash(*new_root),
        old_size,
        tlog_tiles::Hash(*old_root),
    )
    .map_err(|e| TlogError::InvalidProof {
        kind: "consistency",
        reason: format!("tree size {old_size} -> {new_size}: {e}"),
    })
}

/// The complete subtrees that make up a tree of `size` leaves, left to right, as
/// `(level, index)`: the subtree at `level` and `index` covers leaves
/// `[index << level, (index + 1) << level)`. The root is these hashes folded from the right.
pub(crate) fn complete_subtrees(size: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for level in (0..64u32).rev() {
        let span = 1u64 << level;
        if size & span != 0 {
            out.push((level, offset >> level));
            offset += span;
        }
    }
    out
}

/// Folds complete subtree hashes (left to right) into the tree root: `h = node(left, h)` from the
/// right. The empty list gives [`EMPTY_ROOT`].
pub(crate) fn fold_root(subtrees: &[Hash]) -> Hash {
    let mut iter = subtrees.iter().rev();
    let Some(last) = iter.next() else {
        return EMPTY_ROOT;
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// Every complete node of a tree, level by level, built from its leaf hashes.
#[derive(Debug, Clone)]
pub(crate) struct Levels {
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    pub(crate) fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last()
            && below.len() >= 2
        {
            let above: Vec<Hash> = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Levels { levels }
    }

    /// Number of leaves.
    pub(crate) fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The complete node at `level`, `index`, if the tree has it.
    pub(crate) fn node(&self, level: u32, index: u64) -> Option<&Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?)
    }

    /// The root of the prefix tree of `size` leaves, if `size` is at most [`Levels::len`].
    pub(crate) fn root_at(&self, size: u64) -> Option<Hash> {
        if size > self.len() {
            return None;
        }
        let hashes = complete_subtrees(size)
            .into_iter()
            .map(|(level, index)| self.node(level, index).copied())
            .collect::<Option<Vec<Hash>>>()?;
        Some(fold_root(&hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_subtrees_of_small_sizes() {
        assert!(complete_subtrees(0).is_empty());
        assert_eq!(complete_subtrees(1), vec![(0, 0)]);
        assert_eq!(complete_subtrees(6), vec![(2, 0), (1, 2)]);
        assert_eq!(complete_subtrees(7), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(complete_subtrees(u64::MAX).len(), 64);
    }

    #[test]
    fn levels_root_matches_recursive_definition() {
        fn mth(leaves: &[Hash]) -> Hash {
            match leaves.len() {
                0 => EMPTY_ROOT,
                1 => leaves[0],
                n => {
                    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
                }
            }
        }
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let levels = Levels::from_leaves(leaves.clone());
        for size in 0..=40u64 {
            assert_eq!(levels.root_at(size), Some(mth(&leaves[..size as usize])));
        }
        assert_eq!(levels.root_at(41), None);
    }
}
