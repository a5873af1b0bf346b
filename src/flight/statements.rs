//! Statements and prepared statements: described when planned (nothing runs in
//! `GetFlightInfo`), run on `DoGet` from a signed ticket, parameters bound by `DoPut` into a
//! new signed handle.

use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionCreatePreparedStatementResult, Any,
    Command, DoPutPreparedStatementResult, ProstMessageExt, TicketStatementQuery,
};
use arrow_flight::{
    CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightData, FlightDescriptor,
    FlightEndpoint, FlightInfo, IpcMessage, PutResult, SchemaAsIpc, Ticket,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use sluice_schemas::api::{Operation, QueryParams, QueryRequest};
use tonic::metadata::MetadataValue;
use tonic::{Response, Status, Streaming};

use super::actions;
use super::caller::{self, Caller};
use super::encode::{FlightEncoder, announced};
use super::session::Session;
use super::ticket::{Claims, Kind, Refused};
use super::{FlightDoor, params};
use crate::error::{ApiError, Code};
use crate::query::{RowCap, new_query_id};

/// A handle refused: a forged or foreign one is the caller's mistake, never ours.
fn refused(e: Refused) -> ApiError {
    match e {
        Refused::OtherPrincipal => ApiError::permission_denied(e.to_string()),
        Refused::Forged | Refused::Expired | Refused::WrongKind => {
            ApiError::bad_request(e.to_string())
        }
    }
}

fn schema_bytes(schema: &Schema) -> Result<Vec<u8>, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes.to_vec())
        .map_err(|e| Status::from(ApiError::internal(None, &e)))
}

impl FlightDoor {
    /// The request a statement makes, with the session's name defaults.
    fn request(&self, session: &Session, sql: String, params: Option<QueryParams>) -> QueryRequest {
        QueryRequest {
            sql,
            params,
            timeout_ms: None,
            max_rows: None,
            defaults: session.defaults(&self.service),
            spool: false,
        }
    }

    /// Describes the statement (checked as a run is) and records a refusal as the query it
    /// would have been, so a statement refused here is on the audit log as on any door.
    async fn describe(
        &self,
        caller: &Caller,
        request: &QueryRequest,
        query_id: &str,
    ) -> Result<sluice_planner::Described, Status> {
        self.service
            .describe_statement(&caller.principal, request, query_id)
            .await
            .map_err(|e| {
                let call = self.service.call(
                    &caller.principal,
                    &caller.client,
                    query_id.to_owned(),
                    Operation::Query,
                );
                call.note_sql(&request.sql);
                Status::from(call.refuse(e))
            })
    }

    /// `GetFlightInfo` for a statement: its schema and one ticket that runs it.
    pub(super) async fn statement_info(
        &self,
        caller: &Caller,
        session: &Session,
        sql: String,
        params: Option<QueryParams>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let query_id = new_query_id();
        let request = self.request(session, sql, params);
        let described = self.describe(caller, &request, &query_id).await?;
        let schema = announced(&described.schema);
        let claims = Claims {
            sql: request.sql,
            params: request.params,
            query_id: Some(query_id),
            ..session.claims(Kind::Ticket, caller.id(), self.tickets.expiry())
        };
        let ticket = TicketStatementQuery {
            statement_handle: self.tickets.seal(&claims).into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::from(ApiError::internal(None, &e)))
            .map(|info| {
                info.with_endpoint(endpoint)
                    .with_descriptor(descriptor)
                    .with_total_records(-1)
                    .with_total_bytes(-1)
                    .with_ordered(true)
            })
    }

    /// `DoGet` of a statement ticket: the caller it was issued to runs it, here or on any
    /// server sharing the secret.
    pub(super) async fn run_ticket(
        &self,
        caller: &Caller,
        handle: &[u8],
    ) -> Result<Response<super::service::BoxStreamData>, Status> {
        let claims = self
            .tickets
            .open(handle, Kind::Ticket, caller.id())
            .map_err(refused)?;
        // A ticket fetched again runs again, under a new id.
        let query_id = claims
            .query_id
            .clone()
            .filter(|id| self.claim(id) && !self.service.knows_query(id))
            .unwrap_or_else(new_query_id);
        let session = Session::of(&claims);
        let request = self.request(&session, claims.sql, claims.params);
        let call = self.service.call(
            &caller.principal,
            &caller.client,
            query_id.clone(),
            Operation::Query,
        );
        let cap = RowCap::Refuse(self.service.limits().max_rows);
        let started = self
            .service
            .run(&call, &request, cap, FlightEncoder::maker())
            .await?;
        let stream = started.stream.map_err(|e| caller::status(&e)).boxed();
        let mut response = Response::new(stream);
        if let Ok(v) = MetadataValue::try_from(query_id.as_str()) {
            response.metadata_mut().insert(caller::QUERY_ID, v);
        }
        Ok(response)
    }

    /// `CreatePreparedStatement`: the statement checked and described, as a signed handle.
    pub(super) async fn prepare(
        &self,
        caller: &Caller,
        session: &Session,
        sql: String,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let query_id = new_query_id();
        let request = self.request(session, sql, None);
        let described = self.describe(caller, &request, &query_id).await?;
        let parameters = Schema::new(
            described
                .placeholders
                .iter()
                .map(|(id, t)| Field::new(id, t.clone().unwrap_or(DataType::Null), true))
                .collect::<Vec<_>>(),
        );
        let claims = Claims {
            sql: request.sql,
            ..session.claims(Kind::Prepared, caller.id(), self.prepared.expiry())
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: self.prepared.seal(&claims).into(),
            dataset_schema: schema_bytes(&announced(&described.schema))?.into(),
            parameter_schema: schema_bytes(&parameters)?.into(),
        })
    }

    /// A prepared statement's claims, for its caller, before its expiry.
    pub(super) fn open_prepared(&self, caller: &Caller, handle: &[u8]) -> Result<Claims, Status> {
        self.prepared
            .open(handle, Kind::Prepared, caller.id())
            .map_err(|e| Status::from(refused(e)))
    }

    /// `ClosePreparedStatement`: nothing is held, so any genuine handle closes (an expired one
    /// too: pools close late); only a forged one is refused.
    pub(super) fn close_prepared(&self, caller: &Caller, handle: &[u8]) -> Result<(), Status> {
        self.prepared
            .open_any_age(handle, Kind::Prepared, caller.id())
            .map(|_| ())
            .map_err(|e| refused(e).into())
    }

    /// `DoPut` of a prepared statement's parameters: one row of values, answered with a new
    /// handle carrying them (the values replace any bound before).
    pub(super) async fn bind_parameters(
        &self,
        caller: &Caller,
        mut stream: Streaming<FlightData>,
    ) -> Result<PutResult, Status> {
        let Some(first) = stream.message().await? else {
            return Err(ApiError::bad_request("DoPut sent no message").into());
        };
        let Some(descriptor) = first.flight_descriptor.clone() else {
            return Err(ApiError::bad_request("DoPut's first message has no descriptor").into());
        };
        let handle = match super::service::decode_any(&descriptor.cmd)? {
            Command::CommandPreparedStatementQuery(p) => p.prepared_statement_handle,
            Command::CommandStatementUpdate(_)
            | Command::CommandPreparedStatementUpdate(_)
            | Command::CommandStatementIngest(_) => {
                return Err(Status::unimplemented(
                    "updates and ingestion are not supported: Sluice is read-only",
                ));
            }
            other => {
                return Err(Status::unimplemented(format!(
                    "DoPut with {} is not supported",
                    other.type_url()
                )));
            }
        };
        let claims = self.open_prepared(caller, &handle)?;
        let values =
            params::read_row(first, stream, self.service.limits().max_request_bytes).await?;
        let claims = Claims {
            params: values.map(QueryParams::Positional),
            exp: self.prepared.expiry(),
            ..claims
        };
        let result = DoPutPreparedStatementResult {
            prepared_statement_handle: Some(self.prepared.seal(&claims).into()),
        };
        Ok(PutResult {
            app_metadata: result.encode_to_vec().into(),
        })
    }

    /// `CancelFlightInfo` (and the older `CancelQuery`): cancels the query the info's ticket
    /// runs on this server, remote statements included.
    pub(super) fn cancel(
        &self,
        caller: &Caller,
        kind: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let info = if kind == actions::CANCEL_FLIGHT_INFO {
            CancelFlightInfoRequest::decode(body)
                .ok()
                .and_then(|r| r.info)
        } else {
            Any::decode(body)
                .ok()
                .and_then(|a| a.unpack::<ActionCancelQueryRequest>().ok().flatten())
                .and_then(|r| FlightInfo::decode(r.info).ok())
        }
        .ok_or_else(|| Status::from(ApiError::bad_request("the body holds no FlightInfo")))?;
        let mut status = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Ok(Command::TicketStatementQuery(t)) = super::service::decode_any(&ticket.ticket)
            else {
                continue;
            };
            // An expired ticket's query may still run.
            let claims = self
                .tickets
                .open_any_age(&t.statement_handle, Kind::Ticket, caller.id())
                .map_err(refused)?;
            let Some(id) = claims.query_id else { continue };
            match self.service.cancel(&caller.principal, &id) {
                // A query that had already ended is not said to be cancelled.
                Ok(s) if s.state == sluice_schemas::api::QueryState::Cancelled => {
                    status = CancelStatus::Cancelled;
                }
                Ok(_) => {}
                Err(e) if e.code == Code::QueryNotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(if kind == actions::CANCEL_FLIGHT_INFO {
            CancelFlightInfoResult::new(status).encode_to_vec()
        } else {
            // `CancelResult`: 1 cancelled, 3 not cancellable (the enum is not re-exported).
            let result = if status == CancelStatus::Cancelled {
                1
            } else {
                3
            };
            ActionCancelQueryResult { result }.as_any().encode_to_vec()
        })
    }
}
