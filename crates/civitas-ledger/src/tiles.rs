//! The `c2sp.org/tlog-tiles` read API: tile paths, and a client that rebuilds roots and
//! proofs from tiles so anyone can mirror and verify the log without trusting the server.
//!
//! A tile at tile level `L`, index `N` holds up to 256 consecutive hashes of tree level
//! `8·L` (leaf hashes at `L = 0`), the perfect subtrees of 256^L leaves each, starting at
//! hash `256·N`. Full tiles hold 256 hashes (8,192 bytes); the rightmost tile of a level is
//! *partial*, served at `tile/<L>/<N>.p/<W>` with its width `W` (1..=255). Entry bundles
//! (`tile/entries/<N>[.p/<W>]`) hold the entries of a level-0 tile, each prefixed by its
//! length as a big-endian `u16`. `N` is written in groups of three digits, all but the last
//! prefixed by `x`: index 1234067 is `x001/x234/067`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use crate::merkle::{Hash, NodeSource, leaf_hash, node_hash};

/// Hashes per full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// A tile of hashes: `tile/<level>/<index>[.p/<width>]`.
    Hashes {
        /// Tile level (tree level `8 · level`).
        level: u8,
        /// Tile index within the level.
        index: u64,
        /// Number of hashes, 1..=256 (256: a full tile).
        width: u16,
    },
    /// An entry bundle: `tile/entries/<index>[.p/<width>]`.
    Entries {
        /// Bundle index (the level-0 tile index).
        index: u64,
        /// Number of entries, 1..=256.
        width: u16,
    },
}

/// Why a tile path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tile path {path:?}: {detail}")]
pub struct TilePathError {
    /// The path.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

impl TilePath {
    /// Parses a path relative to the log prefix (`tile/0/x001/234.p/17`); a leading `/` is
    /// allowed. Only the canonical spelling of each tile is accepted.
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        let err = |detail: &str| TilePathError { path: path.to_string(), detail: detail.to_string() };
        let rest =
            path.trim_start_matches('/').strip_prefix("tile/").ok_or_else(|| err("does not start with tile/"))?;
        let mut segments: Vec<&str> = rest.split('/').collect();
        if segments.len() < 2 {
            return Err(err("expected tile/<level>/<index>"));
        }
        let level_segment = segments.remove(0);
        // A partial tile ends with `<last index group>.p/<width>`.
        let mut width: u16 = 256;
        if segments.len() >= 2 && segments[segments.len() - 2].ends_with(".p") {
            let w = segments.pop().expect("length checked");
            if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) || w.len() > 3 {
                return Err(err("the width of a partial tile is a decimal number 1..255"));
            }
            width = w.parse().map_err(|_| err("bad width"))?;
            if width == 0 || width > 255 {
                return Err(err("the width of a partial tile is 1..255"));
            }
            let last = segments.last_mut().expect("length checked");
            *last = last.strip_suffix(".p").expect("checked");
        }
        let mut index: u64 = 0;
        for (i, group) in segments.iter().enumerate() {
            let digits = if i + 1 < segments.len() {
                group.strip_prefix('x').ok_or_else(|| err("every index group but the last starts with x"))?
            } else {
                group
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("index groups are three decimal digits"));
            }
            let value: u64 = digits.parse().map_err(|_| err("bad index group"))?;
            index = index.checked_mul(1000).and_then(|x| x.checked_add(value)).ok_or_else(|| err("index too large"))?;
        }
        let tile = if level_segment == "entries" {
            TilePath::Entries { index, width }
        } else {
            let canonical = !level_segment.is_empty()
                && level_segment.bytes().all(|b| b.is_ascii_digit())
                && (level_segment == "0" || !level_segment.starts_with('0'))
                && level_segment.len() <= 2;
            let level: u8 = level_segment.parse().ok().filter(|_| canonical).ok_or_else(|| err("bad level"))?;
            if level > 63 {
                return Err(err("the level is 0..63"));
            }
            TilePath::Hashes { level, index, width }
        };
        // One spelling per tile: no superfluous leading `x000/` groups.
        if tile.to_string() != format!("tile/{rest}") {
            return Err(err("not the canonical spelling of this tile"));
        }
        Ok(tile)
    }

    /// The width: number of hashes or entries.
    pub fn width(&self) -> u16 {
        match self {
            TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => *width,
        }
    }

    /// Whether the tile is full (256 wide).
    pub fn is_full(&self) -> bool {
        self.width() == 256
    }
}

/// Writes a tile index as `x001/x234/067`.
fn write_index(f: &mut fmt::Formatter<'_>, index: u64) -> fmt::Result {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    for (i, group) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            write!(f, "x{group:03}/")?;
        } else {
            write!(f, "{group:03}")?;
        }
    }
    Ok(())
}

impl fmt::Display for TilePath {
    /// The path relative to the log prefix, e.g. `tile/1/x001/234.p/17`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (level, index, width) = match *self {
            TilePath::Hashes { level, index, width } => (Some(level), index, width),
            TilePath::Entries { index, width } => (None, index, width),
        };
        match level {
            Some(l) => write!(f, "tile/{l}/")?,
            None => f.write_str("tile/entries/")?,
        }
        write_index(f, index)?;
        if width != 256 {
            write!(f, ".p/{width}")?;
        }
        Ok(())
    }
}

/// The tile (level, index, width) that holds the hash at tree level `8·level`, position
/// `hash_index`, in a tree of `size` leaves.
pub fn tile_for(level: u8, hash_index: u64, size: u64) -> TilePath {
    let index = hash_index / TILE_WIDTH;
    let hashes_at_level = if u32::from(level) * 8 >= 64 { 0 } else { size >> (u32::from(level) * 8) };
    // Zero when the hash is beyond the tree: no such tile exists.
    let width = hashes_at_level.saturating_sub(index * TILE_WIDTH).min(TILE_WIDTH) as u16;
    TilePath::Hashes { level, index, width }
}

/// Splits an entry bundle into its entries (each `u16` big-endian length + bytes).
pub fn parse_entries_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TileError::Malformed("an entry bundle ends inside a length prefix".into()));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err(TileError::Malformed("an entry bundle ends inside an entry".into()));
        }
        entries.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    Ok(entries)
}

/// Checks an entry bundle against the level-0 tile of the same index and width: every
/// entry must hash to the corresponding leaf hash.
pub fn verify_entries_bundle(bundle: &[u8], level0_tile: &[u8]) -> Result<(), TileError> {
    let entries = parse_entries_bundle(bundle)?;
    if entries.len() * 32 != level0_tile.len() {
        return Err(TileError::Malformed(format!(
            "the bundle has {} entries, its tile {} hashes",
            entries.len(),
            level0_tile.len() / 32
        )));
    }
    for (i, (entry, hash)) in entries.iter().zip(level0_tile.chunks_exact(32)).enumerate() {
        if leaf_hash(entry).as_bytes()[..] != hash[..] {
            return Err(TileError::Mismatch(format!("entry {i} of the bundle does not hash to its leaf hash")));
        }
    }
    Ok(())
}

/// Why tiles could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// Fetching a tile failed.
    #[error("fetching {path}: {source}")]
    Fetch {
        /// The tile.
        path: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A tile or bundle has the wrong shape.
    #[error("malformed tile: {0}")]
    Malformed(String),
    /// Content does not match what it must hash to.
    #[error("{0}")]
    Mismatch(String),
}

/// A [`NodeSource`] over tiles fetched from a log, for the tree of a verified checkpoint
/// (size and root). It trusts nothing but that checkpoint: before any node is answered, the
/// rightmost (partial) tile of every level is fetched and the root recomputed from them;
/// every full tile is checked against the hash of it held by the tile above. A tile that
/// does not check is a [`TileError::Mismatch`], so proofs built from a `TileReader` (with
/// [`crate::merkle::inclusion_path`] and friends) are as good as the checkpoint.
pub struct TileReader<F> {
    size: u64,
    root: Hash,
    fetch: RefCell<F>,
    /// Verified tiles only.
    cache: RefCell<HashMap<TilePath, Vec<u8>>>,
    edge_verified: std::cell::Cell<bool>,
}

impl<F, E> TileReader<F>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A reader of the tree of `size` leaves whose root is `root` (both from a checkpoint
    /// whose signature was verified), fetching tiles with `fetch`.
    pub fn new(size: u64, root: Hash, fetch: F) -> TileReader<F> {
        TileReader {
            size,
            root,
            fetch: RefCell::new(fetch),
            cache: RefCell::new(HashMap::new()),
            edge_verified: std::cell::Cell::new(false),
        }
    }

    /// The tree size this reader works on.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fetches a tile and checks its length; nothing else.
    fn fetch_raw(&self, path: TilePath) -> Result<Vec<u8>, TileError> {
        let bytes = (self.fetch.borrow_mut())(&path)
            .map_err(|e| TileError::Fetch { path: path.to_string(), source: e.into() })?;
        if bytes.len() != usize::from(path.width()) * 32 {
            return Err(TileError::Malformed(format!(
                "{path} has {} bytes, expected {}",
                bytes.len(),
                usize::from(path.width()) * 32
            )));
        }
        Ok(bytes)
    }

    /// Recomputes the root from the rightmost tile of every level (which together hold
    /// exactly the perfect subtrees the root is made of) and compares it to the checkpoint's.
    fn verify_edge(&self) -> Result<(), TileError> {
        if self.edge_verified.get() {
            return Ok(());
        }
        let fetched: RefCell<HashMap<TilePath, Vec<u8>>> = RefCell::new(HashMap::new());
        let raw = RawTiles { size: self.size, fetched: &fetched, fetch: &|p| self.fetch_raw(p) };
        let computed = crate::merkle::root_of(&raw, self.size)?;
        if computed != self.root {
            return Err(TileError::Mismatch(format!(
                "the rightmost tiles give root {computed}, the checkpoint says {}: a tile was altered",
                self.root
            )));
        }
        self.cache.borrow_mut().extend(fetched.into_inner());
        self.edge_verified.set(true);
        Ok(())
    }

    /// A verified tile.
    fn tile(&self, path: TilePath) -> Result<Vec<u8>, TileError> {
        self.verify_edge()?;
        if let Some(t) = self.cache.borrow().get(&path) {
            return Ok(t.clone());
        }
        let TilePath::Hashes { level, index, width: 256 } = path else {
            // Every partial tile of this tree size was fetched and verified with the edge.
            return Err(TileError::Malformed(format!("{path} is not a tile of the tree of size {}", self.size)));
        };
        let bytes = self.fetch_raw(path)?;
        let hashes: Vec<Hash> = bytes.chunks_exact(32).map(|c| Hash::from_slice(c).expect("32 bytes")).collect();
        let parent = self.tile(tile_for(level + 1, index, self.size))?;
        let at = (index % TILE_WIDTH) as usize * 32;
        if range_hash_flat(&hashes).0[..] != parent[at..at + 32] {
            return Err(TileError::Mismatch(format!(
                "{path} does not hash to its entry in the tile above: it was altered"
            )));
        }
        self.cache.borrow_mut().insert(path, bytes.clone());
        Ok(bytes)
    }
}

/// The node at (`level`, `index`) from the tile holding it.
fn node_from_tile(tile: &[u8], level: u8, index: u64) -> Option<Hash> {
    let sub = level % TILE_HEIGHT;
    let first = index << sub;
    let offset = (first % TILE_WIDTH) as usize;
    let hashes: Vec<Hash> = tile
        .chunks_exact(32)
        .skip(offset)
        .take(1usize << sub)
        .map(|c| Hash::from_slice(c).expect("32-byte chunk"))
        .collect();
    (hashes.len() == 1usize << sub).then(|| range_hash_flat(&hashes))
}

fn tile_of_node(level: u8, index: u64, size: u64) -> TilePath {
    tile_for(level / TILE_HEIGHT, index << (level % TILE_HEIGHT), size)
}

/// Unverified tiles, used only to recompute the root during edge verification.
struct RawTiles<'a> {
    size: u64,
    fetched: &'a RefCell<HashMap<TilePath, Vec<u8>>>,
    fetch: &'a dyn Fn(TilePath) -> Result<Vec<u8>, TileError>,
}

impl NodeSource for RawTiles<'_> {
    type Error = TileError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, TileError> {
        let path = tile_of_node(level, index, self.size);
        if path.width() == 0 {
            return Err(TileError::Malformed(format!(
                "node ({level}, {index}) is beyond the tree of size {}",
                self.size
            )));
        }
        if !self.fetched.borrow().contains_key(&path) {
            let bytes = (self.fetch)(path)?;
            self.fetched.borrow_mut().insert(path, bytes);
        }
        let fetched = self.fetched.borrow();
        node_from_tile(&fetched[&path], level, index)
            .ok_or_else(|| TileError::Malformed(format!("{path} is too narrow for node ({level}, {index})")))
    }
}

impl<F, E> NodeSource for TileReader<F>
where
    F: FnMut(&TilePath) -> Result<Vec<u8>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = TileError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, TileError> {
        let path = tile_of_node(level, index, self.size);
        if path.width() == 0 {
            return Err(TileError::Malformed(format!(
                "node ({level}, {index}) is beyond the tree of size {}",
                self.size
            )));
        }
        let tile = self.tile(path)?;
        node_from_tile(&tile, level, index)
            .ok_or_else(|| TileError::Malformed(format!("{path} is too narrow for node ({level}, {index})")))
    }
}

/// The root of a perfect tree over `hashes` (a power-of-two count), bottom-up.
fn range_hash_flat(hashes: &[Hash]) -> Hash {
    if hashes.len() == 1 {
        return hashes[0];
    }
    let mut level: Vec<Hash> = hashes.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        let t = TilePath::Hashes { level: 0, index: 1234067, width: 256 };
        assert_eq!(t.to_string(), "tile/0/x001/x234/067");
        assert_eq!(TilePath::parse("tile/0/x001/x234/067").unwrap(), t);
        let p = TilePath::Hashes { level: 1, index: 5, width: 17 };
        assert_eq!(p.to_string(), "tile/1/005.p/17");
        assert_eq!(TilePath::parse("/tile/1/005.p/17").unwrap(), p);
        let e = TilePath::Entries { index: 1000, width: 3 };
        assert_eq!(e.to_string(), "tile/entries/x001/000.p/3");
        assert_eq!(TilePath::parse("tile/entries/x001/000.p/3").unwrap(), e);
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for p in [
            "tile/0/5",
            "tile/0/x000/005",
            "tile/00/005",
            "tile/0/005.p/256",
            "tile/0/005.p/0",
            "tile/0/005.p/017",
            "tile/64/000",
            "tile/0/001/002",
            "tile/0/005.p",
            "tile/x/005",
            "tiles/0/005",
            "tile/0/005/",
        ] {
            assert!(TilePath::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn a_tree_of_70000_has_the_tiles_the_spec_lists() {
        // 273 full level-0 tiles + one of width 112; one full level-1 tile + one of width 17;
        // one level-2 tile of width 1.
        assert_eq!(tile_for(0, 273 * 256, 70_000), TilePath::Hashes { level: 0, index: 273, width: 112 });
        assert_eq!(tile_for(0, 0, 70_000), TilePath::Hashes { level: 0, index: 0, width: 256 });
        assert_eq!(tile_for(1, 256, 70_000), TilePath::Hashes { level: 1, index: 1, width: 17 });
        assert_eq!(tile_for(2, 0, 70_000), TilePath::Hashes { level: 2, index: 0, width: 1 });
    }
}
