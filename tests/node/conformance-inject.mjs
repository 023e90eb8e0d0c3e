// Preloaded (`node --import`) into the MCP conformance suite when it tests meshmux. The
// gateway's merged catalog gives every tool a required `env` argument (and, for 2026-07-28
// clients, the `x-mcp-header` hint that mirrors it in `Mcp-Param-Env`). The suite knows
// nothing of that, so this plays the part of a client that read the catalog: each outgoing
// `tools/call` gets `arguments.env = $MESHMUX_CONFORMANCE_ENV` (unless it already names one)
// and, when it speaks 2026-07-28, the header `Mcp-Param-Env: <env>` (unless already set).
//
// Both ways the suite sends HTTP are covered: globalThis.fetch (the SDK client and the
// stateless harness) and node:http's request (the raw-header scenarios).

import http from "node:http";

const ENV = process.env.MESHMUX_CONFORMANCE_ENV;
if (!ENV) {
  throw new Error("conformance-inject.mjs: set MESHMUX_CONFORMANCE_ENV to the env to call");
}
const MODERN = "2026-07-28";
const PARAM_HEADER = "Mcp-Param-Env";

/** The body with `env` added to a tools/call's arguments, or null when nothing changes. */
function withEnv(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof msg !== "object" || msg === null || msg.method !== "tools/call") return null;
  const params = typeof msg.params === "object" && msg.params !== null ? msg.params : null;
  if (!params) return null;
  const args =
    typeof params.arguments === "object" && params.arguments !== null && !Array.isArray(params.arguments)
      ? params.arguments
      : {};
  if ("env" in args) return null;
  params.arguments = { ...args, env: ENV };
  const modern = params._meta?.["io.modelcontextprotocol/protocolVersion"] === MODERN;
  return { body: JSON.stringify(msg), modern };
}

const originalFetch = globalThis.fetch;
globalThis.fetch = async function meshmuxEnvFetch(input, init) {
  const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
  if (method !== "POST") return originalFetch(input, init);
  let bodyText;
  if (typeof init?.body === "string") {
    bodyText = init.body;
  } else if (init?.body === undefined && input instanceof Request) {
    bodyText = await input.clone().text();
  } else {
    return originalFetch(input, init);
  }
  const changed = withEnv(bodyText);
  if (!changed) return originalFetch(input, init);
  const headers = new Headers(input instanceof Request ? input.headers : undefined);
  new Headers(init?.headers).forEach((value, name) => headers.set(name, value));
  headers.delete("content-length");
  const modern = changed.modern || headers.get("mcp-protocol-version") === MODERN;
  if (modern && !headers.has(PARAM_HEADER)) headers.set(PARAM_HEADER, ENV);
  const url = input instanceof Request ? input.url : input;
  return originalFetch(url, { ...init, method, headers, body: changed.body });
};

function headerOf(req, name) {
  const value = req.getHeader(name);
  return Array.isArray(value) ? value.join(", ") : value === undefined ? undefined : String(value);
}

const originalRequest = http.request;
http.request = function meshmuxEnvRequest(...args) {
  const req = originalRequest.apply(this, args);
  if (req.method !== "POST") return req;
  const write = req.write;
  const end = req.end;
  let pending = "";
  let buffering = true;
  // Hold the body until end(): headers (Content-Length, Mcp-Param-Env) can change until then.
  req.write = function (chunk, encoding, callback) {
    if (!buffering) return write.call(this, chunk, encoding, callback);
    pending += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (typeof encoding === "function") encoding();
    else if (typeof callback === "function") callback();
    return true;
  };
  req.end = function (chunk, encoding, callback) {
    if (typeof chunk === "function") {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === "function") {
      callback = encoding;
      encoding = undefined;
    }
    if (chunk !== undefined && chunk !== null) {
      pending += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    }
    buffering = false;
    let body = pending;
    const changed = body ? withEnv(body) : null;
    if (changed) {
      body = changed.body;
      if (req.hasHeader("content-length")) req.setHeader("Content-Length", Buffer.byteLength(body));
      const modern = changed.modern || headerOf(req, "mcp-protocol-version") === MODERN;
      if (modern && !req.hasHeader(PARAM_HEADER)) req.setHeader(PARAM_HEADER, ENV);
    }
    return body ? end.call(this, body, callback) : end.call(this, callback);
  };
  return req;
};
