//! What every HTTP route of `levee run` answers alike: a JSON error body,
//! and a token compared without stopping at the first difference.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Whether `a` and `b` are equal, compared without stopping at the first
/// difference (a token's prefix is not told by the time it takes).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_equal_only_whole() {
        assert!(same(b"Bearer abc", b"Bearer abc"));
        assert!(!same(b"Bearer abc", b"Bearer abd"));
        assert!(!same(b"Bearer ab", b"Bearer abc"));
        assert_eq!(
            error(StatusCode::NOT_FOUND, "x").status(),
            StatusCode::NOT_FOUND
        );
    }
}
