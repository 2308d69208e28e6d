//! Instances: list, create, state changes, config and devices, snapshots, metadata templates.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{Incus, enc, name_taken, op_id};
use super::error::{IncusError, Result};
use super::types::*;

impl Incus {
    // ---- instances --------------------------------------------------------------------------

    /// All instances with state and snapshots, in one call.
    pub async fn instances_full(&self) -> Result<Vec<Instance>> {
        self.sync(Method::GET, "/1.0/instances?recursion=2", None, "instances").await
    }

    /// All instances with config and devices but without state (cheap).
    pub async fn instances(&self) -> Result<Vec<Instance>> {
        self.sync(Method::GET, "/1.0/instances?recursion=1", None, "instances").await
    }

    pub async fn instance(&self, name: &str) -> Result<Instance> {
        self.sync(Method::GET, &format!("/1.0/instances/{}", enc(name)), None, &format!("instance '{name}'")).await
    }

    pub async fn instance_state(&self, name: &str) -> Result<InstanceState> {
        self.sync(Method::GET, &format!("/1.0/instances/{}/state", enc(name)), None, &format!("instance '{name}'"))
            .await
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        match self.instance(name).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn create_instance(&self, req: &InstancesPost) -> Result<()> {
        let body = serde_json::to_value(req).map_err(|e| IncusError::Decode(e.to_string()))?;
        let path = match &req.target {
            Some(t) => format!("/1.0/instances?target={}", enc(t)),
            None => "/1.0/instances".into(),
        };
        let what = format!("instance '{}'", req.name);
        self.run(Method::POST, &path, Some(&body), &what).await.map(|_| ()).map_err(|e| name_taken(e, &what))
    }

    /// start | stop | restart | freeze | unfreeze
    pub async fn set_state(&self, name: &str, action: &str, force: bool, timeout_s: i64) -> Result<()> {
        let body = json!({ "action": action, "force": force, "timeout": timeout_s });
        self.run(
            Method::PUT,
            &format!("/1.0/instances/{}/state", enc(name)),
            Some(&body),
            &format!("instance '{name}'"),
        )
        .await
        .map(|_| ())
    }

    pub async fn start(&self, name: &str) -> Result<()> {
        self.set_state(name, "start", false, -1).await
    }

    /// Stops; `force` kills at once, otherwise a clean shutdown with a timeout then a kill.
    pub async fn stop(&self, name: &str, force: bool) -> Result<()> {
        self.set_state(name, "stop", force, if force { -1 } else { 30 }).await
    }

    pub async fn delete_instance(&self, name: &str) -> Result<()> {
        self.run(Method::DELETE, &format!("/1.0/instances/{}", enc(name)), None, &format!("instance '{name}'"))
            .await
            .map(|_| ())
    }

    /// Stops (if needed) and deletes an instance; a missing one is fine. Retries while another
    /// operation (an interrupted stop, say) still holds the instance.
    pub async fn delete_force(&self, name: &str) -> Result<()> {
        crate::poll::retry(
            5,
            std::time::Duration::from_millis(300),
            |_| true,
            || async {
                if let Err(e) = self.stop(name, true).await
                    && e.is_not_found()
                {
                    return Ok(());
                }
                match self.delete_instance(name).await {
                    Err(e) if e.is_not_found() => Ok(()),
                    r => r,
                }
            },
        )
        .await
    }

    pub async fn rename_instance(&self, name: &str, new_name: &str) -> Result<()> {
        let body = json!({ "name": new_name });
        let what = format!("instance '{new_name}'");
        self.run(Method::POST, &format!("/1.0/instances/{}", enc(name)), Some(&body), &what)
            .await
            .map(|_| ())
            .map_err(|e| name_taken(e, &what))
    }

    /// Merges config keys and devices (PATCH semantics: keys given are set, others kept).
    /// A config value of "" removes the key.
    pub async fn patch_instance(&self, name: &str, config: Config, devices: Devices) -> Result<()> {
        let mut body = serde_json::Map::new();
        if !config.is_empty() {
            body.insert("config".into(), serde_json::to_value(config).unwrap_or_default());
        }
        if !devices.is_empty() {
            body.insert("devices".into(), serde_json::to_value(devices).unwrap_or_default());
        }
        let body = Value::Object(body);
        let (path, what) = (format!("/1.0/instances/{}", enc(name)), format!("instance '{name}'"));
        // Setting the same keys again is harmless if the refused write went through after all.
        crate::poll::retry(SNAPSHOT_TRIES, SNAPSHOT_PAUSE, snapshot_in_flight, || {
            self.run(Method::PATCH, &path, Some(&body), &what)
        })
        .await
        .map(|_| ())
    }

    /// Removes devices by name (PATCH cannot delete, so this is a read-modify-PUT guarded by ETag).
    pub async fn remove_devices(&self, name: &str, device_names: &[&str]) -> Result<()> {
        self.modify_instance(name, |inst| {
            for d in device_names {
                inst.devices.remove(*d);
            }
        })
        .await
    }

    /// The instance and its ETag, for a conditional write (`patch_config_if`).
    pub async fn instance_tagged(&self, name: &str) -> Result<(Instance, Option<String>)> {
        let url = format!("{}/1.0/instances/{}", self.base, enc(name));
        let resp = self.http.get(url).send().await.map_err(|e| self.map_transport(e))?;
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let env = self.envelope(resp, &format!("instance '{name}'")).await?;
        let inst = serde_json::from_value(env.metadata).map_err(|e| IncusError::Decode(e.to_string()))?;
        Ok((inst, etag))
    }

    /// Sets config keys ("" removes one) only if the instance is still as it was when read with
    /// `etag` (If-Match): Ok(false) when someone wrote in between (412), so the caller reads
    /// again and decides again instead of putting an old value back.
    pub async fn patch_config_if(&self, name: &str, config: Config, etag: Option<&str>) -> Result<bool> {
        // A refused write that went through after all changed the ETag: the next try answers
        // "changed meanwhile" and the caller decides again on a fresh read.
        crate::poll::retry(SNAPSHOT_TRIES, SNAPSHOT_PAUSE, snapshot_in_flight, || {
            self.patch_config_if_once(name, &config, etag)
        })
        .await
    }

    async fn patch_config_if_once(&self, name: &str, config: &Config, etag: Option<&str>) -> Result<bool> {
        let url = format!("{}/1.0/instances/{}", self.base, enc(name));
        let mut req = self.http.patch(url).json(&json!({ "config": config }));
        if let Some(etag) = etag {
            req = req.header("If-Match", etag);
        }
        let resp = req.send().await.map_err(|e| self.map_transport(e))?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(false);
        }
        let what = format!("instance '{name}'");
        let env = self.envelope(resp, &what).await?;
        if env.kind == "async" {
            self.wait_operation(&op_id(&env)?, &what).await?;
        }
        Ok(true)
    }

    /// Read-modify-write of an instance's config and devices with ETag protection (retried on a race).
    pub async fn modify_instance(&self, name: &str, f: impl Fn(&mut Instance)) -> Result<()> {
        let path = format!("/1.0/instances/{}", enc(name));
        let what = format!("instance '{name}'");
        for _ in 0..5 {
            let (mut inst, etag) = self.instance_tagged(name).await?;
            f(&mut inst);
            let body = json!({ "config": inst.config, "devices": inst.devices, "profiles": inst.profiles });
            let mut req = self.http.put(format!("{}{}", self.base, path)).json(&body);
            if let Some(etag) = &etag {
                req = req.header("If-Match", etag);
            }
            let resp = req.send().await.map_err(|e| self.map_transport(e))?;
            if resp.status() == StatusCode::PRECONDITION_FAILED {
                continue;
            }
            let env = self.envelope(resp, &what).await?;
            if env.kind == "async" {
                self.wait_operation(&op_id(&env)?, &what).await?;
            }
            return Ok(());
        }
        Err(IncusError::Operation { message: format!("{what} kept changing while being updated; retry") })
    }

    // ---- snapshots --------------------------------------------------------------------------

    pub async fn create_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let body = json!({ "name": snapshot, "stateful": false });
        let what = format!("snapshot '{name}/{snapshot}'");
        self.run(Method::POST, &format!("/1.0/instances/{}/snapshots", enc(name)), Some(&body), &what)
            .await
            .map(|_| ())
            .map_err(|e| name_taken(e, &what))
    }

    pub async fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>> {
        self.sync(
            Method::GET,
            &format!("/1.0/instances/{}/snapshots?recursion=1", enc(name)),
            None,
            &format!("instance '{name}'"),
        )
        .await
    }

    /// Puts the instance's disk back to the snapshot (and, Incus's way, its config and devices
    /// too: callers that keep their own put them back). The instance must be stopped.
    pub async fn restore_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let body = json!({ "restore": snapshot });
        self.run(
            Method::PUT,
            &format!("/1.0/instances/{}", enc(name)),
            Some(&body),
            &format!("snapshot '{name}/{snapshot}'"),
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        self.run(
            Method::DELETE,
            &format!("/1.0/instances/{}/snapshots/{}", enc(name), enc(snapshot)),
            None,
            &format!("snapshot '{name}/{snapshot}'"),
        )
        .await
        .map(|_| ())
    }

    // ---- metadata templates (written by Incus on create/copy/start) --------------------------

    pub async fn instance_metadata(&self, name: &str) -> Result<Value> {
        self.sync(Method::GET, &format!("/1.0/instances/{}/metadata", enc(name)), None, "instance metadata").await
    }

    pub async fn put_instance_metadata(&self, name: &str, metadata: &Value) -> Result<()> {
        let path = format!("/1.0/instances/{}/metadata", enc(name));
        self.run(Method::PUT, &path, Some(metadata), "instance metadata").await.map(|_| ())
    }

    /// Creates or replaces a template file (`templates/FILE` of the instance).
    pub async fn put_instance_template(&self, name: &str, file: &str, content: Vec<u8>) -> Result<()> {
        let url = format!("{}/1.0/instances/{}/metadata/templates?path={}", self.base, enc(name), enc(file));
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/octet-stream")
            .body(content)
            .send()
            .await
            .map_err(|e| self.map_transport(e))?;
        self.envelope(resp, &format!("template '{file}' of '{name}'")).await.map(|_| ())
    }
}

/// Incus refuses a config write while a snapshot of the instance is being made or removed
/// ("Failed to write backup file: Instance snapshot record count doesn't match instance snapshot
/// volume record count"); a moment later the same write goes through.
fn snapshot_in_flight(e: &IncusError) -> bool {
    e.to_string().contains("snapshot record count doesn't match")
}
const SNAPSHOT_TRIES: u32 = 8;
const SNAPSHOT_PAUSE: std::time::Duration = std::time::Duration::from_millis(60);
