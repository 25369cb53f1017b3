//! A credential from your own code.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Credential, CredentialSource};
use crate::error::Result;

type Fetch =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Credential>> + Send>> + Send + Sync + 'static;

/// A credential from a closure returning a future, called for every token request. The name
/// identifies the source in errors, logs and cache keys (closures cannot be told apart).
///
/// ```
/// use oauth_layer::credential::{Credential, from_fn};
///
/// let source = from_fn("vault", || async { Ok(Credential::new("eyJ...")) });
/// assert_eq!(format!("{source:?}"), "CallbackSource(\"vault\")");
/// ```
#[derive(Clone)]
pub struct CallbackSource {
    name: String,
    fetch: Arc<Fetch>,
}

impl CallbackSource {
    /// A source named `name` that calls `fetch` for each credential.
    pub fn new<F, Fut>(name: impl Into<String>, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Credential>> + Send + 'static,
    {
        Self {
            name: name.into(),
            fetch: Arc::new(move || Box::pin(fetch())),
        }
    }
}

/// [`CallbackSource::new`].
pub fn from_fn<F, Fut>(name: impl Into<String>, fetch: F) -> CallbackSource
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credential>> + Send + 'static,
{
    CallbackSource::new(name, fetch)
}

impl fmt::Debug for CallbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallbackSource").field(&self.name).finish()
    }
}

#[async_trait]
impl CredentialSource for CallbackSource {
    async fn credential(&self) -> Result<Credential> {
        (self.fetch)().await
    }

    fn describe(&self) -> String {
        format!("callback {}", self.name)
    }
}
