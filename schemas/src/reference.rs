//! The configuration reference, generated from the config types' own doc comments (as vector
//! generates its component docs): `docs/config.schema.json` (JSON Schema) and
//! `docs/configuration.md` (a table per section). A test fails when the committed files differ
//! from what the code generates; `SLUICE_REGENERATE_DOCS=1 cargo test -p sluice-schemas
//! reference` writes them.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The JSON Schema of the config file, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(crate::Config);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// The reference page: every section and key with its type, default and meaning.
pub fn markdown() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(crate::Config)).unwrap_or_default();
    let page = Page {
        defs: schema["$defs"].as_object().cloned().unwrap_or_default(),
    };
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the config types' doc comments (schemas/src/config.rs); do not edit.\n\
         Regenerate with `SLUICE_REGENERATE_DOCS=1 cargo test -p sluice-schemas reference`. -->\n\n\
         One TOML file (`sluice serve --config FILE`; `sluice check --config FILE` reports every \
         error at once). Unknown keys are errors. Any string may use `${VAR}` (or \
         `${VAR:-default}`), expanded from the environment after parsing; secrets come from the \
         environment or files, never the file itself. `SLUICE_` + a key's path in upper case \
         with `__` between levels overrides it (`SLUICE_SERVER__LISTEN=127.0.0.1:9000`). The \
         same shape as JSON Schema: [config.schema.json](config.schema.json).\n",
    );
    let top = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // The file's own order; a section added later still shows, after these.
    let order = [
        "server", "auth", "metadata", "limits", "cache", "mcp", "sources",
    ];
    let mut keys: Vec<&String> = top.keys().collect();
    keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
    for key in keys {
        let prop = &top[key.as_str()];
        if key == "sources" {
            page.sources(&mut out, prop);
        } else if prop["type"] == "array" {
            page.tables(&mut out, key, prop);
        } else {
            page.section(&mut out, &format!("[{key}]"), prop);
        }
    }
    out
}

struct Page {
    defs: Map<String, Value>,
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|")
}

fn default_of(prop: &Value, required: bool) -> String {
    if required {
        return "required".to_owned();
    }
    match prop.get("default") {
        None | Some(Value::Null) => "none".to_owned(),
        Some(Value::Array(a)) if a.is_empty() => "empty".to_owned(),
        Some(Value::Object(o)) if o.is_empty() => "empty".to_owned(),
        Some(Value::String(s)) => format!("`\"{s}\"`"),
        Some(v) => format!("`{v}`"),
    }
}

impl Page {
    /// The definition `prop` refers to; an optional table (`anyOf` it and null) is the table.
    fn def<'a>(&'a self, prop: &'a Value) -> Option<&'a Value> {
        let reference = match prop.get("$ref") {
            Some(r) => r,
            None => prop
                .get("anyOf")?
                .as_array()?
                .iter()
                .find_map(|v| v.get("$ref"))?,
        };
        let name = reference.as_str()?.strip_prefix("#/$defs/")?;
        self.defs.get(name)
    }

    /// A nested table of keys, rendered as a section of its own.
    fn object<'a>(&'a self, prop: &'a Value) -> Option<&'a Value> {
        let def = self.def(prop)?;
        def.get("properties").is_some().then_some(def)
    }

    fn type_of(&self, prop: &Value) -> String {
        if let Some(def) = self.def(prop) {
            if let Some(values) = def.get("oneOf").and_then(Value::as_array)
                && values.iter().all(|v| v.get("const").is_some())
            {
                return values
                    .iter()
                    .map(|v| format!("`{}`", v["const"].as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" \\| ");
            }
            return "table (below)".to_owned();
        }
        let kind = match &prop["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        match kind.as_str() {
            "array" => format!("array of {}", self.type_of(&prop["items"])),
            "object" => format!("table of {}", self.type_of(&prop["additionalProperties"])),
            "" => "any".to_owned(),
            k => k.to_owned(),
        }
    }

    /// The table of `def`'s keys; `defaults` are the enclosing key's default, which a nested
    /// table's own keys take theirs from.
    fn rows(&self, out: &mut String, def: &Value, skip: &[&str], defaults: &Value) {
        let required: Vec<&str> = def["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        if let Some(props) = def["properties"].as_object() {
            for (key, prop) in props.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                let default = if self.object(prop).is_some() {
                    "below".to_owned()
                } else {
                    let mut prop = prop.clone();
                    if let Some(d) = defaults.get(key.as_str()) {
                        prop["default"] = d.clone();
                    }
                    default_of(&prop, required.contains(&key.as_str()))
                };
                let _ = writeln!(
                    out,
                    "| `{key}` | {} | {default} | {} |",
                    self.type_of(prop),
                    text(&prop["description"]),
                );
            }
        }
    }

    /// `[name]` and its nested tables.
    /// An array of tables (`[[policies]]`): one table of its items' keys.
    fn tables(&self, out: &mut String, name: &str, prop: &Value) {
        let Some(def) = self.object(&prop["items"]) else {
            return;
        };
        let _ = write!(out, "\n## `[[{name}]]`\n\n{}\n", text(&prop["description"]));
        self.rows(out, def, &[], &Value::Null);
        self.nested(out, name, def, &Value::Null, 3);
    }

    fn section(&self, out: &mut String, name: &str, prop: &Value) {
        let Some(def) = self.object(prop) else {
            return;
        };
        let _ = write!(out, "\n## `{name}`\n\n{}\n", text(&prop["description"]));
        self.rows(out, def, &[], &prop["default"]);
        self.nested(out, name.trim_matches(['[', ']']), def, &prop["default"], 3);
    }

    /// The tables inside `def` at `path` (`[path.key]`, and `[[path.key]]` for arrays of
    /// tables), each with its own, to any depth.
    fn nested(&self, out: &mut String, path: &str, def: &Value, defaults: &Value, depth: usize) {
        let hashes = "#".repeat(depth.min(6));
        for (key, inner_prop) in def["properties"].as_object().into_iter().flatten() {
            let (inner, heading, own_defaults) = if let Some(inner) = self.object(inner_prop) {
                let d = match &inner_prop["default"] {
                    Value::Null => &defaults[key.as_str()],
                    d => d,
                };
                (inner, format!("[{path}.{key}]"), d)
            } else if let Some(inner) = self.object(&inner_prop["items"]) {
                (inner, format!("[[{path}.{key}]]"), &Value::Null)
            } else {
                continue;
            };
            let _ = write!(
                out,
                "\n{hashes} `{heading}`\n\n{}\n",
                text(&inner_prop["description"])
            );
            self.rows(out, inner, &[], own_defaults);
            self.nested(
                out,
                &format!("{path}.{key}"),
                inner,
                own_defaults,
                depth + 1,
            );
        }
    }

    /// `[[sources]]`: the keys every kind has, once, then each kind's own.
    fn sources(&self, out: &mut String, prop: &Value) {
        let Some(kinds) = self.def(&prop["items"]).and_then(|d| d["oneOf"].as_array()) else {
            return;
        };
        let _ = write!(
            out,
            "\n## `[[sources]]`\n\n{} Each entry is tagged by `kind`.\n",
            text(&prop["description"])
        );
        let props = |k: &Value| k["properties"].as_object().cloned().unwrap_or_default();
        let mut common: Vec<String> = props(&kinds[0]).keys().cloned().collect();
        common.retain(|key| {
            key != "kind"
                && kinds
                    .iter()
                    .all(|k| props(k).get(key) == props(&kinds[0]).get(key))
        });
        out.push_str("\n### Every kind\n");
        let mut shared = kinds[0].clone();
        if let Some(p) = shared["properties"].as_object_mut() {
            p.retain(|k, _| common.contains(k));
        }
        self.rows(out, &shared, &[], &Value::Null);
        for kind in kinds {
            let name = kind["properties"]["kind"]["const"].as_str().unwrap_or("?");
            let _ = write!(
                out,
                "\n### `kind = \"{name}\"`\n\n{}\n",
                text(&kind["description"])
            );
            let mut skip: Vec<&str> = common.iter().map(String::as_str).collect();
            skip.push("kind");
            self.rows(out, kind, &skip, &Value::Null);
            for (key, p) in props(kind) {
                let item = if p["type"] == "array" {
                    &p["items"]
                } else {
                    &p
                };
                if let Some(inner) = self.object(item) {
                    let _ = write!(out, "\n#### `{key}` ({name})\n");
                    self.rows(out, inner, &[], &Value::Null);
                } else if let Some(variants) = self.def(item).and_then(|d| d["oneOf"].as_array())
                    && variants.iter().all(|v| v.get("properties").is_some())
                {
                    for v in variants {
                        let tag = v["properties"]["type"]["const"].as_str().unwrap_or("?");
                        let _ = write!(
                            out,
                            "\n#### `{key} = {{ type = \"{tag}\", ... }}` ({name})\n\n{}\n",
                            text(&v["description"])
                        );
                        self.rows(out, v, &["type"], &Value::Null);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn docs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
    }

    /// The committed reference is what the code generates (regenerate it when it is not).
    #[test]
    fn reference_is_current() {
        let files = [
            ("config.schema.json", super::json_schema()),
            ("configuration.md", super::markdown()),
        ];
        let regenerate = std::env::var("SLUICE_REGENERATE_DOCS").is_ok_and(|v| v == "1");
        for (name, generated) in files {
            let path = docs().join(name);
            if regenerate {
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "docs/{name} is not what the config types generate: run \
                 `SLUICE_REGENERATE_DOCS=1 cargo test -p sluice-schemas reference` and commit it"
            );
        }
    }

    #[test]
    fn every_key_of_every_section_is_in_the_page() {
        let page = super::markdown();
        for key in [
            "`listen`",
            "`max_sessions_per_key`",
            "`[metadata.audit]`",
            "`[limits.reader]`",
            "`redis_url`",
            "### Every kind",
            "`health_check_interval_ms`",
            "`kind = \"postgres\"`",
            "`replicas`",
            "`private_key_path`",
            "#### `tables` (parquet)",
        ] {
            assert!(page.contains(key), "{key} missing");
        }
        // A key every kind has is listed once, under "Every kind".
        assert_eq!(page.matches("| `refresh_interval_ms` |").count(), 1);
    }
}
