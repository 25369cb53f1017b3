//! Challenges: what a `401` answer's `WWW-Authenticate` says, and whether a renewed token may
//! get a different answer (SECURITY.md rule 29).

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

/// `true` when a response says the token was not accepted and a renewed one may work (rule 29):
/// a 401 whose bearer challenge says `invalid_token` or no error at all, or a 401 with no
/// challenge (as GitHub sends). A 401 whose challenges are all for other schemes, or whose bearer
/// error is something else (`invalid_request`, `insufficient_scope`), is returned as it is.
pub(crate) fn calls_for_renewal(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::UNAUTHORIZED {
        return false;
    }
    let mut challenges = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if challenges.peek().is_none() {
        return true;
    }
    challenges
        .flat_map(parse_challenges)
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .any(|c| match c.error {
            None => true,
            Some(e) => e == "invalid_token",
        })
}

/// One challenge of a `WWW-Authenticate` value: its scheme and, for our purposes, its `error`.
#[derive(Debug, PartialEq)]
struct Challenge {
    scheme: String,
    error: Option<String>,
}

/// Parses `WWW-Authenticate` (RFC 9110 §11.6.1) leniently: several challenges per value, params
/// as tokens or quoted strings with escapes. Malformed input yields what could be read, never a
/// panic.
fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            break;
        }
        let (word, after) = take_token(rest);
        if word.is_empty() {
            // Not a token character: skip it and go on.
            let mut chars = rest.chars();
            chars.next();
            rest = chars.as_str();
            continue;
        }
        let after_ws = after.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=') {
            if value_part.starts_with('=') || value_part.trim_start().is_empty() {
                // token68 padding like `abc==`: part of the challenge, not a parameter.
                rest = value_part.trim_start_matches('=');
                continue;
            }
            let (val, after_val) = take_value(value_part.trim_start());
            if let Some(current) = out.last_mut()
                && word.eq_ignore_ascii_case("error")
                && current.error.is_none()
            {
                current.error = Some(val);
            }
            rest = after_val;
        } else {
            out.push(Challenge {
                scheme: word.to_owned(),
                error: None,
            });
            rest = after;
        }
    }
    out
}

fn take_token(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c)))
        .unwrap_or(s.len());
    s.split_at(end)
}

fn take_value(s: &str) -> (String, &str) {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return (value, &quoted[i + 1..]),
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let (token, rest) = take_token(s);
        (token.to_owned(), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renews(challenges: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for c in challenges {
            headers.append(WWW_AUTHENTICATE, c.parse().unwrap());
        }
        calls_for_renewal(StatusCode::UNAUTHORIZED, &headers)
    }

    #[test]
    fn invalid_token_and_bare_challenges_renew() {
        assert!(renews(&[]));
        assert!(renews(&["Bearer"]));
        assert!(renews(&[r#"Bearer realm="api", error="invalid_token""#]));
        assert!(renews(&[
            r#"Basic realm="x", Bearer error="invalid_token""#
        ]));
        assert!(renews(&[r#"Basic realm="x""#, r#"Bearer realm="y""#]));
    }

    #[test]
    fn other_errors_and_schemes_do_not_renew() {
        assert!(!renews(&[
            r#"Bearer error="insufficient_scope", scope="admin""#
        ]));
        assert!(!renews(&[r#"Bearer error="invalid_request""#]));
        assert!(!renews(&[r#"Basic realm="x""#]));
        assert!(!calls_for_renewal(StatusCode::FORBIDDEN, &HeaderMap::new()));
    }

    #[test]
    fn quoted_values_with_escapes_and_commas() {
        let c = parse_challenges(
            r#"Bearer realm="a \"quoted\", realm", error="invalid_token", Newauth abc=="#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].error.as_deref(), Some("invalid_token"));
        assert_eq!(c[1].scheme, "Newauth");
    }

    #[test]
    fn malformed_challenges_never_panic() {
        for s in [
            "",
            "=",
            "\"",
            "Bearer error=\"",
            "Bearer ,,,, =x",
            "é Bearer",
            "Bearer error",
            "Bearer error=",
            "\\\\\"",
            "Bearer realm=\"\\",
        ] {
            let _ = parse_challenges(s);
        }
    }
}

/// Which challenges a request has acted on: each kind at most once (SECURITY.md rule 49).
#[derive(Debug, Default)]
pub(crate) struct Acted {
    pub(crate) renewed: bool,
    pub(crate) nonce: bool,
    pub(crate) upgraded: bool,
}

// --- Interim policy (replaced by the challenge engine's) -----------------------------------

/// What was sent, as far as the policy needs it.
pub(crate) struct Sent<'a> {
    pub(crate) dpop: bool,
    pub(crate) nonce: Option<&'a str>,
}

/// What to do about one response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Done,
    Renew,
    Nonce(String),
    MoreScope(String),
    StepUp {
        acr_values: Option<String>,
        max_age: Option<u64>,
    },
    Claims(String),
}

/// Interim: renewal and DPoP nonces only.
pub(crate) fn assess(status: StatusCode, headers: &HeaderMap, sent: &Sent<'_>) -> Verdict {
    if status != StatusCode::UNAUTHORIZED {
        return Verdict::Done;
    }
    if sent.dpop {
        let asks_nonce = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .any(|c| {
                c.scheme.eq_ignore_ascii_case("dpop")
                    && c.error.as_deref() == Some("use_dpop_nonce")
            });
        if asks_nonce {
            #[cfg(feature = "dpop")]
            if let Some(n) = crate::dpop::nonce_in(headers)
                && sent.nonce != Some(n)
            {
                return Verdict::Nonce(n.to_owned());
            }
            return Verdict::Done;
        }
    }
    if calls_for_renewal(status, headers) {
        Verdict::Renew
    } else {
        Verdict::Done
    }
}
