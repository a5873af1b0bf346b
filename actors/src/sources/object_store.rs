//! Parquet sources on local disk, S3 or Azure Blob Storage, through `object_store`.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use sluice_planner::{CatalogStatus, ParquetCatalog};
use url::Url;

use super::Connector;
use super::metered::MeteredStore;
use crate::error::{Result, SourceError};

/// Client timeouts used unless the source's options set their own: one request may take 30 s,
/// a connection 5 s.
const DEFAULT_CLIENT_OPTIONS: [(&str, &str); 2] = [("timeout", "30s"), ("connect_timeout", "5s")];

/// Retries of a failed cloud request (5xx, timeouts, refused connections) unless the options
/// say otherwise: 3 retries, 100 ms doubling to at most 2 s, and never past 15 s in all.
const DEFAULT_MAX_RETRIES: usize = 3;
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Late materialization stays off for every store unless a source asks for it. Measured on
/// TPC-H SF 1 from S3 (benches/remote.sh): it fetched 9% fewer bytes for Q6 and none fewer for
/// Q1, but split each row group's read into 3-4 requests (Q6: 212 GETs instead of 53), which
/// costs more than it saves wherever a request has latency.
const DEFAULT_PUSHDOWN_FILTERS: bool = false;

/// Options Sluice reads itself; everything else goes to the object_store builder.
const SLUICE_OPTIONS: [&str; 3] = ["max_retries", "retry_timeout", "pushdown_filters"];

/// An object store and the folder URL a source's tables live under.
#[derive(Debug, Clone)]
pub struct ObjectStoreConnector {
    store: Arc<dyn ObjectStore>,
    base: Url,
    engine_base: Url,
    pushdown_filters: bool,
    catalog: Option<Arc<ParquetCatalog>>,
}

impl ObjectStoreConnector {
    /// Builds the store for source `name` at `location` (`file://`, `s3://`, `az://`, or a
    /// local path) with `options`; cloud stores also read the standard `AWS_*` / `AZURE_*`
    /// variables. Every call through [`Self::store`] is counted in the source's metrics.
    ///
    /// Besides object_store's own keys, `options` may hold `max_retries` (a count),
    /// `retry_timeout` (`500ms`, `15s`, `2m`) and `pushdown_filters` (`true` evaluates filters
    /// while decoding; off by default, see [`DEFAULT_PUSHDOWN_FILTERS`]).
    ///
    /// # Errors
    /// [`SourceError::Config`] for a bad URL, an unknown or malformed option.
    pub fn new(name: &str, location: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let OpenedStore { store, base, .. } = open_at(location, options)?;
        let remote = base.scheme() != "file";
        let pushdown_filters = match options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("pushdown_filters"))
        {
            Some((_, v)) => parse_bool("pushdown_filters", v)?,
            None => DEFAULT_PUSHDOWN_FILTERS,
        };
        let engine_base = engine_url(name, &base)?;
        Ok(Self {
            store: Arc::new(MeteredStore::new(store, name, remote)),
            base,
            engine_base,
            pushdown_filters,
            catalog: None,
        })
    }

    /// Attaches the catalog this source's refreshes reload.
    pub fn with_catalog(mut self, catalog: Arc<ParquetCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The store, to register with the planner (metered).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Whether scans should evaluate filters while decoding.
    pub fn pushdown_filters(&self) -> bool {
        self.pushdown_filters
    }

    /// The folder URL the tables live under (ends with `/`), as configured.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The same folder as the query engine addresses it: `source://<name>/<path>`.
    ///
    /// DataFusion picks a table's store by its URL's scheme and host, so two sources on the
    /// same bucket or container name (two S3 endpoints, two Azure accounts, two sets of
    /// credentials) would share whichever store registered last. One host per source keeps
    /// each table on its own source's store, credentials and metrics.
    pub fn engine_base(&self) -> &Url {
        &self.engine_base
    }

    fn prefix(&self) -> Result<Path> {
        Path::from_url_path(self.base.path().trim_start_matches('/'))
            .map_err(|e| SourceError::Config(e.to_string()))
    }
}

/// A store opened at a location, with the signer that presigns its URLs (S3 and Azure).
#[derive(Debug, Clone)]
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Presigns URLs for it (S3 SigV4, Azure SAS); none for local disk.
    pub signer: Option<Arc<dyn Signer>>,
    /// The location, as a folder URL (ends with `/`).
    pub base: Url,
    /// The folder inside the store.
    pub prefix: Path,
}

/// Opens the store at `location` with `options`, as a Parquet source's (object_store's keys,
/// the standard `AWS_*` / `AZURE_*` variables, `max_retries` and `retry_timeout`), unmetered:
/// for a sink Sluice writes itself (the spool). A local folder is made if missing, and is the
/// store's root.
///
/// # Errors
/// [`SourceError::Config`] for a bad URL, an unknown or malformed option.
pub fn open(location: &str, options: &BTreeMap<String, String>) -> Result<OpenedStore> {
    let base = location_url(location)?;
    if base.scheme() == "file" {
        if !options.is_empty() {
            return Err(SourceError::Config(
                "local locations take no store options".to_owned(),
            ));
        }
        // Rooted at the folder (made if missing), where deleting a folder's last object
        // removes the folder and never one above the root.
        let dir = base
            .to_file_path()
            .map_err(|()| SourceError::Config(format!("`{base}` is not a local folder")))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| SourceError::Config(format!("{}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| SourceError::Config(e.to_string()))?
            .with_automatic_cleanup(true);
        return Ok(OpenedStore {
            store: Arc::new(store),
            signer: None,
            base,
            prefix: Path::default(),
        });
    }
    open_at(location, options)
}

/// The store at `location`, rooted at the file system's root for a local folder (a source's
/// tables are addressed by their whole path).
fn open_at(location: &str, options: &BTreeMap<String, String>) -> Result<OpenedStore> {
    let base = location_url(location)?;
    let (own, store_options): (BTreeMap<_, _>, BTreeMap<_, _>) = options
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .partition(|(k, _)| SLUICE_OPTIONS.contains(&k.as_str()));
    let (store, signer) = open_store(&base, &own, &store_options)?;
    let prefix = Path::from_url_path(base.path().trim_start_matches('/'))
        .map_err(|e| SourceError::Config(e.to_string()))?;
    Ok(OpenedStore {
        store,
        signer,
        base,
        prefix,
    })
}

type Opened = (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>);

fn open_store(
    base: &Url,
    own: &BTreeMap<String, String>,
    store_options: &BTreeMap<String, String>,
) -> Result<Opened> {
    let retry = retry_config(own)?;
    Ok(match base.scheme() {
        "file" => {
            if !store_options.is_empty() || own.contains_key("max_retries") {
                return Err(SourceError::Config(
                    "local locations take no store options".to_owned(),
                ));
            }
            (Arc::new(LocalFileSystem::new()), None)
        }
        "s3" | "s3a" => {
            let b = configure(
                AmazonS3Builder::from_env()
                    .with_url(base.as_str())
                    .with_retry(retry),
                store_options,
                "S3",
                |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
            )?;
            let s3 = Arc::new(
                b.build()
                    .map_err(|e| SourceError::Config(redact(&e.to_string())))?,
            );
            (
                Arc::clone(&s3) as Arc<dyn ObjectStore>,
                Some(s3 as Arc<dyn Signer>),
            )
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let b = configure(
                MicrosoftAzureBuilder::from_env()
                    .with_url(base.as_str())
                    .with_retry(retry),
                store_options,
                "Azure",
                |b, k: AzureConfigKey, v| b.with_config(k, v),
            )?;
            let azure = Arc::new(
                b.build()
                    .map_err(|e| SourceError::Config(redact(&e.to_string())))?,
            );
            (
                Arc::clone(&azure) as Arc<dyn ObjectStore>,
                Some(azure as Arc<dyn Signer>),
            )
        }
        other => {
            return Err(SourceError::Config(format!(
                "unsupported location scheme `{other}`"
            )));
        }
    })
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(SourceError::Config(format!(
            "option `{key}` must be true or false, not `{v}`"
        ))),
    }
}

/// `500ms`, `15s`, `2m`, or plain seconds.
fn parse_duration(key: &str, v: &str) -> Result<Duration> {
    let bad = || SourceError::Config(format!("option `{key}`: `{v}` is not a duration like 15s"));
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(bad()),
    }
}

fn retry_config(own: &BTreeMap<String, String>) -> Result<RetryConfig> {
    let max_retries = match own.get("max_retries") {
        Some(v) => v.parse().map_err(|_| {
            SourceError::Config(format!("option `max_retries` must be a count, not `{v}`"))
        })?,
        None => DEFAULT_MAX_RETRIES,
    };
    let retry_timeout = match own.get("retry_timeout") {
        Some(v) => parse_duration("retry_timeout", v)?,
        None => DEFAULT_RETRY_TIMEOUT,
    };
    Ok(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries,
        retry_timeout,
    })
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

fn engine_url(name: &str, base: &Url) -> Result<Url> {
    Url::parse(&format!("source://{name}{}", base.path()))
        .map_err(|e| SourceError::Config(format!("source name `{name}` cannot name a store: {e}")))
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

pub use sluice_planner::redact::redact;

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

    fn refresh(&self) -> BoxFuture<'_, Result<Option<usize>>> {
        async move {
            let Some(catalog) = &self.catalog else {
                return Ok(None);
            };
            let summary = catalog
                .refresh(redact)
                .await
                .map_err(|e| SourceError::Catalog(redact(&e.to_string())))?;
            Ok(Some(summary.tables))
        }
        .boxed()
    }

    fn catalog_status(&self) -> Option<CatalogStatus> {
        self.catalog.as_ref().map(|c| c.status())
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

/// Builds a Parquet source: its store, and its catalog registered with `planner` (nothing
/// read yet).
///
/// # Errors
/// [`SourceError::Config`] for a location, option or table path that cannot be used.
pub fn build(
    p: &sluice_schemas::ParquetSourceConfig,
    planner: &sluice_planner::Planner,
) -> Result<super::BuiltSource> {
    let connector = ObjectStoreConnector::new(&p.name, &p.location, &p.options)?;
    let mut tables = Vec::with_capacity(p.tables.len());
    for t in &p.tables {
        let url = sluice_planner::catalog::join(connector.engine_base(), &t.path)
            .map_err(|e| SourceError::Config(e.to_string()))?;
        tables.push(sluice_planner::TableLocation {
            name: t.name.clone(),
            url,
        });
    }
    let catalog = planner.register_parquet_source(
        sluice_planner::ParquetSourceSpec {
            catalog: p.name.clone(),
            schema: p.schema.clone(),
            base: connector.engine_base().clone(),
            tables,
            pushdown_filters: connector.pushdown_filters(),
        },
        connector.store(),
    );
    Ok(super::BuiltSource::new(
        p.name.clone(),
        Arc::new(connector.with_catalog(catalog)),
        (p.health_check_interval_ms, p.refresh_interval_ms),
    )
    .with_routing(p.fallback.clone(), None))
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
        let err = ObjectStoreConnector::new("t", "s3://bucket/p/", &opts).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let c =
            ObjectStoreConnector::new("t", "s3://user:pw@bucket/p/?x=1", &BTreeMap::new()).unwrap();
        assert_eq!(c.display_location(), "s3://bucket/p/");
    }

    #[test]
    fn each_source_gets_its_own_engine_url() {
        let a = ObjectStoreConnector::new("s3_a", "s3://bucket/p/", &BTreeMap::new()).unwrap();
        let b = ObjectStoreConnector::new("s3_b", "s3://bucket/p/", &BTreeMap::new()).unwrap();
        assert_eq!(a.engine_base().as_str(), "source://s3_a/p/");
        assert_ne!(a.engine_base(), b.engine_base());
        let local = ObjectStoreConnector::new("local", "/tmp/x", &BTreeMap::new()).unwrap();
        assert_eq!(local.engine_base().as_str(), "source://local/tmp/x/");
        assert_eq!(
            local.engine_base().join("t.parquet").unwrap().as_str(),
            "source://local/tmp/x/t.parquet"
        );
    }

    #[test]
    fn sluice_options_are_parsed_not_passed_on() {
        let opts: BTreeMap<String, String> = [
            ("max_retries", "1"),
            ("retry_timeout", "500ms"),
            ("pushdown_filters", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = ObjectStoreConnector::new("t", "s3://bucket/p/", &opts).unwrap();
        assert!(c.pushdown_filters());
        assert!(
            !ObjectStoreConnector::new("t", "s3://bucket/p/", &BTreeMap::new())
                .unwrap()
                .pushdown_filters()
        );
        let mut bad = opts.clone();
        bad.insert("retry_timeout".into(), "soon".into());
        let err = ObjectStoreConnector::new("t", "s3://bucket/p/", &bad).unwrap_err();
        assert!(err.to_string().contains("retry_timeout"), "{err}");
        assert_eq!(parse_duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("k", "15").unwrap(), Duration::from_secs(15));
    }

    #[tokio::test]
    async fn local_health_check() {
        let dir = tempfile::tempdir().unwrap();
        let c =
            ObjectStoreConnector::new("t", dir.path().to_str().unwrap(), &BTreeMap::new()).unwrap();
        c.health_check().await.unwrap();
        let gone =
            ObjectStoreConnector::new("t", "/definitely/not/here", &BTreeMap::new()).unwrap();
        let err = gone.health_check().await.unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }
}
