//! A kind the API server will not let the controller read — RBAC's 403, made here by a
//! proxy between the controller and a real `konductor server` that forbids every
//! request for Jobs — is a condition message on the Gates naming it, not a hang.

use std::net::SocketAddr;

use konductor_api::gate::{Gate, GatePhase};
use konductor_controller::kinds::Background;
use konductor_testing::{HANG, TestServer};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the API server answers a ServiceAccount without a rule for Jobs.
const FORBIDDEN: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"jobs.batch is forbidden: User \"system:serviceaccount:konductor-system:konductor-operator\" cannot list resource \"jobs\" in API group \"batch\" in the namespace \"default\"","reason":"Forbidden","details":{"group":"batch","kind":"jobs"},"code":403}"#;

/// A plain-HTTP proxy to `upstream` that answers every request for Jobs 403 and passes
/// the rest, one request per connection (it adds `Connection: close`, so each request
/// arrives on a connection of its own and is looked at).
async fn forbid_jobs(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split(' ').nth(1).unwrap_or_default();
                let jobs = path.starts_with("/apis/batch/v1/")
                    && path.split(['/', '?']).any(|segment| segment == "jobs");
                if jobs {
                    let answer = format!(
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{FORBIDDEN}",
                        FORBIDDEN.len()
                    );
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let mut kept: Vec<&str> = text
                    .trim_end()
                    .split("\r\n")
                    .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
                    .collect();
                kept.push("connection: close");
                let head = format!("{}\r\n\r\n", kept.join("\r\n"));
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(head.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_kind_the_api_server_refuses_is_a_condition_message_not_a_hang() {
    let server = TestServer::start_with(|config| config.tls = false, false).await;
    let proxy = forbid_jobs(server.server.address).await;
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.cluster_url = format!("http://{proxy}").parse().unwrap();
    let controller = Background::spawn(kube::Client::try_from(config).unwrap(), "refused");

    let gates: Api<Gate> = Api::namespaced(server.client.clone(), "default");
    let gate: Gate = serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Gate",
        "metadata": {"name": "release"},
        "spec": {"conditions": [
            {"ref": {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"}}
        ]}
    }))
    .unwrap();
    gates.create(&PostParams::default(), &gate).await.unwrap();
    let refused = |g: Option<&Gate>| {
        g.and_then(|g| g.status.as_ref()).is_some_and(|s| {
            s.results
                .first()
                .is_some_and(|r| r.message.contains("cannot watch jobs"))
        })
    };
    tokio::time::timeout(HANG, await_condition(gates.clone(), "release", refused))
        .await
        .expect("the refusal is said in the condition")
        .unwrap();
    let gate = gates.get("release").await.unwrap();
    let status = gate.status.unwrap();
    assert!(
        status.results[0].message.contains("forbidden"),
        "{:?}",
        status.results[0]
    );
    // The Job exists and has completed (made past the proxy), yet nothing the
    // controller may not read counts: after a spec change it has certainly judged
    // again (observedGeneration 2), the Gate still waits, saying why.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(server.client.clone(), "default");
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "m", "image": "migrate"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let complete = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
    jobs.patch_status(
        "migrate",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&complete),
    )
    .await
    .unwrap();
    let later = json!({"spec": {"timeout": "1h"}});
    gates
        .patch(
            "release",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&later),
        )
        .await
        .unwrap();
    let judged = konductor_testing::until(gates.clone(), "release", |g| {
        g.and_then(|g| g.status.as_ref())
            .is_some_and(|s| s.lifecycle.observed_generation == Some(2))
    })
    .await
    .expect("the Gate is there");
    let status = judged.status.unwrap();
    assert_eq!(status.phase, GatePhase::Waiting, "{status:?}");
    assert!(status.results[0].unreadable, "{status:?}");
    controller.stop().await.unwrap();
}
