//! The catalog's key layout in the KV store.
//!
//! ```text
//! doc/{collection}/{name}                         current version, canonical JSON-LD
//! ver/{collection}/{name}/{version}               every version still readable
//! ref/{target collection}/{target}/{source collection}/{source}   reverse reference index
//! guard/{collection}/{name}                       bumped when a new reference to it appears
//! ```
//! Names are URNs and never contain `/`, so `/` separates key parts unambiguously.

use civitas_model::{Kind, Urn};

/// Prefix of every current document.
pub const DOC_PREFIX: &str = "doc/";

/// `doc/{collection}/{name}`
pub fn doc(kind: Kind, name: &Urn) -> Vec<u8> {
    format!("doc/{}/{}", kind.collection(), name).into_bytes()
}

/// `doc/{collection}/`
pub fn doc_prefix(kind: Kind) -> Vec<u8> {
    format!("doc/{}/", kind.collection()).into_bytes()
}

/// `ver/{collection}/{name}/{version}`
pub fn version(kind: Kind, name: &Urn, version: &str) -> Vec<u8> {
    format!("ver/{}/{}/{}", kind.collection(), name, version).into_bytes()
}

/// `ver/{collection}/{name}/`
pub fn versions_prefix(kind: Kind, name: &Urn) -> Vec<u8> {
    format!("ver/{}/{}/", kind.collection(), name).into_bytes()
}

/// `ref/{target collection}/{target}/{source collection}/{source}`
pub fn reference(target: Kind, target_name: &Urn, source: Kind, source_name: &Urn) -> Vec<u8> {
    format!("ref/{}/{}/{}/{}", target.collection(), target_name, source.collection(), source_name).into_bytes()
}

/// `ref/{target collection}/{target}/`: everything that refers to the target.
pub fn referrers_prefix(target: Kind, target_name: &Urn) -> Vec<u8> {
    format!("ref/{}/{}/", target.collection(), target_name).into_bytes()
}

/// `guard/{collection}/{name}`
pub fn guard(kind: Kind, name: &Urn) -> Vec<u8> {
    format!("guard/{}/{}", kind.collection(), name).into_bytes()
}

/// Splits `{collection}/{name}` (the tail of a `doc/` or `ref/` key) into kind and name.
pub fn parse_kind_name(s: &str) -> Option<(Kind, Urn)> {
    let (collection, name) = s.split_once('/')?;
    let kind = civitas_model::Kind::ALL.into_iter().find(|k| k.collection() == collection)?;
    Some((kind, Urn::parse(name).ok()?))
}

/// Parses a `doc/{collection}/{name}` key.
pub fn parse_doc_key(key: &[u8]) -> Option<(Kind, Urn)> {
    let s = std::str::from_utf8(key).ok()?;
    parse_kind_name(s.strip_prefix(DOC_PREFIX)?)
}

/// Parses the source half of a `ref/…/{source collection}/{source}` key, given its prefix.
pub fn parse_referrer(key: &[u8], prefix: &[u8]) -> Option<(Kind, Urn)> {
    let tail = std::str::from_utf8(key.strip_prefix(prefix)?).ok()?;
    parse_kind_name(tail)
}
