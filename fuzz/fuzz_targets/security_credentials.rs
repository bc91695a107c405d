//! Untrusted credentials (an `Authorization` header, a bearer JWT, a JWK from an issuer's
//! JWKS): parsing never panics, and a parsed JWK prints back to the same key.
#![no_main]

use civitas_security::jws::{Jws, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = civitas_security::parse_authorization(text);
    if let Ok(jws) = Jws::parse(text) {
        // Verifying against any key never panics either.
        let _ = jws.verify(&PublicKey::Ed25519([0; 32]));
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok((kid, key)) = PublicKey::from_jwk(&value)
    {
        let again = PublicKey::from_jwk(&key.to_jwk(kid.as_deref().unwrap_or(""))).expect("a printed JWK parses");
        assert_eq!(again.1, key);
    }
});
