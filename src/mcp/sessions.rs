//! Handshake-era MCP sessions, each bound to the key that opened it: bounded per key and
//! server-wide, closed after their idle timeout, and never lent to anyone else. A session id
//! this registry does not know (expired, closed, from before a restart) is refused as not
//! found, whatever the SDK still holds, so a session can never outlive the record of its
//! owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ApiError, Code};

/// Who opened a session: a key id, or `None` with authentication off.
pub type Owner = Option<String>;

#[derive(Debug)]
struct Session {
    owner: Owner,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    /// Sessions open or being opened, per owner.
    per_owner: HashMap<Owner, usize>,
    /// Sessions open or being opened.
    total: usize,
}

impl Inner {
    fn release(&mut self, owner: &Owner) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_owner.remove(owner);
            }
        }
    }
}

/// The sessions of one server.
#[derive(Debug)]
pub struct Sessions {
    inner: Mutex<Inner>,
    per_key: usize,
    max: usize,
    idle: Duration,
}

/// A session slot taken before the handshake runs; given back if it never opens a session.
pub struct Reservation {
    sessions: Arc<Sessions>,
    owner: Owner,
    kept: bool,
}

impl Reservation {
    /// The handshake opened session `id`: it is the owner's from now on.
    pub fn open(mut self, id: String) {
        self.kept = true;
        let owner = self.owner.clone();
        self.sessions.lock().sessions.insert(
            id,
            Session {
                owner,
                last_used: Instant::now(),
            },
        );
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.sessions.lock().release(&self.owner);
        }
    }
}

impl Sessions {
    /// At most `per_key` sessions per key and `max` in all, each closed after `idle` unused.
    pub fn new(per_key: usize, max: usize, idle: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            per_key: per_key.max(1),
            max: max.max(1),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new session of `owner`. The per-key cap applies to keys; with
    /// authentication off every client is the same (anonymous) owner, bounded by the server's
    /// cap only.
    ///
    /// # Errors
    /// `too_many_sessions` past the key's cap or the server's (with `Retry-After`).
    pub fn reserve(self: &Arc<Self>, owner: &Owner) -> Result<Reservation, ApiError> {
        let mut inner = self.lock();
        let mine = inner.per_owner.get(owner).copied().unwrap_or(0);
        if owner.is_some() && mine >= self.per_key {
            metrics::counter!(crate::metrics::MCP_SESSIONS_REFUSED_TOTAL, "reason" => "key")
                .increment(1);
            return Err(ApiError::new(
                Code::TooManySessions,
                format!(
                    "this API key has {mine} open MCP sessions, its limit; end one (DELETE /mcp) \
                     or let it expire"
                ),
            )
            .with_retry_after(Duration::from_secs(1)));
        }
        if inner.total >= self.max {
            metrics::counter!(crate::metrics::MCP_SESSIONS_REFUSED_TOTAL, "reason" => "server")
                .increment(1);
            return Err(ApiError::new(
                Code::TooManySessions,
                format!(
                    "the server holds {} MCP sessions, its limit; retry later",
                    self.max
                ),
            )
            .with_retry_after(Duration::from_secs(5)));
        }
        inner.total += 1;
        *inner.per_owner.entry(owner.clone()).or_default() += 1;
        Ok(Reservation {
            sessions: Arc::clone(self),
            owner: owner.clone(),
            kept: false,
        })
    }

    /// Whether `owner` may use session `id` (marking it used); `false` for a session this
    /// server does not know or that another key opened.
    pub fn check(&self, id: &str, owner: &Owner) -> bool {
        let mut inner = self.lock();
        match inner.sessions.get_mut(id) {
            Some(s) if s.owner == *owner => {
                s.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Forgets session `id` (ended, or unknown to the SDK).
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(s) = inner.sessions.remove(id) {
            inner.release(&s.owner);
        }
    }

    /// Forgets the sessions unused for the idle timeout and returns their ids, to be closed.
    pub fn expire(&self) -> Vec<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        let idle: Vec<String> = inner
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_used) >= self.idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            if let Some(s) = inner.sessions.remove(id) {
                inner.release(&s.owner);
            }
        }
        idle
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.lock().sessions.len()
    }

    /// How often expired sessions should be looked for.
    pub fn sweep_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Owner {
        Some(k.to_owned())
    }

    fn sessions(per_key: usize, max: usize) -> Arc<Sessions> {
        Arc::new(Sessions::new(per_key, max, Duration::from_secs(60)))
    }

    #[test]
    fn caps_per_key_and_in_all() {
        let s = sessions(2, 3);
        s.reserve(&key("a")).unwrap().open("a1".into());
        s.reserve(&key("a")).unwrap().open("a2".into());
        let refused = s.reserve(&key("a")).err().unwrap();
        assert_eq!(refused.code, Code::TooManySessions);
        // A handshake that failed gives its slot back.
        drop(s.reserve(&key("b")).unwrap());
        s.reserve(&key("b")).unwrap().open("b1".into());
        assert!(s.reserve(&key("c")).is_err(), "the server's cap");
        s.forget("a1");
        s.reserve(&key("c")).unwrap().open("c1".into());
        assert_eq!(s.open(), 3);
    }

    #[test]
    fn anonymous_clients_share_only_the_servers_cap() {
        let s = sessions(1, 3);
        for i in 0..3 {
            s.reserve(&None).unwrap().open(format!("anon{i}"));
        }
        assert!(s.reserve(&None).is_err(), "the server's cap");
    }

    #[test]
    fn a_session_is_its_owners_only() {
        let s = sessions(4, 8);
        s.reserve(&key("a")).unwrap().open("a1".into());
        assert!(s.check("a1", &key("a")));
        assert!(!s.check("a1", &key("b")));
        assert!(!s.check("a1", &None));
        assert!(!s.check("nobody", &key("a")), "unknown ids are nobody's");
        s.forget("a1");
        assert!(!s.check("a1", &key("a")));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_and_free_their_slots() {
        let s = sessions(1, 8);
        s.reserve(&key("a")).unwrap().open("a1".into());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.expire().is_empty());
        assert!(s.check("a1", &key("a")), "use resets the clock");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(s.expire(), ["a1"]);
        assert!(!s.check("a1", &key("a")));
        assert!(s.reserve(&key("a")).is_ok(), "the slot is free again");
    }
}
