//! Signed request objects (RFC 9101) at `/authorize` (by value) and `/par` (pushed): the
//! `request` parameter is a JWT signed with the client's registered key (its
//! [`client_key`](super::TestServerBuilder::client_key)), whose claims are the authorization
//! parameters.
//!
//! A request object is accepted when its header says `typ: oauth-authz-req+jwt` and is signed
//! with exactly the registered key and algorithm, its `iss` is the client, its `aud` names the
//! issuer, its `exp` is ahead and its `nbf` behind on the server's clock (and at most an hour
//! apart, as FAPI 2.0 asks), its `jti` is new, it names no `request` or `request_uri`, its
//! `client_id` (when present) is the client's, and every parameter repeated outside it has the
//! value it has inside. Only the parameters inside count.

use serde_json::{Map, Value};

use super::RecordedRequestObject;
use super::RoundTripKind;
use super::assertion::{Expect, verify};
use super::form::Query;
use super::state::Shared;

/// The error code of a refused request object (RFC 9101 §6.3).
pub(super) const INVALID: &str = "invalid_request_object";

/// The `typ` a request object must declare (RFC 9101 §10.8), with or without `application/`.
const TYPE: &str = "oauth-authz-req+jwt";

/// The claims of the request object itself, not authorization parameters.
const OWN_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"];

/// The longest `exp - nbf` accepted (FAPI 2.0 Message Signing §5.3.1).
const MAX_LIFETIME_SECONDS: u64 = 3600;

/// The builder's settings.
#[derive(Debug, Clone, Default)]
pub(super) struct RequestObjectConfig {
    /// Authorization requests must come as signed request objects (by value or pushed).
    pub(super) require: bool,
}

/// What the request carried.
pub(super) enum Opened {
    /// No `request` parameter.
    Plain,
    /// A request object that passed every check: the parameters inside it.
    Signed(Vec<(String, String)>),
    /// A request object that was refused, and why. The parameters are read from it without
    /// trusting them (the client id replaced by the one outside), only to find the way back:
    /// a redirect URI the client may use, and the `state` to echo.
    Refused(Vec<(String, String)>, &'static str),
}

/// Opens the `request` parameter of `outside` (the query at `/authorize`, the body without
/// client authentication at `/par`), for the client `client_id` (the one outside, or at `/par`
/// the authenticated one). `Err` when it cannot even be read as a JWT.
pub(super) fn open(
    shared: &Shared,
    endpoint: RoundTripKind,
    outside: &Query,
    client_id: Option<&str>,
) -> Result<Opened, &'static str> {
    let Some(jwt) = outside.get("request") else {
        return Ok(Opened::Plain);
    };
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "the request object is not a JWT");
    let claims: Result<Map<String, Value>, _> =
        jsonwebtoken::dangerous::insecure_decode_claims(jwt);
    let (header, claims) = match (header, claims) {
        (Ok(header), Ok(claims)) => (header, claims),
        _ => return Err("the request object is not a JWT with a JSON object of claims"),
    };
    let inside = parameters(&claims, client_id);
    let outcome = check(shared, jwt, &header, &claims, &inside, outside, client_id);
    shared.lock().request_objects.push(RecordedRequestObject {
        endpoint,
        client_id: client_id.map(str::to_owned),
        alg: Some(format!("{:?}", header.alg)),
        typ: header.typ.clone(),
        kid: header.kid.clone(),
        claims: Value::Object(claims),
        problem: outcome.err().map(str::to_owned),
    });
    Ok(match outcome {
        Ok(()) => Opened::Signed(inside),
        Err(why) => Opened::Refused(inside, why),
    })
}

fn check(
    shared: &Shared,
    jwt: &str,
    header: &jsonwebtoken::Header,
    claims: &Map<String, Value>,
    inside: &[(String, String)],
    outside: &Query,
    client_id: Option<&str>,
) -> Result<(), &'static str> {
    let client_id = client_id.ok_or("client_id is missing outside the request object")?;
    let registration = shared.client(client_id).ok_or("unknown client")?;
    let key = registration
        .key
        .ok_or("the client has no registered key to check request objects with")?;
    let typ = header
        .typ
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if typ != TYPE && typ != format!("application/{TYPE}") {
        return Err("the request object's typ is not oauth-authz-req+jwt");
    }
    let expect = Expect {
        audience: false,
        single_use: true,
    };
    verify(shared, jwt, &key, &expect)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) {
        return Err("the request object's iss is not the client id");
    }
    let issuer = shared.config.issuer.as_str();
    let addressed = match claims.get("aud") {
        Some(Value::String(aud)) => aud == issuer,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if !addressed {
        return Err("the request object's aud is not this issuer");
    }
    let seconds = |name: &str| claims.get(name).and_then(Value::as_u64);
    let (Some(nbf), Some(exp)) = (seconds("nbf"), seconds("exp")) else {
        return Err("the request object has no nbf");
    };
    if exp.saturating_sub(nbf) > MAX_LIFETIME_SECONDS {
        return Err("the request object lives longer than an hour (exp - nbf)");
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err("a request object cannot name request or request_uri");
    }
    if text("client_id").is_some_and(|inner| inner != client_id) {
        return Err("the client_id inside the request object differs from the one outside");
    }
    let inner = to_query(inside);
    for name in outside.params.names() {
        if name == "request" || name == "client_id" {
            continue;
        }
        let same = match (outside.params.get(name), inner.params.get(name)) {
            (Some(out), Some(inn)) => out == inn,
            (None, None) => outside.params.get_all(name) == inner.params.get_all(name),
            _ => false,
        };
        if !same {
            return Err("a parameter outside the request object differs from its value inside");
        }
    }
    Ok(())
}

/// The authorization parameters a request object holds, in order: strings as they are, an
/// array of strings as a repeated parameter, any other JSON (`authorization_details`,
/// `claims`, numbers) as its text. `client_id` is the one outside when there is one.
fn parameters(claims: &Map<String, Value>, client_id: Option<&str>) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut named_client = false;
    for (name, value) in claims {
        if OWN_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        if name == "client_id" {
            named_client = true;
            if let Some(id) = client_id {
                params.push((name.clone(), id.to_owned()));
                continue;
            }
        }
        match value {
            Value::String(s) => params.push((name.clone(), s.clone())),
            Value::Array(values) if values.iter().all(Value::is_string) => {
                for v in values.iter().filter_map(Value::as_str) {
                    params.push((name.clone(), v.to_owned()));
                }
            }
            other => params.push((name.clone(), other.to_string())),
        }
    }
    if let (false, Some(id)) = (named_client, client_id) {
        params.push(("client_id".to_owned(), id.to_owned()));
    }
    params
}

/// `params` read back the way a query string is.
pub(super) fn to_query(params: &[(String, String)]) -> Query {
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    Query::parse(Some(&text))
}
