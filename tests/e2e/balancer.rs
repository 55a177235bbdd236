//! nginx in front of enclave nodes for the cluster tests, configured from the file the project
//! ships (`deploy/cluster/nginx.conf.template`), on a free loopback port, in a directory of its
//! own; stopped when dropped. Debian's `nginx` package (installed by `.ci/run`).

use std::path::PathBuf;
use std::time::Duration;

/// A running nginx balancing over some nodes.
pub struct Nginx {
    /// `host:port` clients connect to.
    pub addr: String,
    child: std::process::Child,
    dir: PathBuf,
}

impl Nginx {
    /// nginx over `nodes` (`host:port` each), or `None` when nginx is not installed (outside
    /// CI, where the test is then skipped; CI must have it).
    pub async fn start(nodes: &[&str]) -> Option<Self> {
        let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the cluster tests with nginx: apt-get install nginx"
            );
            eprintln!("skipped: nginx is not installed");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("enclave-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // A free port: bound by the system, then given to nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let template = include_str!("../../deploy/cluster/nginx.conf.template");
        let upstreams: String = nodes
            .iter()
            .map(|node| format!("server {node} max_fails=1 fail_timeout=5s; "))
            .collect();
        let conf = template
            .replace("@PREFIX@", &dir.display().to_string())
            .replace("@LISTEN@", &addr)
            .replace("@UPSTREAMS@", &upstreams);
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            // As root (CI), the workers too, so they can use the test's directory.
            .args(["-g", "daemon off; user root;"])
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let started = Self { addr, child, dir };
        // nginx says nothing when it listens: the port answering is the sign.
        crate::helpers::eventually("nginx listens", || {
            let up = std::net::TcpStream::connect_timeout(
                &started.addr.parse().unwrap(),
                Duration::from_millis(200),
            );
            (up.is_ok(), started.addr.clone())
        })
        .await;
        Some(started)
    }

    /// The WebSocket URL through nginx for `user`'s `token`, with the routing hint.
    pub fn ws_url(&self, user: &str, token: &str) -> String {
        format!("ws://{}/ws?token={token}&user={user}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM: nginx's fast shutdown, which takes its workers down with it.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
