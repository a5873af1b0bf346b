//! Spooled results through the query service: a statement run into the spool (`[spool]`),
//! and its manifest, acknowledgement and segments, for the key that ran it. Every door that
//! spools (HTTP's `"spool": true` and `Accept` profile, MCP's full-result link) comes here.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use sluice_schemas::api::{Operation, QueryRequest, SpoolManifest};

use super::answer::{RowCap, Started};
use super::encode::{Batches, Encode, MakeEncoder};
use super::{Call, QueryService};
use crate::error::{ApiError, Code, Result};
use crate::governance::Principal;
use crate::spool::Spool;

/// A result streamed (it stayed under the threshold) or spooled.
pub enum StreamedOrSpooled<P> {
    /// Streamed as the client's format.
    Streamed(Started<P>),
    /// Spooled: the manifest.
    Spooled(Box<SpoolManifest>),
}

impl QueryService {
    /// The spool, when `[spool]` is configured.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    fn spool_or_refuse(&self) -> Result<&Arc<Spool>> {
        self.spool.as_ref().ok_or_else(|| {
            ApiError::new(
                Code::Unsupported,
                "this server spools no results (no [spool] location is configured)",
            )
        })
    }

    /// Runs `request` for `call` into the spool and answers its manifest once the first rows
    /// are in; the rest is written after the answer, listed as each segment completes.
    /// `base_url` is the server as the client reaches it (for proxy URLs).
    ///
    /// # Errors
    /// `unsupported` without a spool; `too_many_queries` when the key holds as many spooled
    /// results as it may; every refusal or failure before the first rows, as
    /// [`Self::run`]'s.
    pub async fn run_spooled(
        &self,
        call: &Call,
        request: &QueryRequest,
        base_url: &str,
    ) -> Result<SpoolManifest> {
        call.record(async {
            let spool = self.spool_or_refuse()?;
            self.admit(call, Operation::Query)?;
            let spooled = spool.reserve(&call.query_id, call.principal.key_id())?;
            let max_rows = self.limits.max_rows;
            let cap = RowCap::Refuse(request.max_rows.unwrap_or(max_rows).min(max_rows));
            let started = match self.run(call, request, cap, Batches::maker()).await {
                Ok(s) => s,
                Err(e) => {
                    spool.release(&spooled);
                    return Err(e);
                }
            };
            spool
                .write(&spooled, started.columns, started.stream, &self.runtime)
                .await?;
            spool.manifest(&spooled, base_url).await
        })
        .await
    }

    /// Runs `request` for a client that prefers a streamed format but takes the spool for a
    /// big result: batches are held until the result ends (then it streams, encoded by
    /// `encoder`) or passes `[spool] threshold_bytes` of Arrow memory (then the held batches
    /// and the rest are spooled and the manifest answers).
    ///
    /// # Errors
    /// As [`Self::run_spooled`].
    pub async fn run_streamed_or_spooled<E: Encode>(
        &self,
        call: &Call,
        request: &QueryRequest,
        base_url: &str,
        encoder: MakeEncoder<E>,
    ) -> Result<StreamedOrSpooled<E::Piece>> {
        call.record(async {
            let spool = self.spool_or_refuse()?;
            self.admit(call, Operation::Query)?;
            let spooled = spool.reserve(&call.query_id, call.principal.key_id())?;
            let max_rows = self.limits.max_rows;
            let cap = RowCap::Refuse(request.max_rows.unwrap_or(max_rows).min(max_rows));
            let schema = Arc::new(std::sync::OnceLock::new());
            let seen = Arc::clone(&schema);
            let batches: MakeEncoder<Batches> = Arc::new(move |s| {
                let _ = seen.set(Arc::clone(s));
                Ok(Batches)
            });
            let held = async {
                let started = self.run(call, request, cap, batches).await?;
                let mut stream = started.stream;
                let (mut held, mut size, mut ended) = (Vec::new(), 0_u64, false);
                while size <= spool.threshold_bytes() {
                    match stream.next().await {
                        Some(b) => {
                            let b = b?;
                            size += <Batches as Encode>::size(&b);
                            held.push(b);
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                // An ended stream is not polled again.
                let rest = if ended {
                    futures::stream::empty().boxed()
                } else {
                    stream
                };
                let stream = futures::stream::iter(held.into_iter().map(Ok))
                    .chain(rest)
                    .boxed();
                Ok::<_, ApiError>((Started { stream, ..started }, ended))
            }
            .await;
            let (started, ended) = match held {
                Ok(h) => h,
                Err(e) => {
                    spool.release(&spooled);
                    return Err(e);
                }
            };
            if ended {
                spool.release(&spooled);
                let schema = schema.get().cloned().ok_or_else(|| {
                    ApiError::internal(Some(&call.query_id), &"a result without a schema")
                })?;
                return Ok(StreamedOrSpooled::Streamed(
                    self.encode_held(started, &schema, &encoder),
                ));
            }
            spool
                .write(&spooled, started.columns, started.stream, &self.runtime)
                .await?;
            Ok(StreamedOrSpooled::Spooled(Box::new(
                spool.manifest(&spooled, base_url).await?,
            )))
        })
        .await
    }

    /// A held result encoded on the query runtime as it is sent.
    fn encode_held<E: Encode>(
        &self,
        started: Started<datafusion::arrow::array::RecordBatch>,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        encoder: &MakeEncoder<E>,
    ) -> Started<E::Piece> {
        let query_id = started.entry.id.clone();
        let made = encoder(schema);
        let mut batches = started.stream;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        self.runtime.spawn(async move {
            let fail = |e: &dyn std::fmt::Display| ApiError::internal(Some(&query_id), e);
            let mut encoder = match made {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Err(fail(&e))).await;
                    return;
                }
            };
            let mut send = Vec::new();
            match encoder.start() {
                Ok(p) => send.extend(p.into_iter().map(Ok)),
                Err(e) => send.push(Err(fail(&e))),
            }
            for piece in send.drain(..) {
                if tx.send(piece).await.is_err() {
                    return;
                }
            }
            while let Some(batch) = batches.next().await {
                let pieces = batch.and_then(|b| encoder.batch(&b).map_err(|e| fail(&e)));
                let failed = pieces.is_err();
                let out: Vec<_> = match pieces {
                    Ok(p) => p.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                for piece in out {
                    if tx.send(piece).await.is_err() {
                        return;
                    }
                }
                if failed {
                    return;
                }
            }
            match encoder.finish() {
                Ok(p) => {
                    for piece in p {
                        if tx.send(Ok(piece)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(fail(&e))).await;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        })
        .boxed();
        Started {
            stream,
            columns: started.columns,
            fallback: started.fallback,
            entry: started.entry,
            cache: started.cache,
        }
    }

    /// [`Self::run_spooled`] for the statement of a recent query of `principal`'s, under a new
    /// id (MCP's full-result link, `GET /v1/queries/{id}/result` with the spool profile).
    ///
    /// # Errors
    /// `query_not_found`, and as [`Self::run_spooled`].
    pub async fn replay_spooled(
        &self,
        principal: &Principal,
        client: &crate::governance::Client,
        id: &str,
        base_url: &str,
    ) -> Result<SpoolManifest> {
        self.spool_or_refuse()?;
        let request = self.recent_request(principal, id)?;
        let call = self.call(principal, client, super::new_query_id(), Operation::Query);
        self.run_spooled(&call, &request, base_url).await
    }

    /// The manifest of spooled result `id`, with fresh URLs.
    ///
    /// # Errors
    /// `query_not_found` (not `principal`'s, acknowledged, expired); the query's failure.
    pub async fn spool_manifest(
        &self,
        principal: &Principal,
        id: &str,
        base_url: &str,
    ) -> Result<SpoolManifest> {
        let spool = self.spool_or_refuse()?;
        spool.manifest_of(id, principal.key_id(), base_url).await
    }

    /// Acknowledges spooled result `id`: its segments are deleted.
    ///
    /// # Errors
    /// As [`Self::spool_manifest`]; `spool_unavailable`.
    pub async fn spool_acknowledge(&self, principal: &Principal, id: &str) -> Result<()> {
        let spool = Arc::clone(self.spool_or_refuse()?);
        let (id, key) = (id.to_owned(), principal.key_id().map(str::to_owned));
        // On the query runtime, which owns the store's connections.
        self.runtime
            .spawn(async move { spool.acknowledge(&id, key.as_deref()).await })
            .await
            .map_err(|e| ApiError::internal(None, &e))?
    }

    /// Segment `index` of spooled result `id`, read through the server.
    ///
    /// # Errors
    /// As [`Self::spool_manifest`].
    pub async fn spool_segment(
        &self,
        principal: &Principal,
        id: &str,
        index: usize,
    ) -> Result<(
        u64,
        BoxStream<'static, std::result::Result<Bytes, std::io::Error>>,
    )> {
        let spool = Arc::clone(self.spool_or_refuse()?);
        let (id, key) = (id.to_owned(), principal.key_id().map(str::to_owned));
        // Read on the query runtime, which owns the store's connections; the bytes come over
        // a short channel, so a slow client holds back the read, not memory.
        let (size, mut stream) = self
            .runtime
            .spawn(async move { spool.segment(&id, key.as_deref(), index).await })
            .await
            .map_err(|e| ApiError::internal(None, &e))??;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        self.runtime.spawn(async move {
            while let Some(piece) = stream.next().await {
                if tx.send(piece).await.is_err() {
                    return;
                }
            }
        });
        let relayed = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        Ok((size, relayed.boxed()))
    }
}
