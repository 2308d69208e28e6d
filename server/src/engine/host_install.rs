//! `sandbox host install`: this machine as a sandbox host — Incus, its btrfs pool and bridge, the
//! host-side tools. The steps are one bash file the binary carries
//! (`scripts/lib/install-host-steps.sh`, also what `scripts/install-host.sh` and `setup --orb`
//! run), so the VSIX alone can set a machine up. It needs root; the caller is told why before
//! sudo asks for anything.
use crate::error::{EngineError, Result};

/// The steps, as shipped.
pub const STEPS: &str = include_str!("../../../scripts/lib/install-host-steps.sh");

/// Whether sandboxes reach the internet through the bridge's NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Nat {
    On,
    Off,
}

impl Nat {
    pub fn word(self) -> &'static str {
        match self {
            Nat::On => "on",
            Nat::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    pub nat: Nat,
    /// The btrfs pool's loop file: `20GiB`, `512MiB`, `1TiB`.
    pub pool_size: String,
}

/// A pool size Incus takes: digits then MiB, GiB or TiB (nothing else reaches the script).
pub fn validate_pool_size(size: &str) -> Result<()> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && ["MiB", "GiB", "TiB"].contains(&unit);
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "pool size",
            format!("'{size}' is not a size like 20GiB"),
            "give a whole number of MiB, GiB or TiB, e.g. --pool-size 20GiB",
        ))
    }
}

/// The script's own arguments (after `$0`).
pub fn script_args(o: &InstallOptions) -> Vec<String> {
    vec!["--nat".into(), o.nat.word().into(), "--pool-size".into(), o.pool_size.clone()]
}

/// `bash -c STEPS install-host ARGS…`: the script is a constant of the binary; the options are
/// positional parameters, never spliced into its text.
pub fn bash_argv(o: &InstallOptions) -> Vec<String> {
    let mut v = vec!["bash".to_string(), "-c".into(), STEPS.into(), "install-host".into()];
    v.extend(script_args(o));
    v
}

/// What the install does and why it needs root, said before sudo asks for a password.
pub fn explanation(o: &InstallOptions) -> String {
    let nat = match o.nat {
        Nat::On => "NAT on: sandboxes reach the internet",
        Nat::Off => "NAT off: sandboxes reach only this machine",
    };
    format!(
        "Setting up this machine for sandboxes: installs Incus and the host tools sandboxes use\n\
         (btrfs-progs, squid-openssl, nftables, OpenSSH, tmux, dnsmasq) from your distribution's packages,\n\
         starts the Incus daemon, and creates a btrfs storage pool ({size}, a loop file) and the bridge\n\
         incusbr0 ({nat}). Installing packages and starting a daemon need root.",
        size = o.pool_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_sizes() {
        for ok in ["20GiB", "512MiB", "1TiB", "100GiB"] {
            assert!(validate_pool_size(ok).is_ok(), "{ok}");
        }
        for bad in ["", "GiB", "20", "20GB", "020GiB", "20 GiB", "-1GiB", "20GiB;reboot", "1234567GiB", "$(x)GiB"] {
            assert!(validate_pool_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_options_are_argv_after_the_constant_script() {
        let o = InstallOptions { nat: Nat::Off, pool_size: "20GiB".into() };
        let argv = bash_argv(&o);
        assert_eq!(argv[..2], ["bash", "-c"]);
        assert_eq!(argv[2], STEPS);
        assert_eq!(argv[3..], ["install-host", "--nat", "off", "--pool-size", "20GiB"]);
    }

    /// The shipped steps parse, and run nothing as a non-root user but the refusal.
    #[test]
    fn the_steps_parse() {
        let st = std::process::Command::new("bash").args(["-n", "-c", STEPS]).status().unwrap();
        assert!(st.success());
    }
}
