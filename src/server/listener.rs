//! Accept loop with a connection limit and graceful shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection::Connection;
use crate::broker::Context;

/// Accepts clients until `shutdown` turns true, then waits for every connection task to end.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections.max(1)));
    let queued = ctx.config.queued_max_request_bytes;
    let pool = (queued > 0).then(|| Arc::new(Semaphore::new(queued as usize)));
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
                let _ = socket.set_nodelay(true);
                let ctx = ctx.clone();
                let rx = shutdown.clone();
                let pool = pool.clone();
                tasks.spawn(async move {
                    let conn = Connection::new(socket, peer, ctx, pool);
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
