//! Credentials out of error texts, and error texts with their causes.

/// Strips anything that looks like a credential from an error text.
pub fn redact(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if [
                "secret",
                "key=",
                "token",
                "password",
                "sig=",
                "signature=",
                "credential=",
            ]
            .iter()
            .any(|s| lower.contains(s))
            {
                "[redacted]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `e` and each of its causes, joined with `: ` (many drivers put the useful part, such as a
/// TLS certificate complaint, only in a cause), with credentials redacted.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // Some errors repeat their cause in their own text.
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    redact(&parts.join(": "))
}
