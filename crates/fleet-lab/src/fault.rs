//! The failures a lab host can be told to show, at `up` time or while the
//! lab runs (`fleet-lab fault HOST KIND`).

use std::fmt;
use std::str::FromStr;

/// One kind of failure of a lab host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never answers: SYNs are dropped, so connecting times out.
    Down,
    /// Nothing listens: connections are refused.
    Refuse,
    /// Accepts TCP and never speaks.
    Blackhole,
    /// Comes back from a reboot only after the lab's slow-boot delay.
    SlowBoot,
    /// Goes down at its next reboot and stays down.
    NeverReturns,
    /// Its next boot fails to load the module and logs a kernel BUG; the
    /// boot after that loads it again.
    BadModule,
    /// Comes back from its next reboot with a new host key.
    HostKeyChanged,
}

const NAMES: &[(&str, Fault)] = &[
    ("down", Fault::Down),
    ("refuse", Fault::Refuse),
    ("blackhole", Fault::Blackhole),
    ("slow-boot", Fault::SlowBoot),
    ("never-returns", Fault::NeverReturns),
    ("bad-module", Fault::BadModule),
    ("hostkey-changed", Fault::HostKeyChanged),
];

impl Fault {
    /// Faults that take the host off the network at once, until cleared.
    pub fn holds_host_down(self) -> bool {
        matches!(self, Fault::Down | Fault::Refuse | Fault::Blackhole)
    }

    /// Every kind's name, for error messages.
    pub fn names() -> String {
        NAMES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES
            .iter()
            .find(|(_, fault)| fault == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, fault)| *fault)
            .ok_or_else(|| {
                format!(
                    "unknown fault `{text}`; expected one of: {}, or clear",
                    Fault::names()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, fault) in NAMES {
            assert_eq!(name.parse::<Fault>().unwrap(), *fault);
            assert_eq!(fault.to_string(), *name);
        }
        assert!("reboot"
            .parse::<Fault>()
            .unwrap_err()
            .contains("expected one of: down"));
    }
}
