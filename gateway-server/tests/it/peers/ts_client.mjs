// Drives the hub's aggregated /mcp endpoint with the official TypeScript
// client SDK (`@modelcontextprotocol/client` 2.x) over streamable HTTP.
//
// Usage: node ts_client.mjs URL PLAN_JSON
//   env GATEHOUSE_KEY     the API key, sent as `Authorization: Bearer`
//   env PEERS_NODE_MODULES the node_modules folder holding the SDK
//
// PLAN_JSON is a list of steps, run in order after listing everything:
//   {"tool": NAME, "arguments": {...}} | {"resource": URI} | {"prompt": NAME, "arguments": {...}}
// Prints one JSON object on stdout: what the client saw, and for each step the
// result or {"error": {"code", "message"}}. The test asserts on it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [url, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);
const pkgDir = join(process.env.PEERS_NODE_MODULES, '@modelcontextprotocol/client');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const { Client, StreamableHTTPClientTransport } = await import(
    pathToFileURL(join(pkgDir, pkg.exports['.'].import.default)).href
);

async function listAll(fetch, key) {
    const items = [];
    let cursor;
    do {
        const page = await fetch(cursor === undefined ? undefined : { cursor });
        items.push(...page[key]);
        cursor = page.nextCursor;
    } while (cursor);
    return items;
}

async function runStep(client, step) {
    try {
        let result;
        if ('tool' in step) {
            result = await client.callTool({ name: step.tool, arguments: step.arguments ?? {} });
        } else if ('resource' in step) {
            result = await client.readResource({ uri: step.resource });
        } else if ('prompt' in step) {
            result = await client.getPrompt({ name: step.prompt, arguments: step.arguments ?? {} });
        } else {
            throw new Error(`unknown step ${JSON.stringify(step)}`);
        }
        return { result };
    } catch (e) {
        return { error: { code: typeof e.code === 'number' ? e.code : null, message: String(e.message ?? e) } };
    }
}

const client = new Client({ name: 'gatehouse-peer-test', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${process.env.GATEHOUSE_KEY}` } },
});
await client.connect(transport);
const out = {
    client: { name: '@modelcontextprotocol/client', version: pkg.version },
    protocolVersion: client.getNegotiatedProtocolVersion(),
    serverInfo: client.getServerVersion() ?? null,
    capabilities: client.getServerCapabilities() ?? null,
    tools: (await listAll(p => client.listTools(p), 'tools')).map(t => t.name),
    prompts: (await listAll(p => client.listPrompts(p), 'prompts')).map(p => p.name),
    resources: (await listAll(p => client.listResources(p), 'resources')).map(r => r.uri),
    resourceTemplates: (await listAll(p => client.listResourceTemplates(p), 'resourceTemplates')).map(t => t.uriTemplate),
    steps: [],
};
for (const step of plan) {
    out.steps.push(await runStep(client, step));
}
// Ends the session (DELETE) and closes the transport.
await transport.terminateSession();
await client.close();
process.stdout.write(JSON.stringify(out) + '\n');
