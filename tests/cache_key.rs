//! Cache keys bind every credential a flow uses, through a digest keyed by the store
//! (SECURITY.md rule 34): two sources that differ only in a password, a secret or a token never
//! share a token, and no key, file name or log line lets a weak secret be guessed offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use oauth_layer::flow::{ClientCredentials, Flow, Password};
use oauth_layer::store::{MemoryStore, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthClient, TokenSource};
use secrecy::ExposeSecret;

const CLIENT_ID: &str = "cache-key-test";
const CLIENT_SECRET: &str = "cache-key-client-secret";
const USER: &str = "alice";
const RIGHT: &str = "the-right-password";
const WRONG: &str = "a-wrong-password";

async fn password_server() -> TestServer {
    TestServer::builder()
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user(USER, RIGHT)
        .start()
        .await
        .unwrap()
}

fn password_client(server: &TestServer) -> OAuthClient {
    OAuthClient::new(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url(server.token_url())
        .unwrap()
}

/// The source with the right password fills `store`; the one with a wrong password, sharing
/// it, must ask the server (and be refused) instead of taking that token.
async fn a_wrong_password_is_refused_with(store: impl TokenStore + Clone) {
    let server = password_server().await;
    let right = TokenSource::builder(password_client(&server), Password::new(USER, RIGHT))
        .store(store.clone())
        .build();
    let token = right.token().await.unwrap();
    assert_eq!(server.token_requests(), 1);

    let wrong = TokenSource::builder(password_client(&server), Password::new(USER, WRONG))
        .store(store)
        .build();
    match wrong.token().await {
        Ok(got) => panic!(
            "a wrong password got a token (the right one's: {})",
            got.access_token().expose_secret() == token.access_token().expose_secret()
        ),
        Err(e) => assert!(e.is_invalid_grant(), "{e}"),
    }
    assert_eq!(
        server.token_requests(),
        2,
        "the wrong password asked the server"
    );
    assert_ne!(right.cache_key(), wrong.cache_key());
}

#[tokio::test]
async fn a_wrong_password_never_gets_the_right_ones_token_from_a_memory_store() {
    a_wrong_password_is_refused_with(MemoryStore::new()).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn a_wrong_password_never_gets_the_right_ones_token_from_a_file_store() {
    let dir = files::TempDir::new();
    a_wrong_password_is_refused_with(oauth_layer::store::FileStore::in_dir(dir.path())).await;
}

#[cfg(feature = "file-store")]
mod files {
    use std::path::{Path, PathBuf};

    /// A private directory under the system temp dir with a random name, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> Self {
            use std::os::unix::fs::DirBuilderExt;
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).unwrap();
            let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("oauth-layer-cache-key-{name}"));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .unwrap();
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
