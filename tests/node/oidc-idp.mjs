// A real OpenID Connect provider (npm `oidc-provider`, a certified implementation) standing in
// for Entra ID or Auth0 in meshmux's end-to-end tests. Loopback only.
// Usage: node oidc-idp.mjs '<spec JSON>' where the spec is
//   {"port": 4000,
//    "client": {"client_id": "...", "client_secret": "...", "redirect_uris": ["..."]},
//    "users": {"alice": {"name": "Alice", "roles": ["staging-reader"]}, ...}}
// The issuer is http://127.0.0.1:<port>. Its login page is oidc-provider's built-in
// devInteractions form (any password; a login not in `users` gets no account), then its consent page.
// ID tokens carry `name` and `roles` (scope `roles`) directly, as Entra ID puts app roles there.
// Optional `"machines": [{"client_id": "...", "client_secret": "...", "scope": "a b"}]` adds
// confidential clients for the client-credentials grant (RFC 6749 §4.4), and turns on that
// grant and RFC 7662 introspection (any of these clients may introspect; access tokens are
// opaque and live `"machine_token_ttl"` seconds, default 600).
// Prints one line `{"issuer": "..."}` on stdout once it listens.
import Provider from "oidc-provider";

const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.port || !spec.client || !spec.users) {
  console.error("usage: node oidc-idp.mjs '{\"port\": N, \"client\": {...}, \"users\": {...}}'");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${spec.port}`;
const machines = spec.machines ?? [];
const machineScopes = machines.flatMap((m) => (m.scope ?? "").split(" ").filter(Boolean));

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: spec.client.client_id,
      client_secret: spec.client.client_secret,
      redirect_uris: spec.client.redirect_uris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
    ...machines.map((m) => ({
      client_id: m.client_id,
      client_secret: m.client_secret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      ...(m.scope ? { scope: m.scope } : {}),
      token_endpoint_auth_method: "client_secret_basic",
    })),
  ],
  async findAccount(_ctx, id) {
    const user = spec.users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: user.name ?? id, roles: user.roles ?? [] };
      },
    };
  },
  claims: { openid: ["sub"], profile: ["name"], roles: ["roles"] },
  scopes: ["openid", "profile", "roles", ...machineScopes],
  // Put the requested claims into the ID token even in the code flow (as Entra does with
  // `roles`); authsvc reads them from there.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: machines.length > 0 },
    introspection: { enabled: machines.length > 0 },
  },
  pkce: { required: () => true },
  cookies: { keys: ["meshmux-test-idp-cookie-key"] },
  ttl: {
    Session: 600,
    Interaction: 600,
    Grant: 600,
    IdToken: 600,
    AccessToken: 600,
    ClientCredentials: spec.machine_token_ttl ?? 600,
  },
  async renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = `<h1>IdP error</h1><pre id="error">${JSON.stringify(out)}</pre>`;
  },
});
provider.proxy = false;

provider.on("server_error", (_ctx, err) => console.error("idp server_error:", err));
provider.on("grant.error", (_ctx, err) => console.error("idp grant.error:", err.message, err.error_description ?? ""));
provider.on("authorization.error", (_ctx, err) =>
  console.error("idp authorization.error:", err.message, err.error_description ?? ""),
);
provider.on("grant.success", (ctx) => console.error("idp grant.success for", ctx.oidc.client?.clientId));

const server = provider.listen(spec.port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ issuer }) + "\n");
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
