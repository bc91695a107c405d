//! Civitas ledger: the verifiable, append-only record of deals, task executions, migration
//! decisions and audit anchors (the paper's "every task execution and corresponding
//! transaction are permanently recorded"), built the way transparency logs are.
//!
//! - **Entries** ([`Entry`]) are typed JSON (`deal`, `task`, `migration-decision`,
//!   `audit-anchor`, `note`) stored in canonical form; each is a leaf of an RFC 6962 / 9162
//!   Merkle tree (`SHA-256(0x00 || entry)`, nodes `SHA-256(0x01 || l || r)`), see [`merkle`].
//! - **Storage** ([`Ledger`]) is a directory: an append-only file of checksummed records
//!   written by one writer thread with group commit (one fsync per batch, callers await),
//!   plus derived offset and hash files from which proofs and tlog-tiles are served.
//! - **Checkpoints** ([`checkpoint`]) are C2SP signed notes signed with the node's Ed25519
//!   key ([`NodeKey`]); [`proof`] has inclusion and consistency proofs and the offline
//!   verification the CLI uses; [`tiles`] the tlog-tiles paths and a verifying tile reader.
//! - **Witnesses** ([`Witness`]) cosign checkpoints of peer logs (C2SP tlog-cosignature)
//!   only when they are consistent with what they cosigned before, and raise an alarm on a
//!   fork or rollback.
//!
//! What it is not: no HTTP, no CLI, no consensus. The node exposes it
//! (`civitas-node/src/ledger_api.rs`), the CLI reads it, and peers witness each other; trust
//! comes from signatures, proofs and witnesses, not from the server.
//!
//! Invariants:
//! - an append is acknowledged only after its record is fsynced; an acknowledged entry
//!   survives any crash;
//! - the tree the ledger serves always matches its entries: open recomputes every hash from
//!   the entries, repairs derived files, cuts a never-acknowledged torn tail, and refuses to
//!   open if acknowledged data is missing or altered (fewer entries than, or a root different
//!   from, the last signed checkpoint; a damaged record followed by later commits);
//! - the ledger never signs two checkpoints that are not consistent (it only appends);
//! - readers see a prefix: everything below [`Ledger::size`] is on disk and in the tree.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod entry;
mod error;
mod key;
mod ledger;
pub mod merkle;
pub mod note;
pub mod proof;
mod store;
pub mod tiles;
pub mod witness;
mod writer;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use entry::{Entry, EntryError, EntryKind, MAX_ENTRY_BYTES};
pub use error::LedgerError;
pub use key::NodeKey;
pub use ledger::{Ledger, LedgerOptions};
pub use merkle::{Hash, ProofError};
pub use note::{CosignatureSigner, Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};
pub use proof::{ConsistencyProof, InclusionProof, VerifiedEntry, VerifyError, verify_checkpoint, verify_entry};
pub use tiles::{TilePath, TileReader};
pub use witness::{CosignedHead, Witness, WitnessAlarms, WitnessError};
