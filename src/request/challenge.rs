//! The challenge policy: what the layer and the middleware do about a response, decided in one
//! place from its status, its `WWW-Authenticate` challenges ([`crate::challenge`]) and, for
//! gRPC, its `grpc-status` (SECURITY.md rules 29, 48, 49).
//!
//! The policy only names the action; the integrations carry it out, each kind at most once per
//! request, and only with a replayable request.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, StatusCode};

use crate::challenge::{Challenge, Challenges};

/// What was sent, as far as the policy needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sent<'a> {
    /// Whether the request carried a DPoP proof (and so may be answered with a nonce).
    pub(crate) dpop: bool,
    /// The nonce that proof carried, if any.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    pub(crate) nonce: Option<&'a str>,
}

/// What to do about one response.
///
/// When several challenges of one response call for different actions, one is chosen, in this
/// order (see [`assess`] for why): `Nonce`, `Renew`, `Claims`, `StepUp`, `MoreScope`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Give the response back.
    Done,
    /// Drop the token (generation-checked), renew, retry once.
    Renew,
    /// DPoP `use_dpop_nonce`: retry once with a new proof carrying this nonce.
    Nonce(String),
    /// 403 `insufficient_scope` with `scope=`: the scopes required, separated by one space.
    MoreScope(String),
    /// 401 `insufficient_user_authentication` (RFC 9470): sign the person in again with these.
    StepUp {
        acr_values: Option<String>,
        max_age: Option<u64>,
    },
    /// `insufficient_claims` with `claims=`: the claims as JSON text (decoded from base64).
    Claims(String),
}

/// Which challenges a request has acted on: each kind at most once (SECURITY.md rule 49).
#[derive(Debug, Default)]
pub(crate) struct Acted {
    renewed: bool,
    nonce: bool,
    upgraded: bool,
}

/// What a request does about a [`Verdict`], decided once for both integrations.
#[derive(Debug)]
pub(crate) enum Step {
    /// Give the answer back.
    Return,
    /// Drop the token that was refused (generation-checked), then give the answer back: the
    /// request cannot be sent again, and the next one gets a renewed token.
    DropToken,
    /// Drop the token that was refused, renew, and send the request once more.
    Renew,
    /// Send the request once more as it is (a new proof picks up the new nonce).
    Resend,
    /// Get a token that meets these from a source derived from the request's own, and send
    /// the request once more with it.
    Upgrade(crate::flow::Requirements),
}

impl Acted {
    /// The step for `verdict`, for a request that can (`replayable`) or cannot be sent again:
    /// each kind of challenge is acted on at most once per request, and only a renewal does
    /// anything (drop the token) for a request that cannot be sent again.
    pub(crate) fn next(&mut self, verdict: Verdict, replayable: bool) -> Step {
        match verdict {
            Verdict::Done => Step::Return,
            Verdict::Renew if self.renewed => Step::Return,
            Verdict::Renew => {
                self.renewed = true;
                if replayable {
                    Step::Renew
                } else {
                    Step::DropToken
                }
            }
            Verdict::Nonce(_) if self.nonce || !replayable => Step::Return,
            Verdict::Nonce(_) => {
                self.nonce = true;
                Step::Resend
            }
            more => match super::upgrade::requirements(&more) {
                Some(need) if !self.upgraded && replayable => {
                    self.upgraded = true;
                    Step::Upgrade(need)
                }
                _ => Step::Return,
            },
        }
    }
}

/// The header a gRPC server's status travels in (in the headers of a trailers-only response,
/// else in the trailers).
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// gRPC's `UNAUTHENTICATED`.
const GRPC_UNAUTHENTICATED: &str = "16";

/// What to do about a response with `status` and `headers` to a request sent as `sent`.
///
/// - **Renew**: a 401 with a `Bearer` or `DPoP` challenge whose `error` is `invalid_token` or
///   absent, or a 401 without any readable `WWW-Authenticate` (as GitHub sends); a gRPC answer
///   (HTTP 200) with `grpc-status: 16` (`UNAUTHENTICATED`). A 401 whose challenges are all for
///   other schemes, or carry other errors (`invalid_request`), is `Done`; so is a 401 whose
///   `WWW-Authenticate` is too large to read ([`crate::challenge::MAX_HEADER_BYTES`]).
/// - **Nonce**: only when the request carried a DPoP proof: a 401 with a `DPoP` challenge
///   `error="use_dpop_nonce"` (RFC 9449 §9) and one well-formed `DPoP-Nonce` header that differs
///   from the nonce just sent. The same nonce again, or none, is no reason to retry.
/// - **Claims**: a 401 or 403 with `error="insufficient_claims"` and a `claims` value that is
///   (base64 of) a JSON object.
/// - **StepUp**: a 401 with `error="insufficient_user_authentication"` (RFC 9470), with its
///   `acr_values` and `max_age` when present.
/// - **MoreScope**: a 403 (or 401) with `error="insufficient_scope"` and a non-empty `scope`.
/// - Anything else, every other status included, is **Done**.
///
/// Only `Bearer` and `DPoP` challenges count. When several apply, the order is
/// Nonce > Renew > Claims > StepUp > MoreScope, cheapest and most basic first: a nonce
/// challenge is about the proof, which the server checks before it looks at the token, and a
/// retry with a new proof costs no token request; a token the server does not accept at all
/// must be renewed before any question about what it carries makes sense; a claims challenge
/// (continuous access evaluation: the session was revoked or changed) is answered by a token
/// request without a person, where a step-up needs a person to sign in again; and a stronger
/// sign-in comes before a wider scope, because a scope upgrade obtained with a sign-in the
/// server considers too weak would be challenged again.
///
/// Every response passes through here: the common answers (a 200 without `grpc-status`, any
/// status but 401 and 403) are decided inline, and only a 401 or 403 reads challenges.
#[inline]
pub(crate) fn assess(status: StatusCode, headers: &HeaderMap, sent: &Sent<'_>) -> Verdict {
    if status == StatusCode::OK {
        return if grpc_unauthenticated(headers) {
            Verdict::Renew
        } else {
            Verdict::Done
        };
    }
    let unauthorized = status == StatusCode::UNAUTHORIZED;
    if !unauthorized && status != StatusCode::FORBIDDEN {
        return Verdict::Done;
    }
    assess_challenges(unauthorized, headers, sent)
}

/// [`assess`] for a 401 (`unauthorized`) or a 403.
fn assess_challenges(unauthorized: bool, headers: &HeaderMap, sent: &Sent<'_>) -> Verdict {
    let readable = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .any(|v| v.to_str().is_ok());
    if !readable {
        return if unauthorized {
            Verdict::Renew
        } else {
            Verdict::Done
        };
    }
    Challenges::from_headers(headers)
        .iter()
        .filter(|c| c.is_bearer() || c.is_dpop())
        .filter_map(|c| verdict_for(c, unauthorized, headers, sent))
        .min_by_key(precedence)
        .unwrap_or(Verdict::Done)
}

/// `true` when the response is `Renew` under [`assess`] for a request without DPoP: the
/// question the layer and the middleware asked before the policy had other answers, kept for
/// the tests and the fuzz target that state the renewal rule on its own.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn calls_for_renewal(status: StatusCode, headers: &HeaderMap) -> bool {
    assess(status, headers, &Sent::default()) == Verdict::Renew
}

/// `true` when `headers` (a trailers-only response's headers, or a response's trailers) carry
/// gRPC's `UNAUTHENTICATED` status, which gRPC servers send with HTTP 200.
#[inline]
pub(crate) fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get(&GRPC_STATUS)
        .is_some_and(|v| v.as_bytes().trim_ascii() == GRPC_UNAUTHENTICATED.as_bytes())
}

/// The action one `Bearer` or `DPoP` challenge calls for, if any.
fn verdict_for(
    challenge: &Challenge,
    unauthorized: bool,
    headers: &HeaderMap,
    sent: &Sent<'_>,
) -> Option<Verdict> {
    match challenge.error() {
        None | Some("invalid_token") => unauthorized.then_some(Verdict::Renew),
        Some("use_dpop_nonce") if unauthorized && sent.dpop && challenge.is_dpop() => {
            fresh_nonce(headers, sent).map(Verdict::Nonce)
        }
        Some("insufficient_claims") => challenge.claims().map(Verdict::Claims),
        Some("insufficient_user_authentication") if unauthorized => Some(Verdict::StepUp {
            acr_values: challenge
                .acr_values()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            max_age: challenge.max_age(),
        }),
        Some("insufficient_scope") => {
            let scopes: Vec<&str> = challenge.scopes().collect();
            (!scopes.is_empty()).then(|| Verdict::MoreScope(scopes.join(" ")))
        }
        Some(_) => None,
    }
}

/// The response's nonce when it is well formed and not the one just sent.
#[cfg(feature = "dpop")]
fn fresh_nonce(headers: &HeaderMap, sent: &Sent<'_>) -> Option<String> {
    crate::dpop::nonce_in(headers)
        .filter(|n| Some(*n) != sent.nonce)
        .map(str::to_owned)
}

/// Without the `dpop` feature no request carries a proof, so no nonce is ever asked for.
#[cfg(not(feature = "dpop"))]
fn fresh_nonce(_headers: &HeaderMap, _sent: &Sent<'_>) -> Option<String> {
    None
}

fn precedence(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Nonce(_) => 0,
        Verdict::Renew => 1,
        Verdict::Claims(_) => 2,
        Verdict::StepUp { .. } => 3,
        Verdict::MoreScope(_) => 4,
        Verdict::Done => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NO_DPOP: Sent<'static> = Sent {
        dpop: false,
        nonce: None,
    };
    #[cfg(feature = "dpop")]
    const DPOP: Sent<'static> = Sent {
        dpop: true,
        nonce: None,
    };

    fn headers(challenges: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for c in challenges {
            headers.append(WWW_AUTHENTICATE, c.parse().unwrap());
        }
        headers
    }

    #[cfg(feature = "dpop")]
    fn with_nonce(mut h: HeaderMap, nonce: &str) -> HeaderMap {
        h.append(
            crate::dpop::DPOP_NONCE_HEADER,
            HeaderValue::from_str(nonce).unwrap(),
        );
        h
    }

    fn at(status: u16, challenges: &[&str]) -> Verdict {
        assess(
            StatusCode::from_u16(status).unwrap(),
            &headers(challenges),
            &NO_DPOP,
        )
    }

    fn renews(challenges: &[&str]) -> bool {
        calls_for_renewal(StatusCode::UNAUTHORIZED, &headers(challenges))
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
        // DPoP challenges count like Bearer ones.
        assert!(renews(&[r#"DPoP error="invalid_token""#]));
        assert!(renews(&[r#"dpop algs="ES256""#]));
    }

    #[test]
    fn other_errors_and_schemes_do_not_renew() {
        assert!(!renews(&[
            r#"Bearer error="insufficient_scope", scope="admin""#
        ]));
        assert!(!renews(&[r#"Bearer error="invalid_request""#]));
        assert!(!renews(&[r#"Basic realm="x""#]));
        assert!(!calls_for_renewal(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert_eq!(at(403, &[r#"Bearer error="invalid_token""#]), Verdict::Done);
        assert_eq!(at(403, &["Bearer"]), Verdict::Done);
        for status in [200, 400, 407, 500] {
            assert_eq!(at(status, &[]), Verdict::Done, "{status}");
            assert_eq!(at(status, &["Bearer"]), Verdict::Done, "{status}");
        }
    }

    #[test]
    fn unreadable_and_oversized_challenges() {
        // A field that is not visible ASCII is as if absent.
        let mut h = HeaderMap::new();
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"Basic \xff").unwrap(),
        );
        assert_eq!(
            assess(StatusCode::UNAUTHORIZED, &h, &NO_DPOP),
            Verdict::Renew
        );
        // One too large to read is there but says nothing we act on.
        let huge = format!(
            r#"Bearer error="invalid_token", realm="{}""#,
            "x".repeat(crate::challenge::MAX_HEADER_BYTES)
        );
        assert_eq!(at(401, &[&huge]), Verdict::Done);
        assert_eq!(at(401, &[""]), Verdict::Done);
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn a_nonce_challenge_retries_with_a_new_nonce_only() {
        let challenge = headers(&[r#"DPoP error="use_dpop_nonce", error_description="x""#]);
        let h = with_nonce(challenge.clone(), "n-2");
        let s = StatusCode::UNAUTHORIZED;
        assert_eq!(assess(s, &h, &DPOP), Verdict::Nonce("n-2".into()));
        let sent_n1 = Sent {
            dpop: true,
            nonce: Some("n-1"),
        };
        assert_eq!(assess(s, &h, &sent_n1), Verdict::Nonce("n-2".into()));
        // The nonce just sent, again: no retry.
        let sent_n2 = Sent {
            dpop: true,
            nonce: Some("n-2"),
        };
        assert_eq!(assess(s, &h, &sent_n2), Verdict::Done);
        // No nonce, a malformed one, or two of them.
        assert_eq!(assess(s, &challenge, &DPOP), Verdict::Done);
        assert_eq!(
            assess(s, &with_nonce(challenge.clone(), "has\"quote"), &DPOP),
            Verdict::Done
        );
        assert_eq!(
            assess(s, &with_nonce(h.clone(), "n-3"), &DPOP),
            Verdict::Done
        );
        // Only for a request that carried a proof, only on a DPoP challenge, only on a 401.
        assert_eq!(assess(s, &h, &NO_DPOP), Verdict::Done);
        let bearer = with_nonce(headers(&[r#"Bearer error="use_dpop_nonce""#]), "n-2");
        assert_eq!(assess(s, &bearer, &DPOP), Verdict::Done);
        assert_eq!(assess(StatusCode::FORBIDDEN, &h, &DPOP), Verdict::Done);
        assert_eq!(assess(StatusCode::BAD_REQUEST, &h, &DPOP), Verdict::Done);
    }

    #[test]
    fn insufficient_scope_asks_for_the_scopes_required() {
        let more = |s: &str| Verdict::MoreScope(s.to_owned());
        let c = r#"Bearer error="insufficient_scope", scope="  files:read   files:write ""#;
        assert_eq!(at(403, &[c]), more("files:read files:write"));
        assert_eq!(at(401, &[c]), more("files:read files:write"));
        assert_eq!(
            at(403, &[r#"DPoP error="insufficient_scope", scope=admin"#]),
            more("admin")
        );
        assert_eq!(
            at(403, &[r#"Bearer error="insufficient_scope""#]),
            Verdict::Done
        );
        assert_eq!(
            at(403, &[r#"Bearer error="insufficient_scope", scope=" ""#]),
            Verdict::Done
        );
        assert_eq!(
            at(403, &[r#"Basic error="insufficient_scope", scope="a""#]),
            Verdict::Done
        );
    }

    #[test]
    fn insufficient_user_authentication_steps_up() {
        assert_eq!(
            at(
                401,
                &[
                    r#"Bearer error="insufficient_user_authentication", acr_values="urn:mfa", max_age=5"#
                ]
            ),
            Verdict::StepUp {
                acr_values: Some("urn:mfa".into()),
                max_age: Some(5)
            }
        );
        assert_eq!(
            at(
                401,
                &[r#"Bearer error="insufficient_user_authentication", acr_values="", max_age=x"#]
            ),
            Verdict::StepUp {
                acr_values: None,
                max_age: None
            }
        );
        assert_eq!(
            at(403, &[r#"Bearer error="insufficient_user_authentication""#]),
            Verdict::Done
        );
    }

    #[test]
    fn insufficient_claims_asks_for_the_claims() {
        let c = concat!(
            r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", "#,
            r#"error="insufficient_claims", "#,
            r#"claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTYwNDEwNjY1MSJ9fX0=""#
        );
        let json = r#"{"access_token":{"nbf":{"essential":true, "value":"1604106651"}}}"#;
        assert_eq!(at(401, &[c]), Verdict::Claims(json.into()));
        assert_eq!(at(403, &[c]), Verdict::Claims(json.into()));
        assert_eq!(
            at(401, &[r#"Bearer error="insufficient_claims""#]),
            Verdict::Done
        );
        assert_eq!(
            at(
                401,
                &[r#"Bearer error="insufficient_claims", claims="bm90IGpzb24=""#]
            ),
            Verdict::Done
        );
    }

    #[test]
    fn grpc_unauthenticated_renews() {
        let grpc = |status: &str| {
            let mut h = HeaderMap::new();
            h.insert(GRPC_STATUS, HeaderValue::from_str(status).unwrap());
            assess(StatusCode::OK, &h, &NO_DPOP)
        };
        assert_eq!(grpc("16"), Verdict::Renew);
        for other in ["0", "7", "13", "160", "", "sixteen"] {
            assert_eq!(grpc(other), Verdict::Done, "{other}");
        }
        assert_eq!(
            assess(StatusCode::OK, &HeaderMap::new(), &NO_DPOP),
            Verdict::Done
        );
        let mut h = HeaderMap::new();
        h.insert(GRPC_STATUS, HeaderValue::from_static("16"));
        assert!(calls_for_renewal(StatusCode::OK, &h));
        assert_eq!(
            assess(StatusCode::INTERNAL_SERVER_ERROR, &h, &NO_DPOP),
            Verdict::Done
        );
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn precedence_nonce_renew_claims_step_up_more_scope() {
        let nonce = r#"DPoP error="use_dpop_nonce""#;
        let renew = r#"Bearer error="invalid_token""#;
        let claims = r#"Bearer error="insufficient_claims", claims="{}""#;
        let step_up = r#"Bearer error="insufficient_user_authentication", max_age=0"#;
        let scope = r#"Bearer error="insufficient_scope", scope="a""#;
        let order = [nonce, renew, claims, step_up, scope];
        let expected = [
            Verdict::Nonce("n".into()),
            Verdict::Renew,
            Verdict::Claims("{}".into()),
            Verdict::StepUp {
                acr_values: None,
                max_age: Some(0),
            },
            Verdict::MoreScope("a".into()),
        ];
        for (i, want) in expected.iter().enumerate() {
            // The winner with everything of lower precedence, in either order.
            let mut forward: Vec<&str> = order[i..].to_vec();
            for _ in 0..2 {
                let h = with_nonce(headers(&forward), "n");
                assert_eq!(
                    &assess(StatusCode::UNAUTHORIZED, &h, &DPOP),
                    want,
                    "{forward:?}"
                );
                forward.reverse();
            }
        }
        // All in one field, too.
        let h = with_nonce(headers(&[&order.join(", ")]), "n");
        assert_eq!(
            assess(StatusCode::UNAUTHORIZED, &h, &DPOP),
            Verdict::Nonce("n".into())
        );
        // A nonce challenge that does not apply leaves the next in line.
        let h = headers(&[nonce, renew]);
        assert_eq!(assess(StatusCode::UNAUTHORIZED, &h, &DPOP), Verdict::Renew);
    }

    #[test]
    fn each_kind_of_challenge_is_acted_on_once_and_only_with_a_replayable_request() {
        let scope = || Verdict::MoreScope("admin".into());
        let nonce = || Verdict::Nonce("n".into());
        let mut acted = Acted::default();
        assert!(matches!(acted.next(Verdict::Renew, true), Step::Renew));
        assert!(matches!(acted.next(nonce(), true), Step::Resend));
        assert!(matches!(acted.next(scope(), true), Step::Upgrade(_)));
        for again in [
            Verdict::Renew,
            nonce(),
            scope(),
            Verdict::Claims("{}".into()),
        ] {
            assert!(matches!(acted.next(again, true), Step::Return));
        }
        assert!(matches!(acted.next(Verdict::Done, true), Step::Return));

        let mut acted = Acted::default();
        assert!(matches!(acted.next(nonce(), false), Step::Return));
        assert!(matches!(acted.next(scope(), false), Step::Return));
        assert!(matches!(acted.next(Verdict::Renew, false), Step::DropToken));
        assert!(matches!(acted.next(Verdict::Renew, false), Step::Return));
    }
}
