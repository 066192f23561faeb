//! Real servers for the crate's tests: a `nats-server` with JetStream and a throwaway
//! PostgreSQL, each on a port of its own in a temporary directory, stopped when dropped.
//! `cargo xtask test` installs both from Debian's packages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Reads `child`'s stderr until a line `found` accepts, and goes on reading it in the
/// background so that the child never blocks on a full pipe.
fn wait_for_line<T>(child: &mut Child, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let value = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{what} stopped before it was ready"))
            .unwrap();
        if let Some(value) = found(&line) {
            break value;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    value
}

pub(crate) struct NatsServer {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub(crate) fn start() -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nats-server is installed (`cargo xtask test` installs it)");
        let mut child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // The server says where it listens once it accepts connections.
        let url = wait_for_line(&mut child, "nats-server", |line| {
            let at = line.split("Listening for client connections on ").nth(1)?;
            Some(format!("nats://{}", at.trim()))
        });
        NatsServer {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct PostgresServer {
    child: Child,
    data: PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// A new database cluster, its server ready for connections. PostgreSQL refuses to run
    /// as root, so as root it runs as the `postgres` user the package creates.
    pub(crate) fn start() -> PostgresServer {
        use std::os::unix::fs::MetadataExt;
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let command = |program: &str| {
            let program = bin.join(program);
            if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        if as_root {
            let user = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .unwrap();
            let uid = String::from_utf8(user.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let data = dir.path().join("data");
        let initdb = command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        // A port nothing listens on now; should another process take it first, the server
        // cannot start, and the next one is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = command("postgres")
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let ready = wait_for_line(&mut child, "postgres", |line| {
                if line.contains("database system is ready to accept connections") {
                    Some(true)
                } else if line.contains("could not bind") || line.contains("FATAL") {
                    Some(false)
                } else {
                    None
                }
            });
            if ready {
                return PostgresServer {
                    child,
                    data,
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("postgres could not start on any of five ports");
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // The server's own process (the child may be `runuser`): SIGQUIT stops it at once.
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid.lines().next().filter(|p| !p.is_empty()) {
            let _ = Command::new("kill").args(["-QUIT", pid]).status();
        }
        let _ = self.child.wait();
    }
}

/// The directory of PostgreSQL's programs: the newest version Debian's packages installed.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (`cargo xtask test` installs it)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL is installed (`cargo xtask test` installs it)")
}
