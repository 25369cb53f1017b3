//! The FAPI interop suite's harness: the certificates it makes at start (rcgen: a private CA,
//! the servers' certificate for 127.0.0.1, a client certificate the CA signed and a
//! self-signed one), and one `tests/interop/fapi_server.mjs` for the whole test binary
//! (oidc-provider in its FAPI 2.0 profile and a protected resource, over HTTPS on loopback).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::interop_support::NodeServer;

/// The subject of the client certificate the CA signed, as `fapi-tls-dpop` registers it
/// (`tls_client_auth_subject_dn`, RFC 4514).
pub(crate) const TLS_CLIENT_DN: &str = "CN=fapi-tls-client,O=oauth-layer interop";
/// Its DNS name, as `fapi-tls-mtls` registers it (`tls_client_auth_san_dns`).
pub(crate) const TLS_CLIENT_SAN_DNS: &str = "client.fapi.test";

/// A certificate and its private key, both PEM.
pub(crate) struct CertAndKey {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// Everything the suite makes at start.
pub(crate) struct Certificates {
    /// The private CA (PEM): the servers' certificate chains to it, and the provider verifies
    /// `tls_client_auth` certificates against it.
    pub(crate) ca: String,
    pub(crate) server: CertAndKey,
    /// Signed by the CA; subject [`TLS_CLIENT_DN`], SAN DNS [`TLS_CLIENT_SAN_DNS`].
    pub(crate) client: CertAndKey,
    /// Signed by the CA, with a subject and name no client registered.
    pub(crate) stranger: CertAndKey,
    /// Self-signed; its certificate is in `fapi-selfsigned-mtls`'s JWKS (`x5c`).
    pub(crate) self_signed: CertAndKey,
}

fn leaf(names: &[&str], cn: &str, eku: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    // Less specific first, as in the certificate: RFC 4514 writes it the other way round.
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "oauth-layer interop");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params
}

impl Certificates {
    /// A fresh CA and certificates (ECDSA P-256), never written anywhere but the directory
    /// the server reads them from.
    pub(crate) fn generate() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "oauth-layer interop CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let signed = |params: CertificateParams| {
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &*ca).unwrap();
            CertAndKey {
                cert: cert.pem(),
                key: key.serialize_pem(),
            }
        };
        let server = signed(leaf(
            &["127.0.0.1", "localhost"],
            "fapi interop server",
            ExtendedKeyUsagePurpose::ServerAuth,
        ));
        let client = signed(leaf(
            &[TLS_CLIENT_SAN_DNS],
            "fapi-tls-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        ));
        let stranger = signed(leaf(
            &["stranger.fapi.test"],
            "stranger",
            ExtendedKeyUsagePurpose::ClientAuth,
        ));
        let self_signed = {
            let key = KeyPair::generate().unwrap();
            let params = leaf(
                &["self-signed.fapi.test"],
                "fapi-self-signed-client",
                ExtendedKeyUsagePurpose::ClientAuth,
            );
            CertAndKey {
                cert: params.self_signed(&key).unwrap().pem(),
                key: key.serialize_pem(),
            }
        };
        Self {
            ca: ca.pem(),
            server,
            client,
            stranger,
            self_signed,
        }
    }

    /// Writes what the server reads into a fresh directory (see fapi_server.mjs).
    fn write(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oauth-layer-fapi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", &self.ca),
            ("server.pem", &self.server.cert),
            ("server-key.pem", &self.server.key),
            ("client.pem", &self.client.cert),
            ("selfsigned.pem", &self.self_signed.cert),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        dir
    }
}

/// The client keys the server registered (PKCS#8 PEM).
pub(crate) struct Keys {
    /// RSA; registered without `alg`: PS256 is accepted, RS256 refused by the server's list.
    pub(crate) rsa: String,
    pub(crate) es256: String,
    pub(crate) eddsa: String,
}

/// The running `fapi_server.mjs`.
pub(crate) struct Fapi {
    node: NodeServer,
    /// `https://127.0.0.1:P1`: the provider, asking for no client certificate.
    pub(crate) issuer: String,
    /// `https://127.0.0.1:P2`: the provider's `mtls_endpoint_aliases`, asking for one.
    pub(crate) mtls: String,
    /// `https://127.0.0.1:P3`: the resource; `/api/read` takes bound tokens only.
    pub(crate) resource: String,
    pub(crate) keys: Keys,
    pub(crate) certs: Certificates,
}

static FAPI: OnceLock<Fapi> = OnceLock::new();

/// The binary's one server, started by the first test that asks (tests share it, so each
/// uses its own client or reads only its own results).
pub(crate) fn fapi() -> &'static Fapi {
    FAPI.get_or_init(|| {
        let certs = Certificates::generate();
        let dir = certs.write();
        let node = NodeServer::start("fapi_server.mjs", &[("FAPI_CERTS", dir.to_str().unwrap())]);
        // The server has read them all before it printed its ready line.
        let _ = std::fs::remove_dir_all(&dir);
        let ready = &node.ready;
        let s = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        Fapi {
            issuer: s(&ready["issuer"]),
            mtls: s(&ready["mtls"]),
            resource: s(&ready["resource"]),
            keys: Keys {
                rsa: s(&ready["keys"]["rsa"]),
                es256: s(&ready["keys"]["es256"]),
                eddsa: s(&ready["keys"]["eddsa"]),
            },
            certs,
            node,
        }
    })
}

impl Fapi {
    /// The private CA, for a reqwest client.
    pub(crate) fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.certs.ca.as_bytes()).unwrap()
    }

    /// A reqwest client that presents no certificate, trusts only the private CA, follows no
    /// redirect, and gives up after 20 s.
    pub(crate) fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([self.root()])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// The resource's protected URL.
    pub(crate) fn api(&self) -> String {
        format!("{}/api/read", self.resource)
    }

    /// The server's stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.node.stderr()
    }
}
