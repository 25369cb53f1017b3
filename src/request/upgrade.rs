//! Asking for more after a challenge: a wider scope (`insufficient_scope`), a stronger or
//! fresher sign-in (`insufficient_user_authentication`, RFC 9470) or a claims request
//! (`insufficient_claims`), from a source derived from the request's own
//! ([`TokenSource::upgraded`]). The original source keeps serving requests that need no more.

use super::challenge::Verdict;
use crate::error::{Error, Result};
use crate::flow::Requirements;
use crate::source::TokenSource;
use crate::token::Token;

/// What a verdict asks for beyond a renewal or a new proof, if anything.
pub(crate) fn requirements(verdict: &Verdict) -> Option<Requirements> {
    match verdict {
        Verdict::MoreScope(scopes) => Some(Requirements::new().scope(scopes)),
        Verdict::StepUp {
            acr_values,
            max_age,
        } => {
            let mut need = Requirements::new();
            if let Some(acr) = acr_values {
                need = need.acr_values(acr.clone());
            }
            if let Some(age) = max_age {
                need = need.max_age(*age);
            }
            Some(need)
        }
        Verdict::Claims(claims) => Some(Requirements::new().claims(claims.clone())),
        Verdict::Done | Verdict::Renew | Verdict::Nonce(_) => None,
    }
}

/// The source that meets `need` for a request whose token (issuance `rejected`) was refused,
/// and its token. A source that cannot meet it, or a person who may not be asked in the middle
/// of this request, is [`Error::StepUpRequired`] naming `need`.
pub(crate) async fn upgrade(
    source: &TokenSource,
    need: Requirements,
    rejected: u64,
    interactive: bool,
) -> Result<(TokenSource, Token)> {
    let upgraded = source.upgraded_after_issue(&need, rejected).await?;
    match upgraded.token_for(interactive).await {
        Ok(token) => {
            tracing::debug!(need = ?need, "challenge: retrying once with an upgraded token");
            Ok((upgraded, token))
        }
        Err(Error::InteractionRequired) => Err(Error::StepUpRequired(need)),
        Err(e) => Err(e),
    }
}
