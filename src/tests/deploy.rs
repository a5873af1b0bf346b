//! What `deploy/` ships, checked by the ecosystem's own tools (promtool, amtool, the Kubernetes
//! schemas), and the local multi-replica run: three `sluice serve` processes behind nginx on one
//! PostgreSQL metadata store and one Redis.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::governance::fresh_db;
use super::postgres::service_env;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args` from the repository root; panics with its output unless it exits 0.
fn succeeds(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{said}");
    said
}

#[test]
fn the_shipped_rules_routes_and_manifests_pass_their_own_tools() {
    let (Some(promtool), Some(amtool), Some(python)) = (
        crate::needs("SLUICE_TEST_PROMTOOL", "promtool (scripts/services.sh)"),
        crate::needs("SLUICE_TEST_AMTOOL", "amtool (scripts/services.sh)"),
        crate::needs("SLUICE_TEST_PYTHON", "the test venv (scripts/services.sh)"),
    ) else {
        return;
    };
    // The rules: valid, lint-clean, and each alert fires on its series and stays quiet on a
    // healthy one (alerts.test.yaml).
    let said = succeeds(
        &promtool,
        &[
            "check",
            "rules",
            "--lint=all",
            "--lint-fatal",
            "deploy/prometheus/alerts.yaml",
        ],
        &[],
    );
    assert!(said.contains("SUCCESS"), "{said}");
    let said = succeeds(
        &promtool,
        &["test", "rules", "deploy/prometheus/alerts.test.yaml"],
        &[],
    );
    assert!(said.contains("SUCCESS"), "{said}");
    succeeds(
        &promtool,
        &[
            "check",
            "config",
            "deploy/prometheus/prometheus.example.yml",
        ],
        &[],
    );
    // The committed rules are the generator's output with its documented defaults.
    succeeds(&python, &["deploy/prometheus/generate.py", "--check"], &[]);
    // Alertmanager: the config loads, and each case of routes.test reaches its receiver (a
    // page PagerDuty, a warning Slack).
    succeeds(
        &amtool,
        &[
            "check-config",
            "deploy/alertmanager/alertmanager.example.yml",
        ],
        &[],
    );
    let said = succeeds(
        "bash",
        &["deploy/alertmanager/check-routes.sh"],
        &[("AMTOOL", amtool.as_str())],
    );
    assert!(said.contains("route as expected"), "{said}");
    let page = succeeds(
        &amtool,
        &[
            "config",
            "routes",
            "test",
            "--config.file=deploy/alertmanager/alertmanager.example.yml",
            "severity=page",
            "alertname=SluiceDown",
        ],
        &[],
    );
    assert!(page.contains("pagerduty"), "{page}");
    let warning = succeeds(
        &amtool,
        &[
            "config",
            "routes",
            "test",
            "--config.file=deploy/alertmanager/alertmanager.example.yml",
            "severity=warning",
            "alertname=SluiceCircuitOpen",
        ],
        &[],
    );
    assert!(
        warning.contains("slack") && !warning.contains("pagerduty"),
        "{warning}"
    );
    // The Kubernetes manifests and the container build, offline: schemas and consistency
    // with the config they carry (probes, ports, grace period).
    let said = succeeds(&python, &["deploy/kubernetes/check.py"], &[]);
    assert!(said.contains(" 0 failed"), "{said}");
}

/// Reads `export NAME=value` lines.
fn exports(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['"', '\'']).to_owned()))
        .collect()
}

/// What one query through the balancer came to.
#[derive(Debug)]
enum Outcome {
    /// 200 and the whole answer.
    Answered,
    /// The answer began (status and headers) and was cut: the server died while streaming,
    /// which no balancer can retry.
    CutWhileStreaming,
    /// Refused or failed before any answer: what the balancer must never let through.
    Lost(String),
}

async fn one_query(http: &reqwest::Client, url: &str, key: &str) -> Outcome {
    let resp = match http
        .post(format!("{url}/v1/query"))
        .bearer_auth(key)
        .json(&json!({"sql": "SELECT count(*) AS n FROM nation"}))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Lost(format!("no answer: {e}")),
    };
    let status = resp.status();
    match resp.text().await {
        Ok(body) if status == 200 => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if v["rows"] == json!([[25]]) {
                Outcome::Answered
            } else {
                Outcome::CutWhileStreaming
            }
        }
        Ok(body) => Outcome::Lost(format!("{status}: {body}")),
        Err(_) if status == 200 => Outcome::CutWhileStreaming,
        Err(e) => Outcome::Lost(format!("{status}, then {e}")),
    }
}

#[actix_web::test]
async fn three_servers_behind_nginx_lose_no_query_and_share_revocations() {
    let Some(nginx) = crate::needs("SLUICE_TEST_NGINX", "nginx (scripts/services.sh)") else {
        return;
    };
    let Some(meta) = fresh_db("SLUICE_TEST_PG_URL", "sluice_cluster").await else {
        return;
    };
    let Some(redis) = service_env("SLUICE_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cluster");
    let run_str = run.to_str().unwrap().to_owned();
    let env = [
        ("SLUICE_METADATA_URL", meta.as_str()),
        ("SLUICE_REDIS_URL", redis.as_str()),
        ("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice")),
        ("NGINX", nginx.as_str()),
        ("SLUICE_CLUSTER_DIR", run_str.as_str()),
    ];
    let up = {
        let env = env.map(|(k, v)| (k.to_owned(), v.to_owned()));
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            succeeds("bash", &["deploy/local/cluster.sh", "up"], &env)
        })
    };
    // Stops the cluster whatever happens below.
    struct Down(Vec<(String, String)>);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = std::process::Command::new("bash")
                .args(["deploy/local/cluster.sh", "down"])
                .envs(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .current_dir(root())
                .output();
        }
    }
    let _down = Down(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    up.await.unwrap();
    let vars = exports(&run.join("env"));
    let balancer = vars["CLUSTER_URL"].clone();
    let admin = vars["SLUICE_ADMIN_KEY"].clone();
    let http = reqwest::Client::new();
    assert!(matches!(
        one_query(&http, &balancer, &admin).await,
        Outcome::Answered
    ));

    // Under load from 8 clients, server 2 is killed (SIGKILL: no drain).
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, answered, http, url, key) = (
            Arc::clone(&stop),
            Arc::clone(&answered),
            http.clone(),
            balancer.clone(),
            admin.clone(),
        );
        clients.push(actix_web::rt::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let o = one_query(&http, &url, &key).await;
                if matches!(o, Outcome::Answered) {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                seen.push(o);
            }
            seen
        }));
    }
    let wait_for = |n: usize| {
        let answered = Arc::clone(&answered);
        async move {
            let mut waiting = crate::Waiting::new(format!("{n} answered queries"));
            while answered.load(Ordering::Relaxed) < n {
                waiting.pause(answered.load(Ordering::Relaxed)).await;
            }
        }
    };
    wait_for(50).await;
    let victim = vars["SLUICE_PID_2"].clone();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim])
        .status()
        .unwrap();
    assert!(killed.success());
    let after_kill = answered.load(Ordering::Relaxed);
    wait_for(after_kill + 100).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.extend(c.await.unwrap());
    }
    let lost: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Lost(why) => Some(why),
            _ => None,
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} queries were lost: {lost:?}",
        lost.len(),
        outcomes.len()
    );

    // A key revoked through one server is refused through the balancer (by the servers
    // left) within the key sync interval.
    let created: Value = http
        .post(format!("{balancer}/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "cluster-reader", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    let tables = |key: String| {
        let http = http.clone();
        let url = format!("{balancer}/v1/tables");
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(tables(secret.clone()).await, 200);
    let resp = http
        .delete(format!("{}/v1/keys/{id}", vars["SLUICE_URL_1"]))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut waiting = crate::Waiting::new("the revoked key refused through the balancer");
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 6 {
        let status = tables(secret.clone()).await;
        if status == 401 {
            refused_in_a_row += 1;
        } else {
            refused_in_a_row = 0;
            waiting.pause(status).await;
        }
    }
}
