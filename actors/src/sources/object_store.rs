//! Parquet sources on local disk, S3 or Azure Blob Storage, through `object_store`.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use super::Connector;
use crate::error::{Result, SourceError};

/// Client timeouts used unless the source's options set their own.
const DEFAULT_CLIENT_OPTIONS: [(&str, &str); 2] = [("timeout", "30s"), ("connect_timeout", "5s")];

/// An object store and the folder URL a source's tables live under.
#[derive(Debug, Clone)]
pub struct ObjectStoreConnector {
    store: Arc<dyn ObjectStore>,
    base: Url,
}

impl ObjectStoreConnector {
    /// Builds the store for `location` (`file://`, `s3://`, `az://`, or a local path) with
    /// `options`; cloud stores also read the standard `AWS_*` / `AZURE_*` variables.
    ///
    /// # Errors
    /// [`SourceError::Config`] for a bad URL, an unknown option or a missing local folder.
    pub fn new(location: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let base = location_url(location)?;
        let store: Arc<dyn ObjectStore> = match base.scheme() {
            "file" => {
                if !options.is_empty() {
                    return Err(SourceError::Config(
                        "local locations take no options".to_owned(),
                    ));
                }
                Arc::new(LocalFileSystem::new())
            }
            "s3" | "s3a" => {
                let b = configure(
                    AmazonS3Builder::from_env().with_url(base.as_str()),
                    options,
                    "S3",
                    |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
                )?;
                Arc::new(
                    b.build()
                        .map_err(|e| SourceError::Config(redact(&e.to_string())))?,
                )
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let b = configure(
                    MicrosoftAzureBuilder::from_env().with_url(base.as_str()),
                    options,
                    "Azure",
                    |b, k: AzureConfigKey, v| b.with_config(k, v),
                )?;
                Arc::new(
                    b.build()
                        .map_err(|e| SourceError::Config(redact(&e.to_string())))?,
                )
            }
            other => {
                return Err(SourceError::Config(format!(
                    "unsupported location scheme `{other}`"
                )));
            }
        };
        Ok(Self { store, base })
    }

    /// The store, to register with the planner.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The folder URL the tables live under (ends with `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn prefix(&self) -> Result<Path> {
        Path::from_url_path(self.base.path().trim_start_matches('/'))
            .map_err(|e| SourceError::Config(e.to_string()))
    }
}

/// Applies the default client options, then the source's, refusing keys `K` does not know.
fn configure<B, K: std::str::FromStr>(
    builder: B,
    options: &BTreeMap<String, String>,
    store: &str,
    apply: impl Fn(B, K, String) -> B,
) -> Result<B> {
    with_defaults(options)
        .into_iter()
        .try_fold(builder, |b, (k, v)| {
            let key = k
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| SourceError::Config(format!("unknown {store} option `{k}`")))?;
            Ok(apply(b, key, v))
        })
}

fn with_defaults(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = DEFAULT_CLIENT_OPTIONS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// A location as a folder URL: plain paths become `file://` URLs of their absolute form.
pub fn location_url(location: &str) -> Result<Url> {
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| SourceError::Config(format!("bad location: {e}")))?
    } else {
        let path = std::path::absolute(FsPath::new(location)).map_err(SourceError::Io)?;
        Url::from_directory_path(&path)
            .map_err(|()| SourceError::Config(format!("bad local path {}", path.display())))?
    };
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// Strips anything that looks like a credential from an error text.
fn redact(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if ["secret", "key=", "token", "password", "sig="]
                .iter()
                .any(|s| lower.contains(s))
            {
                "[redacted]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Connector for ObjectStoreConnector {
    fn kind(&self) -> &'static str {
        "parquet"
    }

    fn display_location(&self) -> String {
        let mut u = self.base.clone();
        // Neither can fail on a URL that has a host or is a file URL; ignore if they do.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }

    fn health_check(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            if self.base.scheme() == "file" {
                let path = self
                    .base
                    .to_file_path()
                    .map_err(|()| SourceError::Config("bad file URL".to_owned()))?;
                let meta = tokio::fs::metadata(&path).await.map_err(|e| {
                    SourceError::Io(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", path.display()),
                    ))
                })?;
                if !meta.is_dir() {
                    return Err(SourceError::Io(std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        format!("{} is not a folder", path.display()),
                    )));
                }
                return Ok(());
            }
            let prefix = self.prefix()?;
            self.store
                .list_with_delimiter(Some(&prefix))
                .await
                .map(|_| ())
                .map_err(SourceError::ObjectStore)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_folder_urls() {
        assert_eq!(location_url("s3://b/p").unwrap().as_str(), "s3://b/p/");
        assert_eq!(location_url("/tmp/x").unwrap().as_str(), "file:///tmp/x/");
        assert_eq!(
            location_url("file:///tmp/x/").unwrap().as_str(),
            "file:///tmp/x/"
        );
    }

    #[test]
    fn unknown_options_are_refused_and_credentials_hidden() {
        let mut opts = BTreeMap::new();
        opts.insert("colour".to_owned(), "red".to_owned());
        let err = ObjectStoreConnector::new("s3://bucket/p/", &opts).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let c = ObjectStoreConnector::new("s3://user:pw@bucket/p/?x=1", &BTreeMap::new()).unwrap();
        assert_eq!(c.display_location(), "s3://bucket/p/");
    }

    #[tokio::test]
    async fn local_health_check() {
        let dir = tempfile::tempdir().unwrap();
        let c = ObjectStoreConnector::new(dir.path().to_str().unwrap(), &BTreeMap::new()).unwrap();
        c.health_check().await.unwrap();
        let gone = ObjectStoreConnector::new("/definitely/not/here", &BTreeMap::new()).unwrap();
        let err = gone.health_check().await.unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }
}
