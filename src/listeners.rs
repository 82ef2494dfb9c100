//! Kafka's listener configuration, parsed as Kafka parses it: `listeners`
//! (`NAME://HOST:PORT,...`), `listener.security.protocol.map` (`NAME:PROTOCOL,...`) and
//! `advertised.listeners`.
//!
//! It exists so that the broker can accept clients on several ports with different security
//! (PLAINTEXT next to SASL_SSL, say) and tell each client the endpoints of the listener it
//! came in on, with the operator's existing Kafka settings working unchanged.

use std::collections::BTreeMap;
use std::fmt;

/// How a listener's connections are secured (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name for it, as in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(s: &str) -> Option<SecurityProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether connections start with a TLS handshake.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before anything else is served.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for Listener {
    /// `NAME://HOST:PORT`, with an IPv6 host in brackets, as Kafka writes endpoints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Empty for "every interface" (`PLAINTEXT://:9092`), as in Kafka.
    pub host: String,
    pub port: u16,
}

/// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
pub fn default_protocol_map() -> BTreeMap<String, SecurityProtocol> {
    SecurityProtocol::ALL
        .into_iter()
        .map(|p| (p.name().to_string(), p))
        .collect()
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`. Kafka's defaults stay unless
/// the map names them again.
pub fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = default_protocol_map();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?}: expected NAME:PROTOCOL"))?;
        let name = normalise(name)?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            format!("{entry:?}: unknown security protocol {protocol:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
        })?;
        map.insert(name, protocol);
    }
    Ok(map)
}

/// `listeners` or `advertised.listeners`: `NAME://HOST:PORT,...` with IPv6 hosts in
/// brackets. Names must be unique and in `map`; so must ports among listeners.
pub fn parse_listeners(
    s: &str,
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| format!("{entry:?}: expected NAME://HOST:PORT"))?;
        let name = normalise(name)?;
        let protocol = *map.get(&name).ok_or_else(|| {
            format!("{entry:?}: no security protocol defined for listener {name} (add it to --listener-security-protocol-map)")
        })?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?}: expected NAME://HOST:PORT"))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| format!("{entry:?}: unclosed [ in the host"))?,
            None if host.contains(':') => {
                return Err(format!("{entry:?}: an IPv6 host goes in brackets"))
            }
            None => host,
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{entry:?}: bad port {port:?}"))?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("{entry:?}: listener {name} is given twice"));
        }
        if out.iter().any(|l| l.port == port && port != 0) {
            return Err(format!(
                "{entry:?}: port {port} is used by another listener"
            ));
        }
        out.push(Listener {
            name,
            protocol,
            host: host.to_string(),
            port,
        });
    }
    if out.is_empty() {
        return Err("no listener given".into());
    }
    Ok(out)
}

/// `advertised.listeners` against `listeners`: every name must be a listener's, and no
/// host may be the non-routable 0.0.0.0 (Kafka refuses it too). A listener not advertised
/// is advertised at its own address.
pub fn advertised(
    s: Option<&str>,
    listeners: &[Listener],
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, String> {
    let Some(s) = s else {
        return Ok(listeners.to_vec());
    };
    let given = parse_listeners(s, map)?;
    for a in &given {
        if !listeners.iter().any(|l| l.name == a.name) {
            return Err(format!(
                "advertised listener {} is not one of the listeners",
                a.name
            ));
        }
        if a.host == "0.0.0.0" || a.host == "::" {
            return Err(format!(
                "advertised listener {} cannot use the non-routable meta-address {}",
                a.name, a.host
            ));
        }
    }
    Ok(listeners
        .iter()
        .map(|l| {
            given
                .iter()
                .find(|a| a.name == l.name)
                .cloned()
                .unwrap_or_else(|| l.clone())
        })
        .collect())
}

/// What the broker binds and what it advertises, resolved once from the config at start.
#[derive(Debug, Clone)]
pub struct ListenerPlan {
    /// The listeners to bind, in the order given (the first is the one `--listen` names).
    pub listeners: Vec<Listener>,
    /// Per listener, in the same order: the endpoint its clients are told to use.
    pub advertised: Vec<Listener>,
    /// The listener other brokers dial (Kafka's `inter.broker.listener.name`).
    pub inter_broker: String,
}

/// Resolves `--listeners`/`--listen`, `--advertised-listeners`/`--advertise`, the protocol
/// map and the inter-broker listener. Without `--listeners`, `--listen HOST:PORT` is one
/// PLAINTEXT listener, as it always was.
pub fn plan(cfg: &crate::config::BrokerConfig) -> Result<ListenerPlan, String> {
    let map = match &cfg.listener_security_protocol_map {
        Some(m) => parse_protocol_map(m)?,
        None => default_protocol_map(),
    };
    let listeners = match &cfg.listeners {
        Some(l) => parse_listeners(l, &map)?,
        None => vec![Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            host: cfg.listen.ip().to_string(),
            port: cfg.listen.port(),
        }],
    };
    let mut advertised = advertised(cfg.advertised_listeners.as_deref(), &listeners, &map)?;
    if let (Some(a), None) = (&cfg.advertise, &cfg.advertised_listeners) {
        // `--advertise HOST:PORT` predates `--advertised-listeners`: it names the first
        // listener's endpoint.
        let (host, port) = a
            .rsplit_once(':')
            .ok_or_else(|| format!("--advertise {a}: expected HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("--advertise {a}: bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--advertise {a}: empty host"));
        }
        advertised[0].host = host.to_string();
        advertised[0].port = port;
    }
    let inter_broker = match &cfg.inter_broker_listener_name {
        Some(n) => {
            let n = normalise(n)?;
            if !listeners.iter().any(|l| l.name == n) {
                return Err(format!(
                    "--inter-broker-listener-name {n} is not one of the listeners"
                ));
            }
            n
        }
        None => listeners[0].name.clone(),
    };
    Ok(ListenerPlan {
        listeners,
        advertised,
        inter_broker,
    })
}

/// The host to bind a listener's host to: every interface when empty, as in Kafka.
pub fn bind_host(l: &Listener) -> &str {
    if l.host.is_empty() {
        "0.0.0.0"
    } else {
        &l.host
    }
}

/// This machine's host name, which Kafka advertises for a listener bound to every
/// interface (it uses the canonical host name).
pub fn local_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn normalise(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("bad listener name {name:?}"));
    }
    Ok(name.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_as_kafka_writes_them() {
        let map = parse_protocol_map("internal:SASL_PLAINTEXT").unwrap();
        let ls = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092, sasl_ssl://:9093,INTERNAL://[::1]:9094",
            &map,
        )
        .unwrap();
        assert_eq!(
            ls,
            vec![
                Listener {
                    name: "PLAINTEXT".into(),
                    protocol: SecurityProtocol::Plaintext,
                    host: "127.0.0.1".into(),
                    port: 9092
                },
                Listener {
                    name: "SASL_SSL".into(),
                    protocol: SecurityProtocol::SaslSsl,
                    host: String::new(),
                    port: 9093
                },
                Listener {
                    name: "INTERNAL".into(),
                    protocol: SecurityProtocol::SaslPlaintext,
                    host: "::1".into(),
                    port: 9094
                },
            ]
        );
        assert!(ls[1].protocol.tls() && ls[1].protocol.sasl());
        assert!(!ls[0].protocol.tls() && !ls[0].protocol.sasl());
    }

    #[test]
    fn bad_listeners_are_refused_with_a_reason() {
        let map = default_protocol_map();
        for (bad, why) in [
            ("", "no listener"),
            ("127.0.0.1:9092", "NAME://HOST:PORT"),
            ("CUSTOM://:9092", "no security protocol"),
            ("PLAINTEXT://:99999", "bad port"),
            ("PLAINTEXT://::1:9092", "brackets"),
            ("PLAINTEXT://[::1:9092", "unclosed"),
            ("PLAINTEXT://:9092,plaintext://:9093", "twice"),
            ("PLAINTEXT://:9092,SSL://:9092", "port 9092"),
            ("PLAIN TEXT://:9092", "bad listener name"),
        ] {
            let err = parse_listeners(bad, &map).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(parse_protocol_map("X:TLS").unwrap_err().contains("unknown"));
        assert!(parse_protocol_map("X")
            .unwrap_err()
            .contains("NAME:PROTOCOL"));
    }

    #[test]
    fn advertised_listeners_cover_the_listeners() {
        let map = default_protocol_map();
        let ls = parse_listeners("PLAINTEXT://0.0.0.0:9092,SSL://0.0.0.0:9093", &map).unwrap();
        let ad = advertised(Some("SSL://broker1.example:19093"), &ls, &map).unwrap();
        assert_eq!(ad[0], ls[0]);
        assert_eq!(ad[1].host, "broker1.example");
        assert_eq!(ad[1].port, 19093);
        assert_eq!(advertised(None, &ls, &map).unwrap(), ls);
        assert!(advertised(Some("SASL_SSL://h:1"), &ls, &map)
            .unwrap_err()
            .contains("not one of the listeners"));
        assert!(advertised(Some("SSL://0.0.0.0:1"), &ls, &map)
            .unwrap_err()
            .contains("non-routable"));
    }
}
