//! Reading a verified token's claims: dot paths, scope lists, and the rules from claims to a
//! role and grants.

use serde_json::Value;
use sluice_schemas::AccessRule;

/// The value at a dot path (`ext.user`): a top-level claim named with the dots wins over the
/// path (`"https://example.com/roles"` style names have dots of their own).
pub(in crate::governance) fn at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

/// A claim as text: a string, or a number (some providers' subjects are numeric).
pub(in crate::governance) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The values a claim holds: a string (space-separated for `scope` and `scp`), or an array
/// of strings.
pub(in crate::governance) fn values<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    let spaced = matches!(name, "scope" | "scp");
    match v {
        Value::String(s) if spaced => s.split_ascii_whitespace().collect(),
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The scopes a token carries (`scope`, or Entra's `scp`).
pub(in crate::governance) fn scopes(claims: &Value) -> Vec<String> {
    ["scope", "scp"]
        .iter()
        .filter_map(|name| claims.get(*name).map(|v| values(v, name)))
        .flatten()
        .map(str::to_owned)
        .collect()
}

/// Whether `rule` admits a token from `issuer` with `claims`.
pub(in crate::governance) fn matches(rule: &AccessRule, issuer: &str, claims: &Value) -> bool {
    if rule.issuer.as_deref().is_some_and(|i| i != issuer) {
        return false;
    }
    let last = rule.claim.rsplit('.').next().unwrap_or(&rule.claim);
    at(claims, &rule.claim).is_some_and(|v| values(v, last).contains(&rule.value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(claim: &str, value: &str) -> AccessRule {
        AccessRule {
            issuer: None,
            claim: claim.into(),
            value: value.into(),
            role: sluice_schemas::api::KeyRole::Reader,
            grants: Vec::new(),
            operations: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn claims_by_path_list_and_scope() {
        let claims = json!({
            "sub": "svc-1",
            "roles": ["Sluice.Analyst", "Other"],
            "groups": "analysts",
            "scope": "openid sql.read",
            "scp": "sql.write",
            "ext": {"team": {"name": "data"}},
            "https://example.com/roles": ["admin"],
            "oid": 42
        });
        assert!(matches(&rule("roles", "Sluice.Analyst"), "i", &claims));
        assert!(!matches(&rule("roles", "Sluice"), "i", &claims));
        assert!(matches(&rule("groups", "analysts"), "i", &claims));
        assert!(matches(&rule("scope", "sql.read"), "i", &claims));
        assert!(!matches(&rule("scope", "openid sql.read"), "i", &claims));
        assert!(matches(&rule("ext.team.name", "data"), "i", &claims));
        assert!(matches(
            &rule("https://example.com/roles", "admin"),
            "i",
            &claims
        ));
        assert!(!matches(&rule("missing.path", "x"), "i", &claims));
        let mut only_other = rule("roles", "Other");
        only_other.issuer = Some("j".into());
        assert!(!matches(&only_other, "i", &claims));
        assert_eq!(scopes(&claims), ["openid", "sql.read", "sql.write"]);
        assert_eq!(at(&claims, "oid").and_then(text).as_deref(), Some("42"));
        assert_eq!(at(&claims, "ext").and_then(text), None);
    }
}
