//! Connectors: what each kind of source needs to be reached and checked.
//!
//! A `Connector` is owned by its [`crate::SourceActor`]; the actor calls
//! [`Connector::health_check`] on a timer. Scan sources (Parquet on object stores) also hand
//! their store to the planner, which reads through it directly: data never goes through an
//! actor.

pub mod metered;
pub mod object_store;
pub mod postgres;

use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;

use sluice_planner::redact::redact;
use sluice_planner::{CatalogStatus, SourceCatalog};

use crate::error::{Result, SourceError};

/// One configured source's connection handles.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The config `kind` (`parquet`, `postgres`, `snowflake`).
    fn kind(&self) -> &'static str;

    /// Where the source lives, safe to show: no credentials, no query string.
    fn display_location(&self) -> String;

    /// A cheap probe (a list, a HEAD, `SELECT 1`).
    ///
    /// # Errors
    /// The reason the source cannot serve now, without credentials in the text.
    ///
    /// # Cancellation
    /// Dropping the future abandons the probe; the caller bounds it with a timeout.
    fn health_check(&self) -> BoxFuture<'_, Result<()>>;

    /// The catalog this source's refreshes reload, if it has one.
    fn catalog(&self) -> Option<&Arc<dyn SourceCatalog>> {
        None
    }

    /// Reloads the source's tables (new files, new tables, changed schemas); returns how
    /// many tables it now has, or `None` for a source with no catalog to refresh.
    ///
    /// # Errors
    /// Why the tables could not be loaded (without credentials); the previous tables stay.
    fn refresh(&self) -> BoxFuture<'_, Result<Option<usize>>> {
        async move {
            let Some(catalog) = self.catalog() else {
                return Ok(None);
            };
            let summary = catalog
                .refresh()
                .await
                .map_err(|e| SourceError::Catalog(redact(&e.to_string())))?;
            Ok(Some(summary.tables))
        }
        .boxed()
    }

    /// Load the source is under that makes it Degraded though its probe passes (a saturated
    /// pool), read after each passing check. It may reset what it counts.
    fn pressure(&self) -> Option<String> {
        None
    }

    /// The state of the source's catalog, if it has one.
    fn catalog_status(&self) -> Option<CatalogStatus> {
        self.catalog().map(|c| c.status())
    }
}
