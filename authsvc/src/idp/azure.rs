//! Microsoft Entra ID through the generic OIDC flow, with seed 000's keys
//! (`tenant_id`, `client_id`, `client_secret`). Entra rejects RFC 8707 `resource`, so the
//! upstream flow never sends it; its app roles arrive in the ID token's `roles` claim.

/// The v2.0 authority (also the OIDC issuer) of a tenant.
pub fn authority(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/v2.0")
}
