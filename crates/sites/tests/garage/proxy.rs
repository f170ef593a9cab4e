//! A TCP proxy on loopback that loses connections on purpose, standing for the link to another
//! datacenter: it can refuse the next few connections (accept and close them at once), cut every
//! connection open now, or play dead (close every connection from now on). It counts the bytes
//! it forwards to the server, so a test can tell what was sent twice. It never looks into them.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FlakyProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    state: Arc<State>,
    cut: watch::Sender<u64>,
}

struct State {
    drop_next: AtomicUsize,
    dead: AtomicBool,
    dropped: AtomicUsize,
    upstream_bytes: AtomicU64,
}

impl FlakyProxy {
    /// A proxy to `upstream` (`host:port`), forwarding faithfully until told otherwise.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(State {
            drop_next: AtomicUsize::new(0),
            dead: AtomicBool::new(false),
            dropped: AtomicUsize::new(0),
            upstream_bytes: AtomicU64::new(0),
        });
        let (cut, _) = watch::channel(0u64);
        let accept_state = Arc::clone(&state);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = Arc::clone(&accept_state);
                let lose = state.dead.load(Ordering::SeqCst)
                    || state
                        .drop_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                if lose {
                    state.dropped.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let cut = cuts.subscribe();
                tokio::spawn(forward(client, upstream, state, cut));
            }
        });
        Self {
            endpoint,
            state,
            cut,
        }
    }

    /// The next `n` connections are closed as soon as they are accepted.
    pub fn drop_next(&self, n: usize) {
        self.state.drop_next.store(n, Ordering::SeqCst);
    }

    /// Every connection open now is cut.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// From now on (`true`) every connection is cut and every new one closed at once.
    pub fn set_dead(&self, dead: bool) {
        self.state.dead.store(dead, Ordering::SeqCst);
        if dead {
            self.cut_all();
        }
    }

    /// Connections closed on purpose so far.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to the server so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.state.upstream_bytes.load(Ordering::SeqCst)
    }
}

async fn forward(
    client: TcpStream,
    upstream: String,
    state: Arc<State>,
    mut cut: watch::Receiver<u64>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let counted = Arc::clone(&state);
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counted.upstream_bytes.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut.changed() => {}
    }
}
