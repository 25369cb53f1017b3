//! The account behind a token, read from a provider's API as data describes it: which URL, how
//! the token is sent, where the id and the email are, and when the email can be trusted.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::client::OAuthClient;
use crate::error::{Endpoint, Error, Result};
use crate::redact::Secrets;
use crate::token::Token;
use crate::transport::RawResponse;

/// A JSON path: the member names from the top object down.
pub(super) type Path = &'static [&'static str];

/// Where a provider keeps the account behind a token.
#[derive(Debug)]
pub(super) struct Profile {
    /// The URL template asked with the token; `None`: the userinfo endpoint of the client's
    /// OpenID Connect metadata.
    pub(super) url: Option<&'static str>,
    pub(super) credential: Credential,
    /// A member that, when present, must have this value (Naver's `resultcode: "00"`).
    pub(super) result: Option<(Path, &'static str)>,
    /// The account id (a string or a number).
    pub(super) id: Path,
    /// The email address; empty for a provider that gives none.
    pub(super) email: Path,
    /// When the email is returned.
    pub(super) trust: Trust,
    /// A URL template answering a list of addresses, whose primary verified one is taken when
    /// the profile has no email (GitHub's `/user/emails`).
    pub(super) other_emails: Option<&'static str>,
}

/// When a provider's email address is returned.
#[derive(Debug)]
pub(super) enum Trust {
    /// Whenever it is there.
    Always,
    /// Unless this flag is `false` (OpenID Connect's `email_verified`).
    UnlessFalse(Path),
    /// Only when all these flags are `true`.
    AllTrue(&'static [Path]),
}

impl Profile {
    /// OpenID Connect userinfo: `sub`, and `email` unless `email_verified` is `false`.
    pub(super) const USERINFO: Self = Self {
        url: None,
        credential: Credential::Bearer,
        result: None,
        id: &["sub"],
        email: &["email"],
        trust: Trust::UnlessFalse(&["email_verified"]),
        other_emails: None,
    };

    /// A provider's own API at `url`: `id` and `email`, the latter whenever it is there.
    pub(super) const fn api(url: &'static str, id: Path, email: Path) -> Self {
        Self {
            url: Some(url),
            credential: Credential::Bearer,
            result: None,
            id,
            email,
            trust: Trust::Always,
            other_emails: None,
        }
    }

    /// Reads the account behind `token`: at `url` (the userinfo endpoint when `None`), and at
    /// `other_emails` when the profile has no email.
    pub(super) async fn read(
        &self,
        client: &OAuthClient,
        url: Option<&str>,
        other_emails: Option<&str>,
        token: &Token,
    ) -> Result<(String, Option<String>)> {
        let (url, endpoint) = match url {
            Some(url) => (url.to_owned(), Endpoint::ProviderApi),
            None => (userinfo_url(client)?, Endpoint::UserInfo),
        };
        let answer = api_get(client, endpoint, &url, token, self.credential).await?;
        if let Some((path, ok)) = self.result
            && answer.text(path).is_some_and(|code| code != ok)
        {
            return Err(answer.missing("the profile API answered an error result code"));
        }
        let id = answer.id(self.id)?;
        let trusted = match self.trust {
            Trust::Always => true,
            Trust::UnlessFalse(flag) => answer.flag(flag) != Some(false),
            Trust::AllTrue(flags) => flags.iter().all(|flag| answer.flag(flag) == Some(true)),
        };
        let email = if trusted && !self.email.is_empty() {
            answer.text(self.email)
        } else {
            None
        };
        match (email, other_emails) {
            (None, Some(url)) => Ok((id, primary_verified(client, url, token).await?)),
            (email, _) => Ok((id, email)),
        }
    }
}

/// How a provider API wants the access token.
#[derive(Debug, Clone, Copy)]
pub(super) enum Credential {
    /// `Authorization: Bearer ...`
    Bearer,
    /// The bare token in this header (Shopify's `X-Shopify-Access-Token`).
    Header(&'static str),
}

/// A JSON object from a provider API, kept with the response it came in so that a missing member
/// can be reported like any unexpected answer.
struct Answer<'t> {
    response: RawResponse,
    map: Map<String, Value>,
    secrets: Secrets<'t>,
}

impl Answer<'_> {
    /// The member at `path` (nested objects).
    fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.map.get(*first)?, |v, name| v.get(name))
    }

    /// A string member, `None` when absent, `null` or empty.
    fn text(&self, path: &[&str]) -> Option<String> {
        self.get(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn flag(&self, path: &[&str]) -> Option<bool> {
        self.get(path).and_then(Value::as_bool)
    }

    /// An id, sent as a string or a number (GitHub, Kakao and Shopify send numbers).
    fn id(&self, path: &[&str]) -> Result<String> {
        match self.get(path) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(self.missing(&format!("no {} in the answer", path.join(".")))),
        }
    }

    fn missing(&self, problem: &str) -> Error {
        self.response.unexpected(problem, &self.secrets)
    }
}

/// `GET url` (at `endpoint`, which errors name) with the access token.
async fn get<'t>(
    client: &OAuthClient,
    endpoint: Endpoint,
    url: &str,
    token: &'t Token,
    credential: Credential,
) -> Result<(RawResponse, Secrets<'t>)> {
    let mut request = http::Request::get(url)
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
    match credential {
        Credential::Bearer => {
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.header_value().clone());
        }
        Credential::Header(name) => {
            let mut value = HeaderValue::try_from(token.access_token().expose_secret())
                .map_err(|_| Error::config("the access token is not a valid header value"))?;
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    let response = client.exchange(endpoint, request).await?;
    let mut secrets = Secrets::default();
    secrets.add(token.access_token().expose_secret());
    Ok((response, secrets))
}

/// `GET url` with the access token, answered with a JSON object and a success status.
async fn api_get<'t>(
    client: &OAuthClient,
    endpoint: Endpoint,
    url: &str,
    token: &'t Token,
    credential: Credential,
) -> Result<Answer<'t>> {
    let (response, secrets) = get(client, endpoint, url, token, credential).await?;
    let map = response.json_object(&secrets)?;
    if !response.status.is_success() {
        return Err(response.unexpected("the API answered an error status", &secrets));
    }
    Ok(Answer {
        response,
        map,
        secrets,
    })
}

/// The primary verified address of a list such as GitHub's `/user/emails`
/// (`[{"email", "primary", "verified"}]`), or `None`.
async fn primary_verified(
    client: &OAuthClient,
    url: &str,
    token: &Token,
) -> Result<Option<String>> {
    let (response, secrets) = get(
        client,
        Endpoint::ProviderApi,
        url,
        token,
        Credential::Bearer,
    )
    .await?;
    if !response.status.is_success() {
        return Err(response.unexpected("the API answered an error status", &secrets));
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&response.body) else {
        return Err(response.unexpected("not a JSON array", &secrets));
    };
    Ok(items.iter().find_map(|e| {
        let yes = |name: &str| e.get(name).and_then(Value::as_bool) == Some(true);
        (yes("primary") && yes("verified"))
            .then(|| e.get("email").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned)
    }))
}

/// The userinfo endpoint of an OpenID Connect preset's client.
pub(super) fn userinfo_url(client: &OAuthClient) -> Result<String> {
    client
        .metadata()
        .and_then(|m| m.userinfo_for(client.has_client_certificate()))
        .map(|u| u.as_str().to_owned())
        .ok_or_else(|| Error::config("the provider's metadata names no userinfo endpoint"))
}
