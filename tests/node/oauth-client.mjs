// The official TypeScript SDK's OAuth client against the gateway, for meshmux's end-to-end
// tests: the whole MCP authorization flow as a desktop client runs it, with headless Chromium
// as the user's browser.
// Usage: node oauth-client.mjs '<spec JSON>' where the spec is
//   {"url": "http://127.0.0.1:<gateway>/mcp", "user": "alice", "screenshots": "<dir>",
//    "calls": [{"name": "...", "arguments": {...}}]}
// Connecting gets a 401 with resource_metadata; the SDK discovers authsvc (RFC 9728, RFC 8414),
// registers itself (RFC 7591) and builds the authorization URL with PKCE S256 and `resource`;
// redirectToAuthorization hands that URL to Chromium, which signs in at the upstream IdP as
// `user`, approves authsvc's consent page, and is sent to this client's loopback redirect_uri,
// where the code is caught; transport.finishAuth(code) exchanges it; the client reconnects,
// lists the tools and makes the calls. Prints one JSON object on stdout:
//   {"tools": [...], "results": [{"result"} | {"error"}], "tokens": {"token_type", "scope",
//    "has_refresh_token", "claims"}, "client_id", "iss" (of the redirect),
//    "visited": [path of each page the browser requested, redirects included]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createServer } from "node:http";
import { launch, shooter, signIn } from "./browser.mjs";

const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.url || !spec.user) {
  console.error("usage: node oauth-client.mjs '{\"url\": ..., \"user\": ..., \"calls\": [...]}'");
  process.exit(2);
}

// The loopback redirect URI a native MCP client registers, and its listener there, which takes
// the browser's last redirect (RFC 8252 §7.3).
let caught;
const listener = createServer((req, res) => {
  const url = new URL(req.url, redirectBase());
  if (url.pathname === "/oauth/callback") caught = url;
  res.writeHead(200, { "content-type": "text/html" });
  res.end("<h1>Signed in</h1><p>You may close this window.</p>");
});
await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
function redirectBase() {
  return `http://127.0.0.1:${listener.address().port}`;
}
const redirectUrl = `${redirectBase()}/oauth/callback`;
const shot = shooter(spec.screenshots);
const visited = [];

class BrowserProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.code = undefined;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: "meshmux e2e (TypeScript SDK)",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    if (!this._verifier) throw new Error("no code verifier saved");
    return this._verifier;
  }
  saveDiscoveryState(state) {
    this._discovery = state;
  }
  discoveryState() {
    return this._discovery;
  }
  // The user's browser: sign in and consent, then catch the redirect carrying the code.
  async redirectToAuthorization(url) {
    console.error(`authorization URL: ${url}`);
    const { context, close } = await launch();
    try {
      const page = await context.newPage();
      page.on("request", (r) => {
        if (r.isNavigationRequest() && r.frame() === page.mainFrame()) visited.push(new URL(r.url()).pathname);
      });
      await page.goto(url.toString());
      await signIn(page, { user: spec.user, done: (u) => u.startsWith(redirectUrl), shot });
      await shot(page, "back-at-client");
      if (!caught) throw new Error(`the browser never reached ${redirectUrl}; at ${page.url()}`);
      const error = caught.searchParams.get("error");
      if (error) throw new Error(`authorization refused: ${error} ${caught.searchParams.get("error_description")}`);
      this.code = caught.searchParams.get("code");
      this.iss = caught.searchParams.get("iss");
      if (!this.code) throw new Error(`no code in ${caught}`);
    } finally {
      await close();
    }
  }
}

const provider = new BrowserProvider();
const url = new URL(spec.url);
let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
let client = new Client({ name: "meshmux-e2e-oauth", version: "1.0.0" });
try {
  await client.connect(transport);
  throw new Error("the gateway let an anonymous client in");
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
if (!provider.code) throw new Error("the SDK never sent the user to the authorization server");
await transport.finishAuth(provider.code);

transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
client = new Client({ name: "meshmux-e2e-oauth", version: "1.0.0" });
await client.connect(transport);
const tools = [];
let cursor;
do {
  const page = await client.listTools(cursor ? { cursor } : undefined);
  tools.push(...page.tools);
  cursor = page.nextCursor;
} while (cursor);
const results = [];
for (const call of spec.calls ?? []) {
  try {
    results.push({ result: await client.callTool({ name: call.name, arguments: call.arguments ?? {} }) });
  } catch (e) {
    results.push({ error: { code: e.code ?? null, message: String(e.message ?? e) } });
  }
}
await client.close();
listener.close();

const access = provider.tokens()?.access_token ?? "";
const payload = access.split(".")[1];
const out = {
  tools,
  results,
  tokens: {
    token_type: provider.tokens()?.token_type,
    has_refresh_token: Boolean(provider.tokens()?.refresh_token),
    claims: payload ? JSON.parse(Buffer.from(payload, "base64url").toString()) : null,
  },
  client_id: provider.clientInformation()?.client_id,
  iss: provider.iss,
  visited,
};
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
