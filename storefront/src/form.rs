//! Form posts: every one must carry the session's CSRF token (`_csrf`), or it is refused
//! before it can act. A cross-site form has no way to read the token; with SameSite=Lax it
//! does not even send the session cookie.

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::pages::layout::ErrorPage;
use crate::session::Current;

/// Largest form body: far above any form of the shop.
const FORM_LIMIT: usize = 64 * 1024;

/// A form whose `_csrf` matched the session's token.
pub(crate) struct Form<T>(pub T);

#[derive(Deserialize)]
struct Token {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let session = req
            .extensions()
            .get::<Current>()
            .cloned()
            .ok_or_else(|| ErrorPage::forbidden().into_response())?;
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.len() > FORM_LIMIT {
            return Err(ErrorPage::bad_request("This form is too large.").into_response());
        }
        let token: Token = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| ErrorPage::bad_request("This form could not be read.").into_response())?;
        let expected = session.get().csrf;
        if token.csrf.is_empty() || !bool::from(token.csrf.as_bytes().ct_eq(expected.as_bytes())) {
            tracing::info!("refused a form without this session's csrf token");
            return Err(ErrorPage::forbidden().into_response());
        }
        serde_urlencoded::from_bytes(&bytes).map(Form).map_err(|e| {
            ErrorPage::bad_request(&format!("This form is incomplete: {e}.")).into_response()
        })
    }
}
