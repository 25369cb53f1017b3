//! Signed request objects (RFC 9101, JAR): the authorization parameters become the claims of a
//! JWT signed with the client's key, so that neither the browser nor anything on its way can
//! change them, and the server knows they come from the registered client.
//!
//! The request object travels by value in the authorization URL (`client_id` and `request`, and
//! for OpenID Connect the `response_type` and `scope` that OpenID Connect Core §6.1 wants
//! outside too, identical to the ones inside), or in the body of a pushed authorization request
//! (RFC 9126), after which the URL carries only `client_id` and `request_uri`.
//!
//! It is short-lived (`exp` at most [`MAX_ASSERTION_LIFETIME`] after `iat`, under a
//! [profile](crate::profile) [`MAX_JWT_LIFETIME`](crate::profile::MAX_JWT_LIFETIME); `nbf` = `iat`),
//! has a fresh `jti`, names the client as `iss` and the server's issuer identifier as `aud`, and
//! says what it is in its header (`typ: oauth-authz-req+jwt`). It carries the sign-in's `state`,
//! `nonce` and PKCE challenge, so it is kept in a [`SecretString`] and never logged.

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::jwt::{Claims, MAX_ASSERTION_LIFETIME, SigningKey};

/// The `typ` header of a request object (RFC 9101 §10.8).
pub(crate) const REQUEST_OBJECT_TYPE: &str = "oauth-authz-req+jwt";

/// The claims of the request object itself, which no authorization parameter may replace.
const REGISTERED_CLAIMS: &[&str] = &["iss", "sub", "aud", "iat", "nbf", "exp", "jti"];

/// Parameters whose value is JSON: inside a request object they are JSON too (RFC 9396 §3,
/// OpenID Connect Core §5.5), not strings holding JSON.
const JSON_PARAMS: &[&str] = &["authorization_details", "claims"];

/// Where the request object goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// In the authorization URL's `request` parameter.
    ByValue,
    /// In the body of a pushed authorization request.
    Pushed,
}

/// What signs the request objects of one sign-in, checked before anything is sent.
pub(crate) struct Signer<'a> {
    key: &'a SigningKey,
    audience: &'a str,
}

impl<'a> Signer<'a> {
    /// The client's signing key and the issuer it addresses, or [`Error::Config`] saying what
    /// is missing: an asymmetric signing key, an issuer, an algorithm the server lists, and
    /// (by value) a server that takes the `request` parameter.
    pub(crate) fn new(client: &'a OAuthClient, delivery: Delivery) -> Result<Self> {
        let key = client.signing_key().ok_or_else(|| {
            Error::config(
                "signed request objects need the client's signing key \
                 (OAuthClientBuilder::signing_key)",
            )
        })?;
        if key.algorithm().is_symmetric() {
            return Err(Error::config(format!(
                "a request object must be signed with an asymmetric key (PS256, ES256, EdDSA, \
                 ...), not {}: a shared secret cannot show which client made it",
                key.algorithm()
            )));
        }
        let audience = client.issuer().ok_or_else(|| {
            Error::config(
                "a signed request object is addressed to the authorization server's issuer \
                 identifier (aud), and the client has none: set OAuthClientBuilder::issuer, or \
                 configure the client by discovery",
            )
        })?;
        if let Some(metadata) = client.metadata() {
            if let Some(algs) = &metadata.request_object_signing_alg_values_supported
                && !algs.iter().any(|a| a == key.algorithm().as_str())
            {
                return Err(Error::config(format!(
                    "the server takes request objects signed with {} \
                     (request_object_signing_alg_values_supported), not {}, the algorithm of \
                     the client's signing key",
                    algs.join(", "),
                    key.algorithm()
                )));
            }
            if delivery == Delivery::ByValue && metadata.request_parameter_supported == Some(false)
            {
                return Err(Error::config(
                    "the server takes no request object in the authorization URL \
                     (request_parameter_supported: false); push it with AuthCode::par(true)",
                ));
            }
        }
        Ok(Self { key, audience })
    }

    /// The request object carrying `params` (every authorization parameter, `client_id`
    /// included), signed now on `client`'s clock.
    pub(crate) fn sign(
        &self,
        client: &OAuthClient,
        params: &[(String, String)],
    ) -> Result<SecretString> {
        let claims = Claims {
            issuer: client.client_id(),
            subject: None,
            audience: self.audience,
            issued_at: client.clock().now_utc(),
            // A profile (FAPI 2.0) keeps every JWT the client signs to a minute.
            lifetime: if client.profile().is_some() {
                crate::profile::MAX_JWT_LIFETIME
            } else {
                MAX_ASSERTION_LIFETIME
            },
            not_before: true,
            scope: None,
            extra: Some(&parameter_claims(params)?),
        };
        let jwt = self
            .key
            .typed_assertion(&claims, Some(REQUEST_OBJECT_TYPE))?;
        tracing::debug!(
            alg = %self.key.algorithm(),
            kid = self.key.key_id(),
            "authorization request signed as a request object"
        );
        Ok(jwt)
    }
}

/// The authorization parameters as claims: each parameter once, a repeated one (`resource`)
/// as an array of its values, `authorization_details` and `claims` as the JSON they hold,
/// `max_age` as a number. A parameter named like a claim of the request object itself is a
/// configuration error rather than silently dropped.
fn parameter_claims(params: &[(String, String)]) -> Result<Map<String, Value>> {
    let mut claims = Map::new();
    let mut repeated = HashSet::new();
    for (name, value) in params {
        if REGISTERED_CLAIMS.contains(&name.as_str()) {
            return Err(Error::config(format!(
                "the authorization parameter {name:?} cannot travel in a signed request \
                 object, whose own {name} claim it would replace"
            )));
        }
        match claims.get_mut(name) {
            None => {
                claims.insert(name.clone(), claim_value(name, value));
            }
            Some(first) => {
                if repeated.insert(name.clone()) {
                    let Value::String(first_value) = first.take() else {
                        return Err(Error::config(format!(
                            "the authorization parameter {name:?} is repeated, and its value \
                             is JSON"
                        )));
                    };
                    *first = Value::Array(vec![Value::String(first_value)]);
                }
                if let Value::Array(values) = first {
                    values.push(Value::String(value.clone()));
                }
            }
        }
    }
    Ok(claims)
}

fn claim_value(name: &str, value: &str) -> Value {
    if JSON_PARAMS.contains(&name)
        && let Ok(json) = serde_json::from_str::<Value>(value)
        && (json.is_object() || json.is_array())
    {
        return json;
    }
    if name == "max_age"
        && let Ok(seconds) = value.parse::<u64>()
    {
        return Value::from(seconds);
    }
    Value::String(value.to_owned())
}

/// The authorization URL's parameters for a request object sent by value: `client_id` and
/// `request`, and for an OpenID Connect request (scope `openid`) `response_type` and `scope`,
/// which OpenID Connect Core §6.1 requires outside as well, with the values inside.
pub(crate) fn by_value(
    params: &[(String, String)],
    request_object: &SecretString,
) -> Vec<(String, String)> {
    let get = |wanted: &str| params.iter().find(|(name, _)| name == wanted);
    let openid = get("scope").is_some_and(|(_, scope)| scope.split(' ').any(|s| s == "openid"));
    let mut outside: Vec<(String, String)> = Vec::new();
    if openid && let Some(pair) = get("response_type") {
        outside.push(pair.clone());
    }
    if let Some(pair) = get("client_id") {
        outside.push(pair.clone());
    }
    if openid && let Some(pair) = get("scope") {
        outside.push(pair.clone());
    }
    outside.push((
        "request".to_owned(),
        request_object.expose_secret().to_owned(),
    ));
    outside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_become_typed_claims() {
        let claims = parameter_claims(&pairs(&[
            ("response_type", "code"),
            ("resource", "https://a.example"),
            ("resource", "https://b.example"),
            ("authorization_details", r#"[{"type":"x"}]"#),
            ("claims", r#"{"id_token":{"acr":null}}"#),
            ("max_age", "60"),
            ("login_hint", "alice"),
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(claims),
            serde_json::json!({
                "response_type": "code",
                "resource": ["https://a.example", "https://b.example"],
                "authorization_details": [{"type": "x"}],
                "claims": {"id_token": {"acr": null}},
                "max_age": 60,
                "login_hint": "alice",
            })
        );
    }

    #[test]
    fn a_parameter_named_like_a_registered_claim_is_refused() {
        for name in REGISTERED_CLAIMS {
            assert!(matches!(
                parameter_claims(&pairs(&[(name, "x")])),
                Err(Error::Config(_))
            ));
        }
    }

    #[test]
    fn by_value_keeps_only_what_must_be_outside() {
        let jwt = SecretString::from("h.p.s");
        let plain = pairs(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("scope", "read"),
            ("state", "s"),
        ]);
        assert_eq!(
            by_value(&plain, &jwt),
            pairs(&[("client_id", "app"), ("request", "h.p.s")])
        );
        let oidc = pairs(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("scope", "openid email"),
            ("nonce", "n"),
        ]);
        assert_eq!(
            by_value(&oidc, &jwt),
            pairs(&[
                ("response_type", "code"),
                ("client_id", "app"),
                ("scope", "openid email"),
                ("request", "h.p.s")
            ])
        );
    }
}
