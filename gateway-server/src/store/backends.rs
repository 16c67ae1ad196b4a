//! MCP backends added at run time (table `backends`), with their secrets
//! encrypted at rest.
//!
//! `config` holds the JSON form of a `[[backends]]` entry
//! ([`BackendConfig`]). Header and environment values commonly carry
//! credentials, so each one is sealed with AES-256-GCM before it is written:
//! `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), with the backend name, the
//! field and the key as associated data so a value cannot be moved to
//! another slot. The key is derived from the hub's key-hashing secret
//! ([`crate::auth::load_secret`]) with a keyed HMAC under a fixed label, so
//! every hub sharing the store (and its secret) can read them and a copy of
//! the database alone cannot.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SubsecRound, Utc};
use rand::RngCore;

use super::{Pool, Store, StoreError, execute};
use crate::auth::Secret;
use crate::config::BackendConfig;

/// Marks an encrypted value and its format version.
const SEALED_PREFIX: &str = "enc:v1:";
/// Label the encryption key is derived under (changing it orphans every stored value).
const KEY_LABEL: &str = "gatehouse/backend-secrets/v1";
const NONCE_LEN: usize = 12;

/// Seals and opens backend secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretCipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(**redacted**)")
    }
}

impl SecretCipher {
    /// The cipher whose key is derived from the key-hashing `secret`.
    pub fn new(secret: &Secret) -> Self {
        // hash_key is HMAC-SHA256(secret, label): a PRF output, fit as a key.
        let hex_key = crate::auth::hash_key(secret, KEY_LABEL);
        let mut key = [0u8; 32];
        // HMAC-SHA256 gives exactly 32 bytes, written as 64 hex digits.
        let _ = hex::decode_to_slice(hex_key.as_bytes(), &mut key);
        Self { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    /// Encrypts `value` bound to `aad`.
    pub fn seal(&self, value: &str, aad: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: aad.as_bytes() })
            .map_err(|_| StoreError::Corrupt("cannot encrypt a backend secret".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    /// Decrypts what [`SecretCipher::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<String, StoreError> {
        // The message never includes the value, sealed or not.
        let bad = || StoreError::Corrupt(format!("cannot decrypt {aad} (was the key-hashing secret changed?)"));
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(bad)?;
        let raw = B64.decode(body).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = self.aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() }).map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    fn map(
        &self,
        backend: &str,
        field: &str,
        values: &BTreeMap<String, String>,
        seal: bool,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        values
            .iter()
            .map(|(k, v)| {
                let aad = format!("backends.{backend}.{field}.{k}");
                let v = if seal { self.seal(v, &aad)? } else { self.open(v, &aad)? };
                Ok((k.clone(), v))
            })
            .collect()
    }

    /// `config` with every header and env value encrypted.
    pub fn seal_config(&self, config: &BackendConfig) -> Result<BackendConfig, StoreError> {
        let mut out = config.clone();
        out.headers = self.map(&config.name, "headers", &config.headers, true)?;
        out.env = self.map(&config.name, "env", &config.env, true)?;
        Ok(out)
    }

    /// The inverse of [`SecretCipher::seal_config`].
    pub fn open_config(&self, config: &BackendConfig) -> Result<BackendConfig, StoreError> {
        let mut out = config.clone();
        out.headers = self.map(&config.name, "headers", &config.headers, false)?;
        out.env = self.map(&config.name, "env", &config.env, false)?;
        Ok(out)
    }
}

/// A backend added at run time, secrets decrypted.
#[derive(Debug, Clone)]
pub struct StoredBackend {
    pub config: BackendConfig,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Username of its creator.
    pub created_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct BackendRow {
    name: String,
    config: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: Option<String>,
}

impl BackendRow {
    fn decode(self, cipher: &SecretCipher) -> Result<StoredBackend, StoreError> {
        let sealed: BackendConfig =
            serde_json::from_str(&self.config).map_err(|e| StoreError::Corrupt(format!("backends.config of `{}`: {e}", self.name)))?;
        let mut config = cipher.open_config(&sealed)?;
        config.name = self.name;
        config.enabled = self.enabled;
        Ok(StoredBackend { config, created_at: self.created_at, updated_at: self.updated_at, created_by: self.created_by })
    }
}

const BACKEND_COLUMNS: &str = "name, config, enabled, created_at, updated_at, created_by";

impl Store {
    /// Every stored backend, by name. A row that cannot be decoded (e.g. the
    /// key-hashing secret changed) is left out with a warning rather than
    /// failing the whole list.
    pub async fn list_backends(&self, cipher: &SecretCipher) -> Result<Vec<StoredBackend>, StoreError> {
        let sql = format!("SELECT {BACKEND_COLUMNS} FROM backends ORDER BY name");
        let rows: Vec<BackendRow> = with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let name = row.name.clone();
                row.decode(cipher).map_err(|e| tracing::warn!(backend = %name, error = %e, "skipping a stored backend")).ok()
            })
            .collect())
    }

    /// The stored backend `name`, if any.
    pub async fn backend_by_name(&self, name: &str, cipher: &SecretCipher) -> Result<Option<StoredBackend>, StoreError> {
        let sql = format!("SELECT {BACKEND_COLUMNS} FROM backends WHERE name = $1");
        let row: Option<BackendRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(name).fetch_optional(pool).await)?;
        row.map(|r| r.decode(cipher)).transpose()
    }

    /// Stores a new backend; [`StoreError::Conflict`] when the name is taken.
    pub async fn insert_backend(
        &self,
        config: &BackendConfig,
        cipher: &SecretCipher,
        created_by: Option<&str>,
    ) -> Result<StoredBackend, StoreError> {
        let text = sealed_json(config, cipher)?;
        let now = super::now();
        execute!(
            self,
            "INSERT INTO backends (name, transport, config, enabled, created_at, updated_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &config.name,
            config.transport.as_str(),
            &text,
            config.enabled,
            now,
            now,
            created_by
        )
        .map_err(|e| super::map_unique(e, || format!("backend `{}`", config.name)))?;
        Ok(StoredBackend { config: config.clone(), created_at: now, updated_at: now, created_by: created_by.map(str::to_owned) })
    }

    /// Replaces the stored backend `config.name`; `false` when absent.
    pub async fn update_backend(&self, config: &BackendConfig, cipher: &SecretCipher) -> Result<bool, StoreError> {
        let text = sealed_json(config, cipher)?;
        let n = execute!(
            self,
            "UPDATE backends SET transport = $1, config = $2, enabled = $3, updated_at = $4 WHERE name = $5",
            config.transport.as_str(),
            &text,
            config.enabled,
            super::now().trunc_subsecs(6),
            &config.name
        )?;
        Ok(n > 0)
    }

    /// Deletes the stored backend `name`; `false` when absent.
    pub async fn delete_backend(&self, name: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM backends WHERE name = $1", name)?;
        Ok(n > 0)
    }
}

fn sealed_json(config: &BackendConfig, cipher: &SecretCipher) -> Result<String, StoreError> {
    let sealed = cipher.seal_config(config)?;
    serde_json::to_string(&sealed).map_err(|e| StoreError::Corrupt(format!("cannot encode backend `{}`: {e}", config.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_the_slot() {
        let secret = Secret::generate();
        let c = SecretCipher::new(&secret);
        let sealed = c.seal("Bearer s3cret", "backends.a.headers.Authorization").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(c.open(&sealed, "backends.a.headers.Authorization").unwrap(), "Bearer s3cret");
        // Another slot, another key, or a tampered value: refused, without echoing the value.
        let e = c.open(&sealed, "backends.b.headers.Authorization").unwrap_err();
        assert!(!e.to_string().contains("s3cret"));
        assert!(SecretCipher::new(&Secret::generate()).open(&sealed, "backends.a.headers.Authorization").is_err());
        assert!(c.open("plain", "x").is_err());
        assert!(c.open("enc:v1:AAAA", "x").is_err());
        // Same input, fresh nonce.
        assert_ne!(c.seal("v", "x").unwrap(), c.seal("v", "x").unwrap());
    }
}
