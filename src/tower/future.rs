//! [`ResponseFuture`]: sending, and the one retry after a 401.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::redirect::same_origin;
use super::replay::{Replay, ReplayableBody};
use super::service::InnerRedirects;
use crate::request::challenge::{Acted, Step, Verdict, assess};
use crate::request::credentials::{
    SentWith, needs_preparing, nonce_origin, prepare_proof, proof_for, remember_nonce_at,
    set_credentials,
};
use crate::request::upgrade::upgrade;
use crate::request::withheld::TokenWithheld;
use crate::source::TokenSource;
use crate::transport::BoxError;

type BoxResponse<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

pin_project! {
    /// The response future of [`OAuthService`](super::OAuthService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // The token was at hand: the request is with the inner service.
        Sent {
            #[pin]
            fut: S::Future,
            retry: Option<Retry<S, B>>,
        },
        // Waiting for a token, or renewing and retrying after a 401.
        Boxed {
            fut: BoxResponse<S::Response>,
        },
    }
}

/// What a 401 needs: the token to drop and, when the request can be sent again, a readied
/// service and a copy of the request.
pub(crate) struct Retry<S, B> {
    pub(crate) replay: Option<Box<Replay<S, B>>>,
    pub(crate) source: TokenSource,
    /// The issuance number of the token sent.
    pub(crate) used: u64,
    pub(crate) interactive: bool,
    /// Where the request went, kept only when the inner service follows redirects: a 401 from a
    /// redirect target on another origin never renews a token nor resends one.
    pub(crate) sent_to: Option<Box<http::Uri>>,
    /// The thumbprint of the client certificate the pipeline declared it presents.
    pub(crate) presented: Option<std::sync::Arc<str>>,
}

impl<S, B> Retry<S, B> {
    /// What to do about `response` to a request sent as `sent`: nothing when it came from a
    /// redirect target on another origin (not ours to act on).
    fn verdict<ResB>(&self, response: &Response<ResB>, sent: &SentWith) -> Verdict {
        verdict(self.sent_to.as_deref(), response, sent)
    }
}

fn verdict<ResB>(
    sent_to: Option<&http::Uri>,
    response: &Response<ResB>,
    sent: &SentWith,
) -> Verdict {
    if from_redirect_target(sent_to, response) {
        return Verdict::Done;
    }
    assess(response.status(), response.headers(), &sent.as_sent())
}

/// Whether `response` came from a redirect target on another origin than `sent_to` (tower-http's
/// `FollowRedirect` records the URI that answered).
fn from_redirect_target<ResB>(sent_to: Option<&http::Uri>, response: &Response<ResB>) -> bool {
    // Without a redirect-following inner service there is nothing to look up.
    let Some(sent) = sent_to else {
        return false;
    };
    response
        .extensions()
        .get::<tower_http::follow_redirect::RequestUri>()
        .is_some_and(|answered| !same_origin(sent, &answered.0))
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(crate) fn sent(fut: S::Future, retry: Option<Retry<S, B>>) -> Self {
        Self {
            state: State::Sent { fut, retry },
        }
    }

    pub(crate) fn boxed(fut: BoxResponse<S::Response>) -> Self {
        Self {
            state: State::Boxed { fut },
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { fut, retry } => {
                    let response = ready!(fut.poll(cx)).map_err(Into::into)?;
                    // The fast path sends bearer tokens only (DPoP-bound ones take the boxed
                    // path, which makes their proofs).
                    let verdict = match retry.as_ref() {
                        Some(retry) => retry.verdict(&response, &SentWith::default()),
                        None => Verdict::Done,
                    };
                    match retry.take() {
                        Some(retry) if verdict != Verdict::Done => {
                            this.state.set(State::Boxed {
                                fut: Box::pin(retry.run(verdict, response)),
                            });
                        }
                        _ => return Poll::Ready(Ok(response)),
                    }
                }
                StateProj::Boxed { fut } => return fut.as_mut().poll(cx),
            }
        }
    }
}

impl<S, B, ResB> Retry<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    /// Acts on what the server said (SECURITY.md rules 29, 48 and 49): a rejected token is
    /// dropped (unless a newer one is already cached) and renewed, a DPoP nonce challenge is
    /// answered with a proof carrying the new nonce; each at most once per request, and only
    /// when the request can be replayed. A request that cannot be replayed gets its answer back;
    /// the next request gets the renewed token.
    async fn run(
        self,
        mut verdict: Verdict,
        mut response: Response<ResB>,
    ) -> Result<Response<ResB>, BoxError> {
        let Retry {
            mut replay,
            mut source,
            mut used,
            interactive,
            sent_to,
            presented,
        } = self;
        // The token the next send carries: a renewed or upgraded one, else the source's own.
        let mut next_token = None;
        let mut acted = Acted::default();
        loop {
            match acted.next(verdict, replay.is_some()) {
                Step::Return => return Ok(response),
                Step::DropToken => {
                    source.invalidate_issue(used);
                    tracing::debug!("401 on a request that cannot be replayed; returned as is");
                    return Ok(response);
                }
                Step::Renew => {
                    source.invalidate_issue(used);
                    next_token = Some(source.token_for(interactive).await?);
                    tracing::debug!("401: retrying once with a renewed token");
                    source.observe_retry(crate::metrics::Retry::Unauthorized);
                }
                Step::Resend => {
                    tracing::debug!("DPoP nonce challenge: retrying once with the new nonce");
                    source.observe_retry(crate::metrics::Retry::DpopNonce);
                }
                Step::Upgrade(need) => {
                    source.observe_retry(crate::metrics::Retry::StepUp);
                    let (upgraded, token) = upgrade(&source, need, used, interactive).await?;
                    source = upgraded;
                    next_token = Some(token);
                }
            }
            let Some((mut service, mut request)) = replay.take().and_then(|r| r.into_parts())
            else {
                return Ok(response);
            };
            let token = match &next_token {
                Some(token) => token.clone(),
                None => source.token_for(interactive).await?,
            };
            used = token.issue();
            // A further copy, for one more challenge of another kind.
            replay = Replay::of(&request, || service.clone());
            if needs_preparing(&token, &source) {
                prepare_proof(&token, &source, request.uri()).await;
            }
            let proof = proof_for(
                &token,
                &source,
                request.method(),
                request.uri(),
                presented.as_deref(),
            )?;
            let nonce_origin = nonce_origin(&proof.sent, request.uri());
            let sent = set_credentials(request.headers_mut(), &token, proof);
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            response = service.call(request).await.map_err(Into::into)?;
            if let Some(origin) = &nonce_origin {
                remember_nonce_at(&source, origin, response.headers());
            }
            verdict = self::verdict(sent_to.as_deref(), &response, &sent);
        }
    }
}

/// How a request that waits for its token is sent: the layer's settings for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    /// Whether the source may ask a person.
    pub(crate) interactive: bool,
    /// Whether a copy is kept for the one retry after a 401.
    pub(crate) retry_after_401: bool,
    pub(crate) redirects: InnerRedirects,
    /// The caller's fast path just found no fresh token: the wait goes straight to the
    /// source's slow path, which reads the cached token again under its lock.
    pub(crate) missed: bool,
}

/// The slow path (no fresh token at hand, or a DPoP-bound token that needs a proof): wait for a
/// token, send, and act on the answer like the fast path does.
///
/// A function returning an `async move` block rather than an `async fn`: an `async fn` keeps
/// its arguments twice in its state (as captured, and as moved into its body), so each waiting
/// request's boxed future held the service, the request and the source twice. What lives across
/// the send is kept small too: the token is dropped before it (only its issuance number is
/// kept), and the origin a DPoP nonce is remembered under is computed only when the request
/// carried a DPoP proof (no URI clone for a bearer token).
// Not an `async fn` on purpose: see above (the test below guards the size).
#[allow(clippy::manual_async_fn)]
pub(crate) fn authorize_and_send<S, B, ResB>(
    mut service: S,
    mut request: Request<B>,
    source: TokenSource,
    how: Waiting,
    presented: Option<std::sync::Arc<str>>,
) -> impl Future<Output = Result<Response<ResB>, BoxError>> + Send + 'static
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    async move {
        let Waiting {
            interactive,
            retry_after_401,
            redirects,
            missed,
        } = how;
        let token = if missed {
            source.token_after_miss(interactive).await?
        } else {
            source.token_for(interactive).await?
        };
        if needs_preparing(&token, &source) {
            Box::pin(prepare_proof(&token, &source, request.uri())).await;
        }
        // Scoped: the token is gone before the send (only its issuance number is kept), and
        // what judges the answer is gone before the (rare) retry, so that nothing but the inner
        // service's future and that lives across the send, in room the wait's overlaps.
        let retrying = {
            let token = token;
            let replay = if retry_after_401 {
                Replay::of(&request, || service.clone())
            } else {
                None
            };
            let sent_to =
                (redirects == InnerRedirects::Safe).then(|| Box::new(request.uri().clone()));
            let proof = proof_for(
                &token,
                &source,
                request.method(),
                request.uri(),
                presented.as_deref(),
            )?;
            let nonce_origin = nonce_origin(&proof.sent, request.uri());
            let sent = set_credentials(request.headers_mut(), &token, proof);
            let fut = service.call(request);
            let retry = Retry {
                replay,
                source,
                used: token.issue(),
                interactive,
                sent_to,
                presented,
            };
            let response = fut.await.map_err(Into::into)?;
            if let Some(origin) = &nonce_origin {
                remember_nonce_at(&retry.source, origin, response.headers());
            }
            let verdict = retry.verdict(&response, &sent);
            if verdict == Verdict::Done {
                return Ok(response);
            }
            // Boxed: it is rare, and inline it would double the size of every waiting request.
            Box::pin(retry.run(verdict, response))
        };
        retrying.await
    }
}

/// Sends a request that may not carry a token, and marks a 401 in answer with why.
pub(crate) async fn send_withheld<F, ResB, E>(
    fut: F,
    withheld: TokenWithheld,
) -> Result<Response<ResB>, BoxError>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
{
    let mut response = fut.await.map_err(Into::into)?;
    let status = response.status();
    withheld.mark(status, response.extensions_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use super::*;

    /// A request waiting for a token keeps each of its arguments once in its boxed future (an
    /// `async fn` would keep them twice: 864 bytes here before, in a debug build), and what
    /// lives across the send overlaps the wait.
    #[test]
    fn a_waiting_request_keeps_its_arguments_once() {
        let client = crate::OAuthClient::builder("client")
            .secret("secret")
            .token_url("https://auth.example/token")
            .build()
            .unwrap();
        let source = TokenSource::new(client, crate::flow::ClientCredentials::new());
        let service =
            tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        let arguments = std::mem::size_of_val(&service)
            + std::mem::size_of::<Request<()>>()
            + std::mem::size_of::<TokenSource>()
            + std::mem::size_of::<Option<std::sync::Arc<str>>>()
            + 3;
        let wait = std::mem::size_of_val(&source.token_for(false));
        let waiting = authorize_and_send(
            service,
            Request::new(()),
            source,
            Waiting {
                interactive: false,
                retry_after_401: true,
                redirects: InnerRedirects::None,
                missed: false,
            },
            None,
        );
        let size = std::mem::size_of_val(&waiting);
        eprintln!("arguments {arguments}, wait {wait}, waiting request {size}");
        assert!(
            size <= arguments + wait + 48,
            "{size} bytes: arguments {arguments} (kept twice?), the wait {wait}"
        );
    }
}
