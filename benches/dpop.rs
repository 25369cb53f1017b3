#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a DPoP proof costs over the signature inside it (issue 14: one signature plus at most
//! 2 µs per request).
//!
//! Group `dpop`, for ES256 and EdDSA with one key each:
//!
//! - `<alg>_signature`: aws-lc-rs signing a fixed message (the signing input of a real proof,
//!   `header.payload`, so both sides hash the same number of bytes) with the key pair;
//! - `<alg>_proof`: `DpopKey::proof` with the same key, for a resource request (`ath` and
//!   `nonce` included): the `jti` from the system's randomness, the payload, base64 and the
//!   signature.
//!
//! The difference between the two lines is what the proof adds around its signature. On a
//! shared machine the two lines drift apart by more than that difference, so the bench also
//! measures it with the two interleaved (the median over 300 paired batches) and prints it after
//! the group.
//!
//! Group `dpop_request`: the whole request path through `OAuthLayer` with a cached token, one
//! task, against an in-memory API that answers at once: a bearer token (`bearer`), and a
//! DPoP-bound token with an ES256 and an EdDSA key (`dpop_es256`, `dpop_eddsa`), whose every
//! request carries a fresh proof. A DPoP request should cost its signature (the `dpop` group)
//! plus at most 2 µs over a bearer one.
//!
//! `cargo bench --bench dpop`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use oauth_layer::dpop::DpopKey;

const URL: &str = "https://api.example.com/v1/items/42?expand=owner";
const IAT: u64 = 1_700_000_000;
const TOKEN: &str =
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImNuZiI6eyJqa3QiOiJ4In19.c2lnbmF0dXJl";
const NONCE: &str = "eyJ7S_zG.eyJH0-Z.HX4w-7v";

/// A real proof's signing input (`header.payload`) for `key`.
fn signing_input(key: &DpopKey) -> Vec<u8> {
    let proof = key
        .proof("GET", URL, IAT, Some(TOKEN), Some(NONCE))
        .unwrap();
    let (input, _signature) = proof.rsplit_once('.').unwrap();
    input.as_bytes().to_vec()
}

fn dpop(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let es256_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let es256_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es256_der.as_ref()).unwrap();
    let es256_key = DpopKey::from_pkcs8_der(es256_der.as_ref()).unwrap();
    let es256_input = signing_input(&es256_key);

    let eddsa_der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let eddsa_pair = Ed25519KeyPair::from_pkcs8(eddsa_der.as_ref()).unwrap();
    let eddsa_key = DpopKey::from_pkcs8_der(eddsa_der.as_ref()).unwrap();
    let eddsa_input = signing_input(&eddsa_key);

    // Each returns a byte of its result, so that the measured work is not the copy of aws-lc-rs's
    // `Signature` (4.6 KB, sized for post-quantum signatures).
    let es256_signature = || {
        es256_pair
            .sign(&rng, black_box(&es256_input))
            .unwrap()
            .as_ref()[0]
    };
    let eddsa_signature = || eddsa_pair.sign(black_box(&eddsa_input)).as_ref()[0];
    let proof = |key: &DpopKey| {
        key.proof(
            black_box("GET"),
            black_box(URL),
            IAT,
            Some(TOKEN),
            Some(NONCE),
        )
        .unwrap()
        .as_bytes()[0]
    };

    let mut group = c.benchmark_group("dpop");
    group.bench_function("es256_signature", |b| b.iter(es256_signature));
    group.bench_function("es256_proof", |b| b.iter(|| proof(&es256_key)));
    group.bench_function("eddsa_signature", |b| b.iter(eddsa_signature));
    group.bench_function("eddsa_proof", |b| b.iter(|| proof(&eddsa_key)));
    group.finish();

    println!(
        "\nproof minus signature, interleaved (median of {ROUNDS} paired batches of {BATCH}):"
    );
    let es256 = interleaved_overhead(es256_signature, || proof(&es256_key));
    println!("  es256: {es256:?} per proof");
    let eddsa = interleaved_overhead(eddsa_signature, || proof(&eddsa_key));
    println!("  eddsa: {eddsa:?} per proof");
}

const ROUNDS: usize = 300;
const BATCH: u32 = 20;

/// What `proof` takes over `signature`, per call: the median over [`ROUNDS`] pairs of
/// [`BATCH`] calls each, taken in turn (alternating which goes first), so that drift affects
/// both alike and a disturbed pair does not count.
fn interleaved_overhead(signature: impl Fn() -> u8, proof: impl Fn() -> u8) -> Duration {
    let batch = |f: &dyn Fn() -> u8| {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(f());
        }
        start.elapsed().as_nanos() as i128
    };
    let mut differences: Vec<i128> = (0..ROUNDS)
        .map(|round| {
            if round % 2 == 0 {
                let p = batch(&proof);
                p - batch(&signature)
            } else {
                let s = batch(&signature);
                batch(&proof) - s
            }
        })
        .collect();
    differences.sort_unstable();
    let median = differences[ROUNDS / 2] / i128::from(BATCH);
    Duration::from_nanos(u64::try_from(median.max(0)).unwrap())
}

/// A layer over an API that answers at once, with a cached token: bound to `key` if given.
fn layered(
    key: Option<DpopKey>,
) -> impl tower::Service<
    http::Request<()>,
    Response = http::Response<()>,
    Error = oauth_layer::transport::BoxError,
    Future = impl std::future::Future<
        Output = Result<http::Response<()>, oauth_layer::transport::BoxError>,
    > + Send,
> + Clone {
    use oauth_layer::dpop::Dpop;
    use oauth_layer::{OAuthClient, OAuthLayer, Token, TokenSource, clock::SystemClock};
    use tower::Layer;
    let mut client = OAuthClient::builder("bench")
        .secret("s")
        .token_url("https://idp.example/token");
    let mut token = Token::builder("seeded-token").expires_in(Duration::from_secs(3600));
    if let Some(key) = key {
        client = client.dpop(Dpop::with_key(key.clone()));
        token = token.dpop_key(key);
    }
    let source = TokenSource::builder(
        client.build().unwrap(),
        oauth_layer::flow::ClientCredentials::new(),
    )
    .initial_token(token.build(&SystemClock).unwrap())
    .build();
    let api = tower::service_fn(|_req: http::Request<()>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(())))
    });
    OAuthLayer::from_source(source).layer(api)
}

fn dpop_request(c: &mut Criterion) {
    use tower::{Service, ServiceExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri: http::Uri = URL.parse().unwrap();
    let mut group = c.benchmark_group("dpop_request");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let rng = SystemRandom::new();
    let es256_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let eddsa_der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let variants = [
        ("bearer", None),
        (
            "dpop_es256",
            Some(DpopKey::from_pkcs8_der(es256_der.as_ref()).unwrap()),
        ),
        (
            "dpop_eddsa",
            Some(DpopKey::from_pkcs8_der(eddsa_der.as_ref()).unwrap()),
        ),
    ];
    let mut services = Vec::new();
    for (name, key) in variants {
        let service = {
            let _guard = rt.enter();
            layered(key.clone())
        };
        services.push((service.clone(), key));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut service = service.clone();
                let uri = uri.clone();
                async move {
                    let mut request = http::Request::new(());
                    *request.uri_mut() = uri;
                    let response = service.ready().await.unwrap().call(request).await.unwrap();
                    black_box(response);
                }
            })
        });
    }
    group.finish();

    // The path's own cost with DPoP: a DPoP request minus a bearer request minus the bare
    // signature with the same key, measured interleaved like the proof above.
    println!(
        "DPoP request minus bearer request minus signature, interleaved (median of {ROUNDS} paired batches of {BATCH}):"
    );
    let (bearer, _) = services[0].clone();
    let ders = [es256_der.as_ref().to_vec(), eddsa_der.as_ref().to_vec()];
    for ((name, pkcs8), (service, key)) in ["es256", "eddsa"]
        .into_iter()
        .zip(ders)
        .zip(services.into_iter().skip(1))
    {
        let message = signing_input(&key.unwrap());
        let sign: Box<dyn Fn() -> u8> = if name == "es256" {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
            let rng = rng.clone();
            Box::new(move || pair.sign(&rng, &message).unwrap().as_ref()[0])
        } else {
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
            Box::new(move || pair.sign(&message).as_ref()[0])
        };
        let path = interleaved_overhead(
            || send_once(&rt, &bearer, &uri).wrapping_add(sign()),
            || send_once(&rt, &service, &uri),
        );
        println!("  {name}: {path:?} per request");
    }
}

/// One request through `service`, to completion; a byte of its answer.
fn send_once<S>(rt: &tokio::runtime::Runtime, service: &S, uri: &http::Uri) -> u8
where
    S: tower::Service<http::Request<()>, Response = http::Response<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let mut service = service.clone();
    rt.block_on(async move {
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.clone();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        response.status().as_u16() as u8
    })
}

criterion_group!(benches, dpop, dpop_request);
criterion_main!(benches);
