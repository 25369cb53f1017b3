//! The first of several sources that yields a credential.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Credential, CredentialSource};
use crate::error::{Error, Result};

/// Tries its sources in order; the first that yields a credential wins. Each skipped source is
/// logged at `debug` with why; when none yields one, the error lists every source tried, each
/// with its reason.
///
/// ```
/// use oauth_layer::credential::{FileSource, FirstAvailable, UrlSource};
///
/// let source = FirstAvailable::new([
///     Box::new(FileSource::new("/var/run/secrets/tokens/oauth")) as Box<dyn oauth_layer::credential::CredentialSource>,
///     Box::new(UrlSource::new("https://metadata.example/token")?),
/// ]);
/// # let _ = source;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FirstAvailable {
    sources: Vec<Arc<dyn CredentialSource>>,
}

impl FirstAvailable {
    /// A chain of `sources`, tried in order.
    pub fn new(sources: impl IntoIterator<Item = Box<dyn CredentialSource>>) -> Self {
        Self {
            sources: sources.into_iter().map(Arc::from).collect(),
        }
    }

    /// Adds a source at the end of the chain.
    pub fn or(mut self, source: impl CredentialSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }
}

#[async_trait]
impl CredentialSource for FirstAvailable {
    async fn credential(&self) -> Result<Credential> {
        let mut tried = Vec::new();
        for source in &self.sources {
            match source.credential().await {
                Ok(credential) => return Ok(credential),
                Err(e) => {
                    let what = source.describe();
                    tracing::debug!(source = %what, error = %e, "credential source skipped");
                    tried.push(format!("{what}: {e}"));
                }
            }
        }
        Err(Error::Credential {
            origin: self.describe(),
            reason: if tried.is_empty() {
                "no sources to try".into()
            } else {
                format!("no source yielded a credential; tried {}", tried.join("; "))
            },
        })
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.describe()).collect();
        format!("first available of [{}]", names.join(", "))
    }

    fn identity(&self) -> String {
        let parts: Vec<String> = self.sources.iter().map(|s| s.identity()).collect();
        format!("first available of [{}]", parts.join("\0\0"))
    }
}
