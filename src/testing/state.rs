//! What the test server knows: its configuration, the tokens it issued, and what it counted.
//!
//! Everything mutable sits behind one `std::sync::Mutex`, taken only inside synchronous code so
//! it is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::client::AuthMethod;
use crate::clock::Clock;

use super::RecordedRequest;

/// A client registration.
#[derive(Debug, Clone)]
pub(super) struct Registration {
    pub(super) secret: Option<String>,
    pub(super) method: AuthMethod,
}

/// The fixed configuration, set by the builder.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) clients: HashMap<String, Registration>,
    pub(super) users: HashMap<String, String>,
    pub(super) access_token_lifetime: Duration,
    pub(super) rotate_refresh_tokens: bool,
    pub(super) issue_refresh_tokens: bool,
    /// `(path, scope)`: a resource at exactly `path` needs `scope`.
    pub(super) required_scopes: Vec<(String, String)>,
    pub(super) clock: Arc<dyn Clock>,
}

impl Config {
    pub(super) fn required_scope(&self, path: &str) -> Option<&str> {
        self.required_scopes
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, scope)| scope.as_str())
    }
}

/// Who a token was issued to and for what. Access and refresh tokens from one authorization
/// share a `grant` id, so revoking a refresh token can take its access tokens along (RFC 7009
/// §2.1).
#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub(super) id: u64,
    pub(super) client_id: String,
    pub(super) username: Option<String>,
    pub(super) scope: Option<String>,
}

#[derive(Debug)]
pub(super) struct AccessToken {
    pub(super) grant: Grant,
    pub(super) expires_at: Instant,
}

/// The mutable part.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) access_tokens: HashMap<String, AccessToken>,
    pub(super) refresh_tokens: HashMap<String, Grant>,
    next_grant: u64,
    pub(super) token_requests: usize,
    pub(super) token_requests_by_grant: HashMap<String, usize>,
    pub(super) revocation_requests: usize,
    pub(super) resource_requests: Vec<RecordedRequest>,
}

/// The tokens handed out by one successful token request.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
}

/// The random source failed; the server answers `server_error`.
#[derive(Debug)]
pub(super) struct NoRandomness;

impl State {
    pub(super) fn new_grant(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        scope: Option<String>,
    ) -> Grant {
        self.next_grant += 1;
        Grant {
            id: self.next_grant,
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            scope,
        }
    }

    /// Stores a new access token for `grant` with `access_scope` (a refresh may narrow it), and
    /// a refresh token carrying the grant's own scope when asked.
    pub(super) fn issue(
        &mut self,
        config: &Config,
        grant: Grant,
        access_scope: Option<String>,
        with_refresh_token: bool,
    ) -> Result<Issued, NoRandomness> {
        let now = config.clock.now();
        let access_token = random_token("at")?;
        let refresh_token = if with_refresh_token {
            Some(random_token("rt")?)
        } else {
            None
        };
        // Forget tokens that can never be accepted again, so a long demo does not grow forever.
        self.access_tokens.retain(|_, t| t.expires_at > now);
        if let Some(refresh_token) = &refresh_token {
            self.refresh_tokens
                .insert(refresh_token.clone(), grant.clone());
        }
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                grant: Grant {
                    scope: access_scope,
                    ..grant
                },
                expires_at: now + config.access_token_lifetime,
            },
        );
        Ok(Issued {
            access_token,
            refresh_token,
        })
    }
}

/// Configuration and state, shared by the handle and every connection task.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: Config,
    state: Mutex<State>,
}

impl Shared {
    pub(super) fn new(config: Config) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Locks the state. A panic elsewhere while holding the lock leaves the state consistent
    /// enough for a test server, so poisoning is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `prefix` + `_` + 256 random bits, base64url.
fn random_token(prefix: &str) -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| NoRandomness)?;
    Ok(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes)))
}
