//! RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.
//!
//! Hashing: a leaf is `SHA-256(0x00 || entry)`, an interior node `SHA-256(0x01 || left ||
//! right)`, the empty tree `SHA-256("")`. A tree of `n` leaves splits at the largest power of
//! two smaller than `n` (RFC 6962 §2.1), so every tree is a left-to-right sequence of perfect
//! subtrees, one per set bit of `n`.
//!
//! Proofs are generated from a [`NodeSource`], anything that can answer "the hash of the
//! perfect subtree at level `l`, index `i`" (the ledger's stored hashes, a [`MemoryTree`], or
//! tiles fetched from a remote log). Generation reads O(log n) nodes; verification
//! ([`verify_inclusion`], [`verify_consistency`]) is the RFC 9162 §2.1.3.2 / §2.1.4.2
//! algorithm and needs nothing but the proof.

use std::convert::Infallible;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash: a leaf hash, an interior node or a tree head.
///
/// Displayed and serialized as standard base64, as in checkpoints; `Debug` shows hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

/// Why a string or byte slice is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hash: {0}")]
pub struct HashParseError(String);

impl Hash {
    /// Size of a hash in bytes.
    pub const LEN: usize = 32;

    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashParseError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashParseError(format!("expected 32 bytes, found {}", bytes.len())))
    }

    /// Standard base64 (with padding), the encoding of checkpoints and proofs.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard base64 (with padding).
    pub fn from_base64(text: &str) -> Result<Hash, HashParseError> {
        let bytes = BASE64.decode(text).map_err(|e| HashParseError(format!("{text:?} is not base64 ({e})")))?;
        Hash::from_slice(&bytes)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Hash, HashParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(HashParseError(format!("expected 64 hex digits, found {} characters", bytes.len())));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => return Err(HashParseError(format!("{text:?} is not hex"))),
            }
        }
        Ok(Hash(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Hash::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// `SHA-256(0x00 || entry)`: the hash of a leaf (RFC 6962 §2.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly smaller than `n`, for `n >= 2` (RFC 6962's `k`).
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Answers the hash of a perfect subtree: level `level` (0 = leaves), index `index`
/// within that level, covering leaves `[index << level, (index + 1) << level)`.
///
/// Callers only ask for subtrees that lie entirely within the tree size they work on.
pub trait NodeSource {
    /// What can go wrong reading a node (I/O for stored trees, fetches for tiles).
    type Error;
    /// The node's hash.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;
    fn node(&self, level: u8, index: u64) -> Result<Hash, S::Error> {
        (**self).node(level, index)
    }
}

/// `MTH(D[start .. start + len])`, reading one node per perfect aligned piece.
///
/// The ranges that the RFC algorithms produce are always aligned (a power-of-two piece
/// starts at a multiple of its size), so this reads O(log len) nodes; unaligned ranges still
/// hash correctly by recursing to smaller pieces.
pub fn range_hash<S: NodeSource>(source: &S, start: u64, len: u64) -> Result<Hash, S::Error> {
    debug_assert!(len > 0);
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let level = len.trailing_zeros() as u8;
        return source.node(level, start >> level);
    }
    let k = if len.is_power_of_two() { len / 2 } else { split_point(len) };
    let left = range_hash(source, start, k)?;
    let right = range_hash(source, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the first `size` leaves: one node per set bit of `size`, folded from the
/// right.
pub fn root_of<S: NodeSource>(source: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    let mut acc: Option<Hash> = None;
    // Perfect subtrees from the right (smallest) to the left (largest).
    let mut end = size;
    while end > 0 {
        let level = end.trailing_zeros();
        let start = end - (1u64 << level);
        let node = source.node(level as u8, start >> level)?;
        acc = Some(match acc {
            None => node,
            Some(right) => node_hash(&node, &right),
        });
        end = start;
    }
    Ok(acc.unwrap_or_else(empty_root))
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), leaf
/// level first. Requires `index < size`.
pub fn inclusion_path<S: NodeSource>(source: &S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    debug_assert!(index < size);
    let mut path = Vec::with_capacity(64 - size.leading_zeros() as usize);
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(range_hash(source, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_hash(source, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 9162 §2.1.4.1).
/// Requires `old <= new`; empty when `old == new` or `old == 0`.
pub fn consistency_path<S: NodeSource>(source: &S, old: u64, new: u64) -> Result<Vec<Hash>, S::Error> {
    debug_assert!(old <= new);
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut path = Vec::with_capacity(2 * (64 - new.leading_zeros() as usize));
    let (mut start, mut n, mut m, mut whole) = (0u64, new, old, true);
    loop {
        if m == n {
            if !whole {
                path.push(range_hash(source, start, m)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            path.push(range_hash(source, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_hash(source, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// Why a proof does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not `old <= new`.
    #[error("a consistency proof goes from a smaller tree to a larger one, not from size {old} to {new}")]
    SizesOutOfOrder {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its sizes (truncated, padded, or made for
    /// another index or tree size).
    #[error("the proof has {actual} hashes, but a proof for {what} has {expected}")]
    WrongLength {
        /// What the proof claims to prove.
        what: String,
        /// Hashes a valid proof has.
        expected: usize,
        /// Hashes this one has.
        actual: usize,
    },
    /// The proof leads to another root than the one expected.
    #[error("the proof leads to root {computed}, not to the expected {expected}")]
    RootMismatch {
        /// The root the proof must reach.
        expected: Hash,
        /// The root it reaches.
        computed: Hash,
    },
    /// A consistency proof does not reproduce the old tree's root.
    #[error("the proof does not reproduce the old root {expected} (it gives {computed})")]
    OldRootMismatch {
        /// The old root.
        expected: Hash,
        /// What the proof gives.
        computed: Hash,
    },
    /// Two trees of the same size with different roots.
    #[error("trees of the same size {size} have different roots {old} and {new}")]
    SameSizeDifferentRoots {
        /// The size.
        size: u64,
        /// One root.
        old: Hash,
        /// The other.
        new: Hash,
    },
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size` (`index < size`).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof from `old` to `new` (`0 < old < new`).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    let inner = 64 - ((old - 1) ^ (new - 1)).leading_zeros();
    let shift = old.trailing_zeros();
    let border = ((old - 1) >> inner).count_ones();
    let first = if old.is_power_of_two() { 0 } else { 1 };
    // RFC 9162: the inner part below the split minus the levels where `old` is already a
    // complete subtree, plus the border, plus the old subtree's own root when it is not a
    // single perfect tree.
    (inner - shift + border) as usize + first
}

/// The root a leaf's inclusion proof leads to (RFC 9162 §2.1.3.2, without the final compare).
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if path.len() != expected {
        return Err(ProofError::WrongLength {
            what: format!("leaf {index} in a tree of size {size}"),
            expected,
            actual: path.len(),
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            // Unreachable after the length check; kept as the RFC states it.
            return Err(ProofError::WrongLength {
                what: format!("leaf {index} in a tree of size {size}"),
                expected,
                actual: path.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength {
            what: format!("leaf {index} in a tree of size {size}"),
            expected,
            actual: path.len(),
        });
    }
    Ok(r)
}

/// Checks that `leaf` is the leaf at `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf, index, size, path)?;
    if &computed != root {
        return Err(ProofError::RootMismatch { expected: *root, computed });
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    let what = || format!("tree size {old} to {new}");
    if old == new {
        if !path.is_empty() {
            return Err(ProofError::WrongLength { what: what(), expected: 0, actual: path.len() });
        }
        if old_root != new_root {
            return Err(ProofError::SameSizeDifferentRoots { size: old, old: *old_root, new: *new_root });
        }
        return Ok(());
    }
    if old == 0 {
        // Every tree extends the empty tree.
        if !path.is_empty() {
            return Err(ProofError::WrongLength { what: what(), expected: 0, actual: path.len() });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old, new);
    if path.len() != expected {
        return Err(ProofError::WrongLength { what: what(), expected, actual: path.len() });
    }
    let mut nodes: Vec<&Hash> = Vec::with_capacity(path.len() + 1);
    if old.is_power_of_two() {
        nodes.push(old_root);
    }
    nodes.extend(path.iter());
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*nodes[0], *nodes[0]);
    for c in &nodes[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength { what: what(), expected, actual: path.len() });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength { what: what(), expected, actual: path.len() });
    }
    if &fr != old_root {
        return Err(ProofError::OldRootMismatch { expected: *old_root, computed: fr });
    }
    if &sr != new_root {
        return Err(ProofError::RootMismatch { expected: *new_root, computed: sr });
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first (one
/// per set bit of the size). Appending a leaf completes O(1) amortised new nodes, which
/// [`Frontier::push`] reports so they can be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds the frontier of the tree of `size` leaves from stored nodes.
    pub fn from_source<S: NodeSource>(source: &S, size: u64) -> Result<Frontier, S::Error> {
        let mut stack = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size >> level & 1 == 1 {
                stack.push(source.node(level as u8, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, stack })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; `completed(level, index, hash)` is called for the leaf itself (level
    /// 0) and for every interior node it completes, lowest first.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, &Hash)) {
        completed(0, self.size, &leaf);
        let mut hash = leaf;
        let mut level = 0u8;
        let mut index = self.size;
        let mut bits = self.size;
        while bits & 1 == 1 {
            let left = self.stack.pop().expect("a set bit of the size has a subtree on the stack");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            bits >>= 1;
            completed(level, index, &hash);
        }
        self.stack.push(hash);
        self.size += 1;
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// A whole Merkle tree in memory: every level of complete nodes. For tests, tools and
/// clients that rebuild a tree from entries; the ledger itself keeps its tree on disk.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// A tree of the given leaf hashes.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        let levels = &mut self.levels;
        self.frontier.push(leaf, |level, _, hash| {
            let level = usize::from(level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(*hash);
        });
        index
    }

    /// Appends an entry (hashed as a leaf); returns its index.
    pub fn push_entry(&mut self, entry: &[u8]) -> u64 {
        self.push(leaf_hash(entry))
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root of the first `size` leaves; `None` beyond the tree.
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.size()).then(|| infallible(root_of(self, size)))
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        (index < size && size <= self.size()).then(|| infallible(inclusion_path(self, index, size)))
    }

    /// Consistency proof from `old` to `new` leaves.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        (old <= new && new <= self.size()).then(|| infallible(consistency_path(self, old, new)))
    }
}

impl NodeSource for MemoryTree {
    type Error = Infallible;
    fn node(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
        Ok(self.levels[usize::from(level)][index as usize])
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_smaller_power_of_two() {
        for (n, k) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512), (1 << 40, 1 << 39)] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn proof_lengths_match_generated_proofs() {
        let tree = MemoryTree::from_leaf_hashes((0..70u8).map(|i| leaf_hash(&[i])));
        for size in 1..=70 {
            for index in 0..size {
                assert_eq!(inclusion_proof_len(index, size), tree.inclusion_proof(index, size).unwrap().len());
            }
            for old in 1..size {
                assert_eq!(
                    consistency_proof_len(old, size),
                    tree.consistency_proof(old, size).unwrap().len(),
                    "{old} -> {size}"
                );
            }
        }
    }

    #[test]
    fn hex_and_base64_round_trip() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert!(Hash::from_hex("zz").is_err());
        assert!(Hash::from_base64("AAAA").is_err());
    }
}
