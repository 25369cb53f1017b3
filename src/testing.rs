//! A local authorization server and protected resource for tests and demos (feature `testing`).
//!
//! [`TestServer`] listens on `127.0.0.1` on a port of its own and speaks just enough OAuth 2.0
//! to exercise a client end to end:
//!
//! - `GET /authorize` ([RFC 6749 §4.1], [RFC 7636], [RFC 9207]): the authorization endpoint,
//!   with a login that completes by itself. For a registered `client_id` and a `redirect_uri`
//!   that is an `http` loopback IP literal (any port, [RFC 8252 §7.3]) or was registered with
//!   [`TestServerBuilder::redirect_uri`], it answers `302 Found` to
//!   `redirect_uri?code=...&state=...&iss=...`, signed in as the `login_hint` or else the
//!   [default user](TestServerBuilder::default_user). PKCE with `code_challenge_method=S256` is
//!   required unless [`TestServerBuilder::require_pkce`] says otherwise; `plain` is always
//!   refused. An unknown client or a redirect URI it does not accept gets a 400 page, never a
//!   redirect; other errors (`unsupported_response_type`, `invalid_request`, `invalid_scope`,
//!   `access_denied` while [`TestServer::deny_authorization`] is on) are redirected with
//!   `error`, `error_description`, `state` and `iss` ([RFC 6749 §4.1.2.1]).
//! - `POST /par` (RFC 9126, [`TestServer::par_url`]): pushed authorization requests, with
//!   client authentication as at the token endpoint and a DPoP proof checked as there; answers
//!   201 with a single-use `request_uri` that `GET /authorize` takes with `client_id` alone,
//!   until it expires ([`TestServerBuilder::par_request_uri_lifetime`]). With
//!   [`TestServerBuilder::require_par`] the authorization endpoint takes nothing else.
//! - Signed request objects (RFC 9101) in the `request` parameter of `GET /authorize` and
//!   `POST /par`, checked with the client's [`client_key`](TestServerBuilder::client_key)
//!   (refused with `invalid_request_object`) and logged ([`TestServer::request_object_log`]);
//!   [`TestServerBuilder::require_request_object`] makes them mandatory.
//! - `POST /device_authorization` ([RFC 8628 §3.1]): client authentication as at the token
//!   endpoint; answers `device_code`, `user_code` (`WDJB-MJHT`), `verification_uri`
//!   (`{url}/device`), `verification_uri_complete`, `expires_in` and `interval`.
//! - `GET /device?user_code=...`: the verification page a browser following
//!   `verification_uri_complete` lands on. The automatic login approves the code (denies it
//!   while [`TestServer::deny_authorization`] is on) and answers a short inert HTML page; see
//!   also [`TestServer::approve_device`] and [`TestServer::deny_device`].
//! - `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`
//!   ([RFC 8414]): the metadata document, naming the issuer ([`TestServer::url`]), every
//!   endpoint below, and the grants and client authentication methods supported, so
//!   [`discovery::configure`](crate::discovery::configure) and [`discover`](crate::discovery::discover) work against the
//!   server offline.
//! - `POST /token` ([RFC 6749 §3.2]): grants `client_credentials`, `password`,
//!   `refresh_token`, `authorization_code`, `urn:ietf:params:oauth:grant-type:device_code`,
//!   the JWT bearer grant `urn:ietf:params:oauth:grant-type:jwt-bearer` ([RFC 7523 §2.1], see
//!   [`TestServerBuilder::assertion_issuer`]) and token exchange
//!   `urn:ietf:params:oauth:grant-type:token-exchange` ([RFC 8693], see
//!   [`TestServerBuilder::exchange_audience`]); client authentication with HTTP Basic (id and
//!   secret form-urlencoded first, §2.3.1), `client_secret_post`, `none`, or a JWT client
//!   assertion (`private_key_jwt` checked with the key of [`TestServerBuilder::client_key`],
//!   `client_secret_jwt` with the client's secret), each client held to the method it was
//!   registered with. Answers are §5.1 JSON with `Cache-Control: no-store`, or §5.2 errors
//!   (`invalid_client` comes with 401 and `WWW-Authenticate: Basic`).
//!   - An authorization code lives 60 s, is bound to its client and to the `redirect_uri` of
//!     the authorization request (compared exactly), needs the `code_verifier` whose S256 hash
//!     is the `code_challenge`, and is spent the first time it is presented, whatever the
//!     outcome: presenting it again gets `invalid_grant` and revokes the tokens it produced
//!     ([RFC 6749 §4.1.2]). A `code_verifier` for a code requested without PKCE is refused.
//!   - A device code answers `authorization_pending` until the user decides, then
//!     `access_denied` or the tokens (once; later `invalid_grant`); `expired_token` once it
//!     expires; `slow_down` to a poll that comes sooner than the interval after the previous
//!     one, which also adds 5 s to the interval ([RFC 8628 §3.5]).
//!   - Both issue an access token and a refresh token, with the scope of the authorization.
//!   - Every grant takes a DPoP proof ([RFC 9449]) in a `DPoP` header, checked exactly, and
//!     then issues `token_type` `DPoP` tokens bound to the proof's key; proofs can be required,
//!     and so can nonces ([`TestServerBuilder::require_dpop`],
//!     [`TestServerBuilder::require_dpop_nonce`]). Every request is recorded
//!     ([`TestServer::token_request_log`]). A `claims` parameter (any grant) is kept with the
//!     tokens.
//!   - The authorization endpoint also takes `acr_values` (the automatic login meets the
//!     first), `max_age`, `claims` and `dpop_jkt`, and records them with the code's tokens.
//! - `POST /register` ([RFC 7591]) and `GET`/`PUT`/`DELETE /register/<client_id>` ([RFC 7592]),
//!   when [`TestServerBuilder::registration`] opens them: dynamic client registration with
//!   strict metadata checks; a registered client then works like one of the builder.
//! - Every endpoint takes RFC 8707 `resource` indicators
//!   ([`TestServerBuilder::require_resource_indicator`]); tokens record the resources they are
//!   for ([`AccessTokenInfo::resources`]).
//! - The authorization and token endpoints take RFC 9396 `authorization_details` (a JSON array
//!   of objects with a string `type`, else 400 or a redirect with
//!   `invalid_authorization_details`; the types can be restricted with
//!   [`TestServerBuilder::authorization_details_types`]). Those of an authorization request go
//!   with its code; the tokens record them ([`AccessTokenInfo::authorization_details`]), a
//!   refresh token keeps them, and every token response echoes them.
//! - `POST /revoke` ([RFC 7009]): revokes an access or refresh token of the authenticated client
//!   (a refresh token takes its access tokens along); 200 whether or not the token was known.
//! - any path under `/api/` ([RFC 6750]): a protected resource. A valid bearer token gets 200 and
//!   JSON describing the request (`{"ok":true,"client_id":..,"scope":..,"method":..,"path":..,
//!   "body_len":..}`); no token gets 401 `WWW-Authenticate: Bearer`; an unknown, expired or
//!   revoked token gets 401 `Bearer error="invalid_token"`; `/api/scoped` (and any path set
//!   with [`TestServerBuilder::require_scope`]) gets 403 `Bearer error="insufficient_scope",
//!   scope="admin"` unless the token has scope `admin`. A DPoP-bound token must come as
//!   `Authorization: DPoP` with a valid proof (and the resource's own nonce when
//!   [`TestServerBuilder::require_resource_dpop_nonce`] says so); sent as `Bearer` it gets 401
//!   `DPoP error="invalid_token"`. Paths can also demand a stronger or fresher sign-in
//!   ([`TestServerBuilder::require_acr`], [`TestServerBuilder::require_max_age`]: 401
//!   `insufficient_user_authentication`, RFC 9470) or a token requested with given claims
//!   ([`TestServerBuilder::require_claims`]: 401 `insufficient_claims`). Every request is
//!   recorded ([`TestServer::resource_requests`]).
//! - the [declared protected resources](TestServerBuilder::protected_resource) (`/mcp`, ...,
//!   [RFC 9728]): each checked like `/api/`, and also takes only tokens issued for its
//!   identifier `{url}{path}`, publishes its metadata at
//!   `/.well-known/oauth-protected-resource{path}` and names it in its challenges
//!   (`WWW-Authenticate: Bearer resource_metadata="..."`), or lies about it when told to. A
//!   [`ResourceServer`] plays such resources on another port, trusting this server's tokens.
//!
//! Every answer is logged in order ([`TestServer::round_trips`]), so a test can assert a
//! client's exact cold-start sequence: resource 401, resource metadata, server metadata,
//! registration, authorization, token, resource 200.
//!
//! Malformed requests get 400, bodies over 64 KiB get 413. Tokens, codes and device codes are
//! random (256 bits; access tokens can be [numbered](TestServerBuilder::numbered_access_tokens)
//! instead) and expire by the server's [`Clock`], so a test holding a
//! [`ManualClock`](crate::clock::ManualClock) decides when they do (and when a device poll is
//! too early). The server stops when the [`TestServer`] is dropped.
//!
//! ```no_run
//! use oauth_layer::{AuthMethod, TokenSource, flow::ClientCredentials};
//! use oauth_layer::testing::TestServer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::builder()
//!     .client("my-app", Some("s3cret"), AuthMethod::ClientSecretBasic)
//!     .start()
//!     .await?;
//!
//! // By hand, as in production...
//! let client = oauth_layer::OAuthClient::builder("my-app")
//!     .secret("s3cret")
//!     .token_url(server.token_url())
//!     .build()?;
//! // ...or registered exactly as the server knows it:
//! let same = server.oauth_client("my-app")?;
//! # let _ = same;
//!
//! let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
//! let token = tokens.token().await?;
//! assert_eq!(token.scope(), Some("api:read"));
//! assert_eq!(server.token_requests_for("client_credentials"), 1);
//!
//! // Any HTTP client can now call the protected resource with the token.
//! let url = server.resource_url("/api/hello");
//! let authorization = token.header_value(); // `Bearer ...`
//! # let _ = (url, authorization);
//! # Ok(()) }
//! ```
//!
//! The interactive flows need no browser: anything that follows the `302` (or fetches
//! `verification_uri_complete`) completes the login.
//!
//! ```no_run
//! use oauth_layer::testing::TestServer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::builder()
//!     .client("cli", None, oauth_layer::AuthMethod::None)
//!     .default_user("alice")
//!     .start()
//!     .await?;
//! // Endpoints, issuer and clock as the server knows them, ready for the interactive flows.
//! let client = server.oauth_client("cli")?;
//! assert_eq!(client.issuer(), Some(server.url().as_str()));
//! # Ok(()) }
//! ```
//!
//! A resource-first deployment: a resource that says who issues its tokens, an authorization
//! server that lets clients register, and tokens bound to the resource:
//!
//! ```no_run
//! use oauth_layer::testing::{ProtectedResource, RegistrationPolicy, TestServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::builder()
//!     .registration(RegistrationPolicy::Open)
//!     .require_resource_indicator(true)
//!     .protected_resource(ProtectedResource::new("/mcp").scopes_supported(["mcp:tools"]))
//!     .start()
//!     .await?;
//! let first = reqwest::get(server.resource_url("/mcp")).await?;
//! assert_eq!(first.status(), 401); // Bearer resource_metadata="{url}/.well-known/oauth-protected-resource/mcp"
//! # Ok(()) }
//! ```
//!
//! Discovery needs nothing but the issuer, as with a real provider:
//!
//! ```no_run
//! use oauth_layer::{AuthMethod, OAuthClient};
//! use oauth_layer::testing::TestServer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::builder()
//!     .client("my-app", Some("s3cret"), AuthMethod::ClientSecretBasic)
//!     .start()
//!     .await?;
//! let builder = OAuthClient::builder("my-app").secret("s3cret");
//! let client = oauth_layer::discovery::configure(builder, server.url()).await?;
//! assert_eq!(client.token_url().map(|u| u.as_str()), Some(server.token_url().as_str()));
//! # Ok(()) }
//! ```
//!
//! [RFC 6749 §3.2]: https://www.rfc-editor.org/rfc/rfc6749#section-3.2
//! [RFC 6749 §4.1]: https://www.rfc-editor.org/rfc/rfc6749#section-4.1
//! [RFC 6749 §4.1.2]: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2
//! [RFC 6749 §4.1.2.1]: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1
//! [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636
//! [RFC 8252 §7.3]: https://www.rfc-editor.org/rfc/rfc8252#section-7.3
//! [RFC 8628 §3.1]: https://www.rfc-editor.org/rfc/rfc8628#section-3.1
//! [RFC 8628 §3.5]: https://www.rfc-editor.org/rfc/rfc8628#section-3.5
//! [RFC 9207]: https://www.rfc-editor.org/rfc/rfc9207
//! [RFC 7009]: https://www.rfc-editor.org/rfc/rfc7009
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 7523 §2.1]: https://www.rfc-editor.org/rfc/rfc7523#section-2.1
//! [RFC 8414]: https://www.rfc-editor.org/rfc/rfc8414
//! [RFC 8693]: https://www.rfc-editor.org/rfc/rfc8693
//! [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
//! [RFC 7591]: https://www.rfc-editor.org/rfc/rfc7591
//! [RFC 7592]: https://www.rfc-editor.org/rfc/rfc7592
//! [RFC 9728]: https://www.rfc-editor.org/rfc/rfc9728

#[cfg(feature = "jwt")]
mod assertion;
mod authorization;
mod authorization_details;
mod client_auth;
mod device;
mod discovery;
mod dpop;
mod form;
#[cfg(feature = "jwt")]
mod jwt_bearer;
mod page;
mod par;
mod protected;
mod registration;
mod reply;
mod request_object;
mod resource;
mod resource_server;
mod revocation;
mod server;
mod state;
mod token;
mod token_exchange;

pub use protected::ProtectedResource;
pub use resource_server::{ResourceServer, ResourceServerBuilder};

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder};
use crate::clock::{Clock, Sleep, SystemClock};
use crate::error::{Error, Result};

use state::{AuthRequirement, Config, Registration, Shared};

/// A running local authorization server and protected resource. See the [module
/// docs](self) for what it answers.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) stops the server and every open
/// connection.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts configuring a server: no clients, no users, access tokens valid for an hour,
    /// refresh tokens rotated, none issued for client credentials, `/api/scoped` needing scope
    /// `admin`, the system clock; for the interactive flows, PKCE required, `iss` sent, default
    /// user `user`, device codes valid for 600 s with a 5 s interval enforced with `slow_down`;
    /// no client registration, `resource` indicators optional, no declared protected
    /// resources besides `/api/`.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            clients: HashMap::new(),
            users: HashMap::new(),
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            issue_refresh_tokens: false,
            required_scopes: vec![("/api/scoped".to_owned(), "admin".to_owned())],
            clock: Arc::new(SystemClock),
            redirect_uris: Vec::new(),
            require_pkce: true,
            send_iss: true,
            default_user: "user".to_owned(),
            device_code_lifetime: Duration::from_secs(600),
            device_interval: Some(Duration::from_secs(5)),
            enforce_slow_down: true,
            #[cfg(feature = "jwt")]
            client_keys: HashMap::new(),
            #[cfg(feature = "jwt")]
            assertion_issuers: HashMap::new(),
            exchange_audiences: Vec::new(),
            authorization_details_types: None,
            numbered_access_tokens: None,
            support_dpop: true,
            require_dpop: false,
            require_dpop_nonce: false,
            require_resource_dpop_nonce: false,
            dpop_nonce_uses: None,
            dpop_iat_window: Duration::from_secs(60),
            required_authentication: Vec::new(),
            required_claims: Vec::new(),
            registration: RegistrationPolicy::Closed,
            require_resource_indicator: false,
            protected_resources: protected::Resources::default(),
            par: par::ParConfig::default(),
            request_objects: request_object::RequestObjectConfig::default(),
            problems: Vec::new(),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint, `{url}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The revocation endpoint, `{url}/revoke`.
    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.url())
    }

    /// The authorization endpoint, `{url}/authorize`.
    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.url())
    }

    /// The device authorization endpoint, `{url}/device_authorization`.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/device_authorization", self.url())
    }

    /// The device verification page, `{url}/device`, sent as `verification_uri`.
    pub fn device_verification_url(&self) -> String {
        format!("{}/device", self.url())
    }

    /// The URL of `path` on this server (`resource_url("/api/hello")`); a missing leading `/`
    /// is added. Paths under `/api/` and those of the
    /// [declared resources](TestServerBuilder::protected_resource) are protected resources.
    pub fn resource_url(&self, path: &str) -> String {
        join(&self.url(), path)
    }

    /// The RFC 8707 / RFC 9728 identifier of the [declared resource](ProtectedResource) at
    /// `path`, `{url}{path}`: the `resource` a token must be requested with to be accepted
    /// there, and the `resource` of its metadata document. Given for undeclared paths too.
    pub fn resource_identifier(&self, path: &str) -> String {
        ProtectedResource::new(path).identifier(&self.url())
    }

    /// Where the metadata of the declared resource at `path` is published (RFC 9728 §3.1):
    /// `{url}/.well-known/oauth-protected-resource{path}`.
    pub fn resource_metadata_url(&self, path: &str) -> String {
        ProtectedResource::new(path).metadata_url(&self.url())
    }

    /// The registration endpoint, `{url}/register` (RFC 7591), served when
    /// [`TestServerBuilder::registration`] allows it.
    pub fn registration_url(&self) -> String {
        format!("{}{}", self.url(), registration::REGISTRATION_PATH)
    }

    /// The pushed authorization request endpoint, `{url}/par` (RFC 9126), advertised in the
    /// metadata as `pushed_authorization_request_endpoint`.
    pub fn par_url(&self) -> String {
        format!("{}{}", self.url(), par::PAR_PATH)
    }

    /// An [`OAuthClient`] for the registered client `client_id` (added by the builder or
    /// registered at [`/register`](TestServerBuilder::registration)), with its secret and
    /// authentication method, this server's token, revocation, authorization and device
    /// authorization endpoints, its [`url`](Self::url) as issuer (the `iss` the authorization
    /// endpoint sends), and this server's clock (so a
    /// [`ManualClock`](crate::clock::ManualClock) moves both). Fails for a client that was not
    /// registered. The server does not know a `private_key_jwt` client's private key: add it
    /// with [`OAuthClientBuilder::signing_key`] on
    /// [`oauth_client_builder`](Self::oauth_client_builder).
    pub fn oauth_client(&self, client_id: &str) -> Result<OAuthClient> {
        self.oauth_client_builder(client_id)?.build()
    }

    /// The settings of [`oauth_client`](Self::oauth_client), to change some (a retry policy, a
    /// timeout) before building it. Fails for a client that was not registered.
    pub fn oauth_client_builder(&self, client_id: &str) -> Result<OAuthClientBuilder> {
        let registration = self
            .shared
            .client(client_id)
            .ok_or_else(|| Error::config(format!("client {client_id:?} is not registered")))?;
        let mut client = OAuthClient::builder(client_id)
            .auth_method(registration.method)
            .clock(SharedClock(Arc::clone(&self.shared.config.clock)));
        if let Some(secret) = &registration.secret {
            client = client.secret(secret.clone());
        }
        Ok(client
            .issuer(self.url())
            .token_url(self.token_url())
            .revocation_url(self.revocation_url())
            .authorization_url(self.authorization_url())
            .device_authorization_url(self.device_authorization_url())
            .par_url(self.par_url()))
    }

    /// How many requests reached the token endpoint, failed ones included.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().token_requests
    }

    /// How many token requests carried `grant_type=grant_type`, failed ones included.
    pub fn token_requests_for(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .token_requests_by_grant
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// How many requests fetched the metadata document, at either well-known URL.
    pub fn discovery_requests(&self) -> usize {
        self.shared.lock().discovery_requests
    }

    /// How many requests reached the registration endpoint (`POST /register`), refused ones
    /// included. Reads, updates and deletes of a registration (RFC 7592) are in
    /// [`round_trips`](Self::round_trips) as [`RoundTripKind::ClientConfiguration`].
    pub fn registration_requests(&self) -> usize {
        self.shared.lock().registration_requests
    }

    /// The ids of the clients registered at `/register` and not deleted, sorted.
    pub fn registered_clients(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.lock().registered.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// How many requests reached the pushed authorization request endpoint
    /// ([`par_url`](Self::par_url)), refused ones included.
    pub fn par_requests(&self) -> usize {
        self.shared.lock().par.requests
    }

    /// Every request the pushed authorization request endpoint received, oldest first.
    pub fn par_request_log(&self) -> Vec<RecordedPushedRequest> {
        self.shared.lock().par.log.clone()
    }

    /// Every signed request object (RFC 9101) the server received, at `/authorize` by value or
    /// at `/par`, oldest first, accepted or refused (see
    /// [`TestServerBuilder::require_request_object`]).
    pub fn request_object_log(&self) -> Vec<RecordedRequestObject> {
        self.shared.lock().request_objects.clone()
    }

    /// How many requests fetched the metadata document of a
    /// [declared resource](TestServerBuilder::protected_resource) of this server.
    pub fn resource_metadata_requests(&self) -> usize {
        self.shared.lock().resource_metadata_requests
    }

    /// Every request this server answered so far, oldest first, with what it was and the status
    /// answered, followed in the same list by those of every [`ResourceServer`] built from it.
    /// A test can assert a client's exact cold-start sequence (resource 401, resource
    /// metadata, server metadata, registration, authorization, token, resource 200):
    ///
    /// ```no_run
    /// use oauth_layer::testing::{RoundTripKind, TestServer};
    ///
    /// # async fn run(server: TestServer) {
    /// let trips: Vec<(RoundTripKind, u16)> =
    ///     server.round_trips().iter().map(|t| (t.kind, t.status)).collect();
    /// assert_eq!(trips.first(), Some(&(RoundTripKind::Resource, 401)));
    /// # }
    /// ```
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        self.shared.lock().round_trips.clone()
    }

    /// How many requests reached the revocation endpoint.
    pub fn revocation_requests(&self) -> usize {
        self.shared.lock().revocation_requests
    }

    /// How many requests reached the authorization endpoint (`GET /authorize`), refused ones
    /// included.
    pub fn authorization_requests(&self) -> usize {
        self.shared.lock().authorization_requests
    }

    /// How many requests reached the device authorization endpoint, failed ones included. Polls
    /// are token requests: see [`token_requests_for`](Self::token_requests_for) with
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub fn device_requests(&self) -> usize {
        self.shared.lock().device_requests
    }

    /// While `true`, the automatic login refuses: `/authorize` redirects with
    /// `error=access_denied` and `/device?user_code=` denies the code. Default: `false`.
    pub fn deny_authorization(&self, deny: bool) {
        self.shared.lock().deny_authorization = deny;
    }

    /// Approves the device authorization showing `user_code` (compared without case, dashes or
    /// spaces) for the [default user](TestServerBuilder::default_user), as visiting
    /// `/device?user_code=` does. `false` when no pending, unexpired authorization has that
    /// code.
    pub fn approve_device(&self, user_code: &str) -> bool {
        device::decide(&self.shared, user_code, true)
    }

    /// Denies the device authorization showing `user_code`: its next poll gets
    /// `access_denied`. `false` when no pending, unexpired authorization has that code.
    pub fn deny_device(&self, user_code: &str) -> bool {
        device::decide(&self.shared, user_code, false)
    }

    /// Every request to a path under `/api/` so far, oldest first, rejected ones included
    /// (except bodies over 64 KiB, refused with 413 before they are read).
    pub fn resource_requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().resource_requests.clone()
    }

    /// Every request to the token endpoint so far, oldest first, failed ones included (except
    /// bodies over 64 KiB): its grant type, what its DPoP proof said and why it was refused, the
    /// status, the `error` code or the `token_type` issued.
    pub fn token_request_log(&self) -> Vec<RecordedTokenRequest> {
        self.shared.lock().token_request_log.clone()
    }

    /// What the server knows about the access token `access_token`: its client, scope, the
    /// DPoP key it is bound to, the `acr` of the sign-in and the `claims` it was requested with.
    /// `None` for a token the server never issued, or revoked; expired tokens are still known
    /// until the next token is issued.
    pub fn access_token_info(&self, access_token: &str) -> Option<AccessTokenInfo> {
        let state = self.shared.lock();
        let grant = &state.access_tokens.get(access_token)?.grant;
        Some(AccessTokenInfo {
            client_id: grant.client_id.clone(),
            username: grant.username.clone(),
            scope: grant.scope.clone(),
            jkt: grant.jkt.clone(),
            acr: grant.acr.clone(),
            claims: grant.claims.as_ref().map(ToString::to_string),
            resources: grant.resources.clone(),
            authorization_details: grant
                .authorization_details
                .as_ref()
                .map(ToString::to_string),
        })
    }

    /// The DPoP nonce the token endpoint currently demands (see
    /// [`TestServerBuilder::require_dpop_nonce`]).
    pub fn dpop_nonce(&self) -> String {
        self.shared.lock().token_nonce.value.clone()
    }

    /// The DPoP nonce the protected resource currently demands (see
    /// [`TestServerBuilder::require_resource_dpop_nonce`]).
    pub fn resource_dpop_nonce(&self) -> String {
        self.shared.lock().resource_nonce.value.clone()
    }

    /// Replaces both DPoP nonces now, as a server does when its nonces age: the next proof
    /// with an old nonce gets `use_dpop_nonce` with the new one.
    pub fn rotate_dpop_nonces(&self) {
        let mut state = self.shared.lock();
        state.token_nonce.rotate();
        state.resource_nonce.rotate();
    }

    /// Starts (`Some`) or stops (`None`) demanding `claims` at exactly `path` while the server
    /// runs, as [`TestServerBuilder::require_claims`] does from the start: the continuous
    /// access evaluation case of a token that worked until the provider decided otherwise.
    /// Claims that are not a JSON object make every token fail the check.
    pub fn demand_claims(&self, path: &str, claims: Option<&str>) {
        let mut state = self.shared.lock();
        state.required_claims.retain(|(p, _)| p != path);
        if let Some(claims) = claims {
            state
                .required_claims
                .push((path.to_owned(), claims.to_owned()));
        }
    }

    /// Revokes every access token issued so far, as an administrator would: the resource
    /// answers `invalid_token` for them. Refresh tokens stay valid.
    pub fn revoke_all_access_tokens(&self) {
        self.shared.lock().access_tokens.clear();
    }

    /// Revokes every refresh token issued so far: refreshing with one gets `invalid_grant`.
    /// Access tokens stay valid.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// Makes every access token issued so far expired now, whatever its lifetime, without
    /// moving any clock. Refresh tokens stay valid.
    pub fn expire_all_access_tokens(&self) {
        let now = self.shared.config.clock.now();
        for token in self.shared.lock().access_tokens.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    /// Sets every counter back to zero and forgets the recorded resource and token requests, the
    /// pushed requests, the [request objects](Self::request_object_log) and the
    /// [round trips](Self::round_trips). Tokens, registered clients, nonces and the DPoP
    /// replay cache are kept.
    pub fn reset_counts(&self) {
        let mut state = self.shared.lock();
        state.token_requests = 0;
        state.token_requests_by_grant.clear();
        state.revocation_requests = 0;
        state.authorization_requests = 0;
        state.device_requests = 0;
        state.discovery_requests = 0;
        state.registration_requests = 0;
        state.resource_metadata_requests = 0;
        state.resource_requests.clear();
        state.token_request_log.clear();
        state.round_trips.clear();
        state.par.requests = 0;
        state.par.log.clear();
        state.request_objects.clear();
    }

    /// Stops the server and waits until its listener is closed. Dropping the server does the
    /// same without waiting.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The task was aborted, so the only outcome is a cancellation error.
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TestServer`]; made by [`TestServer::builder`].
pub struct TestServerBuilder {
    clients: HashMap<String, Registration>,
    users: HashMap<String, String>,
    access_token_lifetime: Duration,
    rotate_refresh_tokens: bool,
    issue_refresh_tokens: bool,
    required_scopes: Vec<(String, String)>,
    clock: Arc<dyn Clock>,
    redirect_uris: Vec<(String, String)>,
    require_pkce: bool,
    send_iss: bool,
    default_user: String,
    device_code_lifetime: Duration,
    device_interval: Option<Duration>,
    enforce_slow_down: bool,
    #[cfg(feature = "jwt")]
    client_keys: HashMap<String, assertion::TrustedKey>,
    #[cfg(feature = "jwt")]
    assertion_issuers: HashMap<String, assertion::TrustedKey>,
    exchange_audiences: Vec<String>,
    authorization_details_types: Option<Vec<String>>,
    numbered_access_tokens: Option<String>,
    support_dpop: bool,
    require_dpop: bool,
    require_dpop_nonce: bool,
    require_resource_dpop_nonce: bool,
    dpop_nonce_uses: Option<u32>,
    dpop_iat_window: Duration,
    required_authentication: Vec<(String, AuthRequirement)>,
    required_claims: Vec<(String, String)>,
    registration: RegistrationPolicy,
    require_resource_indicator: bool,
    protected_resources: protected::Resources,
    par: par::ParConfig,
    request_objects: request_object::RequestObjectConfig,
    /// Configuration errors found by a setter, reported by `start`.
    problems: Vec<String>,
}

impl TestServerBuilder {
    /// Registers a client. `secret` is required for [`AuthMethod::ClientSecretBasic`],
    /// [`AuthMethod::ClientSecretPost`] and `ClientSecretJwt`, and must be `None` for
    /// [`AuthMethod::None`] and `PrivateKeyJwt`, whose public key is set with `client_key`
    /// (checked by [`start`](Self::start)). The client must authenticate with exactly this method; any other
    /// gets 401 `invalid_client`. Registering an id again replaces it.
    pub fn client(
        mut self,
        id: impl Into<String>,
        secret: Option<&str>,
        method: AuthMethod,
    ) -> Self {
        self.clients.insert(
            id.into(),
            Registration {
                secret: secret.map(str::to_owned),
                method,
                #[cfg(feature = "jwt")]
                key: None,
                redirect_uris: None,
                grant_types: None,
            },
        );
        self
    }

    /// Registers the public key that checks the `private_key_jwt` client assertions (and the
    /// [signed request objects](Self::require_request_object)) of `client_id`, a client
    /// registered with [`AuthMethod::PrivateKeyJwt`] and no secret
    /// (checked by [`start`](Self::start)), signed with `algorithm` only. `public_key_pem` is a
    /// `PUBLIC KEY` PEM document (or `RSA PUBLIC KEY`); one that does not fit `algorithm` makes
    /// [`start`](Self::start) fail.
    ///
    /// An assertion is accepted when it is signed with this key and algorithm, its `iss` and
    /// `sub` are the client id, its `aud` names the [token endpoint](TestServer::token_url) or
    /// the [issuer](TestServer::url), its `exp` is ahead on the server's clock (and `nbf`, if
    /// sent, is not), and its `jti` was not accepted before. Anything else gets 401
    /// `invalid_client`. A [`AuthMethod::ClientSecretJwt`] client needs no key: its HS256
    /// assertions are checked with its secret.
    ///
    /// ```no_run
    /// use oauth_layer::{AuthMethod, TokenSource, flow::ClientCredentials};
    /// use oauth_layer::jwt::{Algorithm, SigningKey};
    /// use oauth_layer::testing::TestServer;
    ///
    /// # async fn run(private_pem: &str, public_pem: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .client("svc", None, AuthMethod::PrivateKeyJwt)
    ///     .client_key("svc", Algorithm::ES256, public_pem)
    ///     .start()
    ///     .await?;
    /// let client = server
    ///     .oauth_client_builder("svc")?
    ///     .signing_key(SigningKey::es256_pem(private_pem)?)
    ///     .build()?;
    /// let token = TokenSource::new(client, ClientCredentials::new()).token().await?;
    /// # let _ = token; Ok(()) }
    /// ```
    #[cfg(feature = "jwt")]
    pub fn client_key(
        mut self,
        client_id: impl Into<String>,
        algorithm: crate::jwt::Algorithm,
        public_key_pem: impl AsRef<[u8]>,
    ) -> Self {
        let client_id = client_id.into();
        match assertion::TrustedKey::from_pem(algorithm, public_key_pem.as_ref()) {
            Ok(key) => {
                self.client_keys.insert(client_id, key);
            }
            Err(problem) => self
                .problems
                .push(format!("client_key of {client_id:?}: {problem}")),
        }
        self
    }

    /// Trusts JWTs whose `iss` is `issuer` and that are signed with `algorithm` by the key of
    /// `public_key_pem` (a `PUBLIC KEY` PEM document), for two uses:
    ///
    /// - the JWT bearer grant ([RFC 7523 §2.1], [`JwtBearer`](crate::flow::JwtBearer)): the
    ///   `assertion` must also name a `sub` (the user the token is for, reported by the
    ///   resource as `username`), an `aud` naming the [token endpoint](TestServer::token_url)
    ///   or the [issuer](TestServer::url), an `exp` ahead on the server's clock, and a `jti`
    ///   not seen before; otherwise `invalid_grant`. The scope is the `scope` parameter, or
    ///   the assertion's `scope` claim. No refresh token is issued.
    /// - token exchange with `subject_token_type` (or `actor_token_type`)
    ///   `urn:ietf:params:oauth:token-type:jwt`: such a token must carry `sub` and an `exp`
    ///   ahead; its `aud` is not checked and it may be exchanged more than once.
    ///
    /// The client making the request still authenticates as registered with
    /// [`client`](Self::client) (a public client sends its `client_id`). Calling it again for
    /// the same issuer replaces the key; a PEM that does not fit `algorithm` makes
    /// [`start`](Self::start) fail.
    ///
    /// ```no_run
    /// use oauth_layer::{AuthMethod, TokenSource, flow::JwtBearer};
    /// use oauth_layer::jwt::{Algorithm, SigningKey};
    /// use oauth_layer::testing::TestServer;
    ///
    /// # async fn run(private_pem: &str, public_pem: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .client("app", None, AuthMethod::None)
    ///     .assertion_issuer("https://issuer.example", Algorithm::RS256, public_pem)
    ///     .start()
    ///     .await?;
    /// let flow = JwtBearer::new(SigningKey::rs256_pem(private_pem)?, "https://issuer.example")
    ///     .subject("alice")
    ///     .scope("api:read");
    /// let token = TokenSource::new(server.oauth_client("app")?, flow).token().await?;
    /// # let _ = token; Ok(()) }
    /// ```
    ///
    /// [RFC 7523 §2.1]: https://www.rfc-editor.org/rfc/rfc7523#section-2.1
    #[cfg(feature = "jwt")]
    pub fn assertion_issuer(
        mut self,
        issuer: impl Into<String>,
        algorithm: crate::jwt::Algorithm,
        public_key_pem: impl AsRef<[u8]>,
    ) -> Self {
        let issuer = issuer.into();
        match assertion::TrustedKey::from_pem(algorithm, public_key_pem.as_ref()) {
            Ok(key) => {
                self.assertion_issuers.insert(issuer, key);
            }
            Err(problem) => self
                .problems
                .push(format!("assertion_issuer {issuer:?}: {problem}")),
        }
        self
    }

    /// Limits the targets of token exchange ([RFC 8693]) to the audiences and resources named
    /// here; call it again to add more. A request naming any other `audience` or `resource`
    /// gets `invalid_target`. Default: every target is accepted.
    ///
    /// Token exchange takes as `subject_token` (and `actor_token`) an unexpired access token of
    /// this server (type `urn:ietf:params:oauth:token-type:access_token`) or, with
    /// [`assertion_issuer`](Self::assertion_issuer), a JWT of a trusted issuer (type
    /// `urn:ietf:params:oauth:token-type:jwt`); anything else gets `invalid_request`
    /// (RFC 8693 §2.2.2). The answer is an access token with `issued_token_type`
    /// `urn:ietf:params:oauth:token-type:access_token`, the requested scope or else the
    /// subject token's, and no refresh token. The resource reports the subject as `username`,
    /// the actor as `actor` and the targets as `audience`.
    ///
    /// ```no_run
    /// use oauth_layer::{AuthMethod, TokenSource};
    /// use oauth_layer::flow::{ClientCredentials, SubjectToken, TokenExchange};
    /// use oauth_layer::testing::TestServer;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .client("gateway", Some("s3cret"), AuthMethod::ClientSecretBasic)
    ///     .exchange_audience("https://backend.example")
    ///     .start()
    ///     .await?;
    /// let client = server.oauth_client("gateway")?;
    /// let own = TokenSource::new(client.clone(), ClientCredentials::new());
    /// let exchange = TokenExchange::new(SubjectToken::source(own))
    ///     .audience("https://backend.example");
    /// let token = TokenSource::new(client, exchange).token().await?;
    /// assert!(token.issued_token_type().is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// [RFC 8693]: https://www.rfc-editor.org/rfc/rfc8693
    pub fn exchange_audience(mut self, audience: impl Into<String>) -> Self {
        self.exchange_audiences.push(audience.into());
        self
    }

    /// Issues access tokens named `prefix` and a count, `{prefix}1`, `{prefix}2`, ... in the
    /// order they are issued, instead of random ones, so a test can say which token a request
    /// carried (`Bearer tok-2` after one renewal). Refresh tokens, codes and device codes stay
    /// random. Default: random access tokens.
    ///
    /// ```no_run
    /// use oauth_layer::{AuthMethod, TokenSource, flow::ClientCredentials};
    /// use oauth_layer::testing::TestServer;
    /// use secrecy::ExposeSecret;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .client("app", Some("s3cret"), AuthMethod::ClientSecretBasic)
    ///     .numbered_access_tokens("tok-")
    ///     .start()
    ///     .await?;
    /// let tokens = TokenSource::new(server.oauth_client("app")?, ClientCredentials::new());
    /// assert_eq!(tokens.token().await?.access_token().expose_secret(), "tok-1");
    /// # Ok(()) }
    /// ```
    pub fn numbered_access_tokens(mut self, prefix: impl Into<String>) -> Self {
        self.numbered_access_tokens = Some(prefix.into());
        self
    }

    /// Restricts the `authorization_details` types ([RFC 9396]) the server accepts, and
    /// publishes them as `authorization_details_types_supported` in its metadata; a request
    /// with another type gets `invalid_authorization_details`. By default every type is
    /// accepted (and none published).
    ///
    /// [RFC 9396]: https://www.rfc-editor.org/rfc/rfc9396
    pub fn authorization_details_types<T: Into<String>>(
        mut self,
        types: impl IntoIterator<Item = T>,
    ) -> Self {
        self.authorization_details_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a resource owner for the password grant.
    pub fn user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(username.into(), password.into());
        self
    }

    /// How long access tokens live (`expires_in`, whole seconds). Default: one hour.
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Whether every refresh issues a new refresh token and invalidates the one used (later
    /// use gets `invalid_grant`). Default: `true`. When `false`, refresh answers carry no
    /// `refresh_token` and the old one stays valid.
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Whether the client credentials grant issues a refresh token. Default: `false`. The
    /// password grant always issues one.
    pub fn issue_refresh_tokens(mut self, issue: bool) -> Self {
        self.issue_refresh_tokens = issue;
        self
    }

    /// Makes the resource at exactly `path` answer 403 `insufficient_scope` unless the token
    /// has `scope`. `/api/scoped` needs `admin` unless set otherwise here.
    pub fn require_scope(mut self, path: impl Into<String>, scope: impl Into<String>) -> Self {
        let path = path.into();
        self.required_scopes.retain(|(p, _)| *p != path);
        self.required_scopes.push((path, scope.into()));
        self
    }

    /// The clock token expiry is measured with. Default: [`SystemClock`]. It also times
    /// authorization codes, device codes and device polling.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Registers `uri` as a redirect URI of `client_id` (which must be registered too, checked
    /// by [`start`](Self::start)); the authorization endpoint accepts it by exact string
    /// comparison. Any `http` URI on a loopback IP literal (`127.0.0.1`, `[::1]`, any port) is
    /// accepted without registration; `localhost` is not. When a client has exactly one
    /// registered URI, an authorization request may leave `redirect_uri` out.
    pub fn redirect_uri(mut self, client_id: impl Into<String>, uri: impl Into<String>) -> Self {
        self.redirect_uris.push((client_id.into(), uri.into()));
        self
    }

    /// Whether authorization requests must carry an S256 `code_challenge`. Default: `true`.
    /// When `false`, requests without one are accepted; `plain` is refused either way.
    pub fn require_pkce(mut self, require: bool) -> Self {
        self.require_pkce = require;
        self
    }

    /// Whether authorization responses (codes and errors) carry `iss` ([RFC 9207]), the
    /// server's [`url`](TestServer::url). Default: `true`.
    ///
    /// [RFC 9207]: https://www.rfc-editor.org/rfc/rfc9207
    pub fn send_iss(mut self, send: bool) -> Self {
        self.send_iss = send;
        self
    }

    /// Who the automatic login signs in as when the authorization request has no `login_hint`,
    /// and who approves device codes. Tokens from those flows carry this username (the
    /// resource reports it). Default: `user`.
    pub fn default_user(mut self, username: impl Into<String>) -> Self {
        self.default_user = username.into();
        self
    }

    /// How long a device code can be polled (`expires_in`, whole seconds). Default: 600 s.
    pub fn device_code_lifetime(mut self, lifetime: Duration) -> Self {
        self.device_code_lifetime = lifetime;
        self
    }

    /// The `interval` of device authorization responses (whole seconds); `None` leaves it out,
    /// and the server then expects the 5 s RFC 8628 §3.5 prescribes. Default: 5 s.
    pub fn device_interval(mut self, interval: Option<Duration>) -> Self {
        self.device_interval = interval;
        self
    }

    /// Whether a device poll that comes sooner than the interval after the previous poll of the
    /// same device code gets `slow_down` (and adds 5 s to that code's interval). Default:
    /// `true`.
    pub fn enforce_slow_down(mut self, enforce: bool) -> Self {
        self.enforce_slow_down = enforce;
        self
    }

    /// Whether the server knows DPoP at all. Default: `true`. When `false` it behaves like a
    /// server that predates RFC 9449: the token endpoint ignores `DPoP` headers and issues
    /// `token_type` `Bearer` (the log records the proof as not checked), the metadata omits
    /// `dpop_signing_alg_values_supported`, and the resource treats the `DPoP` scheme as
    /// unknown (401 `Bearer`). For testing what a client does when it asked for DPoP and got
    /// a bearer token.
    pub fn support_dpop(mut self, support: bool) -> Self {
        self.support_dpop = support;
        self
    }

    /// Whether every token request must carry a DPoP proof ([RFC 9449]). Default: `false`:
    /// a request with a proof gets DPoP-bound tokens, one without gets bearer tokens. When
    /// `true`, a token request without a `DPoP` header gets 400 `invalid_dpop_proof`, and a
    /// resource request without credentials gets `DPoP algs="ES256 EdDSA PS256"` as a second
    /// `WWW-Authenticate` challenge after `Bearer`.
    ///
    /// Whatever this says, a `DPoP` header is checked exactly at the token endpoint (every
    /// grant) and at the resource: one header; `typ` `dpop+jwt`; `alg` ES256 (P-256), EdDSA
    /// (Ed25519) or PS256; a public `jwk` that verifies the signature; `htm` the request's
    /// method; `htu` the request's URL ignoring query and fragment (the token endpoint's URL;
    /// at the resource `http://` + the `Host` header + the path); `iat` within
    /// [`dpop_iat_window`](Self::dpop_iat_window) of the server's clock; a `jti` not accepted
    /// before (token endpoint and resource share one replay cache); at the resource `ath`, the
    /// hash of the access token; and `nonce` where nonces are demanded. A bad proof gets 400
    /// `invalid_dpop_proof` at the token endpoint. A good one gets `token_type` `DPoP`: the
    /// access and refresh tokens are bound to the key's thumbprint (`jkt`, [RFC 7638]). A bound
    /// refresh token needs a proof by the same key (a missing proof gets `invalid_dpop_proof`,
    /// another key `invalid_grant`), as does a code requested with `dpop_jkt`.
    ///
    /// At the resource a bound token must come as `Authorization: DPoP <token>` with a proof by
    /// its key, or gets 401 `DPoP error="invalid_dpop_proof", algs="ES256 EdDSA PS256"`; sent
    /// as `Bearer` (a stolen token) it gets 401 `DPoP error="invalid_token"`, as does an
    /// unbound token sent as `DPoP`.
    ///
    /// [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
    /// [RFC 7638]: https://www.rfc-editor.org/rfc/rfc7638
    pub fn require_dpop(mut self, require: bool) -> Self {
        self.require_dpop = require;
        self
    }

    /// Whether DPoP proofs at the token endpoint must carry the server's current nonce
    /// ([RFC 9449 §8]). Default: `false`. When `true`, a proof without it (or with an old one)
    /// gets 400 `{"error":"use_dpop_nonce"}`, and every answer of the token endpoint carries
    /// the current nonce in `DPoP-Nonce` (after any rotation the request caused, so a client
    /// that keeps the nonce of each answer is never challenged again). See
    /// [`TestServer::dpop_nonce`], [`TestServer::rotate_dpop_nonces`] and
    /// [`dpop_nonce_uses`](Self::dpop_nonce_uses).
    ///
    /// [RFC 9449 §8]: https://www.rfc-editor.org/rfc/rfc9449#section-8
    pub fn require_dpop_nonce(mut self, require: bool) -> Self {
        self.require_dpop_nonce = require;
        self
    }

    /// Whether DPoP proofs at the protected resource must carry the resource's own nonce
    /// ([RFC 9449 §9]), which differs from the token endpoint's. Default: `false`. When `true`,
    /// a proof without it gets 401 `WWW-Authenticate: DPoP error="use_dpop_nonce",
    /// algs="ES256 EdDSA PS256"`, and every resource answer carries the current nonce in
    /// `DPoP-Nonce`. See [`TestServer::resource_dpop_nonce`].
    ///
    /// [RFC 9449 §9]: https://www.rfc-editor.org/rfc/rfc9449#section-9
    pub fn require_resource_dpop_nonce(mut self, require: bool) -> Self {
        self.require_resource_dpop_nonce = require;
        self
    }

    /// Replaces a nonce (the token endpoint's or the resource's) after `uses` accepted proofs
    /// carried it; the answer to the last of them already names the new one. `1` makes every
    /// nonce single-use. Default: a nonce lives until
    /// [`TestServer::rotate_dpop_nonces`]. `0` counts as `1`.
    pub fn dpop_nonce_uses(mut self, uses: u32) -> Self {
        self.dpop_nonce_uses = Some(uses.max(1));
        self
    }

    /// How far a DPoP proof's `iat` may be from the server's clock, either way. Default: 60 s.
    pub fn dpop_iat_window(mut self, window: Duration) -> Self {
        self.dpop_iat_window = window;
        self
    }

    /// Makes the resource at exactly `path` answer 401 `WWW-Authenticate: Bearer
    /// error="insufficient_user_authentication", acr_values="<acr_values>"` ([RFC 9470]; the
    /// `DPoP` scheme for a DPoP-bound token) unless the token's `acr` is one of the
    /// space-separated `acr_values`. A token has an `acr` when it comes from an authorization
    /// request with `acr_values`: the automatic login meets the first of them. Combines with
    /// [`require_max_age`](Self::require_max_age) into one challenge.
    ///
    /// [RFC 9470]: https://www.rfc-editor.org/rfc/rfc9470
    pub fn require_acr(mut self, path: impl Into<String>, acr_values: impl Into<String>) -> Self {
        self.authentication_requirement(path.into()).acr_values = Some(acr_values.into());
        self
    }

    /// Makes the resource at exactly `path` answer 401 `WWW-Authenticate: Bearer
    /// error="insufficient_user_authentication", max_age=<seconds>` ([RFC 9470]) unless the
    /// user signed in at most `max_age` ago by the server's clock. Only tokens from the
    /// authorization code flow record a sign-in time (the automatic login, at `/authorize`),
    /// so every other token gets the challenge. With [`require_acr`](Self::require_acr) the
    /// challenge names both, `acr_values` first.
    ///
    /// [RFC 9470]: https://www.rfc-editor.org/rfc/rfc9470
    pub fn require_max_age(mut self, path: impl Into<String>, max_age: Duration) -> Self {
        self.authentication_requirement(path.into()).max_age = Some(max_age);
        self
    }

    fn authentication_requirement(&mut self, path: String) -> &mut AuthRequirement {
        let index = match self
            .required_authentication
            .iter()
            .position(|(p, _)| *p == path)
        {
            Some(index) => index,
            None => {
                self.required_authentication
                    .push((path, AuthRequirement::default()));
                self.required_authentication.len() - 1
            }
        };
        &mut self.required_authentication[index].1
    }

    /// Makes the resource at exactly `path` demand claims the way Microsoft Entra's continuous
    /// access evaluation does: 401 `WWW-Authenticate: Bearer error="insufficient_claims",
    /// claims="<base64 of claims>"` (standard base64 with padding; the `DPoP` scheme for a
    /// DPoP-bound token) unless the token was issued for a token request (any grant) or an
    /// authorization request whose `claims` parameter is this JSON (compared as JSON, so
    /// spacing and member order do not matter). `claims` is a JSON object such as
    /// `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`; one that is not
    /// valid JSON makes [`start`](Self::start) fail.
    pub fn require_claims(mut self, path: impl Into<String>, claims: impl Into<String>) -> Self {
        let path = path.into();
        let claims = claims.into();
        if serde_json::from_str::<serde_json::Value>(&claims).map_or(true, |v| !v.is_object()) {
            self.problems
                .push(format!("require_claims for {path:?}: not a JSON object"));
        }
        self.required_claims.retain(|(p, _)| *p != path);
        self.required_claims.push((path, claims));
        self
    }

    /// Who may register clients at `POST /register` (dynamic client registration, [RFC 7591]).
    /// Default: [`RegistrationPolicy::Closed`], no registration endpoint (404, and none in the
    /// metadata). Otherwise the metadata names `registration_endpoint` ([`TestServer::registration_url`]),
    /// and a registration request is a JSON object of client metadata, checked strictly:
    ///
    /// - `redirect_uris`: each `https` (with a host) or `http` on a loopback IP literal, never
    ///   with a fragment; required for the `authorization_code` grant; otherwise 400
    ///   `invalid_redirect_uri`;
    /// - `grant_types` (default `["authorization_code"]`): the grants of the token endpoint;
    ///   `response_types` (default `["code"]`): `code` only; `token_endpoint_auth_method`
    ///   (default `client_secret_basic`): `none`, `client_secret_basic`, `client_secret_post`
    ///   or `client_secret_jwt`; anything else, or a member of the wrong type, gets 400
    ///   `invalid_client_metadata`.
    ///
    /// The answer is 201 with the metadata (defaults filled in, unknown members echoed), a
    /// fresh random `client_id`, `client_id_issued_at`, a `client_secret` with
    /// `client_secret_expires_at: 0` unless the method is `none`, a `registration_access_token`
    /// and the `registration_client_uri` `{url}/register/<client_id>`, where ([RFC 7592]) `GET`
    /// reads the registration, `PUT` replaces its metadata (the body must name the client's
    /// `client_id`; the credentials stay) and `DELETE` removes the client and revokes its
    /// tokens (204), each with the registration access token as `Authorization: Bearer`; a
    /// wrong or missing one gets 401 `invalid_token`.
    ///
    /// A registered client then works at the token, authorization, device and revocation
    /// endpoints like one added with [`client`](Self::client) (its secret and method checked),
    /// but only with the grant types it registered (`unauthorized_client` otherwise; a refresh
    /// token issued to it stays redeemable) and with its own redirect URIs: a registered
    /// loopback URI matches on any port ([RFC 8252 §7.3]), other loopback URIs are refused.
    ///
    /// ```no_run
    /// use oauth_layer::testing::{RegistrationPolicy, TestServer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .registration(RegistrationPolicy::InitialAccessToken("iat".into()))
    ///     .start()
    ///     .await?;
    /// let answer: serde_json::Value = reqwest::Client::new()
    ///     .post(server.registration_url())
    ///     .bearer_auth("iat")
    ///     .json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/callback"]}))
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// let client = server.oauth_client(answer["client_id"].as_str().unwrap_or_default())?;
    /// # let _ = client; Ok(()) }
    /// ```
    ///
    /// [RFC 7591]: https://www.rfc-editor.org/rfc/rfc7591
    /// [RFC 7592]: https://www.rfc-editor.org/rfc/rfc7592
    /// [RFC 8252 §7.3]: https://www.rfc-editor.org/rfc/rfc8252#section-7.3
    pub fn registration(mut self, policy: RegistrationPolicy) -> Self {
        self.registration = policy;
        self
    }

    /// Requires pushed authorization requests (RFC 9126): the metadata then says
    /// `require_pushed_authorization_requests`, and `/authorize` refuses a request without a
    /// pushed `request_uri` with `invalid_request` (redirected back when the client and its
    /// redirect URI are known good). Default: `false`.
    ///
    /// Whatever this says, `POST /par` ([`TestServer::par_url`]) takes pushed requests: the
    /// client authenticates as at the token endpoint, a DPoP proof is checked as there when the
    /// server [supports DPoP](Self::support_dpop) (and binds the code to its key), and the
    /// answer is a single-use `request_uri` that `/authorize` accepts with `client_id` alone,
    /// until it expires ([`par_request_uri_lifetime`](Self::par_request_uri_lifetime)). An
    /// expired one is redirected back with `invalid_request`; an unknown, used or foreign one
    /// gets an error page (`invalid_request`).
    pub fn require_par(mut self, require: bool) -> Self {
        self.par.require = require;
        self
    }

    /// Requires signed request objects (RFC 9101): the metadata then says
    /// `require_signed_request_object`, and an authorization request that does not come as one
    /// (by value at `/authorize`, or pushed to `/par`) is refused with `invalid_request`
    /// (redirected back from `/authorize` when the client and its redirect URI are known
    /// good). Default: `false`.
    ///
    /// Whatever this says, both endpoints take a request object in the `request` parameter,
    /// and only the parameters inside it count. It must be a JWT with `typ:
    /// oauth-authz-req+jwt`, signed with exactly the key and algorithm registered with
    /// [`client_key`](Self::client_key) (so only `private_key_jwt` clients can send one), with
    /// `iss` the client id, `aud` the [issuer](TestServer::url), `exp` ahead and `nbf` behind
    /// on the server's [clock](Self::clock) and at most an hour apart, a `jti` not seen
    /// before, no `request` or `request_uri` inside, the `client_id` outside (or at `/par` the
    /// authenticated client) inside too if named there, and any parameter repeated outside
    /// equal to its value inside. Anything else gets `invalid_request_object`: a 400 JSON
    /// error at `/par`; at `/authorize` a redirect back to the redirect URI it names (when the
    /// client may use it, with its `state`), or an error page when it is not even a JWT.
    /// Every request object is logged ([`TestServer::request_object_log`]). The metadata
    /// always says `request_parameter_supported` and lists the asymmetric algorithms in
    /// `request_object_signing_alg_values_supported`.
    pub fn require_request_object(mut self, require: bool) -> Self {
        self.request_objects.require = require;
        self
    }

    /// How long a pushed request's `request_uri` works, on the server's [clock](Self::clock)
    /// (default 60 s; answered as `expires_in`, at least 1).
    pub fn par_request_uri_lifetime(mut self, lifetime: Duration) -> Self {
        self.par.lifetime = lifetime;
        self
    }

    /// Whether every token request must carry a `resource` parameter ([RFC 8707]); one without
    /// gets 400 `invalid_target`. Default: `false`.
    ///
    /// Whatever this says, the authorization and token endpoints take `resource` (repeatable;
    /// each an absolute URI without a fragment, else `invalid_target`, redirected from the
    /// authorization endpoint). The tokens issued record the resources they are for
    /// ([`AccessTokenInfo::resources`]), which [declared resources](Self::protected_resource)
    /// check. An authorization code carries the resources of its authorization request; its
    /// token request, and a refresh, may name some of them to narrow the access token (one
    /// not authorized gets `invalid_target`), or none to keep them all. Every token request's
    /// values are logged in [`RecordedTokenRequest::resources`].
    ///
    /// [RFC 8707]: https://www.rfc-editor.org/rfc/rfc8707
    pub fn require_resource_indicator(mut self, require: bool) -> Self {
        self.require_resource_indicator = require;
        self
    }

    /// Declares a protected resource with RFC 9728 metadata on this server (see
    /// [`ProtectedResource`]); one with the same path replaces it. For a resource on another
    /// port, see [`ResourceServer`].
    ///
    /// ```no_run
    /// use oauth_layer::testing::{ProtectedResource, TestServer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = TestServer::builder()
    ///     .protected_resource(ProtectedResource::new("/mcp").scope("mcp:tools"))
    ///     .protected_resource(ProtectedResource::new("/other"))
    ///     .start()
    ///     .await?;
    /// let answer = reqwest::get(server.resource_url("/mcp")).await?;
    /// assert_eq!(answer.status(), 401);
    /// # Ok(()) }
    /// ```
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.protected_resources.add(resource);
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving on spawned tokio tasks. Fails with
    /// [`io::ErrorKind::InvalidInput`] when a client's secret does not fit its method, a
    /// `private_key_jwt` client has no usable public key (or a key was given for another
    /// client), an assertion issuer's key is not a usable public key, or a redirect URI belongs
    /// to no registered client or is not an absolute URI without a fragment.
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    pub async fn start(mut self) -> io::Result<TestServer> {
        if let Some(problem) = self.problems.first() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, problem.clone()));
        }
        #[cfg(feature = "jwt")]
        for (id, key) in std::mem::take(&mut self.client_keys) {
            let registration = self
                .clients
                .get_mut(&id)
                .filter(|r| r.method == AuthMethod::PrivateKeyJwt);
            let Some(registration) = registration else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("client_key of {id:?}: no private_key_jwt client has that id"),
                ));
            };
            registration.key = Some(key);
        }
        for (id, registration) in &self.clients {
            #[cfg(feature = "jwt")]
            if registration.method == AuthMethod::PrivateKeyJwt && registration.key.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("client {id:?}: private_key_jwt needs a client_key"),
                ));
            }
            let needs_secret = takes_secret(registration.method);
            if needs_secret != registration.secret.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "client {id:?}: {} {} a secret",
                        registration.method.as_str(),
                        if needs_secret { "needs" } else { "takes no" }
                    ),
                ));
            }
        }
        let mut redirect_uris: HashMap<String, Vec<String>> = HashMap::new();
        for (client_id, uri) in self.redirect_uris {
            let problem = if !self.clients.contains_key(&client_id) {
                Some("belongs to no registered client")
            } else if url::Url::parse(&uri).map_or(true, |u| u.fragment().is_some()) {
                Some("is not an absolute URI without a fragment")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("redirect URI {uri:?} of client {client_id:?} {problem}"),
                ));
            }
            let uris = redirect_uris.entry(client_id).or_default();
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(Config {
            clients: self.clients,
            users: self.users,
            access_token_lifetime: self.access_token_lifetime,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            issue_refresh_tokens: self.issue_refresh_tokens,
            required_scopes: self.required_scopes,
            clock: self.clock,
            issuer: format!("http://{addr}"),
            token_url: format!("http://{addr}/token"),
            #[cfg(feature = "jwt")]
            assertion_issuers: self.assertion_issuers,
            exchange_audiences: self.exchange_audiences,
            authorization_details_types: self.authorization_details_types,
            numbered_access_tokens: self.numbered_access_tokens,
            redirect_uris,
            require_pkce: self.require_pkce,
            send_iss: self.send_iss,
            default_user: self.default_user,
            device_code_lifetime: self.device_code_lifetime,
            device_interval: self.device_interval,
            enforce_slow_down: self.enforce_slow_down,
            support_dpop: self.support_dpop,
            require_dpop: self.require_dpop,
            require_dpop_nonce: self.require_dpop_nonce,
            require_resource_dpop_nonce: self.require_resource_dpop_nonce,
            dpop_nonce_uses: self.dpop_nonce_uses,
            dpop_iat_window: self.dpop_iat_window,
            required_authentication: self.required_authentication,
            required_claims: self.required_claims,
            registration: self.registration,
            require_resource_indicator: self.require_resource_indicator,
            protected_resources: self.protected_resources,
            par: self.par,
            request_objects: self.request_objects,
        }));
        let task = tokio::spawn(server::serve(
            listener,
            server::Site::Authorization(Arc::clone(&shared)),
        ));
        Ok(TestServer { addr, shared, task })
    }
}

impl fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clients: Vec<_> = self.clients.iter().map(|(id, r)| (id, r.method)).collect();
        clients.sort_by_key(|(id, _)| *id);
        let mut users: Vec<_> = self.users.keys().collect();
        users.sort();
        f.debug_struct("TestServerBuilder")
            .field("clients", &clients)
            .field("users", &users)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("issue_refresh_tokens", &self.issue_refresh_tokens)
            .field("required_scopes", &self.required_scopes)
            .field("clock", &self.clock)
            .field("redirect_uris", &self.redirect_uris)
            .field("require_pkce", &self.require_pkce)
            .field("send_iss", &self.send_iss)
            .field("default_user", &self.default_user)
            .field("device_code_lifetime", &self.device_code_lifetime)
            .field("device_interval", &self.device_interval)
            .field("enforce_slow_down", &self.enforce_slow_down)
            .field("exchange_audiences", &self.exchange_audiences)
            .field(
                "authorization_details_types",
                &self.authorization_details_types,
            )
            .field("numbered_access_tokens", &self.numbered_access_tokens)
            .field("support_dpop", &self.support_dpop)
            .field("require_dpop", &self.require_dpop)
            .field("require_dpop_nonce", &self.require_dpop_nonce)
            .field(
                "require_resource_dpop_nonce",
                &self.require_resource_dpop_nonce,
            )
            .field("dpop_nonce_uses", &self.dpop_nonce_uses)
            .field("dpop_iat_window", &self.dpop_iat_window)
            .field("required_authentication", &self.required_authentication)
            .field("required_claims", &self.required_claims)
            .field("registration", &self.registration)
            .field(
                "require_resource_indicator",
                &self.require_resource_indicator,
            )
            .field("protected_resources", &self.protected_resources)
            .field("par", &self.par)
            .field("request_objects", &self.request_objects)
            .finish_non_exhaustive()
    }
}

/// A request the protected resource received, as [`TestServer::resource_requests`] returns it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string, without the `?`.
    pub query: Option<String>,
    /// The first `Authorization` header, as sent (lossily decoded when not UTF-8).
    pub authorization: Option<String>,
    /// All headers, to check for example that exactly one `Authorization` header was sent.
    pub headers: HeaderMap,
    /// The body, complete.
    pub body: Bytes,
    /// The status the server answered with (200, 401, 403, 400).
    pub status: u16,
    /// The DPoP proof, when the request carried a DPoP-bound token with the `DPoP` scheme and
    /// a `DPoP` header; its `problem` says why it was refused.
    pub dpop: Option<RecordedProof>,
    /// The `WWW-Authenticate` challenge answered (the first, when there were several).
    pub challenge: Option<String>,
}

impl RecordedRequest {
    /// The bearer token the request carried, if its `Authorization` header was `Bearer ...`.
    pub fn bearer_token(&self) -> Option<&str> {
        let (scheme, token) = self.authorization.as_deref()?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The token the request carried, if its `Authorization` header was `DPoP ...`.
    pub fn dpop_token(&self) -> Option<&str> {
        let (scheme, token) = self.authorization.as_deref()?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("dpop").then(|| token.trim())
    }

    /// The scheme of the `Authorization` header (`Bearer`, `DPoP`, ...), as sent.
    pub fn scheme(&self) -> Option<&str> {
        let authorization = self.authorization.as_deref()?;
        Some(
            authorization
                .split_once(' ')
                .map_or(authorization, |(s, _)| s),
        )
    }
}

/// A DPoP proof as the server read it (without trusting it) and whether it passed, in
/// [`RecordedRequest::dpop`] and [`RecordedTokenRequest::dpop`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedProof {
    /// The header's `alg`.
    pub alg: Option<String>,
    /// The JWK SHA-256 thumbprint (RFC 7638) of the header's `jwk`.
    pub jkt: Option<String>,
    /// The `htm` claim.
    pub htm: Option<String>,
    /// The `htu` claim, as sent.
    pub htu: Option<String>,
    /// The `jti` claim.
    pub jti: Option<String>,
    /// The `ath` claim.
    pub ath: Option<String>,
    /// The `nonce` claim.
    pub nonce: Option<String>,
    /// The `iat` claim, in seconds since the epoch.
    pub iat: Option<u64>,
    /// Why the proof was refused, in words; `None` when it passed every check.
    pub problem: Option<String>,
}

impl RecordedProof {
    /// Whether the proof passed every check.
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }
}

/// A request the token endpoint received, as [`TestServer::token_request_log`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedTokenRequest {
    /// The `grant_type` parameter.
    pub grant_type: Option<String>,
    /// The DPoP proof; `None` when the request had no `DPoP` header.
    pub dpop: Option<RecordedProof>,
    /// The status the server answered with.
    pub status: u16,
    /// The `error` code of a refused request (`invalid_dpop_proof`, `use_dpop_nonce`, ...).
    pub error: Option<String>,
    /// The `token_type` issued (`DPoP` or `Bearer`) when the request succeeded.
    pub token_type: Option<String>,
    /// The `resource` parameters ([RFC 8707]) the request carried, in order; empty when none.
    ///
    /// [RFC 8707]: https://www.rfc-editor.org/rfc/rfc8707
    pub resources: Vec<String>,
}

/// A request the pushed authorization request endpoint received, as
/// [`TestServer::par_request_log`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedPushedRequest {
    /// The client it authenticated as; `None` when authentication failed or was not reached.
    pub client_id: Option<String>,
    /// The parameters pushed, in order, without the client's credentials (`client_secret`,
    /// `client_assertion`, `client_assertion_type`).
    pub params: Vec<(String, String)>,
    /// The DPoP proof; `None` when the request had no `DPoP` header or the server does not
    /// support DPoP.
    pub dpop: Option<RecordedProof>,
    /// The status the server answered with (201 for a stored request).
    pub status: u16,
    /// The `error` code of a refused request.
    pub error: Option<String>,
}

/// A signed request object (RFC 9101) as the server read it, in
/// [`TestServer::request_object_log`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequestObject {
    /// Where it came: [`RoundTripKind::Authorization`] (by value) or
    /// [`RoundTripKind::PushedAuthorization`].
    pub endpoint: RoundTripKind,
    /// The client it was checked for: the `client_id` outside it, or the authenticated client
    /// of a push.
    pub client_id: Option<String>,
    /// The header's `alg`.
    pub alg: Option<String>,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// Its claims, as sent (read before any check).
    pub claims: serde_json::Value,
    /// Why it was refused (`invalid_request_object`); `None` when it passed every check.
    pub problem: Option<String>,
}

impl RecordedPushedRequest {
    /// The first value of the parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server knows about an access token it issued, from
/// [`TestServer::access_token_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessTokenInfo {
    /// The client it was issued to.
    pub client_id: String,
    /// The user it was issued for, if any.
    pub username: Option<String>,
    /// Its scope.
    pub scope: Option<String>,
    /// The thumbprint of the DPoP key it is bound to (`cnf.jkt`); `None` for a bearer token.
    pub jkt: Option<String>,
    /// The authentication context class of the sign-in (RFC 9470), from `acr_values`.
    pub acr: Option<String>,
    /// The `claims` parameter it was requested with, as compact JSON.
    pub claims: Option<String>,
    /// The resources ([RFC 8707]) it was issued for: the `resource` parameters of its token
    /// request, or of the authorization request behind it; empty when none was named.
    ///
    /// [RFC 8707]: https://www.rfc-editor.org/rfc/rfc8707
    pub resources: Vec<String>,
    /// The `authorization_details` ([RFC 9396]) it was issued for, as compact JSON: those of
    /// its token request, or of the authorization request behind it.
    ///
    /// [RFC 9396]: https://www.rfc-editor.org/rfc/rfc9396
    pub authorization_details: Option<String>,
}

/// Who may register clients at the [`TestServer`]'s registration endpoint; see
/// [`TestServerBuilder::registration`].
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RegistrationPolicy {
    /// No registration endpoint (the default).
    #[default]
    Closed,
    /// Anyone may register, without credentials (the MCP case).
    Open,
    /// A registration request must carry this initial access token ([RFC 7591 §3]) as
    /// `Authorization: Bearer`; without it, or with another, it gets 401 `invalid_token`.
    ///
    /// [RFC 7591 §3]: https://www.rfc-editor.org/rfc/rfc7591#section-3
    InitialAccessToken(String),
}

impl fmt::Debug for RegistrationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("Closed"),
            Self::Open => f.write_str("Open"),
            Self::InitialAccessToken(_) => f.write_str("InitialAccessToken([redacted])"),
        }
    }
}

/// One request a [`TestServer`] (or a [`ResourceServer`] trusting it) answered, as
/// [`TestServer::round_trips`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundTrip {
    /// What the request was.
    pub kind: RoundTripKind,
    /// The base URL of the server that answered, `http://127.0.0.1:PORT`.
    pub origin: String,
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// What a [`RoundTrip`] was, by the endpoint it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoundTripKind {
    /// A protected resource: a path under `/api/` or of a [declared resource](ProtectedResource);
    /// the status tells a challenge (401) from a success.
    Resource,
    /// A protected resource metadata document (RFC 9728), at
    /// `/.well-known/oauth-protected-resource...`.
    ResourceMetadata,
    /// The authorization server metadata (RFC 8414 or OpenID Connect discovery).
    ServerMetadata,
    /// `POST /register` (RFC 7591).
    Registration,
    /// `/register/<client_id>` (RFC 7592).
    ClientConfiguration,
    /// `/authorize`.
    Authorization,
    /// `/token`.
    Token,
    /// `/revoke`.
    Revocation,
    /// `/device_authorization`.
    DeviceAuthorization,
    /// `/device`, the verification page.
    DeviceVerification,
    /// `/par`, the pushed authorization request endpoint (RFC 9126).
    PushedAuthorization,
    /// Anything else (answered 404, or refused before it was read).
    Other,
}

/// `base` and `path`, with a `/` between them when `path` has none.
fn join(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// Whether a client authenticating with `method` has a secret.
pub(crate) fn takes_secret(method: AuthMethod) -> bool {
    match method {
        AuthMethod::None | AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => false,
        #[cfg(feature = "jwt")]
        AuthMethod::PrivateKeyJwt => false,
        _ => true,
    }
}

/// Lets the server hand its own clock to an [`OAuthClient`].
#[derive(Debug)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> Instant {
        self.0.now()
    }

    fn now_utc(&self) -> SystemTime {
        self.0.now_utc()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.0.sleep(duration)
    }
}
