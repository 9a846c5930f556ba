//! Where a flow's own model may call (no SSRF): a flow's `openai` model URL is
//! tenant input, so its host must be on the operator's allow-list
//! (`outbound.flow_model_hosts`), and even then an address that is loopback,
//! link-local, private, shared (CGNAT) or unspecified — IPv4 or IPv6,
//! including mapped, compatible and NAT64 forms — is refused unless the
//! operator names the host in `outbound.allow_private_hosts`. Names are
//! checked after DNS resolution, at registration and again on every
//! connection (the client's resolver filters), and redirects are followed
//! only onto allowed hosts. Registry models (the operator's) are unaffected.
//!
//! Touches DNS only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::OutboundConfig;

/// The operator's rules for calls a tenant's flow asks for.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    config: Arc<OutboundConfig>,
}

impl Outbound {
    /// The rules of `config`.
    pub fn new(config: OutboundConfig) -> Self {
        Self { config: Arc::new(config) }
    }

    /// Whether `host` is on the allow-list (`name` or `*.suffix`).
    fn listed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.config.flow_model_hosts.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            if ip.is_some() && ip == pattern.parse::<IpAddr>().ok() {
                return true; // the URL parser normalizes IP literals
            }
            match pattern.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == pattern,
            }
        })
    }

    fn private_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        let ip = host.parse::<IpAddr>().ok();
        self.config
            .allow_private_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || (ip.is_some() && h.parse::<IpAddr>().ok() == ip))
    }

    /// Checks a URL before any connection: an allowed host, and an IP
    /// literal that is not internal (unless allowed by name).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let url = Url::parse(url).map_err(|_| format!("`{url}` is not a URL"))?;
        let host = url.host_str().ok_or_else(|| "the URL has no host".to_owned())?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.listed(bare) {
            return Err(format!("host `{bare}` is not on the operator's list (outbound.flow_model_hosts)"));
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) if internal(ip) && !self.private_allowed(bare) => Err(refused(bare, ip)),
            _ => Ok(()),
        }
    }

    /// [`Outbound::check_url`], then every address the host resolves to.
    pub async fn check_resolved(&self, url: &str) -> Result<(), String> {
        self.check_url(url)?;
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok() || self.private_allowed(host) {
            return Ok(());
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("`{host}`: {e}"))?;
        for addr in addrs {
            if internal(addr.ip()) {
                return Err(refused(host, addr.ip()));
            }
        }
        Ok(())
    }

    /// A client builder whose resolver drops internal addresses and whose
    /// redirects stay on allowed hosts.
    pub fn guard(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let redirects = self.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let ok = attempt.previous().len() < 5 && redirects.check_url(attempt.url().as_str()).is_ok();
            if ok { attempt.follow() } else { attempt.stop() }
        });
        builder.dns_resolver(Arc::new(self.clone())).redirect(policy)
    }
}

impl Resolve for Outbound {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = rules.private_allowed(&host);
            let kept: Vec<SocketAddr> = found.filter(|a| allowed || !internal(a.ip())).collect();
            if kept.is_empty() {
                return Err(format!("`{host}` resolves only to internal addresses (refused)").into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

fn refused(host: &str, ip: IpAddr) -> String {
    format!("`{host}` is an internal address ({ip}); refused unless outbound.allow_private_hosts names it")
}

/// Loopback, link-local, private, shared, unspecified, broadcast, and their
/// IPv6 forms (mapped, compatible, NAT64 included).
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return internal_v4(embedded); // IPv4-compatible ::a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return internal_v4(embedded); // NAT64 64:ff9b::a.b.c.d
    }
    ip.is_loopback() || ip.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_form_are_recognized() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_listed_hosts_pass_and_internal_literals_need_naming() {
        let rules = |hosts: &[&str], private: &[&str]| {
            Outbound::new(OutboundConfig {
                flow_model_hosts: hosts.iter().map(|h| h.to_string()).collect(),
                allow_private_hosts: private.iter().map(|h| h.to_string()).collect(),
            })
        };
        assert!(rules(&[], &[]).check_url("https://api.example.com/v1").is_err());
        assert!(rules(&["*.example.com"], &[]).check_url("https://api.example.com/v1").is_ok());
        assert!(rules(&["*.example.com"], &[]).check_url("https://example.com.evil.io/v1").is_err());
        assert!(rules(&["127.0.0.1"], &[]).check_url("http://127.0.0.1:9/v1").is_err());
        assert!(rules(&["127.0.0.1"], &["127.0.0.1"]).check_url("http://127.0.0.1:9/v1").is_ok());
        assert!(rules(&["::1"], &[]).check_url("http://[::1]:9/v1").is_err());
    }
}
