//! gRPC with tonic: a token per call, renewed when the server says `UNAUTHENTICATED`. No
//! accounts, no internet, no protoc.
//!
//! It starts the crate's local authorization server and a tonic gRPC server on 127.0.0.1 (h2c),
//! then calls the gRPC server through a `tonic::transport::Channel` wrapped in
//! `OAuthLayer::...grpc()`. The gRPC server revokes tokens on command: a revoked token is
//! rejected at once (a trailers-only `UNAUTHENTICATED`, what tonic's interceptors send), which
//! the layer turns into a renewal and one retry; or in the trailers after the answer began,
//! which renews the token for the next call.
//!
//! ```text
//! cargo run --example grpc --features tonic
//! ```

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Full};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthLayer};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Messages are raw bytes, so the example needs no `.proto` file and no protoc.
#[derive(Clone, Copy)]
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

/// What the gRPC server does with a revoked token.
#[derive(Clone, Copy, PartialEq)]
enum Rejects {
    AtOnce,
    InTrailers,
}

/// The gRPC server's view: revoked tokens, how it rejects them, and a log of what it saw.
#[derive(Default)]
struct Api {
    revoked: HashSet<String>,
    in_trailers: bool,
    log: Vec<String>,
}

/// A tonic server whose `/demo.Greeter/Hello` greets callers with a token it has not revoked.
async fn grpc_server(api: Arc<Mutex<Api>>) -> Result<std::net::SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let svc = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let api = api.clone();
        async move {
            let token = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_owned();
            let rejects = {
                let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
                let rejects = (token.is_empty() || api.revoked.contains(&token)).then_some(
                    if api.in_trailers {
                        Rejects::InTrailers
                    } else {
                        Rejects::AtOnce
                    },
                );
                let verdict = if rejects.is_some() {
                    "rejected"
                } else {
                    "accepted"
                };
                api.log.push(format!("{token} {verdict}"));
                rejects
            };
            let response = match rejects {
                Some(Rejects::AtOnce) => Status::unauthenticated("token revoked").into_http(),
                Some(Rejects::InTrailers) => unauthenticated_in_trailers(),
                None => {
                    let greet = tower::service_fn(|req: tonic::Request<Bytes>| async move {
                        let name = String::from_utf8_lossy(req.get_ref()).into_owned();
                        Ok::<_, Status>(tonic::Response::new(Bytes::from(format!("hello, {name}"))))
                    });
                    tonic::server::Grpc::new(Raw).unary(greet, req).await
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    tokio::spawn(Server::builder().serve_with_incoming(svc, TcpIncoming::from(listener)));
    Ok(addr)
}

/// Headers first, then `grpc-status: 16` in the trailers: a handler that failed after it began
/// to answer.
fn unauthenticated_in_trailers() -> http::Response<tonic::body::Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("16"));
    trailers.insert(
        "grpc-message",
        http::HeaderValue::from_static("token%20revoked"),
    );
    let body = Full::new(Bytes::new()).with_trailers(async move { Some(Ok(trailers)) });
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let tokens = TestServer::builder()
        .client("grpc-app", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .numbered_access_tokens("tok-")
        .start()
        .await?;
    let api = Arc::new(Mutex::new(Api::default()));
    let addr = grpc_server(api.clone()).await?;
    println!("oauth-layer with tonic");
    println!(
        "authorization server at {}, gRPC server at http://{addr}\n",
        tokens.url()
    );

    // The channel, wrapped in the layer. `grpc()` makes tonic's request bodies replayable and
    // watches trailers. The client is given the origin so the layer can check where calls go.
    let origin: http::Uri = format!("http://{addr}").parse()?;
    let channel = Channel::builder(origin.clone()).connect().await?;
    let layer = OAuthLayer::client_credentials(tokens.oauth_client("grpc-app")?)
        .scope("greet")
        .grpc();
    let service = tower::ServiceBuilder::new().layer(layer).service(channel);
    let mut grpc = tonic::client::Grpc::with_origin(service, origin);

    let mut call = async |name: &'static str| -> Result<String, Status> {
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let reply = grpc
            .unary(
                tonic::Request::new(Bytes::from_static(name.as_bytes())),
                PathAndQuery::from_static("/demo.Greeter/Hello"),
                Raw,
            )
            .await?;
        Ok(String::from_utf8_lossy(reply.get_ref()).into_owned())
    };
    let log = |api: &Mutex<Api>| {
        let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut api.log).join(", ")
    };
    let show = |label: &str, reply: Result<String, Status>, api: &Mutex<Api>| {
        let reply = match reply {
            Ok(reply) => format!("{reply:?}"),
            Err(status) => format!("{:?} {:?}", status.code(), status.message()),
        };
        println!(
            "   {label} -> {reply}   (server saw: {}; token requests so far: {})",
            log(api),
            tokens.token_requests()
        );
    };

    println!("1. two calls share one token");
    show("Hello(ada)", call("ada").await, &api);
    show("Hello(bob)", call("bob").await, &api);

    println!(
        "\n2. the server revokes tok-1 and rejects it at once (trailers-only UNAUTHENTICATED)"
    );
    api.lock()
        .unwrap_or_else(|e| e.into_inner())
        .revoked
        .insert("tok-1".into());
    show("Hello(cy)", call("cy").await, &api);

    println!(
        "\n3. the server revokes tok-2 and rejects it in the trailers, after its answer began"
    );
    {
        let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
        api.revoked.insert("tok-2".into());
        api.in_trailers = true;
    }
    show("Hello(di)", call("di").await, &api);
    show("Hello(di)", call("di").await, &api);

    println!(
        "\ndone: a rejection in the headers is retried with a renewed token within the call; one \
         in the trailers reaches the caller, and the next call renews."
    );
    Ok(())
}
