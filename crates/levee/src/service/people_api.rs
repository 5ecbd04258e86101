//! `GET /v1/people/{id}`: one person's file (一人一档), as `profiles.people`
//! holds it: the same bytes from any instance ([`PeopleTable`]).
//!
//! People's files are personal data. The route has a token of its own,
//! `http.people_token`, apart from `/v1/evaluate`'s (none set: nobody reads
//! them), and says who reads: the header `X-Levee-Reader` (the reader's
//! name or role, e.g. `纪检监察室-王五`) is required, and every read is logged
//! on the `levee::access` target: who read whose file, when, and whether
//! there was one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::info;

use super::kafka::people::PeopleTable;
use super::respond::{error, same};

/// The header naming who reads a file.
pub const READER: &str = "x-levee-reader";

struct PeopleApi {
    files: Arc<PeopleTable>,
    /// `Bearer <http.people_token>`; none: closed.
    bearer: Option<String>,
}

/// The route, over `files`, with `token` (`http.people_token`).
pub fn router(files: Arc<PeopleTable>, token: &str) -> Router {
    let api = Arc::new(PeopleApi {
        files,
        bearer: (!token.is_empty()).then(|| format!("Bearer {token}")),
    });
    Router::new()
        .route("/v1/people/{id}", get(person))
        .with_state(api)
}

async fn person(
    State(api): State<Arc<PeopleApi>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let allowed = api
        .bearer
        .as_ref()
        .is_some_and(|b| same(given, b.as_bytes()));
    if !allowed {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "people's files need `Authorization: Bearer <token>` with http.people_token (apart from http.token; none configured: closed)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"levee-people\""),
        );
        return r;
    }
    let Some(reader) = headers
        .get(READER)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "say who reads: the header X-Levee-Reader (every read of a person's file is logged)",
        );
    };
    if !api.files.caught_up() {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "people's files are still being read from their topic: try again shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let file = api.files.file(&id);
    info!(target: "levee::access", reader, person = %id, found = file.is_some(), "person file read");
    match file {
        Some(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.to_string(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no alert names {id:?}: there is no file"),
        ),
    }
}
