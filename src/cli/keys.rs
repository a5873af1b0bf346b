//! `sluice keys create|list|revoke|rotate|usage`: through a server's `/v1/keys` (with an admin
//! key), or on the metadata store itself (`--config`: the PostgreSQL or the data folder the
//! config names; no server needed, e.g. for the first admin key of a new deployment).

use std::sync::Arc;

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sluice_schemas::api::{
    CreateKeyRequest, CreatedKey, Grant, KeyList, KeyRole, KeyUsage, Operation, RateLimit,
};

use crate::governance::keys::KeyRecord;
use crate::governance::store::MetadataStore;

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed this once.
    Create {
        /// Human name.
        #[arg(long)]
        name: String,
        /// `reader` (default) or `admin`.
        #[arg(long, value_enum, default_value_t = RoleArg::Reader)]
        role: RoleArg,
        /// A grant, `source.schema.table` with `*` and `?` globs (missing parts are `*`);
        /// repeat for several.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Operations (default query, explain, list).
        #[arg(long, value_delimiter = ',', value_enum)]
        operations: Vec<OperationArg>,
        /// Requests per second (overrides the role's).
        #[arg(long)]
        rate: Option<u32>,
        /// Burst (with --rate).
        #[arg(long)]
        burst: Option<u32>,
        /// Concurrent queries (overrides the role's).
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Expiry, RFC 3339.
        #[arg(long)]
        expires_at: Option<String>,
        /// An attribute policies read with `principal.attr('name')`, `name=value`; repeat for
        /// several.
        #[arg(long = "attr")]
        attributes: Vec<String>,
    },
    /// List keys (never secrets).
    List,
    /// Revoke a key.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Give a key a new secret; the old one works for the rotation grace.
    Rotate {
        /// Key id.
        id: String,
    },
    /// A key's usage per day.
    Usage {
        /// Key id.
        id: String,
    },
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Queries within its grants.
    Reader,
    /// Everything.
    Admin,
}

/// `--operations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OperationArg {
    /// Run queries.
    Query,
    /// Explain queries.
    Explain,
    /// List sources and tables.
    List,
}

/// Where the keys are.
#[derive(Debug, Clone)]
pub enum Target {
    /// A server's `/v1/keys`.
    Server(super::Connection),
    /// The store a config names.
    Config(std::path::PathBuf),
}

/// `source.schema.table` globs as a grant.
pub fn parse_grant(text: &str) -> Result<Grant, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "grant {text:?}: expected source[.schema[.table]], e.g. pg.public.orders*"
        ));
    }
    let part = |i: usize| parts.get(i).map_or("*", |p| p).to_owned();
    Ok(Grant {
        source: part(0),
        schema: part(1),
        table: part(2),
    })
}

fn request(cmd: &KeysCommand) -> Result<Option<CreateKeyRequest>, String> {
    let KeysCommand::Create {
        name,
        role,
        grants,
        operations,
        rate,
        burst,
        max_concurrent,
        expires_at,
        attributes,
    } = cmd
    else {
        return Ok(None);
    };
    let attributes = attributes
        .iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("attribute {a:?}: expected name=value"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(CreateKeyRequest {
        name: name.clone(),
        role: Some(match role {
            RoleArg::Reader => KeyRole::Reader,
            RoleArg::Admin => KeyRole::Admin,
        }),
        grants: grants
            .iter()
            .map(|g| parse_grant(g))
            .collect::<Result<_, _>>()?,
        operations: (!operations.is_empty()).then(|| {
            operations
                .iter()
                .map(|o| match o {
                    OperationArg::Query => Operation::Query,
                    OperationArg::Explain => Operation::Explain,
                    OperationArg::List => Operation::List,
                })
                .collect()
        }),
        rate_limit: rate.map(|per_second| RateLimit {
            per_second,
            burst: *burst,
        }),
        max_concurrent: *max_concurrent,
        expires_at: expires_at.clone(),
        attributes,
    }))
}

/// Runs `cmd` against `target`; the JSON to print.
///
/// # Errors
/// A message for the user.
pub fn run(target: &Target, cmd: &KeysCommand) -> Result<Value, String> {
    match target {
        Target::Server(to) => through_server(to, cmd),
        Target::Config(path) => on_store(path, cmd),
    }
}

fn through_server(to: &super::Connection, cmd: &KeysCommand) -> Result<Value, String> {
    let client = to.client(Some(std::time::Duration::from_secs(30)))?;
    let base = to.base();
    let builder = match cmd {
        KeysCommand::Create { .. } => client.post(format!("{base}/v1/keys")).json(&request(cmd)?),
        KeysCommand::List => client.get(format!("{base}/v1/keys")),
        KeysCommand::Revoke { id } => client.delete(format!("{base}/v1/keys/{id}")),
        KeysCommand::Rotate { id } => client.post(format!("{base}/v1/keys/{id}/rotate")),
        KeysCommand::Usage { id } => client.get(format!("{base}/v1/keys/{id}/usage")),
    };
    super::send_json(to.authorize(builder)?, base)
}

fn on_store(path: &std::path::Path, cmd: &KeysCommand) -> Result<Value, String> {
    let config = sluice_schemas::loader::load_file(path).map_err(|errors| {
        errors
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let store = crate::governance::open_store(&config)
            .await
            .map_err(|e| e.to_string())?;
        let grace = chrono::Duration::milliseconds(
            i64::try_from(config.auth.rotation_grace_ms).unwrap_or(i64::MAX / 2),
        );
        store_command(store, grace, cmd).await
    })
}

async fn existing(store: &Arc<dyn MetadataStore>, id: &str) -> Result<KeyRecord, String> {
    store
        .key(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no API key {id}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

async fn store_command(
    store: Arc<dyn MetadataStore>,
    grace: chrono::Duration,
    cmd: &KeysCommand,
) -> Result<Value, String> {
    let err = |e: crate::governance::store::StoreError| e.to_string();
    match cmd {
        KeysCommand::Create { .. } => {
            let req = request(cmd)?.ok_or("not a create")?;
            let new = crate::governance::keys::NewKey::from_request(req)?;
            let (record, secret) = KeyRecord::mint(new, Utc::now()).map_err(|e| e.to_string())?;
            store.insert_key(&record).await.map_err(err)?;
            to_json(&CreatedKey {
                info: record.info(),
                key: secret.expose_secret().to_owned(),
            })
        }
        KeysCommand::List => {
            let keys = store.keys().await.map_err(err)?;
            to_json(&KeyList {
                keys: keys.iter().map(KeyRecord::info).collect(),
            })
        }
        KeysCommand::Revoke { id } => {
            let (record, _) = store
                .modify_key(id, Box::new(crate::governance::revoke_now))
                .await
                .map_err(err)?
                .ok_or_else(|| format!("no API key {id}"))?;
            to_json(&record.info())
        }
        KeysCommand::Rotate { id } => {
            let (record, secret) = store
                .modify_key(id, crate::governance::rotate_now(grace))
                .await
                .map_err(err)?
                .ok_or_else(|| format!("no API key {id}"))?;
            let secret = secret.ok_or("rotation made no secret")?;
            to_json(&CreatedKey {
                info: record.info(),
                key: secret.expose_secret().to_owned(),
            })
        }
        KeysCommand::Usage { id } => {
            existing(&store, id).await?;
            to_json(&KeyUsage {
                id: id.clone(),
                days: store.usage(id).await.map_err(err)?,
            })
        }
    }
}

/// Prints `v` as indented JSON.
pub fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| json!(null).to_string())
    );
}
