//! Optional PII redaction (`[ai] redact_pii = true`).
//!
//! E-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs (mod-97
//! checked) and US social security numbers in the user's content (system prompt, user turns,
//! tool results) are replaced by placeholders such as `<<PII_EMAIL_1>>` before the request
//! leaves the hub. The same value gets the same placeholder within a request, so the model can
//! still refer to it. Placeholders in the answer (text, tool-call arguments, reasoning) are
//! replaced by the original values, in whole answers and in streams; in a stream a placeholder
//! may arrive split over several deltas, so a [`StreamRestorer`] holds back only the tail of a
//! delta that could still be the start of a placeholder.

use std::collections::HashMap;
use std::sync::OnceLock;

use gatehouse_ai::{Part, Request, Response, Role, StreamEvent};
use regex::Regex;
use serde_json::Value;

/// The kinds of PII, in the order they are searched (cards and IBANs before phone numbers,
/// whose pattern they would otherwise partly match).
const KINDS: [&str; 5] = ["EMAIL", "IBAN", "CARD", "SSN", "PHONE"];

fn patterns() -> &'static [(&'static str, Regex); 5] {
    static P: OnceLock<[(&'static str, Regex); 5]> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| unreachable!("built-in pattern: {e}"));
        [
            (KINDS[0], re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
            (KINDS[1], re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")),
            (KINDS[2], re(r"\b\d(?:[ -]?\d){12,18}\b")),
            (KINDS[3], re(r"\b\d{3}-\d{2}-\d{4}\b")),
            (KINDS[4], re(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\b\d{2,4})[ .-]\d{3,4}[ .-]\d{3,4}\b")),
        ]
    })
}

fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => u64::from(c as u8 - b'0'),
            'A'..='Z' => u64::from(c as u8 - b'A' + 10),
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// Whether `side` continues a digit group at its edge: a digit, or a space or dash then a digit.
fn digit_group_near(side: &str, before: bool) -> bool {
    let chars: Vec<char> = if before { side.chars().rev().take(2).collect() } else { side.chars().take(2).collect() };
    match chars.as_slice() {
        [c, ..] if c.is_ascii_digit() => true,
        [' ' | '-', d, ..] => d.is_ascii_digit(),
        _ => false,
    }
}

/// The placeholders of one request.
#[derive(Debug, Default)]
pub struct Redactions {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, String>,
    counts: HashMap<&'static str, u32>,
}

impl Redactions {
    /// Whether anything was replaced.
    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }

    fn placeholder(&mut self, kind: &'static str, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        let p = format!("<<PII_{kind}_{n}>>");
        self.by_value.insert(value.to_owned(), p.clone());
        self.by_placeholder.insert(p.clone(), value.to_owned());
        p
    }

    /// `text` with every PII match replaced.
    pub fn redact_text(&mut self, text: &str) -> String {
        let mut out = text.to_owned();
        for (kind, re) in patterns() {
            if !re.is_match(&out) {
                continue;
            }
            let mut next = String::with_capacity(out.len());
            let mut last = 0;
            for m in re.find_iter(&out) {
                let s = m.as_str();
                let valid = match *kind {
                    "CARD" => luhn(s),
                    "IBAN" => iban_ok(s),
                    // A phone number is not a run cut out of a longer digit group (such as a
                    // card number that failed its checksum).
                    "PHONE" => !digit_group_near(&out[..m.start()], true) && !digit_group_near(&out[m.end()..], false),
                    _ => true,
                };
                if !valid || s.starts_with("<<PII_") {
                    continue;
                }
                next.push_str(&out[last..m.start()]);
                next.push_str(&self.placeholder(kind, s));
                last = m.end();
            }
            next.push_str(&out[last..]);
            out = next;
        }
        out
    }

    /// `text` with every known placeholder replaced by its value.
    pub fn restore_text(&self, text: &str) -> String {
        if self.is_empty() || !text.contains("<<PII_") {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("<<PII_") {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            match tail.find(">>").map(|e| &tail[..e + 2]).and_then(|p| self.by_placeholder.get(p).map(|v| (p.len(), v))) {
                Some((len, value)) => {
                    out.push_str(value);
                    rest = &tail[len..];
                }
                None => {
                    out.push_str("<<");
                    rest = &tail[2..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn restore_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.restore_text(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.restore_value(i)),
            Value::Object(m) => m.values_mut().for_each(|i| self.restore_value(i)),
            _ => {}
        }
    }

    fn redact_parts(&mut self, parts: &mut [Part]) {
        for part in parts {
            match part {
                Part::Text { text, .. } => *text = self.redact_text(text),
                Part::ToolResult { content, .. } => self.redact_parts(content),
                _ => {}
            }
        }
    }

    /// Redacts the system prompt, user turns and tool results of `req`.
    pub fn redact_request(&mut self, req: &mut Request) {
        for s in &mut req.system {
            s.text = self.redact_text(&s.text);
        }
        for m in &mut req.messages {
            if matches!(m.role, Role::User | Role::System | Role::Tool) {
                self.redact_parts(&mut m.content);
            }
        }
    }

    fn restore_parts(&self, parts: &mut [Part]) {
        for part in parts {
            match part {
                Part::Text { text, .. } | Part::Thinking { text, .. } => *text = self.restore_text(text),
                Part::ToolUse { input, .. } => self.restore_value(input),
                Part::ToolResult { content, .. } => self.restore_parts(content),
                _ => {}
            }
        }
    }

    /// Restores placeholders in a whole answer.
    pub fn restore_response(&self, resp: &mut Response) {
        if !self.is_empty() {
            self.restore_parts(&mut resp.content);
        }
    }
}

/// Restores placeholders in a stream, block by block.
#[derive(Debug, Default)]
pub struct StreamRestorer {
    /// Held-back tail per block index, with the kind of delta it came from.
    pending: HashMap<u32, (String, DeltaKind)>,
}

/// Length of the longest suffix of `s` that is the start of a placeholder (`<`, `<<`,
/// `<<PII_EMA`, `<<PII_EMAIL_1>`), which must wait for the next delta.
fn partial_tail(s: &str) -> usize {
    let Some(pos) = s.rfind('<') else { return 0 };
    // Step back over a `<<` pair.
    let start = if pos > 0 && s.as_bytes()[pos - 1] == b'<' { pos - 1 } else { pos };
    let tail = &s[start..];
    const HEAD: &str = "<<PII_";
    let could_be = if tail.len() <= HEAD.len() {
        HEAD.starts_with(tail)
    } else {
        tail.starts_with(HEAD)
            && !tail.contains(">>")
            && tail[HEAD.len()..].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '>')
            && tail.len() <= 32
    };
    if could_be { tail.len() } else { 0 }
}

#[derive(Debug, Clone, Copy)]
enum DeltaKind {
    Text,
    Thinking,
    ToolArgs,
}

impl StreamRestorer {
    fn push(&mut self, r: &Redactions, index: u32, delta: &str, kind: DeltaKind) -> String {
        let mut buf = self.pending.remove(&index).map(|(s, _)| s).unwrap_or_default();
        buf.push_str(delta);
        let keep = partial_tail(&buf);
        let ready = buf.len() - keep;
        let out = r.restore_text(&buf[..ready]);
        if keep > 0 {
            self.pending.insert(index, (buf[ready..].to_owned(), kind));
        }
        out
    }

    /// Rewrites `ev` (possibly into several events when a block closes with held-back text).
    pub fn apply(&mut self, r: &Redactions, ev: StreamEvent) -> Vec<StreamEvent> {
        if r.is_empty() {
            return vec![ev];
        }
        match ev {
            StreamEvent::TextDelta { index, text } => {
                let text = self.push(r, index, &text, DeltaKind::Text);
                if text.is_empty() { vec![] } else { vec![StreamEvent::TextDelta { index, text }] }
            }
            StreamEvent::ThinkingDelta { index, text } => {
                let text = self.push(r, index, &text, DeltaKind::Thinking);
                if text.is_empty() { vec![] } else { vec![StreamEvent::ThinkingDelta { index, text }] }
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                let fragment = self.push(r, index, &fragment, DeltaKind::ToolArgs);
                if fragment.is_empty() { vec![] } else { vec![StreamEvent::ToolArgsDelta { index, fragment }] }
            }
            StreamEvent::BlockStop { index } => {
                let mut out = Vec::new();
                if let Some((rest, kind)) = self.pending.remove(&index) {
                    // What was held back is not a placeholder after all (or an unknown one).
                    let text = r.restore_text(&rest);
                    out.push(match kind {
                        DeltaKind::Text => StreamEvent::TextDelta { index, text },
                        DeltaKind::Thinking => StreamEvent::ThinkingDelta { index, text },
                        DeltaKind::ToolArgs => StreamEvent::ToolArgsDelta { index, fragment: text },
                    });
                }
                out.push(StreamEvent::BlockStop { index });
                out
            }
            other => vec![other],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_each_kind_and_restores() {
        let mut r = Redactions::default();
        let text = "mail bob@example.com, card 4111 1111 1111 1111, iban DE89 3704 0044 0532 0130 00, ssn 123-45-6789, \
                    call +1 415-555-0100; again bob@example.com";
        let red = r.redact_text(text);
        assert_eq!(
            red,
            "mail <<PII_EMAIL_1>>, card <<PII_CARD_1>>, iban <<PII_IBAN_1>>, ssn <<PII_SSN_1>>, call <<PII_PHONE_1>>; again <<PII_EMAIL_1>>"
        );
        assert_eq!(r.restore_text(&red), text);
    }

    #[test]
    fn leaves_numbers_that_fail_their_checksum() {
        let mut r = Redactions::default();
        assert_eq!(r.redact_text("order 4111 1111 1111 1112 and year 2024"), "order 4111 1111 1111 1112 and year 2024");
        assert!(r.is_empty());
    }

    #[test]
    fn stream_restores_placeholders_split_anywhere() {
        let mut r = Redactions::default();
        let red = r.redact_text("write to a.b@c.io or x@y.org <3");
        for step in 1..=9 {
            let mut s = StreamRestorer::default();
            let mut out = String::new();
            let chars: Vec<char> = red.chars().collect();
            for chunk in chars.chunks(step) {
                let delta: String = chunk.iter().collect();
                for ev in s.apply(&r, StreamEvent::TextDelta { index: 0, text: delta }) {
                    if let StreamEvent::TextDelta { text, .. } = ev {
                        out.push_str(&text);
                    }
                }
            }
            for ev in s.apply(&r, StreamEvent::BlockStop { index: 0 }) {
                if let StreamEvent::TextDelta { text, .. } = ev {
                    out.push_str(&text);
                }
            }
            assert_eq!(out, "write to a.b@c.io or x@y.org <3", "step {step}");
        }
    }
}
