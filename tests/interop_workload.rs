#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The workload identity interop suite: oidc-provider 9.13.3 with two grants registered with
//! `registerGrantType`, JWT bearer (RFC 7523 §2.1) and token exchange (RFC 8693), that take a
//! Kubernetes projected service-account token (`tests/interop/workload_server.mjs`). This suite
//! plays the cluster: it makes an ES256 key at start, gives the server its public half, and
//! signs the tokens it writes to a temp file the crate reads through the public API
//! (`credential::FileSource` with `flow::AssertionGrant` and with
//! `flow::TokenExchange::new(SubjectToken::credential(..))`, through `TokenSource` and
//! `OAuthMiddleware`). The server records every token it was shown (`GET <resource>/_seen`),
//! so each test proves which one was sent.
//!
//! Proved: the file rotated mid-run (a new file renamed over it, and the kubelet's `..data`
//! symlink swap) while requests run is picked up with no restart; no request carries an
//! expired token (one in the file fails locally with `Error::Credential` and the server sees
//! nothing); a token of another service account is never served from the first one's cache;
//! and the server refuses what it should (another key, issuer, audience, a `sub` that is not a
//! service account, claims that disagree, not yet valid, expired) with `invalid_grant`.
//! One server for the whole binary; each test uses service accounts of its own.

mod interop_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth_layer::credential::FileSource;
use oauth_layer::flow::{AssertionGrant, SubjectToken, TokenExchange};
use oauth_layer::store::MemoryStore;
use oauth_layer::{
    Error, ErrorCode, ExposeSecret, OAuthClient, OAuthMiddleware, Token, TokenSource, TokenTypeHint,
};
use serde_json::{Value, json};

use interop_support::NodeServer;

const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The binary's one server, and the keys of the cluster this suite plays.
struct Workload {
    node: NodeServer,
    issuer: String,
    token_endpoint: String,
    resource: String,
    k8s_issuer: String,
    client_id: String,
    client_secret: String,
    /// The cluster's signing key, whose public half the server trusts.
    cluster: EncodingKey,
    /// A key the server has never heard of.
    stranger: EncodingKey,
    http: reqwest::Client,
}

static WORKLOAD: OnceLock<Workload> = OnceLock::new();

fn es256_key() -> (EncodingKey, String) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    (key, pair.public_key_pem())
}

/// Started by the first test that asks; tests share it and read only their own results.
fn server() -> &'static Workload {
    WORKLOAD.get_or_init(|| {
        let (cluster, public) = es256_key();
        let (stranger, _) = es256_key();
        let node = NodeServer::start(
            "workload_server.mjs",
            &[("WORKLOAD_SA_KEY", &public), ("WORKLOAD_SA_ALG", "ES256")],
        );
        let s = |name: &str| node.ready[name].as_str().unwrap().to_owned();
        Workload {
            issuer: s("issuer"),
            token_endpoint: s("token_endpoint"),
            resource: s("resource"),
            k8s_issuer: s("k8s_issuer"),
            client_id: s("client_id"),
            client_secret: s("client_secret"),
            cluster,
            stranger,
            // No idle connections: each test has its own runtime, and a connection pooled by
            // one that has ended is dead in the next.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            node,
        }
    })
}

fn bearer(token: &Token) -> String {
    token.access_token().expose_secret().to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A service account of the cluster: `system:serviceaccount:<namespace>:<name>`.
#[derive(Clone, Copy)]
struct Account {
    namespace: &'static str,
    name: &'static str,
}

impl Account {
    const fn new(namespace: &'static str, name: &'static str) -> Self {
        Self { namespace, name }
    }

    fn sub(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// The claims of a projected service-account token, as the kubelet asks the API server for
/// them (`audience` the provider, an hour by default), with a `jti` to recognise it by.
fn claims(server: &Workload, account: Account) -> Value {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = now();
    let jti = format!(
        "{}-{}-{}",
        account.name,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    json!({
        "iss": server.k8s_issuer,
        "sub": account.sub(),
        "aud": [server.issuer],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": jti,
        "kubernetes.io": {
            "namespace": account.namespace,
            "serviceaccount": { "name": account.name, "uid": "5a1e5c1d-0000-4000-8000-000000000001" },
            "pod": { "name": format!("{}-7d9f8", account.name), "uid": "5a1e5c1d-0000-4000-8000-000000000002" },
        },
    })
}

/// A signed token and its `jti`.
struct K8sToken {
    jwt: String,
    jti: String,
}

fn sign(key: &EncodingKey, claims: &Value) -> K8sToken {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("cluster".into());
    K8sToken {
        jwt: jsonwebtoken::encode(&header, claims, key).unwrap(),
        jti: claims["jti"].as_str().unwrap().to_owned(),
    }
}

/// A valid token of `account`, signed by the cluster.
fn k8s_token(account: Account) -> K8sToken {
    let server = server();
    sign(&server.cluster, &claims(server, account))
}

/// A fresh, empty directory under the system's temp dir; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oauth-layer-workload-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `content` at `path` the way token agents do: a new file renamed over the old one.
fn rename_over(path: &Path, content: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A projected volume as the kubelet lays it out: `token -> ..data/token`,
/// `..data -> ..<version>`; each update writes a new version directory and swaps `..data`
/// with a rename, so a reader sees the old token or the new one, never half of either.
struct ProjectedVolume {
    dir: TempDir,
    version: usize,
}

impl ProjectedVolume {
    fn new(name: &str, token: &str) -> Self {
        let mut volume = Self {
            dir: TempDir::new(name),
            version: 0,
        };
        volume.update(token);
        std::os::unix::fs::symlink("..data/token", volume.dir.join("token")).unwrap();
        volume
    }

    fn update(&mut self, token: &str) {
        self.version += 1;
        let version = format!("..2026_12_04_{:02}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("token"), token).unwrap();
        let _ = std::fs::remove_file(self.dir.join("..data_tmp"));
        std::os::unix::fs::symlink(&version, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
    }

    fn token_path(&self) -> PathBuf {
        self.dir.join("token")
    }
}

impl Workload {
    /// The workload's client, configured by discovery from the issuer URL.
    async fn client(&self) -> OAuthClient {
        oauth_layer::discovery::configure(
            OAuthClient::builder(&self.client_id).secret(&self.client_secret),
            &self.issuer,
        )
        .await
        .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.resource))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every token the provider was shown for `account`, oldest first.
    async fn seen(&self, account: Account) -> Vec<Value> {
        let sub = account.sub();
        self.get("/_seen")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["sub"] == sub.as_str())
            .cloned()
            .collect()
    }

    /// The `jti`s of the tokens the provider was shown for `account` in `grant`, oldest first.
    async fn seen_jtis(&self, account: Account, grant: &str) -> Vec<String> {
        self.seen(account)
            .await
            .iter()
            .filter(|e| e["grant"] == grant)
            .map(|e| e["jti"].as_str().unwrap().to_owned())
            .collect()
    }

    fn whoami(&self) -> String {
        format!("{}/api/whoami", self.resource)
    }

    /// The resource's answer to `token`: status and the `sub` it named.
    async fn call(&self, token: &Token) -> (u16, Value) {
        let resp = self
            .http
            .get(self.whoami())
            .bearer_auth(bearer(token))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- workload_server.mjs stderr ---\n{}", self.node.stderr());
        }
    }
}

/// The two ways the server takes a Kubernetes token, each a flow over `FileSource`.
#[derive(Clone, Copy, Debug)]
enum Grant {
    JwtBearer,
    TokenExchange,
}

impl Grant {
    const BOTH: [Self; 2] = [Self::JwtBearer, Self::TokenExchange];

    /// The name the server's log gives it.
    fn logged(self) -> &'static str {
        match self {
            Self::JwtBearer => "jwt-bearer",
            Self::TokenExchange => "token-exchange",
        }
    }

    /// A source of tokens for `client`, reading `path` at every token request, sharing
    /// `store`, and remembering a failure for 50 ms only (so a test needs no sleep after one).
    fn source(self, client: OAuthClient, path: &Path, store: &MemoryStore) -> TokenSource {
        let file = FileSource::new(path);
        let builder = match self {
            Self::JwtBearer => {
                TokenSource::builder(client, AssertionGrant::new(file).scope("api:read"))
            }
            Self::TokenExchange => TokenSource::builder(
                client,
                TokenExchange::new(SubjectToken::credential(file, JWT_TYPE)).scope("api:read"),
            ),
        };
        builder
            .store(store.clone())
            .failure_memory(Duration::from_millis(50))
            .build()
    }
}

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- the grants, and the file rotated between token requests ----------------------------------

#[tokio::test]
async fn a_kubernetes_token_file_is_the_assertion_and_the_subject_and_names_the_service_account() {
    let server = server();
    for (grant, account) in [
        (Grant::JwtBearer, Account::new("payments", "reporter")),
        (Grant::TokenExchange, Account::new("payments", "exchanger")),
    ] {
        let dir = TempDir::new("basic");
        let file = dir.join("token");
        let first = k8s_token(account);
        std::fs::write(&file, format!("{}\n", first.jwt)).unwrap();
        let tokens = grant.source(server.client().await, &file, &MemoryStore::new());

        let token = tokens.token().await.unwrap();
        assert_eq!(token.scope(), Some("api:read"));
        if let Grant::TokenExchange = grant {
            assert_eq!(
                token.issued_token_type(),
                Some("urn:ietf:params:oauth:token-type:access_token")
            );
        }
        let (status, body) = server.call(&token).await;
        assert_eq!(status, 200, "{grant:?}: {body}");
        assert_eq!(body["sub"], account.sub().as_str(), "{grant:?}");
        assert_eq!(body["client_id"], server.client_id.as_str());

        // Cached: no second token request while the token is good.
        assert_eq!(bearer(&tokens.token().await.unwrap()), bearer(&token));
        assert_eq!(
            server.seen_jtis(account, grant.logged()).await,
            std::slice::from_ref(&first.jti)
        );

        // The file rotates; the next token request sends the new token, no restart.
        let second = k8s_token(account);
        rename_over(&file, &second.jwt);
        assert!(tokens.invalidate(&token));
        let renewed = tokens.token().await.unwrap();
        assert_ne!(bearer(&renewed), bearer(&token));
        assert_eq!(server.call(&renewed).await.1["sub"], account.sub().as_str());
        assert_eq!(
            server.seen_jtis(account, grant.logged()).await,
            [first.jti, second.jti],
            "{grant:?}"
        );
        for entry in server.seen(account).await {
            assert_eq!(entry["outcome"], "ok", "{entry}");
        }
    }
}

// ---- rotation while requests run, through the middleware ---------------------------------------

/// How the token file is rotated.
#[derive(Clone, Copy, Debug)]
enum Rotation {
    /// A new file renamed over the old one.
    RenameOver,
    /// The kubelet's `..data` symlink swap.
    DataSymlink,
}

/// Requests go through `OAuthMiddleware` in a loop while the file rotates three times; after
/// each rotation the current access token is revoked at the provider, so the next request gets
/// `401 invalid_token` from the resource, the middleware renews (reading the file again) and
/// retries. Every caller sees 200, the resource names the right service account each time, and
/// the provider saw the new token after each rotation, each one valid when it came.
async fn requests_run_through_rotations(grant: Grant, rotation: Rotation, account: Account) {
    let server = server();
    let first = k8s_token(account);
    let plain = TempDir::new("rename");
    let mut volume = None;
    let path = match rotation {
        Rotation::RenameOver => {
            let file = plain.join("token");
            std::fs::write(&file, &first.jwt).unwrap();
            file
        }
        Rotation::DataSymlink => volume
            .insert(ProjectedVolume::new("projected", &first.jwt))
            .token_path(),
    };
    let client = server.client().await;
    let tokens = grant.source(client.clone(), &path, &MemoryStore::new());
    let http = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .redirect(oauth_layer::reqwest::redirect_policy())
            .build()
            .unwrap(),
    )
    .with(OAuthMiddleware::from_source(tokens.clone()))
    .build();

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (http, stop, answers, url) =
            (http.clone(), stop.clone(), answers.clone(), server.whoami());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let resp = http
                    .get(&url)
                    .header("x-test", account.sub())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                answers.lock().unwrap().push((status, body));
            }
        }));
    }

    let mut sent = vec![first.jti.clone()];
    // Answers came back, so the first token is cached.
    eventually("the first answers", || async {
        answers.lock().unwrap().len() >= 4
    })
    .await;
    assert_eq!(server.seen_jtis(account, grant.logged()).await, sent);
    for _ in 0..3 {
        let next = k8s_token(account);
        match rotation {
            Rotation::RenameOver => rename_over(&path, &next.jwt),
            Rotation::DataSymlink => volume.as_mut().unwrap().update(&next.jwt),
        }
        let current = tokens.cached().unwrap();
        client
            .revoke(current.access_token(), TokenTypeHint::AccessToken)
            .await
            .unwrap();
        sent.push(next.jti.clone());
        let want = sent.clone();
        eventually("the rotated token at the provider", || async {
            server.seen_jtis(account, grant.logged()).await == want
        })
        .await;
        // A request after the renewal, so each rotation is seen through the middleware.
        let before = answers.lock().unwrap().len();
        eventually("a request after the renewal", || async {
            answers.lock().unwrap().len() > before + 4
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    assert!(answers.len() >= 15, "{} requests", answers.len());
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{grant:?} {rotation:?}: {body}");
        assert_eq!(body["sub"], account.sub().as_str());
    }
    let seen = server.seen(account).await;
    assert_eq!(seen.len(), 4, "one token request per rotation: {seen:?}");
    for entry in &seen {
        assert_eq!(entry["outcome"], "ok", "{entry}");
        assert!(
            entry["exp"].as_u64().unwrap() > entry["at"].as_u64().unwrap(),
            "an expired token reached the server: {entry}"
        );
    }
    // The revocations were met: the resource answered 401 at least once per rotation, and the
    // middleware's retry hid it from every caller.
    let calls = server.get("/_calls").await;
    let refused = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["tag"] == account.sub().as_str() && c["status"] == 401)
        .count();
    assert!(refused >= 3, "{refused} refusals: {calls}");
}

#[tokio::test]
async fn jwt_bearer_requests_run_while_the_token_file_is_renamed_over() {
    requests_run_through_rotations(
        Grant::JwtBearer,
        Rotation::RenameOver,
        Account::new("ledger", "writer"),
    )
    .await;
}

#[tokio::test]
async fn token_exchange_requests_run_while_the_kubelet_swaps_the_data_symlink() {
    requests_run_through_rotations(
        Grant::TokenExchange,
        Rotation::DataSymlink,
        Account::new("ledger", "auditor"),
    )
    .await;
}

#[tokio::test]
async fn jwt_bearer_requests_run_while_the_kubelet_swaps_the_data_symlink() {
    requests_run_through_rotations(
        Grant::JwtBearer,
        Rotation::DataSymlink,
        Account::new("ledger", "reader"),
    )
    .await;
}

#[tokio::test]
async fn token_exchange_requests_run_while_the_token_file_is_renamed_over() {
    requests_run_through_rotations(
        Grant::TokenExchange,
        Rotation::RenameOver,
        Account::new("ledger", "archiver"),
    )
    .await;
}

// ---- an expired token in the file --------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_in_the_file_fails_locally_and_never_reaches_the_server() {
    let server = server();
    for (grant, account) in [
        (Grant::JwtBearer, Account::new("batch", "nightly")),
        (Grant::TokenExchange, Account::new("batch", "weekly")),
    ] {
        let dir = TempDir::new("expired");
        let file = dir.join("token");
        let good = k8s_token(account);
        std::fs::write(&file, &good.jwt).unwrap();
        let tokens = grant.source(server.client().await, &file, &MemoryStore::new());
        let token = tokens.token().await.unwrap();

        // The agent wrote a token that expired a minute ago (signed by the cluster: the server
        // would check only its exp).
        let mut stale = claims(server, account);
        stale["iat"] = json!(now() - 3660);
        stale["nbf"] = stale["iat"].clone();
        stale["exp"] = json!(now() - 60);
        let expired = sign(&server.cluster, &stale);
        rename_over(&file, &expired.jwt);
        assert!(tokens.invalidate(&token));
        let err = tokens.token().await.unwrap_err();
        assert!(
            matches!(&err, Error::Credential { origin, .. } if origin.contains("token")),
            "{grant:?}: {err:?}"
        );
        assert!(err.to_string().contains("exp has passed"), "{err}");
        assert!(!format!("{err} {err:?}").contains(&expired.jwt));
        assert_eq!(
            server.seen_jtis(account, grant.logged()).await,
            std::slice::from_ref(&good.jti),
            "{grant:?}: the expired token was sent"
        );

        // The agent catches up; the next request (the failure is remembered 50 ms) works.
        let fresh = k8s_token(account);
        rename_over(&file, &fresh.jwt);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let renewed = tokens.token().await.unwrap();
        assert_eq!(server.call(&renewed).await.1["sub"], account.sub().as_str());
        assert_eq!(
            server.seen_jtis(account, grant.logged()).await,
            [good.jti, fresh.jti]
        );
    }
}

// ---- two service accounts, one cache -----------------------------------------------------------

#[tokio::test]
async fn another_service_accounts_token_is_never_served_from_the_first_ones_cache() {
    let server = server();
    for (grant, a, b) in [
        (
            Grant::JwtBearer,
            Account::new("shop", "frontend"),
            Account::new("shop", "backend"),
        ),
        (
            Grant::TokenExchange,
            Account::new("shop", "cart"),
            Account::new("billing", "cart"),
        ),
    ] {
        // One client, one store, two pods' token files.
        let client = server.client().await;
        let store = MemoryStore::new();
        let (dir_a, dir_b) = (TempDir::new("pod-a"), TempDir::new("pod-b"));
        let (file_a, file_b) = (dir_a.join("token"), dir_b.join("token"));
        let (token_a, token_b) = (k8s_token(a), k8s_token(b));
        std::fs::write(&file_a, &token_a.jwt).unwrap();
        std::fs::write(&file_b, &token_b.jwt).unwrap();
        let source_a = grant.source(client.clone(), &file_a, &store);
        let source_b = grant.source(client.clone(), &file_b, &store);
        assert_ne!(source_a.cache_key(), source_b.cache_key());

        let access_a = source_a.token().await.unwrap();
        let access_b = source_b.token().await.unwrap();
        assert_ne!(bearer(&access_a), bearer(&access_b), "{grant:?}");
        assert_eq!(store.len(), 2);
        assert_eq!(server.call(&access_a).await.1["sub"], a.sub().as_str());
        assert_eq!(server.call(&access_b).await.1["sub"], b.sub().as_str());
        assert_eq!(server.seen_jtis(a, grant.logged()).await, [token_a.jti]);
        assert_eq!(server.seen_jtis(b, grant.logged()).await, [token_b.jti]);

        // A third source on B's file (a restarted pod) finds B's token in the store, not A's.
        let again_b = grant.source(client, &file_b, &store);
        let cached = again_b.token().await.unwrap();
        assert_eq!(bearer(&cached), bearer(&access_b));
        assert_eq!(server.seen(b).await.len(), 1);
    }
}

/// A token the server must refuse: what is wrong with it, the change to a valid token's
/// claims, and whether a key the server does not know signs it.
type Forgery = (&'static str, fn(&mut Value), bool);

// ---- what the server refuses ---------------------------------------------------------------------

#[tokio::test]
async fn the_server_refuses_any_other_token_with_invalid_grant() {
    let server = server();
    let account = Account::new("probe", "mallory");
    let cases: [Forgery; 6] = [
        ("another key", |_| {}, true),
        (
            "another issuer",
            |c| c["iss"] = json!("https://oidc.eks.example/id/0"),
            false,
        ),
        (
            "another audience",
            |c| c["aud"] = json!(["https://kubernetes.default.svc"]),
            false,
        ),
        (
            "a sub that is no service account",
            |c| c["sub"] = json!("system:node:worker-1"),
            false,
        ),
        (
            "kubernetes.io claims naming another account",
            |c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("admin"),
            false,
        ),
        (
            "not valid for another minute",
            |c| c["nbf"] = json!(now() + 60),
            false,
        ),
    ];
    for grant in Grant::BOTH {
        for (what, change, stranger) in &cases {
            let dir = TempDir::new("refused");
            let file = dir.join("token");
            let mut c = claims(server, account);
            change(&mut c);
            let key = if *stranger {
                &server.stranger
            } else {
                &server.cluster
            };
            let token = sign(key, &c);
            std::fs::write(&file, &token.jwt).unwrap();
            let tokens = grant.source(server.client().await, &file, &MemoryStore::new());
            let err = tokens.token().await.unwrap_err();
            assert!(
                matches!(&err, Error::Server(e) if e.code == ErrorCode::InvalidGrant),
                "{grant:?}, {what}: {err:?}"
            );
            let all = server.get("/_seen").await;
            let entry = all
                .as_array()
                .unwrap()
                .iter()
                .rfind(|e| e["jti"] == token.jti.as_str())
                .unwrap_or_else(|| panic!("{grant:?}, {what}: never reached the server"));
            assert_eq!(entry["grant"], grant.logged());
            assert!(
                entry["outcome"].as_str().unwrap().starts_with("refused"),
                "{grant:?}, {what}: {entry}"
            );
        }
    }

    // An expired token sent by hand (the crate never sends one) is refused too: the server
    // checks exp itself.
    let mut stale = claims(server, account);
    stale["exp"] = json!(now() - 10);
    let expired = sign(&server.cluster, &stale);
    let resp = server
        .http
        .post(&server.token_endpoint)
        .basic_auth(&server.client_id, Some(&server.client_secret))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", expired.jwt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}
