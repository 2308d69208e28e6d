//! Claude Code's hooks in every golden image's managed settings
//! (`/etc/claude-code/managed-settings.json`: a repository's or the user's own settings add hooks
//! but cannot remove these). Each event of engine::agents::state::HookEvent runs one command that
//! posts the hook's JSON input, unchanged, to the sandbox's hook socket on the host (carried in
//! by its `anthropic` device) and always succeeds quietly: it prints nothing (a SessionStart or
//! UserPromptSubmit hook's output would reach the model) and never blocks Claude for long.
use serde_json::{Value, json};

use crate::engine::agents::relay::SOCKET_NAME;
use crate::engine::agents::state::HookEvent;
use crate::engine::anthropic::SANDBOX_DIR;

/// Seconds Claude Code waits for the hook at most (curl gives up after 2).
const TIMEOUT: u64 = 5;

/// The command: no input of any kind is part of it (the event comes on stdin).
pub fn command() -> String {
    format!(
        "curl -s -m 2 -o /dev/null --unix-socket {SANDBOX_DIR}/{SOCKET_NAME} -H 'content-type: application/json' \
         --data-binary @- http://sandbox/hook 2>/dev/null || true"
    )
}

fn ours(entry: &Value) -> bool {
    entry["hooks"].as_array().is_some_and(|hs| {
        hs.iter().any(|h| h["command"].as_str().is_some_and(|c| c.contains(&format!("{SANDBOX_DIR}/{SOCKET_NAME}"))))
    })
}

/// The managed settings with our hook on every event: entries an image's own script put there
/// stay, an older entry of ours is replaced. Refuses (None) a `hooks` that is not an object of
/// arrays: a file it cannot fully understand is not rewritten.
pub fn add_to(settings: &mut Value) -> Option<()> {
    let hooks = settings.as_object_mut()?.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks.as_object_mut()?;
    for event in HookEvent::ALL {
        let list = hooks.entry(event.name()).or_insert_with(|| json!([]));
        let list = list.as_array_mut()?;
        list.retain(|e| !ours(e));
        list.push(json!({"hooks": [{"type": "command", "command": command(), "timeout": TIMEOUT}]}));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_gets_one_hook_and_an_images_own_stay() {
        let mut s =
            json!({"env": {"X": "1"}, "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-me"}]}]}});
        add_to(&mut s).unwrap();
        add_to(&mut s).unwrap();
        for e in HookEvent::ALL {
            let ours_count = s["hooks"][e.name()].as_array().unwrap().iter().filter(|x| ours(x)).count();
            assert_eq!(ours_count, 1, "{}", e.name());
        }
        assert_eq!(s["hooks"]["Stop"].as_array().unwrap().len(), 2);
        assert_eq!(s["hooks"]["Stop"][0]["hooks"][0]["command"], "notify-me");
        assert_eq!(s["env"]["X"], "1");
        assert!(add_to(&mut json!({"hooks": {"Stop": "weird"}})).is_none());
        assert!(add_to(&mut json!({"hooks": []})).is_none());
    }

    #[test]
    fn the_command_parses_and_names_no_input() {
        let st = std::process::Command::new("sh").arg("-n").arg("-c").arg(command()).status().unwrap();
        assert!(st.success());
        assert!(command().ends_with("|| true"));
    }
}
