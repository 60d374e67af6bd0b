// The official MCP TypeScript SDK (it speaks 2025-11-25, with sessions) against the live
// binary: list the tools, call mess_status. Prints one JSON line; scripts/mcp/mcp_test.py
// checks it. Usage: node ts_client.mjs URL KEY
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "mess-exchange-test", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const status = await client.callTool({ name: "mess_status", arguments: {} });
console.log(JSON.stringify({
  protocol: transport.protocolVersion ?? null,
  tools: tools.tools.map((t) => t.name),
  status_error: status.isError ?? false,
  status_text: status.content?.[0]?.text ?? null,
}));
await client.close();
