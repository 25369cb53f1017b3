//! Service account impersonation: the security token service's federated token traded at IAM
//! Credentials (`generateAccessToken`) for a service account's access token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::client::OAuthClient;
use crate::error::{Endpoint, Error, Result};
use crate::redact::Secrets;
use crate::token::Token;

/// Google's default and bounds for an impersonated token's lifetime.
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
pub(super) const MIN_LIFETIME: Duration = Duration::from_secs(600);
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(43_200);

/// Where and for how long to impersonate.
#[derive(Debug, Clone)]
pub(super) struct Impersonation {
    pub(super) url: Url,
    pub(super) lifetime: Duration,
}

impl Impersonation {
    /// The service account's token for `scopes`, asked for with the federated token `federated`.
    /// Errors carry the status and a redacted excerpt, never either token.
    pub(super) async fn token(
        &self,
        client: &OAuthClient,
        federated: &Token,
        scopes: &[&str],
    ) -> Result<Token> {
        let body = json!({
            "scope": scopes,
            "lifetime": format!("{}s", self.lifetime.as_secs()),
        });
        let mut authorization = federated.header_value().clone();
        authorization.set_sensitive(true);
        let request = http::Request::post(self.url.as_str())
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        let response = client
            .exchange(Endpoint::ProviderApi, request)
            .await
            .map_err(Error::Transport)?;
        let mut secrets = Secrets::default();
        secrets.add(federated.access_token().expose_secret());
        if !response.status.is_success() {
            let status = response
                .object()
                .and_then(|o| o.get("error")?.get("status")?.as_str().map(str::to_owned))
                .filter(|s| {
                    s.len() <= 64 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                });
            let problem = match status {
                Some(status) => format!("service account impersonation was refused ({status})"),
                None => "service account impersonation was refused".to_owned(),
            };
            return Err(response.unexpected(&problem, &secrets));
        }
        let answer = response.object().unwrap_or_default();
        let access_token = answer
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let expires = answer
            .get("expireTime")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        let (Some(access_token), Some(expires)) = (access_token, expires) else {
            return Err(response.unexpected(
                "the impersonation answer lacks accessToken or an RFC 3339 expireTime",
                &secrets,
            ));
        };
        let clock = client.clock();
        let lifetime = expires
            .duration_since(clock.now_utc())
            .ok()
            .filter(|l| !l.is_zero())
            .ok_or_else(|| {
                response.unexpected("the impersonated token has already expired", &secrets)
            })?;
        Token::builder(access_token)
            .expires_in(lifetime)
            .scope(scopes.join(" "))
            .build(clock)
    }
}

/// An RFC 3339 time with a `Z` or numeric offset (`2026-12-04T03:00:00.5Z`), as IAM Credentials
/// writes `expireTime`.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(seconds)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_iam_credentials_writes() {
        let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2026-12-04T03:00:00Z"), Some(1_796_353_200));
        assert_eq!(at("2026-12-04T03:00:00.123456789Z"), Some(1_796_353_200));
        assert_eq!(at("2026-12-04T04:00:00+01:00"), Some(1_796_353_200));
        assert_eq!(at("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2026-12-04",
            "2026-13-04T03:00:00Z",
            "2026-12-04T03:00:00",
            "x026-12-04T03:00:00Z",
            "2026-12-04T03:00:00.Z",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
