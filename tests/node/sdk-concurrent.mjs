// Several official TypeScript SDK v1 clients (initialize era) at once through meshmux, each
// calling server-everything's tools that ask the client something (elicitation, sampling) at
// the same moment, each answering with its own identity; for meshmux's isolation tests.
// Usage: node sdk-concurrent.mjs '{"url": "...", "env": "Alpha", "clients": 4, "timeout": 15}'
// Prints one JSON object: {"results": [{"client": i, "tool", "verdict", "detail", "seconds",
// "text"}], "callbacks": [{"elicitation": n, "sampling": n} per client], "error": null | "..."}
// A verdict is "pass" (the answer carries this client's own callback answer), "crossed" (it
// carries another client's), "error" (isError), "fail" or "timeout".
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const spec = JSON.parse(process.argv[2] ?? "{}");
const n = spec.clients ?? 4;
const timeoutMs = Math.round((spec.timeout ?? 15) * 1000);
const nameOf = (i) => `caller-${i}-name`;
const sampleOf = (i) => `caller-${i}-sample`;

const deadline = (promise, ms) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { deadline: true })), ms)),
  ]);

const out = { results: [], callbacks: [], error: null };
const clients = [];
try {
  for (let i = 0; i < n; i++) {
    const counts = { elicitation: 0, sampling: 0 };
    out.callbacks.push(counts);
    const client = new Client(
      { name: `meshmux-e2e-concurrent-${i}`, version: "1.0.0" },
      { capabilities: { elicitation: { form: {} }, sampling: {} } },
    );
    client.setRequestHandler(ElicitRequestSchema, async () => {
      counts.elicitation += 1;
      return { action: "accept", content: { name: nameOf(i), check: true } };
    });
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      counts.sampling += 1;
      return { role: "assistant", content: { type: "text", text: sampleOf(i) }, model: "e2e", stopReason: "endTurn" };
    });
    await deadline(client.connect(new StreamableHTTPClientTransport(new URL(spec.url))), timeoutMs);
    clients.push(client);
  }
  const textOf = (r) => (r?.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
  const one = async (i, tool, args, own, other) => {
    const started = performance.now();
    const entry = { client: i, tool };
    try {
      const result = await deadline(
        clients[i].callTool({ name: tool, arguments: { env: spec.env, ...args } }, undefined, { timeout: timeoutMs }),
        timeoutMs + 5000,
      );
      const text = textOf(result);
      entry.text = text.slice(0, 400);
      const foreign = [...Array(n).keys()].filter((j) => j !== i && text.includes(other(j)));
      if (result.isError) [entry.verdict, entry.detail] = ["error", text.slice(0, 300)];
      else if (foreign.length) [entry.verdict, entry.detail] = ["crossed", `carries caller ${foreign}'s answer`];
      else if (text.includes(own)) [entry.verdict, entry.detail] = ["pass", null];
      else [entry.verdict, entry.detail] = ["fail", `missing ${own}`];
    } catch (e) {
      const message = String(e?.message ?? e);
      const timedOut = e?.deadline || /timed? ?out/i.test(message) || e?.code === -32001;
      [entry.verdict, entry.detail] = [timedOut ? "timeout" : "fail", message];
    }
    entry.seconds = Math.round(performance.now() - started) / 1000;
    return entry;
  };
  const calls = [];
  for (let i = 0; i < n; i++) {
    calls.push(one(i, "trigger-elicitation-request", {}, `Name: ${nameOf(i)}`, nameOf));
    calls.push(one(i, "trigger-sampling-request", { prompt: `from caller ${i}`, maxTokens: 10 }, sampleOf(i), sampleOf));
  }
  out.results = await Promise.all(calls);
} catch (e) {
  out.error = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}
await Promise.allSettled(clients.map((c) => deadline(c.close(), 5000)));
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
