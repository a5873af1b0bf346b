//! [`MeteredStore`]: an [`ObjectStore`] that counts one source's requests, bytes read, errors
//! and latency into the `sluice_source_*` metrics, then forwards to the real store.
//!
//! It wraps the store the planner reads through, so the figures are what the queries cost the
//! source, not an estimate.

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

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let start = Instant::now();
        let r = self.inner.put_opts(location, payload, opts).await;
        self.record("put", start, &r, |_| 0);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let start = Instant::now();
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.record("put", start, &r, |_| 0);
        r
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
        self.inner.delete_stream(locations)
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
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
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
}
