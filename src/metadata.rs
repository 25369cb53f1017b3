//! An authorization server's metadata document (RFC 8414, OpenID Connect Discovery): the type
//! a client is configured from and keeps. Fetching and checking it is [`crate::discovery`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use url::Url;

/// An authorization server's metadata document (RFC 8414 §2, OIDC Discovery §3).
///
/// Members this crate does not name are kept in [`extra`](Self::extra). Get one checked with
/// [`discovery::discover`](crate::discovery::discover), configure a client from it with
/// [`OAuthClientBuilder::metadata`](crate::client::OAuthClientBuilder::metadata) (or both at
/// once with [`discovery::configure`](crate::discovery::configure)), and read it back with
/// [`OAuthClient::metadata`](crate::OAuthClient::metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The issuer identifier; after [`discover`](crate::discovery::discover), exactly the
    /// issuer asked for.
    pub issuer: String,
    /// `authorization_endpoint` (the authorization code flow).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub authorization_endpoint: Option<Url>,
    /// `token_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub token_endpoint: Option<Url>,
    /// `device_authorization_endpoint` (RFC 8628 §4).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub device_authorization_endpoint: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint` (RFC 7662).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub introspection_endpoint: Option<Url>,
    /// `userinfo_endpoint` (OpenID Connect).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub userinfo_endpoint: Option<Url>,
    /// `jwks_uri`: the server's signing keys.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub jwks_uri: Option<Url>,
    /// `registration_endpoint` (RFC 7591).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub registration_endpoint: Option<Url>,
    /// `end_session_endpoint` (OpenID Connect RP-Initiated Logout).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub end_session_endpoint: Option<Url>,
    /// `pushed_authorization_request_endpoint` (RFC 9126 §5): where the authorization code
    /// flow pushes its parameters before the browser is sent to the authorization endpoint.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub pushed_authorization_request_endpoint: Option<Url>,
    /// `require_pushed_authorization_requests` (RFC 9126 §5): when `true`, the server takes
    /// authorization requests only through its pushed authorization request endpoint, and the
    /// authorization code flow of a client configured from this document pushes them.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// `request_object_signing_alg_values_supported` (OpenID Connect Discovery §3, RFC 9101):
    /// the algorithms the server accepts signed request objects in. When present, an
    /// authorization code flow with [`request_object`](crate::flow::AuthCode::request_object)
    /// whose signing key uses another algorithm fails with
    /// [`Error::Config`](crate::Error::Config) before anything is sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_object_signing_alg_values_supported: Option<Vec<String>>,
    /// `require_signed_request_object` (RFC 9101 §10.5): when `true`, the server takes
    /// authorization requests only as signed request objects, and the authorization code flow
    /// of a client configured from this document sends them so.
    #[serde(default)]
    pub require_signed_request_object: bool,
    /// `request_parameter_supported` (OpenID Connect Discovery §3): whether the server takes a
    /// request object by value in the `request` parameter. Absent is `None` (the specification
    /// reads it as `false`, but servers that take request objects often leave it out); only an
    /// explicit `false` makes a flow that would send one by value fail with
    /// [`Error::Config`](crate::Error::Config) (push it instead, with
    /// [`par`](crate::flow::AuthCode::par)).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_parameter_supported: Option<bool>,
    /// `scopes_supported`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `authorization_details_types_supported` (RFC 9396 §10): the authorization detail types
    /// the server knows. When present, a flow whose
    /// [`AuthorizationDetail`](crate::flow::AuthorizationDetail) has another type fails with
    /// [`Error::Config`](crate::Error::Config) before anything is sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorization_details_types_supported: Option<Vec<String>>,
    /// `response_types_supported`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_types_supported: Option<Vec<String>>,
    /// `grant_types_supported`; absent means `authorization_code` and `implicit` (RFC 8414 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported`; absent means `client_secret_basic`
    /// (RFC 8414 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported` (for `private_key_jwt` and
    /// `client_secret_jwt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `code_challenge_methods_supported` (PKCE). The authorization code flow sends `S256`
    /// whatever this says: it never downgrades to `plain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// `id_token_signing_alg_values_supported` (OpenID Connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): the algorithms the server accepts
    /// for DPoP proofs. A client with DPoP picks its key's algorithm from this list.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3). When `true`, the
    /// authorization code flow of a discovered client requires the `iss` parameter on the
    /// callback, so that a mix-up attack cannot strip it.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// `mtls_endpoint_aliases` (RFC 8705 §5): the endpoints to use instead of the usual ones
    /// on connections that present a client certificate. A client with a
    /// [`client_certificate`](crate::OAuthClientBuilder::client_certificate) sends every
    /// back-channel request to the alias when one is given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mtls_endpoint_aliases: Option<MtlsEndpointAliases>,
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.3): whether the server binds
    /// access tokens to the client certificate they were requested with.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Every other member, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `mtls_endpoint_aliases` of a server's metadata (RFC 8705 §5): where clients presenting
/// a certificate send what would go to the endpoint of the same name. Members this crate does
/// not name are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MtlsEndpointAliases {
    /// `token_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub token_endpoint: Option<Url>,
    /// `revocation_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub introspection_endpoint: Option<Url>,
    /// `device_authorization_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub device_authorization_endpoint: Option<Url>,
    /// `pushed_authorization_request_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub pushed_authorization_request_endpoint: Option<Url>,
    /// `userinfo_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub userinfo_endpoint: Option<Url>,
    /// `registration_endpoint`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "optional_url"
    )]
    pub registration_endpoint: Option<Url>,
    /// Every other member, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MtlsEndpointAliases {
    /// Every alias, with its member name.
    pub(crate) fn urls(&self) -> [(&'static str, Option<&Url>); 7] {
        [
            (
                "mtls_endpoint_aliases.token_endpoint",
                self.token_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.revocation_endpoint",
                self.revocation_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.introspection_endpoint",
                self.introspection_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.device_authorization_endpoint",
                self.device_authorization_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.pushed_authorization_request_endpoint",
                self.pushed_authorization_request_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.userinfo_endpoint",
                self.userinfo_endpoint.as_ref(),
            ),
            (
                "mtls_endpoint_aliases.registration_endpoint",
                self.registration_endpoint.as_ref(),
            ),
        ]
    }
}

impl Metadata {
    /// The userinfo endpoint a client uses: the `mtls_endpoint_aliases` one when `mutual_tls`
    /// and the server names one, else `userinfo_endpoint`.
    pub(crate) fn userinfo_for(&self, mutual_tls: bool) -> Option<&Url> {
        self.alias(mutual_tls, |a| a.userinfo_endpoint.as_ref())
            .or(self.userinfo_endpoint.as_ref())
    }

    /// The registration endpoint a client uses, like [`userinfo_for`](Self::userinfo_for).
    pub(crate) fn registration_for(&self, mutual_tls: bool) -> Option<&Url> {
        self.alias(mutual_tls, |a| a.registration_endpoint.as_ref())
            .or(self.registration_endpoint.as_ref())
    }

    fn alias(
        &self,
        mutual_tls: bool,
        pick: fn(&MtlsEndpointAliases) -> Option<&Url>,
    ) -> Option<&Url> {
        self.mtls_endpoint_aliases
            .as_ref()
            .filter(|_| mutual_tls)
            .and_then(pick)
    }

    /// Every alias in `mtls_endpoint_aliases`, with its member name (checked like the
    /// endpoints: `https`, or `http` to loopback).
    pub(crate) fn alias_urls(&self) -> Vec<(&'static str, Option<&Url>)> {
        self.mtls_endpoint_aliases
            .as_ref()
            .map(|a| a.urls().to_vec())
            .unwrap_or_default()
    }

    /// Every URL the document names, with its member name.
    pub(crate) fn urls(&self) -> [(&'static str, Option<&Url>); 10] {
        [
            (
                "authorization_endpoint",
                self.authorization_endpoint.as_ref(),
            ),
            ("token_endpoint", self.token_endpoint.as_ref()),
            (
                "device_authorization_endpoint",
                self.device_authorization_endpoint.as_ref(),
            ),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
            (
                "introspection_endpoint",
                self.introspection_endpoint.as_ref(),
            ),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("jwks_uri", self.jwks_uri.as_ref()),
            ("registration_endpoint", self.registration_endpoint.as_ref()),
            ("end_session_endpoint", self.end_session_endpoint.as_ref()),
            (
                "pushed_authorization_request_endpoint",
                self.pushed_authorization_request_endpoint.as_ref(),
            ),
        ]
    }
}

/// A URL member; `null` and `""` mean absent.
fn optional_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(s) if !s.is_empty() => Url::parse(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a URL: {e}"))),
        _ => Ok(None),
    }
}
