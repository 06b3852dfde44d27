//! Vector cases of kind `egress_decision` (`vectors/README.md` §5.18): the case's inputs go
//! through [`decide`] and `allow` and `reason` are compared.

use std::net::IpAddr;

use fcp_proto::conformance::json::{expected, field, opt_text, text, uint};
use serde_json::Value as Json;

use super::{decide, EgressConstraints, EgressRequest};

/// Runs one `egress_decision` case.
pub fn egress_decision(case: &Json) -> Result<(), String> {
    let constraints = constraints(field(case, "network_constraints")?)?;
    let request = EgressRequest {
        dest_host: text(case, "dest_host")?.to_owned(),
        dest_port: u16_field(case, "dest_port")?,
        resolved_ips: resolved_ips(case)?,
        sni: opt_text(case, "sni")?.map(str::to_owned),
    };
    let exp = expected(case)?;
    let want_allow = field(exp, "allow")?.as_bool().ok_or("expected.allow is not a boolean")?;
    let want_reason = text(exp, "reason")?;

    let decision = decide(&constraints, &request);
    if decision.is_allowed() != want_allow || decision.reason_code() != want_reason {
        return Err(format!(
            "got allow={} reason={} ({decision}), expected allow={want_allow} reason={want_reason}",
            decision.is_allowed(),
            decision.reason_code()
        ));
    }
    Ok(())
}

fn constraints(nc: &Json) -> Result<EgressConstraints, String> {
    let host_allow = field(nc, "host_allow")?
        .as_array()
        .ok_or("host_allow is not an array")?
        .iter()
        .map(|h| h.as_str().map(str::to_owned).ok_or_else(|| format!("host_allow entry {h} is not text")))
        .collect::<Result<_, _>>()?;
    let port_allow = field(nc, "port_allow")?
        .as_array()
        .ok_or("port_allow is not an array")?
        .iter()
        .map(|p| {
            p.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("port_allow entry {p} is not a port"))
        })
        .collect::<Result<_, _>>()?;
    Ok(EgressConstraints {
        host_allow,
        port_allow,
        deny_localhost: flag(nc, "deny_localhost")?,
        deny_private_ranges: flag(nc, "deny_private_ranges")?,
        deny_tailnet_ranges: flag(nc, "deny_tailnet_ranges")?,
        deny_ip_literals: flag(nc, "deny_ip_literals")?,
        require_sni: flag(nc, "require_sni")?,
        dns_max_ips: u16_field(nc, "dns_max_ips")?,
    })
}

fn flag(v: &Json, name: &str) -> Result<bool, String> {
    field(v, name)?.as_bool().ok_or_else(|| format!("field {name:?} is not a boolean"))
}

fn u16_field(v: &Json, name: &str) -> Result<u16, String> {
    u16::try_from(uint(v, name)?).map_err(|_| format!("field {name:?} does not fit in u16"))
}

/// The resolver's answers. An entry that does not parse is a fault in the test data
/// (README §5.18: a real resolver returns typed addresses), not a decision.
fn resolved_ips(case: &Json) -> Result<Vec<IpAddr>, String> {
    field(case, "resolved_ips")?
        .as_array()
        .ok_or("resolved_ips is not an array")?
        .iter()
        .map(|ip| {
            let text = ip.as_str().ok_or_else(|| format!("resolved_ips entry {ip} is not text"))?;
            text.parse().map_err(|e| format!("resolved_ips entry {text:?} is not an address: {e}"))
        })
        .collect()
}
