#![allow(clippy::unwrap_used, clippy::expect_used)]
//! gRPC through the tower layer: a real tonic client over a `tonic::transport::Channel` (h2c on
//! loopback) wrapped in `OAuthLayer`, a real tonic server that rejects chosen tokens with
//! `UNAUTHENTICATED`, and the crate's `TestServer` issuing numbered tokens (`tok-1`, `tok-2`, ...).
//! The messages are raw bytes through a hand-written codec: no protoc.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Full};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthLayer, TokenSource, flow::ClientCredentials};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tower::ServiceBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Raw bytes as gRPC messages.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// How the gRPC server answers a token it rejects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reject {
    /// A trailers-only response: HTTP 200 with `grpc-status: 16` in the headers (what tonic's
    /// interceptors send).
    AtOnce,
    /// Headers first, then `grpc-status: 16` in the trailers.
    InTrailers,
}

/// One call the gRPC server saw: the `Authorization` it carried, and the message when it was
/// accepted.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    authorization: String,
    message: Option<Bytes>,
}

/// A tonic server on loopback whose `/test.Echo/Say` echoes the message for accepted tokens.
struct GrpcServer {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl GrpcServer {
    /// Rejects the tokens `rejects` names (by their number), the way `how` says.
    async fn start(rejects: impl Fn(&str) -> bool + Send + Sync + 'static, how: Reject) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let rejects = Arc::new(rejects);
        let svc = {
            let calls = calls.clone();
            tower::service_fn(move |req: http::Request<tonic::body::Body>| {
                let calls = calls.clone();
                let rejects = rejects.clone();
                async move {
                    let authorization = req
                        .headers()
                        .get(AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let token = authorization.strip_prefix("Bearer ").unwrap_or("");
                    if token.is_empty() || rejects(token) {
                        calls.lock().unwrap().push(Call {
                            authorization,
                            message: None,
                        });
                        return Ok::<_, Infallible>(rejection(how));
                    }
                    let seen = Arc::new(Mutex::new(None));
                    let echo = {
                        let seen = seen.clone();
                        tower::service_fn(move |req: tonic::Request<Bytes>| {
                            *seen.lock().unwrap() = Some(req.get_ref().clone());
                            let reply = req.into_inner();
                            async move { Ok::<_, Status>(tonic::Response::new(reply)) }
                        })
                    };
                    let response = tonic::server::Grpc::new(Raw).unary(echo, req).await;
                    let message = seen.lock().unwrap().take();
                    calls.lock().unwrap().push(Call {
                        authorization,
                        message,
                    });
                    Ok(response)
                }
            })
        };
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    svc,
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stop.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            calls,
            _shutdown: shutdown,
        }
    }

    fn origin(&self) -> http::Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The tokens the server saw, in order.
    fn tokens(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .map(|c| c.authorization.trim_start_matches("Bearer ").to_owned())
            .collect()
    }
}

fn rejection(how: Reject) -> http::Response<tonic::body::Body> {
    let status = Status::unauthenticated("token not accepted");
    match how {
        Reject::AtOnce => status.into_http(),
        Reject::InTrailers => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "16".parse().unwrap());
            trailers.insert("grpc-message", "token%20not%20accepted".parse().unwrap());
            let body = Full::new(Bytes::new()).with_trailers(async move { Some(Ok(trailers)) });
            let mut response = http::Response::new(tonic::body::Body::new(body));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, "application/grpc".parse().unwrap());
            response
        }
    }
}

async fn token_server() -> TestServer {
    TestServer::builder()
        .client("app", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .numbered_access_tokens("tok-")
        .start()
        .await
        .unwrap()
}

async fn channel(server: &GrpcServer) -> tonic::transport::Channel {
    tonic::transport::Channel::builder(server.origin())
        .connect()
        .await
        .unwrap()
}

/// One unary call to `/test.Echo/Say` through any tonic-compatible service.
async fn say<T>(grpc: &mut tonic::client::Grpc<T>, message: &'static str) -> Result<Bytes, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
{
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.into().to_string()))?;
    let response = grpc
        .unary(
            tonic::Request::new(Bytes::from_static(message.as_bytes())),
            PathAndQuery::from_static("/test.Echo/Say"),
            Raw,
        )
        .await?;
    Ok(response.into_inner())
}

#[tokio::test]
async fn a_unary_call_rejected_at_once_is_retried_once_with_a_renewed_token() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|token| token == "tok-1", Reject::AtOnce).await;
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(tokens.oauth_client("app").unwrap()).grpc())
        .service(channel(&server).await);
    let mut grpc = tonic::client::Grpc::with_origin(service, server.origin());

    let reply = say(&mut grpc, "hello").await.unwrap();

    assert_eq!(reply, "hello");
    assert_eq!(tokens.token_requests(), 2);
    assert_eq!(
        server.calls(),
        [
            Call {
                authorization: "Bearer tok-1".into(),
                message: None
            },
            Call {
                authorization: "Bearer tok-2".into(),
                message: Some(Bytes::from_static(b"hello"))
            },
        ]
    );

    // The renewed token serves the next call.
    assert_eq!(say(&mut grpc, "again").await.unwrap(), "again");
    assert_eq!(tokens.token_requests(), 2);
    assert_eq!(server.tokens(), ["tok-1", "tok-2", "tok-2"]);
}

#[tokio::test]
async fn a_second_unauthenticated_is_the_calls_answer() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|_| true, Reject::AtOnce).await;
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(tokens.oauth_client("app").unwrap()).grpc())
        .service(channel(&server).await);
    let mut grpc = tonic::client::Grpc::with_origin(service, server.origin());

    let status = say(&mut grpc, "hello").await.unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token not accepted");
    assert_eq!(server.tokens(), ["tok-1", "tok-2"]);
    assert_eq!(tokens.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_rejected_calls_renew_the_token_once() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|token| token == "tok-1", Reject::AtOnce).await;
    let source = TokenSource::new(
        tokens.oauth_client("app").unwrap(),
        ClientCredentials::new(),
    );
    source.token().await.unwrap(); // every call starts with tok-1
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::from_source(source).grpc())
        .service(channel(&server).await);
    let grpc = tonic::client::Grpc::with_origin(service, server.origin());

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut grpc = grpc.clone();
        calls.spawn(async move { say(&mut grpc, "hello").await });
    }
    while let Some(reply) = calls.join_next().await {
        assert_eq!(reply.unwrap().unwrap(), "hello");
    }

    assert_eq!(tokens.token_requests(), 2);
    let seen = server.tokens();
    assert_eq!(seen.iter().filter(|t| *t == "tok-1").count(), 16);
    assert_eq!(seen.iter().filter(|t| *t == "tok-2").count(), 16);
    assert_eq!(seen.len(), 32);
}

#[tokio::test]
async fn unauthenticated_in_trailers_renews_the_token_for_the_next_call() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|token| token == "tok-1", Reject::InTrailers).await;
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(tokens.oauth_client("app").unwrap()).grpc())
        .service(channel(&server).await);
    let mut grpc = tonic::client::Grpc::with_origin(service, server.origin());

    // The answer had begun: the call gets its status, with no retry.
    let status = say(&mut grpc, "hello").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(server.tokens(), ["tok-1"]);

    // The token was dropped when the trailers came: the next call renews.
    assert_eq!(say(&mut grpc, "again").await.unwrap(), "again");
    assert_eq!(server.tokens(), ["tok-1", "tok-2"]);
    assert_eq!(tokens.token_requests(), 2);
}

#[tokio::test]
async fn trailers_do_not_drop_a_token_renewed_since() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|token| token == "tok-1", Reject::InTrailers).await;
    let source = TokenSource::new(
        tokens.oauth_client("app").unwrap(),
        ClientCredentials::new(),
    );
    let first = source.token().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::from_source(source.clone()).grpc())
        .service(channel(&server).await);
    let mut grpc = tonic::client::Grpc::with_origin(service, server.origin());
    let reply = {
        // The call goes out with tok-1; before its trailers are read, tok-2 replaces it.
        let mut grpc = grpc.clone();
        grpc.ready().await.unwrap();
        let call = grpc.unary(
            tonic::Request::new(Bytes::from_static(b"hello")),
            PathAndQuery::from_static("/test.Echo/Say"),
            Raw,
        );
        tokio::pin!(call);
        // Start the call: the request is sent with tok-1 on the first poll.
        assert!(futures_poll_once(call.as_mut()).await.is_none());
        source.invalidate(&first);
        source.token().await.unwrap();
        call.await
    };
    assert_eq!(reply.unwrap_err().code(), Code::Unauthenticated);

    // tok-2 was not dropped by tok-1's rejection.
    assert_eq!(say(&mut grpc, "again").await.unwrap(), "again");
    assert_eq!(server.tokens(), ["tok-1", "tok-2"]);
    assert_eq!(tokens.token_requests(), 2);
}

/// Polls `fut` once.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test]
async fn the_plain_layer_over_a_channel_renews_the_token_for_the_next_call() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|token| token == "tok-1", Reject::AtOnce).await;
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(
            tokens.oauth_client("app").unwrap(),
        ))
        .service(channel(&server).await);
    let mut grpc = tonic::client::Grpc::with_origin(service, server.origin());

    // tonic's own body cannot be copied: the call gets its status back...
    let status = say(&mut grpc, "hello").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(server.tokens(), ["tok-1"]);

    // ...and the token was dropped, so the next call renews.
    assert_eq!(say(&mut grpc, "again").await.unwrap(), "again");
    assert_eq!(server.tokens(), ["tok-1", "tok-2"]);
    assert_eq!(tokens.token_requests(), 2);
}

#[tokio::test]
async fn a_client_without_the_channels_origin_gets_no_token() {
    let tokens = token_server().await;
    let server = GrpcServer::start(|_| false, Reject::AtOnce).await;
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(tokens.oauth_client("app").unwrap()).grpc())
        .service(channel(&server).await);
    // `new` (what generated clients' `new` calls) sends the path alone: the layer cannot tell
    // where the call goes, so it withholds the token rather than guess.
    let mut grpc = tonic::client::Grpc::new(service);

    let status = say(&mut grpc, "hello").await.unwrap_err();

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(server.tokens(), [""]);
    assert_eq!(tokens.token_requests(), 0);
}
