//! Authorization server metadata (RFC 8414) and OpenID Connect discovery (OIDC Discovery 1.0):
//! a server's endpoints and capabilities, fetched from its issuer's well-known URL and checked
//! (SECURITY.md rules 12–14).
//!
//! - [`configure`] fetches the document and builds a client from it (and keeps it);
//! - [`discover`] only fetches and checks the document, a [`Metadata`];
//! - [`metadata_urls`] says where the document is looked for;
//! - [`resource`] finds, from a resource's URL, its own metadata (RFC 9728): the authorization
//!   servers it trusts and the scopes it knows.
//!
//! The document is trusted only when its `issuer` is, byte for byte, the issuer it was fetched
//! for ([`Error::IssuerMismatch`] otherwise), and only when every endpoint it names is `https`
//! (plain `http` to loopback addresses aside). It is fetched like every back-channel request:
//! without following redirects, under the client's deadline and body cap, and without any
//! client credential.

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::client::{OAuthClient, OAuthClientBuilder, endpoint};
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::metadata::Metadata;
use crate::redact::{self, Secrets};
use crate::transport::RawResponse;

pub mod resource;

/// Appended to the issuer's path (OIDC Discovery §4.1).
const OIDC_SUFFIX: &str = "/.well-known/openid-configuration";
/// Inserted between the issuer's host and path (RFC 8414 §3.1).
const OAUTH_PREFIX: &str = "/.well-known/oauth-authorization-server";

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
/// [`OAuthClientBuilder::token_url`]).
pub async fn discover(client: &OAuthClient, issuer: impl AsRef<str>) -> Result<Metadata> {
    let issuer = issuer.as_ref();
    let [oidc, oauth] = metadata_urls(issuer)?;
    let mut response = fetch(client, &oidc).await?;
    if response.status == StatusCode::NOT_FOUND {
        tracing::debug!(url = %oidc, "no OpenID Connect metadata; trying RFC 8414");
        response = fetch(client, &oauth).await?;
    }
    // The request carries no secret, but the server knows the client's: a document that quotes
    // it (a confused endpoint dumping the client's configuration) must not carry it into an error.
    let mut secrets = Secrets::default();
    if let Some(secret) = client.secret() {
        secrets.add(secret.expose_secret());
    }
    let metadata = parse(&response, &secrets)?;
    if metadata.issuer != issuer {
        return Err(Error::IssuerMismatch {
            expected: issuer.to_owned(),
            found: redact::server_text(&metadata.issuer, &secrets),
        });
    }
    // Plain-http loopback endpoints are for local servers: a remote issuer that names one would
    // have the client send its secret to whatever listens on this machine.
    let local_issuer = Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(crate::transport::is_loopback_host))
        .unwrap_or(false);
    for (name, url) in metadata.urls().into_iter().chain(metadata.alias_urls()) {
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

fn parse(response: &RawResponse, secrets: &Secrets<'_>) -> Result<Metadata> {
    if !response.status.is_success() {
        let oauth_error = response
            .object()
            .and_then(|map| response.server_error(&map, secrets));
        return Err(oauth_error
            .unwrap_or_else(|| response.unexpected("no metadata at the well-known URL", secrets)));
    }
    let map = response.json_object(secrets)?;
    response.check_oauth(&map, secrets)?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| response.unexpected(&format!("the metadata is not usable: {e}"), secrets))
}

/// Fetches `issuer`'s metadata with [`discover`] and builds the client `builder` describes,
/// configured from it with [`OAuthClientBuilder::metadata`]: endpoints not set explicitly, the
/// issuer, the client authentication method; the document is kept
/// ([`OAuthClient::metadata`]) and shared by every clone, without fetching it again.
///
/// The document is fetched with the builder's own transport, deadline, body cap, clock and user
/// agent, without any client credential. A builder already given another issuer is an
/// [`Error::Config`], before anything is fetched.
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, discovery, flow::ClientCredentials};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = discovery::configure(
///     OAuthClient::builder("my-client-id").secret("s3cret"),
///     "https://idp.example",
/// )
/// .await?;
/// let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
/// let token = tokens.token().await?;
/// # let _ = token; Ok(()) }
/// ```
pub async fn configure(
    builder: OAuthClientBuilder,
    issuer: impl AsRef<str>,
) -> Result<OAuthClient> {
    let issuer = issuer.as_ref();
    // The client that fetches the document does not follow the profile yet: what the profile
    // needs (the issuer, the pushed authorization request endpoint) comes with the document,
    // and the finished client below is checked against it.
    let fetcher = builder.clone().without_profile().build()?;
    if let Some(configured) = fetcher.issuer().filter(|c| *c != issuer) {
        return Err(Error::config(format!(
            "the client is configured for issuer {configured:?}, not {issuer:?}"
        )));
    }
    let metadata = discover(&fetcher, issuer).await?;
    tracing::debug!(issuer, "discovered the authorization server's metadata");
    builder.metadata(metadata).build()
}
