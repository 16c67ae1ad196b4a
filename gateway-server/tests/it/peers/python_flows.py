"""Drives server->client flows through the hub's /mcp with the official Python `mcp` client.

Usage: python_flows.py URL MODE PLAN_JSON   (the API key comes from env GATEHOUSE_KEY)

MODE is the client's `mode=`: "legacy" (initialize handshake) or "auto" (probes
server/discover, then falls back to the handshake the hub offers).
PLAN_JSON: {"who": NAME, "token": TEXT, "flows": [FLOW, ...], "steps": N?, "prefix": TOOL_PREFIX?, "barrier": DIR?,
"peers": [NAME, ...]?}, TOOL_PREFIX being how the hub names server-everything's tools
("everything__" by default)
with FLOW one of sampling, elicitation, url_elicitation, progress, cancel,
list_changed, subscribe, logging, metadata. With "barrier", the client waits
before each flow until every peer reached the same flow (a file per peer and
flow in DIR), so the flows of several clients overlap.

Prints one JSON object on stdout: for each flow what the client saw (callback
arguments, notifications, results, errors). The Rust test asserts on it.
"""

import asyncio
import importlib.metadata
import json
import os
import sys
import time
import warnings

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

# The flows use handshake-era features on purpose (subscriptions, logging/setLevel).
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

PREFIX = "everything__"
FEATURES = "demo://resource/static/document/features.md"


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def texts(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


class Seen:
    """Everything that reached the client on its own: server requests and notifications."""

    def __init__(self, token, steps):
        self.token = token
        self.steps = steps
        self.sampling = []
        self.elicitation = []
        self.logs = []
        self.notifications = []
        self.changed = anyio.Event()

    def note(self, entry):
        self.notifications.append(entry)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, pred, what, timeout=30):
        with anyio.fail_after(timeout, shield=False):
            while not pred():
                await self.changed.wait()
        return True

    async def sampling_callback(self, context, params):
        text = params.messages[0].content.text
        self.sampling.append({"text": text, "maxTokens": params.max_tokens, "requestId": str(context.request_id)})
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled-for-{self.token}"),
            model="gatehouse-test-model",
            stop_reason="endTurn",
        )

    async def elicitation_callback(self, context, params):
        mode = getattr(params, "mode", None) or "form"
        entry = {"mode": mode, "message": params.message, "requestId": str(context.request_id)}
        if mode == "url":
            entry["url"] = params.url
            entry["elicitationId"] = params.elicitation_id
            self.elicitation.append(entry)
            return types.ElicitResult(action="accept")
        entry["properties"] = sorted((params.requested_schema or {}).get("properties", {}).keys())
        self.elicitation.append(entry)
        return types.ElicitResult(action="accept", content={"name": f"name-{self.token}", "check": True, "integer": 7})

    async def logging_callback(self, params):
        self.logs.append({"level": params.level, "data": params.data})
        self.note({"method": "notifications/message", "level": params.level, "data": params.data})

    async def message_handler(self, message):
        if isinstance(message, Exception):
            self.note({"exception": repr(message)})
            return
        inner = getattr(message, "root", message)
        method = getattr(inner, "method", None)
        params = getattr(inner, "params", None)
        self.note({"method": method, "params": dump(params) if params is not None else None})


async def flow_sampling(client, seen):
    result = await client.call_tool(f"{PREFIX}trigger-sampling-request", {"prompt": f"prompt-{seen.token}", "maxTokens": 21})
    return {"result": texts(result), "isError": result.is_error, "callbacks": seen.sampling}


async def flow_elicitation(client, seen):
    result = await client.call_tool(f"{PREFIX}trigger-elicitation-request", {})
    return {"result": texts(result), "isError": result.is_error, "callbacks": [e for e in seen.elicitation if e["mode"] == "form"]}


async def flow_url_elicitation(client, seen):
    url = f"https://example.invalid/consent/{seen.token}"
    result = await client.call_tool(f"{PREFIX}trigger-url-elicitation", {"url": url, "elicitationId": f"eid-{seen.token}"})
    out = {"result": texts(result), "isError": result.is_error}
    # The error path: -32042 with its prerequisite elicitation in `data`, untouched by the hub.
    try:
        await client.call_tool(f"{PREFIX}trigger-url-elicitation", {"url": url, "errorPath": True})
        out["errorPath"] = None
    except MCPError as e:
        out["errorPath"] = {"code": e.code, "message": e.message, "data": e.error.data}
    out["callbacks"] = [e for e in seen.elicitation if e["mode"] == "url"]
    return out


async def flow_progress(client, seen):
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "total": total})

    result = await client.call_tool(
        f"{PREFIX}trigger-long-running-operation", {"duration": 1, "steps": seen.steps}, progress_callback=on_progress
    )
    return {"result": texts(result), "progress": progress}


async def flow_cancel(client, seen):
    progress = []
    got_two = anyio.Event()

    async def on_progress(value, total, message):
        progress.append({"progress": value, "total": total, "at": time.monotonic()})
        if len(progress) >= 2:
            got_two.set()

    started = time.monotonic()
    outcome = {}

    async def call():
        try:
            await client.call_tool(
                f"{PREFIX}trigger-long-running-operation", {"duration": 30, "steps": 60}, progress_callback=on_progress
            )
            outcome["finished"] = True
        except MCPError as e:
            outcome["error"] = {"code": e.code, "message": e.message}

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.fail_after(20):
            await got_two.wait()
        # Cancelling the task abandons the request: the client sends notifications/cancelled.
        tg.cancel_scope.cancel()
    cancelled_at = time.monotonic()
    before = len(progress)
    # The session keeps working, and a full round trip later no late progress
    # for the cancelled call has arrived.
    echo = await client.call_tool(f"{PREFIX}echo", {"message": f"after-cancel-{seen.token}"})
    return {
        "progressBeforeCancel": before,
        "progressAfterCancel": len(progress) - before,
        "secondsUntilCancel": cancelled_at - started,
        "outcome": outcome,
        "after": texts(echo),
    }


STATELESS = "2026-07-28"


async def next_event(sub, want):
    """The first event of `sub` that `want` accepts, within 20 s."""
    with anyio.fail_after(20):
        async for event in sub:
            if want(event):
                return event
    raise TimeoutError("the listen stream ended")


async def flow_list_changed(client, seen):
    name = f"gatehouse-{seen.token}.txt.gz"
    uri = f"demo://resource/session/{name}"
    if client.protocol_version == STATELESS:
        # 2026-07-28: change notifications come on a subscriptions/listen stream.
        async with client.listen(resources_list_changed=True) as sub:
            result = await client.call_tool(
                f"{PREFIX}gzip-file-as-resource", {"name": name, "data": "data:text/plain;base64,aGVsbG8gZ2F0ZWhvdXNl"}
            )
            event = await next_event(sub, lambda e: "resource" in type(e).__name__.lower())
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        links = [dump(c) for c in result.content if getattr(c, "type", None) == "resource_link"]
        return {"listChanged": True, "event": type(event).__name__, "listed": uri in listed, "links": links}
    mark = len(seen.notifications)
    result = await client.call_tool(
        f"{PREFIX}gzip-file-as-resource", {"name": name, "data": "data:text/plain;base64,aGVsbG8gZ2F0ZWhvdXNl"}
    )
    await seen.wait_for(
        lambda: any(n.get("method") == "notifications/resources/list_changed" for n in seen.notifications[mark:]), "list_changed"
    )
    listed = [str(r.uri) for r in (await client.list_resources()).resources]
    links = [dump(c) for c in result.content if getattr(c, "type", None) == "resource_link"]
    return {"listChanged": True, "listed": uri in listed, "links": links}


async def flow_subscribe(client, seen):
    if client.protocol_version == STATELESS:
        async with client.listen(resource_subscriptions=[FEATURES]) as sub:
            toggled = await client.call_tool(f"{PREFIX}toggle-subscriber-updates", {})
            try:
                event = await next_event(sub, lambda e: str(getattr(e, "uri", "")) == FEATURES)
                got = True
            except TimeoutError:
                event, got = None, False
            finally:
                await client.call_tool(f"{PREFIX}toggle-subscriber-updates", {})
        return {"updated": got, "event": type(event).__name__, "toggled": texts(toggled)}
    mark = len(seen.notifications)
    await client.subscribe_resource(FEATURES)

    def updated():
        return any(
            n.get("method") == "notifications/resources/updated" and (n.get("params") or {}).get("uri") == FEATURES
            for n in seen.notifications[mark:]
        )

    toggled = await client.call_tool(f"{PREFIX}toggle-subscriber-updates", {})
    try:
        await seen.wait_for(updated, "resources/updated")
        got = True
    except TimeoutError:
        got = False
    finally:
        # The toggle is per server process: switch it off again for the next client.
        await client.call_tool(f"{PREFIX}toggle-subscriber-updates", {})
        await client.unsubscribe_resource(FEATURES)
    return {"updated": got, "toggled": texts(toggled)}


async def flow_logging(client, seen):
    # server-everything logs at level info when a client subscribes; the log
    # travels with the subscribe call. The level the client set decides.
    marks = {}
    out = {}
    for label, level, uri in [
        ("atInfo", "info", "demo://resource/dynamic/text/1"),
        ("atError", "error", "demo://resource/dynamic/text/2"),
        ("againAtInfo", "info", "demo://resource/dynamic/text/3"),
    ]:
        await client.set_logging_level(level)
        marks[label] = uri
        await client.subscribe_resource(uri)
        await client.unsubscribe_resource(uri)

    def seen_for(uri):
        return any(uri in str(entry["data"]) and "Subscribe" in str(entry["data"]) for entry in seen.logs)

    try:
        await seen.wait_for(lambda: seen_for(marks["againAtInfo"]), "the last log")
    except TimeoutError:
        pass
    for label, uri in marks.items():
        out[label] = seen_for(uri)
    out["levels"] = sorted({entry["level"] for entry in seen.logs})
    return out


async def flow_metadata(client, seen):
    tools = {t.name: dump(t) for t in (await client.list_tools()).tools}
    structured = tools.get(f"{PREFIX}get-structured-content", {})
    result = await client.call_tool(f"{PREFIX}get-structured-content", {"location": "New York"})
    links = await client.call_tool(f"{PREFIX}get-resource-links", {"count": 2})
    return {
        "title": structured.get("title"),
        "annotations": structured.get("annotations"),
        "outputSchema": structured.get("outputSchema"),
        "structuredContent": dump(result).get("structuredContent"),
        "links": [dump(c) for c in links.content if getattr(c, "type", None) == "resource_link"],
        "longRunningAnnotations": tools.get(f"{PREFIX}trigger-long-running-operation", {}).get("annotations"),
    }


FLOWS = {
    "sampling": flow_sampling,
    "elicitation": flow_elicitation,
    "url_elicitation": flow_url_elicitation,
    "progress": flow_progress,
    "cancel": flow_cancel,
    "list_changed": flow_list_changed,
    "subscribe": flow_subscribe,
    "logging": flow_logging,
    "metadata": flow_metadata,
}


async def barrier(plan, flow):
    """Waits until every peer reached `flow` (files in the shared directory)."""
    directory = plan.get("barrier")
    if not directory:
        return
    open(os.path.join(directory, f"{flow}.{plan['who']}"), "w").close()
    with anyio.fail_after(60):
        while not all(os.path.exists(os.path.join(directory, f"{flow}.{p}")) for p in plan["peers"]):
            await anyio.sleep(0.01)


async def main(url, mode, plan):
    global PREFIX
    PREFIX = plan.get("prefix", PREFIX)
    seen = Seen(plan["token"], plan.get("steps", 4))
    headers = {"Authorization": f"Bearer {os.environ['GATEHOUSE_KEY']}"}
    timeout = httpx2.Timeout(30, read=300)
    out = {"who": plan["who"], "mode": mode, "client": {"name": "mcp (python)", "version": importlib.metadata.version("mcp")}}
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            mode=mode,
            cache=None,
            sampling_callback=seen.sampling_callback,
            elicitation_callback=seen.elicitation_callback,
            logging_callback=seen.logging_callback,
            message_handler=seen.message_handler,
        ) as client:
            out["protocolVersion"] = client.protocol_version
            out["flows"] = {}
            for flow in plan["flows"]:
                await barrier(plan, flow)
                try:
                    out["flows"][flow] = await FLOWS[flow](client, seen)
                except MCPError as e:
                    out["flows"][flow] = {"error": {"code": e.code, "message": e.message, "data": e.error.data}}
                except Exception as e:  # reported, not raised: the test names the flow that failed
                    out["flows"][flow] = {"error": {"code": None, "message": repr(e)}}
            out["sampling"] = seen.sampling
            out["elicitation"] = seen.elicitation
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
