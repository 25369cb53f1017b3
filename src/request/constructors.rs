//! The constructors and settings [`OAuthLayer`](crate::OAuthLayer) and
//! [`OAuthMiddleware`](crate::OAuthMiddleware) share, written once.
//!
//! Both types carry the grant they were made with as a type parameter: a shorthand constructor
//! (`client_credentials`, `auth_code`, ...) gives `OAuthLayer<ClientCredentials>`,
//! `OAuthLayer<AuthCode>` and so on, whose `scope` (and, where the grant has one, `audience`)
//! reconfigure that grant; `from_source` and `with_flow` give the plain `OAuthLayer` (the
//! parameter defaults to [`TokenSource`](crate::TokenSource)), which has no grant to reconfigure,
//! so `scope` does not compile there rather than being dropped.

/// Writes the constructors and settings for `$ty`, a struct with the fields `attach:
/// request::plan::Attach` and `grant: G`. `$what` names it in the docs ("layer").
macro_rules! shorthand_constructors {
    ($ty:ident, $what:literal) => {
        impl $ty {
            #[doc = concat!("A ", $what, " taking its tokens from `source`, shared with every")]
            /// other user of it. The source's flow is configured already, so there is no `scope` or
            /// `audience` here. Interactive flows are not started mid-request unless
            /// [`interactive`](Self::interactive) says so.
            pub fn from_source(source: $crate::source::TokenSource) -> Self {
                Self {
                    attach: $crate::request::plan::Attach::new(source.clone()),
                    grant: source,
                }
            }

            #[doc = concat!("A ", $what, " with a configured flow, any grant (one of")]
            /// [`flow`](crate::flow)'s or your own): the way to set what a shorthand does not
            /// (a loopback receiver, a device display, a JWT subject, extra parameters...).
            /// Interactive when the flow needs a person.
            ///
            /// ```
            /// use oauth_layer::OAuthClient;
            /// use oauth_layer::flow::DeviceCode;
            ///
            /// # fn build() -> oauth_layer::Result<()> {
            /// let client = OAuthClient::builder("my-tv-app")
            ///     .device_authorization_url("https://idp.example/device")
            ///     .token_url("https://idp.example/token")
            ///     .build()?;
            #[doc = concat!("let ", $what, " = oauth_layer::", stringify!($ty), "::with_flow(")]
            ///     client,
            ///     DeviceCode::new().scope("profile").open_browser(false),
            /// );
            #[doc = concat!("# let _ = ", $what, "; Ok(()) }")]
            /// ```
            pub fn with_flow(
                client: $crate::client::OAuthClient,
                flow: impl $crate::flow::Flow,
            ) -> Self {
                let interactive = flow.is_interactive();
                Self::from_source($crate::source::TokenSource::new(client, flow))
                    .interactive(interactive)
            }
        }

        impl $ty<$crate::flow::ClientCredentials> {
            /// The client credentials grant (httr2's `req_oauth_client_credentials()`).
            pub fn client_credentials(client: $crate::client::OAuthClient) -> Self {
                Self::grant(client, $crate::flow::ClientCredentials::new())
            }

            /// Requests an `audience` (see
            /// [`ClientCredentials::audience`](crate::flow::ClientCredentials::audience)).
            pub fn audience(self, audience: impl Into<String>) -> Self {
                self.reshape(|flow| flow.audience(audience))
            }
        }

        impl $ty<$crate::flow::Password> {
            /// The resource owner password grant (httr2's `req_oauth_password()`). Deprecated by
            /// RFC 9700; for legacy systems only.
            pub fn password(
                client: $crate::client::OAuthClient,
                username: impl Into<String>,
                password: impl Into<String>,
            ) -> Self {
                Self::grant(client, $crate::flow::Password::new(username, password))
            }
        }

        impl $ty<$crate::flow::RefreshToken> {
            /// Starts from a refresh token you already hold (httr2's `req_oauth_refresh()`).
            pub fn refresh(
                client: $crate::client::OAuthClient,
                refresh_token: impl Into<String>,
            ) -> Self {
                Self::grant(client, $crate::flow::RefreshToken::new(refresh_token))
            }
        }

        #[cfg(feature = "auth-code")]
        impl $ty<$crate::flow::AuthCode> {
            /// The authorization code grant with PKCE (httr2's `req_oauth_auth_code()`): the
            /// first request that needs a token opens the browser for the person to sign in;
            /// afterwards the refresh token keeps it silent. Interactive. To choose the
            /// receiver, redirect URI or extra parameters, give a configured
            /// [`AuthCode`](crate::flow::AuthCode) to
            #[doc = concat!("[`with_flow`](crate::", stringify!($ty), "::with_flow).")]
            pub fn auth_code(client: $crate::client::OAuthClient) -> Self {
                Self::grant(client, $crate::flow::AuthCode::new())
            }
        }

        impl $ty<$crate::flow::DeviceCode> {
            /// The device authorization grant (RFC 8628): the first request that needs a token
            /// shows the person a code to enter at a URL on another device, then waits for
            /// their approval. Interactive. To choose the display, the browser or extra
            /// parameters, give a configured [`DeviceCode`](crate::flow::DeviceCode) to
            #[doc = concat!("[`with_flow`](crate::", stringify!($ty), "::with_flow).")]
            pub fn device(client: $crate::client::OAuthClient) -> Self {
                Self::grant(client, $crate::flow::DeviceCode::new())
            }
        }

        #[cfg(feature = "jwt")]
        impl $ty<$crate::flow::JwtBearer> {
            /// The JWT bearer grant (RFC 7523 §2.1): assertions signed by `key`, issued by and
            /// about `issuer`, traded for tokens. For another subject or audience, give a
            /// configured [`JwtBearer`](crate::flow::JwtBearer) to
            #[doc = concat!("[`with_flow`](crate::", stringify!($ty), "::with_flow).")]
            pub fn jwt_bearer(
                client: $crate::client::OAuthClient,
                key: $crate::jwt::SigningKey,
                issuer: impl Into<String>,
            ) -> Self {
                Self::grant(client, $crate::flow::JwtBearer::new(key, issuer))
            }
        }

        impl $ty<$crate::flow::TokenExchange> {
            /// Token exchange (RFC 8693): `subject`, a fixed token or another source's, traded
            /// for a token for this API. For an actor, a resource or a requested token type,
            /// give a configured [`TokenExchange`](crate::flow::TokenExchange) to
            #[doc = concat!("[`with_flow`](crate::", stringify!($ty), "::with_flow).")]
            pub fn token_exchange(
                client: $crate::client::OAuthClient,
                subject: $crate::flow::SubjectToken,
            ) -> Self {
                Self::grant(client, $crate::flow::TokenExchange::new(subject))
            }

            /// Requests a token for this `audience` (see
            /// [`TokenExchange::audience`](crate::flow::TokenExchange::audience); call it
            /// again for several).
            pub fn audience(self, audience: impl Into<String>) -> Self {
                self.reshape(|flow| flow.audience(audience))
            }
        }

        impl<F: $crate::flow::Scoped> $ty<F> {
            fn grant(client: $crate::client::OAuthClient, flow: F) -> Self {
                let interactive = $crate::flow::Flow::is_interactive(&flow);
                let source = $crate::source::TokenSource::new(
                    client,
                    $crate::flow::scoped::sealed::Sealed::unused_copy(&flow),
                );
                Self {
                    attach: $crate::request::plan::Attach::new(source).interactive(interactive),
                    grant: flow,
                }
            }

            /// Requests a scope (space-separated scopes are split; call it again to add more).
            /// Only on a shorthand's grant: with `from_source` or `with_flow`, set the scopes on
            /// the flow.
            pub fn scope(self, scope: impl Into<String>) -> Self {
                let scope = scope.into();
                self.reshape(|flow| $crate::flow::scoped::sealed::Sealed::add_scope(flow, scope))
            }

            /// Changes the grant and rebuilds the source from it, keeping every other setting.
            fn reshape(self, change: impl FnOnce(F) -> F) -> Self {
                let client = self.attach.source.client().clone();
                let grant = change(self.grant);
                let source = $crate::source::TokenSource::new(
                    client,
                    $crate::flow::scoped::sealed::Sealed::unused_copy(&grant),
                );
                Self {
                    attach: self.attach.with_source(source),
                    grant,
                }
            }
        }

        /// Forgets which grant a shorthand chose, for code that keeps or passes a plain
        #[doc = concat!("`", stringify!($ty), "` (the grant can no longer be changed; the source")]
        /// and every setting stay).
        impl<F: $crate::flow::Scoped> From<$ty<F>> for $ty {
            fn from(configured: $ty<F>) -> Self {
                Self {
                    grant: configured.attach.source.clone(),
                    attach: configured.attach,
                }
            }
        }

        impl<G> $ty<G> {
            /// Sends tokens only to these origins (`scheme://host[:port]`, exact match;
            /// SECURITY.md rule 24), and never over plain `http` except to loopback. Without a
            /// list, tokens go to one origin only: that of the first request a token is attached
            /// to. Either way a redirect target on another origin never gets one, whatever
            /// follows the redirects (rule 25). A request to another origin goes out without a
            /// token; if it is answered with a 401, the response carries a
            /// [`TokenWithheld`](crate::TokenWithheld) extension that says why, and the first
            /// one per origin is logged at `warn` level.
            pub fn allow_origins<I, U>(mut self, origins: I) -> $crate::error::Result<Self>
            where
                I: IntoIterator<Item = U>,
                U: AsRef<str>,
            {
                self.attach = self.attach.allow_origins(origins)?;
                Ok(self)
            }

            /// Whether an interactive flow may run in the middle of a request. The default is
            /// whether the flow needs a person: `true` for `auth_code`, `device` and `with_flow`
            /// of an interactive flow, `false` for the other grants and for `from_source`.
            pub fn interactive(mut self, allowed: bool) -> Self {
                self.attach = self.attach.interactive(allowed);
                self
            }

            /// Whether a request rejected with a 401 is sent once more with a renewed token
            /// (default `true`). Retrying needs a copy of every request made before it is sent;
            /// turn it off to save that copy when your requests' 401s are handled elsewhere. The
            /// failed token is dropped either way, so the next request gets a renewed one.
            pub fn retry_after_401(mut self, retry: bool) -> Self {
                self.attach.retry_after_401 = retry;
                self
            }

            /// Declares the client certificate (RFC 8705) this pipeline's HTTP client presents on
            /// every connection: build that client with
            /// [`ClientCertificate::reqwest_client_builder`](crate::tls::ClientCertificate::reqwest_client_builder)
            /// (or present it in your own TLS stack). Tokens bound to a certificate
            /// ([`Token::certificate_thumbprint`](crate::Token::certificate_thumbprint): those
            /// a client with a
            /// [`client_certificate`](crate::OAuthClientBuilder::client_certificate) gets) are
            /// attached only when it is the same certificate; otherwise the request fails with
            /// [`Error::CertificateBinding`](crate::Error::CertificateBinding) and nothing is
            /// sent. Bearer and DPoP-bound tokens are not affected.
            #[cfg(all(feature = "reqwest", feature = "rustls"))]
            pub fn client_certificate(self, certificate: &$crate::tls::ClientCertificate) -> Self {
                self.client_certificate_thumbprint(certificate.thumbprint())
            }

            /// [`client_certificate`](Self::client_certificate) by the certificate's RFC 8705
            /// thumbprint (`x5t#S256`), for a pipeline whose TLS stack presents a certificate
            /// this crate does not hold (a hyper or tonic client with its own rustls
            /// configuration). You vouch that every connection presents it.
            pub fn client_certificate_thumbprint(mut self, thumbprint: impl AsRef<str>) -> Self {
                self.attach = self.attach.presents_certificate(thumbprint.as_ref());
                self
            }

            /// The shared token source.
            pub fn source(&self) -> &$crate::source::TokenSource {
                &self.attach.source
            }
        }
    };
}

pub(crate) use shorthand_constructors;
