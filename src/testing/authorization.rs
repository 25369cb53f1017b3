//! The authorization endpoint with its automatic login (RFC 6749 §4.1, RFC 7636, RFC 9207),
//! and the authorization code grant that redeems what it hands out.
//!
//! As at the token endpoint, every handler is synchronous and takes the state lock without an
//! `.await` in between.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::LOCATION;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::RoundTripKind;
use super::form::{Form, Query, requested_scope};
use super::page::{inert, page};
use super::par::Source;
use super::reply::{OAuthError, Response, token_answer};
use super::request_object::{self, Opened};
use super::state::{AuthorizationCode, Shared, random_token};

/// How long an authorization code can be redeemed (RFC 6749 §4.1.2 recommends at most 10
/// minutes).
pub(super) const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::from_secs(60);

/// `GET /authorize`: checks the request, logs in automatically, and redirects back with a code
/// or an error.
pub(super) fn endpoint(shared: &Shared, parts: &Parts) -> Response {
    shared.lock().authorization_requests += 1;
    let config = &shared.config;
    let (query, source, pushed_signed) =
        match super::par::resolve(shared, Query::parse(parts.uri.query())) {
            Ok(resolved) => resolved,
            Err(why) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Invalid request (invalid_request)",
                    why,
                );
            }
        };
    // A request object by value (RFC 9101 §5): its parameters replace the query's.
    let (query, signed, refused) = if source == Source::Query {
        let client_id = query.get("client_id").map(str::to_owned);
        let opened = request_object::open(
            shared,
            RoundTripKind::Authorization,
            &query,
            client_id.as_deref(),
        );
        match opened {
            Ok(Opened::Plain) => (query, false, None),
            Ok(Opened::Signed(params)) => (request_object::to_query(&params), true, None),
            Ok(Opened::Refused(params, why)) => {
                (request_object::to_query(&params), false, Some(why))
            }
            Err(why) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Invalid request object (invalid_request_object)",
                    why,
                );
            }
        }
    } else {
        (query, pushed_signed, None)
    };

    // Until the client and its redirect URI are known good, nothing is redirected
    // (RFC 6749 §4.1.2.1): the user gets a page instead.
    if query.is_repeated("client_id") || query.is_repeated("redirect_uri") {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "client_id or redirect_uri is repeated.",
        );
    }
    let Some(client_id) = query.get("client_id") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "client_id is missing.",
        );
    };
    let Some(client) = shared.client(client_id) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            "This client is not registered.",
        );
    };
    // A client of the builder may use any loopback URI besides its registered ones; a client
    // registered at `/register` only its own, a loopback one on any port (RFC 8252 §7.3).
    let (registered, any_loopback) = match &client.redirect_uris {
        Some(uris) => (uris.as_slice(), false),
        None => (
            config
                .redirect_uris
                .get(client_id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            true,
        ),
    };
    let accepted = |uri: &str| {
        registered
            .iter()
            .any(|r| r == uri || same_loopback_redirect(r, uri))
            || (any_loopback && is_loopback_redirect(uri))
    };
    let redirect_uri = match query.get("redirect_uri") {
        Some(uri) if accepted(uri) => uri,
        Some(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "The redirect URI is neither registered for this client nor an http loopback URI.",
            );
        }
        // RFC 6749 §3.1.2.3: the parameter may be left out only when exactly one is registered.
        None => match registered {
            [only] => only.as_str(),
            _ => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "redirect_uri is missing.",
                );
            }
        },
    };
    let Ok(target) = Url::parse(redirect_uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The redirect URI is not a URL.",
        );
    };

    // From here on, errors go back to the client.
    let state = if query.is_repeated("state") {
        None
    } else {
        query.get("state")
    };
    let back = Redirect {
        target,
        state,
        iss: config.send_iss.then_some(config.issuer.as_str()),
    };
    match source {
        Source::Expired => {
            return back.error("invalid_request", "the request_uri has expired");
        }
        Source::Query if config.par.require => {
            return back.error(
                "invalid_request",
                "this server takes only pushed authorization requests (RFC 9126)",
            );
        }
        Source::Query | Source::Pushed => {}
    }
    if let Some(why) = refused {
        return back.error(request_object::INVALID, why);
    }
    if config.request_objects.require && !signed {
        return back.error(
            "invalid_request",
            "this server takes only signed request objects (RFC 9101)",
        );
    }
    let code = match check_authorization_request(&query, config.require_pkce) {
        Ok(checked) => checked,
        Err((error, description)) => return back.error(error, description),
    };
    if let Err(refusal) = super::token::check_resources(false, &query.params) {
        return back.error(
            refusal.code(),
            "resource must be an absolute URI without a fragment",
        );
    }
    let authorization_details = match super::authorization_details::parse(&query.params, config) {
        Ok(details) => details,
        Err(why) => return back.error(super::authorization_details::INVALID, why),
    };
    let mut locked = shared.lock();
    if locked.deny_authorization {
        return back.error("access_denied", "the user denied the request");
    }
    let Ok(value) = random_token("ac") else {
        return back.error("server_error", "no randomness available");
    };
    locked.authorization_codes.insert(
        value.clone(),
        AuthorizationCode {
            client_id: client_id.to_owned(),
            redirect_uri_param: query.get("redirect_uri").map(str::to_owned),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code.challenge,
            scope: code.scope,
            nonce: query.get("nonce").map(str::to_owned),
            username: query
                .get("login_hint")
                .unwrap_or(&config.default_user)
                .to_owned(),
            acr: code.acr,
            auth_time: config.clock.now_utc(),
            claims: code.claims,
            authorization_details,
            dpop_jkt: code.dpop_jkt,
            resources: query.params.get_all("resource").to_vec(),
            expires_at: config.clock.now() + AUTHORIZATION_CODE_LIFETIME,
            spent: false,
            grant_id: None,
        },
    );
    drop(locked);
    back.to(&[("code", &value)])
}

/// What a valid authorization request asks for.
struct Checked {
    challenge: Option<String>,
    scope: Option<String>,
    /// The first of `acr_values`: the automatic login meets the preferred one.
    acr: Option<String>,
    claims: Option<Value>,
    dpop_jkt: Option<String>,
}

type Refusal = (&'static str, &'static str);

fn check_authorization_request(query: &Query, require_pkce: bool) -> Result<Checked, Refusal> {
    if !query.repeated.is_empty() {
        return Err(("invalid_request", "a parameter is repeated"));
    }
    match query.get("response_type") {
        None => return Err(("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let scope = requested_scope(&query.params).map_err(|_| {
        (
            "invalid_scope",
            "scope contains characters RFC 6749 §3.3 forbids",
        )
    })?;
    let challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (None, None) if require_pkce => {
            return Err(("invalid_request", "code_challenge is required (PKCE)"));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err((
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(challenge), Some("S256")) => {
            // BASE64URL(SHA-256(verifier)) is always 43 characters.
            let decoded = URL_SAFE_NO_PAD.decode(challenge);
            if challenge.len() != 43 || decoded.is_err() {
                return Err(("invalid_request", "code_challenge is not an S256 challenge"));
            }
            Some(challenge.to_owned())
        }
        // A missing method means `plain` (RFC 7636 §4.3), which is never accepted.
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "transform algorithm not supported: use code_challenge_method=S256",
            ));
        }
    };
    // RFC 9470 §4 / OpenID Connect Core §3.1.2.1: the automatic login is always fresh, so any
    // `max_age` is met; it only has to be a number.
    if query
        .get("max_age")
        .is_some_and(|m| m.parse::<u64>().is_err())
    {
        return Err(("invalid_request", "max_age is not a number of seconds"));
    }
    let acr = query
        .get("acr_values")
        .and_then(|values| values.split(' ').find(|v| !v.is_empty()))
        .map(str::to_owned);
    let claims = match query.get("claims") {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<Value>(raw)
                .ok()
                .filter(Value::is_object)
                .ok_or(("invalid_request", "claims is not a JSON object"))?,
        ),
    };
    // RFC 9449 §10: a JWK thumbprint, base64url of a SHA-256 hash.
    let dpop_jkt = match query.get("dpop_jkt") {
        None => None,
        Some(jkt) if jkt.len() == 43 && URL_SAFE_NO_PAD.decode(jkt).is_ok() => Some(jkt.to_owned()),
        Some(_) => {
            return Err((
                "invalid_request",
                "dpop_jkt is not a JWK SHA-256 thumbprint",
            ));
        }
    };
    Ok(Checked {
        challenge,
        scope,
        acr,
        claims,
        dpop_jkt,
    })
}

/// Whether `uri` is an `http` URI on a loopback IP literal, any port (RFC 8252 §7.3). `localhost`
/// is refused, as RFC 8252 §8.3 advises.
pub(super) fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    url.scheme() == "http"
        && loopback
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

/// Whether `registered` and `uri` are the same loopback redirect URI but for the port, which a
/// native app picks when it starts listening (RFC 8252 §7.3).
fn same_loopback_redirect(registered: &str, uri: &str) -> bool {
    if !is_loopback_redirect(registered) || !is_loopback_redirect(uri) {
        return false;
    }
    match (Url::parse(registered), Url::parse(uri)) {
        (Ok(mut registered), Ok(mut uri)) => {
            // Both are http URLs with a host, so the port can always be cleared.
            let _ = registered.set_port(None);
            let _ = uri.set_port(None);
            registered == uri
        }
        _ => false,
    }
}

/// The way back to the client: its redirect URI, the `state` to echo and the `iss` to add.
struct Redirect<'a> {
    target: Url,
    state: Option<&'a str>,
    iss: Option<&'a str>,
}

impl Redirect<'_> {
    fn error(&self, error: &str, description: &str) -> Response {
        self.to(&[("error", error), ("error_description", description)])
    }

    /// `302 Found` to the redirect URI with `params`, then `state` and `iss`, added to its
    /// query (which is kept, RFC 6749 §3.1.2).
    fn to(&self, params: &[(&str, &str)]) -> Response {
        let mut location = self.target.clone();
        {
            let mut pairs = location.query_pairs_mut();
            for (name, value) in params {
                pairs.append_pair(name, value);
            }
            if let Some(state) = self.state {
                pairs.append_pair("state", state);
            }
            if let Some(iss) = self.iss {
                pairs.append_pair("iss", iss);
            }
        }
        let Ok(location) = HeaderValue::try_from(location.as_str()) else {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "The redirect could not be built.",
            );
        };
        let mut response = inert(http::Response::new(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::FOUND;
        response.headers_mut().insert(LOCATION, location);
        response
    }
}

// --- the token grant ----------------------------------------------------------------------

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6). A code is spent the
/// first time it is presented, whatever the outcome; presenting it again revokes the tokens it
/// produced (RFC 6749 §4.1.2).
pub(super) fn code_grant(
    shared: &Shared,
    client_id: &str,
    form: &Form,
) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let now = config.clock.now();
    let mut state = shared.lock();
    let record = state
        .authorization_codes
        .get_mut(code)
        .ok_or_else(|| OAuthError::invalid_grant("unknown authorization code"))?;
    if record.spent {
        if let Some(grant_id) = record.grant_id.take() {
            state.revoke_grant(grant_id);
        }
        return Err(OAuthError::invalid_grant(
            "authorization code already used; the tokens issued for it are revoked",
        ));
    }
    record.spent = true;
    if record.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if now >= record.expires_at {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    let redirect_matches = match (&record.redirect_uri_param, form.get("redirect_uri")) {
        (Some(sent), Some(given)) => sent == given,
        (Some(_), None) => false,
        (None, given) => given.is_none_or(|g| g == record.redirect_uri),
    };
    if !redirect_matches {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (&record.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !is_verifier(verifier)
                || !constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        // RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let resources = super::token::narrowed_resources(&record.resources, form.get_all("resource"))?;
    // The refresh token keeps what was authorized; the access token is for what was asked now.
    let authorized = if record.resources.is_empty() {
        resources.clone()
    } else {
        record.resources.clone()
    };
    let scope = record.scope.clone();
    let username = record.username.clone();
    let (acr, auth_time, claims) = (record.acr.clone(), record.auth_time, record.claims.clone());
    let authorization_details = record.authorization_details.clone();
    let mut grant = state.new_grant(client_id, Some(&username), scope.clone());
    grant.acr = acr;
    grant.auth_time = Some(auth_time);
    grant.claims = claims;
    grant.authorization_details = authorization_details;
    grant.resources = authorized;
    let grant_id = grant.id;
    let issued = state.issue(config, grant, scope.clone(), true);
    if let Ok(issued) = &issued
        && let Some(token) = state.access_tokens.get_mut(&issued.access_token)
    {
        token.grant.resources = resources;
    }
    if issued.is_ok()
        && let Some(record) = state.authorization_codes.get_mut(code)
    {
        record.grant_id = Some(grant_id);
    }
    drop(state);
    token_answer(config, issued, scope)
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, no padding (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_are_ip_literals_over_http() {
        assert!(is_loopback_redirect("http://127.0.0.1:4000/callback"));
        assert!(is_loopback_redirect("http://127.0.0.1/"));
        assert!(is_loopback_redirect("http://[::1]:4000/cb?x=1"));
        assert!(!is_loopback_redirect("https://127.0.0.1/cb"));
        assert!(!is_loopback_redirect("http://localhost:4000/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1.evil.example/cb"));
        assert!(!is_loopback_redirect("http://user@127.0.0.1/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1/cb#frag"));
        assert!(!is_loopback_redirect("http://example.com/cb"));
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_verifier(verifier));
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a+".repeat(30)));
    }
}
