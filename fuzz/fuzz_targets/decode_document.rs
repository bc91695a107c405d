//! Untrusted request bodies: any bytes must either fail to decode with at least one error,
//! or decode to a document whose canonical form decodes back to the same document.
#![no_main]

use civitas_model::Document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    match Document::decode_many(&value, None) {
        Err(errors) => assert!(!errors.0.is_empty()),
        Ok(docs) => {
            for doc in docs {
                let canonical = doc.to_canonical_bytes();
                let again: serde_json::Value = serde_json::from_slice(&canonical).expect("canonical bytes are JSON");
                let decoded = Document::decode(&again).expect("a canonical document decodes");
                assert_eq!(decoded, doc);
                assert_eq!(decoded.to_canonical_bytes(), canonical);
            }
        }
    }
});
