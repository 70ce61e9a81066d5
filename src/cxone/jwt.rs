//! The one claim recsched reads from a CXone access token: `tenantId`.
//!
//! CXone's access tokens are JWTs; discovery needs the tenant id they
//! carry to ask for the tenant's API host. The token is not verified here
//! (the API does that on every call): this only reads the payload, as a
//! pure function of the token's text, and never panics or echoes the token.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The longest claim value taken as a tenant id.
const MAX_TENANT_CHARS: usize = 128;

/// The `tenantId` claim of `token`, or why there is none (never the
/// token itself).
pub fn tenant_id(token: &str) -> Result<String, String> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the access token is not a JWT (three dot-separated parts)".to_owned());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| "the access token's payload is not base64url".to_owned())?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| "the access token's payload is not JSON".to_owned())?;
    match claims.get("tenantId") {
        Some(serde_json::Value::String(s)) if is_tenant(s) => Ok(s.clone()),
        Some(_) => Err("the access token's tenantId claim is not a plain id".to_owned()),
        None => Err("the access token has no tenantId claim".to_owned()),
    }
}

/// Whether `s` can be sent as a tenant id: non-empty, short, printable.
pub fn is_tenant(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_TENANT_CHARS
        && s.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn the_tenant_id_claim_is_read() {
        assert_eq!(
            tenant_id(&token(r#"{"tenantId":"11ea-42","sub":"x"}"#)),
            Ok("11ea-42".to_owned())
        );
        // Padded base64url is accepted too.
        let padded = format!("h.{}.s", URL_SAFE.encode(r#"{"tenantId":"t"}"#));
        assert_eq!(tenant_id(&padded), Ok("t".to_owned()));
    }

    #[test]
    fn tokens_without_a_usable_claim_say_why_without_the_token() {
        for (t, why) in [
            ("zqopaque".to_owned(), "not a JWT"),
            ("a.b.c.d".to_owned(), "not a JWT"),
            ("zq.%%%.zq".to_owned(), "not base64url"),
            (format!("h.{}.s", URL_SAFE_NO_PAD.encode("zq")), "not JSON"),
            (token(r#"{"sub":"zq"}"#), "no tenantId claim"),
            (token(r#"{"tenantId":42}"#), "not a plain id"),
            (token(r#"{"tenantId":""}"#), "not a plain id"),
            (token(r#"{"tenantId":"a b"}"#), "not a plain id"),
        ] {
            let e = tenant_id(&t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
            assert!(!e.contains("zq"), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_as_a_token_without_panic(t in "\\PC{0,200}") {
            let _ = tenant_id(&t);
        }
    }
}
