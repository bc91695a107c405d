//! Names: URNs (`urn:buildings:vienna`) and versions.

use std::cmp::Ordering;
use std::fmt;

/// Longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest version string accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 64;

/// A validated URN naming a document: `urn:<nid>:<nss>`.
///
/// Stricter than RFC 8141 on purpose, because names become URL path segments
/// and store keys: segments separated by `:` are non-empty, made of
/// `A-Z a-z 0-9 . _ - ~ + = @ ! $ ( ) * , ;`, and never `.` or `..`;
/// no `/`, `%`, `?`, `#`, whitespace or control characters. The `urn:` prefix is
/// case-insensitive on input and written in lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Urn(String);

impl Urn {
    /// Parses and validates a URN; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Urn, String> {
        let s = s.trim();
        if s.len() > MAX_NAME_LEN {
            return Err(format!("a name is at most {MAX_NAME_LEN} bytes, this one has {}", s.len()));
        }
        let Some(prefix) = s.get(..4) else {
            return Err(format!("{s:?} is not a URN: names look like `urn:buildings:vienna`"));
        };
        if !prefix.eq_ignore_ascii_case("urn:") {
            return Err(format!("{s:?} is not a URN: names look like `urn:buildings:vienna`"));
        }
        let rest = &s[4..];
        let mut segments = rest.split(':');
        let nid = segments.next().unwrap_or_default();
        if nid.len() < 2 || nid.len() > 32 || !nid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "{s:?}: the namespace after `urn:` must be 2 to 32 letters, digits or `-`, found {nid:?}"
            ));
        }
        let mut nss_segments = 0;
        for seg in segments {
            nss_segments += 1;
            check_segment(seg).map_err(|e| format!("{s:?}: {e}"))?;
        }
        if nss_segments == 0 {
            return Err(format!("{s:?}: a URN needs a name after its namespace, e.g. `urn:{nid}:vienna`"));
        }
        // RFC 8141: the namespace identifier is case-insensitive; write it in lower case.
        let nss = &rest[nid.len()..];
        Ok(Urn(format!("urn:{}{nss}", nid.to_ascii_lowercase())))
    }

    /// The URN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last `:`-separated segment (`blocks` for `urn:buildings:vienna:blocks`).
    pub fn local_name(&self) -> &str {
        self.0.rsplit(':').next().unwrap_or_default()
    }

    /// Whether `self` is directly inside `parent`'s namespace (`parent:<segment>`).
    pub fn is_child_of(&self, parent: &Urn) -> bool {
        self.0
            .strip_prefix(parent.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|seg| !seg.is_empty() && !seg.contains(':'))
    }

    /// `parent:<local>`, validating `local` as one segment.
    pub fn child(&self, local: &str) -> Result<Urn, String> {
        check_segment(local)?;
        Urn::parse(&format!("{}:{local}", self.0))
    }
}

/// Checks one `:`-separated segment of a name.
pub fn check_segment(seg: &str) -> Result<(), String> {
    if seg.is_empty() {
        return Err("empty segment (`::` or a trailing `:`)".into());
    }
    if seg == "." || seg == ".." {
        return Err(format!("segment {seg:?} is not allowed"));
    }
    if let Some(c) = seg.chars().find(|c| !is_segment_char(*c)) {
        return Err(format!(
            "character {c:?} is not allowed in a name (use letters, digits and . _ - ~ + = @ ! $ ( ) * , ;)"
        ));
    }
    Ok(())
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-~+=@!$()*,;".contains(c)
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Urn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Urn::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Urn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Urn::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks a version string: 1 to 64 characters of `A-Z a-z 0-9 . _ + -`.
pub fn check_version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("a version must not be empty".into());
    }
    if v.len() > MAX_VERSION_LEN {
        return Err(format!("a version is at most {MAX_VERSION_LEN} characters"));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c))) {
        return Err(format!("character {c:?} is not allowed in a version (use letters, digits and . _ + -)"));
    }
    Ok(())
}

/// Orders versions the way people read them: dot-separated parts, numeric parts
/// compared as numbers (`1.10` > `1.9`), other parts as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut pa = a.split(['.', '-', '+', '_']);
    let mut pb = b.split(['.', '-', '+', '_']);
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(nx), Ok(ny)) => nx.cmp(&ny),
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_paper_names() {
        assert_eq!(Urn::parse("urn:buildings:vienna").unwrap().as_str(), "urn:buildings:vienna");
        assert_eq!(Urn::parse(" URN:buildings:vienna ").unwrap().as_str(), "urn:buildings:vienna");
        let unit = Urn::parse("urn:buildings:vienna").unwrap();
        let view = Urn::parse("urn:buildings:vienna:blocks").unwrap();
        assert!(view.is_child_of(&unit));
        assert!(!unit.is_child_of(&view));
        assert!(!Urn::parse("urn:buildings:viennax:blocks").unwrap().is_child_of(&unit));
        assert_eq!(view.local_name(), "blocks");
    }

    #[test]
    fn rejects_path_tricks_and_non_urns() {
        for bad in [
            "buildings",
            "urn:",
            "urn:x",
            "urn:buildings",
            "urn:buildings:../etc",
            "urn:buildings:..",
            "urn:buildings:a/b",
            "urn:buildings:a%2f",
            "urn:buildings:a b",
            "urn:buildings::a",
            "urn:buildings:a:",
            "urn:b:a",
            "urn:buildings:a?x",
            "urn:buildings:a#x",
            "urn:buildings:a\u{0}",
        ] {
            assert!(Urn::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Urn::parse(&format!("urn:x1:{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare_versions("2", "10"), Ordering::Less);
        assert!(check_version("1.0").is_ok());
        assert!(check_version("").is_err());
        assert!(check_version("1 0").is_err());
        assert!(check_version("1/0").is_err());
    }
}
