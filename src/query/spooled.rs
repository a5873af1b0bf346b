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

    /// The spool, for a request that asks for a spooled answer: without one, no representation
    /// serves it (`406 not_acceptable`, as for an `Accept` no format serves).
    fn spool_or_refuse(&self) -> Result<&Arc<Spool>> {
        self.spool.as_ref().ok_or_else(|| {
            ApiError::not_acceptable(
                "this server spools no results (no [spool] location is configured); ask for a streamed format",
            )
        })
    }

    /// The spool, for a request about a spooled result: without one there is none.
    fn spool_or_none(&self, id: &str) -> Result<&Arc<Spool>> {
        self.spool.as_ref().ok_or_else(|| {
            ApiError::new(
                Code::QueryNotFound,
                format!("no spooled result {id}: this server spools no results"),
            )
        })
    }

    /// Runs `request` for `call` into the spool and answers its manifest once the first rows
    /// are in; the rest is written after the answer, listed as each segment completes.
    /// `base_url` is the server as the client reaches it (for proxy URLs).
    ///
    /// # Errors
    /// `not_acceptable` without a spool; `too_many_queries` when the key holds as many spooled
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
            // Given back if the query fails, or this request goes away, before a writer takes it.
            let reservation = spool.reserve(&call.query_id, call.principal.key_id())?;
            let started = self
                .run(call, request, self.cap(request), Batches::maker())
                .await?;
            let spooled = spool
                .write(reservation, started.columns, started.stream, &self.runtime)
                .await?;
            spool.manifest(&spooled, base_url).await
        })
        .await
    }

    /// The row cap of a spooled or held request: its own, capped by the server's.
    fn cap(&self, request: &QueryRequest) -> RowCap {
        let max_rows = self.limits.max_rows;
        RowCap::Refuse(request.max_rows.unwrap_or(max_rows).min(max_rows))
    }

    /// Runs `request` for a client that prefers a streamed format but takes the spool for a
    /// big result: batches are held until the result ends (then it streams, encoded by
    /// `encoder`) or passes `[spool] threshold_bytes` of Arrow memory (then the held batches
    /// and the rest are spooled and the manifest answers). The held batches count as one of
    /// the key's spooled results until they are sent, which bounds what a key holds; a key
    /// holding as many as it may gets the plain stream.
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
            let cap = self.cap(request);
            let Ok(reservation) = spool.reserve(&call.query_id, call.principal.key_id()) else {
                let started = self.run(call, request, cap, encoder).await?;
                return Ok(StreamedOrSpooled::Streamed(started));
            };
            let schema = Arc::new(std::sync::OnceLock::new());
            let seen = Arc::clone(&schema);
            let batches: MakeEncoder<Batches> = Arc::new(move |s| {
                let _ = seen.set(Arc::clone(s));
                Ok(Batches)
            });
            let held: Result<_> = async {
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
            let (started, ended) = held?;
            if ended {
                let schema = schema.get().cloned().ok_or_else(|| {
                    ApiError::internal(Some(&call.query_id), &"a result without a schema")
                })?;
                return Ok(StreamedOrSpooled::Streamed(self.encode_held(
                    started,
                    &schema,
                    &encoder,
                    reservation,
                )));
            }
            let spooled = spool
                .write(reservation, started.columns, started.stream, &self.runtime)
                .await?;
            Ok(StreamedOrSpooled::Spooled(Box::new(
                spool.manifest(&spooled, base_url).await?,
            )))
        })
        .await
    }

    /// A held result encoded on the query runtime as it is sent; `reservation` is given back
    /// once it is.
    fn encode_held<E: Encode>(
        &self,
        started: Started<datafusion::arrow::array::RecordBatch>,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        encoder: &MakeEncoder<E>,
        reservation: crate::spool::Reservation,
    ) -> Started<E::Piece> {
        let query_id = started.entry.id.clone();
        let made = encoder(schema);
        let mut batches = started.stream;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        self.runtime.spawn(async move {
            let _held = reservation;
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
        let spool = self.spool_or_none(id)?;
        spool.manifest_of(id, principal.key_id(), base_url).await
    }

    /// Acknowledges spooled result `id`: its segments are deleted.
    ///
    /// # Errors
    /// As [`Self::spool_manifest`]; `spool_unavailable`.
    pub async fn spool_acknowledge(&self, principal: &Principal, id: &str) -> Result<()> {
        let spool = Arc::clone(self.spool_or_none(id)?);
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
        let spool = Arc::clone(self.spool_or_none(id)?);
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
