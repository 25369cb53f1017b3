//! Protected resources that describe themselves (RFC 9728) and take only tokens issued for them
//! (RFC 8707): what [`ProtectedResource`] declares, its metadata document, and the challenge
//! that points clients at it.

use http::HeaderValue;
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde_json::json;

use super::reply::{Response, json_response};
use super::state::Shared;

/// Where protected resource metadata lives (RFC 9728 §3.1): this prefix, then the resource's
/// path.
pub(super) const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// A protected resource with RFC 9728 metadata, declared with
/// [`TestServerBuilder::protected_resource`](super::TestServerBuilder::protected_resource) or
/// [`ResourceServerBuilder::resource`](super::ResourceServerBuilder::resource).
///
/// It serves every path equal to its path or below it (`/mcp`, `/mcp/tools`), with the
/// resource identifier `{server url}{path}` (`http://127.0.0.1:PORT/mcp`), and publishes its
/// metadata at `{server url}/.well-known/oauth-protected-resource{path}`:
/// `{"resource": <identifier>, "authorization_servers": [...], "scopes_supported": [...],
/// "bearer_methods_supported": ["header"]}` (with `dpop_signing_alg_values_supported` when
/// the server knows DPoP).
///
/// Requests are checked like those under `/api/` (the token, its expiry, DPoP, the per-path
/// rules of the builder), and also:
/// - with [`require_audience`](Self::require_audience) (the default), the token must have been
///   issued with this resource's identifier among its `resource` parameters (RFC 8707), or the
///   answer is 401 `invalid_token`: a token for another resource is never accepted here;
/// - with [`scope`](Self::scope), the token must carry that scope (403
///   `insufficient_scope`).
///
/// Every 401 challenge names the metadata:
/// `WWW-Authenticate: Bearer resource_metadata="<well-known URL>"` without a token, or
/// `Bearer error="invalid_token", resource_metadata="..."` for a token refused, with
/// `scope="..."` added when [`scope`](Self::scope) is set; a 403 `insufficient_scope` names it
/// too, as the MCP authorization spec's step-up expects. A successful answer is the JSON of
/// `/api/` with `"resource"` (this identifier) and `"resources"` (the token's) added.
///
/// Some options make it lie, for the refusals a client must get right:
/// [`document_resource`](Self::document_resource),
/// [`challenge_without_metadata`](Self::challenge_without_metadata) and
/// [`challenge_metadata_url`](Self::challenge_metadata_url).
///
/// ```no_run
/// use oauth_layer::testing::{ProtectedResource, TestServer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder()
///     .protected_resource(ProtectedResource::new("/mcp").scopes_supported(["mcp:tools"]))
///     .start()
///     .await?;
/// assert_eq!(server.resource_identifier("/mcp"), format!("{}/mcp", server.url()));
/// assert_eq!(
///     server.resource_metadata_url("/mcp"),
///     format!("{}/.well-known/oauth-protected-resource/mcp", server.url())
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    pub(super) path: String,
    pub(super) authorization_servers: Option<Vec<String>>,
    pub(super) scopes_supported: Option<Vec<String>>,
    pub(super) scope: Option<String>,
    pub(super) require_audience: bool,
    pub(super) document_resource: Option<String>,
    pub(super) challenge_metadata: ChallengeMetadata,
}

/// What the `resource_metadata` parameter of a challenge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ChallengeMetadata {
    /// The resource's own well-known URL.
    Own,
    /// Nothing: the client has to build the well-known URL itself.
    Omitted,
    /// Another URL.
    Url(String),
}

impl ProtectedResource {
    /// A resource at `path` (a leading `/` is added when missing; a trailing `/` is dropped, so
    /// `/` is the whole server, whose metadata is at the bare well-known URL),
    /// naming the server's own issuer as its authorization server, with no scopes listed,
    /// requiring tokens issued for it.
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Self {
            path,
            authorization_servers: None,
            scopes_supported: None,
            scope: None,
            require_audience: true,
            document_resource: None,
            challenge_metadata: ChallengeMetadata::Own,
        }
    }

    /// The path the resource serves (as normalised by [`new`](Self::new)).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds `issuer` to the document's `authorization_servers`. The first call replaces the
    /// default (the issuer of the authorization server), so a list may name foreign issuers
    /// only, or the own one among others (add it with
    /// [`TestServer::url`](super::TestServer::url)). Tokens are still checked against the
    /// authorization server whose tokens the resource knows.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers
            .get_or_insert_with(Vec::new)
            .push(issuer.into());
        self
    }

    /// The document's `scopes_supported`. Default: left out.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// A scope (space-separated scopes) every request needs: sent as `scope="..."` in every 401
    /// challenge, and a token without all of it gets 403 `insufficient_scope`. Default: none.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Whether a token must have been issued for this resource (its identifier among the
    /// token's RFC 8707 `resource` values); otherwise it gets 401 `invalid_token`. Default:
    /// `true`. When `false`, any valid token of the authorization server is accepted.
    pub fn require_audience(mut self, require: bool) -> Self {
        self.require_audience = require;
        self
    }

    /// Hostile: the metadata document names `resource` instead of this resource's identifier,
    /// as a resource handing out another resource's document would (RFC 9728 §3.3 says a
    /// client must then stop).
    pub fn document_resource(mut self, resource: impl Into<String>) -> Self {
        self.document_resource = Some(resource.into());
        self
    }

    /// Hostile (or merely old): 401 challenges carry no `resource_metadata`, so a client must
    /// fall back to the well-known URL it builds from the resource (RFC 9728 §3.1).
    pub fn challenge_without_metadata(mut self) -> Self {
        self.challenge_metadata = ChallengeMetadata::Omitted;
        self
    }

    /// Hostile: 401 challenges name `url` as `resource_metadata`, for instance another
    /// resource's metadata or an attacker's.
    pub fn challenge_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.challenge_metadata = ChallengeMetadata::Url(url.into());
        self
    }

    /// Whether `path` is this resource or below it.
    pub(super) fn serves(&self, path: &str) -> bool {
        match path.strip_prefix(self.path.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/') || self.path.is_empty(),
            None => false,
        }
    }

    /// `{base}{path}`: the identifier a client derives from the resource's URL.
    pub(super) fn identifier(&self, base: &str) -> String {
        if self.path.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}{}", self.path)
        }
    }

    /// Where the metadata is published: `{base}/.well-known/oauth-protected-resource{path}`.
    pub(super) fn metadata_url(&self, base: &str) -> String {
        format!("{base}{WELL_KNOWN_PREFIX}{}", self.path)
    }
}

/// The declared protected resources of one server.
#[derive(Debug, Clone, Default)]
pub(super) struct Resources {
    list: Vec<ProtectedResource>,
}

impl Resources {
    /// Adds `resource`, replacing one with the same path.
    pub(super) fn add(&mut self, resource: ProtectedResource) {
        self.list.retain(|r| r.path != resource.path);
        self.list.push(resource);
    }

    /// The resource serving `path`: the one with the longest matching path.
    pub(super) fn serving(&self, path: &str) -> Option<&ProtectedResource> {
        self.list
            .iter()
            .filter(|r| r.serves(path))
            .max_by_key(|r| r.path.len())
    }

    /// The resource whose metadata is published at `path`.
    pub(super) fn by_metadata_path(&self, path: &str) -> Option<&ProtectedResource> {
        let rest = path.strip_prefix(WELL_KNOWN_PREFIX)?;
        self.list.iter().find(|r| r.path == rest)
    }
}

/// A protected resource as one request sees it: its declaration and the base URL of the server
/// serving it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Serving<'a> {
    pub(super) resource: &'a ProtectedResource,
    pub(super) base: &'a str,
}

impl Serving<'_> {
    pub(super) fn identifier(&self) -> String {
        self.resource.identifier(self.base)
    }

    /// Adds `resource_metadata` (and `scope`) to the first challenge of a 401 or 403.
    pub(super) fn decorate(&self, response: &mut Response) {
        if !matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return;
        }
        let mut params = Vec::new();
        let metadata_url = match &self.resource.challenge_metadata {
            ChallengeMetadata::Own => Some(self.resource.metadata_url(self.base)),
            ChallengeMetadata::Omitted => None,
            ChallengeMetadata::Url(url) => Some(url.clone()),
        };
        if let Some(url) = metadata_url {
            params.push(format!(r#"resource_metadata="{url}""#));
        }
        let mut challenges: Vec<HeaderValue> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .cloned()
            .collect();
        let Some(first) = challenges.first().and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Some(scope) = &self.resource.scope
            && !first.contains("scope=")
        {
            params.push(format!(r#"scope="{scope}""#));
        }
        if params.is_empty() {
            return;
        }
        let params = params.join(", ");
        let decorated = if first.contains(' ') {
            format!("{first}, {params}")
        } else {
            format!("{first} {params}")
        };
        let Ok(decorated) = HeaderValue::try_from(decorated) else {
            return;
        };
        challenges[0] = decorated;
        let headers = response.headers_mut();
        headers.remove(WWW_AUTHENTICATE);
        for challenge in challenges {
            headers.append(WWW_AUTHENTICATE, challenge);
        }
    }
}

/// `GET /.well-known/oauth-protected-resource{path}` (RFC 9728 §3.2).
pub(super) fn metadata(authority: &Shared, serving: Serving<'_>) -> Response {
    let resource = serving.resource;
    let mut document = json!({
        "resource": resource
            .document_resource
            .clone()
            .unwrap_or_else(|| serving.identifier()),
        "authorization_servers": resource
            .authorization_servers
            .clone()
            .unwrap_or_else(|| vec![authority.config.issuer.clone()]),
        "bearer_methods_supported": ["header"],
    });
    if let Some(scopes) = &resource.scopes_supported {
        document["scopes_supported"] = json!(scopes);
    }
    if authority.config.support_dpop {
        document["dpop_signing_alg_values_supported"] =
            json!(super::dpop::ALGS.split(' ').collect::<Vec<_>>());
    }
    json_response(StatusCode::OK, &document)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:4000";

    #[test]
    fn paths_are_normalised_and_served_below_themselves() {
        let mcp = ProtectedResource::new("mcp/");
        assert_eq!(mcp.path(), "/mcp");
        assert!(mcp.serves("/mcp"));
        assert!(mcp.serves("/mcp/tools"));
        assert!(!mcp.serves("/mcpx"));
        assert!(!mcp.serves("/"));
        assert_eq!(mcp.identifier(BASE), "http://127.0.0.1:4000/mcp");
        assert_eq!(
            mcp.metadata_url(BASE),
            "http://127.0.0.1:4000/.well-known/oauth-protected-resource/mcp"
        );

        let root = ProtectedResource::new("/");
        assert_eq!(root.path(), "");
        assert!(root.serves("/anything"));
        assert_eq!(root.identifier(BASE), "http://127.0.0.1:4000/");
        assert_eq!(
            root.metadata_url(BASE),
            "http://127.0.0.1:4000/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn the_longest_declared_path_serves_a_request() {
        let mut resources = Resources::default();
        resources.add(ProtectedResource::new("/"));
        resources.add(ProtectedResource::new("/mcp"));
        resources.add(ProtectedResource::new("/mcp/admin").scope("admin"));
        let serving = |path| resources.serving(path).map(ProtectedResource::path);
        assert_eq!(serving("/mcp/admin/x"), Some("/mcp/admin"));
        assert_eq!(serving("/mcp/tools"), Some("/mcp"));
        assert_eq!(serving("/other"), Some(""));
        let by_metadata = |path| {
            resources
                .by_metadata_path(path)
                .map(ProtectedResource::path)
        };
        assert_eq!(
            by_metadata("/.well-known/oauth-protected-resource/mcp"),
            Some("/mcp")
        );
        assert_eq!(
            by_metadata("/.well-known/oauth-protected-resource"),
            Some("")
        );
        assert_eq!(
            by_metadata("/.well-known/oauth-protected-resource/mcp/tools"),
            None
        );
        // Declaring a path again replaces it.
        resources.add(ProtectedResource::new("/mcp/admin"));
        assert_eq!(
            resources
                .serving("/mcp/admin")
                .and_then(|r| r.scope.clone()),
            None
        );
    }
}
