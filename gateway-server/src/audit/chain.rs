//! The hash chain over audit records, and its verification.
//!
//! Each record's `hash` is
//!
//! ```text
//! hash = lowercase_hex(SHA-256(prev_hash || canonical_json(record)))
//! ```
//!
//! where `prev_hash` is the previous record's `hash` as 64 lowercase hex
//! characters (for the first record: the anchor's hash, initially 64 zeros),
//! `||` is byte concatenation, and `canonical_json` is the record without its
//! `hash`, as compact JSON (no whitespace, UTF-8, strings escaped the way
//! `serde_json` escapes them) of one object whose members are always all
//! present, in this order:
//!
//! `id, seq, ts, kind, user_id, username, key_id, agent, client_app,
//! session_id, method, backend, tool, decision, rule, status, error_code,
//! error_message, latency_ms, request_bytes, response_bytes, input_tokens,
//! output_tokens, cost_usd, arguments, result, action, target, details,
//! prev_hash`
//!
//! - absent values are `null`;
//! - `ts` is a string `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, always 6 fraction digits);
//! - `kind`, `decision`, `status` are their lowercase names;
//! - integers are decimal; `latency_ms` and `cost_usd` are finite numbers in
//!   the shortest form that reads back as the same 64-bit float (`1.0`, `0.25`);
//! - `arguments`, `result` and `details` are the stored JSON *text* as a JSON
//!   string (so the hash covers the exact bytes in the database, not a
//!   re-serialisation of them).
//!
//! Verification walks the records in `seq` order from the anchor, recomputes
//! every hash and checks the links; it reports the first bad record.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{AuditFilter, AuditRow, Store, StoreError};

/// The hash the chain starts after while retention has removed nothing.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records read per query while verifying.
const PAGE: u32 = 1000;

/// Where the chain starts: the last record removed by retention (or the
/// genesis values `(0, 64 zeros)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl Anchor {
    /// `(0, GENESIS_HASH)`.
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_HASH.to_owned() }
    }
}

/// The canonical form, field for field (see the module docs).
#[derive(Serialize)]
struct Canonical<'a> {
    id: &'a str,
    seq: i64,
    ts: String,
    kind: &'a str,
    user_id: Option<&'a str>,
    username: Option<&'a str>,
    key_id: Option<&'a str>,
    agent: Option<&'a str>,
    client_app: Option<&'a str>,
    session_id: Option<&'a str>,
    method: Option<&'a str>,
    backend: Option<&'a str>,
    tool: Option<&'a str>,
    decision: Option<&'a str>,
    rule: Option<&'a str>,
    status: Option<&'a str>,
    error_code: Option<i64>,
    error_message: Option<&'a str>,
    latency_ms: Option<f64>,
    request_bytes: Option<i64>,
    response_bytes: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost_usd: Option<f64>,
    arguments: Option<&'a str>,
    result: Option<&'a str>,
    action: Option<&'a str>,
    target: Option<&'a str>,
    details: Option<&'a str>,
    prev_hash: &'a str,
}

/// The canonical JSON of `row` without its hash (see the module docs).
pub fn canonical_json(row: &AuditRow) -> String {
    let c = Canonical {
        id: &row.id,
        seq: row.seq,
        ts: row.ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        kind: &row.kind,
        user_id: row.user_id.as_deref(),
        username: row.username.as_deref(),
        key_id: row.key_id.as_deref(),
        agent: row.agent.as_deref(),
        client_app: row.client_app.as_deref(),
        session_id: row.session_id.as_deref(),
        method: row.method.as_deref(),
        backend: row.backend.as_deref(),
        tool: row.tool.as_deref(),
        decision: row.decision.as_deref(),
        rule: row.rule.as_deref(),
        status: row.status.as_deref(),
        error_code: row.error_code,
        error_message: row.error_message.as_deref(),
        latency_ms: row.latency_ms.filter(|f| f.is_finite()),
        request_bytes: row.request_bytes,
        response_bytes: row.response_bytes,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        cost_usd: row.cost_usd.filter(|f| f.is_finite()),
        arguments: row.arguments.as_deref(),
        result: row.result.as_deref(),
        action: row.action.as_deref(),
        target: row.target.as_deref(),
        details: row.details.as_deref(),
        prev_hash: &row.prev_hash,
    };
    // Strings, integers, finite floats and nulls always serialize.
    serde_json::to_string(&c).unwrap_or_default()
}

/// `hex(SHA-256(prev_hash || canonical_json(row)))`.
pub fn record_hash(row: &AuditRow) -> String {
    let mut h = Sha256::new();
    h.update(row.prev_hash.as_bytes());
    h.update(canonical_json(row).as_bytes());
    hex::encode(h.finalize())
}

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Problem {
    /// Its contents no longer match its hash (or its hash was rewritten).
    Changed,
    /// Records before it are missing.
    Removed,
    /// It links to a record that exists but is not the one before it.
    Reordered,
}

impl Problem {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Removed => "removed",
            Self::Reordered => "reordered",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first record where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BadRecord {
    pub seq: i64,
    pub id: String,
    pub problem: Problem,
    /// What exactly does not match, for people.
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// True when every record from the anchor on checks out.
    pub ok: bool,
    /// Records checked and found good.
    pub checked: u64,
    pub first_bad: Option<BadRecord>,
}

impl ChainReport {
    /// The line `gateway-server audit verify` prints.
    pub fn summary(&self) -> String {
        match &self.first_bad {
            None => format!("audit chain intact: {} records", self.checked),
            Some(b) => format!("audit chain broken at record seq={} id={}: {}: {}", b.seq, b.id, b.problem, b.detail),
        }
    }
}

/// Checks the whole chain in `store`.
///
/// Retention may delete the oldest records while the walk reads them, which
/// looks like a removal; when the anchor moved during a walk that found a
/// problem, the walk starts again from the new anchor.
pub async fn verify(store: &Store) -> Result<ChainReport, StoreError> {
    let mut attempts = 0;
    loop {
        let anchor = store.audit_anchor().await?;
        let report = walk(store, &anchor).await?;
        attempts += 1;
        if report.ok || attempts >= 3 || store.audit_anchor().await? == anchor {
            return Ok(report);
        }
    }
}

/// The previous good record of a walk.
struct Prev {
    seq: i64,
    id: String,
}

async fn walk(store: &Store, anchor: &Anchor) -> Result<ChainReport, StoreError> {
    let mut expected_seq = anchor.seq + 1;
    let mut expected_prev = anchor.hash.clone();
    let mut prev: Option<Prev> = None;
    let mut checked = 0u64;
    let mut after = anchor.seq;
    let all = AuditFilter::default();
    loop {
        let page = store.audit_rows_after(&all, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            let own_ok = record_hash(row) == row.hash;
            if row.seq != expected_seq || row.prev_hash != expected_prev {
                let bad = classify(store, row, own_ok, expected_seq, &expected_prev, prev.as_ref(), anchor).await?;
                return Ok(ChainReport { ok: false, checked, first_bad: Some(bad) });
            }
            if !own_ok {
                let bad = BadRecord {
                    seq: row.seq,
                    id: row.id.clone(),
                    problem: Problem::Changed,
                    detail: "its contents do not match its hash".to_owned(),
                };
                return Ok(ChainReport { ok: false, checked, first_bad: Some(bad) });
            }
            checked += 1;
            expected_seq = row.seq + 1;
            expected_prev.clone_from(&row.hash);
            prev = Some(Prev { seq: row.seq, id: row.id.clone() });
        }
    }
    Ok(ChainReport { ok: true, checked, first_bad: None })
}

/// Names what broke when `row` does not follow the previous record.
async fn classify(
    store: &Store,
    row: &AuditRow,
    own_ok: bool,
    expected_seq: i64,
    expected_prev: &str,
    prev: Option<&Prev>,
    anchor: &Anchor,
) -> Result<BadRecord, StoreError> {
    let bad = |seq: i64, id: &str, problem, detail: String| BadRecord { seq, id: id.to_owned(), problem, detail };
    let after = match prev {
        Some(p) => format!("seq {}", p.seq),
        None => format!("the chain anchor (seq {})", anchor.seq),
    };
    if row.prev_hash != expected_prev
        && let Some((seq, _)) = store.audit_find_by_hash(&row.prev_hash, &row.id).await?
    {
        return Ok(bad(row.seq, &row.id, Problem::Reordered, format!("it links to seq {seq} but follows {after}")));
    }
    if row.seq > expected_seq {
        let missing = if row.seq - 1 == expected_seq {
            format!("record seq {expected_seq} is missing")
        } else {
            format!("records seq {expected_seq} to {} are missing", row.seq - 1)
        };
        return Ok(bad(row.seq, &row.id, Problem::Removed, format!("{missing} before it")));
    }
    if row.seq < expected_seq {
        return Ok(bad(row.seq, &row.id, Problem::Reordered, format!("its seq is out of order after {after}")));
    }
    // Consecutive seq, but the link points nowhere: either this record's
    // `prev_hash` was edited (then its own hash fails too) or the previous
    // record's hash was rewritten to match edited contents.
    if !own_ok {
        return Ok(bad(row.seq, &row.id, Problem::Changed, "its link to the previous record was altered".to_owned()));
    }
    Ok(match prev {
        Some(p) => bad(p.seq, &p.id, Problem::Changed, format!("its hash was rewritten: seq {} links to a different one", row.seq)),
        None => bad(row.seq, &row.id, Problem::Removed, format!("it does not link to {after}")),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn row() -> AuditRow {
        AuditRow {
            id: "0190a0a0-0000-7000-8000-000000000001".into(),
            seq: 1,
            ts: chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
            kind: "mcp".into(),
            user_id: Some("u1".into()),
            username: Some("alice".into()),
            key_id: None,
            agent: None,
            client_app: None,
            session_id: None,
            method: Some("tools/call".into()),
            backend: Some("fs".into()),
            tool: Some("read".into()),
            decision: Some("allow".into()),
            rule: None,
            status: Some("ok".into()),
            error_code: None,
            error_message: None,
            latency_ms: Some(1.5),
            request_bytes: Some(10),
            response_bytes: Some(20),
            input_tokens: None,
            output_tokens: None,
            cost_usd: Some(0.25),
            arguments: Some(r#"{"path":"/x"}"#.into()),
            result: None,
            action: None,
            target: None,
            details: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_form_is_fixed() {
        assert_eq!(
            canonical_json(&row()),
            r#"{"id":"0190a0a0-0000-7000-8000-000000000001","seq":1,"ts":"2025-01-02T03:04:05.000000Z","kind":"mcp","#.to_owned()
                + r#""user_id":"u1","username":"alice","key_id":null,"agent":null,"client_app":null,"session_id":null,"#
                + r#""method":"tools/call","backend":"fs","tool":"read","decision":"allow","rule":null,"status":"ok","#
                + r#""error_code":null,"error_message":null,"latency_ms":1.5,"request_bytes":10,"response_bytes":20,"#
                + r#""input_tokens":null,"output_tokens":null,"cost_usd":0.25,"arguments":"{\"path\":\"/x\"}","result":null,"#
                + r#""action":null,"target":null,"details":null,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#
        );
    }

    #[test]
    fn hash_covers_every_field_and_the_link() {
        let base = row();
        let h = record_hash(&base);
        assert_eq!(h.len(), 64);
        assert_eq!(h, record_hash(&base), "deterministic");
        let mut variants = Vec::new();
        let mut r = base.clone();
        r.seq = 2;
        variants.push(r);
        let mut r = base.clone();
        r.tool = Some("write".into());
        variants.push(r);
        let mut r = base.clone();
        r.arguments = Some(r#"{"path": "/x"}"#.into());
        variants.push(r);
        let mut r = base.clone();
        r.ts += chrono::Duration::microseconds(1);
        variants.push(r);
        let mut r = base.clone();
        r.prev_hash = "1".repeat(64);
        variants.push(r);
        let mut r = base.clone();
        r.latency_ms = Some(1.5000001);
        variants.push(r);
        for v in variants {
            assert_ne!(record_hash(&v), h, "{v:?}");
        }
        // The stored hash itself is not part of the input.
        let mut r = base.clone();
        r.hash = "x".into();
        assert_eq!(record_hash(&r), h);
    }

    #[test]
    fn summary_lines() {
        let ok = ChainReport { ok: true, checked: 3, first_bad: None };
        assert_eq!(ok.summary(), "audit chain intact: 3 records");
        let bad = ChainReport {
            ok: false,
            checked: 1,
            first_bad: Some(BadRecord { seq: 2, id: "x".into(), problem: Problem::Removed, detail: "record seq 1 is missing".into() }),
        };
        assert_eq!(bad.summary(), "audit chain broken at record seq=2 id=x: removed: record seq 1 is missing");
    }
}
