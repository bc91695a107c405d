//! Names from URLs and bodies: a parsed URN is stable and safe as a path segment and store key.
#![no_main]

use civitas_model::Urn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(urn) = Urn::parse(text) {
        let s = urn.as_str();
        assert!(s.starts_with("urn:"));
        assert!(!s.contains('/') && !s.contains('%') && !s.contains(".."), "{s:?}");
        assert_eq!(Urn::parse(s).as_ref(), Ok(&urn));
    }
});
