//! MCP protocol versions and eras: the `initialize` era (2025-03-26, 2025-06-18, 2025-11-25)
//! and the 2026-07-28 era (no `initialize`, `Mcp-Method`/`Mcp-Name` headers, `server/discover`).

use base64::Engine as _;

pub const V2025_03_26: &str = "2025-03-26";
pub const V2025_06_18: &str = "2025-06-18";
pub const V2025_11_25: &str = "2025-11-25";
pub const V2026_07_28: &str = "2026-07-28";

/// Every version the gateway speaks, oldest first.
pub const SUPPORTED: [&str; 4] = [V2025_03_26, V2025_06_18, V2025_11_25, V2026_07_28];

/// The newest version that still uses the `initialize` handshake.
pub const LATEST_WITH_INITIALIZE: &str = V2025_11_25;

/// The version to answer an `initialize` with: the client's if we speak it and it uses
/// `initialize`, else our latest that does (the client then decides whether to go on).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    SUPPORTED
        .iter()
        .copied()
        .find(|v| Some(*v) == requested && !header_era(v))
        .unwrap_or(LATEST_WITH_INITIALIZE)
}

pub fn is_supported(version: &str) -> bool {
    SUPPORTED.contains(&version)
}

/// Whether `version` is of the 2026-07-28 era, whose requests carry `Mcp-Method`/`Mcp-Name`
/// headers that must agree with the body. Versions are dates, so they compare as strings.
pub fn header_era(version: &str) -> bool {
    version >= V2026_07_28
}

/// Decodes a `Mcp-*` header value: plain ASCII as is, or `=?base64?…?=` for anything else.
pub fn decode_header_value(raw: &str) -> Option<String> {
    let raw = raw.trim();
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-11-25")), "2025-11-25");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST_WITH_INITIALIZE);
        assert_eq!(negotiate(Some("2026-07-28")), LATEST_WITH_INITIALIZE);
        assert_eq!(negotiate(None), LATEST_WITH_INITIALIZE);
    }

    #[test]
    fn header_values() {
        assert_eq!(decode_header_value("Prod").as_deref(), Some("Prod"));
        assert_eq!(
            decode_header_value("=?base64?UHJvZA==?=").as_deref(),
            Some("Prod")
        );
        assert_eq!(decode_header_value("=?base64?%%%?="), None);
        assert!(header_era("2026-07-28") && !header_era("2025-11-25"));
    }
}
