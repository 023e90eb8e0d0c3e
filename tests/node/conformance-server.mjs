// An MCP backend with the fixtures the official conformance suite
// (@modelcontextprotocol/conformance) expects of a server under test: its tools, prompts and
// resources, both eras of the protocol (the stateful initialize/session lifecycle of
// 2024-11-05 … 2025-11-25, and the stateless per-request `_meta` lifecycle of 2026-07-28), on
// plain node:http so that every byte on the wire is ours to decide.
//
//   node conformance-server.mjs PORT        (or PORT=… in the environment)
//
// It listens on 127.0.0.1:PORT, serves MCP at /mcp, and logs one line per request to stdout.
// The e2e test tests/tests/conformance.rs runs the suite against it directly and through
// meshmux.

import http from "node:http";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import zlib from "node:zlib";

const port = Number(process.argv[2] || process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: conformance-server.mjs PORT (or PORT in the environment)");
  process.exit(2);
}

const SERVER_INFO = { name: "meshmux-conformance-backend", version: "1.0.0" };
const STATEFUL_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const STATELESS_VERSION = "2026-07-28";
const META = "io.modelcontextprotocol/";
const CACHEABLE = new Set([
  "server/discover",
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
]);
// Stateful methods that the stateless era removed (404 + -32601 there).
const REMOVED_IN_2026 = new Set([
  "initialize",
  "ping",
  "logging/setLevel",
  "resources/subscribe",
  "resources/unsubscribe",
]);
const SSE_RETRY_MS = 500;

// ---------------------------------------------------------------------------------------------
// Test media, made here: a 1×1 PNG and a short silent 8 kHz mono WAV.

function pngChunk(type, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([head, body, crc]);
}

function onePixelPng() {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0); // width
  ihdr.writeUInt32BE(1, 4); // height
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const scanline = Buffer.from([0, 0x20, 0x80, 0xe0]); // filter byte + one RGB pixel
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", zlib.deflateSync(scanline)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]).toString("base64");
}

function silentWav() {
  const samples = 16;
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write("RIFF", 0, "ascii");
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write("WAVEfmt ", 8, "ascii");
  buf.writeUInt32LE(16, 16); // fmt chunk size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(8000, 24); // sample rate
  buf.writeUInt32LE(16000, 28); // byte rate
  buf.writeUInt16LE(2, 32); // block align
  buf.writeUInt16LE(16, 34); // bits per sample
  buf.write("data", 36, "ascii");
  buf.writeUInt32LE(samples * 2, 40);
  return buf.toString("base64");
}

const PNG = onePixelPng();
const WAV = silentWav();

// ---------------------------------------------------------------------------------------------
// Errors and small helpers.

class RpcError extends Error {
  constructor(code, message, data, httpStatus) {
    super(message);
    this.code = code;
    this.data = data;
    this.httpStatus = httpStatus;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: "text", text: t });
const emptyObject = { type: "object", properties: {} };
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

// requestState for the multi-round-trip tools: signed, so a tampered one is refused.
const STATE_KEY = randomBytes(32);
function sealState(payload) {
  const data = Buffer.from(JSON.stringify(payload)).toString("base64url");
  const mac = createHmac("sha256", STATE_KEY).update(data).digest("base64url");
  return `${data}.${mac}`;
}
function openState(sealed) {
  if (typeof sealed !== "string") return null;
  const [data, mac, extra] = sealed.split(".");
  if (!data || !mac || extra !== undefined) return null;
  const expected = createHmac("sha256", STATE_KEY).update(data).digest("base64url");
  if (mac !== expected) return null;
  try {
    return JSON.parse(Buffer.from(data, "base64url").toString());
  } catch {
    return null;
  }
}

function elicit(message, properties) {
  return {
    method: "elicitation/create",
    params: {
      message,
      requestedSchema: { type: "object", properties, required: Object.keys(properties) },
    },
  };
}
function sample(prompt, maxTokens) {
  return {
    method: "sampling/createMessage",
    params: { messages: [{ role: "user", content: text(prompt) }], maxTokens },
  };
}
const listRoots = { method: "roots/list", params: {} };
const inputRequired = (inputRequests, state) => ({
  resultType: "input_required",
  inputRequests,
  ...(state === undefined ? {} : { requestState: sealState(state) }),
});
const field = (response, name) => {
  const v = response?.content?.[name];
  return v === undefined ? undefined : v;
};

// ---------------------------------------------------------------------------------------------
// Tools. A handler gets (args, ctx): ctx.progress(p, total, message), ctx.log(level, data),
// ctx.request(method, params) (a server-to-client request; stateful era only), ctx.meta,
// ctx.inputResponses, ctx.requestState, ctx.capabilities (the client's).

const JSON_SCHEMA_2020_12 = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  $defs: {
    address: {
      $anchor: "addressDef",
      type: "object",
      properties: { street: { type: "string" }, city: { type: "string" } },
    },
  },
  properties: {
    name: { type: "string" },
    address: { $ref: "#/$defs/address" },
    contactMethod: { type: "string", enum: ["phone", "email"] },
    phone: { type: "string" },
    email: { type: "string" },
  },
  allOf: [{ anyOf: [{ required: ["phone"] }, { required: ["email"] }] }],
  if: { properties: { contactMethod: { const: "phone" } }, required: ["contactMethod"] },
  then: { required: ["phone"] },
  else: { required: ["email"] },
  additionalProperties: false,
};

async function askClient(ctx, method, params, describe) {
  try {
    const answer = await ctx.request(method, params);
    return describe(answer);
  } catch (e) {
    return `${method} failed: ${e.message}`;
  }
}

const TOOLS = [
  {
    name: "test_simple_text",
    description: "Answers with one text item",
    run: () => ({ content: [text("This is a simple text response for testing.")] }),
  },
  {
    name: "test_image_content",
    description: "Answers with one PNG image item",
    run: () => ({ content: [{ type: "image", data: PNG, mimeType: "image/png" }] }),
  },
  {
    name: "test_audio_content",
    description: "Answers with one WAV audio item",
    run: () => ({ content: [{ type: "audio", data: WAV, mimeType: "audio/wav" }] }),
  },
  {
    name: "test_embedded_resource",
    description: "Answers with an embedded text resource",
    run: () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
  },
  {
    name: "test_multiple_content_types",
    description: "Answers with text, an image and an embedded resource",
    run: () => ({
      content: [
        text("Multiple content types test:"),
        { type: "image", data: PNG, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
  },
  {
    name: "test_tool_with_logging",
    description: "Sends three log notifications while it runs",
    run: async (_args, ctx) => {
      for (const step of ["Tool execution started", "Tool processing data", "Tool execution completed"]) {
        ctx.log("info", step);
        await sleep(30);
      }
      return { content: [text("Tool with logging executed successfully")] };
    },
  },
  {
    name: "test_tool_with_progress",
    description: "Sends progress notifications for the request's progress token",
    run: async (_args, ctx) => {
      for (const progress of [0, 50, 100]) {
        ctx.progress(progress, 100, `Completed step ${progress} of 100`);
        if (progress < 100) await sleep(30);
      }
      return { content: [text(String(ctx.meta?.progressToken ?? ""))] };
    },
  },
  {
    name: "test_error_handling",
    description: "Always fails with a tool error (isError)",
    run: () => ({
      isError: true,
      content: [text("This tool intentionally returns an error for testing")],
    }),
  },
  {
    name: "test_reconnection",
    description: "Closes its SSE stream mid-call and answers after the client reconnects",
    reconnect: true,
    run: async () => {
      await sleep(200);
      return { content: [text("Reconnection test completed successfully.")] };
    },
  },
  {
    name: "test_sampling",
    description: "Asks the client for an LLM completion (sampling/createMessage)",
    inputSchema: {
      type: "object",
      properties: { prompt: { type: "string", description: "The prompt for the LLM" } },
      required: ["prompt"],
    },
    run: async (args, ctx) => ({
      content: [
        text(
          await askClient(
            ctx,
            "sampling/createMessage",
            { messages: [{ role: "user", content: text(String(args.prompt ?? "")) }], maxTokens: 100 },
            (r) => `LLM response: ${r?.content?.text ?? "(none)"}`,
          ),
        ),
      ],
    }),
  },
  {
    name: "test_elicitation",
    description: "Asks the user for input (elicitation/create)",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string", description: "What to ask the user" } },
      required: ["message"],
    },
    run: async (args, ctx) => ({
      content: [
        text(
          await askClient(
            ctx,
            "elicitation/create",
            {
              message: String(args.message ?? ""),
              requestedSchema: {
                type: "object",
                properties: { response: { type: "string", description: "The user's answer" } },
                required: ["response"],
              },
            },
            (r) => `User response: action=${r?.action}, content=${JSON.stringify(r?.content ?? {})}`,
          ),
        ),
      ],
    }),
  },
  {
    name: "test_elicitation_sep1034_defaults",
    description: "Elicitation whose fields all have default values (SEP-1034)",
    run: async (_args, ctx) => ({
      content: [
        text(
          await askClient(
            ctx,
            "elicitation/create",
            {
              message: "Please review the prefilled fields",
              requestedSchema: {
                type: "object",
                properties: {
                  name: { type: "string", description: "Name", default: "John Doe" },
                  age: { type: "integer", description: "Age", default: 30 },
                  score: { type: "number", description: "Score", default: 95.5 },
                  status: {
                    type: "string",
                    description: "Status",
                    enum: ["active", "inactive", "pending"],
                    default: "active",
                  },
                  verified: { type: "boolean", description: "Verified", default: true },
                },
                required: [],
              },
            },
            (r) => `Elicitation completed: action=${r?.action}, content=${JSON.stringify(r?.content ?? {})}`,
          ),
        ),
      ],
    }),
  },
  {
    name: "test_elicitation_sep1330_enums",
    description: "Elicitation with every enum schema variant (SEP-1330)",
    run: async (_args, ctx) => ({
      content: [
        text(
          await askClient(
            ctx,
            "elicitation/create",
            {
              message: "Please pick from the enum fields",
              requestedSchema: {
                type: "object",
                properties: {
                  untitledSingle: {
                    type: "string",
                    description: "One option",
                    enum: ["option1", "option2", "option3"],
                  },
                  titledSingle: {
                    type: "string",
                    description: "One option, titled",
                    oneOf: [
                      { const: "value1", title: "First Option" },
                      { const: "value2", title: "Second Option" },
                      { const: "value3", title: "Third Option" },
                    ],
                  },
                  legacyEnum: {
                    type: "string",
                    description: "One option, legacy titles",
                    enum: ["opt1", "opt2", "opt3"],
                    enumNames: ["Option One", "Option Two", "Option Three"],
                  },
                  untitledMulti: {
                    type: "array",
                    description: "Several options",
                    minItems: 1,
                    maxItems: 3,
                    items: { type: "string", enum: ["option1", "option2", "option3"] },
                  },
                  titledMulti: {
                    type: "array",
                    description: "Several options, titled",
                    minItems: 1,
                    maxItems: 3,
                    items: {
                      anyOf: [
                        { const: "value1", title: "First Choice" },
                        { const: "value2", title: "Second Choice" },
                        { const: "value3", title: "Third Choice" },
                      ],
                    },
                  },
                },
                required: [],
              },
            },
            (r) => `Elicitation completed: action=${r?.action}, content=${JSON.stringify(r?.content ?? {})}`,
          ),
        ),
      ],
    }),
  },
  {
    name: "json_schema_2020_12_tool",
    description: "A tool whose input schema uses JSON Schema 2020-12 keywords (SEP-1613)",
    inputSchema: JSON_SCHEMA_2020_12,
    run: (args) => ({ content: [text(`JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`)] }),
  },
  {
    name: "test_header_param",
    description: "Echoes a parameter that 2026-07-28 clients mirror in the Mcp-Param-Region header",
    inputSchema: {
      type: "object",
      properties: { region: { type: "string", description: "Any region name", "x-mcp-header": "Region" } },
    },
    run: (args) => ({ content: [text(`region=${args.region ?? "(none)"}`)] }),
  },
  // --- 2026-07-28 (stateless) diagnostics ---
  {
    name: "test_missing_capability",
    description: "Needs the client's sampling capability",
    run: (_args, ctx) => {
      if (!isObject(ctx.capabilities?.sampling)) {
        throw new RpcError(
          -32021,
          "Missing required client capability: sampling",
          { requiredCapabilities: { sampling: {} } },
          400,
        );
      }
      return { content: [text("Success")] };
    },
  },
  {
    name: "test_streaming_elicitation",
    description: "Streams a progress notification before its result",
    run: (_args, ctx) => {
      ctx.progress(50, 100, "halfway", ctx.meta?.progressToken ?? "streaming");
      return { content: [text("Streaming complete")] };
    },
  },
  {
    name: "test_logging_tool",
    description: "Logs once, if and only if the request asked for a log level",
    run: (_args, ctx) => {
      ctx.log("info", "Diagnostic trace logging activated");
      return { content: [text("Logging evaluated")] };
    },
  },
  {
    name: "test_trigger_tool_change",
    description: "Announces a tools/list change to subscriptions/listen streams",
    run: () => {
      notifyListeners("tools", "notifications/tools/list_changed");
      return { content: [text("Mutation triggered")] };
    },
  },
  {
    name: "test_trigger_prompt_change",
    description: "Announces a prompts/list change to subscriptions/listen streams",
    run: () => {
      notifyListeners("prompts", "notifications/prompts/list_changed");
      return { content: [text("Mutation triggered")] };
    },
  },
  // --- multi-round-trip requests (SEP-2322): InputRequiredResult ---
  {
    name: "test_input_required_result_elicitation",
    description: "Needs the user's name (elicitation) before it answers",
    run: (_args, ctx) => {
      const answer = ctx.inputResponses?.user_name;
      if (answer) return { content: [text(`Hello, ${field(answer, "name") ?? "unknown"}!`)] };
      return inputRequired({ user_name: elicit("What is your name?", { name: { type: "string" } }) });
    },
  },
  {
    name: "test_input_required_result_sampling",
    description: "Needs an LLM completion (sampling) before it answers",
    run: (_args, ctx) => {
      const answer = ctx.inputResponses?.sample_request;
      if (answer) {
        const t = answer?.content?.text;
        return { content: [text(`Sampling result: ${typeof t === "string" ? t : "no response"}`)] };
      }
      return inputRequired({ sample_request: sample("What is the capital of France?", 100) });
    },
  },
  {
    name: "test_input_required_result_list_roots",
    description: "Needs the client's roots before it answers",
    run: (_args, ctx) => {
      const answer = ctx.inputResponses?.roots_request;
      if (answer) {
        const roots = Array.isArray(answer.roots) ? answer.roots : [];
        return { content: [text(`Found ${roots.length} root(s)`)] };
      }
      return inputRequired({ roots_request: listRoots });
    },
  },
  {
    name: "test_input_required_result_request_state",
    description: "Needs a confirmation and its own requestState back",
    run: (_args, ctx) => {
      const state = openState(ctx.requestState);
      const confirm = ctx.inputResponses?.confirm;
      if (state?.kind === "request-state" && field(confirm, "ok") === true) {
        return { content: [text("state-ok: requestState validated")] };
      }
      return inputRequired(
        { confirm: elicit("Please confirm", { ok: { type: "boolean" } }) },
        { kind: "request-state", nonce: randomUUID() },
      );
    },
  },
  {
    name: "test_input_required_result_multiple_inputs",
    description: "Needs an elicitation, a sampling and the roots at once",
    run: (_args, ctx) => {
      const state = openState(ctx.requestState);
      const r = ctx.inputResponses ?? {};
      if (state?.kind === "multiple-inputs" && r.user_name && r.greeting && r.client_roots) {
        const greeting = r.greeting?.content?.text;
        const roots = Array.isArray(r.client_roots.roots) ? r.client_roots.roots.length : 0;
        return {
          content: [
            text(
              `Name: ${field(r.user_name, "name") ?? "unknown"}; Greeting: ${
                typeof greeting === "string" ? greeting : "Hello there!"
              }; Roots: ${roots}`,
            ),
          ],
        };
      }
      return inputRequired(
        {
          user_name: elicit("What is your name?", { name: { type: "string" } }),
          greeting: sample("Generate a greeting", 50),
          client_roots: listRoots,
        },
        { kind: "multiple-inputs", nonce: randomUUID() },
      );
    },
  },
  {
    name: "test_input_required_result_multi_round",
    description: "Needs two rounds of input (name, then colour)",
    run: (_args, ctx) => {
      const state = openState(ctx.requestState);
      const r = ctx.inputResponses ?? {};
      if (state?.round === 1 && r.step1) {
        return inputRequired(
          { step2: elicit("Step 2: What is your favorite color?", { color: { type: "string" } }) },
          { round: 2, name: field(r.step1, "name") ?? "friend", nonce: randomUUID() },
        );
      }
      if (state?.round === 2 && r.step2) {
        return {
          content: [text(`Multi-round complete for ${state.name} who likes ${field(r.step2, "color") ?? "unknown"}`)],
        };
      }
      return inputRequired(
        { step1: elicit("Step 1: What is your name?", { name: { type: "string" } }) },
        { round: 1, nonce: randomUUID() },
      );
    },
  },
  {
    name: "test_input_required_result_tampered_state",
    description: "Refuses a requestState it did not sign",
    run: (_args, ctx) => {
      if (ctx.requestState !== undefined) {
        const state = openState(ctx.requestState);
        if (!state) throw new RpcError(-32602, "requestState integrity check failed");
        if (state.kind === "tamper-test" && ctx.inputResponses?.confirm) {
          return { content: [text("integrity-ok: state verified")] };
        }
      }
      return inputRequired(
        { confirm: elicit("Please confirm", { ok: { type: "boolean" } }) },
        { kind: "tamper-test", nonce: randomUUID() },
      );
    },
  },
  {
    name: "test_input_required_result_capabilities",
    description: "Asks only for the kinds of input the client declared",
    run: (_args, ctx) => {
      const r = ctx.inputResponses;
      if (isObject(r) && Object.keys(r).length > 0) {
        return { content: [text(`capabilities-ok: received ${Object.keys(r).join(",")}`)] };
      }
      const requests = {};
      if (isObject(ctx.capabilities?.elicitation)) {
        requests.elicit_input = elicit("Elicitation input", { value: { type: "string" } });
      }
      if (isObject(ctx.capabilities?.sampling)) {
        requests.sample_input = sample("Sample request", 50);
      }
      if (Object.keys(requests).length === 0) {
        return { content: [text("No supported capabilities declared")] };
      }
      return inputRequired(requests, { kind: "capabilities-test", nonce: randomUUID() });
    },
  },
];
const TOOL_BY_NAME = new Map(TOOLS.map((t) => [t.name, t]));

function listedTool(t) {
  return { name: t.name, description: t.description, inputSchema: t.inputSchema ?? emptyObject };
}

// ---------------------------------------------------------------------------------------------
// Resources and prompts.

const RESOURCES = [
  {
    uri: "test://static-text",
    name: "static-text",
    title: "Static Text Resource",
    description: "A static text resource",
    mimeType: "text/plain",
    read: (uri) => ({ uri, mimeType: "text/plain", text: "This is the content of the static text resource." }),
  },
  {
    uri: "test://static-binary",
    name: "static-binary",
    title: "Static Binary Resource",
    description: "A static binary resource (a PNG image)",
    mimeType: "image/png",
    read: (uri) => ({ uri, mimeType: "image/png", blob: PNG }),
  },
  {
    uri: "test://watched-resource",
    name: "watched-resource",
    title: "Watched Resource",
    description: "A resource clients may subscribe to",
    mimeType: "text/plain",
    read: (uri) => ({ uri, mimeType: "text/plain", text: "Watched resource content" }),
  },
];
const TEMPLATE = {
  uriTemplate: "test://template/{id}/data",
  name: "template",
  title: "Resource Template",
  description: "A resource template with one parameter",
  mimeType: "application/json",
};
const TEMPLATE_RE = /^test:\/\/template\/([^/]+)\/data$/;

function readResource(uri) {
  const fixed = RESOURCES.find((r) => r.uri === uri);
  if (fixed) return { contents: [fixed.read(uri)] };
  const m = typeof uri === "string" ? TEMPLATE_RE.exec(uri) : null;
  if (m) {
    const id = decodeURIComponent(m[1]);
    return {
      contents: [
        {
          uri,
          mimeType: "application/json",
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    };
  }
  throw new RpcError(-32602, `Resource not found: ${uri}`, { uri });
}

const PROMPTS = [
  {
    name: "test_simple_prompt",
    title: "Simple Test Prompt",
    description: "A prompt without arguments",
    get: () => [{ role: "user", content: text("This is a simple prompt for testing.") }],
  },
  {
    name: "test_prompt_with_arguments",
    title: "Prompt With Arguments",
    description: "A prompt with two required arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
    get: (a) => [
      { role: "user", content: text(`Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'`) },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    title: "Prompt With Embedded Resource",
    description: "A prompt that embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource to embed", required: true }],
    get: (a) => [
      {
        role: "user",
        content: {
          type: "resource",
          resource: { uri: a.resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." },
        },
      },
      { role: "user", content: text("Please process the embedded resource above.") },
    ],
  },
  {
    name: "test_prompt_with_image",
    title: "Prompt With Image",
    description: "A prompt with an image",
    get: () => [
      { role: "user", content: { type: "image", data: PNG, mimeType: "image/png" } },
      { role: "user", content: text("Please analyze the image above.") },
    ],
  },
  {
    name: "test_input_required_result_prompt",
    description: "A prompt that first needs the user's context (elicitation)",
    get: (_a, ctx) => {
      const answer = ctx.inputResponses?.user_context;
      if (!answer) {
        return inputRequired({
          user_context: elicit("What context should the prompt use?", { context: { type: "string" } }),
        });
      }
      return [{ role: "user", content: text(`Prompt with context: ${field(answer, "context") ?? "unknown"}`) }];
    },
  },
];

function getPrompt(params, ctx) {
  const prompt = PROMPTS.find((p) => p.name === params?.name);
  if (!prompt) throw new RpcError(-32602, `Unknown prompt: ${params?.name}`);
  const args = isObject(params.arguments) ? params.arguments : {};
  for (const a of prompt.arguments ?? []) {
    if (a.required && typeof args[a.name] !== "string") {
      throw new RpcError(-32602, `Missing required argument ${a.name} for prompt ${prompt.name}`);
    }
  }
  const out = prompt.get(args, ctx);
  if (!Array.isArray(out)) return out; // an InputRequiredResult
  return { description: prompt.description, messages: out };
}

// ---------------------------------------------------------------------------------------------
// The methods both eras share. `ctx` carries the era's way to talk back to the client.

const CAPABILITIES = {
  tools: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  prompts: { listChanged: true },
  logging: {},
  completions: {},
};

async function callTool(params, ctx) {
  const tool = TOOL_BY_NAME.get(params?.name);
  if (!tool) throw new RpcError(-32602, `Unknown tool: ${params?.name}`);
  const args = isObject(params.arguments) ? params.arguments : {};
  for (const required of tool.inputSchema?.required ?? []) {
    if (!(required in args)) {
      return { isError: true, content: [text(`Missing required argument: ${required}`)] };
    }
  }
  return tool.run(args, ctx);
}

async function common(method, params, ctx) {
  switch (method) {
    case "tools/list":
      return { tools: TOOLS.map(listedTool), ttlMs: 300000, cacheScope: "public" };
    case "tools/call":
      return callTool(params, ctx);
    case "resources/list":
      return {
        resources: RESOURCES.map(({ read: _read, ...r }) => r),
        ttlMs: 300000,
        cacheScope: "public",
      };
    case "resources/templates/list":
      return { resourceTemplates: [TEMPLATE], ttlMs: 300000, cacheScope: "public" };
    case "resources/read":
      return { ...readResource(params?.uri), ttlMs: 300000, cacheScope: "private" };
    case "prompts/list":
      return {
        prompts: PROMPTS.map(({ get: _get, ...p }) => p),
        ttlMs: 300000,
        cacheScope: "public",
      };
    case "prompts/get":
      return getPrompt(params, ctx);
    case "completion/complete": {
      const value = String(params?.argument?.value ?? "");
      const values = ["alpha", "beta", "gamma"].filter((v) => v.startsWith(value));
      return { completion: { values, total: values.length, hasMore: false } };
    }
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing.

function sendJson(res, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function errorBody(id, e) {
  const error = { code: e.code ?? -32603, message: e.message };
  if (e.data !== undefined) error.data = e.data;
  return { jsonrpc: "2.0", id: id ?? null, error };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > 4 << 20) {
        reject(new Error("body too large"));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
function hostnameOf(hostHeader) {
  if (typeof hostHeader !== "string" || hostHeader === "") return null;
  if (hostHeader.startsWith("[")) return hostHeader.slice(0, hostHeader.indexOf("]") + 1).toLowerCase();
  return hostHeader.split(":")[0].toLowerCase();
}
// DNS-rebinding protection for a loopback server: Host and Origin must name loopback.
function rebindingRefusal(req) {
  const host = hostnameOf(req.headers.host);
  if (!host || !LOOPBACK_HOSTS.has(host)) return `Host ${req.headers.host ?? "(none)"} is not loopback`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== "null") {
    let name;
    try {
      name = new URL(origin).hostname.toLowerCase();
    } catch {
      return `Origin ${origin} is not a URL`;
    }
    if (!LOOPBACK_HOSTS.has(name)) return `Origin ${origin} is not loopback`;
  }
  return null;
}

// An SSE stream: events carry ids `<stream>:<n>` and are kept so that a client can resume
// with Last-Event-ID. The live response may go away (and be replaced by a GET) meanwhile.
const streams = new Map();
class EventStream {
  constructor(session, res) {
    this.id = randomUUID();
    this.session = session;
    this.events = [];
    this.res = null;
    this.done = false;
    this.pending = res; // headers go out with the first event, so a refusal keeps its status
    streams.set(this.id, this);
  }
  get started() {
    return this.pending === null;
  }
  start() {
    if (this.pending === null) return;
    const res = this.pending;
    this.pending = null;
    this.attach(res);
    // The priming event: an id and no data, and how soon to come back.
    this.write(`id: ${this.id}:0\nretry: ${SSE_RETRY_MS}\ndata: \n\n`);
  }
  attach(res) {
    this.res = res;
    if (!res.headersSent) {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
        ...(this.session ? { "mcp-session-id": this.session.id } : {}),
      });
    }
    res.on("close", () => {
      if (this.res === res) this.res = null;
    });
  }
  write(raw) {
    if (this.res && !this.res.writableEnded) this.res.write(raw);
  }
  send(message) {
    this.start();
    const n = this.events.length + 1;
    this.events.push(message);
    this.write(`event: message\nid: ${this.id}:${n}\ndata: ${JSON.stringify(message)}\n\n`);
  }
  replayAfter(n, res) {
    this.attach(res);
    for (let i = n; i < this.events.length; i++) {
      res.write(`event: message\nid: ${this.id}:${i + 1}\ndata: ${JSON.stringify(this.events[i])}\n\n`);
    }
    if (this.done) res.end();
  }
  // Drop the live connection (the client is expected to come back with Last-Event-ID).
  detach() {
    this.start();
    if (this.res) {
      const res = this.res;
      this.res = null;
      res.end();
    }
  }
  finish(message) {
    this.send(message);
    this.done = true;
    if (this.res) this.res.end();
    setTimeout(() => streams.delete(this.id), 60000).unref();
  }
}

// ---------------------------------------------------------------------------------------------
// The stateful era: initialize opens a session; requests carry Mcp-Session-Id.

const sessions = new Map();
const LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

function newSession(version, capabilities) {
  const session = {
    id: randomUUID(),
    version,
    capabilities: isObject(capabilities) ? capabilities : {},
    logLevel: null,
    pending: new Map(),
    nextRequestId: 1,
    standalone: null,
    subscriptions: new Set(),
  };
  sessions.set(session.id, session);
  return session;
}

function statefulCtx(session, stream, params) {
  const meta = isObject(params?._meta) ? params._meta : {};
  const token = meta.progressToken;
  return {
    meta,
    capabilities: session.capabilities,
    inputResponses: params?.inputResponses,
    requestState: params?.requestState,
    progress(progress, total, message, overrideToken) {
      const progressToken = overrideToken ?? token;
      if (progressToken === undefined) return;
      stream.send({
        jsonrpc: "2.0",
        method: "notifications/progress",
        params: { progressToken, progress, total, message },
      });
    },
    log(level, data) {
      if (session.logLevel && LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(session.logLevel)) return;
      stream.send({
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level, logger: "conformance-backend", data },
      });
    },
    request(method, requestParams) {
      const id = `backend-${session.nextRequestId++}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          session.pending.delete(id);
          reject(new Error("the client did not answer in time"));
        }, 20000);
        session.pending.set(id, {
          resolve: (v) => (clearTimeout(timer), resolve(v)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        stream.send({ jsonrpc: "2.0", id, method, params: requestParams });
      });
    },
  };
}

async function statefulRequest(session, msg, res) {
  const { id, method } = msg;
  const params = isObject(msg.params) ? msg.params : {};
  if (method === "tools/call") {
    const stream = new EventStream(session, res);
    const tool = TOOL_BY_NAME.get(params.name);
    if (tool?.reconnect) setTimeout(() => stream.detach(), 50);
    const ctx = statefulCtx(session, stream, params);
    try {
      const result = await callTool(params, ctx);
      stream.finish({ jsonrpc: "2.0", id, result });
    } catch (e) {
      stream.finish(errorBody(id, e));
    }
    return;
  }
  const headers = { "mcp-session-id": session.id };
  try {
    let result;
    switch (method) {
      case "ping":
        result = {};
        break;
      case "logging/setLevel":
        if (!LOG_LEVELS.includes(params.level)) throw new RpcError(-32602, `Unknown level ${params.level}`);
        session.logLevel = params.level;
        result = {};
        break;
      case "resources/subscribe":
        session.subscriptions.add(params.uri);
        result = {};
        break;
      case "resources/unsubscribe":
        session.subscriptions.delete(params.uri);
        result = {};
        break;
      case "resources/read":
        try {
          result = await common(method, params, {});
        } catch (e) {
          // Before 2026-07-28 a missing resource is -32002.
          if (e.code === -32602) throw new RpcError(-32002, e.message, e.data);
          throw e;
        }
        break;
      default:
        result = await common(method, params, { inputResponses: params.inputResponses });
        if (result === undefined) throw new RpcError(-32601, `Method not found: ${method}`);
    }
    sendJson(res, 200, { jsonrpc: "2.0", id, result }, headers);
  } catch (e) {
    sendJson(res, 200, errorBody(id, e), headers);
  }
}

async function statefulPost(req, res, msg) {
  const sid = req.headers["mcp-session-id"];
  if (msg.method === "initialize" && sid === undefined) {
    const requested = msg.params?.protocolVersion;
    const version = STATEFUL_VERSIONS.includes(requested) ? requested : STATEFUL_VERSIONS[0];
    const session = newSession(version, msg.params?.capabilities);
    const result = {
      protocolVersion: version,
      capabilities: CAPABILITIES,
      serverInfo: SERVER_INFO,
      instructions: "The MCP conformance suite's fixtures, served for meshmux's e2e tests.",
    };
    return sendJson(res, 200, { jsonrpc: "2.0", id: msg.id, result }, { "mcp-session-id": session.id });
  }
  if (sid === undefined) {
    return sendJson(res, 400, errorBody(msg.id, new RpcError(-32000, "Bad Request: no Mcp-Session-Id")));
  }
  const session = sessions.get(sid);
  if (!session) {
    return sendJson(res, 404, errorBody(msg.id, new RpcError(-32001, "Session not found")));
  }
  const version = req.headers["mcp-protocol-version"];
  if (version !== undefined && !STATEFUL_VERSIONS.includes(version) && version !== STATELESS_VERSION) {
    return sendJson(
      res,
      400,
      errorBody(msg.id, new RpcError(-32000, `Bad Request: unsupported MCP-Protocol-Version ${version}`)),
    );
  }
  if (msg.method === undefined) {
    // The client's answer to one of our requests.
    const waiter = session.pending.get(msg.id);
    if (waiter) {
      session.pending.delete(msg.id);
      if (msg.error) waiter.reject(new Error(msg.error.message ?? "error"));
      else waiter.resolve(msg.result);
    }
    res.writeHead(202, { "mcp-session-id": session.id }).end();
    return;
  }
  if (msg.id === undefined) {
    res.writeHead(202, { "mcp-session-id": session.id }).end(); // a notification
    return;
  }
  if (msg.method === "initialize") {
    return sendJson(res, 400, errorBody(msg.id, new RpcError(-32600, "Already initialized")));
  }
  return statefulRequest(session, msg, res);
}

function statefulGet(req, res) {
  const accept = String(req.headers.accept ?? "");
  if (!accept.includes("text/event-stream")) {
    return sendJson(res, 406, errorBody(null, new RpcError(-32000, "Not Acceptable: want text/event-stream")));
  }
  const sid = req.headers["mcp-session-id"];
  const session = sid === undefined ? undefined : sessions.get(sid);
  if (sid === undefined) return sendJson(res, 400, errorBody(null, new RpcError(-32000, "No Mcp-Session-Id")));
  if (!session) return sendJson(res, 404, errorBody(null, new RpcError(-32001, "Session not found")));
  const last = req.headers["last-event-id"];
  if (typeof last === "string") {
    const cut = last.lastIndexOf(":");
    const stream = streams.get(last.slice(0, cut));
    if (stream && stream.session === session) {
      stream.replayAfter(Number(last.slice(cut + 1)) || 0, res);
      return;
    }
  }
  // The standalone stream for notifications unrelated to a request.
  if (session.standalone && session.standalone.res) {
    return sendJson(res, 409, errorBody(null, new RpcError(-32000, "A GET stream is already open")));
  }
  session.standalone = new EventStream(session, res);
  session.standalone.start();
}

function statefulDelete(req, res) {
  const sid = req.headers["mcp-session-id"];
  if (sid === undefined) return sendJson(res, 400, errorBody(null, new RpcError(-32000, "No Mcp-Session-Id")));
  const session = sessions.get(sid);
  if (!session) return sendJson(res, 404, errorBody(null, new RpcError(-32001, "Session not found")));
  sessions.delete(sid);
  session.standalone?.detach();
  for (const w of session.pending.values()) w.reject(new Error("session terminated"));
  res.writeHead(200).end();
}

// ---------------------------------------------------------------------------------------------
// The stateless era (2026-07-28): no handshake; every request carries `_meta` and headers.

const listeners = new Set();
function notifyListeners(kind, method) {
  for (const l of listeners) {
    if (!l.wants[kind]) continue;
    l.write({ jsonrpc: "2.0", method, params: { _meta: { [`${META}subscriptionId`]: l.subscriptionId } } });
  }
}

function mcpNameOf(method, params) {
  if (method === "tools/call" || method === "prompts/get") return params?.name;
  if (method === "resources/read") return params?.uri;
  return undefined;
}

// Why a stateless request is refused before it runs (status, error), or null.
function statelessRefusal(req, msg) {
  const header = req.headers["mcp-protocol-version"];
  const params = isObject(msg.params) ? msg.params : {};
  const meta = params._meta;
  if (header === undefined) {
    return [400, new RpcError(-32020, "Missing MCP-Protocol-Version header")];
  }
  if (
    !isObject(meta) ||
    typeof meta[`${META}protocolVersion`] !== "string" ||
    !isObject(meta[`${META}clientCapabilities`])
  ) {
    return [400, new RpcError(-32602, "Invalid params: _meta needs protocolVersion and clientCapabilities")];
  }
  const version = meta[`${META}protocolVersion`];
  if (header.trim() !== version) {
    return [400, new RpcError(-32020, "HeaderMismatch: MCP-Protocol-Version differs from _meta")];
  }
  if (version !== STATELESS_VERSION) {
    return [
      400,
      new RpcError(-32022, "Unsupported protocol version", {
        supported: [STATELESS_VERSION],
        requested: version,
      }),
    ];
  }
  // SEP-2243 standard headers: they must mirror the body.
  const mcpMethod = req.headers["mcp-method"];
  if (mcpMethod !== undefined && mcpMethod.trim() !== msg.method) {
    return [400, new RpcError(-32020, "HeaderMismatch: Mcp-Method differs from the body's method")];
  }
  if (mcpMethod === undefined) return [400, new RpcError(-32020, "HeaderMismatch: Mcp-Method is missing")];
  const name = mcpNameOf(msg.method, params);
  const mcpName = req.headers["mcp-name"];
  if (name !== undefined) {
    if (mcpName === undefined) return [400, new RpcError(-32020, "HeaderMismatch: Mcp-Name is missing")];
    if (mcpName.trim() !== name) {
      return [400, new RpcError(-32020, "HeaderMismatch: Mcp-Name differs from the body")];
    }
  }
  if (msg.method === "tools/call") return paramHeaderRefusal(req, params);
  return null;
}

// SEP-2243 custom headers: a tool parameter marked `x-mcp-header: X` is mirrored by the
// client in `Mcp-Param-X`, literally or as `=?base64?…?=`; the two must agree.
function paramHeaderRefusal(req, params) {
  const tool = TOOL_BY_NAME.get(params.name);
  const args = isObject(params.arguments) ? params.arguments : {};
  for (const [prop, def] of Object.entries(tool?.inputSchema?.properties ?? {})) {
    const suffix = def["x-mcp-header"];
    if (typeof suffix !== "string") continue;
    const raw = req.headers[`mcp-param-${suffix.toLowerCase()}`];
    if (args[prop] === undefined && raw === undefined) continue;
    if (raw === undefined) return [400, new RpcError(-32020, `HeaderMismatch: Mcp-Param-${suffix} is missing`)];
    let value = raw.trim();
    const wrapped = /^=\?base64\?(.*)\?=$/.exec(value);
    if (wrapped) {
      const b64 = wrapped[1];
      if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
        return [400, new RpcError(-32020, `HeaderMismatch: Mcp-Param-${suffix} is not valid Base64`)];
      }
      value = Buffer.from(b64, "base64").toString("utf8");
    }
    if (args[prop] === undefined || value !== String(args[prop])) {
      return [400, new RpcError(-32020, `HeaderMismatch: Mcp-Param-${suffix} differs from arguments.${prop}`)];
    }
  }
  return null;
}

function completeResult(method, result) {
  const out = { ...result };
  out.resultType ??= "complete";
  if (CACHEABLE.has(method)) {
    out.ttlMs ??= 0;
    out.cacheScope ??= "private";
  }
  return out;
}

async function statelessPost(req, res, msg) {
  const { id, method } = msg;
  if (msg.method === undefined || id === undefined) {
    // Responses and notifications: nothing to answer in this era.
    res.writeHead(202).end();
    return;
  }
  const refusal = statelessRefusal(req, msg);
  if (refusal) return sendJson(res, refusal[0], errorBody(id, refusal[1]));
  const params = msg.params;
  const meta = params._meta;
  const ctxBase = {
    meta,
    capabilities: meta[`${META}clientCapabilities`],
    inputResponses: isObject(params.inputResponses) ? params.inputResponses : undefined,
    requestState: params.requestState,
  };

  if (method === "server/discover") {
    const result = {
      supportedVersions: [STATELESS_VERSION],
      capabilities: { tools: { listChanged: true }, prompts: { listChanged: true }, resources: {}, completions: {} },
      instructions: "The MCP conformance suite's fixtures, served for meshmux's e2e tests.",
      _meta: { [`${META}serverInfo`]: SERVER_INFO },
    };
    return sendJson(res, 200, { jsonrpc: "2.0", id, result: completeResult(method, result) });
  }
  if (method === "subscriptions/listen") {
    const wanted = isObject(params.notifications) ? params.notifications : {};
    const listener = {
      subscriptionId: String(id),
      wants: { tools: wanted.toolsListChanged === true, prompts: wanted.promptsListChanged === true },
      write: (m) => res.write(`${JSON.stringify(m)}\n`),
    };
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" });
    listener.write({
      jsonrpc: "2.0",
      method: "notifications/subscriptions/acknowledged",
      params: {
        _meta: { [`${META}subscriptionId`]: listener.subscriptionId },
        notifications: {
          ...(listener.wants.tools ? { toolsListChanged: true } : {}),
          ...(listener.wants.prompts ? { promptsListChanged: true } : {}),
        },
      },
    });
    listeners.add(listener);
    res.on("close", () => listeners.delete(listener));
    return;
  }
  if (method === "tools/call") {
    // Streamed, so that progress and log notifications come before the result.
    const stream = new EventStream(null, res);
    const logLevel = meta[`${META}logLevel`];
    const ctx = {
      ...ctxBase,
      progress(progress, total, message, overrideToken) {
        const progressToken = overrideToken ?? meta.progressToken;
        if (progressToken === undefined) return;
        stream.send({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken, progress, total, message } });
      },
      log(level, data) {
        if (typeof logLevel !== "string") return;
        if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(logLevel)) return;
        stream.send({ jsonrpc: "2.0", method: "notifications/message", params: { level, logger: "conformance-backend", data } });
      },
      request() {
        return Promise.reject(new Error("2026-07-28 has no server-to-client requests; use an InputRequiredResult"));
      },
    };
    try {
      const result = await callTool(params, ctx);
      stream.finish({ jsonrpc: "2.0", id, result: completeResult(method, result) });
    } catch (e) {
      if (e.httpStatus && !stream.started) {
        // A refusal before anything was streamed keeps its HTTP status: answer without SSE.
        streams.delete(stream.id);
        return sendJson(res, e.httpStatus, errorBody(id, e));
      }
      stream.finish(errorBody(id, e));
    }
    return;
  }
  if (REMOVED_IN_2026.has(method)) {
    return sendJson(res, 404, errorBody(id, new RpcError(-32601, `Method not found: ${method} was removed in ${STATELESS_VERSION}`)));
  }
  try {
    const result = await common(method, params, ctxBase);
    if (result === undefined) return sendJson(res, 404, errorBody(id, new RpcError(-32601, `Method not found: ${method}`)));
    return sendJson(res, 200, { jsonrpc: "2.0", id, result: completeResult(method, result) });
  } catch (e) {
    return sendJson(res, e.httpStatus ?? 200, errorBody(id, e));
  }
}

// ---------------------------------------------------------------------------------------------

function isStatelessRequest(req, msg) {
  if (req.headers["mcp-session-id"] !== undefined) return false;
  const header = req.headers["mcp-protocol-version"];
  const meta = isObject(msg?.params) ? msg.params._meta : undefined;
  const hasVersionMeta = isObject(meta) && `${META}protocolVersion` in meta;
  if (hasVersionMeta) return true;
  if (header === undefined) return false;
  return !STATEFUL_VERSIONS.includes(header.trim());
}

async function handle(req, res) {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/mcp") return sendJson(res, 404, { error: "not found" });
  const refused = rebindingRefusal(req);
  if (refused) return sendJson(res, 403, errorBody(null, new RpcError(-32000, `Forbidden: ${refused}`)));

  if (req.method === "GET") return statefulGet(req, res);
  if (req.method === "DELETE") return statefulDelete(req, res);
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "GET, POST, DELETE" }).end();
    return;
  }
  const type = String(req.headers["content-type"] ?? "");
  if (!type.toLowerCase().startsWith("application/json")) {
    return sendJson(res, 415, errorBody(null, new RpcError(-32000, "Unsupported Media Type: want application/json")));
  }
  let msg;
  try {
    msg = JSON.parse(await readBody(req));
  } catch (e) {
    return sendJson(res, 400, errorBody(null, new RpcError(-32700, `Parse error: ${e.message}`)));
  }
  if (!isObject(msg) || msg.jsonrpc !== "2.0") {
    return sendJson(res, 400, errorBody(msg?.id, new RpcError(-32600, "Invalid Request: one JSON-RPC 2.0 message")));
  }
  return isStatelessRequest(req, msg) ? statelessPost(req, res, msg) : statefulPost(req, res, msg);
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  res.on("finish", () => {
    const sid = req.headers["mcp-session-id"] ? " session" : "";
    console.log(`${req.method} ${req.url} ${res.statusCode}${sid} ${Date.now() - started}ms`);
  });
  handle(req, res).catch((e) => {
    console.error("unhandled:", e);
    if (!res.headersSent) sendJson(res, 500, errorBody(null, new RpcError(-32603, "Internal error")));
    else res.end();
  });
});
server.listen(port, "127.0.0.1", () => {
  console.log(`conformance backend listening on http://127.0.0.1:${port}/mcp`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
