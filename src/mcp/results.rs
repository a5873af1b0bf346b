//! Tool results and arguments: a success as structured content and text, a failure as a result
//! a model can act on, arguments read strictly.

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::error::{ApiError, Code};

/// A tool's failure as a result the model can read and act on.
pub(super) fn tool_error(e: &ApiError) -> CallToolResult {
    let hint = match e.code {
        Code::SqlInvalid => {
            " Fix the statement; describe_table shows the exact column names and types."
        }
        Code::TableNotFound | Code::SourceNotFound => {
            " Call list_tables to find the exact fully qualified name (source.schema.table)."
        }
        Code::ReadOnly => " Only one read-only statement (SELECT, WITH, EXPLAIN) is allowed.",
        Code::PermissionDenied => " This API key may not do this; ask for a key with the grant.",
        Code::QueryTimeout => {
            " Narrow the statement (filters, LIMIT, aggregates) or pass a larger timeout_ms."
        }
        Code::ResultTooLarge => " Add LIMIT or aggregate.",
        Code::RateLimited
        | Code::TooManyQueries
        | Code::SourceUnavailable
        | Code::MemoryExhausted => " Retry later.",
        Code::DataError => " A value made the statement fail; check casts and divisions.",
        _ => "",
    };
    let mut error = json!({"code": e.code.as_str(), "message": e.message});
    if let Some(wait) = e.retry_after() {
        error["retry_after_ms"] = json!(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(id) = &e.query_id {
        error["query_id"] = json!(id);
    }
    let retry = e
        .retry_after()
        .map(|w| format!(" Retry after {} s.", w.as_secs().max(1)))
        .unwrap_or_default();
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}.{hint}{retry}",
        e.code,
        e.message.trim_end_matches('.')
    ))]);
    result.structured_content = Some(json!({ "error": error }));
    result
}

/// A successful result: the same JSON as structured content and as text (clients read one or
/// the other).
pub(super) fn tool_ok(value: Value, extra: Vec<ContentBlock>) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut content = vec![ContentBlock::text(text)];
    content.extend(extra);
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(value);
    result
}

pub(super) fn args<T: serde::de::DeserializeOwned + Default>(
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<T, McpError> {
    match arguments {
        None => Ok(T::default()),
        Some(a) => required(Some(a)),
    }
}

pub(super) fn required<T: serde::de::DeserializeOwned>(
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(arguments.unwrap_or_default()))
        .map_err(|e| McpError::invalid_params(format!("bad arguments: {e}"), None))
}
