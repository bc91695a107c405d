//! Untrusted ledger text (a peer's checkpoint sent for cosigning, a key string, a tile path
//! in a URL): parsing never panics.
#![no_main]

use civitas_ledger::{Note, NoteVerifier, SignedCheckpoint, TilePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Note::parse(text);
    let _ = SignedCheckpoint::parse_unverified(text);
    let _ = TilePath::parse(text);
    if let Ok(key) = text.parse::<NoteVerifier>() {
        // A key that parses prints back to a key that parses to the same thing.
        let again: NoteVerifier = key.to_string().parse().expect("a printed key parses");
        assert_eq!(again.to_string(), key.to_string());
    }
});
