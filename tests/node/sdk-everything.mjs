// The official TypeScript SDK calling every server-everything tool through meshmux, with
// elicitation, sampling and roots client callbacks, for meshmux's end-to-end tests.
// Usage: node sdk-everything.mjs '<spec JSON>' where the spec is
//   {"url": "...", "sdk": "v1" | "v2", "mode": "legacy" | "auto" | "2026-07-28",
//    "env": "Alpha", "other_env": "Beta", "timeout": 20}
// "v1" is @modelcontextprotocol/sdk 1.32.2 (initialize era only; `mode` is ignored), "v2" is
// @modelcontextprotocol/client 2.4.0 with `versionNegotiation` from `mode` ("2026-07-28" pins it).
// It prints one JSON object on stdout, the same shape as tests/python/sdk_client.py:
//   {"sdk", "mode", "protocolVersion", "serverName", "tools": [names], "error": null | "...",
//    "calls": [{"tool", "env", "verdict", "detail", "seconds", "isError", "text"}],
//    "callbacks": {"elicitation", "sampling", "roots"}, "progress": n}
// Verdicts: "pass" | "refused" (an asking tool answered at once with an isError result saying the
// client cannot be asked across the gateway) | "fail" | "timeout" | "skipped" | "unknown".
const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.url || !spec.env) {
  console.error("usage: node sdk-everything.mjs '{\"url\": ..., \"env\": ..., \"sdk\": \"v1\"}'");
  process.exit(2);
}
const sdk = spec.sdk ?? "v1";
const mode = sdk === "v1" ? "legacy" : (spec.mode ?? "auto");
const timeoutMs = Math.round((spec.timeout ?? 20) * 1000);
const tag = `ts-${sdk}-${mode}`;

const ROOT_URI = "file:///meshmux/e2e/root";
const ELICIT_NAME = `Grace Hopper (${tag})`;
const SAMPLED_TEXT = `sampled-by-the-${tag}-client`;
// get-roots-list's text when its roots/list (sent outside the call) got no roots.
const ROOTS_ABSENT = "no roots are currently configured";
const REFUSAL =
  /(elicit|sampl|roots|ask|input|server-to-client)[\s\S]*(gateway|meshmux|cannot|can't|not supported|unsupported)|(gateway|meshmux|cannot|can't|not supported|unsupported)[\s\S]*(elicit|sampl|roots|ask|input|server-to-client)/i;

const counts = { elicitation: 0, sampling: 0, roots: 0 };
let progress = 0;

const onElicit = async (request) => {
  counts.elicitation += 1;
  if (request.params?.mode === "url") return { action: "accept" };
  return { action: "accept", content: { name: ELICIT_NAME, check: true } };
};
const onSample = async () => {
  counts.sampling += 1;
  return {
    role: "assistant",
    content: { type: "text", text: SAMPLED_TEXT },
    model: "meshmux-e2e-model",
    stopReason: "endTurn",
  };
};
const onRoots = async () => {
  counts.roots += 1;
  return { roots: [{ uri: ROOT_URI, name: "meshmux-e2e-root" }] };
};

const capabilities = {
  elicitation: { form: {}, url: {} },
  sampling: {},
  roots: { listChanged: true },
};
const info = { name: "meshmux-e2e-ts", version: "1.0.0" };

let client;
let transport;
if (sdk === "v1") {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import(
    "@modelcontextprotocol/sdk/client/streamableHttp.js"
  );
  const types = await import("@modelcontextprotocol/sdk/types.js");
  client = new Client(info, { capabilities });
  client.setRequestHandler(types.ElicitRequestSchema, onElicit);
  client.setRequestHandler(types.CreateMessageRequestSchema, onSample);
  client.setRequestHandler(types.ListRootsRequestSchema, onRoots);
  transport = new StreamableHTTPClientTransport(new URL(spec.url));
} else {
  const { Client, StreamableHTTPClientTransport } = await import("@modelcontextprotocol/client");
  const negotiation =
    mode === "legacy" ? { mode: "legacy" } : mode === "auto" ? { mode: "auto" } : { mode: { pin: mode } };
  client = new Client(info, { capabilities, versionNegotiation: negotiation });
  client.setRequestHandler("elicitation/create", onElicit);
  client.setRequestHandler("sampling/createMessage", onSample);
  client.setRequestHandler("roots/list", onRoots);
  transport = new StreamableHTTPClientTransport(new URL(spec.url));
}

const textOf = (result) =>
  (result?.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
const has =
  (...needles) =>
  (result) => {
    const text = textOf(result);
    const missing = needles.filter((n) => !text.includes(n));
    return missing.length ? `missing ${JSON.stringify(missing)} in ${JSON.stringify(text.slice(0, 300))}` : null;
  };
const hasType =
  (kind, ...needles) =>
  (result) => {
    if (!(result?.content ?? []).some((c) => c.type === kind)) {
      return `no ${kind} content in ${JSON.stringify((result?.content ?? []).map((c) => c.type))}`;
    }
    return has(...needles)(result);
  };
const envCheck = (env) => has(`"MESHMUX_TEST_ENV": "${env}"`);

// tool -> [arguments without env, check, what it asks the client]
const table = {
  echo: [{ message: tag }, has(`Echo: ${tag}`), null],
  "get-annotated-message": [
    { messageType: "success", includeImage: true },
    hasType("image", "Operation completed successfully"),
    null,
  ],
  "get-env": [{}, envCheck(spec.env), null],
  "get-resource-links": [{ count: 2 }, hasType("resource_link", "2 resource links"), null],
  "get-resource-reference": [{ resourceType: "Text", resourceId: 1 }, hasType("resource", "Resource 1"), null],
  "get-structured-content": [
    { location: "Chicago" },
    (r) => (r?.structuredContent?.temperature === 36 ? null : `structuredContent is ${JSON.stringify(r?.structuredContent)}`),
    null,
  ],
  "get-sum": [{ a: 2, b: 40 }, has("The sum of 2 and 40 is 42."), null],
  "get-tiny-image": [{}, hasType("image", "MCP logo"), null],
  "gzip-file-as-resource": [
    { name: `${tag}.txt.gz`, data: "data:text/plain;base64,aGVsbG8gbWVzaG11eA==", outputType: "resource" },
    hasType("resource"),
    null,
  ],
  "toggle-simulated-logging": [{}, has("simulated"), null],
  "toggle-subscriber-updates": [{}, has("simulated resource update"), null],
  "trigger-long-running-operation": [{ duration: 1, steps: 2 }, has("Duration: 1 seconds, Steps: 2"), null],
  "trigger-elicitation-request": [{}, has(`Name: ${ELICIT_NAME}`), "elicitation"],
  "trigger-url-elicitation": [
    { url: "https://example.com/meshmux-e2e", elicitationId: `e2e-${tag}` },
    has("User completed the URL elicitation flow", `e2e-${tag}`),
    "elicitation",
  ],
  "trigger-sampling-request": [{ prompt: `hello from ${tag}`, maxTokens: 20 }, has(SAMPLED_TEXT), "sampling"],
  "trigger-sampling-request-async": [{ prompt: `hello from ${tag}` }, has(SAMPLED_TEXT), "sampling"],
  "trigger-elicitation-request-async": [{}, has(ELICIT_NAME), "elicitation"],
  "get-roots-list": [{}, has(ROOT_URI), "roots"],
};

const withDeadline = (promise, ms) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { deadline: true })), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });

// A server's tool prefix (`everything__`) and whether its tools take `env` (a server with one
// backend takes none).
const prefix = spec.prefix ?? "";
const envArg = spec.env_arg ?? true;

async function callOne(tool, env, args, check, asks) {
  const started = performance.now();
  const entry = { tool, env, isError: null, text: null };
  try {
    const options = { timeout: timeoutMs };
    if (tool === "trigger-long-running-operation") options.onprogress = () => (progress += 1);
    const result = await withDeadline(
      client.callTool(
        { name: prefix + tool, arguments: envArg ? { env, ...args } : args },
        ...(sdk === "v1" ? [undefined, options] : [options]),
      ),
      timeoutMs + 5000,
    );
    const text = textOf(result);
    entry.isError = result?.isError === true;
    entry.text = text.slice(0, 600);
    if (!check) {
      [entry.verdict, entry.detail] = ["unknown", "no expectations for this tool"];
    } else if (entry.isError) {
      [entry.verdict, entry.detail] =
        asks && REFUSAL.test(text)
          ? ["refused", `${asks} refused with a tool error`]
          : ["fail", `isError: ${JSON.stringify(text.slice(0, 300))}`];
    } else if (asks === "roots" && text.includes(ROOTS_ABSENT)) {
      // server-everything asks for roots outside the call (no related request), which no
      // gateway can route to one caller; answering that request at once is the best case.
      [entry.verdict, entry.detail] = ["refused", "the backend got no roots (its roots/list was answered)"];
    } else {
      const problem = check(result);
      [entry.verdict, entry.detail] = problem ? ["fail", problem] : ["pass", null];
    }
  } catch (e) {
    const message = String(e?.message ?? e);
    const timedOut = e?.deadline || /timed? ?out/i.test(message) || e?.code === -32001;
    [entry.verdict, entry.detail] = timedOut
      ? ["timeout", message]
      : ["fail", `${e?.code !== undefined ? `MCP error ${e.code}: ` : ""}${message}`];
  }
  entry.seconds = Math.round(performance.now() - started) / 1000;
  return entry;
}

const out = { sdk, mode, protocolVersion: null, serverName: null, tools: [], calls: [], error: null };
try {
  await withDeadline(client.connect(transport, { timeout: timeoutMs }), timeoutMs + 5000);
  out.protocolVersion =
    (typeof client.getNegotiatedProtocolVersion === "function" ? client.getNegotiatedProtocolVersion() : null) ??
    transport.protocolVersion ??
    null;
  out.serverName = client.getServerVersion()?.name ?? null;
  const tools = [];
  let cursor;
  do {
    const page = await withDeadline(client.listTools(cursor ? { cursor } : undefined), timeoutMs + 5000);
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  out.tools = tools.map((t) => t.name);
  // Behind a server prefix, only this server's tools, called by their served names.
  const own = tools
    .filter((t) => t.name.startsWith(prefix))
    .map((t) => ({ ...t, name: t.name.slice(prefix.length) }));
  for (const tool of own) {
    if (tool.execution?.taskSupport === "required") {
      out.calls.push({
        tool: tool.name,
        env: spec.env,
        verdict: "skipped",
        detail: "requires task-augmented execution (experimental tasks)",
        seconds: 0,
        isError: null,
        text: null,
      });
      continue;
    }
    const [args, check, asks] = table[tool.name] ?? [{}, null, null];
    out.calls.push(await callOne(tool.name, spec.env, args, check, asks));
  }
  if (spec.other_env) {
    const entry = await callOne("get-env", spec.other_env, {}, envCheck(spec.other_env), null);
    entry.tool = "get-env@other";
    out.calls.push(entry);
  }
} catch (e) {
  out.error = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}
out.callbacks = counts;
out.progress = progress;
try {
  await withDeadline(client.close(), 5000);
} catch {
  // closing is best effort
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
