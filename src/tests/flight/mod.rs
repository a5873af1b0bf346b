//! The Flight SQL door, driven by arrow-flight's own client in the RPC sequences real clients
//! send (JDBC prepares every statement; DBeaver asks for column schemas in `GetTables`; Power BI
//! for `GetXdbcTypeInfo`; Tableau for table types and primary keys), and compared with what
//! `/v1/query` answers. ADBC's own driver is in `adbc.rs`.

mod adbc;
mod tickets;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_flight::{Action, FlightDescriptor, FlightInfo, Ticket};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use futures::TryStreamExt;
use prost::Message;
use serde_json::json;
use tonic::transport::Channel;

use crate::{TestApp, cells};

/// A client of `app`'s Flight listener, not yet authenticated.
pub async fn connect(app: &TestApp) -> FlightSqlServiceClient<Channel> {
    let url = app
        .flight
        .clone()
        .expect("[flight] is on")
        .replace("grpc://", "http://");
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    FlightSqlServiceClient::new(channel)
}

/// A client presenting `key` as a bearer.
pub async fn client_as(app: &TestApp, key: &str) -> FlightSqlServiceClient<Channel> {
    let mut c = connect(app).await;
    c.set_token(key.to_owned());
    c
}

/// Every batch behind a FlightInfo's endpoints.
pub async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: &FlightInfo) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for ep in &info.endpoint {
        let ticket = ep.ticket.clone().expect("a ticket");
        let stream = c.do_get(ticket).await.unwrap();
        out.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    out
}

/// A raw gRPC client with `key` as a bearer (for statuses and their metadata).
pub async fn raw(app: &TestApp) -> FlightServiceClient<Channel> {
    connect(app).await.into_inner()
}

/// `req` with `authorization: Bearer <key>`.
pub fn bearer<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

/// A statement's descriptor.
pub fn statement(sql: &str) -> FlightDescriptor {
    FlightDescriptor::new_cmd(
        CommandStatementQuery {
            query: sql.to_owned(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    )
}

/// The Sluice error code a status carries.
pub fn code_of(s: &tonic::Status) -> String {
    s.metadata()
        .get("x-sluice-error-code")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A row of parameters as ADBC sends them: columns named `0`, `1`, ...
fn params_row(values: Vec<datafusion::arrow::array::ArrayRef>) -> RecordBatch {
    let fields: Vec<Field> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Field::new(i.to_string(), v.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), values).unwrap()
}

/// The batches `DoGet` of `ticket` streams to `key`.
pub async fn get_batches(
    c: &mut FlightServiceClient<Channel>,
    key: &str,
    ticket: Ticket,
) -> Vec<RecordBatch> {
    let data: Vec<_> = c
        .do_get(bearer(key, ticket))
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    arrow_flight::utils::flight_data_to_batches(&data).unwrap()
}

/// The body of the one result an action answers.
pub async fn action_body(
    c: &mut FlightServiceClient<Channel>,
    req: tonic::Request<Action>,
) -> bytes::Bytes {
    let results: Vec<_> = c
        .do_action(req)
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    results[0].body.clone()
}

/// Runs a Python client script that prints one JSON object; its object.
pub async fn python_json(cmd: std::process::Command) -> serde_json::Value {
    let out = crate::output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A reader key granted only `local.public.nation`.
pub async fn nation_reader(app: &TestApp) -> String {
    let reader = crate::governance::create_key(
        app,
        json!({"name": "nation only", "role": "reader",
               "grants": [{"source": "local", "schema": "public", "table": "nation"}]}),
    )
    .await;
    reader["key"].as_str().unwrap().to_owned()
}

/// What a statement answers through Flight (GetFlightInfo, then DoGet): its rows, or the
/// Sluice code it was refused with.
pub async fn verdict(app: &TestApp, key: &str, sql: &str) -> Result<usize, String> {
    let mut c = raw(app).await;
    let info = match c.get_flight_info(bearer(key, statement(sql))).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(code_of(&s)),
    };
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = match c.do_get(bearer(key, ticket)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(code_of(&s)),
    };
    let data: Result<Vec<_>, _> = stream.try_collect().await;
    let data = data.map_err(|s| code_of(&s))?;
    let batches = arrow_flight::utils::flight_data_to_batches(&data).map_err(|e| e.to_string())?;
    Ok(batches.iter().map(RecordBatch::num_rows).sum())
}

const TPCH: [&str; 4] = [
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS q, count(*) AS n FROM lineitem \
     WHERE l_shipdate <= DATE '1998-09-02' GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem \
     WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
     AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
    "SELECT n_name, count(*) AS suppliers FROM supplier JOIN nation ON s_nationkey = n_nationkey \
     GROUP BY n_name ORDER BY suppliers DESC, n_name",
    "SELECT o_orderpriority, count(*) AS n FROM orders WHERE o_orderdate >= DATE '1993-07-01' \
     AND o_orderdate < DATE '1993-10-01' GROUP BY 1 ORDER BY 1",
];

#[actix_web::test]
async fn jdbc_prepares_executes_and_closes_every_statement_with_the_http_answer() {
    let app = TestApp::spawn().await;
    let mut c = connect(&app).await;
    // Basic auth: the key is the password; the bearer comes back for later calls.
    let payload = c.handshake("token", &app.key).await.unwrap();
    // The client keeps the `authorization: Bearer <key>` of the answer for its later calls.
    assert_eq!(c.token(), Some(&app.key));
    assert_eq!(payload, app.key.as_bytes());
    for sql in TPCH {
        let mut prepared = c.prepare(sql.to_owned(), None).await.unwrap();
        let announced = prepared.dataset_schema().unwrap().clone();
        let info = prepared.execute().await.unwrap();
        let got = fetch(&mut c, &info).await;
        prepared.close().await.unwrap();
        let http = app.arrow(sql).await;
        assert_eq!(cells(&got), cells(&http), "{sql}");
        // The schema announced at prepare is the one streamed, nullability included.
        let streamed = got[0].schema();
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&announced), names(&streamed), "{sql}");
        // Power BI reads each column's SQL type from the field metadata.
        for f in streamed.fields() {
            assert!(
                f.metadata().contains_key("ARROW:FLIGHT:SQL:TYPE_NAME"),
                "{sql}: {f:?}"
            );
        }
    }
    // The door is on the metrics and the audit record.
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_queries_total")
                && l.contains("door=\"flight\"")
                && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
}

#[actix_web::test]
async fn parameters_bind_into_the_plan_with_their_types() {
    let app = TestApp::spawn().await;
    let mut c = client_as(&app, &app.key).await;
    // `?` and `$n` in one statement: which value goes where would be a guess.
    assert_eq!(
        verdict(
            &app,
            &app.key,
            "SELECT n_name FROM nation WHERE n_regionkey = ? AND n_nationkey > $2"
        )
        .await,
        Err("bad_request".to_owned())
    );
    let sql = "SELECT n_name FROM nation WHERE n_regionkey = ? AND n_name < ? AND n_nationkey > ? ORDER BY n_name";
    let mut prepared = c.prepare(sql.to_owned(), None).await.unwrap();
    let params = prepared.parameter_schema().unwrap().clone();
    assert_eq!(
        params
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["$1", "$2", "$3"]
    );
    let int = |v: i64| -> datafusion::arrow::array::ArrayRef {
        std::sync::Arc::new(Int64Array::from(vec![v]))
    };
    let text = |v: &str| -> datafusion::arrow::array::ArrayRef {
        std::sync::Arc::new(StringArray::from(vec![v]))
    };
    let batch = params_row(vec![int(1), text("P"), int(1)]);
    prepared.set_parameters(batch.clone()).unwrap();
    let info = prepared.execute().await.unwrap();
    let got = fetch(&mut c, &info).await;
    let http = app
        .query(
            json!({"sql": "SELECT n_name FROM nation WHERE n_regionkey = $1 AND n_name < $2 AND n_nationkey > $3 ORDER BY n_name", "params": [1, "P", 1]}),
            crate::ARROW,
        )
        .await;
    let http = crate::read_arrow(&http.bytes().await.unwrap());
    assert_eq!(cells(&got), cells(&http));
    assert_eq!(cells(&got), [["BRAZIL"], ["CANADA"]]);
    // Executed again with other values: they replace the first ones.
    let batch = params_row(vec![int(3), text("G"), int(0)]);
    prepared.set_parameters(batch).unwrap();
    let info = prepared.execute().await.unwrap();
    assert_eq!(cells(&fetch(&mut c, &info).await), [["FRANCE"]]);
    // A value that does not fit its placeholder is the caller's mistake, named.
    let batch = params_row(vec![text("not a number"), text("P"), int(1)]);
    prepared.set_parameters(batch).unwrap();
    let err = prepared.execute().await.unwrap_err().to_string();
    assert!(err.contains("$1"), "{err}");
    prepared.close().await.unwrap();
}

#[actix_web::test]
async fn bi_tools_metadata_is_what_the_grants_allow() {
    let app = TestApp::spawn().await;
    let reader = nation_reader(&app).await;
    for (key, tables) in [(&app.key, 8_usize), (&reader, 1)] {
        let mut c = client_as(&app, key).await;
        // DBeaver: GetTables with the column schemas.
        let info = c
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: true,
            })
            .await
            .unwrap();
        let batches = fetch(&mut c, &info).await;
        let names: Vec<String> = cells(&batches).iter().map(|r| r[2].clone()).collect();
        assert_eq!(names.len(), tables, "{names:?}");
        assert!(names.contains(&"nation".to_owned()));
        let schema_col = batches[0].column_by_name("table_schema").unwrap();
        let bytes = schema_col
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BinaryArray>()
            .unwrap();
        let row = names.iter().position(|n| n == "nation").unwrap();
        let schema =
            Schema::try_from(arrow_flight::IpcMessage(bytes.value(row).to_vec().into())).unwrap();
        let key_field = schema.field_with_name("n_nationkey").unwrap();
        assert_eq!(key_field.metadata()["ARROW:FLIGHT:SQL:TYPE_NAME"], "BIGINT");
        // Catalogs and schemas likewise.
        let info = c.get_catalogs().await.unwrap();
        assert_eq!(cells(&fetch(&mut c, &info).await), [["local"]]);
        let info = c
            .get_db_schemas(CommandGetDbSchemas {
                catalog: None,
                db_schema_filter_pattern: None,
            })
            .await
            .unwrap();
        assert_eq!(cells(&fetch(&mut c, &info).await), [["local", "public"]]);
    }
    let mut c = client_as(&app, &reader).await;
    // A table outside the grants does not exist for the reader, on this door as on HTTP.
    assert_eq!(
        verdict(&app, &reader, "SELECT * FROM lineitem").await,
        Err("table_not_found".to_owned())
    );
    // Tableau: table types and (no) primary keys.
    let info = c.get_table_types().await.unwrap();
    assert_eq!(cells(&fetch(&mut c, &info).await), [["TABLE"]]);
    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("local".into()),
            db_schema: Some("public".into()),
            table: "nation".into(),
        })
        .await
        .unwrap();
    let keys = fetch(&mut c, &info).await;
    assert_eq!(crate::total_rows(&keys), 0);
    // Power BI: the type list, filtered by type.
    let info = c
        .get_xdbc_type_info(CommandGetXdbcTypeInfo {
            data_type: Some(-5),
        })
        .await
        .unwrap();
    let types = fetch(&mut c, &info).await;
    assert_eq!(crate::total_rows(&types), 1);
    assert_eq!(cells(&types)[0][0], "BIGINT");
    let info = c
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    assert!(crate::total_rows(&fetch(&mut c, &info).await) >= 10);
    // Read-only, no transactions (ADBC asks for 8 on connect).
    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerTransaction,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let info = cells(&fetch(&mut c, &info).await);
    assert_eq!(info.len(), 3, "{info:?}");
    assert!(info.iter().any(|r| r[1].contains("Sluice")), "{info:?}");
}

#[actix_web::test]
async fn refusals_carry_the_code_and_query_id_and_unsupported_calls_say_unimplemented() {
    let app = TestApp::spawn().await;
    let mut c = raw(&app).await;
    // Wrong credentials, as basic auth or bearer.
    let s = c
        .get_flight_info(bearer("sluice_key_nope", statement("SELECT 1")))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    assert_eq!(code_of(&s), "unauthenticated");
    let mut basic = connect(&app).await;
    assert!(basic.handshake("token", "wrong").await.is_err());
    // `x-api-key`, as on HTTP.
    let mut req = tonic::Request::new(statement("SELECT 1"));
    req.metadata_mut()
        .insert("x-api-key", app.key.parse().unwrap());
    assert!(c.get_flight_info(req).await.is_ok());
    // The user's mistakes, classed as the HTTP API classes them.
    for (sql, grpc, code) in [
        (
            "SELECT * FROM no_such_table",
            tonic::Code::NotFound,
            "table_not_found",
        ),
        (
            "INSERT INTO nation VALUES (1)",
            tonic::Code::InvalidArgument,
            "read_only",
        ),
        ("SELEC 1", tonic::Code::InvalidArgument, "sql_invalid"),
    ] {
        let s = c
            .get_flight_info(bearer(&app.key, statement(sql)))
            .await
            .unwrap_err();
        assert_eq!(
            (s.code(), code_of(&s).as_str()),
            (grpc, code),
            "{sql}: {s:?}"
        );
        assert!(s.metadata().get("x-sluice-query-id").is_some(), "{sql}");
        let http = app.query(json!({"sql": sql}), "application/json").await;
        let body: serde_json::Value = http.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{sql}");
    }
    // A data error while streaming cuts the stream with its code, never a clean end.
    let got = verdict(&app, &app.key, "SELECT CAST(n_name AS INT) FROM nation").await;
    assert!(
        matches!(&got, Err(c) if c == "data_error" || c == "sql_invalid"),
        "{got:?}"
    );
    // What Sluice does not do.
    let keys = arrow_flight::sql::CommandGetExportedKeys {
        catalog: None,
        db_schema: None,
        table: "nation".into(),
    };
    let s = c
        .get_flight_info(bearer(
            &app.key,
            FlightDescriptor::new_cmd(keys.as_any().encode_to_vec()),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unimplemented);
    let s = c
        .do_action(bearer(
            &app.key,
            Action::new("BeginTransaction", Vec::<u8>::new()),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unimplemented);
    let s = c
        .poll_flight_info(bearer(&app.key, statement("SELECT 1")))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unimplemented);
}

#[actix_web::test]
async fn session_options_set_the_catalog_and_schema_of_bare_names() {
    let app = TestApp::spawn().await;
    let mut c = raw(&app).await;
    let set = |options: Vec<(&str, Option<&str>)>| {
        let mut m = std::collections::HashMap::new();
        for (k, v) in options {
            m.insert(k.to_owned(), session::value(v));
        }
        session::SetSessionOptionsRequest { session_options: m }.encode_to_vec()
    };
    let response = c
        .do_action(bearer(
            &app.key,
            Action::new(
                "SetSessionOptions",
                set(vec![
                    ("schema", Some("information_schema")),
                    ("catalog", Some("nowhere")),
                    ("color", Some("blue")),
                ]),
            ),
        ))
        .await
        .unwrap();
    let cookie = response
        .metadata()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let result: Vec<_> = response.into_inner().try_collect().await.unwrap();
    let result = session::SetSessionOptionsResult::decode(&*result[0].body).unwrap();
    // An unknown catalog is an invalid value, an unknown option an invalid name; the schema is set.
    assert_eq!(result.errors["catalog"].value, 2);
    assert_eq!(result.errors["color"].value, 1);
    assert!(!result.errors.contains_key("schema"));
    // Bare names now resolve in information_schema.
    let mut req = bearer(&app.key, statement("SELECT count(*) AS n FROM tables"));
    req.metadata_mut().insert("cookie", cookie.parse().unwrap());
    let answer = c.get_flight_info(req).await.unwrap();
    // Each use renews the cookie.
    assert!(answer.metadata().get("set-cookie").is_some());
    let info = answer.into_inner();
    let mut sql = client_as(&app, &app.key).await;
    assert!(crate::total_rows(&fetch(&mut sql, &info).await) == 1);
    // Without the cookie they do not.
    let s = c
        .get_flight_info(bearer(&app.key, statement("SELECT count(*) FROM tables")))
        .await
        .unwrap_err();
    assert_eq!(code_of(&s), "table_not_found");
    // The cookie is the caller's own: another key cannot use it.
    let other =
        crate::governance::create_key(&app, json!({"name": "other", "role": "admin"})).await;
    let mut req = bearer(other["key"].as_str().unwrap(), statement("SELECT 1"));
    req.metadata_mut().insert("cookie", cookie.parse().unwrap());
    assert_eq!(
        c.get_flight_info(req).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    // A cookie that is not (or no longer) good is refused where it would change what runs, and
    // SetSessionOptions starts over from it.
    let mut req = bearer(&app.key, statement("SELECT 1"));
    req.metadata_mut()
        .insert("cookie", "arrow_flight_session_id=garbage".parse().unwrap());
    assert_eq!(
        code_of(&c.get_flight_info(req).await.unwrap_err()),
        "bad_request"
    );
    let mut req = bearer(
        &app.key,
        Action::new("SetSessionOptions", set(vec![("schema", Some("public"))])),
    );
    req.metadata_mut()
        .insert("cookie", "arrow_flight_session_id=garbage".parse().unwrap());
    let fresh = c.do_action(req).await.unwrap();
    assert!(fresh.metadata().get("set-cookie").is_some());
    // GetSessionOptions reads it back; CloseSession expires it.
    let mut req = bearer(&app.key, Action::new("GetSessionOptions", Vec::<u8>::new()));
    req.metadata_mut().insert("cookie", cookie.parse().unwrap());
    let got = session::GetSessionOptionsResult::decode(action_body(&mut c, req).await).unwrap();
    assert_eq!(got.session_options.len(), 1);
    let mut req = bearer(&app.key, Action::new("CloseSession", Vec::<u8>::new()));
    req.metadata_mut().insert("cookie", cookie.parse().unwrap());
    let closed = c.do_action(req).await.unwrap();
    assert!(
        closed
            .metadata()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

/// Session messages (Flight.proto), as a client encodes them.
pub mod session {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(oneof = "Inner", tags = "1")]
        pub v: Option<Inner>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Inner {
        #[prost(string, tag = "1")]
        S(String),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SetSessionOptionsRequest {
        #[prost(map = "string, message", tag = "1")]
        pub session_options: HashMap<String, Value>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(int32, tag = "1")]
        pub value: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SetSessionOptionsResult {
        #[prost(map = "string, message", tag = "1")]
        pub errors: HashMap<String, Error>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetSessionOptionsResult {
        #[prost(map = "string, message", tag = "1")]
        pub session_options: HashMap<String, Value>,
    }
    pub fn value(v: Option<&str>) -> Value {
        Value {
            v: v.map(|s| Inner::S(s.to_owned())),
        }
    }
}

#[actix_web::test]
async fn cancel_flight_info_stops_the_query_a_ticket_runs() {
    let app = TestApp::spawn().await;
    let mut c = client_as(&app, &app.key).await;
    // Long enough to be cancelled while it runs (a cross join streaming row by row).
    let sql = "SELECT a.l_orderkey, b.l_orderkey FROM lineitem a CROSS JOIN lineitem b";
    let info = c.execute(sql.to_owned(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await.unwrap();
    // The first batch arrives: the query runs.
    stream.try_next().await.unwrap().unwrap();
    let id = app.latest_running().await.expect("a running query");
    let mut raw = raw(&app).await;
    let body = arrow_flight::CancelFlightInfoRequest::new(info.clone()).encode_to_vec();
    let req = bearer(&app.key, Action::new("CancelFlightInfo", body));
    let result =
        arrow_flight::CancelFlightInfoResult::decode(action_body(&mut raw, req).await).unwrap();
    assert_eq!(result.status, arrow_flight::CancelStatus::Cancelled as i32);
    let status = app.wait_query(&id, |q| q["state"] != "running").await;
    assert_eq!(status["state"], "cancelled", "{status}");
    // The stream ends cut, never as a complete result.
    let mut ended = None;
    while let Some(next) = stream.try_next().await.transpose() {
        if let Err(e) = next {
            ended = Some(e.to_string());
            break;
        }
    }
    assert!(ended.is_some(), "a cancelled stream must not end cleanly");
}

#[actix_web::test]
async fn parameters_past_the_request_limit_are_refused_as_they_arrive() {
    let app = TestApp::spawn_with(|c| c.limits.max_request_bytes = 64 << 10).await;
    let mut raw = raw(&app).await;
    let body = arrow_flight::sql::ActionCreatePreparedStatementRequest {
        query: "SELECT n_name FROM nation WHERE n_name = $1".to_owned(),
        transaction_id: None,
    }
    .as_any()
    .encode_to_vec();
    let req = bearer(&app.key, Action::new("CreatePreparedStatement", body));
    let answer = arrow_flight::sql::Any::decode(action_body(&mut raw, req).await).unwrap();
    let prepared: arrow_flight::sql::ActionCreatePreparedStatementResult =
        answer.unpack().unwrap().unwrap();
    // Two messages of 40 KiB each: each under gRPC's own message limit, together over the
    // request limit; the second is refused as it arrives.
    let big = "x".repeat(40 << 10);
    let row = || {
        params_row(vec![std::sync::Arc::new(StringArray::from(vec![
            big.as_str(),
        ]))])
    };
    let cmd = arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: prepared.prepared_statement_handle,
    };
    // The DoPut of `rows` for the prepared statement, as its refusal.
    let put = |rows: Vec<RecordBatch>| {
        let mut raw = raw.clone();
        let cmd = cmd.clone();
        let key = app.key.clone();
        async move {
            let data: Vec<_> = arrow_flight::encode::FlightDataEncoderBuilder::new()
                .with_flight_descriptor(Some(FlightDescriptor::new_cmd(
                    cmd.as_any().encode_to_vec(),
                )))
                .build(futures::stream::iter(rows.into_iter().map(Ok)))
                .try_collect()
                .await
                .unwrap();
            let req = bearer(&key, futures::stream::iter(data));
            raw.do_put(req).await.unwrap_err()
        }
    };
    let s = put(vec![row(), row()]).await;
    assert_eq!(code_of(&s), "request_too_large", "{s:?}");
    // Two rows within the limit: one row per execution, said so.
    let small = || params_row(vec![std::sync::Arc::new(StringArray::from(vec!["PERU"]))]);
    let s = put(vec![small(), small()]).await;
    assert_eq!(code_of(&s), "bad_request", "{s:?}");
}

#[actix_web::test]
async fn a_statement_spools_through_a_flight_action() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(|c| {
        c.spool = Some(crate::spool::file_spool(
            dir.path(),
            sluice_schemas::SpoolFormat::Arrow,
            4,
        ));
    })
    .await;
    let mut c = raw(&app).await;
    let body = action_body(
        &mut c,
        bearer(
            &app.key,
            Action::new(
                "sluice.spool",
                "SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber",
            ),
        ),
    )
    .await;
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = manifest["query_id"].as_str().unwrap().to_owned();
    let mut manifest = manifest;
    while manifest["complete"] != true {
        let body = action_body(
            &mut c,
            bearer(&app.key, Action::new("sluice.spool.list", id.clone())),
        )
        .await;
        manifest = serde_json::from_slice(&body).unwrap();
    }
    let want = app
        .arrow("SELECT * FROM lineitem ORDER BY l_orderkey, l_linenumber")
        .await;
    assert_eq!(manifest["row_count"], crate::total_rows(&want) as u64);
    // Proxy URLs are relative: the HTTP URL of the same server, with the same key.
    let mut got = Vec::new();
    for segment in manifest["segments"].as_array().unwrap() {
        let path = segment["url"].as_str().unwrap();
        assert!(
            path.starts_with(&format!("/v1/queries/{id}/spool/")),
            "{path}"
        );
        let resp = app.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        got.extend(crate::read_arrow(&resp.bytes().await.unwrap()));
    }
    assert_eq!(crate::cells(&got), crate::cells(&want));
    // Another key cannot list or acknowledge it; its owner acknowledges it over Flight.
    let other =
        crate::governance::create_key(&app, serde_json::json!({"name": "o", "role": "admin"}))
            .await;
    let s = c
        .do_action(bearer(
            other["key"].as_str().unwrap(),
            Action::new("sluice.spool.ack", id.clone()),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::NotFound);
    let acked: Vec<_> = c
        .do_action(bearer(
            &app.key,
            Action::new("sluice.spool.ack", id.clone()),
        ))
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    assert!(acked.is_empty());
    let s = c
        .do_action(bearer(
            &app.key,
            Action::new("sluice.spool.list", id.clone()),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::NotFound);
}
