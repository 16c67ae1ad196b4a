//! Self-update from the hub, signature-verified.
//!
//! The hub serves `GET {hub}/agent/releases/manifest.json`:
//!
//! ```json
//! { "version": "1.2.3",
//!   "assets": { "x86_64-unknown-linux-gnu": { "url": "...", "sha256": "<hex>", "signature": "<base64>" } } }
//! ```
//!
//! `signature` is an ed25519 signature, by the release key, over the asset's
//! lowercase sha256 hex string. The agent checks it against
//! [`RELEASE_PUBLIC_KEY`], built into the binary, *before* downloading; then
//! the download's checksum; only then does it replace its own binary,
//! atomically (`self-replace`: a rename next to the running executable). A
//! hub (or anyone between) cannot push a binary the release key did not sign.
//! The key is a constant: tests pass their own to [`Updater::with_key`],
//! which the binary never calls.
//!
//! Under a service (`GATEHOUSE_AGENT_SERVICE=1`, set by the unit) the agent
//! exits with [`crate::exit::UPDATED`] (75) after replacing itself, so the
//! service manager starts the new binary.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The release signing key (ed25519, public half). Release builds are signed
/// with its private half, which lives only with the release process.
pub const RELEASE_PUBLIC_KEY: [u8; 32] = [
    0xd2, 0x87, 0x31, 0xb5, 0xa4, 0x81, 0xaa, 0x4f, 0x7b, 0xee, 0x41, 0x11, 0xf2, 0x78, 0x90, 0x93, 0x1f, 0x06, 0xfb, 0x5a, 0x47, 0xcf,
    0x53, 0xb7, 0x52, 0xf1, 0x9a, 0xfb, 0xc3, 0x9d, 0x92, 0x27,
];

/// Path of the manifest on the hub.
pub const MANIFEST_PATH: &str = "/agent/releases/manifest.json";

/// Largest binary accepted.
const MAX_ASSET_BYTES: u64 = 512 * 1024 * 1024;

/// The release manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: String,
    pub assets: BTreeMap<String, Asset>,
}

/// One platform's binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Absolute, or relative to the manifest's URL.
    pub url: String,
    /// Lowercase hex sha256 of the binary.
    pub sha256: String,
    /// Base64 ed25519 signature over `sha256` (the hex string's bytes).
    pub signature: String,
}

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("cannot fetch {url}: {why}")]
    Fetch { url: String, why: String },
    #[error("the release manifest is malformed: {0}")]
    BadManifest(String),
    #[error("release {version} has no build for {target}")]
    NoAsset { version: String, target: String },
    #[error("the release signature does not verify: refusing to install it")]
    BadSignature,
    #[error("the download's checksum {got} does not match the signed {expected}: refusing to install it")]
    BadChecksum { expected: String, got: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// The platform's target triple, as the manifest names builds.
pub fn target_triple() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH, cfg!(target_env = "musl")) {
        ("linux", "x86_64", false) => "x86_64-unknown-linux-gnu",
        ("linux", "x86_64", true) => "x86_64-unknown-linux-musl",
        ("linux", "aarch64", false) => "aarch64-unknown-linux-gnu",
        ("linux", "aarch64", true) => "aarch64-unknown-linux-musl",
        ("macos", "x86_64", _) => "x86_64-apple-darwin",
        ("macos", "aarch64", _) => "aarch64-apple-darwin",
        ("windows", "x86_64", _) => "x86_64-pc-windows-msvc",
        ("windows", "aarch64", _) => "aarch64-pc-windows-msvc",
        _ => "unknown",
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64, bool)> {
    let v = v.trim().trim_start_matches('v');
    let (core, pre) = match v.split_once(['-', '+']) {
        Some((c, _)) => (c, true),
        None => (v, false),
    };
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let (a, b, c) = (it.next()??, it.next().flatten().unwrap_or(0), it.next().flatten().unwrap_or(0));
    Some((a, b, c, !pre))
}

/// True when `candidate` is a later version than `current` (x.y.z; a
/// pre-release sorts before its release).
pub fn is_newer(candidate: &str, current: &str) -> bool {
    match (parse_version(candidate), parse_version(current)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub current: String,
    pub latest: String,
    /// This platform's build of `latest`, when it is newer.
    pub asset: Option<Asset>,
}

/// Fetches, verifies and installs releases from one hub.
#[derive(Debug, Clone)]
pub struct Updater {
    client: reqwest::Client,
    manifest_url: url::Url,
    key: VerifyingKey,
    current: String,
}

impl Updater {
    /// An updater for `hub` that trusts only the built-in release key.
    pub fn new(hub: &url::Url) -> Result<Self, UpdateError> {
        let key = VerifyingKey::from_bytes(&RELEASE_PUBLIC_KEY).map_err(|_| UpdateError::BadSignature)?;
        Ok(Self::with_key(hub, key, crate::VERSION))
    }

    /// An updater trusting `key` and believing it runs `current` (tests).
    pub fn with_key(hub: &url::Url, key: VerifyingKey, current: &str) -> Self {
        let mut manifest_url = hub.clone();
        manifest_url.set_path(&format!("{}{MANIFEST_PATH}", hub.path().trim_end_matches('/')));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(15))
            .user_agent(format!("gateway-agent/{}", crate::VERSION))
            .build()
            .unwrap_or_default();
        Self { client, manifest_url, key, current: current.to_owned() }
    }

    /// Reads the manifest and picks this platform's build when it is newer.
    pub async fn check(&self) -> Result<Check, UpdateError> {
        let url = self.manifest_url.to_string();
        let fail = |why: String| UpdateError::Fetch { url: url.clone(), why };
        let resp = self.client.get(self.manifest_url.clone()).send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let text = resp.text().await.map_err(|e| fail(e.to_string()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| UpdateError::BadManifest(e.to_string()))?;
        if parse_version(&manifest.version).is_none() {
            return Err(UpdateError::BadManifest(format!("version {:?} is not x.y.z", manifest.version)));
        }
        let newer = is_newer(&manifest.version, &self.current);
        let asset = if newer {
            Some(
                manifest
                    .assets
                    .get(target_triple())
                    .cloned()
                    .ok_or_else(|| UpdateError::NoAsset { version: manifest.version.clone(), target: target_triple().to_owned() })?,
            )
        } else {
            None
        };
        Ok(Check { current: self.current.clone(), latest: manifest.version, asset })
    }

    /// Checks the asset's signature against the trusted key.
    pub fn verify(&self, asset: &Asset) -> Result<(), UpdateError> {
        verify_signature(&self.key, asset)
    }

    /// Verifies, downloads (checking the checksum) and puts the new binary in
    /// place of `target` atomically.
    pub async fn install(&self, asset: &Asset, target: &Path) -> Result<(), UpdateError> {
        self.verify(asset)?;
        let dir = target.parent().unwrap_or(Path::new("."));
        let tmp = self.download(asset, dir).await?;
        let result = replace_binary(&tmp, target);
        let _ = std::fs::remove_file(&tmp);
        result
    }

    async fn download(&self, asset: &Asset, dir: &Path) -> Result<PathBuf, UpdateError> {
        let url = self.manifest_url.join(&asset.url).map_err(|e| UpdateError::BadManifest(format!("asset url: {e}")))?;
        let fail = |why: String| UpdateError::Fetch { url: url.to_string(), why };
        let resp = self.client.get(url.clone()).send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let tmp = dir.join(format!(".gateway-agent.update.{}", std::process::id()));
        let io_err = |what: &str| {
            let what = format!("{what} {}", tmp.display());
            move |source| UpdateError::Io { what, source }
        };
        let mut file = std::fs::File::create(&tmp).map_err(io_err("cannot create"))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(e.to_string()))?;
            size += chunk.len() as u64;
            if size > MAX_ASSET_BYTES {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail("the download is too large".into()));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io_err("cannot write"))?;
        }
        file.sync_all().map_err(io_err("cannot write"))?;
        drop(file);
        let got = hex::encode(hasher.finalize());
        if !got.eq_ignore_ascii_case(asset.sha256.trim()) {
            let _ = std::fs::remove_file(&tmp);
            return Err(UpdateError::BadChecksum { expected: asset.sha256.clone(), got });
        }
        Ok(tmp)
    }
}

/// Checks `asset.signature` over `asset.sha256` with `key`.
pub fn verify_signature(key: &VerifyingKey, asset: &Asset) -> Result<(), UpdateError> {
    let sha = asset.sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UpdateError::BadManifest("sha256 must be 64 hex digits".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(asset.signature.trim()).map_err(|_| UpdateError::BadSignature)?;
    let sig = Signature::from_slice(&bytes).map_err(|_| UpdateError::BadSignature)?;
    key.verify(sha.as_bytes(), &sig).map_err(|_| UpdateError::BadSignature)
}

/// Puts `new` in place of `target` atomically, executable. The running
/// executable goes through `self-replace` (which also copes with Windows'
/// locked executables); any other path is a rename in its directory.
pub fn replace_binary(new: &Path, target: &Path) -> Result<(), UpdateError> {
    let io_err = |what: String| move |source| UpdateError::Io { what, source };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(new, std::fs::Permissions::from_mode(0o755)).map_err(io_err(format!("cannot chmod {}", new.display())))?;
    }
    let current = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let target_c = target.canonicalize().unwrap_or_else(|_| target.to_path_buf());
    if current.as_deref() == Some(target_c.as_path()) {
        self_replace::self_replace(new).map_err(io_err("replacing the running binary failed".into()))
    } else {
        std::fs::rename(new, target).map_err(io_err(format!("cannot replace {}", target.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(is_newer("0.10.0", "0.9.9"));
        assert!(is_newer("1.0.0", "1.0.0-rc.1"));
        assert!(!is_newer("1.0.0-rc.1", "1.0.0"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("garbage", "0.1.0"));
        assert!(is_newer("v2", "1.9.9"));
    }

    #[test]
    fn the_built_in_key_is_a_valid_point() {
        assert!(VerifyingKey::from_bytes(&RELEASE_PUBLIC_KEY).is_ok());
        assert_ne!(target_triple(), "unknown");
    }
}
