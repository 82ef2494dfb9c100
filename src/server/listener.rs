//! Accept loop with a connection limit and graceful shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection::Connection;
use crate::context::Context;
use crate::listeners::SecurityProtocol;
use crate::transport::Transport;
use std::time::Duration;

/// File descriptors kept out of the connection budget: RocksDB's WAL, SST and manifest
/// files, the HTTP port, the runtime's own.
const RESERVED_FDS: u64 = 512;

/// Raises the soft open-file limit to the hard one, as Kafka's operators are told to set
/// `ulimit -n` high: every connection costs a file descriptor, and so does every file
/// RocksDB opens. Returns the soft limit in force afterwards (None if unknown).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// `--max-connections`, lowered when the open-file limit cannot hold that many connections
/// plus RocksDB's files: measured before, a flood of idle connections used up the
/// descriptors, RocksDB could not open its next WAL file, and every Produce failed with
/// KAFKA_STORAGE_ERROR until a restart.
fn connection_budget(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return wanted;
    }
    let room = lim.rlim_cur.saturating_sub(RESERVED_FDS).max(16) as usize;
    if room < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = lim.rlim_cur,
            allowed = room,
            "the open-file limit cannot hold --max-connections plus the store's files; raise `ulimit -n`"
        );
        return room;
    }
    wanted
}

/// One bound listener: its socket and what its connections need to know about it.
pub struct Bound {
    pub socket: TcpListener,
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    /// The TLS configuration of an SSL or SASL_SSL listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Accepts clients on every listener until `shutdown` turns true, then waits for every
/// connection task to end. `max.connections` and `queued.max.request.bytes` are the
/// broker's, shared by all listeners, as in Kafka.
pub async fn serve(listeners: Vec<Bound>, ctx: Arc<Context>, shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(connection_budget(
        ctx.config.max_connections.max(1),
    )));
    let queued = ctx.config.queued_max_request_bytes;
    let pool = (queued > 0).then(|| Arc::new(Semaphore::new(queued as usize)));
    let mut loops = JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(
            l,
            ctx.clone(),
            limit.clone(),
            pool.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
}

async fn accept_loop(
    bound: Bound,
    ctx: Arc<Context>,
    limit: Arc<Semaphore>,
    pool: Option<Arc<Semaphore>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Bound {
        socket: listener,
        name,
        protocol,
        tls,
    } = bound;
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|v| *v) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|v| *v) => break,
        };
        // Reap finished connection tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        match accepted {
            Ok((socket, peer)) => {
                // connection_creation_rate: a connection over its IP's quota is held for the
                // throttle time, then closed unserved, as Kafka's acceptor does.
                let throttle = ctx.quotas.connection_throttle_ms(peer.ip());
                if throttle > 0 {
                    ctx.metrics.throttled("Connection");
                    tracing::debug!(peer = %peer, throttle_ms = throttle, "connection over its IP's connection_creation_rate; closing it after the throttle time");
                    let mut rx = shutdown.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(throttle)) => {}
                            _ = rx.wait_for(|v| *v) => {}
                        }
                        drop(socket);
                        drop(permit);
                    });
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let ctx = ctx.clone();
                let rx = shutdown.clone();
                let pool = pool.clone();
                let name = name.clone();
                let tls = tls.clone();
                tasks.spawn(async move {
                    let (transport, principal) = match tls {
                        None => (Transport::plain(socket), None),
                        Some(config) => {
                            // Bounded like an idle connection: a client that opens the port
                            // and says nothing holds it no longer than that.
                            let timeout = Duration::from_millis(ctx.config.connections_max_idle_ms.min(30_000));
                            let mut shutdown = rx.clone();
                            let handshake = Transport::tls(socket, config, timeout);
                            let outcome = tokio::select! {
                                r = handshake => r,
                                _ = shutdown.wait_for(|v| *v) => return,
                            };
                            match outcome {
                                Ok((t, cert)) => {
                                    let principal = cert.and_then(|der| {
                                        crate::security::tls::certificate_principal(&der)
                                    });
                                    (t, principal)
                                }
                                Err(e) => {
                                    ctx.metrics.tls_handshake_failures.inc();
                                    tracing::warn!(peer = %peer, listener = %name, error = %e, "TLS handshake failed; connection closed");
                                    drop(permit);
                                    return;
                                }
                            }
                        }
                    };
                    let conn = Connection::new(transport, peer, name, protocol, principal, ctx, pool);
                    conn.run(rx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}
