//! A TCP proxy between a client and the API server that can misbehave as a network
//! does: pass traffic, blackhole it (nothing delivered either way, no resets — a
//! partition), or delay every answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward nothing, in either direction, on old or new connections; close nothing.
    Blackhole,
    /// Forward requests at once and every byte of the answers this much later.
    DelayAnswers(Duration),
}

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub address: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` as the mode says; `answers` marks the server-to-client side.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    answers: bool,
) {
    let (delayed, mut due) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // A blackhole reads nothing more (and so forwards nothing) from now on.
        if *mode.borrow() == Mode::Blackhole {
            std::future::pending::<()>().await;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = mode.changed() => continue,
        };
        let Ok(n @ 1..) = read else {
            break;
        };
        let current = *mode.borrow();
        let at = match current {
            Mode::Blackhole => std::future::pending().await,
            Mode::DelayAnswers(delay) if answers => tokio::time::Instant::now() + delay,
            _ => tokio::time::Instant::now(),
        };
        if delayed.send((at, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(delayed);
    let _ = writer.await;
}

impl Proxy {
    /// A proxy to `target`, passing traffic until told otherwise.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Pass);
        let mode = Arc::new(mode);
        let modes = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let modes = modes.clone();
                tokio::spawn(async move {
                    let mode = modes.subscribe();
                    if *mode.borrow() == Mode::Blackhole {
                        // Accepted, and then silence: like a connection into a partition.
                        let _held = client;
                        return std::future::pending::<()>().await;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, mode.clone(), false),
                        pump(server_read, client_write, mode, true),
                    );
                });
            }
        });
        Self {
            address,
            mode,
            task,
        }
    }

    /// Switches what the proxy does, for old connections and new ones.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// A copy of `kubeconfig` (written into `dir`) whose server is this proxy.
    pub fn kubeconfig(
        &self,
        kubeconfig: &std::path::Path,
        dir: &std::path::Path,
    ) -> std::path::PathBuf {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let server = config["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .to_owned();
        let (scheme, _) = server.split_once("://").unwrap();
        config["clusters"][0]["cluster"]["server"] =
            serde_yaml::Value::from(format!("{scheme}://{}", self.address));
        let path = dir.join("via-proxy-kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
        path
    }
}
