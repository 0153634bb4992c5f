//! Shared fixtures: the workspace's test server (no controllers: these tests are about
//! the API server alone) with quick bookmarks, and JSON helpers.

#![allow(dead_code)]

pub mod json;

use std::time::Duration;

use konductor_server::Config;

/// The config tests start servers with: a free port, a fresh directory, a bookmark
/// every 200 ms.
pub fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::on_free_port(dir);
    quick_bookmarks(&mut config);
    config
}

fn quick_bookmarks(config: &mut Config) {
    config.bookmark_interval = Duration::from_millis(200);
}

/// A server running in this process with its own data directory.
pub struct TestServer(pub konductor_testing::TestServer);

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        let adjust = move |config: &mut Config| {
            quick_bookmarks(config);
            adjust(config);
        };
        Self(konductor_testing::TestServer::start_with(adjust, false).await)
    }
}

impl std::ops::Deref for TestServer {
    type Target = konductor_testing::TestServer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
