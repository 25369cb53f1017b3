//! [`ResponseFuture`]: sending, and the one retry after a 401.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::replay::{ReplayableBody, try_clone_request};
use crate::attach::{Attach, calls_for_renewal, set_token};
use crate::http::BoxError;
use crate::source::TokenSource;
use crate::token::Token;

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
    pub(crate) replay: Option<(S, Request<B>)>,
    pub(crate) source: TokenSource,
    pub(crate) used: Token,
    pub(crate) attach: Attach,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
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
    S: Service<Request<B>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { fut, retry } => {
                    let response = ready!(fut.poll(cx)).map_err(Into::into)?;
                    match retry.take() {
                        Some(retry) if calls_for_renewal(response.status(), response.headers()) => {
                            this.state.set(State::Boxed {
                                fut: Box::pin(retry.run(response)),
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
    S: Service<Request<B>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    /// After a 401: drop the token that failed (unless a newer one is already cached), and if
    /// the request can be replayed, send it once more with a renewed token. A request that
    /// cannot be replayed gets its 401 back; the next request gets the renewed token.
    async fn run(self, unauthorized: Response<ResB>) -> Result<Response<ResB>, BoxError> {
        let Retry {
            replay,
            source,
            used,
            attach,
        } = self;
        source.invalidate(&used);
        let Some((mut service, mut request)) = replay else {
            tracing::debug!("401 on a request that cannot be replayed; returned as is");
            return Ok(unauthorized);
        };
        let token = attach.token(&source).await?;
        tracing::debug!("401: retrying once with a renewed token");
        set_token(request.headers_mut(), &token);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        service.call(request).await.map_err(Into::into)
    }
}

/// The slow path: wait for a token, send, and handle a 401 like the fast path does.
pub(crate) async fn authorize_and_send<S, B, ResB>(
    mut service: S,
    mut request: Request<B>,
    source: TokenSource,
    attach: Attach,
) -> Result<Response<ResB>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    let token = attach.token(&source).await?;
    set_token(request.headers_mut(), &token);
    let copy = if attach.retry_after_401 {
        try_clone_request(&request)
    } else {
        None
    };
    let response = service.call(request).await.map_err(Into::into)?;
    if !calls_for_renewal(response.status(), response.headers()) {
        return Ok(response);
    }
    let retry = Retry {
        replay: copy.map(|request| (service, request)),
        source,
        used: token,
        attach,
    };
    retry.run(response).await
}
