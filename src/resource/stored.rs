//! Discovery results kept in the caller's token store, so that another process sharing it (or
//! this one after a restart) goes straight to the resource with the token the store holds: no
//! probe, no metadata fetched again.
//!
//! The stores keep tokens only, so a discovery is kept as one: a placeholder access token that
//! expires when the documents would leave the process cache ([`LIFETIME`]), and the two checked
//! documents, with the scopes the resource's challenge asked for, in an extra member. Whatever
//! is read back is checked again: the resource document must name this resource, and the
//! server document the issuer the resource names.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::cache::{self, LIFETIME};
use crate::OAuthClient;
use crate::clock::SystemClock;
use crate::discovery::resource::{ProtectedResourceMetadata, ResourceIdentifier};
use crate::metadata::Metadata;
use crate::store::{CacheKey, TokenStore};
use crate::token::Token;

/// The extra member of a stored discovery.
const MEMBER: &str = "oauth_layer_resource_discovery";
/// The access token of a stored discovery (it is never sent anywhere).
const PLACEHOLDER: &str = "oauth-layer-resource-discovery";
/// The layout of [`MEMBER`]; an entry of another version is not read.
const VERSION: u64 = 1;

fn key(resource: &ResourceIdentifier) -> Option<CacheKey> {
    let nobody = OAuthClient::builder("").build().ok()?;
    Some(
        CacheKey::builder(&nobody, "resource-discovery")
            .part("resource", resource.as_str().to_owned())
            .build(),
    )
}

/// Keeps what discovery found for `resource` in `store` (a failure is only logged: the next
/// process discovers again).
pub(crate) async fn keep(
    store: &Arc<dyn TokenStore>,
    resource: &ResourceIdentifier,
    document: &ProtectedResourceMetadata,
    asked: Option<&str>,
    server: &Metadata,
) {
    let Some(key) = key(resource) else { return };
    let kept = json!({
        "version": VERSION,
        "resource_metadata": document,
        "asked": asked,
        "server_metadata": server,
    });
    let token = Token::builder(PLACEHOLDER)
        .expires_in(LIFETIME)
        .extra(MEMBER, kept)
        .build(&SystemClock);
    match token {
        Ok(token) => {
            if let Err(e) = store.save(&key, &token).await {
                tracing::debug!(error = %e, "resource discovery not kept in the store");
            }
        }
        Err(e) => tracing::debug!(error = %e, "resource discovery not kept in the store"),
    }
}

/// Reads back what another process found for `resource` and puts it in this process's cache,
/// for the rest of its lifetime. `true` when there was something usable.
pub(crate) async fn recall(store: &Arc<dyn TokenStore>, resource: &ResourceIdentifier) -> bool {
    let Some(key) = key(resource) else {
        return false;
    };
    let token = match store.load(&key).await {
        Ok(Some(token)) => token,
        Ok(None) => return false,
        Err(e) => {
            tracing::debug!(error = %e, "resource discovery not read from the store");
            return false;
        }
    };
    let Ok(left) = token.expires_at_utc().duration_since(SystemTime::now()) else {
        return false;
    };
    let Some((document, asked, server)) = read(&token, resource) else {
        tracing::debug!(resource = %resource, "ignoring a stored resource discovery that does not fit");
        return false;
    };
    let fetched = tokio::time::Instant::now()
        .checked_sub(LIFETIME.saturating_sub(left))
        .unwrap_or_else(tokio::time::Instant::now);
    cache::servers().put_at(&server.issuer.clone(), server, fetched);
    cache::resources().put_at(resource.as_str(), (document, asked), fetched);
    true
}

/// The documents in `token`, when they are a discovery of `resource` that still fits it.
fn read(
    token: &Token,
    resource: &ResourceIdentifier,
) -> Option<(ProtectedResourceMetadata, Option<String>, Metadata)> {
    let kept = token.extra().get(MEMBER)?.as_object()?;
    if kept.get("version")?.as_u64()? != VERSION {
        return None;
    }
    let document: ProtectedResourceMetadata =
        serde_json::from_value(kept.get("resource_metadata")?.clone()).ok()?;
    let server: Metadata = serde_json::from_value(kept.get("server_metadata")?.clone()).ok()?;
    let asked = match kept.get("asked")? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        _ => return None,
    };
    let names_server = document
        .authorization_servers
        .iter()
        .flatten()
        .any(|issuer| *issuer == server.issuer);
    (resource.is(&document.resource) && names_server).then_some((document, asked, server))
}

/// Deletes the stored discovery of `resource` (one that led to no token), in the background.
pub(crate) fn forget(store: &Arc<dyn TokenStore>, resource: &ResourceIdentifier) {
    let (Some(key), Ok(runtime)) = (key(resource), tokio::runtime::Handle::try_current()) else {
        return;
    };
    let store = store.clone();
    runtime.spawn(async move {
        if let Err(e) = store.delete(&key).await {
            tracing::debug!(error = %e, "stored resource discovery not deleted");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn documents(
        resource: &str,
        issuer: &str,
        names: &str,
    ) -> (ProtectedResourceMetadata, Metadata) {
        let document = serde_json::from_value(json!({
            "resource": resource,
            "authorization_servers": [names],
        }))
        .unwrap();
        let server = serde_json::from_value(json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
        }))
        .unwrap();
        (document, server)
    }

    #[tokio::test]
    async fn a_kept_discovery_is_recalled_into_the_process_cache() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let resource = ResourceIdentifier::new("https://kept.example/mcp").unwrap();
        let (document, server) = documents(
            resource.as_str(),
            "https://idp.example",
            "https://idp.example",
        );
        keep(&store, &resource, &document, Some("mcp:tools"), &server).await;
        assert!(cache::resources().get(resource.as_str()).is_none());
        assert!(recall(&store, &resource).await);
        let (recalled, asked) = cache::resources().get(resource.as_str()).unwrap();
        assert_eq!(recalled, document);
        assert_eq!(asked.as_deref(), Some("mcp:tools"));
        assert_eq!(cache::servers().get("https://idp.example").unwrap(), server);
        forget(&store, &resource);
        tokio::task::yield_now().await;
        let other = ResourceIdentifier::new("https://never-kept.example/").unwrap();
        assert!(!recall(&store, &other).await);
    }

    #[tokio::test]
    async fn a_kept_discovery_that_does_not_fit_is_not_recalled() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        // A document for another resource, and a server the document does not name, planted
        // under this resource's key.
        for (n, (document_for, names)) in [
            ("https://elsewhere.example/mcp", "https://idp.example"),
            (
                "https://planted{n}.example/mcp",
                "https://other-idp.example",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let resource =
                ResourceIdentifier::new(format!("https://planted{n}.example/mcp")).unwrap();
            let document_for = document_for.replace("{n}", &n.to_string());
            let (document, server) = documents(&document_for, "https://idp.example", names);
            keep(&store, &resource, &document, None, &server).await;
            assert!(!recall(&store, &resource).await, "{document_for} {names}");
            assert!(cache::resources().get(resource.as_str()).is_none());
        }
    }
}
