//! Protected resource metadata (RFC 9728): what a resource says about itself (which
//! authorization servers issue its tokens, which scopes it knows, how it wants tokens sent),
//! fetched and checked before anything in it is used.
//!
//! - [`ResourceIdentifier`] is the resource as the client names it, derived from the URL it was
//!   asked to reach, with the well-known URL its document is published at
//!   ([`ResourceIdentifier::well_known_url`]);
//! - [`fetch`] gets the document from that well-known URL, [`fetch_from`] from the
//!   `resource_metadata` URL of a `WWW-Authenticate` challenge
//!   ([`Challenge::resource_metadata`](crate::challenge::Challenge::resource_metadata));
//! - [`ProtectedResourceMetadata`] is the checked document.
//!
//! A document is trusted only when its `resource` is exactly the identifier the client derived
//! ([`Error::ResourceMismatch`] otherwise, RFC 9728 §3.3): a resource cannot hand out another
//! resource's document, so a client never takes an attacker's authorization server for the
//! resource's own. It is fetched like every back-channel request: `https` (or `http` to a
//! loopback address), never through a redirect, under the client's deadline and body cap,
//! without any client credential.

use bytes::Bytes;
use http::Method;
use http::header::ACCEPT;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{OAuthClient, endpoint};
use crate::error::{Endpoint, Error, Result, TransportError, TransportErrorKind};
use crate::redact::{self, Secrets};
use crate::transport::{RawResponse, is_loopback_host, origin_of};

/// Inserted between the resource's host and path to find its metadata (RFC 9728 §3).
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// A protected resource's identifier as a client derives it (RFC 9728 §1.2): the scheme, host,
/// port and path of the URL the client was asked to reach, without its query or fragment.
///
/// The scheme must be `https` (or `http` to a loopback address, for local servers); a URL with
/// credentials in it is refused. The text is the URL as the `url` crate normalises it (a
/// lower-case host, no default port, `/` for an empty path).
///
/// ```
/// use oauth_layer::discovery::resource::ResourceIdentifier;
///
/// let resource = ResourceIdentifier::new("https://MCP.example:443/mcp?session=1#top")?;
/// assert_eq!(resource.as_str(), "https://mcp.example/mcp");
/// assert_eq!(
///     resource.well_known_url().as_str(),
///     "https://mcp.example/.well-known/oauth-protected-resource/mcp"
/// );
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceIdentifier {
    url: Url,
}

impl ResourceIdentifier {
    /// Derives the identifier of the resource at `url`: its query and fragment are dropped.
    ///
    /// Fails with [`Error::Config`] when `url` is not a URL or carries credentials, and with an
    /// [`Error::Transport`] of kind [`InsecureUrl`](TransportErrorKind::InsecureUrl) when it is
    /// plain `http` to a host that is not loopback.
    pub fn new(url: impl AsRef<str>) -> Result<Self> {
        let mut url = endpoint("the resource URL", url.as_ref())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config("the resource URL must not carry credentials"));
        }
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self { url })
    }

    /// The identifier, as compared with a document's `resource`.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The identifier as a URL.
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// Where the resource publishes its metadata (RFC 9728 §3.1):
    /// `/.well-known/oauth-protected-resource` between the host (and port) and the path, a
    /// terminating `/` of the path dropped first, so `https://mcp.example/` and
    /// `https://mcp.example` both give `https://mcp.example/.well-known/oauth-protected-resource`
    /// and `https://mcp.example/tools/` gives
    /// `https://mcp.example/.well-known/oauth-protected-resource/tools`.
    pub fn well_known_url(&self) -> Url {
        let mut url = self.url.clone();
        let path = self.url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{WELL_KNOWN_PREFIX}{path}"));
        url
    }

    /// `true` when `found` names this resource: the same text, where a root resource may be
    /// written with or without its `/` (RFC 3986 §6.2.3: for `http` and `https`, an empty path
    /// is `/`).
    pub(crate) fn is(&self, found: &str) -> bool {
        let mine = self.as_str();
        found == mine || (self.url.path() == "/" && found == mine.trim_end_matches('/'))
    }

    fn is_loopback(&self) -> bool {
        self.url.host_str().is_some_and(is_loopback_host)
    }
}

impl std::fmt::Display for ResourceIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResourceIdentifier {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        Self::new(url)
    }
}

/// A protected resource's metadata document (RFC 9728 §2), as checked by [`fetch`] or
/// [`fetch_from`].
///
/// Members this crate does not name (`resource_policy_uri`, `resource_tos_uri`,
/// `authorization_details_types_supported`, `signed_metadata`, language-tagged names like
/// `resource_name#fr`...) are kept in [`extra`](Self::extra). `signed_metadata` is not
/// verified, so its claims are not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// `resource`: the resource's identifier; after [`fetch`], exactly the identifier asked for.
    pub resource: String,
    /// `authorization_servers`: the issuer identifiers of the authorization servers whose
    /// tokens the resource accepts, each checked to be `https` (or loopback `http` for a
    /// loopback resource). Kept as sent, for the byte-exact issuer check of RFC 8414 §3.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_servers: Option<Vec<String>>,
    /// `jwks_uri`: the resource's signing keys (for signed responses), checked like
    /// `authorization_servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Url>,
    /// `scopes_supported`: the scopes the resource uses in authorization requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `bearer_methods_supported`: how the resource takes bearer tokens (`header`, `body`,
    /// `query`); an empty list means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// `resource_signing_alg_values_supported`: the algorithms the resource signs responses
    /// with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_signing_alg_values_supported: Option<Vec<String>>,
    /// `resource_name`: a name for people (server text: never render it as HTML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `resource_documentation`: a page for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<Url>,
    /// `dpop_signing_alg_values_supported` (RFC 9449): the algorithms the resource accepts for
    /// DPoP proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// `dpop_bound_access_tokens_required`: the resource takes DPoP-bound tokens only.
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705): the resource takes
    /// certificate-bound tokens.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Every other member, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fetches and checks the metadata of `resource` from its well-known URL
/// ([`ResourceIdentifier::well_known_url`]); `client` only lends its transport, deadline, body
/// cap and user agent, and no credential of it is sent.
///
/// The document is refused, and nothing in it returned, when:
/// - the request fails, or is answered with a redirect (never followed) or a body over the
///   client's cap ([`Error::Transport`]);
/// - the status is not a success, or the body is not a JSON object with a string `resource`
///   and members of the right types ([`Error::UnexpectedResponse`], or [`Error::Server`] for an
///   OAuth error body);
/// - its `resource` is not `resource` ([`Error::ResourceMismatch`]);
/// - an entry of `authorization_servers`, or `jwks_uri`, is not `https` (loopback `http` only
///   for a loopback resource) ([`Error::Transport`] of kind
///   [`InsecureUrl`](TransportErrorKind::InsecureUrl)), or an entry is not an issuer identifier
///   at all (a query, a fragment, credentials: [`Error::UnexpectedResponse`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let base = format!("http://{}", listener.local_addr()?);
/// # let body = format!(r#"{{"resource":"{base}/mcp","authorization_servers":["https://idp.example"]}}"#);
/// # tokio::spawn(async move {
/// #     let (mut socket, _) = listener.accept().await?;
/// #     let mut buf = vec![0; 4096];
/// #     let _ = socket.read(&mut buf).await?;
/// #     let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
/// #     socket.write_all(head.as_bytes()).await?;
/// #     socket.write_all(body.as_bytes()).await?;
/// #     Ok::<_, std::io::Error>(())
/// # });
/// # let mcp_url = format!("{base}/mcp");
/// use oauth_layer::OAuthClient;
/// use oauth_layer::discovery::resource::{self, ResourceIdentifier};
///
/// let client = OAuthClient::builder("my-client-id").build()?;
/// let mcp = ResourceIdentifier::new(&mcp_url)?; // https://mcp.example/mcp in real use
/// let metadata = resource::fetch(&client, &mcp).await?;
/// assert_eq!(metadata.resource, mcp.as_str());
/// assert_eq!(metadata.authorization_servers.as_deref(), Some(&["https://idp.example".to_owned()][..]));
/// # Ok(()) }
/// ```
pub async fn fetch(
    client: &OAuthClient,
    resource: &ResourceIdentifier,
) -> Result<ProtectedResourceMetadata> {
    let url = resource.well_known_url();
    let response = get(client, &url).await?;
    check(&response, resource)
}

/// Fetches and checks the metadata of `resource` from `metadata_url`, the `resource_metadata`
/// URL of a challenge the resource answered with (RFC 9728 §5.1,
/// [`Challenge::resource_metadata`](crate::challenge::Challenge::resource_metadata)).
///
/// `resource` must be derived from the URL the client sent its request to: RFC 9728 §3.3 asks
/// that the document's `resource` be exactly that, which is what stops a resource from pointing
/// a client at another resource's document. The metadata URL itself may be on another origin
/// (RFC 9728 does not restrict where it is); it must be `https`, or `http` to a loopback
/// address when the resource is itself loopback, and carry no credentials. Everything else is
/// checked as by [`fetch`].
pub async fn fetch_from(
    client: &OAuthClient,
    resource: &ResourceIdentifier,
    metadata_url: &str,
) -> Result<ProtectedResourceMetadata> {
    let url = endpoint("the resource_metadata URL", metadata_url)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            "the resource_metadata URL must not carry credentials",
        ));
    }
    if url.scheme() != "https" && !resource.is_loopback() {
        return Err(insecure(
            "the resource_metadata URL is plain http to a loopback address, named by a resource \
             that is not loopback",
        ));
    }
    let response = get(client, &url).await?;
    check(&response, resource)
}

async fn get(client: &OAuthClient, url: &Url) -> Result<RawResponse> {
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| {
            Error::config(format!(
                "cannot build the protected resource metadata request: {e}"
            ))
        })?;
    // The origin only: a metadata URL from a challenge may carry anything in its query.
    let origin = origin_of(request.uri());
    tracing::debug!(%origin, "protected resource metadata request");
    let response = client.exchange(Endpoint::ResourceMetadata, request).await?;
    tracing::debug!(
        %origin,
        status = response.status.as_u16(),
        "protected resource metadata response"
    );
    Ok(response)
}

/// The document in `response`, if it is `resource`'s own and names only safe URLs.
fn check(
    response: &RawResponse,
    resource: &ResourceIdentifier,
) -> Result<ProtectedResourceMetadata> {
    let secrets = Secrets::default();
    let map = object(response, &secrets)?;
    response.check_oauth(&map, &secrets)?;
    let found = match map.get("resource") {
        Some(Value::String(found)) => found.clone(),
        _ => {
            return Err(response.unexpected(
                "the protected resource metadata has no string `resource`",
                &secrets,
            ));
        }
    };
    if !resource.is(&found) {
        return Err(Error::ResourceMismatch {
            expected: resource.as_str().to_owned(),
            found: redact::server_text(&found, &secrets),
        });
    }
    let metadata: ProtectedResourceMetadata =
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            let problem = format!(
                "the protected resource metadata is not usable: {}",
                redact::server_text(&e.to_string(), &secrets)
            );
            response.unexpected(&problem, &secrets)
        })?;
    let local = resource.is_loopback();
    for (i, issuer) in metadata.authorization_servers.iter().flatten().enumerate() {
        let name = format!("authorization_servers[{i}]");
        let url = match crate::discovery::metadata_urls(issuer) {
            Ok(_) => Url::parse(issuer).ok(),
            Err(Error::Transport(e)) => return Err(Error::Transport(e)),
            Err(_) => None,
        };
        let Some(url) = url else {
            return Err(response.unexpected(
                &format!("{name} is not an issuer identifier (an https URL without query, fragment or credentials)"),
                &secrets,
            ));
        };
        if url.scheme() != "https" && !local {
            return Err(insecure(&format!(
                "{name} is plain http in the metadata of a remote resource; plain http \
                 authorization servers are accepted only from a loopback resource"
            )));
        }
    }
    if let Some(jwks) = &metadata.jwks_uri {
        endpoint("jwks_uri", jwks.as_str())?;
        if jwks.scheme() != "https" && !local {
            return Err(insecure(
                "jwks_uri is plain http in the metadata of a remote resource",
            ));
        }
    }
    Ok(metadata)
}

/// The body as a JSON object (nothing else: no form encoding), or the typed error that says
/// what it was instead. Never panics, whatever the body.
fn object(response: &RawResponse, secrets: &Secrets<'_>) -> Result<Map<String, Value>> {
    if !response.status.is_success() {
        let oauth_error = response
            .object()
            .and_then(|map| response.server_error(&map, secrets));
        return Err(oauth_error.unwrap_or_else(|| {
            response.unexpected("no protected resource metadata at this URL", secrets)
        }));
    }
    let problem = match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => return Ok(map),
        Ok(_) => "JSON body is not an object",
        Err(_) if response.body.is_empty() => "empty body",
        Err(_) if std::str::from_utf8(&response.body).is_err() => "body is not UTF-8",
        Err(_) => "body is not JSON",
    };
    Err(response.unexpected(problem, secrets))
}

fn insecure(message: &str) -> Error {
    Error::Transport(TransportError::new(
        TransportErrorKind::InsecureUrl,
        message.to_owned(),
    ))
}
