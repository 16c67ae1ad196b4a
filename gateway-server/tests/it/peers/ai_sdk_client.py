"""The official `openai` and `anthropic` Python SDKs against the hub's AI proxy.

Usage: ai_sdk_client.py BASE_URL
Env:   GATEHOUSE_KEY (a key with surface `ai`), GATEHOUSE_BROKE_KEY (a key whose budget is used up)

Runs each scenario, catching its errors, and prints one JSON object: scenario -> what the
SDK returned (or {"error": class name, "status": ...}). The Rust test asserts on it.
"""

import json
import os
import sys
import traceback

import anthropic
import openai

BASE = sys.argv[1].rstrip("/")
KEY = os.environ["GATEHOUSE_KEY"]
BROKE = os.environ["GATEHOUSE_BROKE_KEY"]

oa = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=30)
an = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=30)

TOOLS_OA = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}]
TOOLS_AN = [{
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}]

results = {}


def scenario(fn):
    try:
        results[fn.__name__] = fn()
    except Exception as e:  # reported, asserted on by the Rust side
        results[fn.__name__] = {
            "error": type(e).__name__,
            "status": getattr(e, "status_code", None),
            "message": str(e)[:300],
            "trace": traceback.format_exc()[-600:],
        }


@scenario
def openai_chat():
    r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello sdk"}])
    return {"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason, "prompt_tokens": r.usage.prompt_tokens}


@scenario
def openai_stream():
    text = ""
    usage = None
    with oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream sdk [mock chunk=3]"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as s:
        for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage.completion_tokens
    return {"text": text, "usage": usage}


@scenario
def openai_sdk_calls_claude_with_tools():
    """A multi-turn tool-use conversation: OpenAI format to an Anthropic provider."""
    messages = [{"role": "user", "content": "please use tool now"}]
    r = oa.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=TOOLS_OA)
    call = r.choices[0].message.tool_calls[0]
    messages.append({
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}],
    })
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "42"})
    r2 = oa.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=TOOLS_OA)
    return {
        "finish1": r.choices[0].finish_reason,
        "tool": call.function.name,
        "arguments": json.loads(call.function.arguments),
        "text2": r2.choices[0].message.content,
    }


@scenario
def anthropic_sdk_calls_gpt():
    r = an.messages.create(model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "hi from anthropic"}])
    return {"text": r.content[0].text, "stop": r.stop_reason, "input_tokens": r.usage.input_tokens}


@scenario
def anthropic_stream_gpt():
    with an.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "stream é日本 [mock chunk=2]"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    return {"text": text, "output_tokens": final.usage.output_tokens, "stop": final.stop_reason}


@scenario
def anthropic_tools_gpt():
    """A multi-turn tool-use conversation: Anthropic format to an OpenAI provider."""
    messages = [{"role": "user", "content": "use tool please"}]
    r = an.messages.create(model="gpt-4o-mini", max_tokens=100, tools=TOOLS_AN, messages=messages)
    use = [b for b in r.content if b.type == "tool_use"][0]
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]})
    r2 = an.messages.create(model="gpt-4o-mini", max_tokens=100, tools=TOOLS_AN, messages=messages)
    return {"stop1": r.stop_reason, "tool": use.name, "input": use.input, "text2": r2.content[0].text}


@scenario
def count_tokens():
    r = an.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "how many tokens is this"}])
    return {"input_tokens": r.input_tokens}


@scenario
def models():
    return {
        "openai": [m.id for m in oa.models.list()],
        "anthropic": [m.id for m in an.models.list()],
    }


@scenario
def error_mid_stream():
    got = ""
    try:
        with an.messages.stream(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "a b c d e f [mock error_after=4]"}]
        ) as s:
            for t in s.text_stream:
                got += t
    except anthropic.APIError as e:
        return {"raised": type(e).__name__, "message": str(e)[:200], "got": got}
    return {"raised": None, "got": got}


@scenario
def openai_error_mid_stream():
    got = ""
    try:
        for chunk in oa.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "a b c d e f [mock error_after=3]"}]
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                got += chunk.choices[0].delta.content
    except openai.APIError as e:
        return {"raised": type(e).__name__, "message": str(e)[:200], "got": got}
    return {"raised": None, "got": got}


@scenario
def disconnect_mid_stream():
    """Reads the first text delta, then closes the connection."""
    with an.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 [mock event_delay_ms=40 input_tokens=5 output_tokens=9 abort_marker]"}],
    ) as s:
        for t in s.text_stream:
            first = t
            break
    return {"first": first}


@scenario
def budget_exhausted():
    broke = openai.OpenAI(base_url=BASE + "/v1", api_key=BROKE, max_retries=0, timeout=30)
    try:
        broke.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError as e:
        return {"status": e.status_code, "message": e.message, "retry_after": e.response.headers.get("retry-after")}
    return {"status": 200}


print(json.dumps(results))
