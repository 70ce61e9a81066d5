//! Reads a vendor answer's body with a size cap.
//!
//! A start, stop or token answer is a few hundred bytes. A body without
//! end (a broken gateway, a hostile endpoint) must not fill memory or hold
//! a job until its timeout, so the body is streamed and reading stops
//! after [`MAX_BODY_BYTES`]: the caller sees at most one byte more, which
//! is how it knows the body was too long ([`is_oversized`]).

/// The most of a vendor body that is ever read: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether `body`, as [`read_capped`] returns it, was longer than
/// [`MAX_BODY_BYTES`].
pub fn is_oversized(body: &[u8]) -> bool {
    body.len() > MAX_BODY_BYTES
}

/// The body's first `MAX_BODY_BYTES + 1` bytes at most; the rest is never
/// read (the connection is dropped with the response).
pub async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = (MAX_BODY_BYTES + 1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if is_oversized(&body) {
            break;
        }
    }
    Ok(body)
}
