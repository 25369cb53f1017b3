//! The token flow of workload identity federation: the workload's subject token traded at
//! Google's security token service (RFC 8693), then, when configured, the federated token
//! traded for a service account's token.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::impersonation::Impersonation;
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::credential::CredentialSource;
use crate::error::Result;
use crate::flow::Flow;
use crate::flow::token_exchange::{ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use crate::store::CacheKey;
use crate::token::Token;

/// The scope of every Google Cloud API, asked of the security token service when the token is
/// then impersonated (the service account's token carries the caller's scopes), and used when
/// the caller names none.
pub(super) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The flow of an [`ExternalAccount`](super::ExternalAccount).
#[derive(Clone)]
pub(super) struct Federation {
    pub(super) audience: String,
    pub(super) subject: Arc<dyn CredentialSource>,
    pub(super) subject_token_type: String,
    /// Space-separated, never empty.
    pub(super) scopes: String,
    /// `workforce_pool_user_project`, sent as STS `options` by a file without a client id.
    pub(super) user_project: Option<String>,
    pub(super) impersonation: Option<Impersonation>,
}

#[async_trait]
impl Flow for Federation {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        let subject = crate::credential::fresh(&*self.subject, client.clock()).await?;
        let sts_scope = match self.impersonation {
            Some(_) => CLOUD_PLATFORM,
            None => &self.scopes,
        };
        let mut request = TokenRequest::new(TOKEN_EXCHANGE_GRANT)
            .param("audience", self.audience.clone())
            .param("requested_token_type", ACCESS_TOKEN_TYPE)
            .secret_param("subject_token", subject.secret().clone())
            .param("subject_token_type", self.subject_token_type.clone())
            .scope(sts_scope);
        if let Some(project) = &self.user_project {
            request = request.param(
                "options",
                serde_json::json!({ "userProject": project }).to_string(),
            );
        }
        let federated = client.request_token(request.resend(Resend::Always)).await?;
        match &self.impersonation {
            None => Ok(federated),
            Some(impersonation) => {
                let scopes: Vec<&str> = self.scopes.split_whitespace().collect();
                impersonation.token(client, &federated, &scopes).await
            }
        }
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "google_external_account")
            .part("audience", self.audience.clone())
            .secret_part("subject_token", &self.subject.identity())
            .part("subject_token_type", self.subject_token_type.clone());
        if let Some(project) = &self.user_project {
            key = key.part("user_project", project.clone());
        }
        if let Some(impersonation) = &self.impersonation {
            key = key
                .part("impersonation_url", impersonation.url.as_str())
                .part("lifetime", impersonation.lifetime.as_secs().to_string());
        }
        key.scopes(self.scopes.split_whitespace()).build()
    }
}

impl fmt::Debug for Federation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Federation")
            .field("audience", &self.audience)
            .field("subject", &self.subject.describe())
            .field("subject_token_type", &self.subject_token_type)
            .field("scopes", &self.scopes)
            .field(
                "impersonation",
                &self.impersonation.as_ref().map(|i| i.url.as_str()),
            )
            .finish()
    }
}
