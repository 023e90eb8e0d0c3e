// The official TypeScript SDK client against the gateway, for meshmux's end-to-end tests.
// Usage: node client.mjs '<spec JSON>' where the spec is
//   {"url": "...", "headers": {"name": "value"}, "calls": [{"name": "...", "arguments": {...},
//    "progress": true}]}
// It connects over Streamable HTTP (initialize handshake), lists every tool, makes the calls in
// order and prints one JSON object on stdout:
//   {"protocolVersion", "serverVersion", "tools": [...], "results": [{"result"} | {"error"}],
//    "progress": [[notification params, ...] per call]}
// Errors go to stderr with a non-zero exit.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.url) {
  console.error("usage: node client.mjs '{\"url\": ..., \"calls\": [...]}'");
  process.exit(2);
}

const transport = new StreamableHTTPClientTransport(new URL(spec.url), {
  requestInit: { headers: spec.headers ?? {} },
});
const client = new Client({ name: "meshmux-e2e-ts", version: "1.0.0" });
await client.connect(transport);

const tools = [];
let cursor;
do {
  const page = await client.listTools(cursor ? { cursor } : undefined);
  tools.push(...page.tools);
  cursor = page.nextCursor;
} while (cursor);

const results = [];
const progress = [];
for (const call of spec.calls ?? []) {
  const seen = [];
  const options = call.progress ? { onprogress: (p) => seen.push(p) } : undefined;
  try {
    const result = await client.callTool(
      { name: call.name, arguments: call.arguments ?? {} },
      undefined,
      options,
    );
    results.push({ result });
  } catch (e) {
    results.push({ error: { code: e.code ?? null, message: String(e.message ?? e) } });
  }
  progress.push(seen);
}

const out = {
  protocolVersion: transport.protocolVersion ?? null,
  serverVersion: client.getServerVersion() ?? null,
  tools,
  results,
  progress,
};
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
