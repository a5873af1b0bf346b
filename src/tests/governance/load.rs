//! Under concurrent load the audit log holds one record per request and the rate limiter lets
//! through what its bucket allows over the time the run took, no more and no less (within
//! 10%): the run's duration is measured, not bounded.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::{app_on, audit_count, create_key, fresh_db, meta_client};

const REQUESTS: usize = 2_000;
const CONNECTIONS: usize = 32;
const PER_SECOND: u32 = 100;
const BURST: u32 = 20;

#[actix_web::test]
async fn audit_rows_match_requests_and_429s_match_the_configured_rate() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "meta").await else {
        return;
    };
    let app = app_on(&meta, |_| {}).await;
    let key = create_key(
        &app,
        json!({"name": "load", "grants": [{"source": "local"}],
               "rate_limit": {"per_second": PER_SECOND, "burst": BURST},
               "max_concurrent": 64}),
    )
    .await;
    let (secret, id) = (
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("{}/v1/query", app.url);
    let started = Instant::now();
    let outcomes: Vec<(u16, Option<u64>)> = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
            async move {
                let resp = client
                    .post(url)
                    .bearer_auth(secret)
                    .json(&json!({"sql": format!("SELECT {i} AS i")}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                let _ = resp.bytes().await.unwrap();
                (status, retry)
            }
        })
        .buffer_unordered(CONNECTIONS)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let limited = outcomes.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(ok + limited, REQUESTS, "only 200 and 429: {outcomes:?}");
    // Retry-After is the wait for the next token, rounded up: one second at this rate.
    assert!(
        outcomes
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, r)| *r == Some(1)),
        "Retry-After"
    );
    // A GCRA bucket lets `burst` through at once and `per_second` after that.
    let allowed = f64::from(BURST) + f64::from(PER_SECOND) * elapsed;
    let expected_ok = allowed.min(REQUESTS as f64);
    let off = (ok as f64 - expected_ok).abs() / expected_ok;
    assert!(
        off <= 0.10,
        "{ok} let through, {expected_ok:.0} allowed in {elapsed:.2} s ({:.1}% off)",
        off * 100.0
    );

    // One query record per request, with its outcome; one auth record per request too.
    let pg = meta_client(&meta).await;
    let filter = format!("kind = 'query' AND key_id = '{id}'");
    let n = audit_count(&pg, &filter, |n| n >= REQUESTS as i64).await;
    assert_eq!(n, REQUESTS as i64);
    let by = |outcome: &str| {
        let pg = &pg;
        let filter = format!("{filter} AND outcome = '{outcome}'");
        async move { audit_count(pg, &filter, |_| true).await }
    };
    assert_eq!(by("ok").await, ok as i64);
    assert_eq!(by("rate_limited").await, limited as i64);
    let auth = audit_count(
        &pg,
        &format!("kind = 'auth' AND key_id = '{id}' AND outcome = 'ok'"),
        |n| n >= REQUESTS as i64,
    )
    .await;
    assert_eq!(auth, REQUESTS as i64);
    // Every answered query's record names what it ran.
    let distinct: i64 = pg
        .query_one(
            &format!(
                "SELECT count(DISTINCT sql_sha256) FROM sluice_audit WHERE {filter} AND outcome = 'ok'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, ok as i64);
    // Usage agrees with the log.
    let usage = app.get_json(&format!("/v1/keys/{id}/usage")).await;
    assert_eq!(usage["days"][0]["queries"], json!(REQUESTS));
    assert_eq!(usage["days"][0]["errors"], json!(limited));
}
