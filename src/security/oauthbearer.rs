//! SASL/OAUTHBEARER (RFC 7628) with Kafka's unsecured JWS tokens (`"alg":"none"`), the
//! development setup Kafka ships (OAuthBearerUnsecuredValidatorCallbackHandler): the
//! token's `sub` claim is the principal, `exp` must lie ahead. Signed tokens are not
//! validated, so the mechanism is off unless `--sasl-enabled-mechanisms` names it.

use base64::Engine as _;

/// Kafka's `sasl.server.max.receive.size` bounds every SASL message; a token is far smaller.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What a valid token grants.
#[derive(Debug, PartialEq)]
pub struct Token {
    pub principal: String,
    /// `exp`, in milliseconds since the epoch.
    pub expires_ms: i64,
}

/// The challenge a server sends when it refuses a token (RFC 7628 section 3.2.2); the
/// client answers with a single 0x01 and the exchange then fails.
pub const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

/// Parses the client's initial response (`gs2-header %x01 auth=Bearer TOKEN %x01 ... %x01
/// %x01`) and validates its token at `now_ms`.
pub fn validate(msg: &[u8], now_ms: i64) -> Result<Token, String> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err("OAUTHBEARER message too long".into());
    }
    let msg = std::str::from_utf8(msg).map_err(|_| "message is not UTF-8".to_string())?;
    let (gs2, rest) = msg.split_once('\u{1}').ok_or("no GS2 header separator")?;
    let authzid = gs2
        .strip_prefix("n,")
        .and_then(|s| s.strip_suffix(','))
        .ok_or("bad GS2 header (channel binding is not supported)")?;
    let body = rest
        .strip_suffix("\u{1}\u{1}")
        .ok_or("message does not end in two 0x01 bytes")?;
    let mut auth = None;
    for kv in body.split('\u{1}') {
        let (k, v) = kv.split_once('=').ok_or("key-value pair without '='")?;
        if k == "auth" {
            auth = Some(v);
        }
    }
    let auth = auth.ok_or("no auth= pair")?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .ok_or("auth is not a Bearer token")?
        .trim();
    let t = validate_unsecured_jws(token, now_ms)?;
    if !authzid.is_empty() && authzid.strip_prefix("a=") != Some(t.principal.as_str()) {
        return Err("authorization id differs from the token's subject".into());
    }
    Ok(t)
}

fn b64url_json(part: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "token part is not base64url".to_string())?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err("token part is not a JSON object".into()),
    }
}

/// Kafka's OAuthBearerUnsecuredJws rules: three dot-separated parts with an empty
/// signature, header `alg` = `none`, a string `sub`, a numeric `exp` in the future and,
/// when present, a numeric `iat` not in the future.
fn validate_unsecured_jws(token: &str, now_ms: i64) -> Result<Token, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWS has three dot-separated parts".into());
    };
    if !signature.is_empty() {
        return Err("signed tokens are not validated: only unsecured (alg none) tokens".into());
    }
    let header = b64url_json(header)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err("header alg is not \"none\"".into());
    }
    let claims = b64url_json(payload)?;
    let principal = match claims.get("sub") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("no sub claim".into()),
    };
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("no numeric exp claim")?;
    let expires_ms = (exp * 1000.0) as i64;
    if expires_ms <= now_ms {
        return Err("the token has expired".into());
    }
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().ok_or("iat is not a number")?;
        if (iat * 1000.0) as i64 > now_ms {
            return Err("the token was issued in the future".into());
        }
    }
    Ok(Token {
        principal,
        expires_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn message(token: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    #[test]
    fn an_unsecured_token_names_its_subject() {
        let now = 1_700_000_000_000;
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(r#"{"sub":"alice","exp":1700000060,"iat":1700000000,"scope":"x"}"#)
        );
        assert_eq!(
            validate(&message(&token), now),
            Ok(Token {
                principal: "alice".into(),
                expires_ms: 1_700_000_060_000
            })
        );
        let with_authzid = format!("n,a=alice,\u{1}auth=Bearer {token}\u{1}\u{1}");
        assert!(validate(with_authzid.as_bytes(), now).is_ok());
        let other = format!("n,a=bob,\u{1}auth=Bearer {token}\u{1}\u{1}");
        assert!(validate(other.as_bytes(), now).is_err());
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let now = 1_700_000_000_000;
        let h = b64(r#"{"alg":"none"}"#);
        for (token, why) in [
            (
                format!("{h}.{}.", b64(r#"{"sub":"a","exp":1600000000}"#)),
                "expired",
            ),
            (format!("{h}.{}.", b64(r#"{"exp":1800000000}"#)), "sub"),
            (format!("{h}.{}.", b64(r#"{"sub":"a"}"#)), "exp"),
            (
                format!(
                    "{h}.{}.",
                    b64(r#"{"sub":"a","exp":1800000000,"iat":1800000000}"#)
                ),
                "future",
            ),
            (
                format!(
                    "{}.{}.",
                    b64(r#"{"alg":"RS256"}"#),
                    b64(r#"{"sub":"a","exp":1800000000}"#)
                ),
                "alg",
            ),
            (
                format!("{h}.{}.c2ln", b64(r#"{"sub":"a","exp":1800000000}"#)),
                "signed",
            ),
            (format!("{h}.!!!."), "base64url"),
            (format!("{h}.{}.", b64("[1]")), "JSON object"),
            ("a.b".to_string(), "three"),
        ] {
            let err = validate(&message(&token), now).unwrap_err();
            assert!(err.contains(why), "{token}: {err}");
        }
        for bad in [
            &b""[..],
            b"n,,",
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01x\x01\x01",
        ] {
            assert!(validate(bad, now).is_err(), "{bad:?}");
        }
        assert!(validate(&vec![b'a'; MAX_MESSAGE_BYTES + 1], now).is_err());
    }
}
