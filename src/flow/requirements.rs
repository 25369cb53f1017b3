//! [`Requirements`]: what a resource asked for beyond the token it was shown, and how each grant
//! turns that into a wider request.

use super::Scopes;

/// What a resource asked for beyond the current token: more scopes (`403 insufficient_scope`
/// with `scope=`, RFC 6750 §3.1), a stronger or fresher sign-in (`401
/// insufficient_user_authentication` with `acr_values` and/or `max_age`, RFC 9470), or extra
/// claims (`insufficient_claims` with `claims`, Microsoft Entra continuous access evaluation).
///
/// A [`Flow`](super::Flow) turns it into a flow that asks for more with
/// [`Flow::upgraded`](super::Flow::upgraded); a [`TokenSource`](crate::TokenSource) does it with
/// [`TokenSource::upgraded`](crate::TokenSource::upgraded), keeping the wider token under its
/// own cache key. Values come from a resource server, so they are never secrets, but they are
/// not trusted either: a source refuses absurd sizes.
///
/// ```
/// use oauth_layer::flow::Requirements;
///
/// let need = Requirements::new().scope("files:write").acr_values("urn:mace:incommon:iap:silver").max_age(0);
/// assert_eq!(need.scopes, ["files:write"]);
/// assert!(need.needs_sign_in());
/// ```
///
/// `Debug` shortens every value to 100 characters: they come from a resource server, which may
/// send kilobytes, and errors carrying them end up in logs.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Requirements {
    /// Scopes the token must carry (in addition to those the flow asks for already).
    pub scopes: Vec<String>,
    /// Authentication context class references the sign-in must meet, space-separated in order
    /// of preference (OpenID Connect Core §3.1.2.1, RFC 9470 §3).
    pub acr_values: Option<String>,
    /// The longest time in seconds since the person last actively signed in (OpenID Connect Core
    /// §3.1.2.1, RFC 9470 §3); `0` asks for a sign-in now.
    pub max_age: Option<u64>,
    /// A claims request (a JSON object, OpenID Connect Core §5.5), as Microsoft Entra sends it in
    /// a continuous access evaluation challenge (already decoded from base64).
    pub claims: Option<String>,
}

impl std::fmt::Debug for Requirements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<String> = self.scopes.iter().take(16).map(|s| shorten(s)).collect();
        f.debug_struct("Requirements")
            .field("scopes", &scopes)
            .field(
                "more_scopes",
                &self.scopes.len().saturating_sub(scopes.len()),
            )
            .field("acr_values", &self.acr_values.as_deref().map(shorten))
            .field("max_age", &self.max_age)
            .field("claims", &self.claims.as_deref().map(shorten))
            .finish()
    }
}

impl Requirements {
    /// Nothing required yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires a scope (space-separated scopes are split; duplicates are dropped).
    #[must_use]
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        for s in scope.as_ref().split(' ').filter(|s| !s.is_empty()) {
            if !self.scopes.iter().any(|have| have == s) {
                self.scopes.push(s.to_owned());
            }
        }
        self
    }

    /// Requires a sign-in that meets one of these `acr` values (space-separated).
    #[must_use]
    pub fn acr_values(mut self, acr_values: impl Into<String>) -> Self {
        self.acr_values = Some(acr_values.into());
        self
    }

    /// Requires a sign-in no older than `seconds`.
    #[must_use]
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Requires a token issued with this claims request (JSON).
    #[must_use]
    pub fn claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
    }

    /// `true` when only a person signing in again can satisfy it (`acr_values` or `max_age`):
    /// machine grants cannot.
    pub fn needs_sign_in(&self) -> bool {
        self.acr_values.is_some() || self.max_age.is_some()
    }

    /// `true` when nothing is required.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && !self.needs_sign_in() && self.claims.is_none()
    }

    /// What [`Error::StepUpRequired`](crate::Error::StepUpRequired) says: what the resource
    /// needs in words first, what to do next, the protocol names last. Values come from a
    /// resource server, so each is shortened.
    pub(crate) fn step_up_message(&self) -> String {
        let mut needs = Vec::new();
        let mut protocol = Vec::new();
        if !self.scopes.is_empty() {
            let scopes = shorten(&self.scopes.join(" "));
            needs.push(format!("permission for the scopes \"{scopes}\""));
            protocol.push(format!("scope=\"{scopes}\""));
        }
        if let Some(acr) = &self.acr_values {
            let acr = shorten(acr);
            needs.push(format!("a sign-in at the assurance level \"{acr}\""));
            protocol.push(format!("acr_values=\"{acr}\""));
        }
        match self.max_age {
            Some(0) => needs.push("a sign-in made just now".to_owned()),
            Some(age) => needs.push(format!("a sign-in made in the last {age} seconds")),
            None => {}
        }
        if let Some(age) = self.max_age {
            protocol.push(format!("max_age={age}"));
        }
        if self.claims.is_some() {
            needs.push("a token with additional claims".to_owned());
            protocol.push("claims".to_owned());
        }
        if needs.is_empty() {
            needs.push("more than the current token".to_owned());
        }
        format!(
            "the resource needs {}, which this token source cannot obtain by itself. Sign in \
             again with a flow that asks for it, or have the client or account granted it \
             (step-up: {})",
            needs.join(" and "),
            if protocol.is_empty() {
                "nothing more was named".to_owned()
            } else {
                protocol.join(", ")
            }
        )
    }

    /// `self` and then `later`: the scopes of both, and `later`'s `acr_values`, `max_age` and
    /// `claims` where it has them (a need met by an upgraded source, then more on top).
    pub(crate) fn and_then(&self, later: &Requirements) -> Requirements {
        let mut merged = self.clone();
        for scope in &later.scopes {
            merged = merged.scope(scope);
        }
        if later.acr_values.is_some() {
            merged.acr_values.clone_from(&later.acr_values);
        }
        if later.max_age.is_some() {
            merged.max_age = later.max_age;
        }
        if later.claims.is_some() {
            merged.claims.clone_from(&later.claims);
        }
        merged
    }

    /// The same requirement however it was spelled: scopes split, sorted and deduplicated.
    pub(crate) fn normalized(&self) -> Requirements {
        let mut scopes: Vec<String> = self
            .scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        Requirements {
            scopes,
            ..self.clone()
        }
    }

    /// `scopes` widened with the required ones (their order kept, new ones after).
    pub(super) fn widen(&self, scopes: &Scopes) -> Scopes {
        let mut widened = scopes.clone();
        for scope in &self.scopes {
            widened.add(scope.clone());
        }
        widened
    }
}

/// At most 100 characters of a value a resource server chose, ending in `…` when cut.
fn shorten(value: &str) -> String {
    const MAX: usize = 100;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// `params` with every parameter named `name` (ignoring case and surrounding spaces) replaced by
/// one `name=value` at the end, or left alone when `value` is `None`.
pub(super) fn replace_param(params: &mut Vec<(String, String)>, name: &str, value: Option<String>) {
    if let Some(value) = value {
        params.retain(|(n, _)| !n.trim().eq_ignore_ascii_case(name));
        params.push((name.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_requirements_add_scopes_and_replace_the_rest() {
        let first = Requirements::new().scope("a b").claims("{}").max_age(60);
        let merged = first.and_then(&Requirements::new().scope("b c").max_age(0));
        assert_eq!(merged.scopes, ["a", "b", "c"]);
        assert_eq!(merged.max_age, Some(0));
        assert_eq!(merged.claims.as_deref(), Some("{}"));
    }

    #[test]
    fn spelling_does_not_matter_once_normalized() {
        let a = Requirements::new().scope("b a");
        let b = Requirements {
            scopes: vec!["a".into(), "b a".into()],
            ..Requirements::default()
        };
        assert_eq!(a.normalized(), b.normalized());
    }

    #[test]
    fn debug_stays_short_whatever_the_server_sent() {
        let need = (0..1000)
            .fold(Requirements::new(), |n, i| n.scope(format!("scope-{i}")))
            .acr_values("a".repeat(10_000))
            .claims("c".repeat(100_000));
        let shown = format!("{need:?}");
        assert!(shown.len() < 2_000, "{}", shown.len());
        assert!(shown.contains("more_scopes: 984"), "{shown}");
    }

    #[test]
    fn replacing_a_parameter_drops_every_spelling_of_it() {
        let mut params = vec![
            ("Claims".to_owned(), "old".to_owned()),
            ("x".to_owned(), "1".to_owned()),
        ];
        replace_param(&mut params, "claims", Some("new".into()));
        assert_eq!(
            params,
            [("x".into(), "1".into()), ("claims".into(), "new".into())]
        );
        replace_param(&mut params, "claims", None);
        assert_eq!(params.len(), 2);
    }
}
