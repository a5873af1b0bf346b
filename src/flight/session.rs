//! Session options (`catalog`, `schema` for bare table names) without server state: the
//! options live in a signed cookie (`arrow_flight_session_id`, the name Flight suggests) that
//! the client sends back, bound to its caller like any handle.

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message;
use sluice_schemas::api::NameDefaults;
use tonic::{Request, Status};

use super::FlightDoor;
use super::actions;
use super::caller::Caller;
use super::ticket::{Claims, Kind};
use crate::error::ApiError;
use crate::query::QueryService;

/// The cookie's name.
pub const COOKIE: &str = "arrow_flight_session_id";

/// What a session set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Catalog (source) for bare table names.
    pub catalog: Option<String>,
    /// Schema for bare table names.
    pub schema: Option<String>,
}

impl Session {
    /// The session a handle was issued in.
    pub fn of(claims: &Claims) -> Self {
        Self {
            catalog: claims.catalog.clone(),
            schema: claims.schema.clone(),
        }
    }

    /// Claims of `kind` for `who` until `exp` in this session.
    pub fn claims(&self, kind: Kind, who: &str, exp: u64) -> Claims {
        Claims {
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
            ..Claims::new(kind, who, exp)
        }
    }

    /// The name defaults a statement in this session gets (the server's where it set none).
    pub fn defaults(&self, service: &QueryService) -> Option<NameDefaults> {
        if self.catalog.is_none() && self.schema.is_none() {
            return None;
        }
        let (catalog, schema) = service.name_defaults();
        Some(NameDefaults {
            catalog: self.catalog.clone().unwrap_or(catalog),
            schema: self.schema.clone().unwrap_or(schema),
        })
    }
}

/// `SessionOptionValue` (Flight.proto; arrow-flight 59 does not generate the session messages).
#[derive(Clone, PartialEq, Message)]
pub struct SessionOptionValue {
    /// The value.
    #[prost(oneof = "OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<OptionValue>,
}

/// `SessionOptionValue.StringListValue`.
#[derive(Clone, PartialEq, Message)]
pub struct StringListValue {
    /// The strings.
    #[prost(string, repeated, tag = "1")]
    pub values: Vec<String>,
}

/// `SessionOptionValue.option_value` (named as Flight.proto names them).
#[derive(Clone, PartialEq, prost::Oneof)]
#[allow(clippy::enum_variant_names, reason = "Flight.proto's names")]
pub enum OptionValue {
    /// A string.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// An integer.
    #[prost(sfixed64, tag = "3")]
    Int64Value(i64),
    /// A float.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    /// A list of strings.
    #[prost(message, tag = "5")]
    StringListValue(StringListValue),
}

/// `SetSessionOptionsRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct SetSessionOptionsRequest {
    /// Options to set (a valueless one is unset).
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `SetSessionOptionsResult.Error`.
#[derive(Clone, PartialEq, Message)]
pub struct SetError {
    /// `ErrorValue`: 1 invalid name, 2 invalid value, 3 error.
    #[prost(int32, tag = "1")]
    pub value: i32,
}

/// `SetSessionOptionsResult`.
#[derive(Clone, PartialEq, Message)]
pub struct SetSessionOptionsResult {
    /// The options not set, and why.
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetError>,
}

/// `GetSessionOptionsResult`.
#[derive(Clone, PartialEq, Message)]
pub struct GetSessionOptionsResult {
    /// The session's options.
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `CloseSessionResult`.
#[derive(Clone, PartialEq, Message)]
pub struct CloseSessionResult {
    /// `Status`: 1 closed.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const INVALID_NAME: i32 = 1;
const INVALID_VALUE: i32 = 2;
const CLOSED: i32 = 1;

fn string(v: &str) -> SessionOptionValue {
    SessionOptionValue {
        option_value: Some(OptionValue::StringValue(v.to_owned())),
    }
}

/// The value of `name` in a `cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

impl FlightDoor {
    /// The session `request` carries (none without the cookie). A cookie that is not genuine,
    /// not the caller's or expired is refused: a client must not silently lose its catalog.
    pub(super) fn session<T>(
        &self,
        request: &Request<T>,
        caller: &Caller,
    ) -> Result<Session, Status> {
        let Some(value) = request
            .metadata()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| cookie_value(h, COOKIE))
        else {
            return Ok(Session::default());
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| ApiError::bad_request("the session cookie is not valid"))?;
        let claims = self
            .prepared
            .open(&bytes, Kind::Session, caller.id())
            .map_err(|e| ApiError::bad_request(format!("session: {e}")))?;
        Ok(Session::of(&claims))
    }

    /// The `set-cookie` value that carries `session` (renewed on each use, so a session in use
    /// does not expire; one unused for the handles' lifetime does).
    pub(super) fn cookie(&self, caller: &Caller, session: &Session) -> String {
        let claims = session.claims(Kind::Session, caller.id(), self.prepared.expiry());
        let value =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.prepared.seal(&claims));
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict")
    }

    /// `SetSessionOptions`, `GetSessionOptions`, `CloseSession`: the result's body and the
    /// cookie to set.
    pub(super) async fn session_action(
        &self,
        caller: &Caller,
        request: &Request<arrow_flight::Action>,
        kind: &str,
    ) -> Result<(Vec<u8>, Option<String>), Status> {
        match kind {
            actions::SET_SESSION_OPTIONS => {
                let ask =
                    SetSessionOptionsRequest::decode(&*request.get_ref().body).map_err(|_| {
                        ApiError::bad_request("the body is not a SetSessionOptionsRequest")
                    })?;
                // Setting starts over from a cookie that expired or is not the caller's: the
                // client could not clear it otherwise.
                let mut session = self.session(request, caller).unwrap_or_default();
                let mut errors = HashMap::new();
                for (name, value) in ask.session_options {
                    let value = match value.option_value {
                        None => Ok(None),
                        Some(OptionValue::StringValue(s)) => Ok(Some(s)),
                        Some(_) => Err(INVALID_VALUE),
                    };
                    let set = value.and_then(|v| match name.as_str() {
                        "catalog"
                            if v.as_deref().is_some_and(|c| {
                                !self.service.sees_source(&caller.principal, c)
                            }) =>
                        {
                            Err(INVALID_VALUE)
                        }
                        "catalog" => {
                            session.catalog = v;
                            Ok(())
                        }
                        "schema" => {
                            session.schema = v;
                            Ok(())
                        }
                        _ => Err(INVALID_NAME),
                    });
                    if let Err(value) = set {
                        errors.insert(name, SetError { value });
                    }
                }
                let cookie = self.cookie(caller, &session);
                Ok((
                    SetSessionOptionsResult { errors }.encode_to_vec(),
                    Some(cookie),
                ))
            }
            actions::GET_SESSION_OPTIONS => {
                let session = self.session(request, caller)?;
                let mut options = HashMap::new();
                if let Some(c) = &session.catalog {
                    options.insert("catalog".to_owned(), string(c));
                }
                if let Some(s) = &session.schema {
                    options.insert("schema".to_owned(), string(s));
                }
                Ok((
                    GetSessionOptionsResult {
                        session_options: options,
                    }
                    .encode_to_vec(),
                    None,
                ))
            }
            _ => {
                let expired = format!("{COOKIE}=; Max-Age=0");
                Ok((
                    CloseSessionResult { status: CLOSED }.encode_to_vec(),
                    Some(expired),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = format!("a=1; {COOKIE}=xyz; b=2");
        assert_eq!(cookie_value(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }
}
