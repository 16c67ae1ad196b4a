//! Admin API: the hub itself. `/info` (version and the URLs clients use,
//! for install commands and connection snippets; any signed-in caller) and
//! `/overview` (request rate, errors, latency percentiles and top tools over
//! a recent window, AI spend today; `audit:read`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::server::AppState;
use crate::store::{AuditSample, UsageGroupBy, UsageQuery};

/// Window of `/overview` when none is asked for, in minutes.
const DEFAULT_MINUTES: u32 = 60;
/// Longest window of `/overview`, in minutes (one day).
const MAX_MINUTES: u32 = 1440;
/// Points of each `/overview` series.
const POINTS: u32 = 60;
/// Tools listed in `/overview`.
const TOP_TOOLS: usize = 10;

/// `/info`, `/overview`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(info)).routes(routes!(overview))
}

/// The hub as its clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HubInfo {
    /// The hub's version.
    pub version: String,
    /// The URL clients reach the hub at (`server.public_url`), without a trailing slash.
    pub public_url: String,
    /// The MCP endpoint: `{public_url}/mcp`.
    pub mcp_url: String,
    /// The base URL of the AI API for OpenAI-style SDKs: `{public_url}/v1`.
    pub ai_base_url: String,
}

/// The hub's version and the URLs clients use.
#[utoipa::path(get, path = "/info", tag = "hub",
    responses((status = 200, body = HubInfo), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn info(_ctx: AdminCtx, State(st): State<AppState>) -> Json<HubInfo> {
    let public_url = st.config.server.public_url.trim_end_matches('/').to_owned();
    Json(HubInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        mcp_url: format!("{public_url}/mcp"),
        ai_base_url: format!("{public_url}/v1"),
        public_url,
    })
}

/// Which window.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewParams {
    /// Minutes before now the overview covers (default 60).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

/// One point of the overview series: the MCP and AI requests that started in
/// `[ts, ts + step_secs)`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OverviewPoint {
    pub ts: DateTime<Utc>,
    pub requests: u64,
    /// Requests that ended in an error (denials included).
    pub errors: u64,
    pub denials: u64,
    /// Median latency; `null` without a measured request.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A tool (or AI model) and how often it was called in the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopTool {
    pub tool: String,
    pub backend: Option<String>,
    pub calls: u64,
    pub errors: u64,
}

/// Recent traffic of the hub.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Width of each point.
    pub step_secs: u64,
    /// Oldest first, one per step, empty steps included.
    pub series: Vec<OverviewPoint>,
    /// Totals over the window.
    pub requests: u64,
    pub errors: u64,
    pub denials: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The most called tools and models, busiest first.
    pub top_tools: Vec<TopTool>,
    /// Cost of AI requests since midnight UTC.
    pub ai_spend_today_usd: f64,
}

/// Request rate, errors, latency percentiles and top tools over the last
/// `minutes`, and AI spend today.
#[utoipa::path(get, path = "/overview", tag = "hub", params(OverviewParams),
    responses((status = 200, body = Overview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn overview(
    ctx: AdminCtx,
    State(st): State<AppState>,
    params: Result<Query<OverviewParams>, QueryRejection>,
) -> Result<Json<Overview>, ApiError> {
    ctx.require(Permission::AuditRead)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let minutes = p.minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::BadRequest(format!("minutes: must be between 1 and {MAX_MINUTES}")));
    }
    let now = crate::store::now();
    let step = Duration::seconds(i64::from(minutes) * 60 / i64::from(POINTS));
    // Points start on whole steps, so a refresh moves the chart, not its buckets.
    let to = now.duration_trunc(step).map_err(ApiError::internal)? + step;
    let from = to - step * i32::try_from(POINTS).unwrap_or(i32::MAX);
    let midnight = now.duration_trunc(Duration::days(1)).map_err(ApiError::internal)?;
    let today =
        UsageQuery { group_by: UsageGroupBy::Model, from: midnight, to: now.max(midnight), bucket: None, user_id: None, ai_only: true };
    let (spend, _) = st.store.audit_usage(&today).await?;
    let samples = st.store.audit_samples(from).await?;
    let window: Vec<&AuditSample> = samples.iter().collect();
    Ok(Json(summarise(&window, from, to, step, spend.iter().map(|r| r.cost_usd).sum())))
}

/// The overview of `samples` (all within `[from, to)`) in steps of `step`.
fn summarise(samples: &[&AuditSample], from: DateTime<Utc>, to: DateTime<Utc>, step: Duration, ai_spend_today_usd: f64) -> Overview {
    let steps = usize::try_from(((to - from).num_seconds() / step.num_seconds().max(1)).max(1)).unwrap_or(1);
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); steps];
    let mut series: Vec<OverviewPoint> = (0..steps)
        .map(|i| OverviewPoint {
            ts: from + step * i32::try_from(i).unwrap_or(0),
            requests: 0,
            errors: 0,
            denials: 0,
            p50_ms: None,
            p99_ms: None,
        })
        .collect();
    let mut tools: HashMap<(String, Option<String>), (u64, u64)> = HashMap::new();
    let mut all = Vec::with_capacity(samples.len());
    for s in samples {
        let Ok(i) = usize::try_from((s.ts - from).num_seconds() / step.num_seconds().max(1)) else { continue };
        let Some(point) = series.get_mut(i) else { continue };
        let denied = s.decision.as_deref() == Some("deny");
        let failed = denied || s.status.as_deref() == Some("error");
        point.requests += 1;
        point.errors += u64::from(failed);
        point.denials += u64::from(denied);
        if let Some(ms) = s.latency_ms.filter(|ms| ms.is_finite()) {
            latencies[i].push(ms);
            all.push(ms);
        }
        if let Some(tool) = &s.tool {
            let t = tools.entry((tool.clone(), s.backend.clone())).or_default();
            t.0 += 1;
            t.1 += u64::from(failed);
        }
    }
    for (point, lat) in series.iter_mut().zip(latencies.iter_mut()) {
        point.p50_ms = percentile(lat, 0.50);
        point.p99_ms = percentile(lat, 0.99);
    }
    let mut top_tools: Vec<TopTool> =
        tools.into_iter().map(|((tool, backend), (calls, errors))| TopTool { tool, backend, calls, errors }).collect();
    top_tools.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.tool.cmp(&b.tool)));
    top_tools.truncate(TOP_TOOLS);
    Overview {
        from,
        to,
        step_secs: u64::try_from(step.num_seconds()).unwrap_or(0),
        requests: series.iter().map(|p| p.requests).sum(),
        errors: series.iter().map(|p| p.errors).sum(),
        denials: series.iter().map(|p| p.denials).sum(),
        p50_ms: percentile(&mut all, 0.50),
        p99_ms: percentile(&mut all, 0.99),
        series,
        top_tools,
        ai_spend_today_usd,
    }
}

/// The `q` quantile of `values` (nearest rank); sorts them.
fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ts: DateTime<Utc>, tool: &str, status: &str, decision: &str, ms: f64) -> AuditSample {
        AuditSample {
            ts,
            kind: "mcp".into(),
            backend: Some("fixture".into()),
            tool: Some(tool.into()),
            decision: Some(decision.into()),
            status: Some(status.into()),
            latency_ms: Some(ms),
            cost_usd: None,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [7.0], 0.99), Some(7.0));
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.50), Some(50.0));
        assert_eq!(percentile(&mut v, 0.99), Some(99.0));
    }

    #[test]
    fn samples_fall_into_their_step_with_errors_and_top_tools() {
        let from = "2026-01-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let step = Duration::minutes(1);
        let to = from + Duration::minutes(3);
        let s = [
            sample(from + Duration::seconds(5), "fixture__echo", "ok", "allow", 10.0),
            sample(from + Duration::seconds(50), "fixture__echo", "ok", "allow", 30.0),
            sample(from + Duration::seconds(61), "fixture__add", "error", "deny", 1.0),
            sample(from + Duration::seconds(179), "fixture__echo", "error", "allow", 5.0),
        ];
        let refs: Vec<&AuditSample> = s.iter().collect();
        let o = summarise(&refs, from, to, step, 1.5);
        assert_eq!(o.series.len(), 3);
        assert_eq!(o.series.iter().map(|p| p.requests).collect::<Vec<_>>(), [2, 1, 1]);
        assert_eq!(o.series.iter().map(|p| p.errors).collect::<Vec<_>>(), [0, 1, 1]);
        assert_eq!(o.series[1].denials, 1);
        assert_eq!((o.series[0].p50_ms, o.series[0].p99_ms), (Some(10.0), Some(30.0)));
        assert_eq!(o.series[2].ts, from + Duration::minutes(2));
        assert_eq!((o.requests, o.errors, o.denials), (4, 2, 1));
        assert_eq!(o.top_tools[0], TopTool { tool: "fixture__echo".into(), backend: Some("fixture".into()), calls: 3, errors: 1 });
        assert_eq!(o.top_tools[1].tool, "fixture__add");
        assert!((o.ai_spend_today_usd - 1.5).abs() < f64::EPSILON);
    }
}
