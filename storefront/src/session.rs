//! Server-side sessions behind an opaque cookie, and the CSRF token of every form.
//!
//! The cookie (`mercato_session`, HttpOnly, SameSite=Lax, Secure over https) holds only a
//! random id. What it stands for (the cart and its token, the shopper's or the admin's access
//! token, a guest's order tokens, the last write's position) stays in this process: no page
//! script ever sees a token (ADR 0019). Sessions live in memory, bounded in number and idle
//! time; a restart signs everyone out, and replicas need sticky routing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use uuid::Uuid;

const COOKIE_NAME: &str = "mercato_session";

/// A cart this session shops with.
#[derive(Debug, Clone)]
pub(crate) struct CartRef {
    pub id: Uuid,
    /// An anonymous cart's `Mercato-Cart-Token` (a customer's cart opens with their token).
    pub token: Option<String>,
}

/// Someone signed in: their access token and what the pages show of them.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub token: String,
    pub email: String,
    /// A customer's id (the admin has none).
    pub customer_id: Option<String>,
    /// When the access token expires: the sign-in ends then.
    pub expires: Instant,
}

/// What one browser's session holds.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token every form of this session carries (`_csrf`).
    pub csrf: String,
    pub cart: Option<CartRef>,
    pub customer: Option<SignedIn>,
    pub admin: Option<SignedIn>,
    /// Orders placed as a guest in this session, with their `Mercato-Order-Token`.
    pub guest_orders: HashMap<Uuid, String>,
    /// The position of this session's last write: reads wait for it (read-your-writes).
    pub position: Option<String>,
    /// A message for the next page (after a redirect).
    pub flash: Option<String>,
    last_seen: Instant,
}

impl Session {
    /// Whether losing this session would lose a shopper something (a cart, a sign-in,
    /// their guest orders).
    fn holds_something(&self) -> bool {
        self.cart.is_some()
            || self.customer.is_some()
            || self.admin.is_some()
            || !self.guest_orders.is_empty()
    }

    fn new() -> Self {
        Self {
            csrf: random_token(),
            cart: None,
            customer: None,
            admin: None,
            guest_orders: HashMap::new(),
            position: None,
            flash: None,
            last_seen: Instant::now(),
        }
    }
}

/// Every session of this replica.
#[derive(Clone)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    idle: Duration,
    max: usize,
    secure_cookie: bool,
}

impl Sessions {
    pub(crate) fn new(idle: Duration, max: usize, secure_cookie: bool) -> Self {
        Self {
            inner: Arc::default(),
            idle,
            max,
            secure_cookie,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session `id` names, touched.
    fn find(&self, id: &str) -> Option<Session> {
        let mut map = self.map();
        let session = map.get_mut(id)?;
        if session.last_seen.elapsed() > self.idle {
            map.remove(id);
            return None;
        }
        let now = Instant::now();
        session.last_seen = now;
        // A sign-in ends with its access token: the pages are then signed-out ones.
        let mut ended = false;
        for who in [&mut session.customer, &mut session.admin] {
            if who.as_ref().is_some_and(|w| w.expires <= now) {
                *who = None;
                ended = true;
            }
        }
        if ended {
            session.flash = Some("Your sign-in expired; please sign in again.".into());
        }
        Some(session.clone())
    }

    /// Stores a new session; returns its id. Expired sessions go first, then, when the store
    /// is still full, a tenth of it (see below).
    fn create(&self, session: Session) -> String {
        let id = random_token();
        let mut map = self.map();
        if map.len() >= self.max {
            let idle = self.idle;
            map.retain(|_, s| s.last_seen.elapsed() <= idle);
        }
        if map.len() >= self.max {
            // Room for a tenth more at once (one scan, not one per new visitor), taken from
            // the sessions that hold nothing first, longest idle first: a flood of visitors
            // without a cart or a sign-in cannot push out the shoppers who have one.
            let mut victims: Vec<(bool, Instant, String)> = map
                .iter()
                .map(|(k, s)| (s.holds_something(), s.last_seen, k.clone()))
                .collect();
            victims.sort_unstable();
            for (_, _, id) in victims.into_iter().take(self.max / 10 + 1) {
                map.remove(&id);
            }
        }
        map.insert(id.clone(), session);
        id
    }
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The request's session: read with [`Current::get`], changed with [`Current::update`].
#[derive(Clone)]
pub(crate) struct Current {
    sessions: Sessions,
    id: Arc<Mutex<String>>,
    snapshot: Arc<Mutex<Session>>,
}

impl Current {
    /// The session as it is now.
    pub(crate) fn get(&self) -> Session {
        self.snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the session (stored at once).
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut Session) -> R) -> R {
        let id = self.id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut map = self.sessions.map();
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        // A session that is gone (signed out by a concurrent request, expired, evicted) is
        // never brought back under its old id: only this request's copy changes.
        let Some(session) = map.get_mut(&id) else {
            return change(&mut snapshot);
        };
        let result = change(session);
        *snapshot = session.clone();
        result
    }

    /// Moves the session to a new id (at sign-in and sign-out), with a new CSRF token, so an
    /// id fixed before the sign-in is worth nothing after it.
    pub(crate) fn renew(&self) {
        let mut id = self.id.lock().unwrap_or_else(|e| e.into_inner());
        let mut session = {
            let mut map = self.sessions.map();
            map.remove(&*id).unwrap_or_else(|| {
                self.snapshot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            })
        };
        session.csrf = random_token();
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = session.clone();
        *id = self.sessions.create(session);
    }

    /// Takes the flash message, if any.
    pub(crate) fn take_flash(&self) -> Option<String> {
        self.update(|s| s.flash.take())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Current>()
            .cloned()
            .unwrap_or_else(|| unreachable!("the session layer runs before every handler")))
    }
}

fn cookie_value(parts: &axum::http::HeaderMap) -> Option<String> {
    parts
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

/// Finds or starts the request's session, and sets the cookie when its id is new.
pub(crate) async fn layer(
    axum::extract::State(sessions): axum::extract::State<Sessions>,
    mut req: Request,
    next: Next,
) -> Response {
    let known =
        cookie_value(req.headers()).and_then(|id| sessions.find(&id).map(|session| (id, session)));
    let (id, session, fresh) = match known {
        Some((id, session)) => (id, session, false),
        None => {
            let session = Session::new();
            (sessions.create(session.clone()), session, true)
        }
    };
    let current = Current {
        sessions: sessions.clone(),
        id: Arc::new(Mutex::new(id.clone())),
        snapshot: Arc::new(Mutex::new(session)),
    };
    req.extensions_mut().insert(current.clone());
    let mut response = next.run(req).await;
    // The API refused a token this session holds (revoked by a password change or an
    // erasure): the sign-in is over, and the next page is a signed-out one.
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        current.update(|s| {
            s.customer = None;
            s.admin = None;
        });
    }
    let final_id = current.id.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if fresh || final_id != id {
        let secure = if sessions.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!("{COOKIE_NAME}={final_id}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_drops_the_longest_idle_session() {
        let sessions = Sessions::new(Duration::from_secs(60), 2, false);
        let first = sessions.create(Session::new());
        std::thread::sleep(Duration::from_millis(2));
        let second = sessions.create(Session::new());
        let third = sessions.create(Session::new());
        assert!(sessions.find(&first).is_none());
        assert!(sessions.find(&second).is_some());
        assert!(sessions.find(&third).is_some());
    }

    #[test]
    fn a_flood_of_empty_sessions_does_not_push_out_shoppers_with_a_cart() {
        let sessions = Sessions::new(Duration::from_secs(60), 10, false);
        let shoppers: Vec<String> = (0..5)
            .map(|_| {
                let mut s = Session::new();
                s.cart = Some(CartRef {
                    id: Uuid::new_v4(),
                    token: Some("t".into()),
                });
                sessions.create(s)
            })
            .collect();
        for _ in 0..100 {
            sessions.create(Session::new());
        }
        assert!(sessions.map().len() <= 10);
        for id in &shoppers {
            assert!(sessions.find(id).is_some(), "a shopper with a cart stays");
        }
    }

    #[test]
    fn an_idle_session_expires() {
        let sessions = Sessions::new(Duration::from_millis(1), 10, false);
        let id = sessions.create(Session::new());
        std::thread::sleep(Duration::from_millis(5));
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn a_request_finishing_after_a_sign_out_does_not_bring_the_old_session_back() {
        let sessions = Sessions::new(Duration::from_secs(60), 10, false);
        let mut session = Session::new();
        session.flash = Some("hello".into());
        let id = sessions.create(session.clone());
        let slow = Current {
            sessions: sessions.clone(),
            id: Arc::new(Mutex::new(id.clone())),
            snapshot: Arc::new(Mutex::new(session.clone())),
        };
        let signing_out = Current {
            sessions: sessions.clone(),
            id: Arc::new(Mutex::new(id.clone())),
            snapshot: Arc::new(Mutex::new(session)),
        };
        signing_out.renew();
        assert_eq!(slow.take_flash().as_deref(), Some("hello"));
        assert!(sessions.find(&id).is_none(), "the old id stays dead");
        let new_id = signing_out.id.lock().unwrap().clone();
        assert!(sessions.find(&new_id).is_some());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; mercato_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&headers).as_deref(), Some("abc"));
    }
}
