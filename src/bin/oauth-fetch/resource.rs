//! The resource-first mode: no `--token-url`, `--issuer` or `--provider`, so each URL's
//! resource says where its tokens come from (RFC 9728), and the client registers itself there
//! when no `--client-id` is given (RFC 7591).

#[cfg(feature = "auth-code")]
use oauth_layer::flow::AuthCode;
use oauth_layer::resource::ResourceClient;

use crate::options::{Options, Stop, usage};
use crate::store::open_store;

/// The resource-first client for the URLs of `o` (each URL's resource identifier: its query
/// and fragment dropped, so several URLs may be one resource), with the identity, grant,
/// scopes, DPoP and store the options give. URLs that may not receive a token (plain `http`
/// beyond loopback) are no resource: they are fetched without one, as in the other modes.
pub(crate) async fn build_resources(o: &Options) -> Result<ResourceClient, Stop> {
    let mut client: Option<ResourceClient> = None;
    for (text, url) in &o.urls {
        let origin = url.origin().ascii_serialization();
        if !(origin.starts_with("https://") || crate::is_loopback_origin(&origin)) {
            continue;
        }
        let added = match client {
            None => ResourceClient::new(url.as_str()),
            Some(client) => client.resource(url.as_str()),
        };
        client = Some(added.map_err(|e| usage(format!("{text}: {e}")))?);
    }
    let mut client = client.ok_or_else(|| {
        usage(
            "no URL may receive a token (https, or http to loopback), so there is no resource \
             to ask where tokens come from (give --token-url, --issuer or --provider)",
        )
    })?;
    client = match (&o.client_id, &o.client_secret) {
        (Some(id), Some(secret)) => client.client_id_and_secret(id.clone(), secret.clone()),
        (Some(id), None) => client.client_id(id.clone()),
        // Checked when parsing: no secret without a client id. Registration is the default.
        (None, _) => client,
    };
    client = match o.flow.as_str() {
        "client-credentials" if !o.details.is_empty() => {
            return Err(usage(
                "--authorization-details needs --token-url, --issuer or --provider with --flow \
                 client-credentials: without them the resource's metadata says what to ask for",
            ));
        }
        "client-credentials" => client.machine(),
        #[cfg(feature = "auth-code")]
        "auth-code" => client.auth_code(crate::build::sign_in(o, AuthCode::new())?),
        #[cfg(not(feature = "auth-code"))]
        "auth-code" => {
            return Err(usage(
                "--flow auth-code needs the crate's auth-code feature",
            ));
        }
        other => unreachable!("--flow {other:?} was checked when parsing"),
    };
    for scope in &o.scopes {
        client = client.scope(scope.clone());
    }
    if let Some(algorithms) = &o.dpop {
        client = client.client_settings(
            oauth_layer::OAuthClient::builder("")
                .dpop(oauth_layer::dpop::Dpop::new().algorithms(algorithms.iter().copied())),
        );
    }
    let store = open_store(o).await?;
    store.check_dir().await?;
    Ok(store.attach_resources(client))
}
