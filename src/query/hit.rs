//! Answering from the result cache: a kept result encoded a batch at a time as the client
//! reads (a kept result can be megabytes, and several clients may read it at once), on the
//! query runtime like a result that runs, never on a door's workers — except a small one,
//! encoded where it is read: handing it to the query runtime and its pieces back costs two
//! thread wake-ups, more than encoding a few kilobytes (at 16 connections those hand-offs
//! were a third of a hit's time, benches/RESULTS.md).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{FutureExt, Stream};
use tokio::sync::mpsc;

use super::answer::{CacheAnswer, RowCap, Started};
use super::encode::{Encode, MakeEncoder};
use super::registry::{QueryEntry, QueryState};
use crate::cache::Cached;
use crate::error::{ApiError, Result};
use crate::governance::QueryAuditor;
use crate::metrics as m;

/// Encoded steps in flight between the encoding task and the reader.
const STEPS: usize = 4;

/// A kept result of at most this many IPC bytes is encoded in place, on the reader's thread.
const INLINE_AT_MOST: u64 = crate::cache::KEEP_IPC_AT_MOST;

/// Answers from the cached result `hit`: the encoder starts here (so a failure still gets its
/// status), the batches are encoded on `runtime` once the answer is read; the record `entry`
/// is finished as the last piece goes out.
pub(super) fn serve<E: Encode>(
    runtime: &tokio::runtime::Handle,
    entry: Arc<QueryEntry>,
    auditor: &Arc<QueryAuditor>,
    make: &MakeEncoder<E>,
    cap: RowCap,
    hit: Arc<Cached>,
) -> Result<Started<E::Piece>> {
    metrics::counter!(m::CACHE_HITS_TOTAL).increment(1);
    entry.set_sources(hit.sources.clone());
    auditor.set_reads(&hit.tables, &hit.sources);
    let over = match cap {
        RowCap::Refuse(n) => (hit.rows > n).then_some(n),
        RowCap::Peek(_) => None,
    };
    let started = match over {
        Some(n) => Err(ApiError::result_too_large(n).with_query(&entry.id)),
        None => make(&hit.schema)
            .and_then(|mut encoder| encoder.start().map(|head| (encoder, head)))
            .map_err(|e| ApiError::internal(Some(&entry.id), &e)),
    };
    let (encoder, head) = match started {
        Ok(s) => s,
        Err(e) => {
            entry.fail(&e);
            return Err(e);
        }
    };
    let columns = crate::format::columns(&hit.schema);
    let version = hit.version().to_owned();
    Ok(Started {
        stream: Box::pin(HitStream {
            state: State::Waiting {
                runtime: runtime.clone(),
                hit,
                encoder,
            },
            pending: head.into(),
            entry: Arc::clone(&entry),
            _auditor: Arc::clone(auditor),
            sent: 0,
        }),
        columns,
        fallback: None,
        entry,
        cache: CacheAnswer::Hit { version },
    })
}

enum State<E: Encode> {
    /// Not read yet: nothing runs until it is (a `304` answer never reads it).
    Waiting {
        runtime: tokio::runtime::Handle,
        hit: Arc<Cached>,
        encoder: E,
    },
    /// The encoding task is sending steps.
    Reading {
        rx: mpsc::Receiver<Step<E::Piece>>,
        rows: u64,
    },
    /// The end was received; once its pieces are out, the answer is whole.
    Ended {
        rows: u64,
    },
    Done,
}

struct HitStream<E: Encode> {
    state: State<E>,
    pending: VecDeque<E::Piece>,
    entry: Arc<QueryEntry>,
    /// Alive until the entry finishes, which completes the audit record with what was sent.
    _auditor: Arc<QueryAuditor>,
    sent: u64,
}

/// Pieces of the answer, and whether they end it. The reader takes the channel closing before
/// the end for a failure: a cut answer never passes for a whole one.
type Step<P> = Result<(Vec<P>, bool), ApiError>;

/// Encodes every batch of `hit` and the end in place, for a small result. A panic while
/// encoding is the answer's failure, as in a query that runs.
fn encode_inline<E: Encode>(
    hit: &Cached,
    mut encoder: E,
    query_id: &str,
) -> Result<Vec<E::Piece>, ApiError> {
    let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut pieces = Vec::new();
        for batch in &hit.batches {
            pieces.extend(encoder.batch(batch)?);
        }
        pieces.extend(encoder.finish()?);
        Ok(pieces)
    }));
    match encoded {
        Ok(pieces) => pieces.map_err(|e: datafusion::arrow::error::ArrowError| {
            ApiError::internal(Some(query_id), &e)
        }),
        Err(panic) => Err(ApiError::panicked(
            query_id,
            &super::producer::panic_message(panic.as_ref()),
        )),
    }
}

/// Encodes every batch of `hit`, then the end, into `tx`; stops when the reader is gone. A
/// panic while encoding is the answer's failure, as in a query that runs.
async fn encode_all<E: Encode>(
    hit: Arc<Cached>,
    mut encoder: E,
    query_id: String,
    tx: mpsc::Sender<Step<E::Piece>>,
) {
    let internal = |e: &dyn std::fmt::Display| ApiError::internal(Some(&query_id), e);
    let encoded = std::panic::AssertUnwindSafe(async {
        for batch in &hit.batches {
            let step = encoder
                .batch(batch)
                .map(|p| (p, false))
                .map_err(|e| internal(&e));
            let failed = step.is_err();
            if tx.send(step).await.is_err() || failed {
                return;
            }
        }
        let tail = encoder
            .finish()
            .map(|p| (p, true))
            .map_err(|e| internal(&e));
        let _ = tx.send(tail).await;
    })
    .catch_unwind()
    .await;
    if let Err(panic) = encoded {
        let detail = super::producer::panic_message(panic.as_ref());
        let _ = tx.send(Err(ApiError::panicked(&query_id, &detail))).await;
    }
}

impl<E: Encode> Unpin for HitStream<E> {}

impl<E: Encode> HitStream<E> {
    /// Ends the answer with `e`, recorded on the query's record.
    fn fail(&mut self, e: ApiError) -> Poll<Option<Result<E::Piece, ApiError>>> {
        self.entry.add_progress(0, self.sent);
        self.entry.fail(&e);
        self.state = State::Done;
        Poll::Ready(Some(Err(e)))
    }
}

impl<E: Encode> Stream for HitStream<E> {
    type Item = Result<E::Piece, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(piece) = this.pending.pop_front() {
                this.sent += E::size(&piece);
                return Poll::Ready(Some(Ok(piece)));
            }
            match &mut this.state {
                State::Waiting { .. } => {
                    let State::Waiting {
                        runtime,
                        hit,
                        mut encoder,
                    } = std::mem::replace(&mut this.state, State::Done)
                    else {
                        continue;
                    };
                    let rows = hit.rows;
                    if let Some(pieces) = hit.ipc.as_ref().and_then(|ipc| encoder.whole_ipc(ipc)) {
                        this.pending.extend(pieces);
                        this.state = State::Ended { rows };
                        continue;
                    }
                    if hit.ipc_bytes() <= INLINE_AT_MOST {
                        match encode_inline(&hit, encoder, &this.entry.id) {
                            Ok(pieces) => {
                                this.pending.extend(pieces);
                                this.state = State::Ended { rows };
                            }
                            Err(e) => return this.fail(e),
                        }
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(STEPS);
                    runtime.spawn(encode_all(hit, encoder, this.entry.id.clone(), tx));
                    this.state = State::Reading { rx, rows };
                }
                State::Reading { rx, rows } => match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok((pieces, last)))) => {
                        this.pending.extend(pieces);
                        if last {
                            this.state = State::Ended { rows: *rows };
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return this.fail(e),
                    // Closed before its end: the encoding task is gone without a word.
                    Poll::Ready(None) => {
                        let e = ApiError::internal(
                            Some(&this.entry.id),
                            &"a cached answer's encoding ended before its end",
                        );
                        return this.fail(e);
                    }
                },
                State::Ended { rows } => {
                    // Every piece is out (`pending` is empty here).
                    let rows = *rows;
                    this.state = State::Done;
                    if this.entry.state() == QueryState::Running {
                        this.entry.add_progress(rows, this.sent);
                        this.entry.finish(QueryState::Finished, None);
                        let door = this.entry.door.as_str();
                        metrics::counter!(m::QUERIES_TOTAL, "outcome" => "ok", "door" => door)
                            .increment(1);
                        metrics::counter!(m::ROWS_STREAMED_TOTAL, "door" => door).increment(rows);
                        metrics::counter!(m::BYTES_STREAMED_TOTAL, "door" => door)
                            .increment(this.sent);
                    }
                    return Poll::Ready(None);
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<E: Encode> Drop for HitStream<E> {
    fn drop(&mut self) {
        if self.entry.state() == QueryState::Running {
            self.entry.add_progress(0, self.sent);
            self.entry
                .finish(QueryState::Cancelled, Some(&ApiError::client_gone()));
        }
    }
}
