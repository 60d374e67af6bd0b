//! Choosing and opening a backend from the environment.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mess_core::{Storage, StorageError};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{innermost, io_cause, one_line};
use crate::{FsStorage, ObjectStorage};

/// Which backend, and its settings, as read from the environment by
/// [`StorageConfig::from_env`]. Optional S3 settings are checked by [`open`], so that the
/// error names the one that is missing.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `STORAGE_TYPE`: `filesystem` (default) or `s3`.
    pub kind: StorageKind,
    /// `STORAGE_PATH`: the data directory of the filesystem backend (default `./data`).
    pub path: PathBuf,
    /// `MESS_FS_SYNC_DELAY_MS`: a benchmark aid, never for production (see
    /// [`crate::SYNC_DELAY_ENV`]); zero by default.
    pub fs_sync_delay: Duration,
    /// `S3_ENDPOINT`, e.g. `http://minio:9000` or `https://<account>.r2.cloudflarestorage.com`;
    /// unset for AWS S3 itself (the region's endpoint, virtual-hosted style).
    pub s3_endpoint: Option<String>,
    /// `S3_BUCKET`.
    pub s3_bucket: Option<String>,
    /// `S3_ACCESS_KEY`. With [`StorageConfig::s3_secret_key`]; when both are unset the
    /// credentials come from the AWS chain (`AWS_ACCESS_KEY_ID`..., web identity, ECS/EKS,
    /// instance metadata).
    pub s3_access_key: Option<String>,
    /// `S3_SECRET_KEY`. Never printed: `Debug` redacts it.
    pub s3_secret_key: Option<String>,
    /// `S3_REGION` (default `us-east-1`).
    pub s3_region: String,
    /// `S3_ALLOW_HTTP`: allow plain HTTP (default: [`allow_http_default`], true when
    /// `S3_ENDPOINT` starts with `http://`).
    pub s3_allow_http: bool,
}

/// The backends [`StorageConfig::kind`] can name: [`StorageKind::Filesystem`]
/// ([`FsStorage`]) and [`StorageKind::S3`] ([`ObjectStorage`]). Defined in mess-core, as
/// what [`Storage::kind`] returns; [`open`] refuses the others.
pub use mess_core::ports::StorageKind;

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("fs_sync_delay", &self.fs_sync_delay)
            .field(
                "s3_endpoint",
                &self.s3_endpoint.as_deref().map(redact_userinfo),
            )
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_access_key", &self.s3_access_key)
            .field(
                "s3_secret_key",
                &self.s3_secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("s3_region", &self.s3_region)
            .field("s3_allow_http", &self.s3_allow_http)
            .finish()
    }
}

impl StorageConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, OpenError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var` (a variable's value, `None` when unset): for
    /// tests, and for callers with their own source of settings. Empty values count as unset.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, OpenError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let kind = match get("STORAGE_TYPE").as_deref().map(str::trim) {
            None | Some("filesystem") => StorageKind::Filesystem,
            Some("s3") => StorageKind::S3,
            Some(other) => {
                return Err(OpenError::Invalid {
                    setting: "STORAGE_TYPE",
                    reason: format!("{:?} is not one of filesystem, s3", one_line(other)),
                });
            }
        };
        let s3_endpoint = get("S3_ENDPOINT").map(|s| s.trim().to_owned());
        let s3_allow_http = match get("S3_ALLOW_HTTP").as_deref().map(str::trim) {
            None => allow_http_default(s3_endpoint.as_deref()),
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(OpenError::Invalid {
                    setting: "S3_ALLOW_HTTP",
                    reason: format!("{:?} is not true or false", one_line(other)),
                });
            }
        };
        Ok(Self {
            kind,
            path: get("STORAGE_PATH").map_or_else(|| PathBuf::from("./data"), PathBuf::from),
            fs_sync_delay: crate::fs::sync_delay_from_env(),
            s3_endpoint,
            s3_bucket: get("S3_BUCKET"),
            s3_access_key: get("S3_ACCESS_KEY"),
            s3_secret_key: get("S3_SECRET_KEY"),
            s3_region: get("S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            s3_allow_http,
        })
    }
}

/// `S3_ALLOW_HTTP`'s default: plain HTTP is allowed exactly when `S3_ENDPOINT` is an
/// `http://` URL (local MinIO, moto); never for AWS (no endpoint) or `https://`.
pub fn allow_http_default(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|e| e.trim().starts_with("http://"))
}

/// Why [`open`] failed. Its `Display` is one line that names the setting to fix; it never
/// holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// A required setting is unset.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A setting has a value that cannot work.
    #[error("{setting} is invalid: {reason}")]
    Invalid {
        /// The variable.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The data directory cannot be created, read or written.
    #[error("STORAGE_PATH {path} is not usable: {reason}")]
    Path {
        /// The directory as configured.
        path: String,
        /// Why.
        reason: String,
    },
    /// Nothing answered at the endpoint (refused, timed out, DNS, TLS).
    #[error("cannot reach S3_ENDPOINT {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint, without any user info.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The endpoint answered that the bucket does not exist.
    #[error("bucket {0:?} (S3_BUCKET) does not exist")]
    NoSuchBucket(String),
    /// The endpoint refused the credentials.
    #[error("S3_ACCESS_KEY/S3_SECRET_KEY were refused by the bucket {bucket:?} (S3_BUCKET)")]
    Refused {
        /// The bucket.
        bucket: String,
    },
    /// The backend answered, but not as expected.
    #[error("storage check failed ({setting}): {reason}")]
    Check {
        /// The setting most likely involved.
        setting: &'static str,
        /// What the backend said.
        reason: String,
    },
}

/// The S3 client's connect timeout: an endpoint that does not answer fails fast.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The S3 client's timeout for a whole request. Writes wait for it while the endpoint
/// accepts connections but never answers (a partition): a write then answers 503 within
/// about this long, or twice it when queued behind a failing batch (see
/// docs/reliability.md). Event batches and member records are small; 10 s is ample.
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after its first attempt a request may still be retried.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the configured backend and checks that it answers.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>, OpenError> {
    match config.kind {
        StorageKind::Filesystem => open_fs(config).await,
        StorageKind::S3 => open_s3(config).await,
        other @ (StorageKind::Memory | StorageKind::R2) => Err(OpenError::Invalid {
            setting: "STORAGE_TYPE",
            reason: format!("{other} is not one of filesystem, s3"),
        }),
    }
}

async fn open_fs(config: &StorageConfig) -> Result<Arc<dyn Storage>, OpenError> {
    let path_error = |reason: String| OpenError::Path {
        path: one_line(&config.path.display().to_string()),
        reason: one_line(&reason),
    };
    let why = |e: StorageError| match e {
        StorageError::Unavailable(m) | StorageError::Corrupt(m) => m,
        other => other.to_string(),
    };
    let storage = FsStorage::with_sync_delay(&config.path, config.fs_sync_delay)
        .map_err(|e| path_error(why(e)))?;
    storage.check().await.map_err(|e| path_error(why(e)))?;
    Ok(Arc::new(storage))
}

/// Where the S3 client's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credentials {
    /// `S3_ACCESS_KEY` and `S3_SECRET_KEY`, and nothing from the environment.
    Static,
    /// Neither is set: the AWS chain ([`AWS_CHAIN`]).
    AwsChain,
}

/// The `AWS_*` settings taken from the environment when `S3_ACCESS_KEY`/`S3_SECRET_KEY`
/// are unset: the credential chain object_store implements (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; web identity, as EKS IRSA sets it; the
/// ECS task role; EKS Pod Identity; else EC2 instance metadata). Never the endpoint,
/// region or TLS settings: those are `S3_*` only.
const AWS_CHAIN: [AmazonS3ConfigKey; 12] = [
    AmazonS3ConfigKey::AccessKeyId,
    AmazonS3ConfigKey::SecretAccessKey,
    AmazonS3ConfigKey::Token,
    AmazonS3ConfigKey::WebIdentityTokenFile,
    AmazonS3ConfigKey::RoleArn,
    AmazonS3ConfigKey::RoleSessionName,
    AmazonS3ConfigKey::StsEndpoint,
    AmazonS3ConfigKey::ContainerCredentialsRelativeUri,
    AmazonS3ConfigKey::ContainerCredentialsFullUri,
    AmazonS3ConfigKey::ContainerAuthorizationTokenFile,
    AmazonS3ConfigKey::MetadataEndpoint,
    AmazonS3ConfigKey::ImdsV1Fallback,
];

/// The S3 client's settings, before its timeouts: `S3_*` resolved, and the AWS credential
/// chain taken from `aws_env` (`AmazonS3Builder::from_env()` in [`open`]) when there are
/// no static keys. Without `S3_ENDPOINT` it is AWS S3 itself: the region's endpoint,
/// virtual-hosted style (`https://{bucket}.s3.{region}.amazonaws.com`); with one, path
/// style (MinIO, R2, Ceph, moto).
fn s3_builder(
    config: &StorageConfig,
    aws_env: &AmazonS3Builder,
) -> Result<AmazonS3Builder, OpenError> {
    let bucket = config
        .s3_bucket
        .as_deref()
        .ok_or(OpenError::Missing("S3_BUCKET"))?;
    let credentials = match (&config.s3_access_key, &config.s3_secret_key) {
        (Some(_), Some(_)) => Credentials::Static,
        (None, None) => Credentials::AwsChain,
        (Some(_), None) => return Err(OpenError::Missing("S3_SECRET_KEY")),
        (None, Some(_)) => return Err(OpenError::Missing("S3_ACCESS_KEY")),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&config.s3_region)
        .with_allow_http(config.s3_allow_http);
    builder = match &config.s3_endpoint {
        Some(endpoint) => {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(OpenError::Invalid {
                    setting: "S3_ENDPOINT",
                    reason: format!(
                        "{} is not an http:// or https:// URL",
                        redact_userinfo(endpoint)
                    ),
                });
            }
            builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
        }
        None => builder.with_virtual_hosted_style_request(true),
    };
    match credentials {
        Credentials::Static => {
            if let (Some(key), Some(secret)) = (&config.s3_access_key, &config.s3_secret_key) {
                builder = builder
                    .with_access_key_id(key)
                    .with_secret_access_key(secret);
            }
        }
        Credentials::AwsChain => {
            for key in AWS_CHAIN {
                if let Some(value) = aws_env.get_config_value(&key) {
                    builder = builder.with_config(key, value);
                }
            }
        }
    }
    Ok(builder)
}

/// The URL the bucket is reached at, for messages (no user info).
fn shown_endpoint(config: &StorageConfig, bucket: &str) -> String {
    match &config.s3_endpoint {
        Some(endpoint) => redact_userinfo(endpoint),
        None => format!("https://{bucket}.s3.{}.amazonaws.com", config.s3_region),
    }
}

/// This process as one replica of several on the configured bucket (S3 only), reached by
/// the others at `url`, holding leases of `period`.
pub async fn open_replicas(
    config: &StorageConfig,
    url: String,
    period: Duration,
) -> Result<Arc<crate::Replicas>, OpenError> {
    if config.kind != StorageKind::S3 {
        return Err(OpenError::Invalid {
            setting: "ADVERTISE_URL",
            reason: "replicas share an S3 bucket: set STORAGE_TYPE=s3, or unset ADVERTISE_URL to run one process on the filesystem".into(),
        });
    }
    let store = s3_store(config).await?;
    Ok(Arc::new(crate::Replicas::new(store, url, period)))
}

/// An operator command's hold on `exchange` of the configured bucket (S3 only): see
/// [`crate::Hold::take`].
pub async fn hold_exchange(
    config: &StorageConfig,
    exchange: &mess_core::ExchangeId,
    period: Duration,
    wait: Duration,
) -> Result<(crate::Hold, mess_core::Taken), crate::HoldError> {
    let store = s3_store(config).await?;
    crate::Hold::take(store, exchange, period, wait).await
}

async fn open_s3(config: &StorageConfig) -> Result<Arc<dyn Storage>, OpenError> {
    let store = s3_store(config).await?;
    Ok(Arc::new(ObjectStorage::new(store, StorageKind::S3)))
}

/// The configured bucket as an object store, checked with one LIST (also for the
/// operator's commands, which read and write objects as they are: [`crate::RawStore`]).
pub(crate) async fn s3_store(config: &StorageConfig) -> Result<Arc<dyn ObjectStore>, OpenError> {
    // Only the credential chain is taken from the ambient `AWS_*` variables, and only
    // without S3_ACCESS_KEY/S3_SECRET_KEY (see `s3_builder`).
    let builder = s3_builder(config, &AmazonS3Builder::from_env())?;
    let bucket = config.s3_bucket.as_deref().unwrap_or_default();
    let shown_endpoint = shown_endpoint(config, bucket);
    let client = ClientOptions::new()
        .with_allow_http(config.s3_allow_http)
        .with_connect_timeout(S3_CONNECT_TIMEOUT)
        .with_timeout(S3_REQUEST_TIMEOUT);
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: S3_RETRY_TIMEOUT,
    };
    let store = builder
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| OpenError::Invalid {
            setting: if config.s3_endpoint.is_some() {
                "S3_ENDPOINT"
            } else {
                "S3_REGION"
            },
            reason: one_line(&innermost(&e).to_string()),
        })?;
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    // The same LIST request as `check()`, classified here where the settings are known.
    if let Err(e) = store
        .list_with_delimiter(Some(&Path::from(crate::layout::EXECUTORS)))
        .await
    {
        return Err(classify(e, &shown_endpoint, bucket));
    }
    Ok(store)
}

/// Turns the first request's failure into the setting to fix.
fn classify(e: object_store::Error, endpoint: &str, bucket: &str) -> OpenError {
    use object_store::Error as E;
    match &e {
        E::NotFound { .. } => return OpenError::NoSuchBucket(bucket.to_owned()),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            return OpenError::Refused {
                bucket: bucket.to_owned(),
            };
        }
        _ => {}
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            let reason = match http.kind() {
                HttpErrorKind::Timeout => Some("timed out".to_owned()),
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    Some(io_cause(http).unwrap_or_else(|| one_line(&innermost(http).to_string())))
                }
                _ => None,
            };
            if let Some(reason) = reason {
                return OpenError::Unreachable {
                    endpoint: endpoint.to_owned(),
                    reason,
                };
            }
        }
        cur = err.source();
    }
    // A LIST answered with an error status comes back as a generic error whose text holds
    // the S3 error document: its `<Code>` says what is wrong.
    let text = innermost(&e).to_string();
    match xml_tag(&text, "Code") {
        Some("NoSuchBucket") => OpenError::NoSuchBucket(bucket.to_owned()),
        Some(
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken",
        ) => OpenError::Refused {
            bucket: bucket.to_owned(),
        },
        Some(code) => OpenError::Check {
            setting: "S3_ENDPOINT",
            reason: format!("S3 error {code}"),
        },
        None => OpenError::Check {
            setting: "S3_ENDPOINT",
            reason: one_line(&text),
        },
    }
}

/// The text of the first `<tag>…</tag>` in `s`.
fn xml_tag<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let start = s.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = s[start..].find(&format!("</{tag}>"))?;
    Some(&s[start..start + len])
}

/// `scheme://user:pass@host/…` without `user:pass@`.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let shown = match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", "<redacted>@", &rest[at + 1..]),
        None => rest.to_owned(),
    };
    let shown = if scheme.is_empty() {
        shown
    } else {
        format!("{scheme}://{shown}")
    };
    one_line(&shown)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<StorageConfig, OpenError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StorageConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_filesystem() {
        let c = config(&[]).unwrap();
        assert_eq!(c.kind, StorageKind::Filesystem);
        assert_eq!(c.path, PathBuf::from("./data"));
        assert_eq!(c.s3_region, "us-east-1");
    }

    #[test]
    fn an_unknown_storage_type_names_the_variable() {
        let e = config(&[("STORAGE_TYPE", "ftp")]).unwrap_err().to_string();
        assert!(e.starts_with("STORAGE_TYPE is invalid"), "{e}");
    }

    #[test]
    fn plain_http_is_allowed_only_for_http_endpoints_unless_told() {
        let c = config(&[("STORAGE_TYPE", "s3"), ("S3_ENDPOINT", "http://minio:9000")]).unwrap();
        assert!(c.s3_allow_http);
        let c = config(&[("S3_ENDPOINT", "https://s3.example")]).unwrap();
        assert!(!c.s3_allow_http);
        let c = config(&[("S3_ENDPOINT", "http://x"), ("S3_ALLOW_HTTP", "false")]).unwrap();
        assert!(!c.s3_allow_http);
    }

    fn value(b: &AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
        b.get_config_value(&key)
    }

    #[test]
    fn without_an_endpoint_it_is_aws_itself_in_the_region_virtual_hosted() {
        let c = config(&[
            ("STORAGE_TYPE", "s3"),
            ("S3_BUCKET", "my-mess"),
            ("S3_REGION", "eu-west-1"),
            ("S3_ACCESS_KEY", "AKIA1"),
            ("S3_SECRET_KEY", "s3cret"),
        ])
        .unwrap();
        assert!(!c.s3_allow_http);
        let b = s3_builder(&c, &AmazonS3Builder::new()).unwrap();
        assert_eq!(value(&b, AmazonS3ConfigKey::Endpoint), None);
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Bucket).as_deref(),
            Some("my-mess")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIA1")
        );
        assert_eq!(
            shown_endpoint(&c, "my-mess"),
            "https://my-mess.s3.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn without_keys_the_credentials_come_from_the_aws_chain_and_nothing_else() {
        let c = config(&[("STORAGE_TYPE", "s3"), ("S3_BUCKET", "my-mess")]).unwrap();
        let env = AmazonS3Builder::new()
            .with_config(AmazonS3ConfigKey::AccessKeyId, "ASIA2")
            .with_config(AmazonS3ConfigKey::SecretAccessKey, "env-secret")
            .with_config(AmazonS3ConfigKey::Token, "session")
            .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, "/var/run/token")
            .with_config(AmazonS3ConfigKey::RoleArn, "arn:aws:iam::1:role/mess")
            .with_config(AmazonS3ConfigKey::Endpoint, "http://elsewhere:9000")
            .with_config(AmazonS3ConfigKey::Region, "ap-south-1");
        let b = s3_builder(&c, &env).unwrap();
        assert_eq!(
            value(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("ASIA2")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Token).as_deref(),
            Some("session")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::RoleArn).as_deref(),
            Some("arn:aws:iam::1:role/mess")
        );
        // The endpoint and region stay ours: S3_REGION's default, AWS's own endpoint.
        assert_eq!(value(&b, AmazonS3ConfigKey::Endpoint), None);
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("us-east-1")
        );
        // Nothing in the chain at all is still a valid client: instance metadata.
        let b = s3_builder(&c, &AmazonS3Builder::new()).unwrap();
        assert_eq!(value(&b, AmazonS3ConfigKey::AccessKeyId), None);
        assert!(b.build().is_ok());
    }

    #[test]
    fn static_keys_ignore_the_aws_chain_and_an_endpoint_is_path_style() {
        let c = config(&[
            ("STORAGE_TYPE", "s3"),
            ("S3_ENDPOINT", "http://minio:9000"),
            ("S3_BUCKET", "mess"),
            ("S3_ACCESS_KEY", "minio"),
            ("S3_SECRET_KEY", "minio-secret"),
        ])
        .unwrap();
        let env = AmazonS3Builder::new().with_config(AmazonS3ConfigKey::Token, "session");
        let b = s3_builder(&c, &env).unwrap();
        assert_eq!(value(&b, AmazonS3ConfigKey::Token), None);
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://minio:9000")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("false")
        );
    }

    #[test]
    fn half_a_key_pair_or_no_bucket_names_the_missing_setting() {
        let only_key = config(&[("S3_BUCKET", "b"), ("S3_ACCESS_KEY", "k")]).unwrap();
        let e = s3_builder(&only_key, &AmazonS3Builder::new()).unwrap_err();
        assert_eq!(e, OpenError::Missing("S3_SECRET_KEY"));
        let only_secret = config(&[("S3_BUCKET", "b"), ("S3_SECRET_KEY", "s")]).unwrap();
        let e = s3_builder(&only_secret, &AmazonS3Builder::new()).unwrap_err();
        assert_eq!(e, OpenError::Missing("S3_ACCESS_KEY"));
        let e = s3_builder(&config(&[]).unwrap(), &AmazonS3Builder::new()).unwrap_err();
        assert_eq!(e, OpenError::Missing("S3_BUCKET"));
        let ftp = config(&[("S3_BUCKET", "b"), ("S3_ENDPOINT", "ftp://x")]).unwrap();
        let e = s3_builder(&ftp, &AmazonS3Builder::new()).unwrap_err();
        assert!(e.to_string().starts_with("S3_ENDPOINT is invalid"), "{e}");
    }

    #[test]
    fn s3_error_codes_are_read_from_the_error_document() {
        let body = "404 Not Found: <?xml?><Error><Code>NoSuchBucket</Code><Message>x</Message>";
        assert_eq!(xml_tag(body, "Code"), Some("NoSuchBucket"));
        assert_eq!(xml_tag("no document", "Code"), None);
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[
            ("S3_ENDPOINT", "http://user:hunter2@minio:9000/"),
            ("S3_SECRET_KEY", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redact_userinfo("http://u:p@h:1/x"),
            "http://<redacted>@h:1/x"
        );
        assert_eq!(redact_userinfo("http://h:1"), "http://h:1");
    }
}
