//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636), for command-line tools,
//! desktop apps and notebooks on hosted servers (httr2's `req_oauth_auth_code()`).
//!
//! A sign-in has two steps, both public so you can run them yourself:
//! [`AuthCode::authorization_request`] builds the URL (with a fresh `state`, PKCE S256 and, for
//! OpenID Connect, a `nonce`), and [`AuthCode::exchange`] trades the code a callback carried
//! for a token. As a [`Flow`], `AuthCode` does both, receiving the code in one of four ways:
//!
//! - [`LoopbackReceiver`] (the default): a one-shot HTTP server on `127.0.0.1` that the browser
//!   is redirected to;
//! - [`PasteReceiver`]: the person pastes the address the browser ended on, for remote shells
//!   and machines whose browser cannot reach us;
//! - [`HostedReceiver`]: a hosted platform's redirect page stores the code and we poll its code
//!   source (chosen automatically when `OAUTH_LAYER_REDIRECT_URL` and
//!   `OAUTH_LAYER_CODE_SOURCE_URL` are set);
//! - your own [`CodeReceiver`], such as [`callback_channel`] for web apps that handle the
//!   callback themselves.
//!
//! What comes back is a [`ReceivedCode`]: the one-time code, checked against its
//! [`AuthorizationRequest`] (state, `iss`, repeated parameters, `error=`).
//!
//! Two deadlines bound a sign-in: [`AuthCode::timeout`] (default 5 minutes) is how long the
//! person has to finish in the browser, and [`AuthCode::exchange_timeout`] (default 60 s) is how
//! long the code exchange with the token endpoint may take after that. The page the browser
//! shows at the end names the app and says what to do next: [`LoopbackPages`], set with
//! [`AuthCode::pages`].

mod callback;
mod channel;
mod hosted;
#[cfg(feature = "jwt")]
mod jar;
#[cfg(feature = "jwt")]
mod jarm;
mod loopback;
mod pages;
mod par;
mod paste;
mod receiver;
mod request;

pub(crate) use callback::CallbackCheck;
pub use callback::{Callback, ReceivedCode};
pub use channel::{CallbackSender, ChannelReceiver, callback_channel};
pub use hosted::HostedReceiver;
pub use loopback::LoopbackReceiver;
pub use pages::LoopbackPages;
pub use paste::PasteReceiver;
pub use receiver::{CodeReceiver, PreparedReceiver, ReceiveContext};
pub use request::AuthorizationRequest;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::authorization_details::AuthorizationDetails;
use super::requirements::replace_param;
use super::{AuthorizationDetail, Flow, Requirements, Scopes, refuse_owned_params};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::{Error, Result};
use crate::interact::{Browser, Prompt, Terminal, open_in_background};
use crate::store::CacheKey;
use crate::token::Token;
use loopback::describe;

/// How long the person has to sign in in the browser by default: the wait for the callback
/// ([`AuthCode::timeout`]).
pub const DEFAULT_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the code exchange after the callback may take by default
/// ([`AuthCode::exchange_timeout`]): the token request, and the ID token check with its key
/// download when one is asked for.
pub const DEFAULT_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which way the code comes back.
#[derive(Debug, Clone)]
enum Receiver {
    /// Hosted polling when its variables are set; else the loopback server, falling back to
    /// pasting when no browser can be opened.
    Auto,
    Custom(Arc<dyn CodeReceiver>),
}

/// The authorization code grant with PKCE. See the [module docs](self).
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::AuthCode};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-desktop-app")
///     .authorization_url("https://idp.example/authorize")
///     .token_url("https://idp.example/token")
///     .build()?;
/// let tokens = TokenSource::new(client, AuthCode::new().scope("openid profile"));
/// let token = tokens.token().await?; // opens the browser once; refresh tokens do the rest
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthCode {
    scopes: Scopes,
    authorization_details: AuthorizationDetails,
    redirect_uri: Option<String>,
    pkce: bool,
    require_iss: bool,
    auth_params: Vec<(String, String)>,
    token_params: Vec<(String, String)>,
    /// Pushed authorization requests: `None` follows the server's metadata.
    par: Option<bool>,
    /// Signed request objects (RFC 9101): `None` follows the server's metadata.
    request_object: Option<bool>,
    callback_check: Option<CallbackCheck>,
    refused: Option<String>,
    receiver: Receiver,
    browser: Arc<dyn Browser>,
    prompt: Arc<dyn Prompt>,
    timeout: Duration,
    exchange_timeout: Duration,
    pages: Arc<LoopbackPages>,
    #[cfg(feature = "jwt")]
    id_tokens: IdTokens,
    #[cfg(feature = "jwt")]
    id_token_issuer_aliases: Vec<String>,
    /// Signed authorization responses (JARM), and whether HS256 with the client secret is
    /// accepted for them.
    #[cfg(feature = "jwt")]
    jarm: Jarm,
}

/// Whether the authorization response is asked for signed (JARM), and how it may be signed.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone, Copy, Default)]
struct Jarm {
    /// `None` follows the client's profile (FAPI 2.0 Message Signing asks for it).
    on: Option<bool>,
    client_secret_hs256: bool,
}

/// Whether and how ID tokens are validated after the code exchange.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone, Default)]
enum IdTokens {
    #[default]
    Unchecked,
    /// With a validator built from the client's discovery metadata on first use, then kept.
    FromMetadata(Arc<std::sync::OnceLock<crate::oidc::IdTokenValidator>>),
    With(crate::oidc::IdTokenValidator),
}

impl Default for AuthCode {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthCode {
    /// The grant with PKCE S256, the automatic receiver choice, the system browser and the
    /// terminal.
    pub fn new() -> Self {
        Self {
            scopes: Scopes::default(),
            authorization_details: AuthorizationDetails::default(),
            redirect_uri: None,
            pkce: true,
            require_iss: false,
            auth_params: Vec::new(),
            token_params: Vec::new(),
            par: None,
            request_object: None,
            callback_check: None,
            refused: None,
            receiver: Receiver::Auto,
            browser: Arc::new(crate::interact::SystemBrowser),
            prompt: Arc::new(Terminal),
            timeout: DEFAULT_SIGN_IN_TIMEOUT,
            exchange_timeout: DEFAULT_EXCHANGE_TIMEOUT,
            pages: Arc::new(LoopbackPages::new()),
            #[cfg(feature = "jwt")]
            id_tokens: IdTokens::Unchecked,
            #[cfg(feature = "jwt")]
            id_token_issuer_aliases: Vec::new(),
            #[cfg(feature = "jwt")]
            jarm: Jarm::default(),
        }
    }

    /// Ask for a signed authorization response (JARM, OpenID "JWT Secured Authorization
    /// Response Mode for OAuth 2.0"): the request carries `response_mode=jwt` (or `query.jwt`
    /// for a server that lists only that), and the server answers with one `response` JWT that
    /// holds the `code`, `state` and `iss` (or the `error`). The answer is then authenticated by
    /// the server's signature, not only by the browser's redirect.
    ///
    /// The JWT is checked like an ID token: a signature by a key from the server's `jwks_uri`
    /// with an asymmetric algorithm (never `none`, never HS256 unless
    /// [`jarm_allow_client_secret_hs256`](Self::jarm_allow_client_secret_hs256)), among the
    /// server's `authorization_signing_alg_values_supported` when it lists them; `iss` the
    /// issuer, `aud` this client, `exp` not passed (one minute of leeway). Then the `state`,
    /// `code` and `error` inside it go through the checks of a plain response
    /// ([`AuthorizationRequest::check`]). A callback with two `response` parameters, or plain
    /// `code`/`state`/`iss`/`error` next to it, is refused.
    ///
    /// Needs a client with the server's metadata ([`discovery::configure`]) for its issuer and
    /// keys; the keys are fetched when the sign-in starts, so the request is made by
    /// [`authorization_request_pushed`](Self::authorization_request_pushed) (the synchronous
    /// [`authorization_request`](Self::authorization_request) refuses). A response signed with
    /// a key the server published after that (a rotation during the sign-in) is refused: sign
    /// in again. Fails with [`Error::Config`] before anything is sent when the metadata lists
    /// `response_modes_supported` without `jwt` or `query.jwt`, when the server signs only with
    /// algorithms refused here, or with the hosted receiver.
    ///
    /// Receivers: the loopback server, pasting and [`callback_channel`] (your web app passes the
    /// query) read the response from the redirect URI's query, which is where `jwt` puts it for
    /// the code flow. The [`HostedReceiver`] cannot (its redirect page stores plain codes by
    /// state). `fragment.jwt` and `form_post.jwt` are not offered: no built-in receiver sees a
    /// fragment or takes a POST.
    ///
    /// On by default for a client under
    /// [`Profile::Fapi2MessageSigning`](crate::profile::Profile::Fapi2MessageSigning), which
    /// accepts only its own algorithms (PS256, ES256, EdDSA) and refuses `jarm(false)` and a
    /// server whose metadata cannot sign responses when the source is built.
    ///
    /// [`discovery::configure`]: crate::discovery::configure
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, discovery, flow::AuthCode};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let client =
    ///     discovery::configure(OAuthClient::builder("my-app"), "https://idp.example").await?;
    /// let tokens = TokenSource::new(client, AuthCode::new().scope("openid").jarm(true));
    /// let token = tokens.token().await?;
    /// # let _ = token; Ok(()) }
    /// ```
    #[cfg(feature = "jwt")]
    pub fn jarm(mut self, signed: bool) -> Self {
        self.jarm.on = Some(signed);
        self
    }

    /// With [`jarm`](Self::jarm), also accept responses signed with HS256 keyed by the client
    /// secret (JARM §2.2, as OIDC Core §10.1 allows for ID tokens). Off by default: anyone who
    /// knows the secret could then sign a response.
    #[cfg(feature = "jwt")]
    pub fn jarm_allow_client_secret_hs256(mut self, allowed: bool) -> Self {
        self.jarm.client_secret_hs256 = allowed;
        self
    }

    /// Whether the sign-in with `client` asks for a signed authorization response: as set with
    /// [`jarm`](Self::jarm), else when the client's profile signs messages (FAPI 2.0 Message
    /// Signing).
    #[cfg(feature = "jwt")]
    pub(crate) fn signs_responses(&self, client: &OAuthClient) -> bool {
        self.jarm
            .on
            .unwrap_or_else(|| client.profile().is_some_and(|p| p.signs_messages()))
    }

    /// Validate the ID token that comes with the tokens (SECURITY.md rule 44): signature with
    /// the issuer's keys from its discovered `jwks_uri`, `iss`, `aud`, `exp`, `iat` and the
    /// sign-in's `nonce`. Needs a client made by
    /// [`discovery::configure`](crate::discovery::configure); the sign-in fails with
    /// [`Error::InvalidIdToken`] when the token is missing or invalid. On for the OpenID Connect
    /// presets.
    #[cfg(feature = "jwt")]
    pub fn validate_id_token(mut self, validate: bool) -> Self {
        self.id_tokens = if validate {
            IdTokens::FromMetadata(Arc::default())
        } else {
            IdTokens::Unchecked
        };
        self
    }

    /// With [`validate_id_token`](Self::validate_id_token), also accept ID tokens whose `iss` is
    /// `alias`, another spelling of the discovered issuer that it documents (see
    /// [`IdTokenValidator::also_accept_issuer`](crate::oidc::IdTokenValidator::also_accept_issuer)).
    #[cfg(feature = "jwt")]
    pub fn accept_id_token_issuer(mut self, alias: impl Into<String>) -> Self {
        self.id_token_issuer_aliases.push(alias.into());
        if matches!(self.id_tokens, IdTokens::FromMetadata(_)) {
            // A validator built before (and shared with clones) did not know the alias.
            self.id_tokens = IdTokens::FromMetadata(Arc::default());
        }
        self
    }

    /// Validate ID tokens with this validator (for issuers configured by hand).
    #[cfg(feature = "jwt")]
    pub fn id_token_validator(mut self, validator: crate::oidc::IdTokenValidator) -> Self {
        self.id_tokens = IdTokens::With(validator);
        self
    }

    #[cfg(feature = "jwt")]
    async fn check_id_token(
        &self,
        client: &OAuthClient,
        request: &AuthorizationRequest,
        token: &Token,
    ) -> Result<()> {
        use secrecy::ExposeSecret;
        let validator = match &self.id_tokens {
            IdTokens::Unchecked => return Ok(()),
            IdTokens::With(v) => v.clone(),
            IdTokens::FromMetadata(cell) => match cell.get() {
                Some(v) => v.clone(),
                None => {
                    let metadata = client.metadata().ok_or_else(|| {
                        Error::config("ID token validation needs a client made by discover()")
                    })?;
                    let jwks_uri = metadata.jwks_uri.as_ref().ok_or_else(|| {
                        Error::config("the issuer's metadata has no jwks_uri to validate ID tokens")
                    })?;
                    let v = self.id_token_issuer_aliases.iter().fold(
                        crate::oidc::IdTokenValidator::new(
                            client,
                            metadata.issuer.clone(),
                            jwks_uri.as_str(),
                        )?,
                        |v, alias| v.also_accept_issuer(alias.clone()),
                    );
                    cell.get_or_init(|| v).clone()
                }
            },
        };
        let id_token = token.id_token().ok_or_else(|| {
            Error::InvalidIdToken("the token response carries no id_token".into())
        })?;
        validator
            .validate(id_token.expose_secret(), request.nonce())
            .await
            .map(drop)
    }

    /// Requests a scope (space-separated scopes are split). With `openid`, a `nonce` is sent.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// The redirect URI set with [`redirect_uri`](Self::redirect_uri), if any.
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn configured_redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The redirect URI, for example `http://127.0.0.1:1410/callback` for a provider that wants
    /// a fixed port. By default the loopback receiver picks a free port.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// PKCE S256 is on by default; turn it off only for a server that rejects it.
    ///
    /// Without PKCE only the `state` ties the answer to this sign-in, so a receiver that
    /// accepts answers without a state ([`PasteReceiver::accept_bare_code`]) is refused: the
    /// sign-in fails with [`Error::Config`] before any browser opens.
    pub fn pkce(mut self, enabled: bool) -> Self {
        self.pkce = enabled;
        self
    }

    /// Require the `iss` authorization response parameter (RFC 9207), as servers whose metadata
    /// says `authorization_response_iss_parameter_supported` send it.
    pub fn require_iss(mut self, required: bool) -> Self {
        self.require_iss = required;
        self
    }

    /// Push the authorization parameters to the server's pushed authorization request endpoint
    /// (RFC 9126) before the browser opens, so that the browser carries only `client_id` and
    /// the `request_uri` the server hands back.
    ///
    /// By default the sign-in pushes when the client's metadata says
    /// `require_pushed_authorization_requests`. `par(true)` pushes whatever the metadata says
    /// (the client needs a [`par_url`](crate::OAuthClient::par_url)); `par(false)` against a
    /// server that requires pushing fails with [`Error::Config`] before anything is sent.
    ///
    /// The push carries the client's authentication, as the token endpoint gets it, and a DPoP
    /// proof when the client uses DPoP. The sign-in must reach the authorization endpoint
    /// before the request URI expires (the server's `expires_in`): the sign-in
    /// [`timeout`](Self::timeout) is capped by it, and a sign-in that outlives it fails with
    /// [`Error::Timeout`] saying so; sign in again.
    ///
    /// A pushed request needs a round trip, so it is built by
    /// [`authorization_request_pushed`](Self::authorization_request_pushed); the synchronous
    /// [`authorization_request`](Self::authorization_request) refuses to build one.
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, flow::AuthCode};
    ///
    /// let client = OAuthClient::builder("my-app")
    ///     .authorization_url("https://idp.example/authorize")
    ///     .par_url("https://idp.example/par")
    ///     .token_url("https://idp.example/token")
    ///     .build()?;
    /// let flow = AuthCode::new().scope("openid").par(true);
    /// assert!(flow.authorization_request(&client, "http://127.0.0.1:1410/").is_err());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn par(mut self, push: bool) -> Self {
        self.par = Some(push);
        self
    }

    /// Whether this sign-in pushes its parameters with `client` (see [`par`](Self::par)).
    fn pushes(&self, client: &OAuthClient) -> Result<bool> {
        self.check_profile(client)?;
        // A profile (FAPI 2.0) pushes every request, whatever the metadata says.
        let required = client.profile().is_some()
            || client
                .metadata()
                .is_some_and(|m| m.require_pushed_authorization_requests);
        match self.par {
            Some(false) if required => Err(Error::config(
                "the server requires pushed authorization requests \
                 (require_pushed_authorization_requests), but the flow was set to par(false)",
            )),
            Some(push) => Ok(push),
            None => Ok(required),
        }
    }

    /// Send the authorization parameters as a signed request object (RFC 9101, JAR): a JWT
    /// signed with the client's [`signing_key`](crate::OAuthClientBuilder::signing_key), whose
    /// claims are every parameter the request would carry (`response_type`, `client_id`,
    /// `redirect_uri`, `scope`, `state`, the PKCE challenge, `nonce`, `authorization_details`
    /// as JSON, `dpop_jkt`, `resource`, the [`auth_param`](Self::auth_param)s), plus `iss`
    /// (the client id), `aud` (the issuer), `iat`, `nbf`, `exp` (five minutes later at most)
    /// and a random `jti`, with `typ: oauth-authz-req+jwt` and the key's `kid` in its header.
    /// Nobody on the way can read it back into another request or change a parameter, and the
    /// server knows it comes from the client.
    ///
    /// By value, the authorization URL carries `client_id` and `request` only (and for OpenID
    /// Connect, whose rules want them outside too, `response_type` and `scope` with the values
    /// inside). With [`par`](Self::par) (or a server that requires pushing) the request object
    /// is pushed instead, and the URL carries `client_id` and `request_uri`.
    ///
    /// By default the sign-in signs when the client's metadata says
    /// `require_signed_request_object`, and always under
    /// [`Profile::Fapi2MessageSigning`](crate::profile::Profile::Fapi2MessageSigning) (whose
    /// request objects, like every JWT under a profile, live a minute). It fails with [`Error::Config`] before anything is
    /// sent when the client has no signing key or an HS256 one (a request object needs an
    /// asymmetric key), has no [issuer](crate::OAuthClientBuilder::issuer) to address it to,
    /// when the server's `request_object_signing_alg_values_supported` leaves out the key's
    /// algorithm, when the server says `request_parameter_supported: false` and the request
    /// would go by value, and for `request_object(false)` against a server or a profile that
    /// requires request objects. A server that refuses the request object answers
    /// `invalid_request_object`: [`Error::Server`] from a push, [`Error::AuthorizationDenied`]
    /// from the authorization endpoint.
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, flow::AuthCode, jwt::SigningKey};
    ///
    /// # fn run(pem: &[u8]) -> oauth_layer::Result<()> {
    /// let client = OAuthClient::builder("my-app")
    ///     .issuer("https://idp.example")
    ///     .authorization_url("https://idp.example/authorize")
    ///     .token_url("https://idp.example/token")
    ///     .signing_key(SigningKey::es256_pem(pem)?.kid("2026-01"))
    ///     .build()?;
    /// let flow = AuthCode::new().scope("payments").request_object(true);
    /// let request = flow.authorization_request(&client, "http://127.0.0.1:1410/")?;
    /// let names: Vec<_> = request.url().query_pairs().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["client_id", "request"]);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jwt")]
    pub fn request_object(mut self, sign: bool) -> Self {
        self.request_object = Some(sign);
        self
    }

    /// Whether this sign-in sends a signed request object with `client` (see
    /// [`request_object`](Self::request_object)): asked for, or required by the metadata or by
    /// the FAPI 2.0 Message Signing profile.
    fn signs(&self, client: &OAuthClient) -> Result<bool> {
        self.check_profile(client)?;
        let required = client.profile().is_some_and(|p| p.signs_messages())
            || client
                .metadata()
                .is_some_and(|m| m.require_signed_request_object);
        match self.request_object {
            Some(false) if required => Err(Error::config(
                "the server requires signed request objects (require_signed_request_object), \
                 but the flow was set to request_object(false)",
            )),
            #[cfg(not(feature = "jwt"))]
            None if required => Err(Error::config(
                "the server requires signed request objects (require_signed_request_object), \
                 which need the jwt feature of oauth-layer",
            )),
            Some(sign) => Ok(sign),
            None => Ok(required),
        }
    }

    /// `request` with `params` in its URL, signed into a request object when request objects
    /// are on.
    fn seal(
        &self,
        client: &OAuthClient,
        params: Vec<(String, String)>,
        request: AuthorizationRequest,
        pushed: bool,
    ) -> Result<AuthorizationRequest> {
        let (params, request_object) = self.sealed(client, params, pushed)?;
        let mut request = request.with_query(params);
        request.request_object = request_object;
        Ok(request)
    }

    /// The authorization parameters as they leave: unchanged, or (with request objects on)
    /// signed into one for delivery by value or by push, after the checks of
    /// [`request_object`](Self::request_object); and the request object.
    fn sealed(
        &self,
        client: &OAuthClient,
        params: Vec<(String, String)>,
        pushed: bool,
    ) -> Result<(Params, Option<SecretString>)> {
        if !self.signs(client)? {
            return Ok((params, None));
        }
        #[cfg(feature = "jwt")]
        {
            let delivery = if pushed {
                jar::Delivery::Pushed
            } else {
                jar::Delivery::ByValue
            };
            let signer = jar::Signer::new(client, delivery)?;
            let request_object = signer.sign(client, &params)?;
            let params = if pushed {
                vec![
                    ("client_id".to_owned(), client.client_id().to_owned()),
                    (
                        "request".to_owned(),
                        secrecy::ExposeSecret::expose_secret(&request_object).to_owned(),
                    ),
                ]
            } else {
                jar::by_value(&params, &request_object)
            };
            Ok((params, Some(request_object)))
        }
        #[cfg(not(feature = "jwt"))]
        {
            let _ = pushed;
            Err(Error::Internal(
                "request objects without the jwt feature".into(),
            ))
        }
    }

    /// Checks this sign-in against the client's security [profile](crate::profile): FAPI 2.0
    /// needs PKCE and pushed requests, and takes no `response_mode` of the caller's (the
    /// implicit and hybrid flows' fragment and form modes are its business, not the caller's).
    fn check_profile(&self, client: &OAuthClient) -> Result<()> {
        let Some(profile) = client.profile() else {
            return Ok(());
        };
        if !self.pkce {
            return Err(profile.violation(
                "requires PKCE, and the flow was set to pkce(false)",
                "without PKCE a stolen authorization code can be redeemed by whoever holds it \
                 (FAPI 2.0 §5.3.2.2)",
            ));
        }
        if self.par == Some(false) {
            return Err(profile.violation(
                "requires pushed authorization requests, and the flow was set to par(false)",
                "parameters in the browser's URL can be read and changed on the way \
                 (FAPI 2.0 §5.3.2.2)",
            ));
        }
        if client.par_url().is_none() {
            return Err(profile.violation(
                "requires pushed authorization requests, and the client has no \
                 pushed_authorization_request_endpoint",
                "configure it with OAuthClientBuilder::par_url, or from the server's metadata \
                 (FAPI 2.0 §5.3.2.2)",
            ));
        }
        if client.issuer().is_none() {
            return Err(profile.violation(
                "requires the iss authorization response parameter, and the client has no \
                 issuer to compare it with",
                "iss is what tells a mix-up attack apart from a real answer (RFC 9207, FAPI 2.0 \
                 §5.3.2.2). Configure the issuer (OAuthClientBuilder::issuer, or discovery)",
            ));
        }
        let named = |wanted: &str| {
            self.auth_params
                .iter()
                .any(|(name, _)| name.trim().eq_ignore_ascii_case(wanted))
        };
        if profile.signs_messages() && self.request_object == Some(false) {
            return Err(profile.violation(
                "requires signed request objects, and the flow was set to request_object(false)",
                "an unsigned request cannot show that its parameters come from the client \
                 unchanged (FAPI 2.0 Message Signing §5.3.1)",
            ));
        }
        if named("response_mode") {
            return Err(profile.violation(
                "sets the response mode itself, and the flow was given a response_mode",
                "the fragment and form_post modes belong to the implicit and hybrid flows, which \
                 FAPI 2.0 forbids (§5.3.2.2)",
            ));
        }
        #[cfg(feature = "jwt")]
        if profile.signs_messages() {
            if !self.signs_responses(client) {
                return Err(profile.violation(
                    "requires signed authorization responses (JARM), and the flow was set to \
                     jarm(false)",
                    "an unsigned response is authenticated only by the browser's redirect \
                     (FAPI 2.0 Message Signing)",
                ));
            }
            // The server's metadata must allow it: refused now rather than at sign-in.
            jarm::response_mode(client, self.jarm.client_secret_hs256)?;
        }
        Ok(())
    }

    /// An extra authorization request parameter (httr2's `auth_params`), such as
    /// `prompt=consent` or `access_type=offline`.
    ///
    /// The parameters the flow sends itself cannot be added here: `response_type`,
    /// `client_id`, `redirect_uri`, `state`, `code_challenge`, `code_challenge_method`,
    /// `nonce`, `request`, `request_uri`, and `scope` when the flow has scopes of its own. A
    /// second copy would let a server that takes the last value replace the flow's own (a
    /// foreign `state`, `code_challenge_method=plain`): [`authorization_request`]
    /// (and with it the sign-in, before any browser opens) fails with [`Error::Config`] naming
    /// the parameter. Names are compared ignoring case and surrounding spaces.
    ///
    /// [`authorization_request`]: Self::authorization_request
    pub fn auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.auth_params.push((name.into(), value.into()));
        self
    }

    /// An extra token request parameter (httr2's `token_params`), such as a `resource`.
    ///
    /// The parameters the flow and the client send themselves cannot be added here:
    /// `grant_type`, `code`, `redirect_uri`, `code_verifier`, `client_id`, `client_secret`,
    /// `client_assertion` and `client_assertion_type`. Such a name makes
    /// [`authorization_request`](Self::authorization_request) (so the sign-in fails before
    /// any browser opens) and [`exchange`](Self::exchange) fail with [`Error::Config`].
    pub fn token_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.token_params.push((name.into(), value.into()));
        self
    }

    /// An authorization detail (RFC 9396) sent in `authorization_details` on the authorization
    /// request, for what a scope cannot say ("this payment", "these accounts"); call it again
    /// for several. Part of the cache key, so tokens for different details are never shared,
    /// and checked against the server's `authorization_details_types_supported` before the
    /// browser opens. What the server granted is on
    /// [`Token::authorization_details`](crate::Token::authorization_details).
    ///
    /// ```
    /// use oauth_layer::flow::{AuthCode, AuthorizationDetail};
    /// use serde_json::json;
    ///
    /// let flow = AuthCode::new().authorization_detail(
    ///     AuthorizationDetail::new("payment_initiation")
    ///         .action("initiate")
    ///         .field("instructedAmount", json!({ "currency": "EUR", "amount": "123.50" })),
    /// );
    /// # let _ = flow;
    /// ```
    pub fn authorization_detail(mut self, detail: AuthorizationDetail) -> Self {
        self.authorization_details.push(detail);
        self
    }

    /// Receive the code with the loopback server (no fallback to pasting).
    pub fn loopback(self) -> Self {
        self.receiver(LoopbackReceiver::new())
    }

    /// Receive the code by having the person paste the address the browser ended on.
    pub fn paste(self) -> Self {
        self.receiver(PasteReceiver::new())
    }

    /// Receive the code with this receiver (hosted polling, a web app's own callback...).
    pub fn receiver(mut self, receiver: impl CodeReceiver) -> Self {
        self.receiver = Receiver::Custom(Arc::new(receiver));
        self
    }

    /// The browser to open the authorization URL with (default: the system's, honouring
    /// `$BROWSER`).
    pub fn browser(mut self, browser: impl Browser) -> Self {
        self.browser = Arc::new(browser);
        self
    }

    /// How to talk to the person (default: the terminal).
    pub fn prompt(mut self, prompt: impl Prompt) -> Self {
        self.prompt = Arc::new(prompt);
        self
    }

    /// How long the person has to sign in: the wait for the browser's answer (the callback,
    /// a pasted address, a hosted code), from the moment the receiver is ready (default 5
    /// minutes). Past it the sign-in fails with [`Error::Timeout`] and the loopback port
    /// closes.
    ///
    /// It does not cover the code exchange that follows the answer: that has its own deadline,
    /// [`exchange_timeout`](Self::exchange_timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the code exchange after the answer may take (default 60 s): the token
    /// request (also bound by the client's own per-request timeout), and the ID token check with its key download when
    /// [`validate_id_token`](Self::validate_id_token) is on. Past it the sign-in fails with
    /// [`Error::Timeout`]; the code is not sent again (it may have been used), so the person
    /// signs in again.
    ///
    /// The wait for the person before it is [`timeout`](Self::timeout).
    pub fn exchange_timeout(mut self, timeout: Duration) -> Self {
        self.exchange_timeout = timeout;
        self
    }

    /// What the loopback server shows in the browser when the sign-in comes back: the app's
    /// name and what to do next (see [`LoopbackPages`]). Used by every loopback receiver
    /// this flow runs, the default one and one given to [`receiver`](Self::receiver).
    pub fn pages(mut self, pages: LoopbackPages) -> Self {
        self.pages = Arc::new(pages);
        self
    }

    /// Checks every answer to the sign-in with `check` too, once its `state` is known to be
    /// ours and before its code is accepted (a provider's signature on the callback). A
    /// receiver ignores an answer `check` refuses, as it does one with a foreign state.
    pub(crate) fn check_callback(mut self, check: CallbackCheck) -> Self {
        self.callback_check = Some(check);
        self
    }

    /// Makes every sign-in fail with [`Error::Config`] and `reason` before anything is sent (a
    /// preset whose own settings cannot make a safe sign-in).
    pub(crate) fn refuse(mut self, reason: impl Into<String>) -> Self {
        self.refused = Some(reason.into());
        self
    }

    /// The configuration errors a sign-in must stop at before anything is sent.
    fn check_configuration(&self) -> Result<()> {
        if let Some(reason) = &self.refused {
            return Err(Error::config(reason.clone()));
        }
        let mut owned: Vec<&str> = AUTHORIZATION_PARAMS.to_vec();
        if !self.scopes.joined().is_empty() {
            owned.push("scope");
        }
        if self.authorization_details.parameter().is_some() {
            owned.push("authorization_details");
        }
        #[cfg(feature = "jwt")]
        if self.jarm.on == Some(true) {
            owned.push("response_mode");
        }
        refuse_owned_params("auth_param", &self.auth_params, &owned)?;
        refuse_owned_params("token_param", &self.token_params, TOKEN_PARAMS)
    }

    /// Step one: the authorization request for `redirect_uri`, with a fresh `state` (256 bits),
    /// PKCE S256 verifier and, when `openid` is requested, a `nonce`, every parameter in the
    /// URL, or with [`request_object`](Self::request_object) signed into the request object
    /// the URL carries.
    ///
    /// Fails with [`Error::Config`] when an [`auth_param`](Self::auth_param) or
    /// [`token_param`](Self::token_param) names a parameter the flow sends itself, when a
    /// request object cannot be made (see [`request_object`](Self::request_object)), and when the
    /// request must be pushed ([`par`](Self::par), or a server that requires it): use
    /// [`authorization_request_pushed`](Self::authorization_request_pushed) then.
    pub fn authorization_request(
        &self,
        client: &OAuthClient,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest> {
        self.check_configuration()?;
        if self.pushes(client)? {
            return Err(Error::config(
                "this authorization request must be pushed (RFC 9126), which takes a round trip: \
                 use AuthCode::authorization_request_pushed",
            ));
        }
        #[cfg(feature = "jwt")]
        if self.signs_responses(client) {
            return Err(Error::config(
                "a sign-in with signed responses (JARM) fetches the server's keys first, which \
                 takes a round trip: use AuthCode::authorization_request_pushed",
            ));
        }
        let (params, request) = self.new_request(client, redirect_uri)?;
        self.seal(client, params, request, false)
    }

    /// Step one, pushing when pushed authorization requests are on ([`par`](Self::par), or a
    /// server whose metadata requires them): the parameters go to the server's pushed
    /// authorization request endpoint with client authentication, and the URL carries only
    /// `client_id` and `request_uri` (with [`request_object`](Self::request_object), the push
    /// carries the signed request object). When they are off, the same request as
    /// [`authorization_request`](Self::authorization_request). This is what the sign-in of
    /// the [`Flow`] uses.
    ///
    /// Fails like [`authorization_request`](Self::authorization_request) on configuration,
    /// and with the push's errors: [`Error::Server`] when the server refuses it,
    /// [`Error::UnexpectedResponse`] when its answer lacks a string `request_uri` or a
    /// positive integer `expires_in`, [`Error::Transport`] when it cannot be reached.
    pub async fn authorization_request_pushed(
        &self,
        client: &OAuthClient,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest> {
        self.check_configuration()?;
        #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
        let (params, mut request) = self.new_request(client, redirect_uri)?;
        #[cfg(feature = "jwt")]
        if self.signs_responses(client) {
            request.jarm =
                Some(jarm::ResponseVerifier::fetch(client, self.jarm.client_secret_hs256).await?);
        }
        if !self.pushes(client)? {
            return self.seal(client, params, request, false);
        }
        let (params, request_object) = self.sealed(client, params, true)?;
        let pushed = par::push(client, &params).await?;
        let mut request = request.with_query([
            ("client_id".to_owned(), client.client_id().to_owned()),
            ("request_uri".to_owned(), pushed.request_uri.clone()),
        ]);
        tracing::debug!(
            expires_in_s = pushed.expires_in.as_secs(),
            "authorization request pushed"
        );
        request.pushed = Some((pushed.request_uri, pushed.expires_at));
        request.request_object = request_object;
        Ok(request)
    }

    /// The authorization parameters of a new sign-in attempt, and the attempt without them in
    /// its URL yet.
    fn new_request(
        &self,
        client: &OAuthClient,
        redirect_uri: &str,
    ) -> Result<(Vec<(String, String)>, AuthorizationRequest)> {
        let url = client
            .authorization_url()
            .ok_or_else(|| Error::config("no authorization URL configured"))?
            .clone();
        let state = request::random_string(32)?;
        let verifier = if self.pkce {
            Some(request::random_string(32)?)
        } else {
            None
        };
        let nonce = if self.scopes.iter().any(|s| s == "openid") {
            Some(request::random_string(32)?)
        } else {
            None
        };
        let mut q: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, value: &str| q.push((name.to_owned(), value.to_owned()));
        add("response_type", "code");
        add("client_id", client.client_id());
        add("redirect_uri", redirect_uri);
        let scope = self.scopes.joined();
        if !scope.is_empty() {
            add("scope", &scope);
        }
        add("state", &state);
        if let Some(v) = &verifier {
            add("code_challenge", &request::s256_challenge(v));
            add("code_challenge_method", "S256");
        }
        if let Some(n) = &nonce {
            add("nonce", n);
        }
        #[cfg(feature = "jwt")]
        if self.signs_responses(client) {
            add(
                "response_mode",
                jarm::response_mode(client, self.jarm.client_secret_hs256)?,
            );
        }
        if let Some(details) = self.authorization_details.checked_parameter(client)? {
            add("authorization_details", &details);
        }
        // RFC 9449 §10: the code is bound to the key that will redeem it, so a stolen code
        // is useless to anyone else.
        #[cfg(feature = "dpop")]
        if let Some(key) = client.dpop_key()? {
            add("dpop_jkt", key.thumbprint());
        }
        if !self.auth_params.iter().any(|(name, _)| name == "resource") {
            for resource in client.resources() {
                add("resource", resource);
            }
        }
        for (name, value) in &self.auth_params {
            add(name, value);
        }
        let request = AuthorizationRequest {
            url,
            redirect_uri: redirect_uri.to_owned(),
            state: SecretString::from(state),
            verifier: verifier.map(SecretString::from),
            nonce: nonce.map(SecretString::from),
            issuer: client.issuer().map(str::to_owned),
            iss_required: self.require_iss
                || client.profile().is_some()
                || client
                    .metadata()
                    .is_some_and(|m| m.authorization_response_iss_parameter_supported),
            callback_check: self.callback_check.clone(),
            used: AtomicBool::new(false),
            pushed: None,
            #[cfg(feature = "jwt")]
            jarm: None,
            request_object: None,
        };
        Ok((q, request))
    }

    /// Step two: trades `code` for a token, sending the redirect URI and PKCE verifier of
    /// `request`. A code is sent once, never retried (SECURITY.md rule 23).
    ///
    /// The whole exchange, the ID token check included, ends at
    /// [`exchange_timeout`](Self::exchange_timeout) with [`Error::Timeout`].
    pub async fn exchange(
        &self,
        client: &OAuthClient,
        request: &AuthorizationRequest,
        code: ReceivedCode,
    ) -> Result<Token> {
        match tokio::time::timeout(
            self.exchange_timeout,
            self.exchange_unbounded(client, request, code),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(format!(
                "the sign-in server did not complete the sign-in within {} of the browser's                  answer; the code is used only once, so sign in again",
                describe(self.exchange_timeout)
            ))),
        }
    }

    async fn exchange_unbounded(
        &self,
        client: &OAuthClient,
        request: &AuthorizationRequest,
        code: ReceivedCode,
    ) -> Result<Token> {
        refuse_owned_params("token_param", &self.token_params, TOKEN_PARAMS)?;
        let mut token_request = TokenRequest::new("authorization_code")
            .secret_param("code", code.code)
            .param("redirect_uri", request.redirect_uri.clone())
            .resend(Resend::Never);
        if let Some(v) = &request.verifier {
            token_request = token_request.secret_param("code_verifier", v.clone());
        }
        let scope = self.scopes.joined();
        if !scope.is_empty() {
            token_request = token_request.requested_scope(scope);
        }
        for (name, value) in &self.token_params {
            token_request = token_request.param(name.clone(), value.clone());
        }
        let token = client.request_token(token_request).await?;
        #[cfg(feature = "jwt")]
        self.check_id_token(client, request, &token).await?;
        Ok(token)
    }

    fn context(&self, client: &OAuthClient) -> ReceiveContext {
        ReceiveContext {
            client: client.clone(),
            prompt: self.prompt.clone(),
            timeout: self.timeout,
            pages: Arc::clone(&self.pages),
        }
    }

    async fn sign_in(
        &self,
        client: &OAuthClient,
        receiver: &dyn CodeReceiver,
        fall_back_to_paste: bool,
    ) -> Result<Token> {
        self.check_configuration()?;
        self.authorization_details.check(client)?;
        let prepared = receiver.prepare(self.redirect_uri.as_deref()).await?;
        #[cfg(feature = "jwt")]
        if self.signs_responses(client) && !prepared.reads_signed_responses() {
            return Err(Error::config(
                "this receiver cannot read signed authorization responses (JARM): the hosted \
                 receiver's redirect page stores plain codes by state. Use the loopback \
                 receiver, pasting or your own callback",
            ));
        }
        if prepared.requires_pkce() && !self.pkce {
            return Err(Error::config(
                "this receiver accepts answers that carry no state (a bare pasted code), which \
                 only PKCE ties to the sign-in; with pkce(false) anyone's code would be \
                 accepted. Turn PKCE back on, or stop accepting bare codes",
            ));
        }
        let request = self
            .authorization_request_pushed(client, prepared.redirect_uri())
            .await?;
        let mut context = self.context(client);
        // A pushed request's URI works only until it expires: waiting longer is pointless.
        let capped = request.expires_at().is_some_and(|at| {
            let left = at.saturating_duration_since(client.clock().now());
            let capped = left < context.timeout;
            context.timeout = context.timeout.min(left);
            capped
        });
        let explain = |error: Error| explain_expiry(error, &request, client, capped);
        let quiet = prepared.shows_url();
        let url = request.url().clone();

        // The receiver listens while the browser opens: a browser that returns only when it
        // exits (a text browser run by `$BROWSER`) may need our answer first.
        let mut opening = open_in_background(self.browser.clone(), &url)?;
        // (async-trait boxes the future, so dropping it closes the receiver.)
        let mut receiving = prepared.receive(&request, &context);
        let opened = tokio::select! {
            code = &mut receiving => return self.exchange(client, &request, code.map_err(explain)?).await,
            opened = &mut opening => matches!(opened, Ok(Ok(()))),
        };

        let code = if opened {
            if !quiet {
                self.prompt.show(&format!(
                    "Opened the browser to sign in. If it did not open, visit:\n{url}"
                ));
            }
            receiving.await.map_err(explain)?
        } else if fall_back_to_paste {
            // No browser here: nothing will reach the loopback server, so free its port and let
            // the person paste the address their browser ends on.
            tracing::debug!("no browser could be opened; asking for the address instead");
            drop(receiving);
            let paste = PasteReceiver::new()
                .prepare(Some(request.redirect_uri()))
                .await?;
            paste.receive(&request, &context).await.map_err(explain)?
        } else {
            if !quiet {
                self.prompt.show(&format!(
                    "Open this address in a browser to sign in:\n{url}"
                ));
            }
            receiving.await.map_err(explain)?
        };
        self.exchange(client, &request, code).await
    }
}

/// A sign-in that ended because its pushed request URI expired says so, rather than passing on
/// the receiver's timeout or the server's complaint about a request URI it no longer knows.
fn explain_expiry(
    error: Error,
    request: &AuthorizationRequest,
    client: &OAuthClient,
    capped: bool,
) -> Error {
    let Some(expires_at) = request.expires_at() else {
        return error;
    };
    let expired = client.clock().now() >= expires_at;
    match error {
        Error::Timeout(_) if capped || expired => Error::Timeout(
            "the pushed authorization request expired before the sign-in reached the \
             authorization server (the server's expires_in); sign in again"
                .into(),
        ),
        Error::AuthorizationDenied(_) if expired => Error::Timeout(
            "the pushed authorization request expired before the sign-in reached the \
             authorization server, which refused its request_uri; sign in again"
                .into(),
        ),
        other => other,
    }
}

/// Authorization parameters, in the order they are sent.
type Params = Vec<(String, String)>;

/// What the authorization request carries that `auth_param` must not repeat (`scope` too when
/// the flow has scopes). `request` and `request_uri` would replace all of them (RFC 9101).
const AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "dpop_jkt",
    "request",
    "request_uri",
];

/// What the code exchange and client authentication send that `token_param` must not repeat.
const TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

#[async_trait]
impl Flow for AuthCode {
    fn conforms(&self, client: &OAuthClient) -> Result<()> {
        self.check_profile(client)
    }

    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        match &self.receiver {
            Receiver::Custom(r) => self.sign_in(client, &**r, false).await,
            Receiver::Auto => match HostedReceiver::from_env() {
                Some(hosted) => self.sign_in(client, &hosted?, false).await,
                None => self.sign_in(client, &LoopbackReceiver::new(), true).await,
            },
        }
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "authorization_code").scopes(self.scopes.iter());
        // They can name the audience or resource (Auth0's `audience`), the person
        // (`login_hint`) or the assurance level (`acr_values`): tokens differ with them.
        for (name, value) in &self.auth_params {
            key = key.part("auth_param", format!("{name}={value}"));
        }
        for (name, value) in &self.token_params {
            key = key.part("token_param", format!("{name}={value}"));
        }
        key = self.authorization_details.key_part(key);
        key.build()
    }

    fn is_interactive(&self) -> bool {
        true
    }

    /// The sign-in again, with the union of the scopes and `acr_values`, `max_age` and `claims`
    /// on the authorization request (OpenID Connect Core §3.1.2.1 and §5.5), each replacing an
    /// [`auth_param`](AuthCode::auth_param) of the same name. No `prompt=login` is added:
    /// `max_age` already obliges the provider to sign the person in again when the last sign-in
    /// is older, and `acr_values` names the level it must reach. A `prompt=none` is dropped when
    /// a sign-in is required, since it forbids the very sign-in asked for. As with every
    /// `auth_param`, the new values are part of the cache key.
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        let mut wider = self.clone();
        wider.scopes = need.widen(&self.scopes);
        if need.needs_sign_in() {
            wider.auth_params.retain(|(name, value)| {
                !(name.trim().eq_ignore_ascii_case("prompt") && value.trim() == "none")
            });
        }
        let params = &mut wider.auth_params;
        replace_param(params, "acr_values", need.acr_values.clone());
        replace_param(params, "max_age", need.max_age.map(|age| age.to_string()));
        replace_param(params, "claims", need.claims.clone());
        Some(Arc::new(wider))
    }
}
