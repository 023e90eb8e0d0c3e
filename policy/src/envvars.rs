//! `$VAR`, `${VAR}` and `${VAR:-default}` substitution in config strings.
//!
//! The lookup is passed in (never `std::env` here) so callers and tests decide where values
//! come from. `$$` is a literal `$`; a `$` not followed by a name is kept as it is.
#![allow(
    clippy::indexing_slicing,
    reason = "load-time only: every index comes from a `find` on the same string"
)]

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("environment variable {0} is not set")]
    Missing(String),
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
}

/// Expands every variable reference in `input`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let Some(close) = braced.find('}') else {
                return Err(ExpandError::Unterminated(input.to_owned()));
            };
            let inner = &braced[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            // `${VAR:-default}` also applies the default when VAR is set but empty (as sh does).
            match (
                lookup(name).filter(|v| default.is_none() || !v.is_empty()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(ExpandError::Missing(name.to_owned())),
            }
            rest = &braced[close + 1..];
        } else {
            let len = after
                .char_indices()
                .find(|&(i, c)| {
                    !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                })
                .map_or(after.len(), |(i, _)| i);
            if len == 0 {
                out.push('$');
            } else {
                let name = &after[..len];
                out.push_str(&lookup(name).ok_or_else(|| ExpandError::Missing(name.to_owned()))?);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, ExpandError>) {
        let lookup = |name: &str| match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            "HOST_2" => Some("redis".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand(input, &lookup),
            expected.map(str::to_owned),
            "input {input:?}"
        );
    }

    #[test]
    fn forms() {
        check("plain", Ok("plain"));
        check("$TOKEN", Ok("s3cret"));
        check("Bearer $TOKEN", Ok("Bearer s3cret"));
        check("${TOKEN}x", Ok("s3cretx"));
        check("$HOST_2:6379", Ok("redis:6379"));
        check("${NOPE:-fallback}", Ok("fallback"));
        check("${EMPTY:-fallback}", Ok("fallback"));
        check("${EMPTY}", Ok(""));
        check("${NOPE:-}", Ok(""));
        check("cost: 5$", Ok("cost: 5$"));
        check("$$TOKEN", Ok("$TOKEN"));
        check("$1", Ok("$1"));
        check("$NOPE", Err(ExpandError::Missing("NOPE".into())));
        check("${NOPE}", Err(ExpandError::Missing("NOPE".into())));
        check("${TOKEN", Err(ExpandError::Unterminated("${TOKEN".into())));
    }
}
