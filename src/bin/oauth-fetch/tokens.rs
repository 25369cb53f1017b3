//! Where a run's tokens come from: one token source, for the authorization server the options
//! name, or each URL's resource (the resource-first mode), and the HTTP client that sends them.

use oauth_layer::resource::ResourceClient;
use oauth_layer::{OAuthMiddleware, Token, TokenSource};
use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;

use crate::build::build_source;
use crate::events::{Events, Observer};
use crate::options::{Options, Stop, is_interactive, usage};
use crate::resource::build_resources;

/// The tokens of a run.
pub(crate) enum Tokens {
    /// `--token-url`, `--issuer`, `--provider` or a key file named the authorization server.
    Source(TokenSource),
    /// Each URL's resource names its own (RFC 9728).
    Resources(ResourceClient),
}

impl Tokens {
    /// The tokens the options ask for.
    pub(crate) async fn build(o: &Options, events: &Events) -> Result<Self, Stop> {
        Ok(if o.resource_first {
            Self::Resources(build_resources(o).await?)
        } else {
            Self::Source(build_source(o, events).await?)
        })
    }

    /// The HTTP client that gives the URLs of `o` their tokens, and nothing else any: redirects
    /// are followed within a URL's origin only, and one to another origin is printed as the 3xx
    /// it is (the token never follows it). Below the token's middleware, `events` watches each
    /// attempt go out.
    pub(crate) fn client(
        &self,
        o: &Options,
        events: &Events,
    ) -> Result<ClientWithMiddleware, Stop> {
        // The URLs are reached as the server is: with the client certificate (which bound
        // tokens need) and the private certificate authority, when given.
        let mut transport = match &o.client_certificate {
            Some(certificate) => certificate
                .reqwest_client_builder()
                .redirect(oauth_layer::reqwest::redirect_policy()),
            None => oauth_layer::reqwest::client_builder(),
        };
        if let Some(pem) = &o.ca_certificate {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| usage(format!("--ca-cert: {e}")))?;
            for root in roots {
                transport = transport.add_root_certificate(root);
            }
        }
        let transport = transport
            .build()
            .map_err(|e| usage(format!("cannot build the HTTP client: {e}")))?;
        let client = reqwest_middleware::ClientBuilder::new(transport);
        let client = match self {
            Self::Source(tokens) => {
                // The token goes to the origins of the URLs named on the command line, and
                // nowhere else.
                let origins = o
                    .urls
                    .iter()
                    .map(|(_, url)| url.origin().ascii_serialization())
                    .filter(|origin| {
                        origin.starts_with("https://") || crate::is_loopback_origin(origin)
                    })
                    .collect::<Vec<_>>();
                // The interactive flows may sign in during a request (the first one).
                let mut middleware = OAuthMiddleware::from_source(tokens.clone())
                    .interactive(is_interactive(&o.flow));
                if let Some(certificate) = &o.client_certificate {
                    middleware = middleware.client_certificate(certificate);
                }
                if !origins.is_empty() {
                    middleware = middleware
                        .allow_origins(origins)
                        .map_err(|e| usage(e.to_string()))?;
                }
                client.with(middleware)
            }
            // Each resource's token goes to that resource only (its origin, its path and
            // below), and a person may sign in during a request.
            Self::Resources(resources) => {
                client.with(OAuthMiddleware::for_resources(resources.clone()))
            }
        };
        Ok(client
            .with(Observer {
                events: events.clone(),
            })
            .build())
    }

    /// The token held for `url` after its request (`sent`: whether the request carried one),
    /// for the metadata `--output json` prints.
    pub(crate) async fn held(&self, url: &Url, sent: bool) -> Option<Token> {
        match self {
            Self::Source(tokens) => tokens.cached(),
            // A request that carried a token found its resource's source: asking for it again
            // sends nothing.
            Self::Resources(resources) if sent => resources
                .token_source(url.as_str())
                .await
                .ok()
                .and_then(|tokens| tokens.cached()),
            Self::Resources(_) => None,
        }
    }
}
