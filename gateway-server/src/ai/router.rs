//! Model name → deployments: explicit registrations and aliases, provider model globs, then
//! prefix rules; weighted random order; one circuit breaker per deployment.
//!
//! Resolution order for a client's `model`:
//! 1. an explicit registration (`[[ai.models]]` or the admin API) by name or alias: every
//!    entry with that name is a deployment, tried in weighted random order;
//! 2. the first provider whose `models` globs match, with the model name unchanged;
//! 3. prefix rules: `gpt-`, `o1-`…`o4-`, `chatgpt-` → the first `openai` provider (else
//!    `azure`, else `openai_compatible`), `claude-` → `anthropic` (else `bedrock`),
//!    `gemini-` → `gemini`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use globset::{Glob, GlobMatcher};
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::meter::Price;
use super::providers::Provider;
use crate::config::ProviderKind;

/// One `[[ai.models]]` entry: a model name clients use, served by one provider's model.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients send in `model`.
    pub name: String,
    /// Provider name.
    pub provider: String,
    /// The provider's model id (Azure: the deployment name); defaults to `name`.
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Share of traffic among deployments of the same name (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Other names for the same model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// USD per million uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_mtok: Option<f64>,
    /// USD per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_mtok: Option<f64>,
    /// USD per million cache-read input tokens (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    /// USD per million cache-write input tokens (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    /// Weight of this model's tokens in token budgets (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
}

impl ModelConfig {
    /// The entry's prices.
    pub fn price(&self) -> Price {
        Price {
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            cache_read_per_mtok: self.cache_read_per_mtok,
            cache_write_per_mtok: self.cache_write_per_mtok,
            multiplier: self.multiplier,
        }
    }
}

fn one() -> u32 {
    1
}

/// One place a model can be served.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Arc<Provider>,
    /// The model id sent to the provider.
    pub upstream_model: String,
    pub weight: u32,
}

impl Deployment {
    /// Key of the deployment's circuit breaker.
    pub fn key(&self) -> String {
        format!("{}/{}", self.provider.name, self.upstream_model)
    }
}

/// What a model name resolved to.
#[derive(Debug, Clone)]
pub struct Route {
    /// The canonical name (the registration's name for aliases), used for prices and labels.
    pub model: String,
    pub deployments: Vec<Deployment>,
    /// True when the model was registered explicitly (a bounded metric label).
    pub registered: bool,
}

/// Providers and registrations in force; replaced whole on every change.
#[derive(Debug, Default)]
pub struct Catalog {
    pub providers: Vec<Arc<Provider>>,
    globs: Vec<(usize, Vec<GlobMatcher>)>,
    /// Registered name → its deployments.
    models: BTreeMap<String, Vec<Deployment>>,
    /// Alias → registered name.
    aliases: BTreeMap<String, String>,
    /// Registered entries as given (for the admin API and listings).
    pub entries: Vec<ModelConfig>,
}

impl Catalog {
    /// Builds the catalog; entries naming an unknown provider are skipped with a warning.
    pub fn new(providers: Vec<Arc<Provider>>, entries: Vec<ModelConfig>) -> Self {
        let globs = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.models.iter().filter_map(|g| Glob::new(g).ok().map(|g| g.compile_matcher())).collect()))
            .collect();
        let mut models: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        for e in &entries {
            let Some(p) = providers.iter().find(|p| p.name == e.provider) else {
                tracing::warn!(model = %e.name, provider = %e.provider, "AI model names an unknown provider; skipped");
                continue;
            };
            models.entry(e.name.clone()).or_default().push(Deployment {
                provider: p.clone(),
                upstream_model: e.upstream_model.clone().unwrap_or_else(|| e.name.clone()),
                weight: e.weight.max(1),
            });
            for a in &e.aliases {
                aliases.insert(a.clone(), e.name.clone());
            }
        }
        Self { providers, globs, models, aliases, entries }
    }

    /// Whether `model` is a registered name (bounded metric labels use this).
    pub fn is_registered(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// Registered names and aliases, then literal (glob-free) provider model names.
    pub fn listed(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |id: &str, owner: &str| {
            if !out.iter().any(|(i, _)| i == id) {
                out.push((id.to_owned(), owner.to_owned()));
            }
        };
        for (name, deps) in &self.models {
            let owner = deps.first().map_or("", |d| d.provider.name.as_str());
            push(name, owner);
        }
        for (alias, name) in &self.aliases {
            let owner = self.models.get(name).and_then(|d| d.first()).map_or("", |d| d.provider.name.as_str());
            push(alias, owner);
        }
        for p in &self.providers {
            for m in p.models.iter().filter(|m| !m.contains(['*', '?', '[', '{'])) {
                push(m, &p.name);
            }
        }
        out
    }

    /// The deployments of `model`, or `None` when nothing serves it.
    pub fn resolve(&self, model: &str) -> Option<Route> {
        let name = self.aliases.get(model).map_or(model, String::as_str);
        if let Some(deps) = self.models.get(name) {
            return Some(Route { model: name.to_owned(), deployments: deps.clone(), registered: true });
        }
        let single = |p: &Arc<Provider>| Route {
            model: model.to_owned(),
            deployments: vec![Deployment { provider: p.clone(), upstream_model: model.to_owned(), weight: 1 }],
            registered: false,
        };
        for (i, globs) in &self.globs {
            if globs.iter().any(|g| g.is_match(model)) {
                return Some(single(&self.providers[*i]));
            }
        }
        let kinds: &[ProviderKind] = if ["gpt-", "o1", "o3", "o4", "chatgpt-"].iter().any(|p| model.starts_with(p)) {
            &[ProviderKind::OpenAi, ProviderKind::Azure, ProviderKind::OpenAiCompatible]
        } else if model.starts_with("claude-") {
            &[ProviderKind::Anthropic, ProviderKind::Bedrock]
        } else if model.starts_with("gemini-") {
            &[ProviderKind::Gemini]
        } else {
            &[]
        };
        for kind in kinds {
            if let Some(p) = self.providers.iter().find(|p| p.kind == *kind) {
                return Some(single(p));
            }
        }
        None
    }
}

/// `deployments` in weighted random order (each draw without replacement).
pub fn weighted_order(mut deployments: Vec<Deployment>) -> Vec<Deployment> {
    let mut out = Vec::with_capacity(deployments.len());
    let mut rng = rand::rng();
    while !deployments.is_empty() {
        let total: u64 = deployments.iter().map(|d| u64::from(d.weight.max(1))).sum();
        let mut pick = rng.random_range(0..total);
        let mut idx = 0;
        for (i, d) in deployments.iter().enumerate() {
            let w = u64::from(d.weight.max(1));
            if pick < w {
                idx = i;
                break;
            }
            pick -= w;
        }
        out.push(deployments.swap_remove(idx));
    }
    out
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// The cooldown ended and one probe call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// One breaker per deployment: opens after `threshold` consecutive failures, lets one probe
/// through after `cooldown`, closes on that probe's success and re-opens on its failure.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    map: DashMap<String, Breaker>,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { threshold: threshold.max(1), cooldown, map: DashMap::new() }
    }

    /// Whether a call to `key` may go now (taking the half-open probe slot when it is free).
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let Some(mut b) = self.map.get_mut(key) else {
            return true;
        };
        match b.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if b.probing => false,
            Some(_) => {
                b.probing = true;
                true
            }
        }
    }

    /// The state of `key`'s breaker.
    pub fn state(&self, key: &str, now: Instant) -> BreakerState {
        match self.map.get(key).and_then(|b| b.open_until.map(|u| (u, b.probing))) {
            None => BreakerState::Closed,
            Some((until, _)) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    pub fn success(&self, key: &str) {
        self.map.remove(key);
    }

    pub fn failure(&self, key: &str, now: Instant) {
        let mut b = self.map.entry(key.to_owned()).or_insert(Breaker { failures: 0, open_until: None, probing: false });
        b.failures += 1;
        if b.probing || b.failures >= self.threshold {
            if b.open_until.is_none() || b.probing {
                tracing::warn!(deployment = %key, failures = b.failures, "AI deployment circuit breaker opened");
            }
            b.open_until = Some(now + self.cooldown);
            b.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, kind: ProviderKind, models: &[&str]) -> Arc<Provider> {
        Arc::new(Provider::for_tests(name, kind, models))
    }

    #[test]
    fn resolves_registrations_aliases_globs_and_prefixes() {
        let c = Catalog::new(
            vec![
                provider("oa", ProviderKind::OpenAi, &[]),
                provider("an", ProviderKind::Anthropic, &[]),
                provider("local", ProviderKind::OpenAiCompatible, &["llama-*"]),
            ],
            vec![ModelConfig {
                name: "fast".into(),
                provider: "an".into(),
                upstream_model: Some("claude-haiku-4-5".into()),
                weight: 1,
                aliases: vec!["quick".into()],
                input_per_mtok: None,
                output_per_mtok: None,
                cache_read_per_mtok: None,
                cache_write_per_mtok: None,
                multiplier: None,
            }],
        );
        let r = c.resolve("quick").unwrap();
        assert_eq!((r.model.as_str(), r.deployments[0].upstream_model.as_str()), ("fast", "claude-haiku-4-5"));
        assert_eq!(c.resolve("llama-3").unwrap().deployments[0].provider.name, "local");
        assert_eq!(c.resolve("gpt-4o").unwrap().deployments[0].provider.name, "oa");
        assert_eq!(c.resolve("o3-mini").unwrap().deployments[0].provider.name, "oa");
        assert_eq!(c.resolve("claude-sonnet-4-5").unwrap().deployments[0].provider.name, "an");
        assert!(c.resolve("gemini-2.5-pro").is_none());
        assert!(c.resolve("mistral").is_none());
    }

    #[test]
    fn breaker_opens_probes_once_and_closes() {
        let b = Breakers::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.failure("d", t0);
        assert!(b.allow("d", t0));
        b.failure("d", t0);
        assert!(!b.allow("d", t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(11);
        assert!(b.allow("d", later), "one probe after the cooldown");
        assert!(!b.allow("d", later), "only one probe");
        b.failure("d", later);
        assert_eq!(b.state("d", later), BreakerState::Open);
        let much_later = later + Duration::from_secs(11);
        assert!(b.allow("d", much_later));
        b.success("d");
        assert_eq!(b.state("d", much_later), BreakerState::Closed);
    }

    #[test]
    fn weighted_order_keeps_every_deployment() {
        let p = provider("oa", ProviderKind::OpenAi, &[]);
        let d = |w| Deployment { provider: p.clone(), upstream_model: format!("m{w}"), weight: w };
        let order = weighted_order(vec![d(1), d(5), d(0)]);
        assert_eq!(order.len(), 3);
    }
}
