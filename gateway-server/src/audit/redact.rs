//! Redaction of secrets from audit payloads, and payload size limits.
//!
//! Two passes over a JSON value: object members whose *name* says they hold
//! a secret get `"[REDACTED]"` whatever their value, and every string is
//! scanned for the shapes of well-known credentials, each replaced by
//! `[REDACTED:<kind>]`. Extra names and patterns come from `[audit]`.
//!
//! Names are compared case-insensitively with `-` and `_` removed
//! (`X-Api-Key` → `xapikey`). A built-in name matches when it is contained
//! in the member name (`password`, `passwd`, `secret`, `apikey`,
//! `privatekey`, `authorization`) or ends it (`token`, `cookie`,
//! `accesskey`: `access_token` and `set-cookie` match, `max_tokens` does
//! not). Configured names match exactly (after the same normalisation).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use crate::config::ConfigError;

/// What replaces the value of a secret-named member.
pub const REDACTED: &str = "[REDACTED]";

/// Built-in names matched anywhere in a normalised member name.
const CONTAINED_NAMES: &[&str] = &["password", "passwd", "secret", "apikey", "privatekey", "authorization"];

/// Built-in names matched at the end of a normalised member name.
const SUFFIX_NAMES: &[&str] = &["token", "cookie", "accesskey"];

/// The credential shapes, as `(kind, pattern)`, tried in this order at each
/// position (so `sk-ant-` wins over `sk-`).
const SHAPES: &[(&str, &str)] = &[
    ("private_key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("bearer", r"(?i:\bbearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai_key", r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|\bsk-[A-Za-z0-9]{20,}"),
    ("gatehouse_key", r"\bg[ka]_[A-Za-z0-9]{20,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"),
    ("slack_token", r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}"),
];

/// Every shape in one regex with a named group per kind: one pass per string.
static BUILT_IN: LazyLock<Regex> = LazyLock::new(|| {
    let alternation = SHAPES.iter().map(|(kind, pattern)| format!("(?P<{kind}>{pattern})")).collect::<Vec<_>>().join("|");
    // The patterns are constants covered by the unit tests below.
    Regex::new(&alternation).expect("built-in redaction patterns compile")
});

/// Removes secrets from audit payloads. Build once (patterns compile here).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Extra member names, normalised.
    keys: Vec<String>,
    /// Extra value patterns.
    patterns: Vec<Regex>,
}

/// Lowercase without `-` and `_`.
fn normalize(name: &str) -> String {
    name.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

impl Redactor {
    /// A redactor with the built-in rules plus `keys` (member names) and
    /// `patterns` (regexes). An invalid pattern is an error naming
    /// `audit.redact_patterns[i]`.
    pub fn new(keys: &[String], patterns: &[String]) -> Result<Self, ConfigError> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Regex::new(p).map_err(|e| {
                    let why = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    ConfigError::invalid(format!("audit.redact_patterns[{i}]"), format!("invalid regular expression: {why}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys: keys.iter().map(|k| normalize(k)).filter(|k| !k.is_empty()).collect(), patterns })
    }

    /// True when a member called `name` holds a secret.
    pub fn is_secret_key(&self, name: &str) -> bool {
        let n = normalize(name);
        CONTAINED_NAMES.iter().any(|s| n.contains(s)) || SUFFIX_NAMES.iter().any(|s| n.ends_with(s)) || self.keys.contains(&n)
    }

    /// `text` with every credential shape and configured pattern replaced.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = BUILT_IN.replace_all(text, |caps: &Captures<'_>| {
            let kind = SHAPES.iter().map(|(kind, _)| *kind).find(|kind| caps.name(kind).is_some()).unwrap_or("secret");
            format!("[REDACTED:{kind}]")
        });
        for p in &self.patterns {
            if let Cow::Owned(s) = p.replace_all(&out, "[REDACTED:custom]") {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Redacts `value` in place: secret-named members and string contents.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact_str(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(members) => {
                for (name, v) in members.iter_mut() {
                    if self.is_secret_key(name) {
                        *v = Value::String(REDACTED.to_owned());
                    } else {
                        self.redact_value(v);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `value` as compact JSON of at most `max_bytes` bytes: itself when it fits,
/// else `{"truncated":true,"bytes":N,"preview":"<start of the JSON text>"}`,
/// which is still valid JSON. `max_bytes` should leave room for the wrapper
/// (the config requires at least 256).
pub fn bounded_json(value: &Value, max_bytes: usize) -> String {
    // A `Value` always serializes.
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    if text.len() <= max_bytes {
        return text;
    }
    let mut budget = max_bytes.saturating_sub(64);
    loop {
        let wrapped = serde_json::json!({ "truncated": true, "bytes": text.len(), "preview": clip(&text, budget) }).to_string();
        if wrapped.len() <= max_bytes || budget == 0 {
            return wrapped;
        }
        // Escaping made the preview longer than its bytes; shrink by the excess.
        budget = budget.saturating_sub(wrapped.len() - max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn r() -> Redactor {
        Redactor::default()
    }

    #[test]
    fn each_built_in_shape_is_redacted() {
        let cases = [
            ("gatehouse_key", "gk_3kT9xQ2mP8vL5nR7wY1zA4bC6dE0fG2hJ4kL6mN8pQ0"),
            ("gatehouse_key", "ga_3kT9xQ2mP8vL5nR7wY1zA4bC6dE0fG2hJ4kL6mN8pQ0"),
            ("openai_key", "sk-3kT9xQ2mP8vL5nR7wY1zT3BlbkFJA4bC6dE0fG2hJ4kL6m"),
            ("openai_key", "sk-proj-3kT9xQ2mP8vL5nR7wY1z_A4bC6dE0fG2h-J4kL6mN8pQ0"),
            ("anthropic_key", "sk-ant-api03-3kT9xQ2mP8vL5nR7wY1zA4bC6dE0fG2hJ4kL6mN8pQ0-AbCdEf"),
            ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
            ("github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("github_token", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("github_token", "ghs_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789"),
            ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
            ("slack_token", "xoxp-123456789012-1234567890123"),
            ("google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
            (
                "jwt",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            ),
            ("bearer", "Bearer abcdefghijklmnop0123456789"),
            ("bearer", "bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5=="),
            ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabcdef==\n-----END RSA PRIVATE KEY-----"),
            ("private_key", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"),
            ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA (cut short)"),
        ];
        for (kind, secret) in cases {
            let text = format!("before {secret} after");
            let out = r().redact_str(&text).into_owned();
            assert_eq!(
                out,
                format!("before [REDACTED:{kind}]{}", if kind == "private_key" && !secret.contains("END") { "" } else { " after" }),
                "{kind}: {secret}"
            );
            assert!(!out.contains(&secret[secret.len() - 6..]), "{kind} leaked: {out}");
        }
    }

    #[test]
    fn secrets_inside_other_text_are_found() {
        let out = r().redact_str("curl -H 'Authorization: Bearer gk_3kT9xQ2mP8vL5nR7wY1zA4bC6dE0fG2hJ4kL6mN8pQ0' https://hub");
        assert_eq!(out, "curl -H 'Authorization: [REDACTED:bearer]' https://hub");
        let out = r().redact_str(r#"{"key":"AKIAIOSFODNN7EXAMPLE","k2":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}"#);
        assert_eq!(out, r#"{"key":"[REDACTED:aws_access_key]","k2":"[REDACTED:github_token]"}"#);
    }

    #[test]
    fn ordinary_text_survives_unchanged() {
        for text in [
            "",
            "hello world",
            "task-list of risk-assessment items",
            "disk-abcdefghijklmnopqrstuvwxyz0123",
            "the bearer of this letter",
            "expected bearer authentication",
            "sk-short",
            "AKIA123",
            "ghp_short",
            "eyJhbGciOiJIUzI1NiJ9 alone",
            "/home/alice/notes/todo.md",
            "SELECT * FROM users WHERE id = 42",
            "550e8400-e29b-41d4-a716-446655440000",
            "0123456789abcdef0123456789abcdef01234567",
            "Grüße, 東京",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        ] {
            assert!(matches!(r().redact_str(text), Cow::Borrowed(_)), "{text:?} was changed to {:?}", r().redact_str(text));
        }
    }

    #[test]
    fn secret_member_names() {
        let red = r();
        for name in [
            "password",
            "Password",
            "db_password",
            "passwd",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "refreshToken",
            "api_key",
            "apiKey",
            "X-Api-Key",
            "apikey",
            "access_key",
            "aws_secret_access_key",
            "Authorization",
            "proxy-authorization",
            "cookie",
            "Set-Cookie",
            "private_key",
            "privateKey",
        ] {
            assert!(red.is_secret_key(name), "{name}");
        }
        for name in ["max_tokens", "input_tokens", "tokenizer", "path", "query", "keyboard", "author", "name", "id", "cookies_enabled"] {
            assert!(!red.is_secret_key(name), "{name}");
        }
    }

    #[test]
    fn values_are_redacted_recursively() {
        let mut v = json!({
            "path": "/tmp/x",
            "Password": "hunter2",
            "nested": { "api-key": { "deep": 1 }, "list": ["ok", "sk-ant-api03-3kT9xQ2mP8vL5nR7wY1zA4bC6dE0fG2hJ4kL6mN8pQ0"] },
            "max_tokens": 100,
            "flag": true,
            "none": null
        });
        r().redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "path": "/tmp/x",
                "Password": "[REDACTED]",
                "nested": { "api-key": "[REDACTED]", "list": ["ok", "[REDACTED:anthropic_key]"] },
                "max_tokens": 100,
                "flag": true,
                "none": null
            })
        );
    }

    #[test]
    fn configured_names_and_patterns() {
        let red = Redactor::new(&["Session-Id".into()], &[r"EMP-\d{6}".into()]).unwrap();
        let mut v = json!({ "session_id": "abc", "note": "employee EMP-123456 and EMP-12", "sessions": 2 });
        red.redact_value(&mut v);
        assert_eq!(v, json!({ "session_id": "[REDACTED]", "note": "employee [REDACTED:custom] and EMP-12", "sessions": 2 }));
    }

    #[test]
    fn an_invalid_pattern_names_its_key() {
        let err = Redactor::new(&[], &["ok".into(), "(unclosed".into()]).unwrap_err();
        assert_eq!(err.key(), Some("audit.redact_patterns[1]"));
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn large_payloads_are_truncated_to_valid_json() {
        let small = json!({ "a": 1 });
        assert_eq!(bounded_json(&small, 256), r#"{"a":1}"#);
        let big = json!({ "data": "\"quoted\" \\ ".repeat(500), "more": "é".repeat(300) });
        let full = serde_json::to_string(&big).unwrap();
        for max in [256, 300, 1000, 4096] {
            let out = bounded_json(&big, max);
            assert!(out.len() <= max, "{max}: {}", out.len());
            let parsed: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(parsed["truncated"], json!(true));
            assert_eq!(parsed["bytes"], json!(full.len()));
            let preview = parsed["preview"].as_str().unwrap();
            assert!(!preview.is_empty() && full.starts_with(preview));
        }
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }
}
