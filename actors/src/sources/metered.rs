//! [`MeteredStore`]: an [`ObjectStore`] that counts one source's requests, bytes read, errors
//! and latency into the `sluice_source_*` metrics, then forwards to the real store.
//!
//! It wraps the store the planner reads through, so the figures are what the queries cost the
//! source, not an estimate. It is also read-only: every write, delete, copy and rename is
//! refused here, whatever the credentials underneath would allow (defense in depth: a
//! DataFusion feature that writes, such as `COPY TO`, finds no way through).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use crate::metrics;

/// Counts every call to `inner` under the source's name.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    source: String,
    /// Cloud stores: split `get_ranges` into coalesced `get_opts` calls here, so each HTTP
    /// request is counted (that is also what the cloud stores themselves do). Local files
    /// forward it: the local store reads each range directly, without coalescing.
    coalesce_here: bool,
}

impl MeteredStore {
    /// Wraps `inner`, labelling its metrics with `source`.
    pub fn new(inner: Arc<dyn ObjectStore>, source: impl Into<String>, remote: bool) -> Self {
        Self {
            inner,
            source: source.into(),
            coalesce_here: remote,
        }
    }

    fn record<T>(
        &self,
        op: &'static str,
        start: Instant,
        result: &object_store::Result<T>,
        bytes: impl FnOnce(&T) -> u64,
    ) {
        let source = self.source.clone();
        ::metrics::counter!(metrics::SOURCE_REQUESTS_TOTAL, "source" => source.clone(), "op" => op)
            .increment(1);
        ::metrics::histogram!(metrics::SOURCE_REQUEST_SECONDS, "source" => source.clone(), "op" => op)
            .record(start.elapsed().as_secs_f64());
        match result {
            Ok(v) => {
                let n = bytes(v);
                if n > 0 {
                    ::metrics::counter!(metrics::SOURCE_BYTES_READ_TOTAL, "source" => source)
                        .increment(n);
                }
            }
            Err(_) => {
                ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source, "op" => op)
                    .increment(1);
            }
        }
    }

    /// Counts a listing stream: one request when it starts, one error if any item fails.
    fn metered_list(
        &self,
        stream: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let source = self.source.clone();
        ::metrics::counter!(metrics::SOURCE_REQUESTS_TOTAL, "source" => source.clone(), "op" => "list")
            .increment(1);
        stream
            .inspect(move |item| {
                if item.is_err() {
                    ::metrics::counter!(metrics::SOURCE_ERRORS_TOTAL, "source" => source.clone(), "op" => "list")
                        .increment(1);
                }
            })
            .boxed()
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

/// Why every write is refused.
#[derive(Debug, thiserror::Error)]
#[error("Sluice reads sources only: {0} is refused")]
struct ReadOnly(&'static str);

fn read_only<T>(op: &'static str) -> object_store::Result<T> {
    Err(object_store::Error::NotSupported {
        source: Box::new(ReadOnly(op)),
    })
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        read_only("put")
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        read_only("put")
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let start = Instant::now();
        let r = self.inner.get_opts(location, options).await;
        // The body's length: what this request moves over the network.
        self.record(op, start, &r, |g| {
            if op == "head" {
                0
            } else {
                g.range.end.saturating_sub(g.range.start)
            }
        });
        r
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if self.coalesce_here {
            return object_store::coalesce_ranges(
                ranges,
                |range| async move {
                    let r = self
                        .get_opts(location, GetOptions::new().with_range(Some(range)))
                        .await?;
                    r.bytes().await
                },
                object_store::OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await;
        }
        let start = Instant::now();
        let r = self.inner.get_ranges(location, ranges).await;
        self.record("get", start, &r, |parts| {
            parts.iter().map(|b| b.len() as u64).sum()
        });
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| read_only("delete")).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.metered_list(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.metered_list(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let start = Instant::now();
        let r = self.inner.list_with_delimiter(prefix).await;
        self.record("list", start, &r, |_| 0);
        r
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        read_only("copy")
    }

    async fn rename_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: RenameOptions,
    ) -> object_store::Result<()> {
        read_only("rename")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn ranged_reads_are_split_and_forwarded() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("a/b.bin");
        inner
            .put(&path, PutPayload::from(vec![7u8; 4 << 20]))
            .await
            .unwrap();
        for remote in [true, false] {
            let store = MeteredStore::new(Arc::clone(&inner), "m", remote);
            // Far apart: two requests when coalescing; near: one.
            let parts = store
                .get_ranges(&path, &[0..10, (3 << 20)..((3 << 20) + 5)])
                .await
                .unwrap();
            assert_eq!(
                parts.iter().map(Bytes::len).collect::<Vec<_>>(),
                [10, 5],
                "remote={remote}"
            );
            let listed: Vec<_> = store.list(Some(&Path::from("a"))).collect().await;
            assert_eq!(listed.len(), 1);
        }
    }

    #[tokio::test]
    async fn every_write_is_refused_and_nothing_changes() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("a/b.bin");
        inner
            .put(&path, PutPayload::from(vec![1u8; 8]))
            .await
            .unwrap();
        let store = MeteredStore::new(Arc::clone(&inner), "m", false);
        let other = Path::from("a/c.bin");
        let refused = |r: object_store::Result<()>| {
            assert!(
                matches!(r, Err(object_store::Error::NotSupported { .. })),
                "{r:?}"
            );
        };
        refused(
            store
                .put(&other, PutPayload::from(vec![2u8]))
                .await
                .map(|_| ()),
        );
        refused(store.put_multipart(&other).await.map(|_| ()));
        refused(store.delete(&path).await);
        refused(store.copy(&path, &other).await);
        refused(store.rename(&path, &other).await);
        refused(store.copy_if_not_exists(&path, &other).await);
        let listed: Vec<_> = inner.list(None).collect().await;
        assert_eq!(listed.len(), 1, "nothing was written or removed");
        assert_eq!(
            store.get(&path).await.unwrap().bytes().await.unwrap().len(),
            8
        );
    }
}
