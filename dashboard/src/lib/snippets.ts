// Copy-paste client setups with the hub URL and key filled in.

export interface Snippet {
  id: string;
  title: string;
  where: string;
  text: string;
}

export function snippets(hub: string, key: string): Snippet[] {
  const mcp = `${hub}/mcp`;
  const ai = `${hub}/v1`;
  return [
    {
      id: "claude-code",
      title: "Claude Code",
      where: "Run in a terminal:",
      text: `claude mcp add --transport http gatehouse ${mcp} --header "Authorization: Bearer ${key}"`,
    },
    {
      id: "claude-desktop",
      title: "Claude Desktop",
      where: "claude_desktop_config.json (Desktop starts stdio servers, so mcp-remote bridges):",
      text: JSON.stringify(
        {
          mcpServers: {
            gatehouse: {
              command: "npx",
              args: ["-y", "mcp-remote", mcp, "--header", "Authorization:Bearer ${GATEHOUSE_KEY}"],
              env: { GATEHOUSE_KEY: key },
            },
          },
        },
        null,
        2,
      ),
    },
    {
      id: "cursor",
      title: "Cursor",
      where: "~/.cursor/mcp.json:",
      text: JSON.stringify({ mcpServers: { gatehouse: { url: mcp, headers: { Authorization: `Bearer ${key}` } } } }, null, 2),
    },
    {
      id: "vscode",
      title: "VS Code",
      where: ".vscode/mcp.json:",
      text: JSON.stringify({ servers: { gatehouse: { type: "http", url: mcp, headers: { Authorization: `Bearer ${key}` } } } }, null, 2),
    },
    {
      id: "openai",
      title: "OpenAI SDK (Python)",
      where: "The AI API speaks the OpenAI format:",
      text: `from openai import OpenAI\n\nclient = OpenAI(base_url="${ai}", api_key="${key}")\nreply = client.chat.completions.create(\n    model="gpt-4o-mini",\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`,
    },
    {
      id: "anthropic",
      title: "Anthropic SDK (Python)",
      where: "… and the Anthropic format:",
      text: `from anthropic import Anthropic\n\nclient = Anthropic(base_url="${hub}", api_key="${key}")\nreply = client.messages.create(\n    model="claude-sonnet-4-5",\n    max_tokens=256,\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.content[0].text)`,
    },
    {
      id: "curl",
      title: "curl",
      where: "List the tools through /mcp:",
      text: `curl -s ${mcp} \\\n  -H "Authorization: Bearer ${key}" \\\n  -H "Content-Type: application/json" \\\n  -H "Accept: application/json, text/event-stream" \\\n  -H "MCP-Protocol-Version: 2025-06-18" \\\n  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'`,
    },
  ];
}
