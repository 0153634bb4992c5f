//! `konductor server` as a real process: what it prints and writes, what it refuses,
//! and that an acknowledged write survives `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A `konductor server` child process and the kubeconfig it announced.
struct ServerProcess {
    child: Child,
    kubeconfig: PathBuf,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn konductor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_konductor"))
}

/// Starts a server on a free port and waits for its `export KUBECONFIG=` line.
fn start(data_dir: &Path) -> ServerProcess {
    let mut child = konductor()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("konductor starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let url = first
        .strip_prefix("konductor server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let second = lines.next().expect("a second line").unwrap();
    let kubeconfig = PathBuf::from(
        second
            .strip_prefix("export KUBECONFIG=")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}")),
    );
    ServerProcess {
        child,
        kubeconfig,
        url,
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[test]
fn announces_its_address_and_writes_a_private_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_eq!(server.kubeconfig, dir.path().join("kubeconfig"));
    let kubeconfig = std::fs::read_to_string(&server.kubeconfig).unwrap();
    assert!(kubeconfig.contains(&server.url));
    assert!(kubeconfig.contains("namespace: default"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&server.kubeconfig)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_second_server_on_the_same_directory_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path());
    let second = konductor()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another konductor server is already using"),
        "{stderr}"
    );
}

#[test]
fn a_network_address_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = konductor()
        .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without --tls"), "{stderr}");
}

#[tokio::test]
async fn barriers_open_by_themselves_because_the_controller_runs_inside() {
    use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, arrival_name};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let client = client(&server.kubeconfig).await;
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    let arrivals: Api<Arrival> = Api::namespaced(client, "default");
    barriers
        .create(
            &PostParams::default(),
            &Barrier::new("inside", BarrierSpec::new(2)),
        )
        .await
        .unwrap();
    for holder in ["a", "b"] {
        arrivals
            .create(
                &PostParams::default(),
                &Arrival::new(
                    &arrival_name("inside", holder),
                    ArrivalSpec::succeeded("inside", holder),
                ),
            )
            .await
            .unwrap();
    }
    let open = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        kube::runtime::wait::await_condition(barriers, "inside", |b: Option<&Barrier>| {
            b.is_some_and(|b| b.phase() == BarrierPhase::Open)
        }),
    )
    .await
    .expect("the barrier opens")
    .unwrap();
    assert_eq!(open.unwrap().status.unwrap().arrived, 2);
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let namespaces: Api<Namespace> = Api::all(client(&server.kubeconfig).await);
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("durable-{i}")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        acknowledged.push(created);
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown path runs
    server.child.wait().unwrap();

    let restarted = start(dir.path());
    let namespaces: Api<Namespace> = Api::all(client(&restarted.kubeconfig).await);
    for before in &acknowledged {
        let name = before.metadata.name.as_deref().unwrap();
        let after = namespaces.get(name).await.unwrap();
        assert_eq!(after.metadata.uid, before.metadata.uid, "{name}");
    }
}
