//! Spooled results over Flight: the `sluice.spool` action runs a statement into the spool and
//! answers its manifest (JSON, as `POST /v1/query` with `"spool": true` does);
//! `sluice.spool.list` answers it again (fresh URLs, more segments) and `sluice.spool.ack`
//! acknowledges it. Segments are fetched from their URLs, not through Flight. Proxy URLs are
//! relative (`/v1/queries/{id}/spool/{n}`): a Flight client resolves them against the server's
//! HTTP URL.

use sluice_schemas::api::{Operation, QueryRequest};
use tonic::Status;

use super::FlightDoor;
use super::caller::Caller;
use super::session::Session;
use crate::error::ApiError;
use crate::query::new_query_id;

impl FlightDoor {
    /// `sluice.spool`: `body` is a `POST /v1/query` JSON body or the bare SQL.
    pub(super) async fn spool(
        &self,
        caller: &Caller,
        session: &Session,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let mut request: QueryRequest = if body.first() == Some(&b'{') {
            serde_json::from_slice(body)
                .map_err(|e| Status::from(ApiError::bad_request(format!("the body: {e}"))))?
        } else {
            QueryRequest {
                sql: String::from_utf8(body.to_vec()).map_err(|_| {
                    Status::from(ApiError::bad_request("the SQL is not UTF-8 text"))
                })?,
                ..QueryRequest::default()
            }
        };
        request.defaults = session.defaults(&self.service);
        let call = self.service.call(
            &caller.principal,
            &caller.client,
            new_query_id(),
            Operation::Query,
        );
        let manifest = self.service.run_spooled(&call, &request, "").await?;
        json(&manifest)
    }

    /// `sluice.spool.list`: `body` is the query id.
    pub(super) async fn spool_list(&self, caller: &Caller, body: &[u8]) -> Result<Vec<u8>, Status> {
        let manifest = self
            .service
            .spool_manifest(&caller.principal, &id(body)?, "")
            .await?;
        json(&manifest)
    }

    /// `sluice.spool.ack`: `body` is the query id.
    pub(super) async fn spool_ack(&self, caller: &Caller, body: &[u8]) -> Result<(), Status> {
        Ok(self
            .service
            .spool_acknowledge(&caller.principal, &id(body)?)
            .await?)
    }
}

fn id(body: &[u8]) -> Result<String, Status> {
    std::str::from_utf8(body)
        .map(|s| s.trim().to_owned())
        .map_err(|_| Status::from(ApiError::bad_request("the query id is not UTF-8 text")))
}

fn json(manifest: &sluice_schemas::api::SpoolManifest) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(manifest).map_err(|e| Status::from(ApiError::internal(None, &e)))
}
