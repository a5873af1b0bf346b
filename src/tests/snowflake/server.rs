//! A scripted Snowflake endpoint for tests: it records every request, answers from a script
//! of canned responses first (faults, fixtures), serves result chunks, holds statements on
//! request, and forwards everything else to fakesnow when it has one behind it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use tokio::sync::Notify;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: String,
    pub body: Value,
}

impl Recorded {
    /// The statement of a query request.
    pub fn sql(&self) -> Option<&str> {
        self.body["sqlText"].as_str()
    }

    /// A query-string parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        reqwest::Url::parse(&format!("http://x/?{}", self.query))
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn json(v: &Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    upstream: Option<String>,
    records: Mutex<Vec<Recorded>>,
    /// By path prefix, answered in order before anything is forwarded.
    script: Mutex<Vec<(String, VecDeque<Canned>)>>,
    /// Chunk bodies by name, served under `/chunks/{name}`; names in `expire_once` answer
    /// 403 the first time.
    chunks: Mutex<BTreeMap<String, Vec<u8>>>,
    expire_once: Mutex<Vec<String>>,
    chunk_delay: Mutex<Duration>,
    in_flight: Mutex<(usize, usize)>,
    /// Query requests whose SQL contains this are held until released (never, unless the
    /// test says so), then answered with Snowflake's "cancelled" error.
    hold: Mutex<Option<String>>,
    released: Notify,
    event: Notify,
}

/// A running scripted endpoint.
pub struct SfServer {
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for SfServer {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_web::rt::spawn(async move { h.stop(false).await });
    }
}

impl SfServer {
    /// A server forwarding to `upstream` (fakesnow) what its script does not answer.
    pub async fn start(upstream: Option<String>) -> Self {
        let state = Arc::new(State {
            upstream,
            ..State::default()
        });
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .default_service(web::to(handle))
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { url, state, handle }
    }

    /// Answers the next request whose path starts with `prefix` with `canned`.
    pub fn script(&self, prefix: &str, canned: Canned) {
        let mut script = self.state.script.lock().unwrap();
        match script.iter_mut().find(|(p, _)| p == prefix) {
            Some((_, q)) => q.push_back(canned),
            None => script.push((prefix.to_owned(), VecDeque::from([canned]))),
        }
    }

    /// Serves `body` at `/chunks/{name}`; with `expire_once`, the first request gets 403.
    pub fn chunk(&self, name: &str, body: Vec<u8>, expire_once: bool) {
        self.state
            .chunks
            .lock()
            .unwrap()
            .insert(name.to_owned(), body);
        if expire_once {
            self.state.expire_once.lock().unwrap().push(name.to_owned());
        }
    }

    /// Each chunk request takes this long (so concurrent fetches overlap).
    pub fn chunk_delay(&self, d: Duration) {
        *self.state.chunk_delay.lock().unwrap() = d;
    }

    /// The most chunk requests that were in flight at once.
    pub fn max_chunks_in_flight(&self) -> usize {
        self.state.in_flight.lock().unwrap().1
    }

    /// Holds query requests whose SQL contains `marker`.
    pub fn hold(&self, marker: &str) {
        *self.state.hold.lock().unwrap() = Some(marker.to_owned());
    }

    /// What was received so far.
    pub fn records(&self) -> Vec<Recorded> {
        self.state.records.lock().unwrap().clone()
    }

    /// Requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Recorded> {
        self.records()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.state.records.lock().unwrap().clear();
    }

    /// Waits until `pred` holds of the records (each new request wakes it); a long wait says
    /// every 10 s what it waits for.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let mut told = 0;
        loop {
            let notified = self.state.event.notified();
            let records = self.records();
            if pred(&records) {
                return records;
            }
            if tokio::time::timeout(Duration::from_secs(10), notified)
                .await
                .is_err()
            {
                told += 10;
                eprintln!("still waiting after {told} s for {what}; received {records:#?}");
            }
        }
    }
}

fn respond(c: Canned) -> HttpResponse {
    let mut r = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(c.status).unwrap_or(actix_web::http::StatusCode::OK),
    );
    for (k, v) in c.headers {
        r.insert_header((k, v));
    }
    r.body(c.body)
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    let recorded = Recorded {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.query_string().to_owned(),
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let sql = recorded.sql().map(str::to_owned);
    state.records.lock().unwrap().push(recorded);
    state.event.notify_waiters();

    if let Some(name) = path.strip_prefix("/chunks/") {
        return chunk(&state, name).await;
    }
    let canned = {
        let mut script = state.script.lock().unwrap();
        script
            .iter_mut()
            .find(|(p, q)| path.starts_with(p.as_str()) && !q.is_empty())
            .and_then(|(_, q)| q.pop_front())
    };
    if let Some(c) = canned {
        return respond(c);
    }
    let marker = state.hold.lock().unwrap().clone();
    if let (Some(m), Some(sql)) = (marker, &sql)
        && sql.contains(&m)
    {
        state.released.notified().await;
        return respond(Canned::json(&serde_json::json!({
            "success": false, "code": "000604",
            "message": "SQL execution canceled", "data": {"sqlState": "57014"}
        })));
    }
    if path == "/queries/v1/abort-request" {
        state.released.notify_one();
    }
    let Some(upstream) = &state.upstream else {
        return HttpResponse::NotFound().finish();
    };
    let mut url = format!("{upstream}{path}");
    if !req.query_string().is_empty() {
        url.push('?');
        url.push_str(req.query_string());
    }
    let client = reqwest::Client::new();
    let mut forward = client.request(
        reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap(),
        url,
    );
    for h in ["authorization", "content-type", "accept"] {
        if let Some(v) = req.headers().get(h).and_then(|v| v.to_str().ok()) {
            forward = forward.header(h, v);
        }
    }
    match forward.body(body.to_vec()).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            respond(Canned {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: bytes.to_vec(),
            })
        }
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

async fn chunk(state: &State, name: &str) -> HttpResponse {
    {
        let mut f = state.in_flight.lock().unwrap();
        f.0 += 1;
        f.1 = f.1.max(f.0);
    }
    let delay = *state.chunk_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let expired = {
        let mut once = state.expire_once.lock().unwrap();
        let at = once.iter().position(|n| n == name);
        at.map(|i| once.remove(i)).is_some()
    };
    let body = state.chunks.lock().unwrap().get(name).cloned();
    state.in_flight.lock().unwrap().0 -= 1;
    match (expired, body) {
        (true, _) => HttpResponse::Forbidden().body("<Error><Code>AccessDenied</Code></Error>"),
        (false, Some(b)) => HttpResponse::Ok().body(b),
        (false, None) => HttpResponse::NotFound().finish(),
    }
}
