//! SASL/PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked against the same
//! salted SCRAM credentials the SCRAM mechanisms use, so no password is stored for it.

/// Longest PLAIN message accepted: Kafka's user names and passwords are short.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A parsed PLAIN message.
pub struct PlainMessage<'a> {
    pub user: &'a str,
    pub password: &'a [u8],
}

/// Parses a client's PLAIN message. As in Kafka, an authorization id must be empty or the
/// user's own name.
pub fn parse(msg: &[u8]) -> Result<PlainMessage<'_>, &'static str> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err("PLAIN message too long");
    }
    let mut parts = msg.splitn(3, |b| *b == 0);
    let authzid = parts.next().ok_or("no authorization id")?;
    let user = parts.next().ok_or("no user name")?;
    let password = parts.next().ok_or("no password")?;
    let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8")?;
    if user.is_empty() {
        return Err("empty user name");
    }
    if password.is_empty() {
        return Err("empty password");
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err("authorization id differs from the user name");
    }
    Ok(PlainMessage { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_parse_as_rfc_4616_writes_them() {
        let m = parse(b"\0alice\0s3cret").unwrap();
        assert_eq!((m.user, m.password), ("alice", &b"s3cret"[..]));
        let m = parse(b"alice\0alice\0pw\0with-nul").unwrap();
        assert_eq!(m.password, b"pw\0with-nul");
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"bob\0alice\0pw",
            b"\0\xff\0pw",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).is_err());
    }
}
