//! Google credentials with no long-lived secret in the service: `external_account` files
//! (workload identity federation: a platform token traded at Google's security token service,
//! optionally for a service account's token), the typed credentials-file loader, and the
//! application default credentials chain (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud file,
//! the metadata server).

mod executable;
mod external_account;
mod federation;
mod impersonation;
mod trusted_endpoint;

pub use external_account::ExternalAccount;
