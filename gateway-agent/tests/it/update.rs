//! Self-update: a signed manifest served over HTTP is accepted, a bad
//! signature or checksum is refused, and a copied binary is replaced.
//!
//! Signing here uses a key pair made by the test, standing in for the
//! release key (the binary only trusts the built-in one).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use gateway_agent::update::{Asset, Manifest, UpdateError, Updater};
use parking_lot::Mutex;
use sha2::Digest as _;

/// A dev-only signer: a fresh key pair, signing a binary like the release process does.
pub struct TestSigner {
    key: SigningKey,
}

impl TestSigner {
    pub fn new() -> Self {
        let seed: [u8; 32] = rand::random();
        Self { key: SigningKey::from_bytes(&seed) }
    }

    pub fn public(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// The asset entry for `binary` served at `url`.
    pub fn asset(&self, binary: &[u8], url: &str) -> Asset {
        let sha = hex::encode(sha2::Sha256::digest(binary));
        let sig = self.key.sign(sha.as_bytes());
        Asset { url: url.into(), sha256: sha, signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()) }
    }
}

struct Served {
    manifest: Mutex<String>,
    binary: Mutex<Vec<u8>>,
}

async fn serve(served: Arc<Served>) -> url::Url {
    let s1 = Arc::clone(&served);
    let s2 = Arc::clone(&served);
    let app = Router::new()
        .route("/agent/releases/manifest.json", get(move || async move { s1.manifest.lock().clone() }))
        .route("/agent/releases/bin", get(move || async move { s2.binary.lock().clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url::Url::parse(&format!("http://{addr}")).unwrap()
}

fn manifest(version: &str, asset: Asset) -> String {
    let m = Manifest { version: version.into(), assets: BTreeMap::from([(gateway_agent::update::target_triple().to_owned(), asset)]) };
    serde_json::to_string(&m).unwrap()
}

#[tokio::test]
async fn a_signed_release_replaces_a_copied_binary_and_bad_ones_are_refused() {
    let signer = TestSigner::new();
    let new_binary = b"#!/bin/sh\necho new version\n".to_vec();
    let asset = signer.asset(&new_binary, "bin");
    let served = Arc::new(Served { manifest: Mutex::new(manifest("9.9.9", asset.clone())), binary: Mutex::new(new_binary.clone()) });
    let hub = serve(Arc::clone(&served)).await;

    // A copy of a binary in a temp dir stands in for the installed agent.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("gateway-agent");
    std::fs::copy(crate::support::agent_bin(), &target).unwrap();

    let updater = Updater::with_key(&hub, signer.public(), "0.1.0");
    let check = updater.check().await.unwrap();
    assert_eq!((check.current.as_str(), check.latest.as_str()), ("0.1.0", "9.9.9"));
    assert_eq!(check.asset.as_ref(), Some(&asset));

    // A bad signature: refused before anything is downloaded or replaced.
    let other = TestSigner::new();
    let forged = Asset { signature: other.asset(&new_binary, "bin").signature, ..asset.clone() };
    assert!(matches!(updater.install(&forged, &target).await, Err(UpdateError::BadSignature)));
    let garbage = Asset { signature: "not base64!".into(), ..asset.clone() };
    assert!(matches!(updater.install(&garbage, &target).await, Err(UpdateError::BadSignature)));
    // A signed checksum that the download does not match: refused, nothing replaced.
    *served.binary.lock() = b"tampered".to_vec();
    let e = updater.install(&asset, &target).await.unwrap_err();
    assert!(matches!(e, UpdateError::BadChecksum { .. }), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), std::fs::read(crate::support::agent_bin()).unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp files left behind");

    // The genuine release goes in, executable.
    *served.binary.lock() = new_binary.clone();
    updater.install(&asset, &target).await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), new_binary);
    #[cfg(unix)]
    {
        let out = std::process::Command::new(&target).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "new version\n");
    }

    // Up to date: nothing to install.
    let same = Updater::with_key(&hub, signer.public(), "9.9.9");
    assert!(same.check().await.unwrap().asset.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_binary_trusts_only_the_built_in_key() {
    // A manifest signed by any other key is refused by `gateway-agent update`.
    let signer = TestSigner::new();
    let asset = signer.asset(b"evil", "bin");
    let served = Arc::new(Served { manifest: Mutex::new(manifest("99.0.0", asset)), binary: Mutex::new(b"evil".to_vec()) });
    let hub = serve(served).await;
    let home = crate::config::Home::new();
    home.write_config(&format!("[agent]\nname = \"alice\"\nhub_url = \"{}\"\n", hub.as_str().trim_end_matches('/')));
    // The binary under test must not be replaced: run a copy.
    let copy = home.dir.path().join("gateway-agent");
    std::fs::copy(crate::support::agent_bin(), &copy).unwrap();
    let mut cmd = tokio::process::Command::new(&copy);
    cmd.env("GATEHOUSE_AGENT_CONFIG", home.config()).env("GATEHOUSE_AGENT_STATE_DIR", home.state()).arg("update");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(crate::support::agent_bin()).unwrap(), "not replaced");

    let mut cmd = tokio::process::Command::new(&copy);
    cmd.env("GATEHOUSE_AGENT_CONFIG", home.config()).env("GATEHOUSE_AGENT_STATE_DIR", home.state()).args(["update", "--check"]);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("99.0.0 is available"), "{}", String::from_utf8_lossy(&out.stdout));
}
