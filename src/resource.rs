//! The resource-first client: point it at a protected resource's URL, and it finds the rest.
//!
//! Agents and tools that talk to many services (MCP clients above all) know a resource's URL
//! and nothing else. A [`ResourceClient`] starts from that URL:
//!
//! 1. The first request goes out without a token. A `401` gives the resource's metadata
//!    (RFC 9728): from the URL in its challenge's `resource_metadata`, else from the
//!    well-known URL built from the resource. The document must name exactly this resource
//!    ([`Error::ResourceMismatch`] otherwise), and nothing more happens before it does.
//! 2. An authorization server is chosen from its `authorization_servers`: the first one, or
//!    the first the caller allows ([`ResourceClient::authorization_server`];
//!    [`Error::UntrustedAuthorizationServer`] when none is allowed). Its metadata comes from
//!    RFC 8414 / OpenID Connect discovery, with the byte-exact issuer check.
//! 3. The client identity comes from the ways the caller listed, in order: a client id
//!    registered beforehand ([`ResourceClient::client_id`]), a Client ID Metadata Document
//!    ([`ResourceClient::client_id_metadata_document`], when the server takes them), or
//!    dynamic registration (RFC 7591, [`ResourceClient::register`], when the server has a
//!    registration endpoint; the default when nothing else is listed). A registration is kept
//!    in the token store, so a restart does not register again.
//! 4. The grant runs (the authorization code flow with PKCE for a person, the default;
//!    client credentials with [`ResourceClient::machine`]), with the resource identifier as
//!    RFC 8707 `resource` on the authorization and every token request, and the scopes the
//!    caller gave, else those of the challenge, else the metadata's `scopes_supported`. Each
//!    resource gets its own token source: a token for one resource is never sent to another.
//! 5. The first request is sent again with the token (when its body can be copied); later
//!    requests carry the token from the start, and the challenge engine (renewal after a
//!    `401`, DPoP nonces, scope upgrades, step-up) works as for any other source.
//!
//! Documents are fetched like every back-channel request: `https` (or `http` to a loopback
//! address, for a loopback resource), never through a redirect, under the client's deadline
//! and body cap, without any credential. They are kept for an hour by every resource-first
//! client of the process (at most 256 of each kind), so a second client fetches nothing again,
//! and, with a [store](ResourceClient::store), in the store for the same hour, so another
//! process sharing it (or the next run) goes straight to the resource with the stored token.
//!
//! Plug it into reqwest with [`OAuthMiddleware::for_resource`](crate::OAuthMiddleware::for_resource)
//! or [`OAuthMiddleware::for_resources`](crate::OAuthMiddleware::for_resources), into tower with
//! [`OAuthLayer::for_resource`](crate::OAuthLayer::for_resource), or ask for a
//! [`TokenSource`] directly with [`ResourceClient::token_source`].

mod cache;
mod identity;
#[cfg(feature = "tower")]
pub(crate) mod layer;
#[cfg(feature = "reqwest")]
pub(crate) mod middleware;
mod stored;

#[cfg(feature = "tower")]
pub use layer::{ResourceLayer, ResourceService};
#[cfg(feature = "reqwest")]
pub use middleware::ResourceMiddleware;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;
use secrecy::SecretString;
use url::Url;

use crate::challenge::Challenges;
use crate::client::{OAuthClient, OAuthClientBuilder};
use crate::discovery::resource::{self as prm, ProtectedResourceMetadata, ResourceIdentifier};
use crate::error::{Error, Result};
#[cfg(feature = "auth-code")]
use crate::flow::AuthCode;
use crate::flow::{ClientCredentials, Flow};
use crate::registration::ClientMetadata;
use crate::source::TokenSource;
use crate::store::TokenStore;
use identity::{GrantNeeds, Identity, Registrations};

/// A client that finds, for each protected resource it is pointed at, the authorization server,
/// its own client identity there and a token bound to that resource. See the
/// [module documentation](self) for the steps.
///
/// Configure it, then hand it to [`OAuthMiddleware::for_resources`](crate::OAuthMiddleware::for_resources)
/// or [`OAuthLayer::for_resources`](crate::OAuthLayer::for_resources). Clones share everything
/// discovered; a setter called after the first use starts afresh.
///
/// ```no_run
/// use oauth_layer::OAuthMiddleware;
/// use oauth_layer::resource::ResourceClient;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mcp = ResourceClient::new("https://mcp.example/mcp")?
///     .client_id("my-agent")                                   // registered beforehand, else
///     .register(Default::default())                            // RFC 7591 where offered
///     .authorization_server("https://login.example");          // and only this server
/// let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
///     .with(OAuthMiddleware::for_resources(mcp))
///     .build();
/// let answer = http.get("https://mcp.example/mcp").send().await?;
/// # let _ = answer; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ResourceClient {
    config: Arc<Config>,
    state: Arc<State>,
}

#[derive(Clone)]
struct Config {
    resources: Vec<ResourceIdentifier>,
    identities: Vec<Identity>,
    issuers: Vec<String>,
    scope: Option<String>,
    grant: Grant,
    store: Option<Arc<dyn TokenStore>>,
    template: OAuthClientBuilder,
    interactive: bool,
}

/// The grant a resource's token comes from.
#[derive(Clone, Debug)]
enum Grant {
    #[cfg(feature = "auth-code")]
    Person(Box<AuthCode>),
    Machine,
}

/// What discovery found for one resource.
pub(crate) struct Resolved {
    pub(crate) source: TokenSource,
    issuer: String,
    /// The ordinary middleware over `source`, limited to the resource's origin.
    #[cfg(feature = "reqwest")]
    pub(crate) middleware: crate::OAuthMiddleware,
    /// The ordinary layer over `source`, limited to the resource's origin.
    #[cfg(feature = "tower")]
    pub(crate) layer: crate::OAuthLayer,
}

#[derive(Default)]
struct State {
    /// Read on every request to a resource, written once per discovery: lock-free reads.
    resolved: arc_swap::ArcSwap<Vec<(ResourceIdentifier, Arc<Resolved>)>>,
    gates: Mutex<Vec<(ResourceIdentifier, Arc<tokio::sync::Mutex<()>>)>>,
    registrations: Registrations,
}

impl ResourceClient {
    /// A client for the resource at `url` (its identifier drops the query and fragment; see
    /// [`ResourceIdentifier`]). Requests to this URL and to paths below it get the resource's
    /// token; requests anywhere else get none.
    ///
    /// Defaults: dynamic registration, the authorization code flow with PKCE through the
    /// loopback receiver (a person signs in; the middleware may run it in the middle of a
    /// request), any authorization server the resource names (the first), no store.
    pub fn new(url: impl AsRef<str>) -> Result<Self> {
        Ok(Self {
            config: Arc::new(Config {
                resources: vec![ResourceIdentifier::new(url)?],
                identities: Vec::new(),
                issuers: Vec::new(),
                scope: None,
                #[cfg(feature = "auth-code")]
                grant: Grant::Person(Box::default()),
                #[cfg(not(feature = "auth-code"))]
                grant: Grant::Machine,
                store: None,
                template: OAuthClient::builder(""),
                interactive: true,
            }),
            state: Arc::default(),
        })
    }

    fn change(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self.state = Arc::default();
        self
    }

    /// One more resource, with its own metadata, authorization server and token.
    pub fn resource(self, url: impl AsRef<str>) -> Result<Self> {
        let resource = ResourceIdentifier::new(url)?;
        Ok(self.change(|c| {
            if !c.resources.contains(&resource) {
                c.resources.push(resource);
            }
        }))
    }

    /// A client id registered with the authorization server beforehand (a public client:
    /// no secret). Tried in the order the identity setters were called.
    pub fn client_id(self, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        self.change(|c| {
            c.identities.push(Identity::Registered {
                client_id,
                secret: None,
            });
        })
    }

    /// A client id and secret registered with the authorization server beforehand.
    pub fn client_id_and_secret(
        self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        let (client_id, secret) = (client_id.into(), SecretString::from(secret.into()));
        self.change(|c| {
            c.identities.push(Identity::Registered {
                client_id,
                secret: Some(secret),
            });
        })
    }

    /// A Client ID Metadata Document: the client id is `url`, an https URL the app serves
    /// [`ClientMetadata::metadata_document`] at. Used with servers whose metadata say
    /// `client_id_metadata_document_supported`; skipped elsewhere.
    pub fn client_id_metadata_document(self, url: impl AsRef<str>) -> Result<Self> {
        let url = url.as_ref();
        let parsed = Url::parse(url)
            .map_err(|e| Error::config(format!("the client id URL is not a URL: {e}")))?;
        if parsed.scheme() != "https" || parsed.path() == "/" || parsed.fragment().is_some() {
            return Err(Error::config(
                "a client id metadata document URL must be https, with a path and no fragment",
            ));
        }
        let url = url.to_owned();
        Ok(self.change(|c| c.identities.push(Identity::MetadataDocument(url))))
    }

    /// Dynamic registration (RFC 7591) with `metadata`, at servers with a registration
    /// endpoint. What the grant needs and `metadata` leaves out is filled in: for a person,
    /// the loopback redirect URI (or the flow's), the code and refresh grants and no secret
    /// (a native public client); for a machine, the client credentials grant with
    /// `client_secret_basic`. The registration is kept in the [`store`](Self::store) under a
    /// key bound to the server and these metadata.
    pub fn register(self, metadata: ClientMetadata) -> Self {
        self.change(|c| c.identities.push(Identity::Register(metadata)))
    }

    /// Allows this authorization server (its issuer identifier, byte for byte). Once one is
    /// allowed, a resource whose metadata names none of the allowed ones gets no token
    /// ([`Error::UntrustedAuthorizationServer`]); the first allowed one the resource names is
    /// used.
    pub fn authorization_server(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.change(|c| c.issuers.push(issuer))
    }

    /// The scopes to ask for (space-separated, or call again); without any, those of the
    /// resource's challenge, else its metadata's `scopes_supported`.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        self.change(|c| {
            c.scope = Some(match c.scope.take() {
                Some(have) => format!("{have} {scope}"),
                None => scope,
            });
        })
    }

    /// Tokens for the client itself (the client credentials grant) instead of a person's
    /// sign-in; the identity needs a secret (registered beforehand, or by registration).
    pub fn machine(self) -> Self {
        self.change(|c| c.grant = Grant::Machine)
    }

    /// A person signs in with this configured authorization code flow (its receiver, browser,
    /// redirect URI, timeouts); its scopes come first.
    #[cfg(feature = "auth-code")]
    pub fn auth_code(self, flow: AuthCode) -> Self {
        self.change(|c| c.grant = Grant::Person(Box::new(flow)))
    }

    /// A store for the tokens, the client registrations and what discovery found (shared by
    /// a fleet, kept across restarts).
    pub fn store(self, store: impl TokenStore) -> Self {
        let store: Arc<dyn TokenStore> = Arc::new(store);
        self.change(|c| c.store = Some(store))
    }

    /// The settings every client made for a resource starts from: transport, clock, timeouts,
    /// retry policy, user agent, DPoP. Its client id and secret are replaced by the identity's;
    /// leave endpoints, the issuer and resource indicators unset on it (endpoints set here
    /// would win over the discovered ones, and another issuer fails the build).
    ///
    /// ```
    /// use std::time::Duration;
    /// use oauth_layer::{OAuthClient, dpop::Dpop, resource::ResourceClient};
    ///
    /// let mcp = ResourceClient::new("https://mcp.example/mcp")?.client_settings(
    ///     OAuthClient::builder("ignored").timeout(Duration::from_secs(10)).dpop(Dpop::new()),
    /// );
    /// # let _ = mcp; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn client_settings(self, template: OAuthClientBuilder) -> Self {
        self.change(|c| c.template = template)
    }

    /// Whether a person's sign-in may run in the middle of a request (default `true`; with
    /// `false` such a request fails with [`Error::InteractionRequired`]).
    pub fn interactive(self, allowed: bool) -> Self {
        self.change(|c| c.interactive = allowed)
    }

    /// The resources configured, first one first.
    pub fn resources(&self) -> &[ResourceIdentifier] {
        &self.config.resources
    }

    /// The configured resource a request to `url` is for: same origin, and a path at or below
    /// the resource's (segment by segment); the longest such resource.
    pub fn resource_for(&self, url: &Url) -> Option<&ResourceIdentifier> {
        self.config
            .resources
            .iter()
            .filter(|r| contains(r.as_url(), url))
            .max_by_key(|r| r.as_url().path().len())
    }

    /// Whether this process already holds `resource`'s checked metadata, or the store holds
    /// what another process (or an earlier run) found, now brought into this process: either
    /// way the token can be had without a first request to find out.
    pub(crate) async fn knows_or_recalls(&self, resource: &ResourceIdentifier) -> bool {
        if cache::resources().get(resource.as_str()).is_some() {
            return true;
        }
        match &self.config.store {
            Some(store) => stored::recall(store, resource).await,
            None => false,
        }
    }

    /// What discovery found for `resource`, when it already ran (a lock-free read).
    pub(crate) fn resolved(&self, resource: &ResourceIdentifier) -> Option<Arc<Resolved>> {
        self.state
            .resolved
            .load()
            .iter()
            .find(|(r, _)| r == resource)
            .map(|(_, done)| done.clone())
    }

    /// Forgets what discovery found for `resource` when its source never got a token (the
    /// request with it failed): the documents may be stale (a server moved), so the next
    /// request starts over. A source that has had a token is kept: its failures are the
    /// ordinary ones of a token source.
    pub(crate) fn forget_if_unused(&self, resource: &ResourceIdentifier, done: &Resolved) {
        if done.source.cached().is_some() {
            return;
        }
        self.state.resolved.rcu(|all| {
            let mut all = Vec::clone(all);
            all.retain(|(r, _)| r != resource);
            all
        });
        cache::resources().forget(resource.as_str());
        cache::servers().forget(&done.issuer);
        if let Some(store) = &self.config.store {
            stored::forget(store, resource);
        }
        tracing::debug!(resource = %resource, "no token came of discovery; it starts over next time");
    }

    /// The token source for the resource at `url` (one of those configured), discovering
    /// what is needed from the resource's well-known metadata URL: for SDKs that want tokens
    /// without a middleware. The same source every time.
    pub async fn token_source(&self, url: impl AsRef<str>) -> Result<TokenSource> {
        let url = Url::parse(url.as_ref())
            .map_err(|e| Error::config(format!("the resource URL is not a URL: {e}")))?;
        let resource = self.resource_for(&url).cloned().ok_or_else(|| {
            Error::config(format!(
                "{} is not at or below a configured resource",
                url.origin().ascii_serialization()
            ))
        })?;
        Ok(self.resolve(&resource, None).await?.source.clone())
    }

    /// Discovery for `resource`, once: its metadata (from `challenge`'s `resource_metadata`
    /// when a `401` carried one), the authorization server, the identity and the source.
    /// Concurrent callers for one resource share one discovery.
    pub(crate) async fn resolve(
        &self,
        resource: &ResourceIdentifier,
        challenge: Option<&HeaderMap>,
    ) -> Result<Arc<Resolved>> {
        if let Some(done) = self.resolved(resource) {
            return Ok(done);
        }
        let gate = self.gate(resource);
        let _one_at_a_time = gate.lock().await;
        if let Some(done) = self.resolved(resource) {
            return Ok(done);
        }
        let done = Arc::new(self.discover(resource, challenge).await?);
        self.state.resolved.rcu(|all| {
            let mut all = Vec::clone(all);
            all.push((resource.clone(), done.clone()));
            all
        });
        Ok(done)
    }

    fn gate(&self, resource: &ResourceIdentifier) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .state
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, gate)) = gates.iter().find(|(r, _)| r == resource) {
            return gate.clone();
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        gates.push((resource.clone(), gate.clone()));
        gate
    }

    async fn discover(
        &self,
        resource: &ResourceIdentifier,
        challenge: Option<&HeaderMap>,
    ) -> Result<Resolved> {
        let config = &*self.config;
        let fetcher = config.template.clone().client_id("").build()?;
        let challenges = challenge.map(Challenges::from_headers).unwrap_or_default();
        let pointer = challenges.iter().find_map(|c| c.resource_metadata());
        let asked: Vec<&str> = challenges.iter().filter_map(|c| c.scope()).collect();
        let asked = (!asked.is_empty()).then(|| asked.join(" "));
        let (metadata, asked, fetched) = self
            .resource_metadata(&fetcher, resource, pointer, asked)
            .await?;
        let issuer = self.choose(resource, &metadata)?;
        let server = match cache::servers().get(&issuer) {
            Some(server) => server,
            None => {
                let server = crate::discovery::discover(&fetcher, &issuer).await?;
                cache::servers().put(&issuer, server.clone());
                server
            }
        };
        if fetched && let Some(store) = &config.store {
            stored::keep(store, resource, &metadata, asked.as_deref(), &server).await;
        }
        let needs = GrantNeeds {
            person: !matches!(config.grant, Grant::Machine),
            redirect_uri: self.redirect_uri(),
        };
        let default_identity;
        let identities = if config.identities.is_empty() {
            default_identity = [Identity::Register(
                ClientMetadata::new().client_name("oauth-layer"),
            )];
            &default_identity[..]
        } else {
            &config.identities[..]
        };
        let builder = self
            .state
            .registrations
            .client_builder(
                identities,
                &server,
                &config.template,
                config.store.as_ref(),
                &needs,
            )
            .await?;
        // The resource as its own document names it (checked to be this one): a root resource
        // written without its `/` is sent that way, as the tokens' audience will say it.
        let client = builder
            .metadata(server)
            .resource(&metadata.resource)
            .build()?;
        let scope = config
            .scope
            .clone()
            .or(asked)
            .or_else(|| metadata.scopes_supported.as_ref().map(|s| s.join(" ")))
            .filter(|s| !s.trim().is_empty());
        let flow = self.flow(scope);
        let mut source =
            TokenSource::builder(client, FlowBox(flow)).interactive(config.interactive);
        if let Some(store) = &config.store {
            source = source.store_arc(store.clone());
        }
        tracing::debug!(
            resource = %resource,
            issuer = %issuer,
            "resource discovered: tokens from this authorization server"
        );
        let source = source.build();
        let origin = [resource.as_url().origin().ascii_serialization()];
        Ok(Resolved {
            #[cfg(feature = "reqwest")]
            middleware: crate::OAuthMiddleware::from_source(source.clone())
                .interactive(config.interactive)
                .allow_origins(origin.clone())?,
            #[cfg(feature = "tower")]
            layer: crate::OAuthLayer::from_source(source.clone())
                .interactive(config.interactive)
                .allow_origins(origin)?,
            source,
            issuer,
        })
    }

    /// The resource's checked metadata: kept from an earlier fetch, else from the challenge's
    /// pointer, else from the well-known URL; and the scopes its challenge asked for (`asked`,
    /// else those of the challenge that led to the kept document, so that every client of the
    /// process asks for the same token).
    async fn resource_metadata(
        &self,
        fetcher: &OAuthClient,
        resource: &ResourceIdentifier,
        pointer: Option<&str>,
        asked: Option<String>,
    ) -> Result<(ProtectedResourceMetadata, Option<String>, bool)> {
        if let Some((known, asked_then)) = cache::resources().get(resource.as_str()) {
            return Ok((known, asked.or(asked_then), false));
        }
        let metadata = match pointer {
            Some(url) => prm::fetch_from(fetcher, resource, url).await?,
            None => prm::fetch(fetcher, resource).await?,
        };
        cache::resources().put(resource.as_str(), (metadata.clone(), asked.clone()));
        Ok((metadata, asked, true))
    }

    /// The authorization server to use: the first the resource names that the caller allows.
    fn choose(
        &self,
        resource: &ResourceIdentifier,
        metadata: &ProtectedResourceMetadata,
    ) -> Result<String> {
        let offered = metadata.authorization_servers.clone().unwrap_or_default();
        let allowed = &self.config.issuers;
        let chosen = if allowed.is_empty() {
            offered.first()
        } else {
            offered.iter().find(|issuer| allowed.contains(issuer))
        };
        match chosen {
            Some(issuer) => Ok(issuer.clone()),
            None => {
                // The document may change: do not keep one that led nowhere.
                cache::resources().forget(resource.as_str());
                Err(Error::UntrustedAuthorizationServer {
                    offered: offered
                        .iter()
                        .map(|s| crate::redact::server_text(s, &Default::default()))
                        .collect(),
                })
            }
        }
    }

    fn redirect_uri(&self) -> Option<&str> {
        match &self.config.grant {
            #[cfg(feature = "auth-code")]
            Grant::Person(flow) => flow.configured_redirect_uri(),
            Grant::Machine => None,
        }
    }

    fn flow(&self, scope: Option<String>) -> Arc<dyn Flow> {
        match &self.config.grant {
            #[cfg(feature = "auth-code")]
            Grant::Person(flow) => {
                let flow = (**flow).clone();
                Arc::new(match scope {
                    Some(scope) => flow.scope(scope),
                    None => flow,
                })
            }
            Grant::Machine => {
                let flow = ClientCredentials::new();
                Arc::new(match scope {
                    Some(scope) => flow.scope(scope),
                    None => flow,
                })
            }
        }
    }
}

/// A shared flow as a flow.
#[derive(Debug)]
struct FlowBox(Arc<dyn Flow>);

#[async_trait::async_trait]
impl Flow for FlowBox {
    async fn fetch(&self, client: &OAuthClient) -> Result<crate::Token> {
        self.0.fetch(client).await
    }

    fn cache_key(&self, client: &OAuthClient) -> crate::store::CacheKey {
        self.0.cache_key(client)
    }

    fn is_interactive(&self) -> bool {
        self.0.is_interactive()
    }

    fn upgraded(&self, need: &crate::flow::Requirements) -> Option<Arc<dyn Flow>> {
        self.0.upgraded(need)
    }
}

/// `true` when `url` is at or below `resource`: the same origin, and the resource's path a
/// prefix of the URL's, ending at a segment boundary.
fn contains(resource: &Url, url: &Url) -> bool {
    if resource.origin() != url.origin() {
        return false;
    }
    let base = resource.path().trim_end_matches('/');
    let path = url.path();
    base.is_empty()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl fmt::Debug for ResourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("ResourceClient")
            .field(
                "resources",
                &c.resources.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            )
            .field("identities", &c.identities)
            .field("authorization_servers", &c.issuers)
            .field("grant", &c.grant)
            .field("interactive", &c.interactive)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_contains_its_own_path_and_the_paths_below_it() {
        let mcp = Url::parse("https://mcp.example/mcp").unwrap();
        for inside in [
            "https://mcp.example/mcp",
            "https://mcp.example/mcp/",
            "https://mcp.example/mcp/tools?x=1",
            "https://MCP.example:443/mcp",
        ] {
            assert!(contains(&mcp, &Url::parse(inside).unwrap()), "{inside}");
        }
        for outside in [
            "https://mcp.example/mcpx",
            "https://mcp.example/",
            "https://mcp.example:8443/mcp",
            "http://mcp.example/mcp",
            "https://evil.example/mcp",
        ] {
            assert!(!contains(&mcp, &Url::parse(outside).unwrap()), "{outside}");
        }
        let root = Url::parse("https://api.example/").unwrap();
        assert!(contains(
            &root,
            &Url::parse("https://api.example/v1/x").unwrap()
        ));
    }

    #[test]
    fn the_longest_configured_resource_wins() {
        let client = ResourceClient::new("https://api.example/")
            .unwrap()
            .resource("https://api.example/admin")
            .unwrap();
        let for_url = |u: &str| {
            client
                .resource_for(&Url::parse(u).unwrap())
                .map(|r| r.as_str().to_owned())
        };
        assert_eq!(
            for_url("https://api.example/admin/users").as_deref(),
            Some("https://api.example/admin")
        );
        assert_eq!(
            for_url("https://api.example/users").as_deref(),
            Some("https://api.example/")
        );
        assert_eq!(for_url("https://other.example/"), None);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let client = ResourceClient::new("https://api.example/")
            .unwrap()
            .client_id_and_secret("id", "s3cret-value");
        assert!(!format!("{client:?}").contains("s3cret-value"));
    }
}
