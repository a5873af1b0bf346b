//! `sluice mcp-config`: the JSON an MCP client needs to use this server over Streamable HTTP
//! with an API key.

use serde_json::{Value, json};

/// Which client's config file the snippet is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum McpClient {
    /// Claude Code's `.mcp.json` (and any client reading `mcpServers` with `type: "http"`).
    ClaudeCode,
    /// Claude Desktop's `claude_desktop_config.json`, through the `mcp-remote` bridge (npx),
    /// which Claude Desktop needs for a remote server with a header.
    ClaudeDesktop,
    /// VS Code's `.vscode/mcp.json`.
    Vscode,
}

/// The snippet for `client`: `server`'s `/mcp` with `key` as the Bearer token (a placeholder
/// naming `SLUICE_API_KEY` when no key is given).
pub fn snippet(server: &str, key: Option<&str>, client: McpClient) -> Value {
    let url = format!("{}/mcp", server.trim_end_matches('/'));
    let bearer = format!("Bearer {}", key.unwrap_or("${SLUICE_API_KEY}"));
    match client {
        McpClient::ClaudeCode => json!({
            "mcpServers": {"sluice": {"type": "http", "url": url, "headers": {"Authorization": bearer}}}
        }),
        McpClient::ClaudeDesktop => json!({
            "mcpServers": {"sluice": {
                "command": "npx",
                "args": ["-y", "mcp-remote", url, "--header", format!("Authorization:{bearer}")]
            }}
        }),
        McpClient::Vscode => json!({
            "servers": {"sluice": {"type": "http", "url": url, "headers": {"Authorization": bearer}}}
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_point_at_mcp_with_the_key() {
        let s = snippet("http://127.0.0.1:8080/", Some("k1"), McpClient::ClaudeCode);
        assert_eq!(
            s["mcpServers"]["sluice"]["url"],
            "http://127.0.0.1:8080/mcp"
        );
        assert_eq!(
            s["mcpServers"]["sluice"]["headers"]["Authorization"],
            "Bearer k1"
        );
        let v = snippet("http://h:1", None, McpClient::Vscode);
        assert_eq!(
            v["servers"]["sluice"]["headers"]["Authorization"],
            "Bearer ${SLUICE_API_KEY}"
        );
        let d = snippet("http://h:1", Some("k"), McpClient::ClaudeDesktop);
        assert_eq!(d["mcpServers"]["sluice"]["args"][2], "http://h:1/mcp");
    }
}
