//! Who calls, from where, and how refusals travel back: credentials from gRPC metadata
//! (`authorization: Bearer <key or token>`, or `Basic` with the key as password), the peer and
//! its certificate from the connection, and [`ApiError`]s as gRPC statuses carrying Sluice's
//! code and query id (`x-sluice-error-code`, `x-sluice-query-id`).

use base64::Engine as _;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Status};

use super::listener::Peer;
use crate::error::{ApiError, Code};
use crate::governance::{Client, Door, Principal};

/// Metadata key of Sluice's error code on a refusal.
pub const ERROR_CODE: &str = "x-sluice-error-code";
/// Metadata key of the query id on a refusal.
pub const QUERY_ID: &str = "x-sluice-query-id";

/// An authenticated caller of one RPC.
#[derive(Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub client: Client,
}

impl Caller {
    /// The id tickets and handles are bound to: the key's (or the subject's `sub_`) id.
    pub fn id(&self) -> &str {
        self.principal.key_id().unwrap_or("anonymous")
    }
}

/// Standard base64, padded or not.
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The secret an RPC presents: a bearer, the password of HTTP basic auth (the user name is
/// informational), or `x-api-key`. A malformed `authorization` presents none.
pub fn presented(metadata: &MetadataMap) -> Option<String> {
    let Some(value) = metadata.get("authorization") else {
        // As on HTTP: `x-api-key: <key>`.
        return metadata
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned());
    };
    let value = value.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Go's clients send it unpadded (`RawStdEncoding`); others padded.
        let decoded = BASIC.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}

/// Where an RPC came from: the peer address and client certificate the listener recorded,
/// and the gRPC user agent.
pub fn client<T>(request: &Request<T>) -> Client {
    let peer = request.extensions().get::<Peer>();
    Client {
        door: Door::Flight,
        addr: peer.map(|p| p.addr.ip().to_string()),
        user_agent: request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        certificate: peer.and_then(|p| p.certificate.clone()),
    }
}

/// The gRPC code of a Sluice error code: clients decide retries and fallbacks on it.
pub fn grpc_code(code: Code) -> tonic::Code {
    match code {
        Code::Unauthenticated => tonic::Code::Unauthenticated,
        Code::PermissionDenied | Code::InsufficientScope => tonic::Code::PermissionDenied,
        Code::TableNotFound | Code::SourceNotFound | Code::QueryNotFound | Code::NotFound => {
            tonic::Code::NotFound
        }
        Code::QueryCancelled => tonic::Code::Cancelled,
        Code::PolicyExists
        | Code::PolicyFromConfig
        | Code::SourceExists
        | Code::SourceFromConfig => tonic::Code::AlreadyExists,
        Code::NoConfigFile | Code::ConfigInvalid => tonic::Code::FailedPrecondition,
        Code::ResultTooLarge | Code::RateLimited | Code::TooManyQueries | Code::TooManySessions => {
            tonic::Code::ResourceExhausted
        }
        Code::RequestTooLarge
        | Code::BadRequest
        | Code::SqlInvalid
        | Code::ReadOnly
        | Code::MethodNotAllowed
        | Code::NotAcceptable
        | Code::UnsupportedMediaType
        | Code::DataError => tonic::Code::InvalidArgument,
        Code::Unsupported => tonic::Code::Unimplemented,
        Code::UpstreamError
        | Code::SourceUnavailable
        | Code::ShuttingDown
        | Code::MetadataUnavailable
        | Code::SpoolUnavailable
        | Code::MemoryExhausted => tonic::Code::Unavailable,
        Code::QueryTimeout => tonic::Code::DeadlineExceeded,
        Code::Internal => tonic::Code::Internal,
    }
}

/// `e` as a gRPC status: its client-safe message, Sluice's code and the query id in the
/// metadata (and when to retry, for refusals for capacity).
pub fn status(e: &ApiError) -> Status {
    let mut s = Status::new(grpc_code(e.code), e.message.clone());
    let md = s.metadata_mut();
    md.insert(ERROR_CODE, MetadataValue::from_static(e.code.as_str()));
    if let Some(id) = e.query_id.as_deref().and_then(|id| id.parse().ok()) {
        md.insert(QUERY_ID, id);
    }
    if let Some(after) = e.retry_after()
        && let Ok(v) = after.as_secs().max(1).to_string().parse()
    {
        md.insert("retry-after", v);
    }
    s
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        status(&e)
    }
}
