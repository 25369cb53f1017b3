//! Authorization server metadata (RFC 8414) and OpenID Connect discovery (OIDC Discovery 1.0):
//! a server's endpoints and capabilities, fetched from its issuer's well-known URL and checked
//! (SECURITY.md rules 12–14).
//!
//! - [`OAuthClient::discover`] fills a client from the document, and keeps it;
//! - [`discover`] only fetches and checks the document;
//! - [`metadata_urls`] says where the document is looked for.
//!
//! The document is trusted only when its `issuer` is, byte for byte, the issuer it was fetched
//! for ([`Error::IssuerMismatch`] otherwise), and only when every endpoint it names is `https`
//! (plain `http` to loopback addresses aside). It is fetched like every back-channel request:
//! without following redirects, under the client's deadline and body cap, and without any
//! client credential.

use std::sync::Arc;

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Method, StatusCode};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{AuthMethod, OAuthClient, endpoint};
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::redact::{self, Secrets};
use crate::transport::RawResponse;

/// Appended to the issuer's path (OIDC Discovery §4.1).
const OIDC_SUFFIX: &str = "/.well-known/openid-configuration";
/// Inserted between the issuer's host and path (RFC 8414 §3.1).
const OAUTH_PREFIX: &str = "/.well-known/oauth-authorization-server";

/// An authorization server's metadata document (RFC 8414 §2, OIDC Discovery §3), as checked by
/// [`discover`].
///
/// Members this crate does not name are kept in [`extra`](Self::extra). Get one with
/// [`discover`] or [`OAuthClient::discover`] (then [`OAuthClient::metadata`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The issuer identifier; after [`discover`], exactly the issuer asked for.
    pub issuer: String,
    /// `authorization_endpoint` (the authorization code flow).
    #[serde(default, deserialize_with = "optional_url")]
    pub authorization_endpoint: Option<Url>,
    /// `token_endpoint`.
    #[serde(default, deserialize_with = "optional_url")]
    pub token_endpoint: Option<Url>,
    /// `device_authorization_endpoint` (RFC 8628 §4).
    #[serde(default, deserialize_with = "optional_url")]
    pub device_authorization_endpoint: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(default, deserialize_with = "optional_url")]
    pub revocation_endpoint: Option<Url>,
    /// `introspection_endpoint` (RFC 7662).
    #[serde(default, deserialize_with = "optional_url")]
    pub introspection_endpoint: Option<Url>,
    /// `userinfo_endpoint` (OpenID Connect).
    #[serde(default, deserialize_with = "optional_url")]
    pub userinfo_endpoint: Option<Url>,
    /// `jwks_uri`: the server's signing keys.
    #[serde(default, deserialize_with = "optional_url")]
    pub jwks_uri: Option<Url>,
    /// `registration_endpoint` (RFC 7591).
    #[serde(default, deserialize_with = "optional_url")]
    pub registration_endpoint: Option<Url>,
    /// `end_session_endpoint` (OpenID Connect RP-Initiated Logout).
    #[serde(default, deserialize_with = "optional_url")]
    pub end_session_endpoint: Option<Url>,
    /// `scopes_supported`.
    pub scopes_supported: Option<Vec<String>>,
    /// `response_types_supported`.
    pub response_types_supported: Option<Vec<String>>,
    /// `grant_types_supported`; absent means `authorization_code` and `implicit` (RFC 8414 §2).
    pub grant_types_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported`; absent means `client_secret_basic`
    /// (RFC 8414 §2).
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported` (for `private_key_jwt` and
    /// `client_secret_jwt`).
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `code_challenge_methods_supported` (PKCE). The authorization code flow sends `S256`
    /// whatever this says: it never downgrades to `plain`.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// `id_token_signing_alg_values_supported` (OpenID Connect).
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3). When `true`, the
    /// authorization code flow of a discovered client requires the `iss` parameter on the
    /// callback, so that a mix-up attack cannot strip it.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Every other member, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// Every URL the document names, with its member name.
    fn urls(&self) -> [(&'static str, Option<&Url>); 9] {
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

/// The two places an issuer's metadata may be, in the order [`discover`] tries them:
/// the OpenID Connect URL, with `/.well-known/openid-configuration` appended to the issuer's
/// path (OIDC Discovery §4.1), then the RFC 8414 URL, with
/// `/.well-known/oauth-authorization-server` inserted between the host and the path
/// (RFC 8414 §3.1). A trailing `/` of the issuer is dropped first, as both specifications say.
///
/// The issuer must be `https` (or `http` to a loopback address), without a query, a fragment
/// or credentials (RFC 8414 §2).
///
/// ```
/// use oauth_layer::discovery::metadata_urls;
///
/// let [oidc, oauth] = metadata_urls("https://idp.example/tenant/a")?;
/// assert_eq!(oidc.as_str(), "https://idp.example/tenant/a/.well-known/openid-configuration");
/// assert_eq!(oauth.as_str(), "https://idp.example/.well-known/oauth-authorization-server/tenant/a");
/// # Ok::<(), oauth_layer::Error>(())
/// ```
pub fn metadata_urls(issuer: impl AsRef<str>) -> Result<[Url; 2]> {
    let base = endpoint("issuer", issuer.as_ref())?;
    if base.query().is_some() || base.fragment().is_some() {
        return Err(Error::config(
            "the issuer must have no query or fragment (RFC 8414 §2)",
        ));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(Error::config("the issuer must not carry credentials"));
    }
    let path = base.path().trim_end_matches('/');
    let mut oidc = base.clone();
    oidc.set_path(&format!("{path}{OIDC_SUFFIX}"));
    let mut oauth = base.clone();
    oauth.set_path(&format!("{OAUTH_PREFIX}{path}"));
    Ok([oidc, oauth])
}

/// Fetches and checks `issuer`'s metadata, without changing any client; `client` only lends
/// its transport, deadline, body cap and user agent.
///
/// The URLs of [`metadata_urls`] are tried in order, OpenID Connect first because nearly every
/// server serves it; a `404` moves on to the next. Anything else ends discovery: a redirect
/// (never followed), a transport failure, an oversized body ([`Error::Transport`]), an error
/// status or a body that is not a metadata object ([`Error::UnexpectedResponse`] or
/// [`Error::Server`]), an `issuer` that is not exactly `issuer` ([`Error::IssuerMismatch`],
/// even when only a trailing `/` differs), and an endpoint that is neither `https` nor loopback
/// `http`, or loopback `http` named by an issuer that is not itself loopback ([`Error::Transport`] of kind
/// [`InsecureUrl`](crate::TransportErrorKind::InsecureUrl), as for
/// [`OAuthClient::token_url`]).
pub async fn discover(client: &OAuthClient, issuer: impl AsRef<str>) -> Result<Metadata> {
    let issuer = issuer.as_ref();
    let [oidc, oauth] = metadata_urls(issuer)?;
    let mut response = fetch(client, &oidc).await?;
    if response.status == StatusCode::NOT_FOUND {
        tracing::debug!(url = %oidc, "no OpenID Connect metadata; trying RFC 8414");
        response = fetch(client, &oauth).await?;
    }
    let metadata = parse(&response)?;
    if metadata.issuer != issuer {
        return Err(Error::IssuerMismatch {
            expected: issuer.to_owned(),
            found: redact::server_text(&metadata.issuer, &Secrets::default()),
        });
    }
    // Plain-http loopback endpoints are for local servers: a remote issuer that names one would
    // have the client send its secret to whatever listens on this machine.
    let local_issuer = Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(crate::transport::is_loopback_host))
        .unwrap_or(false);
    for (name, url) in metadata.urls() {
        if let Some(url) = url {
            endpoint(name, url.as_str())?;
            if url.scheme() != "https" && !local_issuer {
                return Err(Error::Transport(TransportError::new(
                    TransportErrorKind::InsecureUrl,
                    format!(
                        "{name} is plain http in the metadata of a remote issuer; plain http \
                         endpoints are accepted only from a loopback issuer"
                    ),
                )));
            }
        }
    }
    Ok(metadata)
}

async fn fetch(client: &OAuthClient, url: &Url) -> Result<RawResponse> {
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the metadata request: {e}")))?;
    tracing::debug!(%url, "metadata request");
    let response = client
        .exchange(crate::error::Endpoint::Discovery, request)
        .await?;
    tracing::debug!(%url, status = response.status.as_u16(), "metadata response");
    Ok(response)
}

fn parse(response: &RawResponse) -> Result<Metadata> {
    let secrets = Secrets::default();
    if !response.status.is_success() {
        let oauth_error = response
            .object()
            .and_then(|map| response.server_error(&map, &secrets));
        return Err(oauth_error.unwrap_or_else(|| {
            response.unexpected("no metadata at the well-known URL", &secrets)
        }));
    }
    let map = response.json_object(&secrets)?;
    response.check_oauth(&map, &secrets)?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| response.unexpected(&format!("the metadata is not usable: {e}"), &secrets))
}

impl OAuthClient {
    /// Fetches `issuer`'s metadata with [`discover`](fn@discover) and returns this client
    /// configured from it.
    ///
    /// - Endpoints: the token, authorization, device authorization, revocation and
    ///   introspection endpoints are taken from the document, except those already set on this
    ///   client: explicit settings win.
    /// - Issuer: set to `issuer`, which the `iss` authorization response parameter and token
    ///   caches are then checked and keyed against. A client already configured for another
    ///   issuer is an [`Error::Config`].
    /// - Client authentication, when [`auth_method`](Self::auth_method) was not called: with a
    ///   secret, `client_secret_basic` when the server lists it or lists nothing (its default,
    ///   RFC 8414 §2), else `client_secret_post` when listed; without one, `none`. Nothing is
    ///   probed by sending requests. A method the server does not list is kept with a warning.
    /// - The document itself is kept: [`metadata`](Self::metadata) returns it, for this client
    ///   and all its clones, without fetching it again. Calling `discover` again fetches anew.
    ///
    /// A document with `authorization_response_iss_parameter_supported: true` makes the
    /// authorization code flow require `iss` on the callback (RFC 9207). A server whose
    /// `code_challenge_methods_supported` lacks `S256` still gets `S256` (never `plain`), with a
    /// warning.
    ///
    /// Call it last, after the secret and any explicit settings.
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let client = OAuthClient::new("my-client-id")
    ///     .secret("s3cret")
    ///     .discover("https://idp.example")
    ///     .await?;
    /// let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    /// let token = tokens.token().await?;
    /// # let _ = token; Ok(()) }
    /// ```
    pub async fn discover(self, issuer: impl AsRef<str>) -> Result<OAuthClient> {
        let issuer = issuer.as_ref();
        if let Some(configured) = self.issuer_id().filter(|c| *c != issuer) {
            return Err(Error::config(format!(
                "the client is configured for issuer {configured:?}, not {issuer:?}"
            )));
        }
        let metadata = discover(&self, issuer).await?;

        type Current = fn(&OAuthClient) -> Option<&Url>;
        type Set = fn(OAuthClient, &str) -> Result<OAuthClient>;
        let endpoints: [(Current, Option<&Url>, Set); 5] = [
            (
                OAuthClient::token_endpoint,
                metadata.token_endpoint.as_ref(),
                |c, url| c.token_url(url),
            ),
            (
                OAuthClient::authorization_endpoint,
                metadata.authorization_endpoint.as_ref(),
                |c, url| c.authorization_url(url),
            ),
            (
                OAuthClient::device_authorization_endpoint,
                metadata.device_authorization_endpoint.as_ref(),
                |c, url| c.device_authorization_url(url),
            ),
            (
                OAuthClient::revocation_endpoint,
                metadata.revocation_endpoint.as_ref(),
                |c, url| c.revocation_url(url),
            ),
            (
                OAuthClient::introspection_endpoint,
                metadata.introspection_endpoint.as_ref(),
                |c, url| c.introspection_url(url),
            ),
        ];
        let mut client = self.issuer(issuer);
        for (current, found, set) in endpoints {
            if let (None, Some(url)) = (current(&client), found) {
                client = set(client, url.as_str())?;
            }
        }
        let client = choose_auth_method(client, &metadata);

        let s256 = |methods: &Vec<String>| methods.iter().any(|m| m == "S256");
        if metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| !s256(m))
        {
            tracing::warn!(
                issuer,
                "the server does not list PKCE S256; the authorization code flow sends S256 anyway"
            );
        }
        tracing::debug!(issuer, "discovered the authorization server's metadata");
        Ok(client.with_metadata(Arc::new(metadata)))
    }
}

/// Switches a client with a secret and no chosen method from `client_secret_basic` to
/// `client_secret_post` when the server lists only the latter (RFC 8414 §2). The defaults
/// already cover the rest: `client_secret_basic` with a secret, `none` without.
fn choose_auth_method(client: OAuthClient, metadata: &Metadata) -> OAuthClient {
    let Some(listed) = &metadata.token_endpoint_auth_methods_supported else {
        return client;
    };
    let lists = |method: AuthMethod| listed.iter().any(|l| l == method.as_str());
    let client = if !client.auth_method_is_explicit()
        && client.effective_auth_method() == AuthMethod::ClientSecretBasic
        && !lists(AuthMethod::ClientSecretBasic)
        && lists(AuthMethod::ClientSecretPost)
    {
        client.auth_method(AuthMethod::ClientSecretPost)
    } else {
        client
    };
    let method = client.effective_auth_method();
    if !lists(method) {
        tracing::warn!(
            method = method.as_str(),
            supported = ?listed,
            "the server does not list this client authentication method; using it anyway"
        );
    }
    client
}
