//! The `sluice` client commands: they talk to a running server over HTTP.

pub mod keys;
pub mod mcp_config;
pub mod query;
pub mod sources;

/// Server URL used when neither `--server` nor `SLUICE_URL` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Sends `builder` to the server at `base`; the JSON answer, or the server's error as
/// `status code: message`.
///
/// # Errors
/// A message for the user.
pub fn send_json(
    builder: reqwest::blocking::RequestBuilder,
    base: &str,
) -> Result<serde_json::Value, String> {
    let resp = builder
        .send()
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .map_err(|e| format!("{status}: not a JSON answer: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{} {}: {}",
            status.as_u16(),
            body["error"]["code"].as_str().unwrap_or("error"),
            body["error"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(body)
}
