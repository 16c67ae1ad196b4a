//! `/v1/models` bodies in the caller's format.

use serde_json::{Value, json};

/// One model the gateway offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Model id clients put in `model`.
    pub id: String,
    /// Human-readable name (Anthropic `display_name`); the id when `None`.
    pub display_name: Option<String>,
    /// Owner (OpenAI `owned_by`), e.g. the provider name.
    pub owned_by: String,
    /// Release or registration time, Unix seconds.
    pub created: u64,
}

/// OpenAI shape: `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`.
pub fn write_models_openai(models: &[ModelInfo]) -> Value {
    let data: Vec<Value> =
        models.iter().map(|m| json!({"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by})).collect();
    json!({"object": "list", "data": data})
}

/// Anthropic shape: `{"data":[{"type":"model","id","display_name","created_at"}],
/// "has_more","first_id","last_id"}`. `models` is one page; `has_more` says whether another
/// follows (the hub pages with `after_id`/`before_id`/`limit`).
pub fn write_models_anthropic(models: &[ModelInfo], has_more: bool) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "type": "model",
                "id": m.id,
                "display_name": m.display_name.as_deref().unwrap_or(&m.id),
                "created_at": rfc3339(m.created),
            })
        })
        .collect();
    json!({
        "data": data,
        "has_more": has_more,
        "first_id": models.first().map(|m| m.id.as_str()),
        "last_id": models.last().map(|m| m.id.as_str()),
    })
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date library.
fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for every u64 day count we can see.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_time_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_740_787_199), "2025-02-28T23:59:59Z");
    }
}
