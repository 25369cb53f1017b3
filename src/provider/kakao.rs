//! Kakao Login.

use super::profile::{Profile, Trust};
use super::{Base, Spec, preset};
use crate::error::Result;

const KAKAO: Spec = Spec {
    name: "kakao",
    authorize: "https://kauth.kakao.com/oauth/authorize",
    token: "https://kauth.kakao.com/oauth/token",
    api: Some("https://kapi.kakao.com"),
    profile: Profile {
        trust: Trust::AllTrue(&[
            &["kakao_account", "is_email_valid"],
            &["kakao_account", "is_email_verified"],
        ]),
        ..Profile::api(
            "https://kapi.kakao.com/v2/user/me",
            &["id"],
            &["kakao_account", "email"],
        )
    },
    ..Spec::OAUTH
};

/// Kakao Login: `kauth.kakao.com/oauth`, the API at `kapi.kakao.com`. The client id is the
/// app's REST API key.
///
/// The consent items (such as `account_email`) are chosen in the Kakao console; `scopes` asks
/// for more. The client secret is optional (when enabled in the console it is required) and
/// is sent as `client_secret_post`. Access tokens come with a refresh token.
///
/// [`id_email`](super::Preset::id_email) returns the numeric user id and `kakao_account.email` of
/// `GET /v2/user/me`, the latter only when Kakao says it is valid and verified
/// (`is_email_valid`, `is_email_verified`) and the person agreed to share it.
#[derive(Debug, Clone)]
pub struct Kakao {
    base: Base,
}

preset!(Kakao);

impl Kakao {
    /// A preset for this REST API key.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: KAKAO.base(client_id, &[])?,
        })
    }
}
