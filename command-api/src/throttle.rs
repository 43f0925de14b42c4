//! Sign-in and registration throttles (`docs/adr/0014-sign-in-abuse.md`): fixed-window
//! counters in PostgreSQL, so every command API replica enforces the same limits.
//!
//! An attempt is counted *before* the work it guards (so a burst of parallel guesses cannot
//! slip through between a check and a count), and a successful sign-in takes its own attempt
//! back. Buckets are keyed digests: the table holds no email or client address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use mercato_web::{JwtKeys, Problem};
use sqlx::PgPool;

use crate::state::AppState;

/// The limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Sign-in attempts per account (email) and window.
    pub login_per_account: u32,
    /// Failed sign-ins per client address and window.
    pub login_per_address: u32,
    /// The sign-in window.
    pub login_window: Duration,
    /// Registrations per client address and window (the admin is not limited).
    pub registrations_per_address: u32,
    /// The registration window.
    pub registration_window: Duration,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a proxy that
    /// appends it) instead of the TCP peer.
    pub trust_forwarded_for: bool,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            login_per_account: 10,
            login_per_address: 100,
            login_window: Duration::from_secs(15 * 60),
            registrations_per_address: 20,
            registration_window: Duration::from_secs(3600),
            trust_forwarded_for: false,
        }
    }
}

/// A throttle bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    key: String,
    limit: u32,
    window: Duration,
}

impl Bucket {
    /// The bucket of `what` (e.g. `login:account`) for `value`, digested with the API's key.
    pub fn new(keys: &JwtKeys, what: &str, value: &str, limit: u32, window: Duration) -> Self {
        Self {
            key: format!("{what}:{}", keys.digest(what, value.as_bytes())),
            limit,
            window,
        }
    }
}

/// The buckets a password check counts in: the account (`email`) and the client address.
pub(crate) fn sign_in(state: &AppState, email: &str, client: &str) -> [Bucket; 2] {
    let limits = &state.config().throttle;
    [
        Bucket::new(
            state.keys(),
            "login:account",
            email,
            limits.login_per_account,
            limits.login_window,
        ),
        Bucket::new(
            state.keys(),
            "login:address",
            client,
            limits.login_per_address,
            limits.login_window,
        ),
    ]
}

/// Counts an attempt in every bucket; if one is over its limit, a 429 with `Retry-After`
/// (the attempt stays counted: hammering does not shorten the wait).
pub(crate) async fn attempt(pool: &PgPool, buckets: &[Bucket]) -> Result<(), Problem> {
    let mut wait: Option<u64> = None;
    for bucket in buckets {
        let (attempts, left): (i32, f64) = sqlx::query_as(
            "INSERT INTO command.throttles AS t (bucket, window_start, attempts) VALUES ($1, now(), 1) \
             ON CONFLICT (bucket) DO UPDATE SET \
               attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE t.attempts + 1 END, \
               window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2) THEN now() ELSE t.window_start END \
             RETURNING attempts, extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8",
        )
        .bind(&bucket.key)
        .bind(bucket.window.as_secs_f64())
        .fetch_one(pool)
        .await
        .map_err(crate::error::db_problem)?;
        if attempts > i32::try_from(bucket.limit).unwrap_or(i32::MAX) {
            let secs = left.ceil().max(1.0) as u64;
            wait = Some(wait.map_or(secs, |w| w.max(secs)));
        }
    }
    match wait {
        None => Ok(()),
        Some(secs) => {
            metrics::counter!("mercato_throttled_total").increment(1);
            Err(Problem::too_many_requests(
                "too_many_attempts",
                "too many attempts; wait before trying again",
                secs,
            ))
        }
    }
}

/// Takes a counted attempt back (a sign-in that succeeded).
pub(crate) async fn forgive(pool: &PgPool, buckets: &[Bucket]) -> Result<(), Problem> {
    let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
    sqlx::query(
        "UPDATE command.throttles SET attempts = greatest(attempts - 1, 0) WHERE bucket = ANY($1)",
    )
    .bind(&keys)
    .execute(pool)
    .await
    .map_err(crate::error::db_problem)?;
    Ok(())
}

/// Deletes counters whose window ended long ago.
pub(crate) async fn expire(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM command.throttles WHERE window_start < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// The client's address (see [`client_address`]), as an extractor.
pub(crate) struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            parts,
            state.config().throttle.trust_forwarded_for,
        )))
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the last
/// `X-Forwarded-For` entry (the one the proxy appended).
pub(crate) fn client_address(parts: &Parts, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        if let Some(ip) = forwarded_for(&parts.headers) {
            return ip.to_string();
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|ip| ip.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(xff: &[&str], peer: Option<&str>) -> Parts {
        let mut req = Request::builder();
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        parts
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let p = parts(&["203.0.113.9, 198.51.100.7"], Some("10.0.0.2:5555"));
        assert_eq!(client_address(&p, false), "10.0.0.2");
        // The proxy appends the address it saw; anything before it the client could forge.
        assert_eq!(client_address(&p, true), "198.51.100.7");
        let p = parts(&["1.1.1.1", "2001:db8::1"], None);
        assert_eq!(client_address(&p, true), "2001:db8::1");
        assert_eq!(client_address(&parts(&["junk"], None), true), "unknown");
    }
}
