//! Tickets are self-contained and signed: any server sharing the secret serves one, a ticket
//! that is altered, expired, foreign or another caller's is refused, and none costs the server
//! anything while it waits.

use arrow_flight::Ticket;
use arrow_flight::sql::{Any, Command, ProstMessageExt, TicketStatementQuery};
use prost::Message;
use serde_json::json;
use sluice_schemas::AuthMode;

use super::{bearer, code_of, raw, statement};
use crate::TestApp;

async fn server(secret_env: &str, auth: AuthMode) -> TestApp {
    let env = secret_env.to_owned();
    TestApp::spawn_with(move |c| {
        c.auth.mode = auth;
        if let Some(f) = &mut c.flight {
            f.ticket_secret_env = Some(env);
        }
    })
    .await
}

/// A statement ticket's handle as GetFlightInfo issued it.
fn handle_of(ticket: &Ticket) -> Vec<u8> {
    let any = Any::decode(&*ticket.ticket).unwrap();
    match Command::try_from(any).unwrap() {
        Command::TicketStatementQuery(t) => t.statement_handle.to_vec(),
        other => panic!("{other:?}"),
    }
}

fn ticket_of(handle: Vec<u8>) -> Ticket {
    Ticket::new(
        TicketStatementQuery {
            statement_handle: handle.into(),
        }
        .as_any()
        .encode_to_vec(),
    )
}

/// A handle signed as the server signs (`SLF1` ‖ claims ‖ HMAC-SHA256), with `claims`.
fn forge_with_secret(secret: &str, claims: serde_json::Value) -> Vec<u8> {
    let mut out = b"SLF1".to_vec();
    out.extend(serde_json::to_vec(&claims).unwrap());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

#[actix_web::test]
async fn a_ticket_from_one_server_runs_on_another_and_no_other_ticket_does() {
    // Secrets the test services set (scripts/services.sh): one shared by A and B, one C's.
    let env = "SLUICE_TEST_FLIGHT_SECRET";
    let other_env = "SLUICE_TEST_FLIGHT_OTHER_SECRET";
    let Some(secret) = crate::needs(env, "a shared Flight ticket secret") else {
        return;
    };
    if crate::needs(other_env, "a second Flight ticket secret").is_none() {
        return;
    }
    let a = server(env, AuthMode::None).await;
    let b = server(env, AuthMode::None).await;
    let c = server(other_env, AuthMode::None).await;
    let sql = "SELECT n_name FROM nation ORDER BY n_name LIMIT 3";
    let info = raw(&a)
        .await
        .get_flight_info(bearer("", statement(sql)))
        .await
        .unwrap()
        .into_inner();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    // Nothing ran at GetFlightInfo.
    assert!(a.latest_running().await.is_none());
    let recent = a.get_json("/v1/queries").await;
    assert_eq!(recent["queries"].as_array().unwrap().len(), 0, "{recent}");
    // B serves A's ticket.
    let batches = super::get_batches(&mut raw(&b).await, "", ticket.clone()).await;
    assert_eq!(
        crate::cells(&batches),
        [["ALGERIA"], ["ARGENTINA"], ["BRAZIL"]]
    );
    // C (another secret) does not.
    let s = raw(&c)
        .await
        .do_get(bearer("", ticket.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), code_of(&s).as_str()),
        (tonic::Code::InvalidArgument, "bad_request")
    );
    // Altered anywhere: refused.
    let handle = handle_of(&ticket);
    for i in [0, 5, handle.len() / 2, handle.len() - 1] {
        let mut bad = handle.clone();
        bad[i] ^= 0x20;
        let s = raw(&b)
            .await
            .do_get(bearer("", ticket_of(bad)))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), "bad_request", "byte {i}");
    }
    // Genuine but expired: refused.
    let expired = forge_with_secret(
        &secret,
        json!({"kind": "ticket", "who": "anonymous", "exp": 1, "sql": sql}),
    );
    let s = raw(&b)
        .await
        .do_get(bearer("", ticket_of(expired)))
        .await
        .unwrap_err();
    assert!(s.message().contains("expired"), "{s:?}");
    // The same claims with a later expiry run: the format is the one documented.
    let fresh = forge_with_secret(
        &secret,
        json!({"kind": "ticket", "who": "anonymous", "exp": u64::MAX / 2, "sql": "SELECT 42 AS x"}),
    );
    assert!(
        raw(&b)
            .await
            .do_get(bearer("", ticket_of(fresh.clone())))
            .await
            .is_ok()
    );
    // A prepared-statement handle is not a ticket.
    let wrong_kind = forge_with_secret(
        &secret,
        json!({"kind": "prepared", "who": "anonymous", "exp": u64::MAX / 2, "sql": "SELECT 1"}),
    );
    let s = raw(&b)
        .await
        .do_get(bearer("", ticket_of(wrong_kind)))
        .await
        .unwrap_err();
    assert_eq!(code_of(&s), "bad_request");
}

#[actix_web::test]
async fn a_ticket_is_its_callers_own_and_abandoned_ones_cost_nothing() {
    let app = TestApp::spawn().await;
    let reader = crate::governance::create_key(
        &app,
        json!({"name": "reader", "role": "reader", "grants": [{"source": "local"}]}),
    )
    .await;
    let reader = reader["key"].as_str().unwrap();
    let mut c = raw(&app).await;
    let info = c
        .get_flight_info(bearer(&app.key, statement("SELECT count(*) FROM nation")))
        .await
        .unwrap()
        .into_inner();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let s = c.do_get(bearer(reader, ticket.clone())).await.unwrap_err();
    assert_eq!(
        (s.code(), code_of(&s).as_str()),
        (tonic::Code::PermissionDenied, "permission_denied")
    );
    // Without credentials: unauthenticated, before the ticket is even looked at.
    let s = c
        .do_get(tonic::Request::new(ticket.clone()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    // Many tickets issued and never fetched: no query runs or is recorded for any of them.
    for i in 0..500 {
        c.get_flight_info(bearer(&app.key, statement(&format!("SELECT {i} AS n"))))
            .await
            .unwrap();
    }
    let recent = app.get_json("/v1/queries").await;
    assert_eq!(recent["queries"].as_array().unwrap().len(), 0, "{recent}");
    // This server runs nothing (metrics are process-wide in the tests; readiness is its own).
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["capacity"]["queries_running"], 0, "{ready}");
    // Fetched twice at once, a ticket runs twice under two ids (the first the ticket's own).
    let (mut c1, mut c2) = (c.clone(), c.clone());
    let (a, b) = futures::join!(
        c1.do_get(bearer(&app.key, ticket.clone())),
        c2.do_get(bearer(&app.key, ticket.clone()))
    );
    let id = |r: &tonic::Response<_>| {
        r.metadata()
            .get("x-sluice-query-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(id(&a), id(&b));
    drop((a, b));
}
