//! `konductor server` as a real process: what it prints and writes, what it refuses,
//! and that an acknowledged write survives `kill -9`.

mod common;

use common::{client, konductor, start_server};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};

fn start(data_dir: &std::path::Path) -> common::ServerProcess {
    start_server(data_dir, &[])
}

/// Creates namespaces `PREFIX-0` … `PREFIX-(n-1)`, returning them as acknowledged.
async fn create_namespaces(namespaces: &Api<Namespace>, prefix: &str, n: usize) -> Vec<Namespace> {
    let mut created = Vec::with_capacity(n);
    for i in 0..n {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("{prefix}-{i}")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        created.push(
            namespaces
                .create(&PostParams::default(), &ns)
                .await
                .unwrap(),
        );
    }
    created
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
    assert!(stderr.contains("without --expose"), "{stderr}");
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
    let acknowledged = create_namespaces(&namespaces, "durable", 50).await;
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

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    // A write, so the write-ahead log exists.
    let namespaces: Api<Namespace> = Api::all(client(&server.kubeconfig).await);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("private".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(mode_of(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }
    for name in ["konductor.db", "konductor.db-wal", "token", "kubeconfig"] {
        assert!(data.join(name).exists(), "{name}");
    }
}

#[test]
fn a_failed_start_says_why_once_and_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-made");
    let output = konductor()
        .args(["server", "--listen", &address, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("in use").count(), 1, "said once: {stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(!data.exists(), "no half-made data directory");
}

#[test]
fn a_host_name_for_loopback_is_a_valid_listen_address() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = konductor()
        .args(["server", "--listen", "localhost:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .expect("a first line")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains("https://127.0.0.1:") || first.contains("https://[::1]:"),
        "{first}"
    );
}

#[tokio::test]
async fn the_log_says_what_happens_without_colour_when_redirected() {
    use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierSpec, arrival_name};
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = konductor()
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--insecure-http",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let _url = lines.next().unwrap().unwrap();
    let kubeconfig = lines.next().unwrap().unwrap();
    let kubeconfig =
        std::path::PathBuf::from(kubeconfig.strip_prefix("export KUBECONFIG=").unwrap());
    let client = client(&kubeconfig).await;
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    barriers
        .create(
            &PostParams::default(),
            &Barrier::new("logged", BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    Api::<Arrival>::namespaced(client, "default")
        .create(
            &PostParams::default(),
            &Arrival::new(
                &arrival_name("logged", "a"),
                ArrivalSpec::succeeded("logged", "a"),
            ),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        kube::runtime::wait::await_condition(barriers, "logged", |b: Option<&Barrier>| {
            b.is_some_and(|b| b.phase() == konductor_api::BarrierPhase::Open)
        }),
    )
    .await
    .expect("the barrier opens")
    .unwrap();
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a file: {text:?}"
    );
    for said in [
        "kubectl will not work",
        "konductor server started",
        "barrier opened",
        "konductor server stopped",
    ] {
        assert!(text.contains(said), "{said:?} missing from {text}");
    }
}

#[tokio::test]
async fn a_backup_taken_while_it_runs_restores_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let namespaces: Api<Namespace> = Api::all(client(&server.kubeconfig).await);
    let created = create_namespaces(&namespaces, "backed-up", 20).await;
    let copy = dir.path().join("backup.db");
    let run_backup = || {
        konductor()
            .args(["backup", "--data-dir"])
            .arg(dir.path())
            .arg("--to")
            .arg(&copy)
            .output()
            .unwrap()
    };
    let backup = run_backup();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert_eq!(mode_of(&copy) & 0o777, 0o600, "the backup is private");
    let again = run_backup();
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("backup.db") && said.lines().count() == 1,
        "{said}"
    );

    // Restored into a new data dir: a server there has every namespace, same uids.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("konductor.db")).unwrap();
    let server = start(restored.path());
    let namespaces: Api<Namespace> = Api::all(client(&server.kubeconfig).await);
    for before in &created {
        let name = before.metadata.name.as_deref().unwrap();
        assert_eq!(
            namespaces.get(name).await.unwrap().metadata.uid,
            before.metadata.uid,
            "{name}"
        );
    }
}
