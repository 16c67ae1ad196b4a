//! API keys and agent tokens: generation, shape checks and keyed hashing.
//!
//! A key is a recognisable prefix plus 32 random bytes written as exactly 43
//! base62 characters (`gk_…` for user API keys, `ga_…` for agent tokens).
//! Base62 keeps keys selectable with a double click and safe in headers and
//! shells. Only `hex(HMAC-SHA256(secret, key))` is stored, so a stolen
//! database alone does not let anyone forge or test keys offline.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of user API keys.
pub const API_KEY_PREFIX: &str = "gk_";
/// Prefix of agent tokens.
pub const AGENT_TOKEN_PREFIX: &str = "ga_";
/// Length of the random part of a key.
pub const KEY_BODY_LEN: usize = 43;
/// How many leading characters of a key are shown in listings.
pub const DISPLAY_PREFIX_LEN: usize = 10;
/// Random bytes in a generated secret.
pub const SECRET_LEN: usize = 32;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new user API key: `gk_` + 43 base62 characters.
pub fn generate_api_key() -> String {
    generate(API_KEY_PREFIX)
}

/// A new agent token: `ga_` + 43 base62 characters.
pub fn generate_agent_token() -> String {
    generate(AGENT_TOKEN_PREFIX)
}

fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base62_32(bytes))
}

/// Encodes 32 bytes as exactly 43 base62 digits (62^43 > 2^256), most
/// significant first, zero-padded.
fn base62_32(mut n: [u8; 32]) -> String {
    let mut digits = [0u8; KEY_BODY_LEN];
    for slot in digits.iter_mut().rev() {
        // Long division of the big-endian number by 62.
        let mut rem: u32 = 0;
        for byte in n.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = BASE62[rem as usize];
    }
    // Every byte comes from the ASCII alphabet above.
    String::from_utf8_lossy(&digits).into_owned()
}

/// Whether `token` has the shape of a key with `prefix`, checked before any
/// lookup so garbage never reaches the database.
pub fn is_well_formed(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|body| body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The first characters of a key, safe to display and store in clear.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// Key material for [`hash_key`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw key material.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// 32 fresh random bytes.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the hex form (surrounding whitespace ignored); at least 32 bytes.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "not a hex string".to_owned())?;
        if bytes.len() < SECRET_LEN {
            return Err(format!("too short: {} bytes, need at least {SECRET_LEN}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The hex form, as written to files and settings.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

/// `hex(HMAC-SHA256(secret, key))`: what the store keeps instead of the key.
pub fn hash_key(secret: &Secret, key: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.bytes()).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Reads a secret file, or creates it with a fresh secret (mode 0600) when
/// missing. Creation is race-free: the secret is written to a private
/// temporary file and hard-linked into place, which fails rather than
/// overwrites if another process got there first; then the winner's file is
/// read.
pub fn read_or_create_secret_file(path: &Path) -> Result<Secret, std::io::Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => return parse_secret_file(path, &text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let secret = Secret::generate();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "secret".to_owned());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    write_private(&tmp, format!("{}\n", secret.to_hex()).as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    // Best effort: the temporary name is unique, a leftover is harmless.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            parse_secret_file(path, &text)
        }
        Err(e) => Err(e),
    }
}

fn parse_secret_file(path: &Path, text: &str) -> Result<Secret, std::io::Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "secret file is readable by other users; run chmod 600 on it"
            );
        }
    }
    Secret::from_hex(text).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {why}", path.display())))
}

/// Writes a new file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), std::io::Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_api_key();
        assert!(key.starts_with("gk_"));
        assert_eq!(key.len(), 3 + KEY_BODY_LEN);
        assert!(is_well_formed(&key, API_KEY_PREFIX));
        assert!(!is_well_formed(&key, AGENT_TOKEN_PREFIX));
        let token = generate_agent_token();
        assert!(is_well_formed(&token, AGENT_TOKEN_PREFIX));
        assert_ne!(generate_api_key(), key);
    }

    #[test]
    fn base62_is_fixed_width_and_exact() {
        assert_eq!(base62_32([0; 32]), "0".repeat(43));
        let mut one = [0; 32];
        one[31] = 61;
        assert_eq!(base62_32(one), format!("{}z", "0".repeat(42)));
        one[31] = 62;
        assert_eq!(base62_32(one), format!("{}10", "0".repeat(41)));
        let max = base62_32([0xff; 32]);
        assert_eq!(max.len(), 43);
        // (2^256 - 1) / 62^42 = 60, so the top digit is 'y' and 43 digits
        // are exactly enough.
        assert!(max.starts_with('y'), "{max}");
    }

    #[test]
    fn shape_check_rejects_lookalikes() {
        let body = "a".repeat(KEY_BODY_LEN);
        assert!(is_well_formed(&format!("gk_{body}"), "gk_"));
        assert!(!is_well_formed(&format!("gk_{body}a"), "gk_"));
        assert!(!is_well_formed(&format!("gk_{}-", &body[1..]), "gk_"));
        assert!(!is_well_formed(&format!("GK_{body}"), "gk_"));
        assert!(!is_well_formed("", "gk_"));
    }

    #[test]
    fn hashing_is_keyed_and_deterministic() {
        let a = Secret::new(vec![1; 32]);
        let b = Secret::new(vec![2; 32]);
        let h = hash_key(&a, "gk_x");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_key(&a, "gk_x"));
        assert_ne!(h, hash_key(&b, "gk_x"));
        assert_ne!(h, hash_key(&a, "gk_y"));
        // RFC 4231 test case 2.
        let jefe = Secret::new(b"Jefe".to_vec());
        assert_eq!(hash_key(&jefe, "what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::generate()), "Secret(**redacted**)");
    }

    #[test]
    fn key_prefix_is_ten_chars() {
        assert_eq!(key_prefix("gk_abcdefghijk"), "gk_abcdefg");
        assert_eq!(key_prefix("gk_"), "gk_");
    }

    #[test]
    fn secret_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.hex");
        let first = read_or_create_secret_file(&path).unwrap();
        let second = read_or_create_secret_file(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), first.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_secret_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.hex");
        std::fs::write(&path, "not hex").unwrap();
        let err = read_or_create_secret_file(&path).unwrap_err();
        assert!(err.to_string().contains("s.hex"), "{err}");
        std::fs::write(&path, "abcd").unwrap();
        assert!(read_or_create_secret_file(&path).unwrap_err().to_string().contains("too short"));
    }
}
