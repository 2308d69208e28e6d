//! GitHub, simulated: a fake REST API for deploy keys (`GET/POST/DELETE /repos/{o}/{r}/keys`) and
//! pull requests (`GET/POST /repos/{o}/{r}/pulls`, `GET …/pulls/{n}`), token checked, error
//! modes on demand, in-process on 127.0.0.1, wired to a REAL sshd git
//! server in a network namespace this fixture creates (reachable from sandboxes through the
//! host, nothing else). sshd accepts exactly the keys currently registered for a repository:
//! the fake rewrites its authorized_keys on every change, each key forced to a git-only
//! command bound to its repository (read-only keys cannot push).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Key {
    pub id: u64,
    pub title: String,
    pub key: String,
    pub read_only: bool,
}

/// How the fake answers API requests (persisting until changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// Every API request answers this status.
    Status(u16),
    /// POST registers the key, then answers 500 (the caller cannot know the id).
    AfterCreate,
}

impl Key {
    /// GitHub's shape (octocrab's DeployKey needs every field).
    fn json(&self, slug: &str) -> Value {
        json!({
            "id": self.id, "key": self.key, "title": self.title, "read_only": self.read_only,
            "url": format!("https://api.github.com/repos/{slug}/keys/{}", self.id),
            "verified": true, "created_at": "2026-01-01T00:00:00Z", "added_by": "test", "last_used": null, "enabled": true,
        })
    }
}

/// A pull request as the fake keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub draft: bool,
    /// open, closed or merged
    pub state: String,
}

impl Pull {
    fn json(&self, slug: &str, sha: &str) -> Value {
        let merged = self.state == "merged";
        json!({
            "id": 500_000 + self.number, "number": self.number,
            "url": format!("https://api.github.com/repos/{slug}/pulls/{}", self.number),
            "html_url": format!("https://github.com/{slug}/pull/{}", self.number),
            "state": if self.state == "open" { "open" } else { "closed" },
            "title": self.title, "body": self.body, "draft": self.draft, "locked": false,
            "merged": merged, "merged_at": if merged { json!("2026-01-02T00:00:00Z") } else { Value::Null },
            "head": {"ref": self.head, "sha": sha, "label": format!("{}:{}", slug.split('/').next().unwrap_or(""), self.head)},
            "base": {"ref": self.base, "sha": sha, "label": self.base},
        })
    }
}

#[derive(Default)]
struct Repo {
    keys: Vec<Key>,
    pulls: Vec<Pull>,
    /// Keys of the repository owner's account (`--ssh-key`), always accepted by sshd.
    user_keys: Vec<String>,
}

struct Fake {
    token: String,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    fail: Option<Fail>,
    dir: PathBuf,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn err(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest"}))).into_response()
}

/// Token, error mode and repository checks; Err is the response to send instead.
fn check(f: &Fake, headers: &HeaderMap, owner: &str, repo: &str) -> Result<String, Box<Response>> {
    check_inner(f, headers, owner, repo).map_err(|(s, m)| Box::new(err(s, m)))
}

/// Records the request, then checks it: the fake's state (locked) and the repository's slug.
fn enter<'a>(
    s: &'a Shared,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    request: String,
) -> Result<(std::sync::MutexGuard<'a, Fake>, String), Box<Response>> {
    let mut f = s.lock().unwrap();
    f.requests.push(request);
    let slug = check(&f, headers, owner, repo)?;
    Ok((f, slug))
}

fn check_inner(f: &Fake, headers: &HeaderMap, owner: &str, repo: &str) -> Result<String, (u16, &'static str)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let given = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("token ")).unwrap_or("");
    if given != f.token {
        return Err((401, "Bad credentials"));
    }
    if let Some(Fail::Status(s)) = f.fail {
        let msg = match s {
            403 => "Resource not accessible by personal access token",
            404 => "Not Found",
            422 => "Validation Failed",
            _ => "Server Error",
        };
        return Err((s, msg));
    }
    let slug = format!("{owner}/{repo}");
    if !f.repos.contains_key(&slug) {
        return Err((404, "Not Found"));
    }
    Ok(slug)
}

async fn list(State(s): State<Shared>, headers: HeaderMap, UrlPath((o, r)): UrlPath<(String, String)>) -> Response {
    let mut f = s.lock().unwrap();
    f.requests.push(format!("GET {o}/{r}"));
    match check(&f, &headers, &o, &r) {
        Ok(slug) => Json(Value::Array(f.repos[&slug].keys.iter().map(|k| k.json(&slug)).collect())).into_response(),
        Err(e) => *e,
    }
}

async fn add(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((o, r)): UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let (mut f, slug) = match enter(&s, &headers, &o, &r, format!("POST {o}/{r}")) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    let (Some(title), Some(key)) = (body["title"].as_str(), body["key"].as_str()) else {
        return err(422, "Validation Failed");
    };
    let key_fields: String = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    if f.repos.values().flat_map(|r| &r.keys).any(|k| k.key == key_fields) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"}]})),
        )
            .into_response();
    }
    f.next_id += 1;
    let k = Key {
        id: f.next_id,
        title: title.to_string(),
        key: key_fields,
        read_only: body["read_only"].as_bool().unwrap_or(false),
    };
    f.repos.get_mut(&slug).unwrap().keys.push(k.clone());
    write_authorized(&f);
    if f.fail == Some(Fail::AfterCreate) {
        return err(500, "Server Error");
    }
    (StatusCode::CREATED, Json(k.json(&slug))).into_response()
}

async fn remove(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((o, r, id)): UrlPath<(String, String, u64)>,
) -> Response {
    let (mut f, slug) = match enter(&s, &headers, &o, &r, format!("DELETE {o}/{r}/{id}")) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    let keys = &mut f.repos.get_mut(&slug).unwrap().keys;
    let before = keys.len();
    keys.retain(|k| k.id != id);
    if keys.len() == before {
        return err(404, "Not Found");
    }
    write_authorized(&f);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(serde::Deserialize)]
struct PullQuery {
    head: Option<String>,
    state: Option<String>,
}

async fn list_pulls(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((o, r)): UrlPath<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<PullQuery>,
) -> Response {
    let (f, slug) = match enter(&s, &headers, &o, &r, format!("GET {o}/{r}/pulls")) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    let want_head = q.head.as_deref().and_then(|h| h.split_once(':').map(|(_, b)| b.to_string()));
    let items: Vec<Value> = f.repos[&slug]
        .pulls
        .iter()
        .filter(|p| want_head.as_ref().is_none_or(|h| &p.head == h))
        .filter(|p| q.state.as_deref().is_none_or(|st| st == "all" || (st == "open") == (p.state == "open")))
        .map(|p| p.json(&slug, "0000000000000000000000000000000000000000"))
        .collect();
    Json(Value::Array(items)).into_response()
}

async fn get_pull(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((o, r, n)): UrlPath<(String, String, u64)>,
) -> Response {
    let (f, slug) = match enter(&s, &headers, &o, &r, format!("GET {o}/{r}/pulls/{n}")) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    match f.repos[&slug].pulls.iter().find(|p| p.number == n) {
        Some(p) => Json(p.json(&slug, "0000000000000000000000000000000000000000")).into_response(),
        None => err(404, "Not Found"),
    }
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": message}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"})),
    )
        .into_response()
}

async fn create_pull(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((o, r)): UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let (mut f, slug) = match enter(&s, &headers, &o, &r, format!("POST {o}/{r}/pulls")) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    let (Some(title), Some(head), Some(base)) = (body["title"].as_str(), body["head"].as_str(), body["base"].as_str())
    else {
        return err(422, "Validation Failed");
    };
    let bare = f.dir.join("repos").join(format!("{slug}.git"));
    let Some(sha) = rev_in(&bare, &format!("refs/heads/{head}")) else {
        return unprocessable(&format!("head '{head}' does not exist"));
    };
    if rev_in(&bare, &format!("refs/heads/{base}")).is_none() {
        return unprocessable(&format!("base '{base}' does not exist"));
    }
    if f.repos[&slug].pulls.iter().any(|p| p.head == head && p.state == "open") {
        return unprocessable(&format!("A pull request already exists for {o}:{head}."));
    }
    f.next_id += 1;
    let p = Pull {
        number: f.next_id - 1000,
        title: title.to_string(),
        body: body["body"].as_str().unwrap_or_default().to_string(),
        head: head.to_string(),
        base: base.to_string(),
        draft: body["draft"].as_bool().unwrap_or(false),
        state: "open".into(),
    };
    f.repos.get_mut(&slug).unwrap().pulls.push(p.clone());
    (StatusCode::CREATED, Json(p.json(&slug, &sha))).into_response()
}

fn rev_in(bare: &Path, r: &str) -> Option<String> {
    let out =
        Command::new("git").arg("--git-dir").arg(bare).args(["rev-parse", "--verify", "--quiet", r]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// sshd's view: one line per registered key, forced to git for its own repository.
fn write_authorized(f: &Fake) {
    let serve = f.dir.join("gitserve");
    let root = f.dir.join("repos");
    let mut out = String::new();
    for (slug, repo) in &f.repos {
        let lines = repo
            .keys
            .iter()
            .map(|k| (k.key.clone(), if k.read_only { "ro" } else { "rw" }))
            .chain(repo.user_keys.iter().map(|k| (k.clone(), "rw")));
        for (key, mode) in lines {
            out.push_str(&format!(
                "command=\"{} {} {slug} {mode}\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {key}\n",
                serve.display(),
                root.display()
            ));
        }
    }
    let tmp = f.dir.join("authorized_keys.tmp");
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(tmp, f.dir.join("authorized_keys")).unwrap();
}

/// The forced command: git fetch/push of the one repository the key belongs to.
const GITSERVE: &str = r#"#!/bin/sh
set -eu
root=$1 repo=$2 mode=$3
cmd=${SSH_ORIGINAL_COMMAND:-}
case "$cmd" in
  "git-upload-pack "*) verb=git-upload-pack ;;
  "git-receive-pack "*)
    verb=git-receive-pack
    if [ "$mode" != rw ]; then echo "ERROR: The key you are authenticating with has been marked as read only." >&2; exit 1; fi ;;
  *) echo "ERROR: only git fetch and push are served" >&2; exit 1 ;;
esac
path=${cmd#* }
path=$(printf '%s' "$path" | tr -d "'")
path=${path#/}
path=${path%/}
path=${path%.git}
if [ "$path" != "$repo" ]; then echo "ERROR: Repository not found." >&2; exit 1; fi
exec "$verb" "$root/$repo.git"
"#;

static KNOWN_HOSTS: Mutex<()> = Mutex::new(());

/// Replaces a git_known_hosts whole (a temporary file renamed over it): the product reads the
/// shared one at every create and gate fetch, and so may a test copying it, at any moment — a
/// plain rewrite (truncate, then write) once let a reader see it empty.
fn write_known_hosts(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension(format!("{:08x}.tmp", rand::random::<u32>()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    assert!(out.status.success(), "{argv:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct GitHub {
    /// The fake API's base URL (SANDBOX_GITHUB_API).
    pub api: String,
    pub token: String,
    /// The git server's address (inside the namespace).
    pub ip: String,
    state: Shared,
    dir: tempfile::TempDir,
    netns: String,
    sshd: Option<Child>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    marker: String,
    /// Its line in git_known_hosts: the server's host key, pinned.
    known_host: String,
}

impl GitHub {
    /// Starts the fake API and the git server; `repos` are created (bare, with a `main` commit and a
    /// branch `existing`).
    pub fn start(repos: &[&str]) -> GitHub {
        let dir = tempfile::Builder::new().prefix("fake-github-").tempdir().unwrap();
        let token = format!("ghp_test{:016x}", rand::random::<u64>());
        let state: Shared = Arc::new(Mutex::new(Fake {
            token: token.clone(),
            repos: repos.iter().map(|r| (r.to_string(), Repo::default())).collect(),
            next_id: 1000,
            fail: None,
            dir: dir.path().to_path_buf(),
            requests: Vec::new(),
        }));
        write_authorized(&state.lock().unwrap());
        let serve = dir.path().join("gitserve");
        std::fs::write(&serve, GITSERVE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o755)).unwrap();
        for r in repos {
            seed_repo(&dir.path().join("repos").join(format!("{r}.git")));
        }

        // The API, on its own runtime thread (tests are plain blocking code).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/repos/{o}/{r}/keys", get(list).post(add))
            .route("/repos/{o}/{r}/keys/{id}", delete(remove))
            .route("/repos/{o}/{r}/pulls", get(list_pulls).post(create_pull))
            .route("/repos/{o}/{r}/pulls/{n}", get(get_pull))
            .with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        rx.await.ok();
                    })
                    .await
                    .unwrap();
            });
        });

        // The git server's host: a namespace with a veth to the host and no default route.
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let netns = format!("sbx-git-{tag}");
        let (vh, vn) = (format!("vg{tag}h"), format!("vg{tag}n"));
        let addrs = run(&["ip", "-4", "-o", "addr"]);
        let (host_ip, ip) = loop {
            let (a, b) = (rand::random::<u8>(), rand::random::<u8>() & 0xfc);
            let net = format!("10.201.{a}.");
            if !addrs.contains(&format!("{net}{}/", b + 1)) {
                break (format!("{net}{}", b + 1), format!("{net}{}", b + 2));
            }
        };
        run(&["ip", "netns", "add", &netns]);
        let mut me = GitHub {
            api,
            token,
            ip: ip.clone(),
            state,
            dir,
            netns: netns.clone(),
            sshd: None,
            shutdown: Some(tx),
            thread: Some(thread),
            marker: format!("# fake-github {tag}"),
            known_host: String::new(),
        };
        run(&["ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &netns]);
        run(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &vh]);
        run(&["ip", "link", "set", &vh, "up"]);
        let ns = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &netns];
            v.extend_from_slice(args);
            run(&v)
        };
        ns(&["ip", "addr", "add", &format!("{ip}/30"), "dev", &vn]);
        ns(&["ip", "link", "set", &vn, "up"]);
        ns(&["ip", "link", "set", "lo", "up"]);
        ns(&["ip", "route", "add", "10.100.0.0/16", "via", &host_ip]);

        // sshd as user `git` (uid 0 in a private mount namespace's /etc/passwd), keys only, each
        // forced to gitserve.
        let d = me.dir.path().to_path_buf();
        let hostkey = d.join("host_ed25519");
        run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey.to_str().unwrap()]);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let mut passwd: String = passwd.lines().filter(|l| !l.starts_with("git:")).map(|l| format!("{l}\n")).collect();
        passwd.push_str(&format!("git:x:0:0:git:{}:/bin/sh\n", d.display()));
        std::fs::write(d.join("passwd"), passwd).unwrap();
        let conf = format!(
            "ListenAddress {ip}:22\nHostKey {hk}\nAuthorizedKeysFile {ak}\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nPermitRootLogin forced-commands-only\n\
             AllowUsers git\nPidFile {pid}\nLogLevel VERBOSE\nUseDNS no\n",
            hk = hostkey.display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), conf).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let sshd = Command::new("ip")
            .args(["netns", "exec", &netns, "unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/passwd && exec /usr/sbin/sshd -D -e -f "$2""#)
            .args(["sh", d.join("passwd").to_str().unwrap(), d.join("sshd_config").to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        me.sshd = Some(sshd);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &netns, "ss", "-Hltn", &format!("src {ip}:22")])
                .output()
                .unwrap();
            if !out.stdout.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "sshd did not listen: {}", me.sshd_log());
            std::thread::sleep(Duration::from_millis(20));
        }

        // Sandboxes pin the server's host key (never accept-new): ~/.sandbox/git_known_hosts.
        let pubkey = std::fs::read_to_string(hostkey.with_extension("pub")).unwrap();
        let fields: Vec<&str> = pubkey.split_whitespace().take(2).collect();
        me.known_host = format!("{ip} {} {}\n", fields.join(" "), me.marker);
        me.pin_host_key(&crate::sandbox_home());
        me
    }

    /// Pins this server's host key in the `git_known_hosts` of a sandbox home (the shared one
    /// at start; a test's own home with this): its line only, appended.
    pub fn pin_host_key(&self, home: &std::path::Path) {
        let _g = KNOWN_HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        let path = home.join("git_known_hosts");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&self.known_host);
        write_known_hosts(&path, &text).unwrap();
    }

    /// `ssh://git@IP/OWNER/REPO.git`
    pub fn url(&self, slug: &str) -> String {
        format!("ssh://git@{}/{slug}.git", self.ip)
    }

    /// Environment for the sandbox binary: the fake API and its token.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("SANDBOX_GITHUB_API", self.api.clone()), ("GH_TOKEN", self.token.clone())]
    }

    pub fn keys(&self, slug: &str) -> Vec<Key> {
        self.state.lock().unwrap().repos.get(slug).map(|r| r.keys.clone()).unwrap_or_default()
    }

    pub fn set_fail(&self, fail: Option<Fail>) {
        self.state.lock().unwrap().fail = fail;
    }

    /// Lets a user key (the owner's own) read and write `slug`.
    pub fn add_user_key(&self, slug: &str, pubkey: &str) {
        let mut f = self.state.lock().unwrap();
        let key: String = pubkey.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        f.repos.get_mut(slug).unwrap().user_keys.push(key);
        write_authorized(&f);
    }

    pub fn pulls(&self, slug: &str) -> Vec<Pull> {
        self.state.lock().unwrap().repos.get(slug).map(|r| r.pulls.clone()).unwrap_or_default()
    }

    /// Someone merged (or closed) the pull request on "GitHub".
    pub fn set_pull_state(&self, slug: &str, number: u64, state: &str) {
        let mut f = self.state.lock().unwrap();
        let p = f.repos.get_mut(slug).unwrap().pulls.iter_mut().find(|p| p.number == number).unwrap();
        p.state = state.to_string();
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The bare repository on the server.
    pub fn repo_dir(&self, slug: &str) -> PathBuf {
        self.dir.path().join("repos").join(format!("{slug}.git"))
    }

    /// `git rev-parse REF` in the server's repository (None: no such ref).
    pub fn rev(&self, slug: &str, r: &str) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(self.repo_dir(slug))
            .args(["rev-parse", "--verify", "--quiet", r])
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Commits FILES (path, content) on BRANCH of the server's repository (made from `main` when
    /// new) as a push would; returns the new commit.
    pub fn commit(&self, slug: &str, branch: &str, files: &[(&str, &str)]) -> String {
        let work = tempfile::tempdir().unwrap();
        let w = work.path().to_str().unwrap().to_string();
        let bare = self.repo_dir(slug);
        run(&["git", "clone", "-q", bare.to_str().unwrap(), &w]);
        let git = |args: &[&str]| {
            let mut v = vec!["git", "-C", &w, "-c", "user.name=t", "-c", "user.email=t@example.invalid"];
            v.extend_from_slice(args);
            run(&v)
        };
        let exists = self.rev(slug, &format!("refs/heads/{branch}")).is_some();
        let start = if exists { format!("origin/{branch}") } else { "origin/main".to_string() };
        git(&["checkout", "-q", "-B", branch, &start]);
        for (path, content) in files {
            let p = work.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            git(&["add", path]);
        }
        git(&["commit", "-q", "-m", &format!("update {}", files.iter().map(|f| f.0).collect::<Vec<_>>().join(", "))]);
        git(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
        self.rev(slug, &format!("refs/heads/{branch}")).unwrap()
    }

    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

/// A bare repository with one commit on `main` and a second branch `existing`: a README, a guide
/// in a directory, a binary logo and a file with a space in its name.
fn seed_repo(bare: &Path) {
    std::fs::create_dir_all(bare).unwrap();
    let b = bare.to_str().unwrap();
    run(&["git", "init", "-q", "--bare", "-b", "main", b]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let git = |args: &[&str]| {
        let mut v = vec!["git", "-C", w, "-c", "user.name=t", "-c", "user.email=t@example.invalid"];
        v.extend_from_slice(args);
        run(&v)
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(work.path().join("README.md"), "hello from the fake GitHub\n").unwrap();
    std::fs::create_dir_all(work.path().join("docs")).unwrap();
    let guide: String = (1..=20).map(|i| format!("step {i}\n")).collect();
    std::fs::write(work.path().join("docs/guide.md"), guide).unwrap();
    std::fs::write(work.path().join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    std::fs::write(work.path().join("old name.txt"), "to be renamed\nline two\nline three\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    git(&["branch", "existing"]);
    git(&["push", "-q", b, "main", "existing"]);
}

impl Drop for GitHub {
    fn drop(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("sshd.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _g = KNOWN_HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        let path = crate::sandbox_home().join("git_known_hosts");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let kept: String = text.lines().filter(|l| !l.ends_with(&self.marker)).map(|l| format!("{l}\n")).collect();
            let _ = write_known_hosts(&path, &kept);
        }
    }
}
