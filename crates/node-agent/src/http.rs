//! The HTTP client of the control API (peers' `GET /state`, the CLI's requests): one function,
//! [`request`], shared with the db-proxy (which needs it for [`db_proxy::fetch_status`] and cannot
//! depend on this crate). The server side is [`crate::control`].

pub use db_proxy::control::{request, request_with_token, ClientError};
