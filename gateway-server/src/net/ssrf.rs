//! Server-side request forgery checks for URLs given through the admin API.
//!
//! A backend URL makes the hub send requests (with configured headers) to an
//! address of the caller's choosing, from inside the hub's network. The
//! check refuses the destinations that are never a legitimate MCP server and
//! are valuable to an attacker:
//!
//! * link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata
//!   endpoints (169.254.169.254, 169.254.170.2, fd00:ec2::254,
//!   100.100.100.200, `metadata.google.internal`), which hand out instance
//!   credentials — unless `server.allow_link_local_urls = true`;
//! * unspecified (0.0.0.0/8, ::), multicast, broadcast and reserved
//!   (240.0.0.0/4) addresses, always;
//! * loopback and private ranges only when `server.block_private_urls = true`:
//!   by default they are allowed, because a gateway exists to reach internal
//!   servers.
//!
//! Every address the host resolves to must pass: one bad address among good
//! ones is enough to refuse, since the connector may pick any. IPv4-mapped
//! (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::/96`) IPv6 addresses are judged by
//! the IPv4 address they carry. Numeric host spellings (`http://2852039166/`,
//! `http://0xA9FEA9FE/`, `http://0251.0376.0251.0376/`) are normalised to
//! dotted IPv4 by the WHATWG URL parser before the check.
//!
//! The check runs when a URL is accepted; the connector resolves the name
//! again when it connects, so a DNS record changed in between (rebinding) is
//! not caught here. Pinning the checked addresses in the connector would
//! close that gap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::ServerConfig;

/// Host names of cloud metadata services (lower case, no trailing dot).
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata"];

/// What [`check_url`] lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Refuse loopback and private addresses too.
    pub block_private: bool,
    /// Accept link-local and metadata addresses.
    pub allow_link_local: bool,
}

impl SsrfPolicy {
    /// The policy `[server]` configures.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self { block_private: server.block_private_urls, allow_link_local: server.allow_link_local_urls }
    }
}

/// Why a URL was refused. Messages name the reason and the address, never
/// the URL's credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// Not a URL.
    #[error("invalid URL: {0}")]
    Invalid(String),
    /// Not `http` or `https`.
    #[error("URL scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    /// No host to connect to.
    #[error("URL has no host")]
    NoHost,
    /// The host name does not resolve.
    #[error("cannot resolve host `{host}`: {reason}")]
    Resolve { host: String, reason: String },
    /// The host name is a cloud metadata service.
    #[error("host `{0}` is a cloud metadata service (set server.allow_link_local_urls = true to allow it)")]
    MetadataHost(String),
    /// An address the host resolves to is refused.
    #[error("address {addr} is {class}{hint}")]
    Refused { addr: IpAddr, class: AddrClass, hint: &'static str },
}

/// The kinds of address the check tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// An ordinary routable address.
    Public,
    Loopback,
    Private,
    LinkLocal,
    Metadata,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
}

impl std::fmt::Display for AddrClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "a cloud metadata address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Reserved => "a reserved address",
        })
    }
}

/// Classifies one address; IPv4 carried in IPv6 (mapped, NAT64) is judged as IPv4.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    if matches!(o, [169, 254, 169, 254] | [169, 254, 170, 2] | [100, 100, 100, 200]) {
        return AddrClass::Metadata;
    }
    if ip.is_broadcast() {
        return AddrClass::Broadcast;
    }
    if o[0] == 0 {
        // 0.0.0.0/8 is "this network"; connecting to it reaches the local host.
        return AddrClass::Unspecified;
    }
    if ip.is_multicast() {
        return AddrClass::Multicast;
    }
    if o[0] >= 240 {
        return AddrClass::Reserved;
    }
    if ip.is_link_local() {
        return AddrClass::LinkLocal;
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    // RFC 1918, carrier-grade NAT (100.64/10), IETF protocol assignments (192.0.0/24).
    if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) || matches!(o, [192, 0, 0, _]) {
        return AddrClass::Private;
    }
    AddrClass::Public
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return AddrClass::Metadata;
    }
    if ip.is_unspecified() {
        return AddrClass::Unspecified;
    }
    if ip.is_multicast() {
        return AddrClass::Multicast;
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return AddrClass::LinkLocal;
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
    if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        return AddrClass::Private;
    }
    AddrClass::Public
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`) or NAT64
/// well-known-prefix (`64:ff9b::/96`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// Whether `policy` lets the hub connect to `ip`; `Err` names why not.
pub fn check_ip(ip: IpAddr, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let class = classify(ip);
    let hint = match class {
        AddrClass::Public => return Ok(()),
        AddrClass::Loopback | AddrClass::Private if !policy.block_private => return Ok(()),
        AddrClass::Loopback | AddrClass::Private => " (refused because server.block_private_urls = true)",
        AddrClass::LinkLocal | AddrClass::Metadata if policy.allow_link_local => return Ok(()),
        AddrClass::LinkLocal | AddrClass::Metadata => " (set server.allow_link_local_urls = true to allow it)",
        AddrClass::Unspecified | AddrClass::Multicast | AddrClass::Broadcast | AddrClass::Reserved => "",
    };
    Err(SsrfError::Refused { addr: ip, class, hint })
}

/// Checks that `url` is an http(s) URL whose host resolves only to addresses
/// `policy` allows. Resolves the name (so it may take as long as a DNS lookup).
pub async fn check_url(url: &str, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let parsed = url::Url::parse(url).map_err(|e| SsrfError::Invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SsrfError::Scheme(parsed.scheme().to_owned()));
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    match parsed.host() {
        None => Err(SsrfError::NoHost),
        Some(url::Host::Ipv4(v4)) => check_ip(IpAddr::V4(v4), policy),
        Some(url::Host::Ipv6(v6)) => check_ip(IpAddr::V6(v6), policy),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err(SsrfError::NoHost);
            }
            if METADATA_HOSTS.contains(&name.as_str()) && !policy.allow_link_local {
                return Err(SsrfError::MetadataHost(name));
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| SsrfError::Resolve { host: name.clone(), reason: e.to_string() })?
                .collect();
            if addrs.is_empty() {
                return Err(SsrfError::Resolve { host: name, reason: "no addresses".to_owned() });
            }
            addrs.iter().try_for_each(|a| check_ip(a.ip(), policy))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: SsrfPolicy = SsrfPolicy { block_private: false, allow_link_local: false };
    const STRICT: SsrfPolicy = SsrfPolicy { block_private: true, allow_link_local: false };
    const LINK_LOCAL_OK: SsrfPolicy = SsrfPolicy { block_private: false, allow_link_local: true };

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_range_is_classified() {
        for (addr, want) in [
            ("8.8.8.8", AddrClass::Public),
            ("2001:4860:4860::8888", AddrClass::Public),
            ("127.0.0.1", AddrClass::Loopback),
            ("127.255.0.9", AddrClass::Loopback),
            ("::1", AddrClass::Loopback),
            ("10.1.2.3", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("172.32.0.1", AddrClass::Public),
            ("192.168.1.1", AddrClass::Private),
            ("100.64.0.1", AddrClass::Private),
            ("100.127.255.254", AddrClass::Private),
            ("100.128.0.1", AddrClass::Public),
            ("fd12:3456::1", AddrClass::Private),
            ("fc00::1", AddrClass::Private),
            ("fec0::1", AddrClass::Private),
            ("169.254.0.1", AddrClass::LinkLocal),
            ("169.254.255.255", AddrClass::LinkLocal),
            ("fe80::1", AddrClass::LinkLocal),
            ("febf::1", AddrClass::LinkLocal),
            ("169.254.169.254", AddrClass::Metadata),
            ("169.254.170.2", AddrClass::Metadata),
            ("100.100.100.200", AddrClass::Metadata),
            ("fd00:ec2::254", AddrClass::Metadata),
            ("0.0.0.0", AddrClass::Unspecified),
            ("0.1.2.3", AddrClass::Unspecified),
            ("::", AddrClass::Unspecified),
            ("224.0.0.1", AddrClass::Multicast),
            ("239.255.255.250", AddrClass::Multicast),
            ("ff02::1", AddrClass::Multicast),
            ("255.255.255.255", AddrClass::Broadcast),
            ("240.0.0.1", AddrClass::Reserved),
            // IPv4 carried in IPv6 is judged as IPv4.
            ("::ffff:169.254.169.254", AddrClass::Metadata),
            ("::ffff:a9fe:a9fe", AddrClass::Metadata),
            ("::ffff:127.0.0.1", AddrClass::Loopback),
            ("::ffff:10.0.0.1", AddrClass::Private),
            ("::ffff:8.8.8.8", AddrClass::Public),
            ("64:ff9b::169.254.169.254", AddrClass::Metadata),
            ("64:ff9b::808:808", AddrClass::Public),
        ] {
            assert_eq!(class(addr), want, "{addr}");
        }
    }

    #[test]
    fn policy_decides_per_class() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        check_ip(ip("127.0.0.1"), &DEFAULT).unwrap();
        check_ip(ip("10.0.0.1"), &DEFAULT).unwrap();
        assert!(check_ip(ip("127.0.0.1"), &STRICT).unwrap_err().to_string().contains("block_private_urls"));
        assert!(check_ip(ip("::ffff:192.168.0.1"), &STRICT).is_err());
        let e = check_ip(ip("169.254.169.254"), &DEFAULT).unwrap_err();
        assert!(e.to_string().contains("cloud metadata"), "{e}");
        check_ip(ip("169.254.169.254"), &LINK_LOCAL_OK).unwrap();
        check_ip(ip("fe80::1"), &LINK_LOCAL_OK).unwrap();
        for always in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1"] {
            assert!(check_ip(ip(always), &LINK_LOCAL_OK).is_err(), "{always}");
        }
    }

    #[tokio::test]
    async fn numeric_host_spellings_are_normalised_and_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xA9FEA9FE/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]:8080/mcp",
            "https://0.0.0.0/",
            "http://0/",
            "http://[::]/",
        ] {
            let e = check_url(url, &DEFAULT).await.unwrap_err();
            assert!(matches!(e, SsrfError::Refused { .. }), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn metadata_names_schemes_and_hosts() {
        for name in ["http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./", "http://metadata/"] {
            assert!(matches!(check_url(name, &DEFAULT).await, Err(SsrfError::MetadataHost(_))), "{name}");
        }
        assert!(matches!(check_url("ftp://example.com/", &DEFAULT).await, Err(SsrfError::Scheme(_))));
        assert!(matches!(check_url("file:///etc/passwd", &DEFAULT).await, Err(SsrfError::Scheme(_))));
        assert!(matches!(check_url("not a url", &DEFAULT).await, Err(SsrfError::Invalid(_))));
        // Loopback by name resolves locally and passes unless private URLs are blocked.
        check_url("http://localhost:9/mcp", &DEFAULT).await.unwrap();
        check_url("http://127.0.0.1:9/mcp", &DEFAULT).await.unwrap();
        assert!(check_url("http://localhost:9/mcp", &STRICT).await.is_err());
        assert!(check_url("http://[::1]:9/mcp", &STRICT).await.is_err());
    }
}
