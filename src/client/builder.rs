//! [`OAuthClientBuilder`]: every setting of an [`OAuthClient`], checked once at
//! [`build`](OAuthClientBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use secrecy::SecretString;
use url::Url;

use super::retry::Jitter;
use super::{AuthMethod, Config, OAuthClient, RetryPolicy, endpoint};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::token::DEFAULT_LIFETIME;
use crate::transport::{HttpTransport, Limits};

/// The settings of an [`OAuthClient`], from [`OAuthClient::builder`] (or
/// [`OAuthClient::to_builder`]).
///
/// Setters never fail: a value that cannot be used (an endpoint that is not a URL, or plain
/// `http` to a host that is not loopback; a user agent that is not a header value) is kept as a
/// problem, named after its setter, and [`build`](Self::build) reports it. Setting the same
/// thing again replaces the value and its problem.
///
/// ```
/// use oauth_layer::OAuthClient;
///
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// # let _ = client;
///
/// let err = OAuthClient::builder("my-client-id")
///     .token_url("http://idp.example/oauth/token")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("token_url"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct OAuthClientBuilder {
    config: Config,
    /// The unusable values, each with the setter it was given to.
    pub(super) problems: Vec<(&'static str, Error)>,
    /// A seed from [`jitter_seed`](Self::jitter_seed); otherwise `build` seeds from the OS.
    jitter_seed: Option<u64>,
    /// The endpoint setters called on this builder: their URLs win over metadata aliases.
    explicit: Vec<&'static str>,
}

impl OAuthClientBuilder {
    pub(super) fn new(client_id: String) -> Self {
        Self::from_config(Config {
            client_id,
            secret: None,
            auth_method: None,
            token_url: None,
            authorization_url: None,
            device_authorization_url: None,
            revocation_url: None,
            introspection_url: None,
            par_url: None,
            issuer: None,
            metadata: None,
            resources: Vec::new(),
            transport: None,
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            default_lifetime: DEFAULT_LIFETIME,
            lenient_token_type: false,
            #[cfg(feature = "jwt")]
            signing_key: None,
            #[cfg(feature = "jwt")]
            assertion_source: None,
            #[cfg(feature = "jwt")]
            assertion_audience_issuer: false,
            retry: RetryPolicy::default(),
            jitter: Arc::new(Jitter::seeded(0)),
            user_agent: HeaderValue::from_static(concat!(
                "oauth-layer/",
                env!("CARGO_PKG_VERSION")
            )),
            #[cfg(feature = "dpop")]
            dpop: None,
            #[cfg(all(feature = "reqwest", feature = "rustls"))]
            client_certificate: None,
            #[cfg(all(feature = "reqwest", feature = "rustls"))]
            root_certificates: Vec::new(),
            #[cfg(feature = "reqwest")]
            own_transport: None,
            profile: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        })
    }

    pub(super) fn from_config(config: Config) -> Self {
        Self {
            config,
            problems: Vec::new(),
            jitter_seed: None,
            explicit: Vec::new(),
        }
    }

    /// Checks the settings and makes the client.
    ///
    /// # Errors
    ///
    /// The problem of a setter given an unusable value, named after the setter: an endpoint
    /// that is not a URL ([`Error::Config`]) or plain `http` to a host that is not loopback
    /// ([`Error::Transport`] of kind [`InsecureUrl`](crate::TransportErrorKind::InsecureUrl)),
    /// a user agent that is not a header value, metadata for another issuer. Several problems
    /// come as one [`Error::Config`] that names them all.
    pub fn build(mut self) -> Result<OAuthClient> {
        #[cfg(feature = "dpop")]
        if let Some(dpop) = self.config.dpop.take() {
            // The key's algorithm must be one the server takes, when its metadata says which.
            let supported = self
                .config
                .metadata
                .as_ref()
                .and_then(|m| m.dpop_signing_alg_values_supported.clone());
            self.config.dpop = self.check("dpop", dpop.for_server(supported.as_deref()));
        }
        self.resolve_mtls();
        match self.problems.len() {
            0 => {
                let client = OAuthClient {
                    inner: Arc::new(self.into_config_unchecked()),
                    #[cfg(feature = "dpop")]
                    dpop_key: None,
                };
                if let Some(profile) = client.profile() {
                    profile.check_client(&client)?;
                }
                Ok(client)
            }
            1 => Err(self.problems.remove(0).1),
            n => Err(Error::config(format!(
                "{n} client settings are wrong: {}",
                self.problems
                    .iter()
                    .map(|(_, e)| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    /// The settings without their problems (for settings that cannot be wrong).
    pub(super) fn into_config_unchecked(mut self) -> Config {
        self.config.jitter = Arc::new(match self.jitter_seed {
            Some(seed) => Jitter::seeded(seed),
            None => Jitter::from_entropy(),
        });
        self.config
    }

    /// Records the outcome of the setter `setter`, replacing an earlier problem of the same one.
    fn check<T>(&mut self, setter: &'static str, value: Result<T>) -> Option<T> {
        self.problems.retain(|(s, _)| *s != setter);
        match value {
            Ok(value) => Some(value),
            Err(err) => {
                self.problems.push((setter, err));
                None
            }
        }
    }

    fn url(
        mut self,
        setter: &'static str,
        url: &str,
        field: fn(&mut Config) -> &mut Option<Url>,
    ) -> Self {
        if let Some(url) = self.check(setter, endpoint(setter, url)) {
            *field(&mut self.config) = Some(url);
        }
        if !self.explicit.contains(&setter) {
            self.explicit.push(setter);
        }
        self
    }

    /// Mutual TLS, resolved once every setting is in (so the order of
    /// [`metadata`](Self::metadata) and [`client_certificate`](Self::client_certificate) does
    /// not matter): the endpoints taken from metadata become their `mtls_endpoint_aliases`, a
    /// `tls_client_auth` method without a certificate is a problem, and the default transport
    /// presents the certificate and trusts the private roots.
    fn resolve_mtls(&mut self) {
        let has_certificate = {
            #[cfg(all(feature = "reqwest", feature = "rustls"))]
            {
                self.config.client_certificate.is_some()
            }
            #[cfg(not(all(feature = "reqwest", feature = "rustls")))]
            false
        };
        let method = self.config.effective_auth_method();
        if method.is_mutual_tls() && !has_certificate {
            self.check::<()>(
                "auth_method",
                Err(Error::config(format!(
                    "client authentication {} needs a client certificate \
                     (OAuthClientBuilder::client_certificate)",
                    method.as_str()
                ))),
            );
        }
        if has_certificate && let Some(metadata) = self.config.metadata.clone() {
            self.use_mtls_aliases(&metadata);
        }
        #[cfg(feature = "reqwest")]
        {
            self.config.own_transport = None;
        }
        #[cfg(all(feature = "reqwest", feature = "rustls"))]
        if self.config.transport.is_some() && !self.config.root_certificates.is_empty() {
            tracing::warn!(
                "root_certificate applies to the default transport only; configure the roots \
                 of the transport given to OAuthClientBuilder::transport there"
            );
        }
        #[cfg(all(feature = "reqwest", feature = "rustls"))]
        if self.config.transport.is_none()
            && (has_certificate || !self.config.root_certificates.is_empty())
        {
            let client_auth = self
                .config
                .client_certificate
                .as_ref()
                .map(crate::tls::ClientCertificate::chain_and_key);
            let roots = self.config.root_certificates.clone();
            // Named after what the user set: a client that only trusts a private root has no
            // client certificate to blame.
            let setter = if has_certificate {
                "client_certificate"
            } else {
                "root_certificate"
            };
            let failed = move |cause: String| {
                Error::config(format!(
                    "{setter}: the default transport cannot be built: {cause}"
                ))
            };
            // One TLS configuration for this client, made here: each runtime's client takes a
            // clone (sharing its verifier and key), where reqwest would read the platform's
            // root certificates again for every runtime. A configuration rustls refuses fails
            // `build`.
            let built = crate::transport::tls_config(roots, client_auth)
                .map_err(|e| failed(crate::transport::deepest(&e)))
                .and_then(|tls| {
                    // Like the shared default transport: one client per tokio runtime.
                    let recipe = move || {
                        reqwest::Client::builder()
                            .redirect(reqwest::redirect::Policy::none())
                            .tls_backend_preconfigured(tls.clone())
                    };
                    // Built once here too, so that a configuration reqwest refuses fails
                    // `build` (given the TLS configuration, it does not read the roots again).
                    recipe()
                        .build()
                        .map(|_| Arc::new(crate::transport::PerRuntime::new(recipe)))
                        .map_err(|e| failed(crate::transport::deepest(&e)))
                });
            // Recorded under its own name: under `root_certificate`, a transport that builds
            // would clear a later `root_certificate` call's problem (an unreadable PEM).
            self.config.own_transport = self.check("own transport", built);
        }
    }

    /// Points each endpoint that came from `metadata` (not set on this builder) at its
    /// `mtls_endpoint_aliases` entry, when there is one (RFC 8705 §5).
    fn use_mtls_aliases(&mut self, metadata: &Metadata) {
        let Some(aliases) = &metadata.mtls_endpoint_aliases else {
            return;
        };
        let found = [
            (
                "token_url",
                metadata.token_endpoint.as_ref(),
                aliases.token_endpoint.as_ref(),
            ),
            (
                "device_authorization_url",
                metadata.device_authorization_endpoint.as_ref(),
                aliases.device_authorization_endpoint.as_ref(),
            ),
            (
                "revocation_url",
                metadata.revocation_endpoint.as_ref(),
                aliases.revocation_endpoint.as_ref(),
            ),
            (
                "introspection_url",
                metadata.introspection_endpoint.as_ref(),
                aliases.introspection_endpoint.as_ref(),
            ),
            (
                "par_url",
                metadata.pushed_authorization_request_endpoint.as_ref(),
                aliases.pushed_authorization_request_endpoint.as_ref(),
            ),
        ];
        for (setter, plain, alias) in found {
            let Some(alias) = alias else { continue };
            if self.explicit.contains(&setter) {
                continue;
            }
            let field: &mut Option<Url> = match setter {
                "token_url" => &mut self.config.token_url,
                "device_authorization_url" => &mut self.config.device_authorization_url,
                "revocation_url" => &mut self.config.revocation_url,
                "par_url" => &mut self.config.par_url,
                _ => &mut self.config.introspection_url,
            };
            // Only an endpoint the metadata gave (or none at all) is replaced.
            let from_metadata = match (&*field, plain) {
                (None, _) => true,
                (Some(current), Some(plain)) => current.as_str() == plain.as_str(),
                (Some(_), None) => false,
            };
            if !from_metadata {
                continue;
            }
            match endpoint(setter, alias.as_str()) {
                Ok(url) => *field = Some(url),
                Err(err) => self.problems.push(("metadata", err)),
            }
        }
    }

    /// Replaces the client id (a resource-first client learns it after the rest of its
    /// settings: registered, or its metadata document's URL).
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.config.client_id = client_id.into();
        self
    }

    /// The client secret (kept in a `SecretString`; never printed).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.config.secret = Some(SecretString::from(secret.into()));
        self
    }

    /// How the client authenticates; by default `private_key_jwt` with a
    /// [`signing_key`](Self::signing_key), else `client_secret_basic` with a secret and `none`
    /// without.
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.config.auth_method = Some(method);
        self
    }

    /// The private key for `private_key_jwt` client authentication (RFC 7523 §2.2), which
    /// becomes the default method. Each token request carries a new assertion signed with it.
    /// (`client_secret_jwt` needs no key: it signs with the client [`secret`](Self::secret).)
    #[cfg(feature = "jwt")]
    pub fn signing_key(mut self, key: crate::jwt::SigningKey) -> Self {
        self.config.signing_key = Some(key);
        self
    }

    /// Client assertions signed by someone else, read from `source` for every back-channel
    /// request that authenticates (token, PAR, device authorization, revocation,
    /// introspection): a Kubernetes projected token, a GitHub Actions OIDC token, an Azure
    /// federated token (see [`crate::credential`]). Each request carries `client_id`,
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and the
    /// credential as `client_assertion`; one past its own `exp` is never sent. The method
    /// reported (and expected by the server) is `private_key_jwt`, the default once this is set.
    /// Cached tokens are keyed by the source (its path or URL), not by its rotating value.
    ///
    /// ```
    /// use oauth_layer::{AuthMethod, OAuthClient};
    /// use oauth_layer::credential::FileSource;
    ///
    /// let client = OAuthClient::builder("my-client")
    ///     .token_url("https://idp.example/oauth/token")
    ///     .client_assertion(FileSource::new("/var/run/secrets/tokens/oauth"))
    ///     .build()?;
    /// assert_eq!(client.auth_method(), AuthMethod::PrivateKeyJwt);
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    #[cfg(feature = "jwt")]
    pub fn client_assertion(mut self, source: impl crate::credential::CredentialSource) -> Self {
        self.config.assertion_source = Some(Arc::new(source));
        self
    }

    /// Address client assertions to the [`issuer`](Self::issuer) rather than the token endpoint
    /// URL (off by default; some servers, Okta among them, accept or want the issuer).
    #[cfg(feature = "jwt")]
    pub fn assertion_audience_issuer(mut self, use_issuer: bool) -> Self {
        self.config.assertion_audience_issuer = use_issuer;
        self
    }

    /// Binds tokens to a key with DPoP (RFC 9449): every token request and every resource
    /// request through the layer or the middleware carries a proof, and tokens come back as
    /// `DPoP` tokens that are useless without the key. See [`crate::dpop`].
    #[cfg(feature = "dpop")]
    pub fn dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.config.dpop = Some(dpop);
        self
    }

    /// The client certificate for mutual TLS (RFC 8705): every back-channel request presents
    /// it, the tokens the client gets are bound to it
    /// ([`Token::certificate_thumbprint`](crate::Token::certificate_thumbprint)), and the
    /// `tls_client_auth` methods authenticate with it.
    ///
    /// - The default transport becomes a reqwest client of this client's own that presents the
    ///   certificate (and trusts the [`root_certificate`](Self::root_certificate)s), and never
    ///   follows redirects. With a [`transport`](Self::transport) of your own, you vouch that it
    ///   presents this same certificate.
    /// - Endpoints taken from [`metadata`](Self::metadata) become their
    ///   `mtls_endpoint_aliases` when the server names them (RFC 8705 §5), whichever of the two
    ///   setters is called first; endpoints set on the builder stay as set.
    /// - The layer or middleware that sends the bound tokens must present the certificate too
    ///   ([`ClientCertificate::reqwest_client_builder`](crate::tls::ClientCertificate::reqwest_client_builder))
    ///   and declare it (`client_certificate` on [`OAuthMiddleware`](crate::OAuthMiddleware) and
    ///   `OAuthLayer`): a bound token is never attached where it was not declared.
    ///
    /// ```no_run
    /// use oauth_layer::{AuthMethod, OAuthClient, tls::ClientCertificate};
    ///
    /// # fn build(cert_pem: &[u8], key_pem: &[u8]) -> oauth_layer::Result<()> {
    /// let client = OAuthClient::builder("my-client-id")
    ///     .client_certificate(ClientCertificate::from_pem(cert_pem, key_pem)?)
    ///     .auth_method(AuthMethod::TlsClientAuth)
    ///     .token_url("https://idp.example/oauth/token")
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    #[cfg(all(feature = "reqwest", feature = "rustls"))]
    pub fn client_certificate(mut self, certificate: crate::tls::ClientCertificate) -> Self {
        self.config.client_certificate = Some(certificate);
        self
    }

    /// Trusts the root certificate(s) in `pem` (one or more PEM `CERTIFICATE` blocks) for
    /// back-channel requests through the default transport, next to the system's roots: the
    /// private certificate authority of a test or in-house authorization server. Call it again
    /// for more. Ignored with a [`transport`](Self::transport) of your own (configure it there).
    /// A PEM without a certificate is a problem reported by [`build`](Self::build).
    #[cfg(all(feature = "reqwest", feature = "rustls"))]
    pub fn root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        let setter = "root_certificate";
        if self.problems.iter().any(|(s, _)| *s == setter) {
            return self;
        }
        let pem = pem.as_ref();
        let roots = if pem.len() > crate::tls::MAX_PEM_SIZE {
            Err(Error::config(format!(
                "root_certificate: the PEM is larger than {} bytes",
                crate::tls::MAX_PEM_SIZE
            )))
        } else {
            let parsed = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<Vec<_>, _>>();
            match parsed {
                Ok(roots) if !roots.is_empty() => Ok(roots),
                Ok(_) => Err(Error::config(
                    "root_certificate: the PEM holds no certificate",
                )),
                Err(_) => Err(Error::config(
                    "root_certificate: the PEM cannot be read: invalid certificate encoding",
                )),
            }
        };
        if let Some(roots) = self.check(setter, roots) {
            self.config.root_certificates.extend(roots);
        }
        self
    }

    /// Follows a security profile: [`Profile::Fapi2`](crate::profile::Profile::Fapi2) turns on
    /// what FAPI 2.0 requires (pushed authorization requests, PKCE, `iss` in the response,
    /// assertions addressed to the issuer, only PS256, ES256 and EdDSA signatures) and makes
    /// [`build`](Self::build) refuse what it forbids: client authentication by shared secret or
    /// none, an RS256 key, tokens that are not sender-constrained. See [`crate::profile`].
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, dpop::Dpop, jwt::SigningKey, profile::Profile};
    ///
    /// # fn pem() -> Vec<u8> { std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/test_keys/dpop_p256.pem")).unwrap() }
    /// let client = OAuthClient::builder("bank-app")
    ///     .signing_key(SigningKey::es256_pem(pem())?)
    ///     .issuer("https://bank.example")
    ///     .token_url("https://bank.example/token")
    ///     .par_url("https://bank.example/par")
    ///     .authorization_url("https://bank.example/authorize")
    ///     .dpop(Dpop::new())
    ///     .profile(Profile::Fapi2)
    ///     .build()?;
    /// assert_eq!(client.profile(), Some(Profile::Fapi2));
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn profile(mut self, profile: crate::profile::Profile) -> Self {
        self.config.profile = Some(profile);
        self
    }

    /// These settings without a profile (for a client that only fetches discovery documents).
    pub(crate) fn without_profile(mut self) -> Self {
        self.config.profile = None;
        self
    }

    /// The token endpoint. Must be `https`, or `http` to a loopback address.
    pub fn token_url(self, url: impl AsRef<str>) -> Self {
        self.url("token_url", url.as_ref(), |c| &mut c.token_url)
    }

    /// The authorization endpoint (for the authorization code flow).
    pub fn authorization_url(self, url: impl AsRef<str>) -> Self {
        self.url("authorization_url", url.as_ref(), |c| {
            &mut c.authorization_url
        })
    }

    /// The device authorization endpoint (RFC 8628).
    pub fn device_authorization_url(self, url: impl AsRef<str>) -> Self {
        self.url("device_authorization_url", url.as_ref(), |c| {
            &mut c.device_authorization_url
        })
    }

    /// The revocation endpoint (RFC 7009).
    pub fn revocation_url(self, url: impl AsRef<str>) -> Self {
        self.url("revocation_url", url.as_ref(), |c| &mut c.revocation_url)
    }

    /// The introspection endpoint (RFC 7662).
    pub fn introspection_url(self, url: impl AsRef<str>) -> Self {
        self.url("introspection_url", url.as_ref(), |c| {
            &mut c.introspection_url
        })
    }

    /// The pushed authorization request endpoint (RFC 9126): the authorization code flow
    /// pushes its parameters there when asked to ([`AuthCode::par`](crate::flow::AuthCode::par))
    /// or when the server's metadata requires it. Must be `https`, or `http` to a loopback
    /// address.
    pub fn par_url(self, url: impl AsRef<str>) -> Self {
        self.url("par_url", url.as_ref(), |c| &mut c.par_url)
    }

    /// A resource indicator (RFC 8707): the protected resource the tokens are for, sent as
    /// `resource` on every token request (every grant, refreshes included, unless the grant
    /// sends its own, like [`ClientCredentials::resource`](crate::flow::ClientCredentials::resource))
    /// and on every authorization and device authorization request. The server then issues
    /// tokens that only this resource accepts, so a token leaked by (or sent to) another
    /// resource is useless there. Part of every cache key, so tokens for two resources are never
    /// mixed up. Call it again for a token valid at several resources.
    ///
    /// It must be an absolute URI without a fragment (RFC 8707 §2); anything else is a problem
    /// reported by [`build`](Self::build).
    ///
    /// ```
    /// use oauth_layer::OAuthClient;
    ///
    /// let client = OAuthClient::builder("my-client-id")
    ///     .token_url("https://idp.example/token")
    ///     .resource("https://mcp.example/mcp")
    ///     .build()?;
    /// assert_eq!(client.resources(), ["https://mcp.example/mcp"]);
    /// assert!(OAuthClient::builder("id").resource("https://api.example/#frag").build().is_err());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn resource(mut self, resource: impl AsRef<str>) -> Self {
        let resource = resource.as_ref();
        let checked = match url::Url::parse(resource) {
            Ok(url) if url.fragment().is_none() && !resource.contains('#') => Ok(()),
            Ok(_) => Err(Error::config(format!(
                "resource {resource:?} has a fragment, which RFC 8707 §2 forbids"
            ))),
            Err(e) => Err(Error::config(format!(
                "resource {resource:?} is not an absolute URI: {e}"
            ))),
        };
        let setter = "resource";
        if self.problems.iter().any(|(s, _)| *s == setter) {
            return self;
        }
        if self.check(setter, checked).is_some()
            && !self.config.resources.iter().any(|r| r == resource)
        {
            self.config.resources.push(resource.to_owned());
        }
        self
    }

    /// The issuer identifier, used in cache keys and to check discovery metadata and the `iss`
    /// authorization response parameter.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = Some(issuer.into());
        self
    }

    /// Configures the client from an authorization server's metadata (RFC 8414), as
    /// [`discovery::configure`](crate::discovery::configure) does with a fetched document; use
    /// it directly with a document you keep yourself.
    ///
    /// - Endpoints: the token, authorization, device authorization, revocation,
    ///   introspection and pushed authorization request endpoints are taken from the document, except those already set on this
    ///   builder: explicit settings win. Each must be `https` or loopback `http`.
    /// - Issuer: set to the document's `issuer`; a builder already given another
    ///   [`issuer`](Self::issuer) is a problem reported by [`build`](Self::build).
    /// - Client authentication, when [`auth_method`](Self::auth_method) was not called: with a
    ///   secret, `client_secret_basic` when the server lists it or lists nothing (its default,
    ///   RFC 8414 §2), else `client_secret_post` when listed; without one, `none`. A method the
    ///   server does not list is kept with a warning.
    /// - The document itself is kept: [`OAuthClient::metadata`] returns it.
    ///
    /// A document with `authorization_response_iss_parameter_supported: true` makes the
    /// authorization code flow require `iss` on the callback (RFC 9207). A server whose
    /// `code_challenge_methods_supported` lacks `S256` still gets `S256` (never `plain`), with a
    /// warning. Call it after the secret and any explicit settings.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        if let Some(configured) = self
            .config
            .issuer
            .as_deref()
            .filter(|c| *c != metadata.issuer)
        {
            let conflict = Error::config(format!(
                "metadata: the client is configured for issuer {configured:?}, not {:?}",
                metadata.issuer
            ));
            self.check::<()>("metadata", Err(conflict));
            return self;
        }
        self.problems.retain(|(s, _)| *s != "metadata");
        let found = [
            ("token_url", metadata.token_endpoint.as_ref()),
            (
                "authorization_url",
                metadata.authorization_endpoint.as_ref(),
            ),
            (
                "device_authorization_url",
                metadata.device_authorization_endpoint.as_ref(),
            ),
            ("revocation_url", metadata.revocation_endpoint.as_ref()),
            (
                "introspection_url",
                metadata.introspection_endpoint.as_ref(),
            ),
            (
                "par_url",
                metadata.pushed_authorization_request_endpoint.as_ref(),
            ),
        ];
        for (setter, url) in found {
            let Some(url) = url else { continue };
            let field: &mut Option<Url> = match setter {
                "token_url" => &mut self.config.token_url,
                "authorization_url" => &mut self.config.authorization_url,
                "device_authorization_url" => &mut self.config.device_authorization_url,
                "revocation_url" => &mut self.config.revocation_url,
                "par_url" => &mut self.config.par_url,
                _ => &mut self.config.introspection_url,
            };
            if field.is_some() {
                continue;
            }
            match endpoint(setter, url.as_str()) {
                Ok(url) => *field = Some(url),
                Err(err) => self.problems.push(("metadata", err)),
            }
        }
        self.config.issuer = Some(metadata.issuer.clone());
        self.choose_auth_method(&metadata);
        if metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|methods| !methods.iter().any(|m| m == "S256"))
        {
            tracing::warn!(
                issuer = metadata.issuer,
                "the server does not list PKCE S256; the authorization code flow sends S256 anyway"
            );
        }
        self.config.metadata = Some(Arc::new(metadata));
        self
    }

    /// Switches a builder with a secret and no chosen method from `client_secret_basic` to
    /// `client_secret_post` when the server lists only the latter (RFC 8414 §2). The defaults
    /// already cover the rest: `client_secret_basic` with a secret, `none` without.
    fn choose_auth_method(&mut self, metadata: &Metadata) {
        let Some(listed) = &metadata.token_endpoint_auth_methods_supported else {
            return;
        };
        let lists = |method: AuthMethod| listed.iter().any(|l| l == method.as_str());
        if self.config.auth_method.is_none()
            && self.config.effective_auth_method() == AuthMethod::ClientSecretBasic
            && !lists(AuthMethod::ClientSecretBasic)
            && lists(AuthMethod::ClientSecretPost)
        {
            self.config.auth_method = Some(AuthMethod::ClientSecretPost);
        }
        let method = self.config.effective_auth_method();
        if !lists(method) {
            tracing::warn!(
                method = method.as_str(),
                supported = ?listed,
                "the server does not list this client authentication method; using it anyway"
            );
        }
    }

    /// The transport for back-channel requests. The default is a shared reqwest client that
    /// never follows redirects. A transport that would follow redirects on its own (a reqwest
    /// client built without `redirect::Policy::none()`, a tower service with tower-http's
    /// `FollowRedirect`; see [`HttpTransport::follows_redirects`]) is refused here: it is logged
    /// at `error` level, and every back-channel request fails with a
    /// [`TransportErrorKind::Redirect`](crate::TransportErrorKind::Redirect) error without
    /// contacting anything, so a `307` can never replay the client secret to another host.
    pub fn transport(mut self, transport: impl HttpTransport) -> Self {
        let transport: Arc<dyn HttpTransport> = match transport.follows_redirects() {
            None => Arc::new(transport),
            Some(why) => {
                tracing::error!("refusing the configured transport: it {why}");
                Arc::new(crate::transport::Refused { why })
            }
        };
        self.config.transport = Some(transport);
        self
    }

    /// The clock every expiry is measured with. Default: [`SystemClock`]; in tests a
    /// [`ManualClock`](crate::clock::ManualClock), or [`TokioClock`](crate::clock::TokioClock)
    /// under tokio's paused time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// The OpenTelemetry meter this client, and every token source, layer and middleware built
    /// from it, records its metrics with (feature `metrics`; see [`crate::metrics`]). Default:
    /// the global meter provider's `oauth-layer` meter, taken the first time a metric is
    /// recorded.
    #[cfg(feature = "metrics")]
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.config.metrics = Some(Arc::new(crate::metrics::Instruments::new(meter)));
        self
    }

    /// The deadline for one back-channel exchange: connect, headers and body (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.limits.timeout = timeout;
        self
    }

    /// The largest back-channel response body read (default 1 MiB).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.config.limits.max_body = bytes;
        self
    }

    /// The lifetime assumed for tokens that come without `expires_in` (default one hour).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.default_lifetime = lifetime;
        self
    }

    /// Accept token responses that omit `token_type` as bearer tokens. Off by default: RFC 6749
    /// requires the member, and a token of an unknown type is never sent as a bearer token.
    pub fn lenient_token_type(mut self, lenient: bool) -> Self {
        self.config.lenient_token_type = lenient;
        self
    }

    /// When and how often token requests are retried (see [`RetryPolicy`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Seeds the random source of the retry waits ([`RetryPolicy`]'s jitter), so that a test
    /// sees the same waits on every run. By default each built client seeds its own from the
    /// operating system, so that clients never wait in step.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The `User-Agent` of back-channel requests (some providers, such as Reddit, insist on a
    /// descriptive one). Must be a valid header value.
    pub fn user_agent(mut self, user_agent: impl AsRef<str>) -> Self {
        let value = HeaderValue::try_from(user_agent.as_ref())
            .map_err(|_| Error::config("user_agent is not a valid header value"));
        if let Some(value) = self.check("user_agent", value) {
            self.config.user_agent = value;
        }
        self
    }
}

impl fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mut d = f.debug_struct("OAuthClientBuilder");
        d.field("client_id", &c.client_id)
            .field("secret", &c.secret.as_ref().map(|_| "[redacted]"))
            .field("token_url", &c.token_url.as_ref().map(Url::as_str))
            .field("issuer", &c.issuer);
        #[cfg(all(feature = "reqwest", feature = "rustls"))]
        d.field("client_certificate", &c.client_certificate);
        d.field(
            "problems",
            &self.problems.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        )
        .finish_non_exhaustive()
    }
}
