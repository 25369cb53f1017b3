//! Client registration: dynamic registration (RFC 7591), the client configuration endpoint
//! (RFC 7592), and Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document).
//!
//! - [`ClientMetadata`] says what the client asks to be registered with;
//! - [`register`] (or [`OAuthClient::register`], with the server's `registration_endpoint`)
//!   sends it and returns the [`Registration`]: a client id, perhaps a secret and a
//!   registration access token; [`Registration::client_builder`] makes a client of it;
//! - [`read`], [`update`] and [`delete`] manage it afterwards at its `registration_client_uri`
//!   with its registration access token (RFC 7592);
//! - [`ClientMetadata::metadata_document`] is the other way in: the client id is an `https`
//!   URL the app controls, and this is the JSON document to serve there; nothing is sent.
//!
//! Every request is a back-channel request like the token endpoint's: `https` (or `http` to a
//! loopback address), never through a redirect, under the client's deadline and body cap, with
//! no client credential besides the bearer token the call needs (the initial access token for
//! [`register`], the registration access token for the rest). The client secret, the
//! registration access token and the initial access token never appear in `Debug`, in errors or
//! in logs, even when a server echoes them back.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let endpoint = format!("http://{}/register", listener.local_addr()?);
//! # let body = r#"{"client_id":"s6BhdRkqt3","client_secret":"cf136dc3c1fc93f31185e5885805d","client_secret_expires_at":0,"token_endpoint_auth_method":"client_secret_basic","redirect_uris":["http://127.0.0.1/callback"]}"#;
//! # tokio::spawn(async move {
//! #     let (mut socket, _) = listener.accept().await?;
//! #     let (mut request, mut buf) = (Vec::new(), vec![0; 4096]);
//! #     while !request.ends_with(b"}") {
//! #         let n = socket.read(&mut buf).await?;
//! #         if n == 0 { break }
//! #         request.extend_from_slice(&buf[..n]);
//! #     }
//! #     let head = format!("HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
//! #     socket.write_all(head.as_bytes()).await?;
//! #     socket.write_all(body.as_bytes()).await?;
//! #     Ok::<_, std::io::Error>(())
//! # });
//! use oauth_layer::{AuthMethod, OAuthClient};
//! use oauth_layer::registration::{self, ClientMetadata};
//!
//! // Any client lends its transport; with discovered metadata, `client.register(&metadata)`
//! // finds the endpoint itself.
//! let client = OAuthClient::builder("unregistered").build()?;
//! let metadata = ClientMetadata::new()
//!     .client_name("My CLI")
//!     .redirect_uri("http://127.0.0.1/callback")
//!     .grant_type("authorization_code");
//! let registered = registration::register(&client, &endpoint, &metadata).await?; // https://idp.example/register
//! assert_eq!(registered.client_id(), "s6BhdRkqt3");
//! assert!(registered.client_secret().is_some());
//! assert_eq!(registered.client_secret_expires_at(), None); // 0: never
//! assert!(!format!("{registered:?}").contains("cf136dc3"));
//!
//! let registered_client = registered.client_builder().token_url("https://idp.example/token").build()?;
//! assert_eq!(registered_client.client_id(), "s6BhdRkqt3");
//! assert_eq!(registered_client.auth_method(), AuthMethod::ClientSecretBasic);
//! # Ok(()) }
//! ```

mod document;
mod metadata;
mod registered;
mod stored;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

pub use metadata::ClientMetadata;
pub use registered::Registration;

use crate::client::{AuthMethod, OAuthClient, endpoint};
use crate::error::{Endpoint, Error, Result};
use crate::redact::Secrets;
use crate::transport::{RawResponse, origin_of};
use registered::Answer;

/// Registers a client at the registration endpoint `endpoint` (RFC 7591 §3.1) and returns what
/// the server registered. `client` only lends its transport, deadline, body cap, user agent
/// and clock (as for [`discovery::discover`](crate::discovery::discover)); none of its
/// credentials is sent.
///
/// The metadata go as a JSON object in a `POST` (`Content-Type` and `Accept`
/// `application/json`), with the metadata's
/// [initial access token](ClientMetadata::initial_access_token), if any, as
/// `Authorization: Bearer`. The request is sent once: a registration is not repeated on a
/// failure, since the server may have made it.
///
/// The answer must be `201 Created` (`200` is taken too) with a JSON object whose `client_id` is
/// a non-empty string. It is refused otherwise:
/// - an OAuth error body (`invalid_redirect_uri`, `invalid_client_metadata`,
///   `invalid_software_statement`, `unapproved_software_statement`, or `invalid_token` for a
///   refused initial access token) is an [`Error::Server`] with that code;
/// - any other status or body (HTML, not JSON, not an object, a `client_id` that is missing or
///   not a string, a `client_secret` or `registration_access_token` that is not a string, a
///   negative time) is an [`Error::UnexpectedResponse`];
/// - a `registration_client_uri` on another origin than `endpoint` is an
///   [`Error::UnexpectedResponse`], and one that is plain `http` to a loopback address from an
///   endpoint that is not loopback an [`Error::Transport`] of kind
///   [`InsecureUrl`](crate::TransportErrorKind::InsecureUrl): RFC 7592 requests carry the
///   registration access token there, and they stay with the server that issued it;
/// - a redirect (never followed), a deadline or a body over the cap is an
///   [`Error::Transport`], as is an `endpoint` that is neither `https` nor loopback `http`
///   (checked before anything is sent).
///
/// See the [module](self) for an example.
pub async fn register(
    client: &OAuthClient,
    endpoint_url: &str,
    metadata: &ClientMetadata,
) -> Result<Registration> {
    let url = endpoint("the registration endpoint", endpoint_url)?;
    let mut secrets = Secrets::default();
    let iat = metadata.initial_access_token_secret();
    if let Some(token) = iat {
        secrets.add(token.expose_secret());
    }
    let body = metadata.to_map();
    let request = json_request(Method::POST, &url, Some(&body), iat, "initial access token")?;
    let response = send(client, Endpoint::Registration, request).await?;
    let answer = Answer {
        sent_to: &url,
        clock: client.clock_arc(),
        previous: None,
    };
    let registration = registered::parse(&response, &answer, &mut secrets)?;
    tracing::debug!(
        origin = %url.origin().ascii_serialization(),
        client_id = registration.client_id(),
        "registered a client"
    );
    Ok(registration)
}

/// Reads `registration` back from its client configuration endpoint (RFC 7592 §2.1): a `GET`
/// to its `registration_client_uri` with its registration access token as `Bearer`.
///
/// The server may have changed it: a new client secret or registration access token replaces
/// the old one, and one the answer leaves out is kept. The answer is checked as for
/// [`register`], and its `client_id` must be the registration's. A `401` or `403` is
/// [`Error::RegistrationGone`]: the client was deleted or its token revoked, so register again.
/// A registration without a `registration_client_uri` or registration access token (the server
/// does not support RFC 7592 for it) is an [`Error::Config`], before anything is sent.
pub async fn read(client: &OAuthClient, registration: &Registration) -> Result<Registration> {
    let (url, token) = configuration_endpoint(registration)?;
    let mut secrets = registration_secrets(registration);
    let request = json_request(
        Method::GET,
        url,
        None,
        Some(token),
        "registration access token",
    )?;
    let response = send(client, Endpoint::ClientConfiguration, request).await?;
    let answer = Answer {
        sent_to: url,
        clock: client.clock_arc(),
        previous: Some(registration),
    };
    registered::parse(&response, &answer, &mut secrets)
}

/// Replaces `registration`'s metadata with `metadata` (RFC 7592 §2.2): a `PUT` of all of them,
/// with the registration's `client_id`, to its `registration_client_uri`, with its registration
/// access token as `Bearer`. Members left out are removed or reset to the server's defaults, as
/// RFC 7592 says; the client secret is not sent.
///
/// The answer is checked as for [`read`], with the same errors.
pub async fn update(
    client: &OAuthClient,
    registration: &Registration,
    metadata: &ClientMetadata,
) -> Result<Registration> {
    let (url, token) = configuration_endpoint(registration)?;
    let mut secrets = registration_secrets(registration);
    if let Some(token) = metadata.initial_access_token_secret() {
        secrets.add(token.expose_secret());
    }
    let mut body = metadata.to_map();
    // RFC 7592 §2.2: the client id, and none of the members only the server sets.
    for member in [
        "registration_access_token",
        "registration_client_uri",
        "client_secret",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        body.remove(member);
    }
    body.insert(
        "client_id".into(),
        Value::String(registration.client_id().to_owned()),
    );
    let request = json_request(
        Method::PUT,
        url,
        Some(&body),
        Some(token),
        "registration access token",
    )?;
    let response = send(client, Endpoint::ClientConfiguration, request).await?;
    let answer = Answer {
        sent_to: url,
        clock: client.clock_arc(),
        previous: Some(registration),
    };
    registered::parse(&response, &answer, &mut secrets)
}

/// Deletes `registration` at its client configuration endpoint (RFC 7592 §2.3): a `DELETE` to
/// its `registration_client_uri` with its registration access token as `Bearer`. The server
/// answers `204 No Content` (`200` is taken too); a `401` or `403` is
/// [`Error::RegistrationGone`] (already deleted, or the token revoked), other answers are
/// errors as for [`read`]. Forget the registration (and delete it from any store) either way.
pub async fn delete(client: &OAuthClient, registration: &Registration) -> Result<()> {
    let (url, token) = configuration_endpoint(registration)?;
    let secrets = registration_secrets(registration);
    let request = json_request(
        Method::DELETE,
        url,
        None,
        Some(token),
        "registration access token",
    )?;
    let response = send(client, Endpoint::ClientConfiguration, request).await?;
    match response.status {
        StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::RegistrationGone {
            status: response.status.as_u16(),
        }),
        _ => Err(response
            .object()
            .and_then(|map| response.server_error(&map, &secrets))
            .unwrap_or_else(|| response.unexpected("expected 204 No Content", &secrets))),
    }
}

impl OAuthClient {
    /// Registers a client (RFC 7591) at the `registration_endpoint` of this client's
    /// authorization server metadata ([`OAuthClient::metadata`], from
    /// [`discovery::configure`](crate::discovery::configure) or
    /// [`OAuthClientBuilder::metadata`](crate::OAuthClientBuilder::metadata)); see
    /// [`registration::register`](register). Without metadata, or when the metadata names no
    /// `registration_endpoint` (the server does not offer dynamic registration), an
    /// [`Error::Config`] says so and nothing is sent.
    pub async fn register(&self, metadata: &ClientMetadata) -> Result<Registration> {
        let Some(server) = self.metadata() else {
            return Err(Error::config(
                "cannot register: the client has no authorization server metadata to find its \
                 registration_endpoint in (use discovery::configure, or registration::register \
                 with the endpoint)",
            ));
        };
        let Some(url) = server.registration_for(self.has_client_certificate()) else {
            return Err(Error::config(format!(
                "cannot register: the metadata of {:?} name no registration_endpoint (the \
                 server does not offer dynamic client registration)",
                server.issuer
            )));
        };
        register(self, url.as_str(), metadata).await
    }

    /// Reads a registration back (RFC 7592); see [`registration::read`](read).
    pub async fn read_registration(&self, registration: &Registration) -> Result<Registration> {
        read(self, registration).await
    }

    /// Replaces a registration's metadata (RFC 7592); see [`registration::update`](update).
    pub async fn update_registration(
        &self,
        registration: &Registration,
        metadata: &ClientMetadata,
    ) -> Result<Registration> {
        update(self, registration, metadata).await
    }

    /// Deletes a registration (RFC 7592); see [`registration::delete`](delete).
    pub async fn delete_registration(&self, registration: &Registration) -> Result<()> {
        delete(self, registration).await
    }
}

/// The name of an authentication method this crate knows.
pub(crate) fn auth_method_named(name: &str) -> Option<AuthMethod> {
    Some(match name {
        "client_secret_basic" => AuthMethod::ClientSecretBasic,
        "client_secret_post" => AuthMethod::ClientSecretPost,
        "none" => AuthMethod::None,
        #[cfg(feature = "jwt")]
        "private_key_jwt" => AuthMethod::PrivateKeyJwt,
        #[cfg(feature = "jwt")]
        "client_secret_jwt" => AuthMethod::ClientSecretJwt,
        "tls_client_auth" => AuthMethod::TlsClientAuth,
        "self_signed_tls_client_auth" => AuthMethod::SelfSignedTlsClientAuth,
        _ => return None,
    })
}

/// Where RFC 7592 requests go, and the token they carry.
fn configuration_endpoint(registration: &Registration) -> Result<(&Url, &SecretString)> {
    match (
        registration.registration_client_uri(),
        registration.registration_access_token(),
    ) {
        (Some(url), Some(token)) => Ok((url, token)),
        _ => Err(Error::config(format!(
            "the registration of client {:?} has no registration_client_uri and registration \
             access token: the server does not offer client configuration (RFC 7592) for it",
            registration.client_id()
        ))),
    }
}

/// The secrets an RFC 7592 request sends or refers to, for redaction.
fn registration_secrets(registration: &Registration) -> Secrets<'_> {
    let mut secrets = Secrets::default();
    for secret in [
        registration.client_secret(),
        registration.registration_access_token(),
    ]
    .into_iter()
    .flatten()
    {
        secrets.add(secret.expose_secret());
    }
    secrets
}

/// A request with a JSON body (or none), asking for JSON, with `bearer` (named `what` in the
/// error when it cannot be a header) as `Authorization: Bearer`, marked sensitive.
fn json_request(
    method: Method,
    url: &Url,
    body: Option<&Map<String, Value>>,
    bearer: Option<&SecretString>,
    what: &str,
) -> Result<http::Request<Bytes>> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(ACCEPT, "application/json");
    let body = match body {
        Some(map) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Bytes::from(
                serde_json::to_vec(map)
                    .map_err(|e| Error::Internal(format!("cannot encode the metadata: {e}")))?,
            )
        }
        None => Bytes::new(),
    };
    let mut request = request
        .body(body)
        .map_err(|e| Error::config(format!("cannot build the registration request: {e}")))?;
    if let Some(token) = bearer {
        let token = token.expose_secret();
        let value = registered::is_bearer_safe(token)
            .then(|| HeaderValue::try_from(format!("Bearer {token}")).ok())
            .flatten();
        let Some(mut value) = value else {
            return Err(Error::config(format!(
                "the {what} is empty or has characters not allowed in an HTTP header"
            )));
        };
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(request)
}

async fn send(
    client: &OAuthClient,
    to: Endpoint,
    request: http::Request<Bytes>,
) -> Result<RawResponse> {
    // The origin only: a configuration URL carries the client id in its path.
    let origin = origin_of(request.uri());
    let method = request.method().clone();
    tracing::debug!(endpoint = %to, %origin, %method, "registration request");
    let response = client.exchange(to, request).await?;
    tracing::debug!(
        endpoint = %to,
        %origin,
        status = response.status.as_u16(),
        "registration response"
    );
    Ok(response)
}
