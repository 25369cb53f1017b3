//! Rich authorization requests (RFC 9396): `authorization_details`, a JSON array of typed
//! objects that says what a token is for more precisely than a scope can ("initiate this
//! payment of 123.50 EUR to this account", "read these accounts").
//!
//! A flow sends them with its `authorization_detail` setter: [`AuthCode`](super::AuthCode) on
//! the authorization request (§3), [`ClientCredentials`](super::ClientCredentials) and
//! [`TokenExchange`](super::TokenExchange) on the token request (§6). They are part of the
//! flow's cache key, so tokens for different details are never shared, and what the server
//! granted is read back with [`Token::authorization_details`](crate::Token::authorization_details)
//! (§7).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::OAuthClient;
use crate::error::{Error, Result};

/// One authorization detail (RFC 9396 §2): a JSON object with a `type` and the members that
/// type defines. The common members of §2.2 have their own setters; any other member is set
/// with [`field`](Self::field).
///
/// ```
/// use oauth_layer::flow::AuthorizationDetail;
/// use serde_json::json;
///
/// let payment = AuthorizationDetail::new("payment_initiation")
///     .action("initiate")
///     .location("https://bank.example/payments")
///     .field("instructedAmount", json!({ "currency": "EUR", "amount": "123.50" }))
///     .field("creditorName", "Merchant A");
/// assert_eq!(payment.detail_type(), Some("payment_initiation"));
/// assert_eq!(payment.get("actions"), Some(&json!(["initiate"])));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
#[serde(transparent)]
pub struct AuthorizationDetail {
    members: Map<String, Value>,
}

impl AuthorizationDetail {
    /// A detail of type `detail_type` (the kind of authorization the server defines, such as
    /// `payment_initiation` or `account_information`).
    pub fn new(detail_type: impl Into<String>) -> Self {
        let mut members = Map::new();
        members.insert("type".to_owned(), Value::String(detail_type.into()));
        Self { members }
    }

    /// A detail from JSON a caller already has (a command-line argument, a configuration
    /// file), checked as a flow checks it before sending: an object whose `type` is a
    /// non-empty string.
    ///
    /// ```
    /// use oauth_layer::flow::AuthorizationDetail;
    /// use serde_json::json;
    ///
    /// let detail = AuthorizationDetail::from_json(json!({ "type": "account_information" }))?;
    /// assert_eq!(detail.detail_type(), Some("account_information"));
    /// assert!(AuthorizationDetail::from_json(json!({ "actions": ["read"] })).is_err());
    /// assert!(AuthorizationDetail::from_json(json!("account_information")).is_err());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn from_json(value: Value) -> Result<Self> {
        match value {
            Value::Object(members) => {
                let detail = Self { members };
                detail.check()?;
                Ok(detail)
            }
            _ => Err(Error::config(
                "an authorization detail must be a JSON object (RFC 9396 §2)",
            )),
        }
    }

    /// Adds a `locations` entry: where the resource is (a URI); call it again for several.
    pub fn location(self, location: impl Into<String>) -> Self {
        self.push("locations", location.into())
    }

    /// Adds an `actions` entry: what may be done (`read`, `initiate`, ...).
    pub fn action(self, action: impl Into<String>) -> Self {
        self.push("actions", action.into())
    }

    /// Adds a `datatypes` entry: what kind of data may be accessed.
    pub fn datatype(self, datatype: impl Into<String>) -> Self {
        self.push("datatypes", datatype.into())
    }

    /// Adds a `privileges` entry: the level of privilege asked for (`admin`, ...).
    pub fn privilege(self, privilege: impl Into<String>) -> Self {
        self.push("privileges", privilege.into())
    }

    /// Sets `identifier`: the one resource at the locations this detail is about.
    pub fn identifier(self, identifier: impl Into<String>) -> Self {
        self.field("identifier", identifier.into())
    }

    /// Sets any member, replacing one of the same name (the common members included).
    /// Setting `type` to anything but a non-empty string makes the flow fail with
    /// [`Error::Config`] before anything is sent.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.members.insert(name.into(), value.into());
        self
    }

    /// The `type`, when it is a string.
    pub fn detail_type(&self) -> Option<&str> {
        self.members.get("type").and_then(Value::as_str)
    }

    /// A member, as set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// The whole object.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.members
    }

    fn push(mut self, name: &str, value: String) -> Self {
        match self.members.get_mut(name) {
            Some(Value::Array(items)) => items.push(Value::String(value)),
            _ => {
                self.members
                    .insert(name.to_owned(), Value::Array(vec![Value::String(value)]));
            }
        }
        self
    }

    /// RFC 9396 §2: `type` is required and a string; an empty one names nothing.
    fn check(&self) -> Result<()> {
        match self.members.get("type") {
            Some(Value::String(t)) if !t.trim().is_empty() => Ok(()),
            Some(Value::String(_)) => Err(Error::config(
                "an authorization detail's type is empty (RFC 9396 §2)",
            )),
            Some(_) => Err(Error::config(
                "an authorization detail's type must be a string (RFC 9396 §2)",
            )),
            None => Err(Error::config(
                "an authorization detail has no type (RFC 9396 §2 requires one)",
            )),
        }
    }
}

/// The details a flow sends, in the order they were added.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizationDetails(Vec<AuthorizationDetail>);

impl AuthorizationDetails {
    pub(crate) fn push(&mut self, detail: AuthorizationDetail) {
        self.0.push(detail);
    }

    /// The `authorization_details` parameter (a JSON array), or `None` when there are none.
    pub(crate) fn parameter(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        // Serializing a map of JSON values cannot fail.
        serde_json::to_string(&self.0).ok()
    }

    /// Checks every detail, and, when the server's metadata lists
    /// `authorization_details_types_supported`, that each type is among them: a flow calls it
    /// before it sends anything.
    pub(crate) fn check(&self, client: &OAuthClient) -> Result<()> {
        let supported = client
            .metadata()
            .and_then(|m| m.authorization_details_types_supported.as_deref());
        for detail in &self.0 {
            detail.check()?;
            if let (Some(supported), Some(t)) = (supported, detail.detail_type())
                && !supported.iter().any(|s| s == t)
            {
                return Err(Error::config(format!(
                    "the authorization server does not support authorization details of type \
                     {t:?} (its authorization_details_types_supported: {supported:?})"
                )));
            }
        }
        Ok(())
    }

    /// [`check`](Self::check), then [`parameter`](Self::parameter).
    // Used by the authorization code flow only.
    #[cfg_attr(not(feature = "auth-code"), allow(dead_code))]
    pub(crate) fn checked_parameter(&self, client: &OAuthClient) -> Result<Option<String>> {
        self.check(client)?;
        Ok(self.parameter())
    }

    /// Adds the details to a cache key: tokens for different details are never shared.
    pub(crate) fn key_part(
        &self,
        key: crate::store::CacheKeyBuilder,
    ) -> crate::store::CacheKeyBuilder {
        match self.parameter() {
            Some(json) => key.part("authorization_details", json),
            None => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_as_an_array_of_objects_in_order() {
        let mut details = AuthorizationDetails::default();
        assert_eq!(details.parameter(), None);
        details.push(AuthorizationDetail::new("a").action("read").action("write"));
        details.push(AuthorizationDetail::new("b").identifier("x"));
        let sent: Value = serde_json::from_str(&details.parameter().unwrap()).unwrap();
        assert_eq!(
            sent,
            json!([
                { "type": "a", "actions": ["read", "write"] },
                { "type": "b", "identifier": "x" },
            ])
        );
    }

    #[test]
    fn a_type_must_be_a_non_empty_string() {
        assert!(AuthorizationDetail::new("").check().is_err());
        assert!(AuthorizationDetail::new("  ").check().is_err());
        assert!(
            AuthorizationDetail::new("a")
                .field("type", 3)
                .check()
                .is_err()
        );
        assert!(AuthorizationDetail::new("a").check().is_ok());
        assert!(AuthorizationDetail::from_json(json!([{ "type": "a" }])).is_err());
    }
}
