//! Who may do what: the four roles of smsdesk and the permissions each one has. The server checks
//! these on every page, server function and route; the console uses them to draw its navigation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A person's role in smsdesk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// Templates, sending, the delivery log.
    Dispatcher,
    /// The consent ledger, the audit log, the delivery log (read-only).
    Compliance,
    /// Spend and budgets, the delivery log (read-only).
    Finance,
}

/// Something a role may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    ManageUsers,
    ManageSettings,
    ViewTemplates,
    EditTemplates,
    SendMessages,
    ViewDeliveryLog,
    ViewConsent,
    /// Record an opt-out or opt-in by hand (a customer called), with a note.
    ManageConsent,
    ViewAuditLog,
    ViewSpend,
    ManageBudgets,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Dispatcher,
        Role::Compliance,
        Role::Finance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dispatcher => "dispatcher",
            Role::Compliance => "compliance",
            Role::Finance => "finance",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Dispatcher => "Dispatcher",
            Role::Compliance => "Compliance officer",
            Role::Finance => "Finance",
        }
    }

    /// Whether this role has the permission.
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Dispatcher => matches!(
                permission,
                ViewTemplates | EditTemplates | SendMessages | ViewDeliveryLog
            ),
            Role::Compliance => matches!(
                permission,
                ViewConsent | ManageConsent | ViewAuditLog | ViewDeliveryLog
            ),
            Role::Finance => matches!(permission, ViewSpend | ManageBudgets | ViewDeliveryLog),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of smsdesk's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role: use admin, dispatcher, compliance or finance")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_and_nothing_else() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("dispatcher")
        );
    }

    #[test]
    fn only_admins_manage_users_and_settings() {
        for role in Role::ALL {
            assert_eq!(role.can(Permission::ManageUsers), role == Role::Admin);
            assert_eq!(role.can(Permission::ManageSettings), role == Role::Admin);
        }
    }

    #[test]
    fn each_role_sees_its_own_area_and_every_role_reads_the_delivery_log() {
        assert!(Role::Dispatcher.can(Permission::EditTemplates));
        assert!(!Role::Dispatcher.can(Permission::ViewAuditLog));
        assert!(Role::Compliance.can(Permission::ViewAuditLog));
        assert!(!Role::Compliance.can(Permission::EditTemplates));
        assert!(Role::Finance.can(Permission::ManageBudgets));
        assert!(!Role::Finance.can(Permission::SendMessages));
        assert!(Role::ALL.iter().all(|r| r.can(Permission::ViewDeliveryLog)));
        assert!(Role::Compliance.can(Permission::ManageConsent));
        assert!(!Role::Dispatcher.can(Permission::ManageConsent));
        assert!(!Role::Finance.can(Permission::ViewConsent));
    }
}
