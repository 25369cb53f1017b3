//! The server's metadata document (RFC 8414 §2, OpenID Connect Discovery §3), served at both
//! well-known URLs so that `discovery::discover` and `discovery::configure` work against it.

use http::StatusCode;
use serde_json::{Value, json};

use crate::client::AuthMethod;

use super::reply::{Response, json_response};
use super::state::Shared;

/// `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`.
pub(super) fn endpoint(shared: &Shared) -> Response {
    shared.lock().discovery_requests += 1;
    json_response(StatusCode::OK, &document(shared))
}

/// The endpoints, the issuer, and what the server supports.
fn document(shared: &Shared) -> Value {
    let config = &shared.config;
    let url = |path: &str| format!("{}{path}", config.issuer);
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    let mut grants = vec![
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        super::device::DEVICE_CODE_GRANT,
        super::token_exchange::TOKEN_EXCHANGE_GRANT,
    ];
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    let mut auth_methods = vec![
        AuthMethod::ClientSecretBasic.as_str(),
        AuthMethod::ClientSecretPost.as_str(),
        AuthMethod::None.as_str(),
    ];
    #[cfg(feature = "jwt")]
    {
        grants.push(super::jwt_bearer::JWT_BEARER_GRANT);
        auth_methods.push(AuthMethod::PrivateKeyJwt.as_str());
        auth_methods.push(AuthMethod::ClientSecretJwt.as_str());
    }
    let mut document = json!({
        "issuer": config.issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": config.token_url,
        "device_authorization_endpoint": url("/device_authorization"),
        "revocation_endpoint": url("/revoke"),
        "pushed_authorization_request_endpoint": url(super::par::PAR_PATH),
        "require_pushed_authorization_requests": config.par.require,
        "response_types_supported": ["code"],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": config.send_iss,
    });
    if config.registration != super::RegistrationPolicy::Closed {
        document["registration_endpoint"] = json!(url(super::registration::REGISTRATION_PATH));
    }
    if let Some(types) = &config.authorization_details_types {
        document["authorization_details_types_supported"] = json!(types);
    }
    #[cfg(feature = "jwt")]
    {
        document["request_parameter_supported"] = json!(true);
        document["request_object_signing_alg_values_supported"] = json!([
            "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"
        ]);
        document["require_signed_request_object"] = json!(config.request_objects.require);
    }
    if config.support_dpop {
        document["dpop_signing_alg_values_supported"] =
            json!(super::dpop::ALGS.split(' ').collect::<Vec<_>>());
    }
    #[cfg(feature = "jwt")]
    {
        let algorithms = [
            "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "HS256",
        ];
        document["token_endpoint_auth_signing_alg_values_supported"] = json!(algorithms);
    }
    document
}
