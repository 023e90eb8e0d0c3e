//! Shell-style globs for RBAC (`*`, `?`, `[abc]`, `[!a-z]`), the semantics of seed 000's
//! `fnmatch`, matched without allocation and without panics.

/// One compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A pattern that cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unclosed `[` in glob")]
pub struct GlobError;

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => {
                    let negated = matches!(chars.peek(), Some('!' | '^'));
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(c) = chars.next() else {
                            return Err(GlobError);
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let mut lookahead = chars.clone();
                        if lookahead.next() == Some('-')
                            && let Some(end) = lookahead.next().filter(|e| *e != ']')
                        {
                            chars.next();
                            chars.next();
                            ranges.push((c, end));
                            continue;
                        }
                        ranges.push((c, c));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Glob {
            tokens,
            source: pattern.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        // Names are nearly always ASCII: match their bytes without collecting the chars.
        if text.is_ascii() {
            run(&self.tokens, text.as_bytes(), |b| char::from(*b))
        } else {
            run(&self.tokens, &text.chars().collect::<Vec<_>>(), |c| *c)
        }
    }
}

/// Matches `text` (its items read as chars by `char_of`) against the whole of `tokens`.
fn run<T>(tokens: &[Token], text: &[T], char_of: impl Fn(&T) -> char) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index it matched to).
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        match (tokens.get(p), text.get(t)) {
            (Some(Token::Star), _) => {
                backtrack = Some((p + 1, t));
                p += 1;
                continue;
            }
            (Some(token), Some(c)) if token_matches(token, char_of(c)) => {
                p += 1;
                t += 1;
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        match backtrack {
            Some((bp, bt)) if bt < text.len() => {
                backtrack = Some((bp, bt + 1));
                p = bp;
                t = bt + 1;
            }
            _ => return false,
        }
    }
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any => true,
        Token::Star => false,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, text: &str, expected: bool) {
        let glob = Glob::new(pattern).unwrap_or_else(|e| unreachable!("{pattern}: {e}"));
        assert_eq!(glob.matches(text), expected, "{pattern:?} vs {text:?}");
    }

    #[test]
    fn matching() {
        check("*", "", true);
        check("*", "anything", true);
        check("logs*", "logs_search", true);
        check("logs*", "search_logs", false);
        check("*logs", "search_logs", true);
        check("*_*", "get_user", true);
        check("a*b*c", "aXbYc", true);
        check("a*b*c", "aXbY", false);
        check("Prod", "Prod", true);
        check("Prod", "prod", false);
        check("Prod", "Production", false);
        check("Pro?", "Prod", true);
        check("[PS]*", "Staging", true);
        check("[!P]*", "Prod", false);
        check("[a-c]x", "bx", true);
        check("[a-c]x", "dx", false);
        check("[]]", "]", true);
        check("**a", "bba", true);
        // Not ASCII: matched by chars, not bytes.
        check("?", "é", true);
        check("caf?", "café", true);
        check("[à-ê]*", "était", true);
        check("*é", "café", true);
        check("??", "é", false);
    }

    #[test]
    fn unclosed_class_is_an_error() {
        assert_eq!(Glob::new("[abc"), Err(GlobError));
    }
}
