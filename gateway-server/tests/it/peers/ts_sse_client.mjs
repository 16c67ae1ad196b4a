// Drives the hub's 2024-11-05 HTTP+SSE transport (`GET /sse`, `POST /messages`)
// with the official TypeScript SDK v1 `SSEClientTransport`.
//
// Usage: node ts_sse_client.mjs URL TOOL
//   env GATEHOUSE_KEY      the API key, sent as `Authorization: Bearer`
//   env PEERS_NODE_MODULES the node_modules folder holding `@modelcontextprotocol/sdk`
// Prints one JSON object: the negotiated version, the tool names, and TOOL's result.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [url, tool] = process.argv.slice(2);
const sdk = join(process.env.PEERS_NODE_MODULES, '@modelcontextprotocol/sdk/dist/esm/client');
const { Client } = await import(pathToFileURL(join(sdk, 'index.js')).href);
const { SSEClientTransport } = await import(pathToFileURL(join(sdk, 'sse.js')).href);

const transport = new SSEClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${process.env.GATEHOUSE_KEY}` } },
});
const client = new Client({ name: 'gatehouse-sse-test', version: '1.0.0' });
await client.connect(transport);
const tools = await client.listTools();
const result = await client.callTool({ name: tool, arguments: {} });
console.log(JSON.stringify({
    protocolVersion: transport.protocolVersion ?? null,
    server: client.getServerVersion(),
    tools: tools.tools.map((t) => t.name),
    result,
}));
await client.close();
