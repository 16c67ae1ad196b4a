"""Drives the hub's aggregated /mcp endpoint with the official Python `mcp` client.

Usage: python_client.py URL PLAN_JSON   (the API key comes from env GATEHOUSE_KEY)

PLAN_JSON is a list of steps, run in order after listing everything:
  {"tool": NAME, "arguments": {...}} | {"resource": URI} | {"prompt": NAME, "arguments": {...}}
Prints one JSON object on stdout: what the client saw, and for each step the
result as JSON or {"error": {"code", "message"}}. The test asserts on it.
"""

import asyncio
import importlib.metadata
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def list_all(fetch, key):
    """Every item of a paginated list, following nextCursor."""
    items, cursor = [], None
    while True:
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, key))
        cursor = page.next_cursor
        if not cursor:
            return items


async def run_step(client, step):
    try:
        if "tool" in step:
            result = await client.call_tool(step["tool"], step.get("arguments") or {})
        elif "resource" in step:
            result = await client.read_resource(step["resource"])
        elif "prompt" in step:
            result = await client.get_prompt(step["prompt"], step.get("arguments") or None)
        else:
            raise ValueError(f"unknown step {step!r}")
        return {"result": dump(result)}
    except MCPError as e:
        return {"error": {"code": e.code, "message": e.message}}


async def main(url, plan):
    headers = {"Authorization": f"Bearer {os.environ['GATEHOUSE_KEY']}"}
    # The SDK's way to send headers: its transport over a configured HTTP client.
    timeout = httpx2.Timeout(30, read=300)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http)
        # mode="auto" (the default) probes server/discover first and falls back
        # to the initialize handshake; caching off so every read reaches the hub.
        async with Client(transport, mode="auto", cache=None) as client:
            out = {
                "client": {"name": "mcp (python)", "version": importlib.metadata.version("mcp")},
                "protocolVersion": client.protocol_version,
                "serverInfo": dump(client.server_info) if client.server_info else None,
                "capabilities": dump(client.server_capabilities),
                "tools": [t.name for t in await list_all(client.list_tools, "tools")],
                "prompts": [p.name for p in await list_all(client.list_prompts, "prompts")],
                "resources": [r.uri for r in await list_all(client.list_resources, "resources")],
                "resourceTemplates": [
                    t.uri_template for t in await list_all(client.list_resource_templates, "resource_templates")
                ],
                "steps": [],
            }
            for step in plan:
                out["steps"].append(await run_step(client, step))
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
