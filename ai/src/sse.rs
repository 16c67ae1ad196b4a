//! Server-sent events: a byte-level decoder and an encoder.
//!
//! The decoder splits lines on raw bytes and decodes UTF-8 only once a line is complete.
//! Network reads can end anywhere, including inside a multi-byte character ("é" is two
//! bytes, "日" three, an emoji four); decoding each read on its own would corrupt such a
//! character, so bytes wait in the line buffer until their line ends. Line ends are `\n`,
//! `\r\n` or a lone `\r`, as the SSE specification allows, including a `\r\n` split across
//! two reads. Comments (`: keep-alive`) are skipped, `data:` lines of one event are joined
//! with `\n`, and a UTF-8 byte-order mark at the very start is ignored.
//!
//! Gemini's `streamGenerateContent?alt=sse` is plain SSE too, so every format uses this.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen.
    pub id: Option<String>,
}

/// Incremental SSE decoder; feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous read ended in `\r`: a `\n` opening the next read belongs to that line end.
    after_cr: bool,
    seen_first_line: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consume a read; returns the events it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            self.end_line(&mut out);
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => rest = &rest[pos + 2..],
                    Some(_) => rest = &rest[pos + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[pos + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        out
    }

    /// The stream ended: an unterminated last line and an event without its closing blank
    /// line are still delivered, because some servers close right after the last `data:` line.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        self.after_cr = false;
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let bytes = std::mem::take(&mut self.line);
        // Invalid UTF-8 is replaced, not fatal: one bad byte must not kill a stream.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let mut line = text.as_str();
        if !self.seen_first_line {
            self.seen_first_line = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.has_data {
            self.has_data = false;
            out.push(SseEvent { event, data: std::mem::take(&mut self.data), id: self.id.clone() });
        }
    }
}

/// Encode one event: `event: <name>` (when given), one `data:` line per line of `data`, and
/// the blank line that ends the event.
pub fn encode(event: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(name) = event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], step: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            out.extend(d.feed(chunk));
        }
        out.extend(d.finish());
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_owned), data: data.to_owned(), id: None }
    }

    #[test]
    fn accepts_lf_crlf_and_cr_line_ends_in_any_slicing() {
        for input in
            [&b"event: a\ndata: 1\n\ndata: 2\n\n"[..], b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", b"event: a\rdata: 1\r\rdata: 2\r\r"]
        {
            for step in 1..=7 {
                assert_eq!(all(input, step), vec![ev(Some("a"), "1"), ev(None, "2")], "step {step}");
            }
        }
    }

    #[test]
    fn multi_byte_characters_survive_any_split() {
        let input = "data: é日本🙂\n\n".as_bytes();
        for step in 1..=7 {
            assert_eq!(all(input, step), vec![ev(None, "é日本🙂")]);
        }
    }

    #[test]
    fn joins_multi_line_data_and_skips_comments() {
        let input = b": keep-alive\ndata: a\ndata:b\nid: 7\nretry: 10\n\n";
        let got = all(input, 3);
        assert_eq!(got, vec![SseEvent { event: None, data: "a\nb".into(), id: Some("7".into()) }]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_name_resets() {
        assert_eq!(all(b"event: x\n\ndata: y\n\n", 2), vec![ev(None, "y")]);
    }

    #[test]
    fn finish_delivers_an_unterminated_last_event() {
        assert_eq!(all(b"data: last", 4), vec![ev(None, "last")]);
    }

    #[test]
    fn strips_a_leading_byte_order_mark() {
        assert_eq!(all("\u{feff}data: x\n\n".as_bytes(), 1), vec![ev(None, "x")]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(all(b"data: \xff\n\n", 1), vec![ev(None, "\u{fffd}")]);
    }

    #[test]
    fn encode_writes_event_name_and_data_lines() {
        assert_eq!(encode(Some("ping"), "{}"), b"event: ping\ndata: {}\n\n");
        assert_eq!(encode(None, "a\nb"), b"data: a\ndata: b\n\n");
    }
}
