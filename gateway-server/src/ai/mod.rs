//! The AI API proxy: OpenAI Chat, OpenAI Responses and Anthropic Messages clients reach any
//! provider (OpenAI, Azure OpenAI, Anthropic, Gemini, Bedrock, OpenAI-compatible servers)
//! through the translation core in `gatehouse-ai`, metered, priced and governed.
//!
//! | file | concern |
//! |---|---|
//! | [`routes`] | the endpoints: auth, parsing, governance, the call loop, whole and streamed answers, audit |
//! | [`providers`] | per-kind URLs, headers and bodies; Bedrock SigV4 and event-stream frames |
//! | [`router`] | model → deployments; weighted order; circuit breakers |
//! | [`meter`] | prices and cost |
//! | [`budgets`] | USD and token budgets per user, key or role per calendar period |
//! | [`pii`] | placeholder redaction and restoration |
//!
//! Providers and model registrations come from the config file and from the store (admin
//! API); the file wins a name clash. [`Ai::reload`] rebuilds the routing catalog after a change.

pub mod budgets;
pub mod meter;
pub mod pii;
pub mod providers;
pub mod router;
pub mod routes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatehouse_ai::{Format, Message, ResponseStore};
use parking_lot::{Mutex, RwLock};

use crate::config::{AiConfig, ConfigError, ProviderConfig};
use crate::store::{AiTable, SecretCipher, Store, StoreError};
use budgets::{BudgetConfig, Budgets};
use meter::{Price, Prices};
use providers::Provider;
use router::{Breakers, Catalog, ModelConfig};

/// Checks `[ai]` beyond what serde checks; the error names the key.
pub fn validate_config(ai: &AiConfig) -> Result<(), ConfigError> {
    for (i, m) in ai.models.iter().enumerate() {
        let key = |f: &str| format!("ai.models[{i}].{f}");
        if m.name.trim().is_empty() || m.name.len() > 256 {
            return Err(ConfigError::invalid(key("name"), "must be 1-256 characters"));
        }
        if !ai.providers.iter().any(|p| p.name == m.provider) {
            return Err(ConfigError::invalid(key("provider"), format!("no [[ai.providers]] named `{}`", m.provider)));
        }
        meter::validate_price(&m.price()).map_err(|e| ConfigError::invalid(key("price"), e))?;
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, b) in ai.budgets.iter().enumerate() {
        b.validate().map_err(|e| ConfigError::invalid(format!("ai.budgets[{i}]"), e))?;
        if !ids.insert(b.id.as_str()) {
            return Err(ConfigError::invalid(format!("ai.budgets[{i}].id"), format!("duplicate budget id `{}`", b.id)));
        }
    }
    for (key, v) in [("ai.total_timeout_secs", ai.total_timeout_secs), ("ai.first_byte_timeout_secs", ai.first_byte_timeout_secs)] {
        if v == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1"));
        }
    }
    Ok(())
}

/// A stored provider: its config and (encrypted at rest) key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredProvider {
    #[serde(flatten)]
    pub config: ProviderConfig,
    /// The key, sealed with [`SecretCipher`] in the store; `None` when not set.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// A stored model registration with its id.
#[derive(Debug, Clone)]
pub struct StoredModel {
    pub id: String,
    pub config: ModelConfig,
}

/// Conversation by response id, with the id of the user it belongs to.
type ConversationMap = HashMap<String, (String, Vec<Message>)>;

/// Responses conversations by id: a bounded in-memory map in front of the store.
pub struct Conversations {
    capacity: usize,
    /// The map and the ids in insertion order (oldest first, evicted first).
    map: Mutex<(ConversationMap, VecDeque<String>)>,
}

impl Conversations {
    fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), map: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Remembers `messages` under `id` for `user_id`.
    pub fn insert(&self, id: &str, user_id: &str, messages: Vec<Message>) {
        let mut g = self.map.lock();
        let (map, order) = &mut *g;
        if map.insert(id.to_owned(), (user_id.to_owned(), messages)).is_none() {
            order.push_back(id.to_owned());
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn get(&self, id: &str, user_id: &str) -> Option<Vec<Message>> {
        let g = self.map.lock();
        g.0.get(id).filter(|(u, _)| u == user_id).map(|(_, m)| m.clone())
    }
}

/// The [`ResponseStore`] view of one user's conversations.
pub struct UserConversations<'a> {
    pub conversations: &'a Conversations,
    pub user_id: &'a str,
}

impl ResponseStore for UserConversations<'_> {
    fn get(&self, response_id: &str) -> Option<Vec<Message>> {
        self.conversations.get(response_id, self.user_id)
    }

    fn put(&self, response_id: &str, conversation: Vec<Message>) {
        self.conversations.insert(response_id, self.user_id, conversation);
    }
}

/// Conversation → storable text (an OpenAI Responses request body), and back.
pub fn conversation_to_text(messages: &[Message]) -> String {
    let req = gatehouse_ai::Request { model: "stored".into(), messages: messages.to_vec(), ..Default::default() };
    gatehouse_ai::write_request(Format::OpenAiResponses, &req).0.to_string()
}

pub fn conversation_from_text(text: &str) -> Option<Vec<Message>> {
    gatehouse_ai::openai_responses::parse_request(text.as_bytes()).ok().map(|(r, _)| r.messages)
}

struct Inner {
    config: AiConfig,
    http: reqwest::Client,
    catalog: RwLock<Arc<Catalog>>,
    breakers: Breakers,
    prices: Prices,
    budgets: Budgets,
    conversations: Conversations,
    store: Store,
    cipher: SecretCipher,
}

/// The AI proxy's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Ai {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ai").field("providers", &self.inner.catalog.read().providers.len()).finish()
    }
}

impl Ai {
    /// Builds the proxy from `[ai]` and the store's providers, models and budgets.
    pub async fn start(config: &AiConfig, store: &Store, cipher: SecretCipher) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .context("cannot build the HTTP client")?;
        let ai = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                http,
                catalog: RwLock::new(Arc::new(Catalog::default())),
                breakers: Breakers::new(config.breaker_failures, Duration::from_secs(config.breaker_cooldown_secs)),
                prices: Prices::default(),
                budgets: Budgets::default(),
                conversations: Conversations::new(config.response_cache),
                store: store.clone(),
                cipher,
            }),
        };
        ai.reload().await.context("cannot load AI providers, models and budgets from the store")?;
        Ok(ai)
    }

    pub fn config(&self) -> &AiConfig {
        &self.inner.config
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.read().clone()
    }

    pub fn breakers(&self) -> &Breakers {
        &self.inner.breakers
    }

    pub fn prices(&self) -> &Prices {
        &self.inner.prices
    }

    pub fn budgets(&self) -> &Budgets {
        &self.inner.budgets
    }

    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn cipher(&self) -> &SecretCipher {
        &self.inner.cipher
    }

    /// Stored providers, keys decrypted.
    pub async fn stored_providers(&self) -> Result<Vec<StoredProvider>, StoreError> {
        let mut out = Vec::new();
        for row in self.inner.store.ai_list(AiTable::Providers).await? {
            let mut p: StoredProvider =
                serde_json::from_str(&row.config).map_err(|e| StoreError::Corrupt(format!("ai_providers.{}: {e}", row.key)))?;
            if let Some(sealed) = &p.api_key {
                p.api_key = Some(self.inner.cipher.open(sealed, &format!("ai_providers.{}.api_key", row.key))?);
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Stored model registrations.
    pub async fn stored_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let mut out = Vec::new();
        for row in self.inner.store.ai_list(AiTable::Models).await? {
            let config: ModelConfig =
                serde_json::from_str(&row.config).map_err(|e| StoreError::Corrupt(format!("ai_models.{}: {e}", row.key)))?;
            out.push(StoredModel { id: row.key, config });
        }
        Ok(out)
    }

    /// Stored budgets.
    pub async fn stored_budgets(&self) -> Result<Vec<BudgetConfig>, StoreError> {
        let mut out = Vec::new();
        for row in self.inner.store.ai_list(AiTable::Budgets).await? {
            out.push(serde_json::from_str(&row.config).map_err(|e| StoreError::Corrupt(format!("ai_budgets.{}: {e}", row.key)))?);
        }
        Ok(out)
    }

    /// Rebuilds providers, routes, prices and budgets from config + store.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let cfg = &self.inner.config;
        let mut providers: Vec<Arc<Provider>> = cfg.providers.iter().map(|p| Arc::new(Provider::new(p, None, "config"))).collect();
        for sp in self.stored_providers().await? {
            if providers.iter().any(|p| p.name == sp.config.name) {
                tracing::warn!(provider = %sp.config.name, "a stored AI provider has the name of a config-file provider; skipping the stored one");
                continue;
            }
            providers.push(Arc::new(Provider::new(&sp.config, sp.api_key, "store")));
        }
        let mut entries = cfg.models.clone();
        entries.extend(self.stored_models().await?.into_iter().map(|m| m.config));
        let mut prices: BTreeMap<String, Price> = BTreeMap::new();
        for e in &entries {
            let price = e.price();
            if !price.is_empty() || price.multiplier.is_some() {
                prices.entry(e.name.clone()).or_insert_with(|| price.clone());
                for a in &e.aliases {
                    prices.entry(a.clone()).or_insert_with(|| price.clone());
                }
            }
        }
        self.inner.prices.set_all(prices);
        *self.inner.catalog.write() = Arc::new(Catalog::new(providers, entries));
        let mut budgets = cfg.budgets.clone();
        for b in self.stored_budgets().await? {
            if budgets.iter().any(|c| c.id == b.id) {
                continue;
            }
            budgets.push(b);
        }
        self.inner.budgets.set_all(budgets);
        Ok(())
    }
}
