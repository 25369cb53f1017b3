//! GitLab (gitlab.com or self-managed).

use super::spec::Oidc;
use super::{Base, Spec, preset};
use crate::error::Result;

const GITLAB: Spec = Spec {
    name: "gitlab",
    authorize: "{base}/oauth/authorize",
    token: "{base}/oauth/token",
    device: Some("{base}/oauth/authorize_device"),
    revocation: Some("{base}/oauth/revoke"),
    oidc: Some(Oidc {
        issuer: "{base}",
        userinfo: "{base}/oauth/userinfo",
        jwks: "{base}/oauth/discovery/keys",
        validate: true,
        other_issuer: None,
    }),
    scopes: "openid profile email",
    api: Some("{base}"),
    ..Spec::OAUTH
};

/// GitLab as an OpenID Connect provider: gitlab.com, or a self-managed instance at its base
/// URL (the issuer).
///
/// Endpoints `/oauth/authorize`, `/oauth/token`, `/oauth/userinfo`, `/oauth/discovery/keys`,
/// `/oauth/revoke`, `/oauth/authorize_device`. Access tokens live two hours and come with a
/// refresh token, which GitLab rotates. Default scopes `openid profile email` (add `read_user`
/// or `api` for the REST API); ID tokens validated; client authentication with a secret is
/// `client_secret_post`, as GitLab documents.
///
/// [`id_email`](super::Preset::id_email) returns `sub` (the numeric user id, as text) and `email`
/// (unless `email_verified` is `false`) from `/oauth/userinfo`.
#[derive(Debug, Clone)]
pub struct GitLab {
    base: Base,
}

preset!(GitLab);

impl GitLab {
    /// A preset for gitlab.com.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Self::self_hosted("https://gitlab.com", client_id)
    }

    /// A preset for the instance at `base_url` (`https://gitlab.example`, or with a path when
    /// GitLab is served under one).
    pub fn self_hosted(base_url: &str, client_id: impl Into<String>) -> Result<Self> {
        let base = super::base_url("GitLab base URL", base_url)?;
        Ok(Self {
            base: GITLAB.base(client_id, &[("base", &base)])?,
        })
    }
}
