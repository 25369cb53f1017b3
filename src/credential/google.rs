//! Google credentials with no long-lived secret in the service: `external_account` files
//! (workload identity federation: a platform token traded at Google's security token service,
//! optionally for a service account's token), the typed credentials-file loader, and the
//! application default credentials chain (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud file,
//! the metadata server).

mod authorized_user;
mod credentials_file;
mod default;
mod executable;
mod external_account;
mod federation;
mod impersonation;
mod metadata;
mod trusted_endpoint;

pub use external_account::ExternalAccount;

pub use authorized_user::AuthorizedUser;
pub use credentials_file::{CredentialType, GoogleCredentials, MAX_CREDENTIALS_FILE_BYTES};
pub use default::{ApplicationDefault, DefaultCredentials, DefaultSource};
pub use metadata::{DEFAULT_METADATA_HOST, MetadataFlow, MetadataServer};
