//! Extra port forwards: `expose` / `unexpose` (127.0.0.1 only, like the built-in ones).
use super::ports::{PortRole, port_free, proxy};
use super::validate::{self, Proto};
use super::{Engine, lock, sandbox};
use crate::error::{EngineError, Result};
use crate::incus::{Config, Devices};

impl Engine {
    /// Adds `port-PORT-PROTO` devices: 127.0.0.1:(PORT+slot or HOST_PORT) → PORT in the sandbox.
    /// A host port below 1024 only with `allow_low_port`: a forward there takes the connections
    /// meant for a system service that may start later (its NAT rule comes first).
    pub async fn expose(
        &self,
        name: &str,
        port: &str,
        protos: &str,
        host_port: Option<&str>,
        allow_low_port: bool,
    ) -> Result<Vec<super::sandbox::PortForward>> {
        validate::sandbox_name(name)?;
        let port = validate::port("port", port)?;
        let protos = validate::protos(protos)?;
        let host_port = host_port.map(|h| validate::port("host port", h)).transpose()?;
        let _g = lock::acquire().await?;
        let all = sandbox::list(&self.incus).await?;
        let s = all.iter().find(|s| s.name == name).ok_or_else(|| EngineError::sandbox_not_found(name))?;
        let hp = match host_port {
            Some(h) => h as u32,
            None => port as u32 + s.slot.unwrap_or(0),
        };
        if hp > 65535 {
            return Err(EngineError::invalid(
                "host port",
                format!("{port} + slot {} = {hp} is above 65535", s.slot.unwrap_or(0)),
                "give --host-port N",
            ));
        }
        if hp < 1024 && !allow_low_port {
            return Err(EngineError::invalid(
                "host port",
                format!(
                    "host port {hp} is below 1024, where system services listen (the forward would take their connections)"
                ),
                format!(
                    "give a host port of 1024 or more (e.g. --host-port {}), or add --allow-low-port if you mean it",
                    8000 + port as u32 % 1000
                ),
            ));
        }
        let mut devices = Devices::new();
        for p in &protos {
            let dev = format!("port-{port}-{}", p.as_str());
            if s.ports.iter().any(|x| x.device == dev) {
                return Err(EngineError::Conflict {
                    what: format!("port {port}/{} on '{name}'", p.as_str()),
                    hint: format!("`sandbox unexpose {name} {port}` first"),
                });
            }
            if let Some(holder) = all.iter().find(|x| x.ports.iter().any(|q| q.host_port as u32 == hp && q.proto == *p))
            {
                return Err(EngineError::invalid(
                    "host port",
                    format!("host port {hp}/{} is held by sandbox '{}'", p.as_str(), holder.name),
                    "choose another with --host-port N",
                ));
            }
            if *p == Proto::Tcp && !port_free(hp) {
                return Err(EngineError::invalid(
                    "host port",
                    format!("host port {hp} is in use by another program"),
                    "choose another with --host-port N",
                ));
            }
            if *p == Proto::Udp && std::net::UdpSocket::bind(("127.0.0.1", hp as u16)).is_err() {
                return Err(EngineError::invalid(
                    "host port",
                    format!("host port {hp}/udp is in use"),
                    "choose another with --host-port N",
                ));
            }
            let ip = s.ip.as_deref().filter(|_| s.managed);
            devices.insert(dev, proxy(p.as_str(), hp, ip, port as u32));
        }
        self.incus.patch_instance(&s.instance, Config::new(), devices).await?;
        let s = sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))?;
        Ok(s.ports.into_iter().filter(|p| p.role == PortRole::Extra && p.container_port == port).collect())
    }

    pub async fn unexpose(&self, name: &str, port: &str) -> Result<()> {
        validate::sandbox_name(name)?;
        let port = validate::port("port", port)?;
        let s = sandbox::get(&self.incus, name).await?.ok_or_else(|| EngineError::sandbox_not_found(name))?;
        let devs: Vec<String> = s
            .ports
            .iter()
            .filter(|p| p.role == PortRole::Extra && p.container_port == port)
            .map(|p| p.device.clone())
            .collect();
        if devs.is_empty() {
            return Err(EngineError::not_found(
                format!("exposed port {port} on '{name}'"),
                "`sandbox list` shows the exposed ports",
            ));
        }
        let refs: Vec<&str> = devs.iter().map(String::as_str).collect();
        self.incus.remove_devices(&s.instance, &refs).await?;
        Ok(())
    }
}
