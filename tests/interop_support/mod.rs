//! The interop suite's harness: starts `tests/interop/server.mjs` (oidc-provider and a protected
//! resource on 127.0.0.1), and a scripted "browser" that fills oidc-provider's own pages with an
//! HTTP client and a cookie jar.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::OAuthClient;
use oauth_layer::interact::BrowserFn;
use serde_json::Value;
use url::Url;

pub(crate) const INSTALL_HINT: &str = "run `bash tests/interop/install.sh` (as root: it runs `npm ci` in \
     tests/interop and `apt-get install -y chromium chromium-driver`)";

/// The login the scripted browser types on oidc-provider's devInteractions login page (any
/// login is accepted; it becomes the `sub`).
pub(crate) const LOGIN: &str = "alice";

pub(crate) fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Fails (never skips) when Node or the npm packages are missing.
fn require_node() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): the interop suite needs Node.js >= 20; {INSTALL_HINT}",
            out.status
        ),
        Err(e) => panic!(
            "cannot run `node` ({e}): the interop suite needs Node.js >= 20 on PATH; {INSTALL_HINT}"
        ),
    }
    let pkg = interop_dir().join("node_modules/oidc-provider/package.json");
    assert!(
        pkg.exists(),
        "{} is missing: the npm packages of tests/interop are not installed; {INSTALL_HINT}",
        pkg.display()
    );
}

/// One running Node script of `tests/interop` (`server.mjs`, `fapi_server.mjs`,
/// `workload_server.mjs`): its first stdout line (the ready line, JSON) and its stderr so far.
/// Killed on drop; the script exits on its own when its stdin closes, so a test process that
/// dies never leaves it behind.
pub(crate) struct NodeServer {
    child: Child,
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
    /// The ready line.
    pub(crate) ready: Value,
}

impl NodeServer {
    /// Starts `node <script>` in `tests/interop` with `env` added, and waits (30 s at most) for
    /// its ready line; fails, showing the script's stderr, when none comes.
    pub(crate) fn start(script: &str, env: &[(&str, &str)]) -> Self {
        require_node();
        let mut child = Command::new("node")
            .arg(script)
            .envs(env.iter().copied())
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node tests/interop/{script}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr_pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if std::env::var_os("INTEROP_DEBUG").is_some() {
                        eprint!("{text}");
                    }
                    stderr.lock().unwrap().push_str(&text);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if !line.trim().is_empty() => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tests/interop/{script} did not print its ready line; its stderr:\n{}\n\
                     ({INSTALL_HINT})",
                    stderr.lock().unwrap()
                );
            }
        };
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        Self {
            child,
            _stdin: stdin,
            stderr,
            ready,
        }
    }

    /// The script's stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One running `server.mjs`; killed on drop.
pub(crate) struct Interop {
    node: NodeServer,
    pub(crate) issuer: String,
    pub(crate) resource: String,
    /// The resource-first client's resources (tests/interop/protected_resource.mjs), each on
    /// its own port: `http://127.0.0.1:P3/mcp` (scope `mcp:tools`) and
    /// `http://127.0.0.1:P4/api` (scope `api:notes`).
    pub(crate) mcp: String,
    pub(crate) api: String,
    pub(crate) assertion_issuer: String,
    pub(crate) private_key_jwt_pem: String,
    pub(crate) jwt_bearer_pem: String,
    /// Whether the provider and the resource require DPoP nonces (the default; see
    /// [`Interop::start_with`]).
    pub(crate) dpop_nonces: bool,
    http: reqwest::Client,
}

impl Interop {
    /// The server as most tests want it: DPoP nonces required at the provider and the resource.
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// The server with extra environment for `server.mjs`, e.g.
    /// `("INTEROP_DPOP_NONCES", "optional")` or `("INTEROP_DPOP_NONCE_TTL", "2")`.
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Self {
        let node = NodeServer::start("server.mjs", env);
        let ready = &node.ready;
        let s = |v: &Value| v.as_str().unwrap().to_owned();
        Self {
            issuer: s(&ready["issuer"]),
            resource: s(&ready["resource"]),
            mcp: s(&ready["mcp"]),
            api: s(&ready["api"]),
            assertion_issuer: s(&ready["assertion_issuer"]),
            private_key_jwt_pem: s(&ready["keys"]["private_key_jwt"]),
            jwt_bearer_pem: s(&ready["keys"]["jwt_bearer"]),
            dpop_nonces: ready["dpop_nonces"].as_bool().unwrap(),
            http: reqwest::Client::new(),
            node,
        }
    }

    /// `<resource>/api/read` (needs `api:read`) or `/api/write` (needs `api:write`).
    pub(crate) fn api(&self, path: &str) -> String {
        format!("{}/api/{path}", self.resource)
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A client configured by discovery from the issuer URL alone.
    pub(crate) async fn client(&self, id: &str, secret: Option<&str>) -> OAuthClient {
        let mut client = OAuthClient::builder(id);
        if let Some(secret) = secret {
            client = client.secret(secret);
        }
        oauth_layer::discovery::configure(client, &self.issuer)
            .await
            .unwrap()
    }

    /// The server's counters (`GET <resource>/stats`).
    pub(crate) async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/stats", self.resource))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn stat(&self, pointer: &str) -> u64 {
        self.stats()
            .await
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Calls the resource with a raw bearer token; the status and body.
    pub(crate) async fn call(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.api(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Calls the resource with `Authorization: <scheme> <token>` and no proof (what a thief
    /// holding a stolen token can do); the status, `WWW-Authenticate` and body.
    pub(crate) async fn call_as(
        &self,
        path: &str,
        scheme: &str,
        token: &str,
    ) -> (u16, String, Value) {
        let resp = self
            .http
            .get(self.api(path))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, challenge, resp.json().await.unwrap_or(Value::Null))
    }

    /// Retires the resource's DPoP nonces (the next DPoP request is challenged); the new one.
    pub(crate) async fn rotate_resource_nonce(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/control/dpop-nonce", self.resource))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["nonce"].as_str().unwrap().to_owned()
    }

    /// The resource's last requests (path, scheme, proof fields, outcome), oldest first.
    pub(crate) async fn resource_log(&self) -> Vec<Value> {
        self.stats().await["resource_log"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What the protected resource `id` (`self.mcp` or `self.api`) was shown, oldest first:
    /// method, path, scheme, the presented token's unverified `aud`, `client_id`, `jti` and
    /// SHA-256 prefix, status, outcome (`GET <origin>/_seen`).
    pub(crate) async fn seen(&self, id: &str) -> Vec<Value> {
        let origin = Url::parse(id).unwrap().origin().ascii_serialization();
        self.http
            .get(format!("{origin}/_seen"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The provider's and the mcp and api resources' answers in order, as
    /// `"<who> <METHOD> <path> <status>"` (plus ` <scheme>` for a resource's request with a
    /// token, and ` resource=<r>` for /auth and /token), keeping only what a resource-first
    /// client's round trips are made of: the resources' own requests, discovery, registration,
    /// the authorization request (not the sign-in pages behind it) and the token endpoint.
    pub(crate) async fn sequence(&self) -> Vec<String> {
        let stats = self.stats().await;
        stats["sequence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["who"] != "provider"
                    || matches!(
                        e["path"].as_str().unwrap(),
                        "/.well-known/openid-configuration"
                            | "/.well-known/oauth-authorization-server"
                            | "/reg"
                            | "/auth"
                            | "/token"
                    )
            })
            .map(|e| {
                let mut line = format!(
                    "{} {} {} {}",
                    e["who"].as_str().unwrap(),
                    e["method"].as_str().unwrap(),
                    e["path"].as_str().unwrap(),
                    e["status"]
                );
                if let Some(scheme) = e["scheme"].as_str().filter(|s| *s != "none") {
                    line.push(' ');
                    line.push_str(scheme);
                }
                if let Some(resource) = e["resource"].as_str() {
                    line.push_str(" resource=");
                    line.push_str(resource);
                }
                line
            })
            .collect()
    }

    /// Clients registered dynamically (RFC 7591) so far, with the metadata each was registered
    /// with.
    pub(crate) async fn registrations(&self) -> Vec<Value> {
        self.stats().await["registrations"]["clients"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The server's stderr so far (oidc-provider's warnings and errors).
    pub(crate) fn stderr(&self) -> String {
        self.node.stderr()
    }
}

impl Drop for Interop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server.mjs stderr ---\n{}", self.stderr());
        }
    }
}

/// A person with an HTTP client and a cookie jar: follows redirects, and fills every form it
/// is shown (user code, login and password, consent) until a page has no form.
#[derive(Clone)]
pub(crate) struct FormBrowser {
    http: reqwest::Client,
    pub(crate) user_code: Option<String>,
}

impl Default for FormBrowser {
    fn default() -> Self {
        Self::new()
    }
}

impl FormBrowser {
    pub(crate) fn new() -> Self {
        Self::with(reqwest::Client::builder())
    }

    /// A browser that trusts only `root` (a private CA, for servers on `https` loopback).
    pub(crate) fn trusting(root: reqwest::Certificate) -> Self {
        Self::with(reqwest::Client::builder().tls_certs_only([root]))
    }

    fn with(builder: reqwest::ClientBuilder) -> Self {
        Self {
            http: builder
                .cookie_store(true)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            user_code: None,
        }
    }

    pub(crate) fn with_user_code(mut self, code: &str) -> Self {
        self.user_code = Some(code.to_owned());
        self
    }

    /// Opens `url` and fills forms; returns the final URL and page, and the pages' titles.
    pub(crate) async fn visit(&self, url: &str) -> (Url, String, Vec<String>) {
        let resp = self.http.get(url).send().await.unwrap();
        let mut at = resp.url().clone();
        let mut page = resp.text().await.unwrap();
        let mut titles = vec![title(&page)];
        for _ in 0..10 {
            let Some(form) = Form::parse(&page) else {
                return (at, page, titles);
            };
            let mut fields = form.hidden.clone();
            for name in &form.inputs {
                let value = match name.as_str() {
                    "user_code" => self.user_code.clone().expect("a user code to type"),
                    "login" => LOGIN.to_owned(),
                    "password" => "any password".to_owned(),
                    other => panic!("the browser does not know what to type in {other:?}"),
                };
                fields.push((name.clone(), value));
            }
            let action = at.join(&form.action).unwrap();
            let resp = self.http.post(action).form(&fields).send().await.unwrap();
            at = resp.url().clone();
            page = resp.text().await.unwrap();
            titles.push(title(&page));
        }
        panic!("too many forms; last page at {at}:\n{page}");
    }

    /// A `BrowserFn` for `AuthCode::browser`: each URL opened is visited in the background;
    /// `opened` counts them.
    pub(crate) fn opener(
        &self,
        opened: Arc<AtomicUsize>,
    ) -> BrowserFn<impl Fn(&Url) -> std::io::Result<()> + Send + Sync + 'static> {
        let browser = self.clone();
        BrowserFn(move |url: &Url| {
            opened.fetch_add(1, Ordering::SeqCst);
            let browser = browser.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let (at, page, _) = browser.visit(&url).await;
                assert!(
                    at.host_str() == Some("127.0.0.1") && at.path() == "/callback",
                    "the sign-in ended at {at}, not the loopback callback:\n{page}"
                );
            });
            Ok(())
        })
    }
}

fn title(page: &str) -> String {
    between(page, "<title>", "</title>")
        .unwrap_or_default()
        .to_owned()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let to = s[from..].find(end)? + from;
    Some(&s[from..to])
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let from = tag.find(&key)? + key.len();
    let to = tag[from..].find('"')? + from;
    Some(unescape(&tag[from..to]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The first `<form method="post">` of a page: its action, hidden fields and other inputs.
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    inputs: Vec<String>,
}

impl Form {
    fn parse(page: &str) -> Option<Self> {
        let start = page.find("<form")?;
        let end = page[start..].find("</form>")? + start;
        let form = &page[start..end];
        let open = &form[..form.find('>')?];
        let action = attr(open, "action")?;
        let mut hidden = Vec::new();
        let mut inputs = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            rest = &rest[i..];
            let tag_end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[..tag_end];
            if let Some(name) = attr(tag, "name") {
                if attr(tag, "type").as_deref() == Some("hidden") {
                    hidden.push((name, attr(tag, "value").unwrap_or_default()));
                } else {
                    inputs.push(name);
                }
            }
            rest = &rest[tag_end..];
        }
        Some(Self {
            action,
            hidden,
            inputs,
        })
    }
}
