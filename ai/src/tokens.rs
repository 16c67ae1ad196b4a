//! Token arithmetic that needs no provider: output limits per model and a cheap input-size
//! estimate.

use crate::model::{ImageSource, Part, Request};

/// Output-token limit to send when the client set none but the provider requires one
/// (Anthropic's `max_tokens` is mandatory; OpenAI's and Gemini's are not).
///
/// The value is the model's documented maximum output, so an OpenAI client, whose requests
/// have no limit by default, is not cut short by the translation. Model names are matched by
/// substring so that dated names and Bedrock/Vertex ids (`us.anthropic.claude-sonnet-4-…-v1:0`)
/// are recognised. Unknown models get 4096, which every current model accepts.
pub fn default_max_tokens(model: &str) -> u32 {
    let m = model.to_ascii_lowercase();
    let table: &[(&str, u32)] = &[
        ("claude-opus-4-1", 32_000),
        ("claude-opus-4-0", 32_000),
        ("claude-opus-4-2025", 32_000),
        ("claude-opus-4", 64_000),
        ("claude-sonnet-4", 64_000),
        ("claude-haiku-4", 64_000),
        ("claude-3-7-sonnet", 64_000),
        ("claude-3-5-sonnet", 8_192),
        ("claude-3-5-haiku", 8_192),
        ("claude-3-opus", 4_096),
        ("claude-3-haiku", 4_096),
        ("claude-3-sonnet", 4_096),
        ("gemini-3", 65_536),
        ("gemini-2.5", 65_536),
        ("gemini-2.0", 8_192),
        ("gemini-1.5", 8_192),
    ];
    table.iter().find(|(prefix, _)| m.contains(prefix)).map_or(4_096, |(_, n)| *n)
}

/// OpenAI's reasoning models (o1, o3, o4, gpt-5 families) reject `max_tokens` and want
/// `max_completion_tokens`; older chat models and most OpenAI-compatible servers know only
/// `max_tokens`.
pub fn wants_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    m.starts_with("gpt-5") || {
        let mut chars = m.chars();
        chars.next() == Some('o') && chars.next().is_some_and(|c| c.is_ascii_digit())
    }
}

/// Flat charge for one image: Anthropic bills at most about 1,600 tokens for an image after
/// resizing, OpenAI's high-detail tiles land in the same range.
const IMAGE_TOKENS: u64 = 1_600;
/// Per-message framing (role markers and separators).
const MESSAGE_OVERHEAD: u64 = 4;

/// Estimate a request's input tokens without asking the provider, for
/// `/v1/messages/count_tokens` against providers that have no counting endpoint.
///
/// Heuristic: one token per 4 characters (Unicode scalar values) of all text the model
/// reads — system prompt, message text, thinking, tool-call arguments and results (as JSON),
/// and tool names, descriptions and schemas (as JSON) — rounded up, plus 4 tokens per message
/// and 1,600 per image. English prose averages about 4 characters per token with current
/// tokenizers; code and JSON come out a little under-counted, CJK text over-counted.
pub fn estimate_tokens(request: &Request) -> u32 {
    let mut chars: u64 = 0;
    let mut fixed: u64 = 0;
    let len = |s: &str| s.chars().count() as u64;
    for part in &request.system {
        chars += len(&part.text);
    }
    for tool in &request.tools {
        chars += len(&tool.name);
        chars += tool.description.as_deref().map_or(0, len);
        chars += len(&tool.input_schema.to_string());
    }
    fn parts(list: &[Part], chars: &mut u64, fixed: &mut u64) {
        for part in list {
            match part {
                Part::Text { text, .. } | Part::Thinking { text, .. } => *chars += text.chars().count() as u64,
                Part::Image { source, .. } => {
                    *fixed += IMAGE_TOKENS;
                    if let ImageSource::Url { url } = source {
                        *chars += url.chars().count() as u64;
                    }
                }
                Part::ToolUse { name, input, .. } => {
                    *chars += name.chars().count() as u64 + input.to_string().chars().count() as u64;
                }
                Part::ToolResult { content, .. } => parts(content, chars, fixed),
                Part::RedactedThinking { .. } => {}
            }
        }
    }
    for message in &request.messages {
        fixed += MESSAGE_OVERHEAD;
        parts(&message.content, &mut chars, &mut fixed);
    }
    let total = chars.div_ceil(4) + fixed;
    u32::try_from(total).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_models_want_max_completion_tokens() {
        for m in ["o1", "o1-mini", "o3-2025-04-16", "o4-mini", "gpt-5", "gpt-5-mini", "openai/o3"] {
            assert!(wants_max_completion_tokens(m), "{m}");
        }
        for m in ["gpt-4o", "gpt-4.1-mini", "llama-3.1-70b", "omni-moderation", "claude-sonnet-4-5"] {
            assert!(!wants_max_completion_tokens(m), "{m}");
        }
    }

    #[test]
    fn default_max_tokens_knows_current_models() {
        assert_eq!(default_max_tokens("claude-sonnet-4-5-20250929"), 64_000);
        assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-20250514"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-5"), 64_000);
        assert_eq!(default_max_tokens("us.anthropic.claude-3-5-haiku-20241022-v1:0"), 8_192);
        assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4_096);
        assert_eq!(default_max_tokens("something-else"), 4_096);
    }
}
