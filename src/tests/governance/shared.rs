//! Several servers on one store: a key made on one works on the other at once, a revocation
//! through one is refused by the other after its key sync, everything survives a restart of both; and
//! the audit policy when the store goes away mid-load.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_schemas::AuditPolicy;

use super::{Server, app_on, create_key, fresh_db, meta_client, query_as, server_config};
use crate::postgres::spare_turn;

async fn status(c: &reqwest::Client, url: &str, key: &str) -> u16 {
    c.post(format!("{url}/v1/query"))
        .bearer_auth(key)
        .json(&json!({"sql": "SELECT count(*) FROM region"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An admin call's JSON answer.
async fn admin_json(
    c: &reqwest::Client,
    url: &str,
    admin: &str,
    method: reqwest::Method,
    path: &str,
) -> Value {
    c.request(method, format!("{url}{path}"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[actix_web::test]
async fn two_servers_share_keys_revocations_and_state_across_restarts() {
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "meta").await else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = server_config(&meta, "[auth]\nkey_sync_ms = 1000\n");
    let a = Server::start(&config, &dir).await;
    let admin = a.admin_key.clone().unwrap();
    // The store is no longer empty: the second server mints nothing, and knows the admin key.
    let b = Server::start(&config, &dir).await;
    assert_eq!(b.admin_key, None);
    let c = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let make = |name: &str| {
        let c = c.clone();
        let (url, admin, name) = (a.url.clone(), admin.clone(), name.to_owned());
        async move {
            c.post(format!("{url}/v1/keys"))
                .bearer_auth(admin)
                .json(&json!({"name": name, "grants": [{"source": "local"}]}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let doomed = make("doomed").await;
    let keeper = make("keeper").await;
    let (dkey, kkey) = (
        doomed["key"].as_str().unwrap().to_owned(),
        keeper["key"].as_str().unwrap().to_owned(),
    );
    // Made on A, works on B at once.
    assert_eq!(status(&c, &b.url, &dkey).await, 200);
    assert_eq!(status(&c, &b.url, &admin).await, 200);

    let revoked = c
        .delete(format!(
            "{}/v1/keys/{}",
            a.url,
            doomed["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // A refuses it at once; B once its key sync has run (how soon is a benchmark's figure).
    assert_eq!(status(&c, &a.url, &dkey).await, 401);
    let mut waiting = crate::Waiting::new("B to refuse the revoked key");
    loop {
        let got = status(&c, &b.url, &dkey).await;
        if got == 401 {
            break;
        }
        waiting.pause(got).await;
    }
    assert_eq!(status(&c, &b.url, &kkey).await, 200);

    // Rotated through A: the new secret works on B at once, the old one through its grace.
    let kid = keeper["id"].as_str().unwrap();
    let rotated = admin_json(
        &c,
        &a.url,
        &admin,
        reqwest::Method::POST,
        &format!("/v1/keys/{kid}/rotate"),
    )
    .await;
    let new_key = rotated["key"].as_str().unwrap();
    assert_eq!(status(&c, &b.url, new_key).await, 200);
    assert_eq!(status(&c, &b.url, &kkey).await, 200);

    // Both stop; both start again on the same store.
    a.stop().await;
    b.stop().await;
    let a = Server::start(&config, &dir).await;
    let b = Server::start(&config, &dir).await;
    assert_eq!(
        (a.admin_key.as_deref(), b.admin_key.as_deref()),
        (None, None)
    );
    for s in [&a, &b] {
        assert_eq!(status(&c, &s.url, &dkey).await, 401);
        assert_eq!(status(&c, &s.url, &kkey).await, 200);
        assert_eq!(status(&c, &s.url, &admin).await, 200);
    }
    let usage = admin_json(
        &c,
        &b.url,
        &admin,
        reqwest::Method::GET,
        &format!("/v1/keys/{kid}/usage"),
    )
    .await;
    // One query before the restart, two after (on A's and B's count alike: usage is shared).
    assert!(
        usage["days"][0]["queries"].as_u64().unwrap() >= 2,
        "{usage}"
    );
    let keys = admin_json(&c, &b.url, &admin, reqwest::Method::GET, "/v1/keys").await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3);
}

/// Sends queries with `key` until one is refused with `503 metadata_unavailable`; returns the
/// ids of those answered before it.
async fn until_refused(app: &crate::TestApp, key: &str, limit: usize) -> (Vec<String>, bool) {
    let mut answered = Vec::new();
    for _ in 0..limit {
        let r = query_as(app, key, "SELECT count(*) FROM region").await;
        let id = r.headers()["x-query-id"].to_str().unwrap().to_owned();
        match r.status().as_u16() {
            200 => answered.push(id),
            503 => {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "metadata_unavailable", "{v}");
                return (answered, true);
            }
            s => panic!("unexpected {s}"),
        }
    }
    (answered, false)
}

#[actix_web::test]
async fn the_audit_policy_holds_while_the_store_is_down_and_nothing_is_lost() {
    let turn = spare_turn().await;
    let Some(meta) = fresh_db("SLUICE_TEST_PG_SPARE_URL", "meta").await else {
        return;
    };
    let reject = app_on(&meta, |c| {
        c.metadata.audit.policy = AuditPolicy::Reject;
    })
    .await;
    let buffer = app_on(&meta, |c| {
        c.metadata.audit.policy = AuditPolicy::Buffer;
        c.metadata.audit.buffer_records = 40;
    })
    .await;
    let grant = json!({"name": "q", "grants": [{"source": "local"}]});
    let rkey = create_key(&reject, grant.clone()).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The store was empty for the first server only: keys are made there, used on both.
    let bkey = create_key(&reject, grant).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut answered = Vec::new();
    for (app, key) in [(&reject, &rkey), (&buffer, &bkey)] {
        let (ids, refused) = until_refused(app, key, 5).await;
        assert!(!refused);
        answered.extend(ids);
    }

    let spare = turn.stop().await;
    // reject: the first record that cannot be written stops new queries.
    let (ids, refused) = until_refused(&reject, &rkey, 200).await;
    assert!(refused, "reject never refused");
    assert!(
        ids.len() <= 5,
        "reject answered {} queries unaudited",
        ids.len()
    );
    answered.extend(ids);
    // buffer: answers until its 40 records are held, then refuses. An answer holds an auth and
    // a query record until the buffer is half full; authentication records never take the
    // second half (they are then only in the log), so the last 20 places are queries': about
    // 10 + 20 answers.
    let (ids, refused) = until_refused(&buffer, &bkey, 200).await;
    assert!(refused, "buffer never refused");
    assert!(
        (27..=31).contains(&ids.len()),
        "buffer answered {}",
        ids.len()
    );
    answered.extend(ids);
    let held = buffer.metrics_text().await;
    assert!(
        held.contains("sluice_audit_buffered"),
        "the gauge is exported"
    );

    drop(spare); // starts it again
    for (app, key) in [(&reject, &rkey), (&buffer, &bkey)] {
        let mut waiting = crate::Waiting::new("queries to be answered again");
        loop {
            let r = query_as(app, key, "SELECT count(*) FROM region").await;
            if r.status() == 200 {
                answered.push(r.headers()["x-query-id"].to_str().unwrap().to_owned());
                break;
            }
            waiting.pause(r.status()).await;
        }
    }
    // Nothing lost: every answered query is on the record.
    let pg = meta_client(&meta).await;
    let mut waiting = crate::Waiting::new("every answered query in the audit log");
    loop {
        let missing: Vec<&String> = {
            let mut m = Vec::new();
            for id in &answered {
                let n: i64 = pg
                    .query_one(
                        "SELECT count(*) FROM sluice_audit WHERE query_id = $1",
                        &[id],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if n != 1 {
                    m.push(id);
                }
            }
            m
        };
        if missing.is_empty() {
            break;
        }
        waiting.pause(format!("{missing:?}")).await;
    }
}
