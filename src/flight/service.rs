//! The gRPC methods: each authenticates its caller and dispatches on the Flight SQL command it
//! carries. Anything Sluice does not serve answers exactly `UNIMPLEMENTED` (clients decide
//! their fallbacks on that code).

use std::pin::Pin;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, Any, Command,
    ProstMessageExt,
};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::Stream;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::caller::{self, Caller};
use super::session;
use super::{FlightDoor, actions};
use crate::error::ApiError;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
/// A `DoGet` answer.
pub(super) type BoxStreamData = BoxStream<FlightData>;

impl FlightDoor {
    /// The caller of `request`, authenticated as the HTTP API authenticates; `charge` takes a
    /// request from its rate-limit bucket (every call that plans or runs does).
    pub(super) async fn caller<T>(
        &self,
        request: &Request<T>,
        charge: bool,
    ) -> Result<Caller, Status> {
        let client = caller::client(request);
        let secret = caller::presented(request.metadata());
        let principal = self
            .service
            .authenticate(secret.as_deref(), &client)
            .await?;
        if charge {
            self.service.charge(&principal)?;
        }
        Ok(Caller { principal, client })
    }

    /// `response` renewing the session's cookie, when the call had one.
    fn with_session<T>(
        &self,
        mut response: Response<T>,
        caller: &Caller,
        session: &session::Session,
    ) -> Response<T> {
        if *session != session::Session::default() {
            set_cookie(&mut response, self.cookie(caller, session));
        }
        response
    }
}

fn set_cookie<T>(response: &mut Response<T>, cookie: String) {
    if let Ok(v) = MetadataValue::try_from(cookie) {
        response.metadata_mut().insert("set-cookie", v);
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not supported by Sluice's Flight SQL service"
    ))
}

/// The Flight SQL command `bytes` hold (`Any`-packed).
pub(super) fn decode_any(bytes: &[u8]) -> Result<Command, Status> {
    Any::decode(bytes)
        .ok()
        .and_then(|any| Command::try_from(any).ok())
        .ok_or_else(|| ApiError::bad_request("the command is not a Flight SQL command").into())
}

/// The `Any`-packed action request `body` holds.
fn unpack<M: ProstMessageExt>(body: &[u8]) -> Result<M, Status> {
    Any::decode(body)
        .ok()
        .and_then(|any| any.unpack::<M>().ok().flatten())
        .ok_or_else(|| {
            let name = std::any::type_name::<M>()
                .rsplit("::")
                .next()
                .unwrap_or("request");
            ApiError::bad_request(format!("the body is not an {name}")).into()
        })
}

fn no_transactions() -> Status {
    ApiError::bad_request("transactions are not supported: Sluice is read-only").into()
}

fn one<T: Send + 'static>(item: T) -> BoxStream<T> {
    Box::pin(futures::stream::once(async move { Ok(item) }))
}

#[tonic::async_trait]
impl FlightService for FlightDoor {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;
    type DoExchangeStream = BoxStream<FlightData>;

    /// Basic auth (password = an API key) or a bearer header; answers the bearer later calls
    /// carry, in the `authorization` header and the payload.
    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.caller(&request, true).await?;
        let bearer = caller::presented(request.metadata()).unwrap_or_default();
        let mut response = Response::new(one(HandshakeResponse {
            protocol_version: 0,
            payload: bearer.clone().into(),
        }));
        if !bearer.is_empty()
            && let Ok(v) = MetadataValue::try_from(format!("Bearer {bearer}"))
        {
            response.metadata_mut().insert("authorization", v);
        }
        Ok(response)
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(unimplemented("ListFlights"))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, true).await?;
        let session = self.session(&request, &caller)?;
        let descriptor = request.into_inner();
        let info = match decode_any(&descriptor.cmd)? {
            Command::CommandStatementQuery(q) => {
                if q.transaction_id.is_some() {
                    return Err(no_transactions());
                }
                self.statement_info(&caller, &session, q.query, None, descriptor)
                    .await?
            }
            Command::CommandPreparedStatementQuery(p) => {
                let claims = self.open_prepared(&caller, &p.prepared_statement_handle)?;
                let session = session::Session::of(&claims);
                self.statement_info(&caller, &session, claims.sql, claims.params, descriptor)
                    .await?
            }
            cmd => self.metadata_info(&caller, cmd, descriptor).await?,
        };
        Ok(self.with_session(Response::new(info), &caller, &session))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(unimplemented("PollFlightInfo"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(unimplemented("GetSchema"))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let caller = self.caller(&request, true).await?;
        match decode_any(&request.get_ref().ticket)? {
            Command::TicketStatementQuery(t) => self.run_ticket(&caller, &t.statement_handle).await,
            cmd => self.metadata_data(&caller, cmd).await,
        }
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let caller = self.caller(&request, true).await?;
        let result = self.bind_parameters(&caller, request.into_inner()).await?;
        Ok(Response::new(one(result)))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("DoExchange"))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let kind = request.get_ref().r#type.clone();
        match kind.as_str() {
            actions::CREATE_PREPARED_STATEMENT => {
                let caller = self.caller(&request, true).await?;
                let session = self.session(&request, &caller)?;
                let ask: ActionCreatePreparedStatementRequest = unpack(&request.get_ref().body)?;
                if ask.transaction_id.is_some() {
                    return Err(no_transactions());
                }
                let result = self.prepare(&caller, &session, ask.query).await?;
                let response = Response::new(one(arrow_flight::Result {
                    body: result.as_any().encode_to_vec().into(),
                }));
                Ok(self.with_session(response, &caller, &session))
            }
            actions::CLOSE_PREPARED_STATEMENT => {
                let caller = self.caller(&request, false).await?;
                let ask: ActionClosePreparedStatementRequest = unpack(&request.get_ref().body)?;
                self.close_prepared(&caller, &ask.prepared_statement_handle)?;
                Ok(Response::new(Box::pin(futures::stream::empty())))
            }
            actions::CANCEL_FLIGHT_INFO | actions::CANCEL_QUERY => {
                let caller = self.caller(&request, false).await?;
                let body = self.cancel(&caller, &kind, &request.get_ref().body)?;
                Ok(Response::new(one(arrow_flight::Result {
                    body: body.into(),
                })))
            }
            actions::SET_SESSION_OPTIONS
            | actions::GET_SESSION_OPTIONS
            | actions::CLOSE_SESSION => {
                let charge = kind == actions::SET_SESSION_OPTIONS;
                let caller = self.caller(&request, charge).await?;
                let (body, cookie) = self.session_action(&caller, &request, &kind).await?;
                let mut response = Response::new(one(arrow_flight::Result { body: body.into() }));
                if let Some(cookie) = cookie {
                    set_cookie(&mut response, cookie);
                }
                Ok(response)
            }
            actions::SPOOL => {
                let caller = self.caller(&request, true).await?;
                let session = self.session(&request, &caller)?;
                let body = self
                    .spool(&caller, &session, &request.get_ref().body)
                    .await?;
                let response = Response::new(one(arrow_flight::Result { body: body.into() }));
                Ok(self.with_session(response, &caller, &session))
            }
            actions::SPOOL_LIST => {
                let caller = self.caller(&request, true).await?;
                let body = self.spool_list(&caller, &request.get_ref().body).await?;
                Ok(Response::new(one(arrow_flight::Result {
                    body: body.into(),
                })))
            }
            actions::SPOOL_ACK => {
                let caller = self.caller(&request, true).await?;
                self.spool_ack(&caller, &request.get_ref().body).await?;
                Ok(Response::new(Box::pin(futures::stream::empty())))
            }
            other => Err(unimplemented(&format!("the action {other:?}"))),
        }
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.caller(&request, false).await?;
        let described = [
            (
                actions::CREATE_PREPARED_STATEMENT,
                "Prepares a read-only statement: a signed handle with its result and parameter schemas.",
            ),
            (
                actions::CLOSE_PREPARED_STATEMENT,
                "Closes a prepared statement (nothing is held for it).",
            ),
            (
                actions::CANCEL_FLIGHT_INFO,
                "Cancels the query a FlightInfo's ticket runs, remote statements included.",
            ),
            (
                actions::CANCEL_QUERY,
                "Cancels a query (the older form of CancelFlightInfo).",
            ),
            (
                actions::SET_SESSION_OPTIONS,
                "Sets the session's catalog and schema for bare table names.",
            ),
            (actions::GET_SESSION_OPTIONS, "The session's options."),
            (
                actions::SPOOL,
                "Runs a statement (bare SQL, or a /v1/query JSON body) into the spool; answers its manifest as JSON.",
            ),
            (
                actions::SPOOL_LIST,
                "A spooled result's manifest again (body: its query id): fresh URLs, segments written since.",
            ),
            (
                actions::SPOOL_ACK,
                "Acknowledges a spooled result (body: its query id): its segments are deleted.",
            ),
            (
                actions::CLOSE_SESSION,
                "Ends the session (its options are forgotten).",
            ),
        ];
        let items: Vec<Result<ActionType, Status>> = described
            .into_iter()
            .map(|(t, d)| {
                Ok(ActionType {
                    r#type: t.to_owned(),
                    description: d.to_owned(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }
}
