//! The store in PostgreSQL (`[metadata] postgres_url`): a deadpool pool, migrations applied at
//! start under an advisory lock (so servers starting together do not race), audit batches
//! written with one statement that also adds to the usage counters.

use async_trait::async_trait;
use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod};
use sluice_actors::sources::postgres::{parse_replica, tls};
use sluice_planner::redact::with_causes;
use sluice_schemas::api::{Policy, UsageDay};

use super::{
    Changed, KeyChange, MetadataStore, PutMode, Registry, RegistryWrite, StoreError, StoredSource,
};
use crate::governance::keys::KeyRecord;
use crate::governance::records::AuditRecord;

mod embedded {
    refinery::embed_migrations!("src/governance/migrations");
}

/// Held while migrating: one server at a time applies them.
const MIGRATION_LOCK: i64 = 0x0051_1ce0_0001;

/// Keys, audit and usage in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    display: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("at", &self.display)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &(dyn std::error::Error + 'static)) -> StoreError {
    StoreError::Unavailable(with_causes(e))
}

impl PgStore {
    /// Connects to `url` (with `password_env`-free URLs, TLS by `sslmode` as for sources) and
    /// applies the migrations.
    ///
    /// # Errors
    /// A URL that does not parse, an unreachable server, a failed migration.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (config, tls_settings) =
            parse_replica(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let display = format!(
            "PostgreSQL at {}/{}",
            config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default(),
            config.get_dbname().unwrap_or("postgres"),
        );
        let (manager, _cancel) = tls::manager(
            config,
            &tls_settings,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        )
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = Self { pool, display };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| unavailable(&e))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| unavailable(&e))?;
        let raw: &mut tokio_postgres::Client = &mut client;
        let applied = embedded::migrations::runner()
            .set_migration_table_name("sluice_migrations")
            .run_async(raw)
            .await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        applied.map_err(|e| StoreError::Unavailable(format!("migrations failed: {e}")))?;
        unlocked.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

fn record_of(row: &tokio_postgres::Row) -> Result<KeyRecord, StoreError> {
    let text: String = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("key record: {e}")))
}

fn json(key: &KeyRecord) -> Result<String, StoreError> {
    serde_json::to_string(key).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const INSERT_AUDIT: &str = "
WITH ins AS (
    INSERT INTO sluice_audit (id, at, kind, key_id, client, user_agent, outcome, query_id,
                              operation, sql_text, sql_sha256, tables, sources, row_count,
                              byte_count, duration_ms, error_code, attempts, issuer, subject, door,
                              trace_id, change)
    SELECT u.id::uuid, u.at::timestamptz, u.kind, u.key_id, u.client, u.ua, u.outcome,
           u.query_id, u.op, u.sql_text, u.sha, u.tables::jsonb, u.sources::jsonb, u.row_count,
           u.byte_count, u.dur, u.err, u.attempts, u.issuer, u.subject, u.door, u.trace_id,
           u.change::jsonb
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::text[], $18::int8[],
                $19::text[], $20::text[], $21::text[], $22::text[], $23::text[])
         AS u(id, at, kind, key_id, client, ua, outcome, query_id, op, sql_text, sha, tables,
              sources, row_count, byte_count, dur, err, attempts, issuer, subject, door,
              trace_id, change)
    ON CONFLICT (id) DO NOTHING
    RETURNING key_id, at, kind, outcome, row_count, byte_count
)
INSERT INTO sluice_usage AS u (key_id, day, queries, row_count, byte_count, errors)
SELECT key_id, (at AT TIME ZONE 'UTC')::date, count(*), coalesce(sum(row_count), 0),
       coalesce(sum(byte_count), 0), count(*) FILTER (WHERE outcome <> 'ok')
FROM ins WHERE kind = 'query' AND key_id IS NOT NULL
GROUP BY 1, 2
ON CONFLICT (key_id, day) DO UPDATE SET
    queries = u.queries + excluded.queries,
    row_count = u.row_count + excluded.row_count,
    byte_count = u.byte_count + excluded.byte_count,
    errors = u.errors + excluded.errors";

/// Bumps the registry's version in `tx`: the registry row's lock orders every change, so
/// versions are never reused or skipped (a rolled-back change gives its number back).
async fn bump(tx: &tokio_postgres::Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_one(
        "UPDATE sluice_registry SET version = version + 1 RETURNING version",
        &[],
    )
    .await
    .map_err(|e| unavailable(&e))?
    .try_get(0)
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sluice_keys (id, record, created_at) \
                 VALUES ($1, $2::text::jsonb, $3::text::timestamptz)",
                &[&key.id, &json(key)?, &key.created_at.to_rfc3339()],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn modify_key(&self, id: &str, change: KeyChange) -> Result<Option<Changed>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| unavailable(&e))?;
        let row = tx
            .query_opt(
                "SELECT record::text FROM sluice_keys WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = record_of(&row)?;
        let secret = change(&mut record)?;
        tx.execute(
            "UPDATE sluice_keys SET record = $2::text::jsonb, updated_at = now() WHERE id = $1",
            &[&id, &json(&record)?],
        )
        .await
        .map_err(|e| unavailable(&e))?;
        tx.commit().await.map_err(|e| unavailable(&e))?;
        Ok(Some((record, secret)))
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record::text FROM sluice_keys WHERE id = $1", &[&id])
            .await
            .map_err(|e| unavailable(&e))?;
        row.as_ref().map(record_of).transpose()
    }

    async fn keys_by_id(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record::text FROM sluice_keys WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        rows.iter().map(record_of).collect()
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record::text FROM sluice_keys ORDER BY created_at DESC, id",
                &[],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        rows.iter().map(record_of).collect()
    }

    async fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record::text FROM sluice_policies ORDER BY name",
                &[],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        rows.iter()
            .map(|row| {
                let text: String = row
                    .try_get(0)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("policy record: {e}")))
            })
            .collect()
    }

    async fn put_policy(&self, policy: &Policy, replace: bool) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let record =
            serde_json::to_string(policy).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let statement = if replace {
            "INSERT INTO sluice_policies (name, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (name) DO UPDATE SET record = excluded.record, updated_at = now()"
        } else {
            "INSERT INTO sluice_policies (name, record) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (name) DO NOTHING"
        };
        let n = client
            .execute(statement, &[&policy.name, &record])
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(n == 1)
    }

    async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM sluice_policies WHERE name = $1", &[&name])
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(n == 1)
    }

    async fn registry_version(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT version FROM sluice_registry", &[])
            .await
            .map_err(|e| unavailable(&e))?;
        let v: i64 = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(u64::try_from(v).unwrap_or(0))
    }

    async fn registry(&self) -> Result<Registry, StoreError> {
        let mut client = self.client().await?;
        // One snapshot: the version and the entries it stands for.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| unavailable(&e))?;
        let version: i64 = tx
            .query_one("SELECT version FROM sluice_registry", &[])
            .await
            .map_err(|e| unavailable(&e))?
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = tx
            .query(
                "SELECT name, record::text, version, updated_by FROM sluice_sources ORDER BY name",
                &[],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        tx.commit().await.map_err(|e| unavailable(&e))?;
        let corrupt = |e: tokio_postgres::Error| StoreError::Corrupt(e.to_string());
        let mut sources = Vec::with_capacity(rows.len());
        for row in &rows {
            let text: String = row.try_get(1).map_err(corrupt)?;
            let v: i64 = row.try_get(2).map_err(corrupt)?;
            sources.push(StoredSource {
                name: row.try_get(0).map_err(corrupt)?,
                record: serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("source record: {e}")))?,
                version: u64::try_from(v).unwrap_or(0),
                updated_by: row.try_get(3).map_err(corrupt)?,
            });
        }
        Ok(Registry {
            version: u64::try_from(version).unwrap_or(0),
            sources,
        })
    }

    async fn put_source(
        &self,
        name: &str,
        record: &serde_json::Value,
        mode: PutMode,
        by: Option<&str>,
    ) -> Result<RegistryWrite, StoreError> {
        let mut client = self.client().await?;
        let text = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let tx = client.transaction().await.map_err(|e| unavailable(&e))?;
        let version = bump(&tx).await?;
        let before: Option<String> = tx
            .query_opt(
                "SELECT record::text FROM sluice_sources WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| unavailable(&e))?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match (mode, &before) {
            (PutMode::Create, Some(_)) => return Ok(RegistryWrite::Exists),
            (PutMode::Replace, None) => return Ok(RegistryWrite::Missing),
            _ => {}
        }
        tx.execute(
            "INSERT INTO sluice_sources (name, record, version, updated_by) \
             VALUES ($1, $2::text::jsonb, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET record = excluded.record, \
             version = excluded.version, updated_by = excluded.updated_by, updated_at = now()",
            &[&name, &text, &version, &by],
        )
        .await
        .map_err(|e| unavailable(&e))?;
        tx.commit().await.map_err(|e| unavailable(&e))?;
        let before = before
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("source record: {e}")))?;
        Ok(RegistryWrite::Done {
            version: u64::try_from(version).unwrap_or(0),
            before,
        })
    }

    async fn delete_source(&self, name: &str) -> Result<RegistryWrite, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| unavailable(&e))?;
        let version = bump(&tx).await?;
        let Some(row) = tx
            .query_opt(
                "DELETE FROM sluice_sources WHERE name = $1 RETURNING record::text",
                &[&name],
            )
            .await
            .map_err(|e| unavailable(&e))?
        else {
            // Rolled back: the version is not bumped for nothing.
            return Ok(RegistryWrite::Missing);
        };
        tx.commit().await.map_err(|e| unavailable(&e))?;
        let text: String = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let before = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("source record: {e}")))?;
        Ok(RegistryWrite::Done {
            version: u64::try_from(version).unwrap_or(0),
            before: Some(before),
        })
    }

    async fn write_audit(&self, batch: &[AuditRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let mut cols: [Vec<Option<String>>; 18] = Default::default();
        let mut nums: [Vec<Option<i64>>; 4] = Default::default();
        let mut err: Vec<Option<String>> = Vec::with_capacity(n);
        for c in &mut cols {
            c.reserve(n);
        }
        for r in batch {
            let q = r.query.as_ref();
            let to_json = |v: &[String]| serde_json::to_string(v).ok();
            let values = [
                Some(r.id.clone()),
                Some(r.at.to_rfc3339()),
                Some(r.kind.as_str().to_owned()),
                r.key_id.clone(),
                r.client.clone(),
                r.user_agent.clone(),
                Some(r.outcome.clone()),
                q.map(|q| q.query_id.clone()),
                q.map(|q| q.operation.clone()),
                q.map(|q| q.sql.clone()),
                q.map(|q| q.sql_sha256.clone()),
                q.and_then(|q| to_json(&q.tables)),
                q.and_then(|q| to_json(&q.sources)),
                r.issuer.clone(),
                r.subject.clone(),
                r.door.clone(),
                r.trace_id.clone(),
                r.change
                    .as_ref()
                    .and_then(|c| serde_json::to_string(c).ok()),
            ];
            for (c, v) in cols.iter_mut().zip(values) {
                c.push(v);
            }
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            nums[0].push(q.map(|q| clamp(q.rows)));
            nums[1].push(q.map(|q| clamp(q.bytes)));
            nums[2].push(q.map(|q| clamp(q.duration_ms)));
            nums[3].push(Some(clamp(r.attempts)));
            err.push(q.and_then(|q| q.error_code.clone()));
        }
        let client = self.client().await?;
        let [
            c0,
            c1,
            c2,
            c3,
            c4,
            c5,
            c6,
            c7,
            c8,
            c9,
            c10,
            c11,
            c12,
            c13,
            c14,
            c15,
            c16,
            c17,
        ] = &cols;
        let [n0, n1, n2, n3] = &nums;
        client
            .execute(
                INSERT_AUDIT,
                &[
                    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, n0, n1, n2, &err, n3,
                    c13, c14, c15, c16, c17,
                ],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn usage(&self, id: &str) -> Result<Vec<UsageDay>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT day::text, queries, row_count, byte_count, errors FROM sluice_usage \
                 WHERE key_id = $1 ORDER BY day",
                &[&id],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.iter()
            .map(|r| {
                let day: String = r
                    .try_get(0)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let get = |i| {
                    r.try_get::<_, i64>(i)
                        .map(n)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                };
                Ok(UsageDay {
                    day,
                    queries: get(1)?,
                    rows: get(2)?,
                    bytes: get(3)?,
                    errors: get(4)?,
                })
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.display.clone()
    }
}
