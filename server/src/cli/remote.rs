//! `sandbox remote add | list | use | remove`: where Incus runs.
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output;
use crate::engine::Result;
use crate::remotes::{self, AddOptions, HostKind, LOCAL, Remotes};

#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// Add an Incus server (or cluster) over HTTPS with a trust token from
    /// `incus config trust add NAME` on the server.
    Add(AddArgs),
    /// List remotes; `*` marks the one in use.
    #[command(alias = "ls")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Use this remote from now on (`local` = this machine's Incus).
    Use { name: String },
    /// Forget a remote (the server keeps trusting the certificate until you remove it there).
    #[command(alias = "rm")]
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    name: String,
    /// https://HOST:PORT (default: the first address in the token).
    url: Option<String>,
    /// The trust token printed by `incus config trust add NAME` on the server.
    #[arg(long, env = "SANDBOX_TRUST_TOKEN", hide_env_values = true)]
    token: String,
    /// Incus runs in this OrbStack machine (macOS): host-side steps go through `orb run -m`.
    #[arg(long, value_name = "MACHINE")]
    orb: Option<String>,
    /// SSH jump host to reach sandboxes (their ports listen on the server's loopback);
    /// default: the URL's host.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    ssh_jump: Option<String>,
    /// Use the remote from now on.
    #[arg(long = "use")]
    use_it: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    url: String,
    host: String,
    current: bool,
}

pub async fn run(cmd: RemoteCmd) -> Result<ExitCode> {
    match cmd {
        RemoteCmd::Add(a) => {
            let host = a.orb.map(|machine| HostKind::Orb { machine }).unwrap_or_default();
            let r = remotes::add(AddOptions {
                name: a.name.clone(),
                url: a.url,
                token: a.token,
                host,
                ssh_jump: a.ssh_jump,
            })
            .await?;
            if a.use_it {
                remotes::use_remote(&a.name)?;
            }
            outln!("remote '{}' added: {} (certificate pinned, client trusted)", a.name, r.url);
        }
        RemoteCmd::List { json } => {
            let all = Remotes::load()?;
            let current = all.selected(None);
            let mut rows = vec![Row {
                name: LOCAL.into(),
                url: "unix socket".into(),
                host: "this machine".into(),
                current: current == LOCAL,
            }];
            rows.extend(all.remotes.iter().map(|(n, r)| Row {
                name: n.clone(),
                url: r.url.clone(),
                host: match &r.host {
                    HostKind::Server => "server (run sandbox there for keys/egress)".into(),
                    HostKind::Orb { machine } => format!("orb machine {machine}"),
                },
                current: *n == current,
            }));
            if json {
                output::json(&rows);
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![format!("{}{}", r.name, if r.current { " *" } else { "" }), r.url.clone(), r.host.clone()]
                    })
                    .collect();
                output::table(&["NAME", "URL", "HOST SIDE"], &t);
            }
        }
        RemoteCmd::Use { name } => {
            remotes::use_remote(&name)?;
            outln!("using remote '{name}'");
        }
        RemoteCmd::Remove { name } => {
            remotes::remove(&name)?;
            outln!("remote '{name}' removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
