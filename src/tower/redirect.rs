//! [`RedirectPolicy`]: a tower-http redirect policy under which credentials stay on the origin
//! they were meant for.

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{Request, Uri};
use tower_http::follow_redirect::policy::{Action, Attempt, Policy};

use super::ReplayableBody;
use crate::request::origin::OriginRef;

/// A redirect policy for tower-http's `FollowRedirect` that never lets a credential leave the
/// origin of the request the caller made (SECURITY.md rule 25).
///
/// tower-http's `FollowRedirect` builds every hop from the headers of the *first* request, and
/// its default policy removes `Authorization` only on a hop that itself changes origin. So in a
/// chain `A → B → B` the second hop on `B` carries the credentials that were meant for `A`. This
/// policy compares every hop with the first request instead: a hop to any other origin goes out
/// without `Authorization`, `Proxy-Authorization` and `Cookie`, however the chain got there.
/// It follows at most 20 redirects (like the default policy, Firefox and the Fetch standard),
/// and replays bodies that implement [`ReplayableBody`] on `307`/`308`.
///
/// [`OAuthLayer`](super::OAuthLayer) refuses to wrap a `FollowRedirect` that uses any other
/// policy, because from outside it cannot see the hops. Where the redirect layer is outside
/// ours (the order this crate recommends), the layer attaches tokens only to its own origins on
/// every hop whatever the policy; this one also protects the caller's own credentials.
///
/// ```
/// use oauth_layer::{OAuthClient, OAuthLayer, tower::RedirectPolicy};
/// use tower_http::follow_redirect::FollowRedirectLayer;
///
/// # fn build() -> oauth_layer::Result<()> {
/// # let client = OAuthClient::builder("id").secret("s").token_url("https://idp.example/token").build()?;
/// let service = tower::ServiceBuilder::new()
///     .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
///     .layer(OAuthLayer::client_credentials(client).allow_origins(["https://api.example"])?)
///     .service_fn(|req: http::Request<String>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    /// The URI of the request the caller made, once the chain has started.
    first: Option<Uri>,
    remaining: usize,
}

impl RedirectPolicy {
    /// The default number of redirects followed in one chain.
    pub const DEFAULT_MAX_REDIRECTS: usize = 20;

    /// Follows up to [`DEFAULT_MAX_REDIRECTS`](Self::DEFAULT_MAX_REDIRECTS) redirects.
    pub fn new() -> Self {
        Self::max_redirects(Self::DEFAULT_MAX_REDIRECTS)
    }

    /// Follows up to `max` redirects in one chain; the answer past that is returned as it is.
    /// `0` follows none.
    pub fn max_redirects(max: usize) -> Self {
        Self {
            first: None,
            remaining: max,
        }
    }
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: ReplayableBody, E> Policy<B, E> for RedirectPolicy {
    fn redirect(&mut self, _attempt: &Attempt<'_>) -> Result<Action, E> {
        if self.remaining == 0 {
            return Ok(Action::Stop);
        }
        self.remaining -= 1;
        Ok(Action::Follow)
    }

    fn on_request(&mut self, request: &mut Request<B>) {
        let Some(first) = &self.first else {
            self.first = Some(request.uri().clone());
            return;
        };
        if !same_origin(first, request.uri()) {
            let headers = request.headers_mut();
            for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                headers.remove(name);
            }
            headers.remove("cookie2");
        }
    }

    fn clone_body(&self, body: &B) -> Option<B> {
        body.try_clone_body()
    }
}

/// Scheme, host and port equal (ASCII case-insensitive), default ports filled in. A URI without
/// them is never the same origin as anything.
pub(crate) fn same_origin(a: &Uri, b: &Uri) -> bool {
    match (OriginRef::of_uri(a), OriginRef::of_uri(b)) {
        (Some(a), Some(b)) => a.same_as(b),
        _ => false,
    }
}

/// Whether tower-http's `FollowRedirect` is somewhere inside the service type `S` with a policy
/// other than [`RedirectPolicy`]: such a stack re-sends our token on hops we cannot see.
pub(crate) fn hides_unsafe_redirects<S>() -> bool {
    let name = std::any::type_name::<S>();
    name.contains("tower_http::follow_redirect::FollowRedirect<")
        && !name.contains(std::any::type_name::<RedirectPolicy>())
}

/// Whether `S` follows redirects with tower-http's `FollowRedirect`, whatever its policy.
pub(crate) fn follows_redirects<S>() -> bool {
    std::any::type_name::<S>().contains("tower_http::follow_redirect::FollowRedirect<")
}
