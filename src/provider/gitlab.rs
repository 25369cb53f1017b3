//! GitLab (gitlab.com or self-managed).

use async_trait::async_trait;

use super::{
    Base, Preset, endpoints, origin, preset_common, static_oidc, userinfo_id_email, userinfo_url,
};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

/// GitLab as an OpenID Connect provider: gitlab.com, or a self-managed instance at its base
/// URL (the issuer).
///
/// Endpoints `/oauth/authorize`, `/oauth/token`, `/oauth/userinfo`, `/oauth/discovery/keys`,
/// `/oauth/revoke`, `/oauth/authorize_device`. Access tokens live two hours and come with a
/// refresh token, which GitLab rotates. Default scopes `openid profile email` (add `read_user`
/// or `api` for the REST API); ID tokens validated; client authentication with a secret is
/// `client_secret_post`, as GitLab documents.
///
/// [`id_email`](Preset::id_email) returns `sub` (the numeric user id, as text) and `email`
/// (unless `email_verified` is `false`) from `/oauth/userinfo`.
#[derive(Debug, Clone)]
pub struct GitLab {
    base: Base,
    origin: Vec<String>,
}

preset_common!(GitLab);

impl GitLab {
    /// A preset for gitlab.com.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Self::self_hosted("https://gitlab.com", client_id)
    }

    /// A preset for the instance at `base_url` (`https://gitlab.example`, or with a path when
    /// GitLab is served under one).
    pub fn self_hosted(base_url: &str, client_id: impl Into<String>) -> Result<Self> {
        let base = super::base_url("GitLab base URL", base_url)?;
        let client = endpoints(
            OAuthClient::builder(client_id),
            &format!("{base}/oauth/authorize"),
            &format!("{base}/oauth/token"),
        )
        .revocation_url(format!("{base}/oauth/revoke"))
        .device_authorization_url(format!("{base}/oauth/authorize_device"));
        let client = static_oidc(
            client,
            &base,
            Some(&format!("{base}/oauth/userinfo")),
            Some(&format!("{base}/oauth/discovery/keys")),
        )?;
        Ok(Self {
            base: Base::new(client, "openid profile email", AuthMethod::ClientSecretPost)
                .validating(true),
            origin: origin(&base),
        })
    }
}

#[async_trait]
impl Preset for GitLab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow()
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }

    fn api_origins(&self) -> Vec<String> {
        self.origin.clone()
    }
}
