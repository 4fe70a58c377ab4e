//! Where a webhook may go: globally reachable addresses only, unless
//! configuration allows private ones — judged on the addresses a name resolves
//! to when the request is sent, so that a name cannot be pointed inside afterwards.
//!
//! "Globally reachable" is what IANA's IPv4 and IPv6 Special-Purpose Address
//! Registries (RFC 6890) say it is: both are copied below row for row with
//! their "Globally Reachable" column, and the most specific row holding an
//! address decides. (No maintained crate carries that column, and the
//! standard library's `is_global` is unstable, so the rows live here: when
//! IANA adds one, add it here and to the tests.) Around the registries:
//!
//! - Multicast has registries of its own; a webhook, sent over TCP, never
//!   goes to a group.
//! - IANA hands out IPv6 global unicast from `2000::/3` only (the IPv6 Address
//!   Space registry); any other IPv6 address no special-purpose row allows —
//!   the deprecated IPv4-compatible `::a.b.c.d`, SIIT's `::ffff:0:a.b.c.d`,
//!   the old site-local `fec0::/10` — is refused.
//! - An IPv6 address that carries an IPv4 address is judged by that address
//!   as well: IPv4-mapped `::ffff:a.b.c.d` (a socket given one connects to the
//!   IPv4 address) and the NAT64 well-known prefix `64:ff9b::/96` need it to
//!   be public; 6to4 `2002::/16` and Teredo `2001::/32`, whose row says N/A,
//!   are public exactly when every IPv4 address they carry is. Anywhere else
//!   the registry's N/A (deprecated blocks) is a refusal.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::delivery::InFlight;

/// How long a receiver gets to answer.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// A registry row's "Globally Reachable" cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    True,
    False,
    /// Left empty or N/A by the registry (terminated and translation blocks).
    Unsaid,
}

/// The IANA IPv4 Special-Purpose Address Registry, every block.
const IPV4_SPECIAL: &[(&str, Reach)] = &[
    ("0.0.0.0/8", Reach::False),          // "This network" (RFC 791)
    ("0.0.0.0/32", Reach::False),         // "This host on this network" (RFC 1122)
    ("10.0.0.0/8", Reach::False),         // Private-Use (RFC 1918)
    ("100.64.0.0/10", Reach::False),      // Shared Address Space (RFC 6598)
    ("127.0.0.0/8", Reach::False),        // Loopback (RFC 1122)
    ("169.254.0.0/16", Reach::False),     // Link Local (RFC 3927)
    ("172.16.0.0/12", Reach::False),      // Private-Use (RFC 1918)
    ("192.0.0.0/24", Reach::False),       // IETF Protocol Assignments (RFC 6890)
    ("192.0.0.0/29", Reach::False),       // IPv4 Service Continuity Prefix (RFC 7335)
    ("192.0.0.8/32", Reach::False),       // IPv4 dummy address (RFC 7600)
    ("192.0.0.9/32", Reach::True),        // Port Control Protocol Anycast (RFC 7723)
    ("192.0.0.10/32", Reach::True),       // Traversal Using Relays around NAT Anycast (RFC 8155)
    ("192.0.0.170/32", Reach::False),     // NAT64/DNS64 Discovery (RFC 8880, RFC 7050)
    ("192.0.0.171/32", Reach::False),     // NAT64/DNS64 Discovery (RFC 8880, RFC 7050)
    ("192.0.2.0/24", Reach::False),       // Documentation, TEST-NET-1 (RFC 5737)
    ("192.31.196.0/24", Reach::True),     // AS112-v4 (RFC 7535)
    ("192.52.193.0/24", Reach::True),     // AMT (RFC 7450)
    ("192.88.99.0/24", Reach::Unsaid),    // Deprecated 6to4 Relay Anycast (RFC 7526)
    ("192.88.99.2/32", Reach::False),     // 6a44-relay anycast address (RFC 6751)
    ("192.168.0.0/16", Reach::False),     // Private-Use (RFC 1918)
    ("192.175.48.0/24", Reach::True),     // Direct Delegation AS112 Service (RFC 7534)
    ("198.18.0.0/15", Reach::False),      // Benchmarking (RFC 2544)
    ("198.51.100.0/24", Reach::False),    // Documentation, TEST-NET-2 (RFC 5737)
    ("203.0.113.0/24", Reach::False),     // Documentation, TEST-NET-3 (RFC 5737)
    ("240.0.0.0/4", Reach::False),        // Reserved (RFC 1112)
    ("255.255.255.255/32", Reach::False), // Limited Broadcast (RFC 8190, RFC 919)
];

/// The IANA IPv6 Special-Purpose Address Registry, every block.
const IPV6_SPECIAL: &[(&str, Reach)] = &[
    ("::1/128", Reach::False),          // Loopback Address (RFC 4291)
    ("::/128", Reach::False),           // Unspecified Address (RFC 4291)
    ("::ffff:0:0/96", Reach::False),    // IPv4-mapped Address (RFC 4291)
    ("64:ff9b::/96", Reach::True),      // IPv4-IPv6 Translation, well-known prefix (RFC 6052)
    ("64:ff9b:1::/48", Reach::False),   // IPv4-IPv6 Translation, local use (RFC 8215)
    ("100::/64", Reach::False),         // Discard-Only Address Block (RFC 6666)
    ("100:0:0:1::/64", Reach::False),   // Dummy IPv6 Prefix (RFC 9780)
    ("2001::/23", Reach::False),        // IETF Protocol Assignments (RFC 2928)
    ("2001::/32", Reach::Unsaid),       // TEREDO (RFC 4380, RFC 8190)
    ("2001:1::1/128", Reach::True),     // Port Control Protocol Anycast (RFC 7723)
    ("2001:1::2/128", Reach::True),     // Traversal Using Relays around NAT Anycast (RFC 8155)
    ("2001:1::3/128", Reach::True),     // DNS-SD Service Registration Protocol Anycast (RFC 9665)
    ("2001:2::/48", Reach::False),      // Benchmarking (RFC 5180)
    ("2001:3::/32", Reach::True),       // AMT (RFC 7450)
    ("2001:4:112::/48", Reach::True),   // AS112-v6 (RFC 7535)
    ("2001:10::/28", Reach::Unsaid),    // Deprecated, previously ORCHID (RFC 4843)
    ("2001:20::/28", Reach::True),      // ORCHIDv2 (RFC 7343)
    ("2001:30::/28", Reach::True),      // Drone Remote ID Protocol Entity Tags (RFC 9374)
    ("2001:db8::/32", Reach::False),    // Documentation (RFC 3849)
    ("2002::/16", Reach::Unsaid),       // 6to4 (RFC 3056)
    ("2620:4f:8000::/48", Reach::True), // Direct Delegation AS112 Service (RFC 7534)
    ("3fff::/20", Reach::False),        // Documentation (RFC 9637)
    ("5f00::/16", Reach::False),        // Segment Routing (SRv6) SIDs (RFC 9602)
    ("fc00::/7", Reach::False),         // Unique-Local (RFC 4193, RFC 8190)
    ("fe80::/10", Reach::False),        // Link-Local Unicast (RFC 4291)
];

/// A registry's rows as (network, prefix length, reach).
type Blocks<A> = Vec<(A, u8, Reach)>;

static IPV4_BLOCKS: LazyLock<Blocks<Ipv4Addr>> = LazyLock::new(|| parse_rows(IPV4_SPECIAL));
static IPV6_BLOCKS: LazyLock<Blocks<Ipv6Addr>> = LazyLock::new(|| parse_rows(IPV6_SPECIAL));

/// The rows above, read. They are constants, checked by a test, so a
/// malformed one is a programming error.
fn parse_rows<A: std::str::FromStr>(rows: &[(&str, Reach)]) -> Blocks<A> {
    rows.iter()
        .map(|(block, reach)| {
            let (network, len) =
                block.split_once('/').unwrap_or_else(|| panic!("registry block {block} has no prefix length"));
            let network = network.parse::<A>().unwrap_or_else(|_| panic!("registry block {block} has no address"));
            let len = len.parse::<u8>().unwrap_or_else(|_| panic!("registry block {block} has no prefix length"));
            (network, len, *reach)
        })
        .collect()
}

fn prefix_v4(ip: Ipv4Addr, len: u8) -> u32 {
    u32::from(ip) & u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn prefix_v6(ip: Ipv6Addr, len: u8) -> u128 {
    u128::from(ip) & u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

/// The "Globally Reachable" cell of the most specific IPv4 row holding `ip`.
fn registered_v4(ip: Ipv4Addr) -> Option<Reach> {
    IPV4_BLOCKS
        .iter()
        .filter(|(network, len, _)| prefix_v4(ip, *len) == prefix_v4(*network, *len))
        .max_by_key(|(_, len, _)| *len)
        .map(|(_, _, reach)| *reach)
}

/// The "Globally Reachable" cell of the most specific IPv6 row holding `ip`.
fn registered_v6(ip: Ipv6Addr) -> Option<Reach> {
    IPV6_BLOCKS
        .iter()
        .filter(|(network, len, _)| prefix_v6(ip, *len) == prefix_v6(*network, *len))
        .max_by_key(|(_, len, _)| *len)
        .map(|(_, _, reach)| *reach)
}

/// Whether `ip` is globally reachable, so that a webhook may go there (see
/// the module's documentation for what that takes).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    !ip.is_multicast() && matches!(registered_v4(ip), None | Some(Reach::True))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    // Before the registry, whose row for these says False: the connection
    // goes over IPv4, to the address carried.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    if ip.is_multicast() {
        return false;
    }
    let carried = carried_v4(ip);
    match registered_v6(ip) {
        Some(Reach::False) => false,
        Some(Reach::True) => carried.into_iter().all(public_v4),
        Some(Reach::Unsaid) => !carried.is_empty() && carried.into_iter().all(public_v4),
        None => (ip.segments()[0] & 0xe000) == 0x2000,
    }
}

/// The IPv4 addresses a translation address carries: where a packet sent to
/// it ends up, through a translator or a tunnel.
fn carried_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match ip.segments() {
        // NAT64, well-known prefix (RFC 6052): the last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => vec![v4(high, low)],
        // 6to4 (RFC 3056): the 32 bits after the prefix.
        [0x2002, high, low, ..] => vec![v4(high, low)],
        // Teredo (RFC 4380): the server after the prefix, and the client in
        // the last 32 bits with every bit inverted.
        [0x2001, 0, server_high, server_low, _, _, client_high, client_low] => {
            vec![v4(server_high, server_low), v4(!client_high, !client_low)]
        }
        _ => Vec::new(),
    }
}

/// Resolves names for webhook requests, keeping only the addresses a
/// webhook may reach.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
            if allowed.is_empty() {
                return Err(
                    format!("{} resolves only to addresses that are not globally reachable", name.as_str()).into()
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// How this node sends webhooks: one HTTP client that reaches public
/// addresses only and one for deployments that allow private ones, and the
/// node's sends in flight.
#[derive(Clone)]
pub struct Sender {
    guarded: reqwest::Client,
    open: reqwest::Client,
    pub(super) flights: Arc<InFlight>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Keysmith-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
}

impl Sender {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { guarded: client(false)?, open: client(true)?, flights: Arc::default() })
    }

    pub(super) fn client(&self, allow_private: bool) -> &reqwest::Client {
        if allow_private { &self.open } else { &self.guarded }
    }

    /// Resolves when one of this node's sends has ended and made room for
    /// deliveries that were waiting for it: the job runner delivers again
    /// then, not at its next tick.
    pub async fn send_ended(&self) {
        self.flights.ended().await;
    }

    /// Why `url` may not be sent to, when it names an address literally
    /// (names are checked by the resolver as the request goes out).
    pub(super) fn refuses(url: &reqwest::Url, allow_private: bool) -> Option<String> {
        if allow_private {
            return None;
        }
        let ip = match url.host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        (!is_public(ip)).then(|| format!("{ip} is not a globally reachable address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn every_registry_row_is_a_network() {
        for (network, len, _) in IPV4_BLOCKS.iter() {
            assert!(*len <= 32 && prefix_v4(*network, *len) == u32::from(*network), "{network}/{len}");
        }
        for (network, len, _) in IPV6_BLOCKS.iter() {
            assert!(*len <= 128 && prefix_v6(*network, *len) == u128::from(*network), "{network}/{len}");
        }
        assert_eq!((IPV4_BLOCKS.len(), IPV6_BLOCKS.len()), (IPV4_SPECIAL.len(), IPV6_SPECIAL.len()));
    }

    #[test]
    fn addresses_that_are_not_globally_reachable_are_refused() {
        for refused in [
            // The usual private, loopback and link-local ranges.
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00::1",
            // Benchmarking.
            "198.18.0.1",
            "198.19.255.254",
            "2001:2::1",
            // IETF protocol assignments, all but the anycast services.
            "192.0.0.1",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.0.171",
            "192.0.0.200",
            "2001:1::4",
            "2001:5::1",
            // Reserved, broadcast, multicast.
            "240.0.0.1",
            "254.255.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "ff0e::1",
            // Documentation.
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "3fff::1",
            // Deprecated: 6to4 relay anycast, ORCHID, site-local.
            "192.88.99.1",
            "192.88.99.2",
            "2001:10::1",
            "fec0::1",
            // Discard-only, dummy, SRv6 SIDs, unallocated IPv6.
            "100::1",
            "100:0:0:1::1",
            "5f00::1",
            "4000::1",
            "e000::1",
            // IPv4-mapped: judged as the IPv4 address.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:198.18.0.1",
            "::ffff:224.0.0.1",
            // NAT64 well-known prefix carrying a loopback, private or link-local address.
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::c0a8:101",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::c612:1",
            // NAT64 local-use prefix, whatever it carries.
            "64:ff9b:1::808:808",
            "64:ff9b:1::7f00:1",
            // IPv4-compatible (deprecated) and IPv4-translated, whatever they carry.
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::ffff:0:7f00:1",
            "::ffff:0:808:808",
            // 6to4 carrying a private, loopback or link-local address.
            "2002:c0a8:101::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:a00:1::1",
            // Teredo whose client (inverted) is 127.0.0.1, or whose server is private.
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:a00:1:8000:63bf:a247:27dd",
        ] {
            assert!(!is_public(ip(refused)), "{refused} must be refused");
        }
    }

    #[test]
    fn globally_reachable_addresses_are_allowed() {
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.1",
            // The anycast services the registries call globally reachable.
            "192.0.0.9",
            "192.0.0.10",
            "192.31.196.1",
            "192.52.193.1",
            "192.175.48.1",
            "2606:4700::1111",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2001:1::2",
            "2001:1::3",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:30::1",
            "2620:4f:8000::1",
            "3fff:1000::1",
            // Carrying a public IPv4 address: mapped, NAT64, 6to4, Teredo.
            "::ffff:8.8.8.8",
            "64:ff9b::5db8:d822",
            "64:ff9b::808:808",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:a247:27dd",
        ] {
            assert!(is_public(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn literal_targets_are_refused_before_sending_unless_allowed() {
        for (target, refused) in [
            ("http://198.18.0.1/hook", true),
            ("http://[64:ff9b::7f00:1]/hook", true),
            ("http://[2002:c0a8:0101::1]/hook", true),
            ("http://[::ffff:0:7f00:1]/hook", true),
            ("http://[::127.0.0.1]/hook", true),
            ("http://240.0.0.1/", true),
            ("http://192.0.0.8/", true),
            ("http://93.184.216.34/hook", false),
            ("http://[2606:4700::1111]/hook", false),
            ("https://example.com/hook", false),
        ] {
            let url = reqwest::Url::parse(target).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert_eq!(Sender::refuses(&url, false).is_some(), refused, "{target}");
            assert_eq!(Sender::refuses(&url, true), None, "{target}");
        }
    }
}
