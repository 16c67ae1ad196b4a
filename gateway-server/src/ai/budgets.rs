//! Spending and token budgets per user, key or team per calendar period (UTC).
//!
//! A team is a role: users share a budget through the role they hold, which is the grouping
//! the hub already has (roles are admin-defined when the built-in ones do not fit).
//!
//! A budget has a scope (`user`, `key`, `role`), an optional subject (one username, key id or
//! role name; without one every subject of the scope gets its own allowance), a period
//! (`day`, `week` starting Monday, `month`) and a limit in USD and/or in weighted tokens (see
//! [`super::meter::Price::weighted_tokens`]).
//!
//! Spending is counted in memory and seeded, the first time a subject's period is touched,
//! from the audit log (cost and raw tokens of that subject's AI events since the period
//! began), so a restart does not reset a budget. A request is refused with 429 and
//! `Retry-After` until the period ends once any applicable budget is used up. Crossing 50, 80,
//! 95 and 100 % logs a warning and counts `gatehouse_ai_budget_alerts_total{threshold}`.
//! Concurrent requests of one subject can overshoot by what they cost together: a budget is
//! checked before a request and charged after it, when its cost is known.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Utc};
use dashmap::DashMap;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::Store;

/// Alert thresholds, in percent.
pub const THRESHOLDS: [u32; 4] = [50, 80, 95, 100];

/// Who a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetScope {
    User,
    Key,
    /// A team: every user holding the role.
    Role,
}

/// A budget's calendar period (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    /// Start of the period holding `t`.
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let day = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single().unwrap_or(t);
        match self {
            Self::Day => day,
            Self::Week => day - ChronoDuration::days(i64::from(t.weekday().num_days_from_monday())),
            Self::Month => Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(day),
        }
    }

    /// Start of the next period.
    pub fn end(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(t);
        match self {
            Self::Day => start + ChronoDuration::days(1),
            Self::Week => start + ChronoDuration::days(7),
            Self::Month => {
                let (y, m) = if start.month() == 12 { (start.year() + 1, 1) } else { (start.year(), start.month() + 1) };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(start + ChronoDuration::days(31))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// One budget (`[[ai.budgets]]` or the admin API).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Unique id, named in refusals.
    pub id: String,
    pub scope: BudgetScope,
    /// One username, key id or role name; absent: each subject of the scope separately.
    #[serde(default)]
    pub subject: Option<String>,
    pub period: Period,
    /// USD allowed per period.
    #[serde(default)]
    pub limit_usd: Option<f64>,
    /// Weighted tokens allowed per period.
    #[serde(default)]
    pub limit_tokens: Option<u64>,
}

impl BudgetConfig {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > 64 || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err("id: must be 1-64 characters of A-Z a-z 0-9 - _".into());
        }
        if self.subject.as_ref().is_some_and(|s| s.is_empty() || s.len() > 256) {
            return Err("subject: must be 1-256 characters".into());
        }
        if self.limit_usd.is_none() && self.limit_tokens.is_none() {
            return Err("limit_usd or limit_tokens: at least one is required".into());
        }
        if let Some(usd) = self.limit_usd
            && !(usd.is_finite() && (0.0..=1e12).contains(&usd))
        {
            return Err("limit_usd: must be a number from 0 to 1e12".into());
        }
        if self.limit_tokens.is_some_and(|t| t > 1_000_000_000_000_000) {
            return Err("limit_tokens: too large".into());
        }
        Ok(())
    }
}

/// Who a request is, for budgets.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub key_id: &'a str,
    pub role: &'a str,
}

/// A refusal: which budget, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRefusal {
    pub budget: String,
    pub message: String,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    usd: f64,
    tokens: u64,
}

/// Counter key: budget id, subject, period start.
type CounterKey = (String, String, i64);

/// The budgets in force and what was spent.
#[derive(Debug, Default)]
pub struct Budgets {
    rules: RwLock<Arc<Vec<BudgetConfig>>>,
    spent: DashMap<CounterKey, Spent>,
}

fn subject_of<'a>(b: &BudgetConfig, s: &Subject<'a>) -> Option<&'a str> {
    let mine = match b.scope {
        BudgetScope::User => s.username,
        BudgetScope::Key => s.key_id,
        BudgetScope::Role => s.role,
    };
    match &b.subject {
        Some(want) if want != mine => None,
        _ => Some(mine),
    }
}

impl Budgets {
    pub fn set_all(&self, rules: Vec<BudgetConfig>) {
        *self.rules.write() = Arc::new(rules);
    }

    pub fn all(&self) -> Arc<Vec<BudgetConfig>> {
        self.rules.read().clone()
    }

    async fn counter(&self, store: &Store, b: &BudgetConfig, s: &Subject<'_>, who: &str, now: DateTime<Utc>) -> CounterKey {
        let start = b.period.start(now);
        let key = (b.id.clone(), who.to_owned(), start.timestamp());
        if !self.spent.contains_key(&key) {
            let (column, value) = match b.scope {
                BudgetScope::User => ("user", s.user_id),
                BudgetScope::Key => ("key", s.key_id),
                BudgetScope::Role => ("role", s.role),
            };
            let seed = match store.ai_spent_since(column, value, start).await {
                Ok((usd, tokens)) => Spent { usd, tokens },
                Err(e) => {
                    tracing::warn!(error = %e, budget = %b.id, "cannot read past AI spending; counting from zero");
                    Spent::default()
                }
            };
            self.spent.entry(key.clone()).or_insert(seed);
        }
        key
    }

    /// `Err` when a budget that applies to `s` is used up.
    pub async fn check(&self, store: &Store, s: &Subject<'_>, now: DateTime<Utc>) -> Result<(), BudgetRefusal> {
        let rules = self.all();
        for b in rules.iter() {
            let Some(who) = subject_of(b, s) else { continue };
            let key = self.counter(store, b, s, who, now).await;
            let spent = self.spent.get(&key).map(|v| *v).unwrap_or_default();
            let over_usd = b.limit_usd.is_some_and(|l| spent.usd >= l);
            let over_tokens = b.limit_tokens.is_some_and(|l| spent.tokens >= l);
            if over_usd || over_tokens {
                let end = b.period.end(now);
                let retry = u64::try_from((end - now).num_seconds().max(1)).unwrap_or(1);
                let what = if over_usd {
                    format!("spent ${:.4} of ${:.2}", spent.usd, b.limit_usd.unwrap_or(0.0))
                } else {
                    format!("used {} of {} tokens", spent.tokens, b.limit_tokens.unwrap_or(0))
                };
                let scope = match b.scope {
                    BudgetScope::User => "user",
                    BudgetScope::Key => "key",
                    BudgetScope::Role => "role",
                };
                return Err(BudgetRefusal {
                    budget: b.id.clone(),
                    message: format!(
                        "budget `{}` exhausted: {what} this {} for {scope} `{who}`; it resets at {} (in {retry} s)",
                        b.id,
                        b.period.as_str(),
                        end.to_rfc3339()
                    ),
                    retry_after_secs: retry,
                });
            }
        }
        Ok(())
    }

    /// Adds a request's cost and weighted tokens; returns the alert thresholds crossed, as
    /// `(budget id, percent)`.
    pub async fn charge(&self, store: &Store, s: &Subject<'_>, usd: f64, tokens: u64, now: DateTime<Utc>) -> Vec<(String, u32)> {
        let mut alerts = Vec::new();
        let rules = self.all();
        for b in rules.iter() {
            let Some(who) = subject_of(b, s) else { continue };
            let key = self.counter(store, b, s, who, now).await;
            let mut entry = self.spent.entry(key).or_default();
            let before = *entry;
            entry.usd += usd;
            entry.tokens = entry.tokens.saturating_add(tokens);
            let after = *entry;
            drop(entry);
            let frac = |sp: Spent| {
                let a = b.limit_usd.map_or(0.0, |l| if l > 0.0 { sp.usd / l } else { f64::INFINITY });
                let t = b.limit_tokens.map_or(0.0, |l| if l > 0 { sp.tokens as f64 / l as f64 } else { f64::INFINITY });
                a.max(t) * 100.0
            };
            let (p0, p1) = (frac(before), frac(after));
            for t in THRESHOLDS {
                let t_f = f64::from(t);
                if p0 < t_f && p1 >= t_f {
                    tracing::warn!(budget = %b.id, subject = %who, threshold = t, spent_usd = after.usd, tokens = after.tokens, "AI budget threshold reached");
                    alerts.push((b.id.clone(), t));
                }
            }
        }
        // Old periods' counters are dropped once a newer period is seen for the same budget.
        let horizon = now.timestamp() - 40 * 86_400;
        self.spent.retain(|(_, _, start), _| *start > horizon);
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_and_end_on_calendar_boundaries() {
        let t = Utc.with_ymd_and_hms(2025, 12, 31, 15, 4, 5).unwrap(); // a Wednesday
        assert_eq!(Period::Day.start(t), Utc.with_ymd_and_hms(2025, 12, 31, 0, 0, 0).unwrap());
        assert_eq!(Period::Week.start(t), Utc.with_ymd_and_hms(2025, 12, 29, 0, 0, 0).unwrap());
        assert_eq!(Period::Month.end(t), Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(Period::Week.end(t), Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap());
    }

    #[test]
    fn validation_names_the_field() {
        let b = BudgetConfig {
            id: "b".into(),
            scope: BudgetScope::User,
            subject: None,
            period: Period::Day,
            limit_usd: None,
            limit_tokens: None,
        };
        assert!(b.validate().unwrap_err().starts_with("limit_usd"));
        let b = BudgetConfig { limit_usd: Some(-1.0), ..b };
        assert!(b.validate().unwrap_err().starts_with("limit_usd"));
    }
}
