//! Table definitions and the on-disk encoding of data entries.

use redb::{Database, ReadableTable, TableDefinition};

use crate::kv::{KvEntry, Revision};

/// Key bytes -> [`encode_entry`] of the entry.
pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("civitas_kv_data");

/// Store-wide counters, keyed by the `*_KEY` names below.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("civitas_kv_meta");

/// `(revision, sequence within the revision)` -> `(key, new value or None for
/// a delete)`: the change log that serves watch history. The sequence keeps
/// several changes of one transaction apart and in the order they were made.
pub(super) const LOG: TableDefinition<LogKey, LogValue> = TableDefinition::new("civitas_kv_log");

/// Key of the change log: `(revision, sequence within the revision)`.
pub(super) type LogKey = (u64, u32);
/// Value of the change log: `(key, new value or None for a delete)`.
pub(super) type LogValue = (&'static [u8], Option<&'static [u8]>);

/// Revision of the last committed change.
pub(super) const REVISION_KEY: &str = "revision";
/// Every log revision up to and including this one is compacted (logically
/// gone, even while its entries still wait to be physically removed).
pub(super) const COMPACTED_KEY: &str = "compacted_through";
/// Layout version of this file, so a future incompatible layout is refused
/// instead of misread.
const FORMAT_KEY: &str = "format_version";
const FORMAT_VERSION: u64 = 1;

/// Bytes in front of the value in a data entry: create and mod revision.
const ENTRY_HEADER: usize = 16;

/// Encodes a data entry as `create_revision (u64 LE) | mod_revision (u64 LE) | value`.
pub(super) fn encode_entry(value: &[u8], create_revision: Revision, mod_revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRY_HEADER + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// The `(create_revision, mod_revision)` of an encoded entry, without copying its value.
pub(super) fn decode_revisions(bytes: &[u8]) -> Result<(Revision, Revision), String> {
    let header =
        bytes.get(..ENTRY_HEADER).ok_or_else(|| format!("data entry of {} bytes is truncated", bytes.len()))?;
    let (create, modified) = header.split_at(8);
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("split at 8 of a 16-byte header"));
    Ok((word(create), word(modified)))
}

/// Decodes an entry written by [`encode_entry`].
pub(super) fn decode_entry(bytes: &[u8]) -> Result<KvEntry, String> {
    let (create_revision, mod_revision) = decode_revisions(bytes)?;
    Ok(KvEntry { value: bytes[ENTRY_HEADER..].to_vec(), create_revision, mod_revision })
}

/// Reads a counter from the meta table; an absent counter is `0`.
pub(super) fn read_meta(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, redb::StorageError> {
    Ok(meta.get(key)?.map_or(0, |guard| guard.value()))
}

/// Creates the tables (read transactions cannot open a table that does not
/// exist yet), checks the layout version, and returns the current revision
/// and the compaction point.
pub(super) fn initialize(db: &Database) -> Result<(Revision, Revision), String> {
    let wtx = db.begin_write().map_err(|e| e.to_string())?;
    let state = {
        let mut meta = wtx.open_table(META).map_err(|e| e.to_string())?;
        wtx.open_table(DATA).map_err(|e| e.to_string())?;
        wtx.open_table(LOG).map_err(|e| e.to_string())?;
        let format = meta.get(FORMAT_KEY).map_err(|e| e.to_string())?.map(|guard| guard.value());
        match format {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(|e| e.to_string())?;
            }
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "unsupported catalog layout version {other} (this build reads version {FORMAT_VERSION})"
                ));
            }
        }
        let revision = read_meta(&meta, REVISION_KEY).map_err(|e| e.to_string())?;
        let compacted = read_meta(&meta, COMPACTED_KEY).map_err(|e| e.to_string())?;
        (revision, compacted)
    };
    wtx.commit().map_err(|e| e.to_string())?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let bytes = encode_entry(b"hello", 3, 7);
        assert_eq!(decode_revisions(&bytes), Ok((3, 7)));
        assert_eq!(decode_entry(&bytes), Ok(KvEntry { value: b"hello".to_vec(), create_revision: 3, mod_revision: 7 }));
        assert!(decode_entry(&bytes[..10]).is_err());
    }
}
