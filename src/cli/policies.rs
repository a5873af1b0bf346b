//! `sluice policies list|set|remove`: row filters and column masks, through a server's
//! `/v1/policies` (with an admin key or an admin's token).

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_schemas::api::{KeyRole, Policy, PolicyTargets};

use super::keys::RoleArg;

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PoliciesCommand {
    /// List every policy (the config's and the store's).
    List,
    /// Create or replace a policy in the metadata store.
    Set {
        /// Its name.
        name: String,
        /// A glob over `source.schema.table`.
        #[arg(long)]
        tables: String,
        /// A boolean SQL expression over the table's columns (`principal.attr('region')`
        /// reads the caller's attribute).
        #[arg(long)]
        row_filter: Option<String>,
        /// `column=expression`: the column is replaced by the expression; repeat for several.
        #[arg(long = "mask")]
        masks: Vec<String>,
        /// Roles it applies to; repeat for several.
        #[arg(long = "role", value_enum)]
        roles: Vec<RoleArg>,
        /// Key ids it applies to; repeat for several.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Groups it applies to; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Admins are exempt.
        #[arg(long)]
        admins_bypass: bool,
    },
    /// Delete a stored policy.
    Remove {
        /// Its name.
        name: String,
    },
}

fn policy(cmd: &PoliciesCommand) -> Result<Option<Policy>, String> {
    let PoliciesCommand::Set {
        name,
        tables,
        row_filter,
        masks,
        roles,
        keys,
        groups,
        admins_bypass,
    } = cmd
    else {
        return Ok(None);
    };
    let masks: BTreeMap<String, String> = masks
        .iter()
        .map(|m| {
            m.split_once('=')
                .map(|(c, e)| (c.trim().to_owned(), e.to_owned()))
                .ok_or_else(|| format!("mask {m:?}: expected column=expression"))
        })
        .collect::<Result<_, _>>()?;
    let targeted = !(roles.is_empty() && keys.is_empty() && groups.is_empty());
    Ok(Some(Policy {
        name: name.clone(),
        tables: tables.clone(),
        row_filter: row_filter.clone(),
        masks,
        applies_to: targeted.then(|| PolicyTargets {
            roles: roles
                .iter()
                .map(|r| match r {
                    RoleArg::Reader => KeyRole::Reader,
                    RoleArg::Admin => KeyRole::Admin,
                })
                .collect(),
            keys: keys.clone(),
            groups: groups.clone(),
        }),
        admins_bypass: *admins_bypass,
    }))
}

/// Runs `cmd` against the server; the JSON to print.
///
/// # Errors
/// A message for the user.
pub fn run(to: &super::Connection, cmd: &PoliciesCommand) -> Result<Value, String> {
    let client = to.client(Some(std::time::Duration::from_secs(30)))?;
    let base = to.base();
    let builder = match cmd {
        PoliciesCommand::List => client.get(format!("{base}/v1/policies")),
        PoliciesCommand::Set { name, .. } => client
            .put(format!("{base}/v1/policies/{name}"))
            .json(&policy(cmd)?),
        PoliciesCommand::Remove { name } => client.delete(format!("{base}/v1/policies/{name}")),
    };
    super::send_json(to.authorize(builder)?, base)
}
