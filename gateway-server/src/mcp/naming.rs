//! Names the gateway owns: `{backend}__{name}` for tools and prompts.
//!
//! Clients reject tool names outside `[A-Za-z0-9_-]` or longer than 64
//! characters, so a namespaced name that would break either rule — or that
//! collides with one already taken — is made safe deterministically: invalid
//! characters become `_`, and the name is cut and suffixed with a short hash
//! of the backend and the original name. The same inputs always give the same
//! name, on every hub, across restarts.

use sha2::{Digest, Sha256};

/// Separator between namespace parts.
pub const SEP: &str = "__";
/// The longest name clients accept.
pub const MAX_LEN: usize = 64;
const HASH_LEN: usize = 8;

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// True when `name` is already within the client-safe rules.
pub fn is_client_safe(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && name.chars().all(valid_char)
}

/// A short, stable hash of the parts (hex).
fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..HASH_LEN / 2])
}

/// The plain namespaced form, before any shortening: `{prefix}__{name}` with
/// invalid characters replaced.
fn plain(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + SEP.len() + name.len());
    out.push_str(prefix);
    out.push_str(SEP);
    out.extend(name.chars().map(|c| if valid_char(c) { c } else { '_' }));
    out
}

/// The hashed form: the plain form cut so that `_` + hash fits in 64 chars.
fn hashed(prefix: &str, name: &str) -> String {
    let base = plain(prefix, name);
    let keep = MAX_LEN - HASH_LEN - 1;
    // `base` is ASCII after replacement, so byte slicing is on char boundaries.
    let cut = &base[..base.len().min(keep)];
    format!("{cut}_{}", short_hash(&[prefix, name]))
}

/// The exposed name for `name` of backend `prefix` (an agent's servers use
/// `{agent}__{server}` as prefix). `taken` tells whether a candidate is
/// already used by another entry; the hashed form is used then.
pub fn namespaced(prefix: &str, name: &str, taken: impl Fn(&str) -> bool) -> String {
    let p = plain(prefix, name);
    let needs_hash =
        p.len() > MAX_LEN || p.chars().count() != prefix.len() + SEP.len() + name.chars().count() || name.chars().any(|c| !valid_char(c));
    if !needs_hash && !taken(&p) {
        return p;
    }
    hashed(prefix, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_prefixed() {
        assert_eq!(namespaced("fs", "read_file", |_| false), "fs__read_file");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let long = "a".repeat(80);
        let n1 = namespaced("backend", &long, |_| false);
        let n2 = namespaced("backend", &long, |_| false);
        assert_eq!(n1, n2);
        assert_eq!(n1.len(), MAX_LEN);
        assert!(is_client_safe(&n1));
        assert!(n1.starts_with("backend__aaa"));
        // A different original of the same prefix gets a different name.
        let other = namespaced("backend", &format!("{long}b"), |_| false);
        assert_ne!(n1, other);
    }

    #[test]
    fn invalid_characters_are_replaced_and_hashed() {
        let n = namespaced("b", "weird.name/with spaces", |_| false);
        assert!(is_client_safe(&n), "{n}");
        assert!(n.starts_with("b__weird_name_with_spaces_"));
        // `a.b` and `a_b` must not end up with the same exposed name.
        assert_ne!(namespaced("b", "a.b", |_| false), namespaced("b", "a_b", |_| false));
    }

    #[test]
    fn collisions_take_the_hashed_form() {
        let n = namespaced("x", "y", |c| c == "x__y");
        assert_ne!(n, "x__y");
        assert!(n.starts_with("x__y_"));
        assert!(is_client_safe(&n));
    }

    #[test]
    fn unicode_names_stay_within_limits() {
        let n = namespaced("srv", &"é".repeat(70), |_| false);
        assert!(is_client_safe(&n), "{n}");
    }
}
